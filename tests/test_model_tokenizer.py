"""model/tokenizer.py, the one tokenizer every model command loads: it refuses a SentencePiece
model without our special ids and a file whose sha256 is not the one its shards manifest or
checkpoint recorded, each with the fix in the message."""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import sentencepiece as spm

from helpers.model_shards import make_shards
from model.tokenizer import SentencePieceTokenizer, load_tokenizer, shards_tokenizer
from pipeline.errors import CheckpointError, TokenizerError

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return make_shards(tmp_path_factory.getbasetemp() / "model-shards")


def manifest_of(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def sentencepiece_defaults_model(shards: Path, path: Path) -> Path:
    """A model trained with SentencePiece's own special ids (unk 0, bos 1, eos 2, no pad), as
    `spm_train` makes by default, on the text of the shards' validation documents."""
    ours = SentencePieceTokenizer(shards / "tokenizer.model")
    docs = pq.read_table(shards / "val-00000.parquet", columns=["tokens"]).column("tokens").to_pylist()
    lines = [line for ids in docs for line in ours.decode(ids).split("\n") if line.strip()]
    with open(path, "wb") as fh:
        spm.SentencePieceTrainer.Train(
            sentence_iterator=iter(lines),
            model_writer=fh,
            vocab_size=200,
            model_type="bpe",
            hard_vocab_limit=False,
            minloglevel=2,
            num_threads=1,
        )
    return path


def test_the_shards_tokenizer_has_our_ids_and_round_trips_text(shards):
    tok = shards_tokenizer(shards, manifest_of(shards))
    assert (tok.pad_id, tok.eot_id, tok.vocab_size) == (0, 2, manifest_of(shards)["vocab_size"])
    text = "Die Stadt hat 2 neue Brücken. Written <|endoftext|> stays text."
    ids = tok.encode(text)
    assert tok.eot_id not in ids and tok.decode(ids) == text
    assert pickle.loads(pickle.dumps(tok)).encode(text) == ids  # DataLoader workers reload it from the path


def test_a_model_without_our_special_ids_is_refused_with_the_fix(shards, tmp_path):
    copy = tmp_path / "shards"
    shutil.copytree(shards, copy)
    sentencepiece_defaults_model(shards, copy / "tokenizer.model")
    manifest = manifest_of(copy)
    manifest["tokenizer"]["sha256"] = hashlib.sha256((copy / "tokenizer.model").read_bytes()).hexdigest()
    with pytest.raises(TokenizerError, match=re.escape("does not have <|pad|> as control id 0") + ".*Retrain it"):
        shards_tokenizer(copy, manifest)
    ckpt = tmp_path / "ckpt"  # generate, export and fine-tuning load a checkpoint's copy the same way
    ckpt.mkdir()
    shutil.copyfile(copy / "tokenizer.model", ckpt / "tokenizer.model")
    with pytest.raises(TokenizerError, match="Retrain it"):
        load_tokenizer(ckpt)


def test_a_file_that_is_not_the_recorded_one_is_refused_with_the_fix(shards, tmp_path):
    manifest = manifest_of(shards)
    manifest["tokenizer"]["sha256"] = "0" * 64
    expected = (
        r"is not the tokenizer the shards in .* were encoded with \(manifest sha256 000000000000\.\.\., "
        r"file [0-9a-f]{12}\.\.\.\); rerun the shards stage"
    )
    with pytest.raises(TokenizerError, match=expected):
        shards_tokenizer(shards, manifest)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    shutil.copyfile(shards / "tokenizer.model", ckpt / "tokenizer.model")
    with pytest.raises(TokenizerError, match="this checkpoint was trained with .*state.json.*copy the training run's"):
        load_tokenizer(ckpt, sha256="0" * 64)
    recorded = manifest_of(shards)
    assert load_tokenizer(ckpt, sha256=recorded["tokenizer"]["sha256"]).vocab_size == recorded["vocab_size"]


def test_missing_tokenizers(shards, tmp_path):
    manifest = manifest_of(shards)
    empty = tmp_path / "shards"
    empty.mkdir()
    assert shards_tokenizer(empty, manifest) is None  # training runs without samples
    with pytest.raises(CheckpointError, match="has no tokenizer.model"):
        load_tokenizer(empty)


def test_sentencepiece_models_are_opened_in_one_place():
    """Every reader goes through pipeline/tokens/tokenizer.py's load (via model/tokenizer.py), so
    none can skip the special-id check."""
    openers = [
        path.relative_to(ROOT).as_posix()
        for folder in ("pipeline", "model", "crawl2gpt", "flows")
        for path in (ROOT / folder).rglob("*.py")
        if re.search(r"SentencePieceProcessor\(|\.Load\(", path.read_text())
    ]
    assert openers == ["pipeline/tokens/tokenizer.py"]
