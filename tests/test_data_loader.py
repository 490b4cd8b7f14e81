"""TokenWindows: exact windows, seeded order, disjoint ranks, exact resume, checksum refusal.

The shards come from `helpers.model_shards.make_shards`: real web text from the bundled sample.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.model_shards import make_shards
from model.data import TokenWindows, load_tokens
from pipeline.errors import InputError, ShardChecksumError, StageIncompleteError


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return make_shards(tmp_path_factory.getbasetemp() / "model-shards")


def test_windows_are_contiguous_shard_tokens(shards):
    loader = TokenWindows(shards, "train", block_size=32, batch_size=4, seed=3)
    streams = [load_tokens(p) for p in loader.paths]
    x, y = loader.next_batch()
    assert x.shape == y.shape == (4, 32) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])
    for row_x, row_y in zip(x.numpy(), y.numpy()):
        window = np.concatenate([row_x, row_y[-1:]])
        hits = [s for s in streams if any(np.array_equal(s[o : o + 33], window) for o in range(0, len(s) - 32, 32))]
        assert hits, "every window is an aligned slice of some shard's token stream"


def test_order_is_seeded(shards):
    a = TokenWindows(shards, "train", 16, 8, seed=1)
    b = TokenWindows(shards, "train", 16, 8, seed=1)
    c = TokenWindows(shards, "train", 16, 8, seed=2)
    batches = [(a.next_batch()[0], b.next_batch()[0], c.next_batch()[0]) for _ in range(3)]
    assert all(torch.equal(xa, xb) for xa, xb, _ in batches)
    assert not all(torch.equal(xa, xc) for xa, _, xc in batches)


def test_ranks_are_disjoint_and_interleave_like_accumulation(shards):
    def starts(loader, n):  # identify windows by their content
        return [tuple(row.tolist()) for _ in range(n) for row in loader.next_batch()[0]]

    single = starts(TokenWindows(shards, "train", 16, 4, seed=5), 40)
    r0 = starts(TokenWindows(shards, "train", 16, 4, rank=0, world_size=2, seed=5), 20)
    r1 = starts(TokenWindows(shards, "train", 16, 4, rank=1, world_size=2, seed=5), 20)
    assert not set(r0) & set(r1)
    # rank r's n-th batch is the single process's batch 2n + r (same windows, same order)
    assert r0 == [w for n in range(20) for w in single[(2 * n) * 4 : (2 * n + 1) * 4]]
    assert r1 == [w for n in range(20) for w in single[(2 * n + 1) * 4 : (2 * n + 2) * 4]]


def test_state_dict_restores_exact_position_across_epochs(shards):
    loader = TokenWindows(shards, "train", block_size=64, batch_size=16, seed=9)
    per_epoch = sum((len(load_tokens(p)) - 1) // 64 // 16 for p in loader.paths)
    for _ in range(per_epoch + 3):  # past an epoch boundary
        loader.next_batch()
    state = json.loads(json.dumps(loader.state_dict()))
    assert state["epoch"] == 1
    expected = [loader.next_batch()[0] for _ in range(5)]
    fresh = TokenWindows(shards, "train", block_size=64, batch_size=16, seed=9)
    fresh.load_state_dict(state)
    assert all(torch.equal(e, fresh.next_batch()[0]) for e in expected)
    with pytest.raises(ValueError, match="batch_size"):
        TokenWindows(shards, "train", block_size=64, batch_size=8, seed=9).load_state_dict(state)


def test_damaged_shard_is_refused(shards, tmp_path):
    import shutil

    copy = tmp_path / "shards"
    shutil.copytree(shards, copy)
    val = copy / "val-00000.parquet"
    data = bytearray(val.read_bytes())
    data[len(data) // 2] ^= 0xFF
    val.write_bytes(bytes(data))
    with pytest.raises(ShardChecksumError, match="val-00000"):
        TokenWindows(copy, "val", 16, 2).next_batch()


def test_too_small_split_and_missing_manifest_are_clear_errors(shards, tmp_path):
    with pytest.raises(InputError, match="one batch"):
        TokenWindows(shards, "val", block_size=512, batch_size=512).next_batch()
    with pytest.raises(StageIncompleteError, match="manifest.json"):
        TokenWindows(tmp_path, "train", 16, 2)


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(block=st.integers(4, 96), batch=st.integers(1, 12), world=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_ranks_partition_the_single_process_stream(shards, block, batch, world, seed):
    """For any shape: rank r's n-th batch is the single process's batch n * world + r."""
    single = TokenWindows(shards, "train", block, batch, seed=seed, verify=False)
    ranks = [
        TokenWindows(shards, "train", block, batch, rank=r, world_size=world, seed=seed, verify=False)
        for r in range(world)
    ]
    steps = 5
    for _ in range(steps):
        for rank in ranks:
            expected_x, expected_y = single.next_batch()
            x, y = rank.next_batch()
            assert torch.equal(x, expected_x) and torch.equal(y, expected_y)
