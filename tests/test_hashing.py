"""The one stable hash-to-fraction: pinned values (train/val splits must not move between
versions), the array form equals the scalar one, and the values spread uniformly."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.hashing import stable_fraction, stable_fractions

# blake2b-64 big-endian / 2**64, computed when the four copies were merged into pipeline/hashing.py;
# a change here moves documents between the train and val shards of every existing corpus
PINNED = {
    "doc-0": 0.8967921530342211,
    "https://example.com/a": 0.9464510631217135,
    "": 0.8931675160897388,
    "Grüße": 0.026052040867002683,
    "### Instruction:\nhi": 0.6229210879175703,
}


@pytest.mark.parametrize("key, value", PINNED.items())
def test_pinned_values(key, value):
    assert stable_fraction(key) == value


def test_array_form_equals_scalar_form():
    keys = list(PINNED) + [f"doc-{i}" for i in range(100)]
    got = stable_fractions(keys)
    assert got.dtype == np.float64 and got.shape == (len(keys),)
    assert got.tolist() == [stable_fraction(k) for k in keys]
    assert stable_fractions([]).shape == (0,)


def test_fractions_are_uniform_in_unit_interval():
    values = stable_fractions([f"<urn:uuid:{i:08x}>" for i in range(20_000)])
    assert values.min() >= 0.0 and values.max() < 1.0
    for cut in (0.01, 0.2, 0.5):
        assert abs((values < cut).mean() - cut) < 0.01


def test_sft_split_uses_it():
    from model.sft_data import render, split_of

    turns = [("user", "Write a title for this article."), ("assistant", "A title")]
    h = stable_fraction(render(turns))
    assert split_of(turns, h + 1e-9) == "val" and split_of(turns, h) == "train"
