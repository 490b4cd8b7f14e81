"""Shards stage on real extracted text: format, round trip, split, checksums, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crawl2gpt.config import RunConfig
from helpers.corpus import build_run, extract_warc, write_stage
from pipeline.errors import InputError, ShardChecksumError
from pipeline.hashing import stable_fractions
from pipeline.shard_format import load_manifest, token_dtype, verify_shard
from pipeline.stage import process_map, run_stage, sha256_file, stage_parts
from pipeline.tokens.shards import SHARDS, encode_batch
from pipeline.tokens.tokenizer import EOT_ID, load

SERIAL = process_map(1)
CFG = RunConfig().with_overrides(
    [
        "tokenizer.vocab_size=600",
        "tokenizer.character_coverage=0.98",
        "tokenizer.threads=2",
        "shards.target_shard_tokens=40000",
        "shards.val_fraction=0.2",
        "workers=2",
    ]
)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return build_run(tmp_path_factory.mktemp("run"), CFG, process_map(2))  # real spawned pool: parts must pickle


def all_rows(shards: Path) -> pd.DataFrame:
    manifest = load_manifest(shards, verify=True)
    frames = [pd.read_parquet(shards / e["path"]).assign(split=e["split"]) for e in manifest["shards"]]
    return pd.concat(frames, ignore_index=True)


def test_manifest_describes_self_contained_folder(run):
    shards = run / "shards"
    manifest = json.loads((shards / "manifest.json").read_text())
    assert manifest["format"] == "crawl2gpt-shards/1"
    assert (manifest["vocab_size"], manifest["dtype"], manifest["eot_id"], manifest["pad_id"]) == (600, "uint16", 2, 0)
    assert manifest["tokenizer"] == {
        "path": "tokenizer.model",
        "sha256": sha256_file(run / "tokenizer/tokenizer.model"),
    }
    assert manifest["config"]["shards"]["target_shard_tokens"] == 40000
    names = sorted(p.name for p in shards.glob("*.parquet"))
    assert names == sorted(e["path"] for e in manifest["shards"])
    assert not list(shards.glob(".*"))  # no temporary part files left
    assert {e["split"] for e in manifest["shards"]} == {"train", "val"}
    assert "train-00000.parquet" in names and "val-00000.parquet" in names
    for entry in manifest["shards"]:
        table = pq.read_table(shards / entry["path"])
        assert (table.num_rows, sum(table.column("n_tokens").to_pylist())) == (entry["rows"], entry["tokens"])
        assert entry["sha256"] == sha256_file(shards / entry["path"])
        assert pq.ParquetFile(shards / entry["path"]).metadata.num_row_groups == 1  # < 1024 rows: one row group
    assert stage_parts(shards) == sorted(shards / n for n in names)  # what the loader lists


def test_shards_are_cut_past_target(run):
    manifest = load_manifest(run / "shards")
    train = [e for e in manifest["shards"] if e["split"] == "train"]
    assert len(train) > 3  # 3 parts, each cut at least once at 40k tokens
    for entry in train:  # a file closes at the document that brings it to the target
        lengths = pq.read_table(run / "shards" / entry["path"], columns=["n_tokens"]).column("n_tokens").to_pylist()
        assert sum(lengths[:-1]) < 40000


def test_schema_and_tokens_decode_to_the_documents(run):
    shards = run / "shards"
    schema = pq.read_schema(shards / "train-00000.parquet")
    assert schema.field("tokens").type == pa.list_(pa.uint16()) and schema.field("n_tokens").type == pa.int32()
    assert {"doc_id", "url", "domain", "language", "language_score", "avg_word_length"} <= set(schema.names)
    sp = load(shards / "tokenizer.model")
    texts = {r["doc_id"]: r["text"] for r in extract_warc()}
    rows = all_rows(shards)
    assert sorted(rows["doc_id"]) == sorted(texts)  # every document once; the empty one is not a row
    for doc_id, tokens, n in zip(rows["doc_id"], rows["tokens"], rows["n_tokens"]):
        assert len(tokens) == n and tokens[-1] == EOT_ID and EOT_ID not in tokens[:-1]
        assert sp.DecodeIds(tokens[:-1].tolist()) == texts[doc_id]


def test_text_bytes_per_document_shard_and_split(run):
    """n_bytes is the UTF-8 length of the text that was encoded; the manifest sums it per shard and
    split (what training's bits per byte divides by)."""
    shards = run / "shards"
    manifest = load_manifest(shards)
    texts = {r["doc_id"]: r["text"] for r in extract_warc()}
    rows = all_rows(shards)
    assert pq.read_schema(shards / "train-00000.parquet").field("n_bytes").type == pa.int64()
    assert [len(texts[d].encode("utf-8")) for d in rows["doc_id"]] == rows["n_bytes"].tolist()
    for entry in manifest["shards"]:
        assert entry["bytes"] == int(
            rows.loc[rows["split"] == entry["split"]]
            .set_index("doc_id")
            .loc[pq.read_table(shards / entry["path"], columns=["doc_id"]).column(0).to_pylist(), "n_bytes"]
            .sum()
        )
    for split in ("train", "val"):
        assert manifest["totals"][split]["bytes"] == rows.loc[rows["split"] == split, "n_bytes"].sum() > 0


def test_split_by_doc_hash(run):
    rows = all_rows(run / "shards")
    expect_val = stable_fractions(list(rows["doc_id"])) < 0.2
    assert (rows["split"] == "val").tolist() == expect_val.tolist()
    assert 0 < expect_val.sum() < len(rows)


def test_stats_count_empty_documents(run):
    stats = json.loads((run / "shards/_stage.json").read_text())["stats"]
    assert stats["drops"] == {"empty_text": 1}
    assert stats["docs_in"] == len(extract_warc()) + 1 and stats["docs_out"] == len(extract_warc())
    assert stats["extra"]["train_tokens"] + stats["extra"]["val_tokens"] == all_rows(run / "shards")["n_tokens"].sum()


def test_rerun_gives_identical_shards(run, tmp_path):
    again = tmp_path / "shards"
    run_stage(SHARDS, [str(run / "dedup"), str(run / "tokenizer")], again, CFG, map_parts=SERIAL)
    first, second = load_manifest(run / "shards")["shards"], load_manifest(again)["shards"]
    assert [(e["path"], e["sha256"]) for e in first] == [(e["path"], e["sha256"]) for e in second]


def test_corrupt_or_missing_shard_is_refused(run, tmp_path):
    shards = tmp_path / "shards"
    shutil.copytree(run / "shards", shards)
    entry = load_manifest(shards)["shards"][0]
    verify_shard(shards, entry)
    data = bytearray((shards / entry["path"]).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (shards / entry["path"]).write_bytes(bytes(data))
    with pytest.raises(ShardChecksumError, match=rf"{entry['path']}.*does not match.*--force"):
        load_manifest(shards, verify=True)
    (shards / entry["path"]).unlink()
    with pytest.raises(ShardChecksumError, match="is missing"):
        verify_shard(shards, entry)
    with pytest.raises(InputError, match="outside its folder"):
        verify_shard(shards, {**entry, "path": "../elsewhere.parquet"})


def test_wide_vocabularies_use_uint32(run):
    assert token_dtype(65536) == pa.uint16() and token_dtype(65537) == pa.uint32()
    sp = load(run / "shards")
    texts = [r["text"] for r in extract_warc()[:5]]
    wide = encode_batch(sp, texts, pa.uint32(), True, 1)
    assert wide.type == pa.list_(pa.uint32())
    assert [list(x)[:-1] for x in wide.to_pylist()] == sp.encode(texts)
    assert np.array_equal(
        pa.compute.list_flatten(wide).to_numpy(),
        pa.compute.list_flatten(encode_batch(sp, texts, pa.uint16(), True, 1)).to_numpy(),
    )


def test_needs_dedup_and_tokenizer_folders(run, tmp_path):
    with pytest.raises(InputError, match="exactly one tokenizer folder"):
        run_stage(SHARDS, [str(run / "dedup")], tmp_path / "shards", CFG, map_parts=SERIAL)
    with pytest.raises(InputError, match="not"):
        run_stage(SHARDS, [str(run / "filter"), str(run / "tokenizer")], tmp_path / "shards", CFG, map_parts=SERIAL)
    assert not (tmp_path / "shards").exists()


def test_corpus_without_text_is_a_clear_error(run, tmp_path):
    empty = [{**extract_warc()[0], "doc_id": f"e{i}", "text": ""} for i in range(3)]
    dedup = write_stage(tmp_path / "dedup", "dedup", [empty])
    with pytest.raises(InputError, match="no documents to shard"):
        run_stage(SHARDS, [str(dedup), str(run / "tokenizer")], tmp_path / "shards", CFG, map_parts=SERIAL)
    assert not (tmp_path / "shards").exists()


def test_readable_by_duckdb(run):
    """A second, independent Parquet reader (DuckDB's own, not Arrow's) sees the same shards."""
    duckdb = pytest.importorskip("duckdb")
    shards = run / "shards"
    manifest = load_manifest(shards)
    con = duckdb.connect()
    for entry in manifest["shards"]:
        path = str(shards / entry["path"])
        rows, tokens, listed, last = con.execute(
            "SELECT count(*), sum(n_tokens), sum(len(tokens)), min(tokens[len(tokens)]) FROM read_parquet(?)", [path]
        ).fetchone()
        assert (rows, tokens, listed, last) == (entry["rows"], entry["tokens"], entry["tokens"], EOT_ID)
    types = dict(
        con.execute(
            "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet(?))",
            [str(shards / "train-00000.parquet")],
        ).fetchall()
    )
    assert types["tokens"] == "USMALLINT[]" and types["n_tokens"] == "INTEGER"
    by_split = dict(
        con.execute(
            "SELECT split, sum(n_tokens) FROM ("
            f"SELECT n_tokens, 'train' AS split FROM read_parquet('{shards}/train-*.parquet') "
            f"UNION ALL SELECT n_tokens, 'val' FROM read_parquet('{shards}/val-*.parquet')) GROUP BY split"
        ).fetchall()
    )
    assert by_split == {s: manifest["totals"][s]["tokens"] for s in ("train", "val")}
