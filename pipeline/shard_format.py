"""The token shard format: a shards folder's manifest.json and the checks every reader makes.

A shards folder holds `train-00000.parquet`, `val-00000.parquet`, ... and manifest.json, which
names the format, the token dtype, and each shard's split, rows, tokens and sha256. Readers (the
training loader, the report) go through `load_manifest` and `open_shard`, which refuse a foreign
format, a shard path outside the folder and a shard whose bytes do not match the manifest.
The writer is the shards stage (pipeline/shards.py).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import InputError, ShardChecksumError, StageIncompleteError
from pipeline.stage import sha256_file

FORMAT = "crawl2gpt-shards/1"
MANIFEST_JSON = "manifest.json"
SPLITS = ("train", "val")


def token_dtype(vocab_size: int) -> pa.DataType:
    return pa.uint16() if vocab_size <= 1 << 16 else pa.uint32()


def load_manifest(shards_dir: str | Path, verify: bool = False) -> dict[str, Any]:
    """manifest.json of a shards folder; `verify=True` also checks every shard's sha256."""
    path = Path(shards_dir) / MANIFEST_JSON
    if not path.is_file():
        raise StageIncompleteError(f"{path} not found: {shards_dir} is not a finished shards folder; run the shards stage")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:  # a damaged or foreign file
        raise StageIncompleteError(f"{path} is not valid JSON ({err}); rerun the shards stage with --force") from None
    if manifest.get("format") != FORMAT:
        raise InputError(f"{path} has format {manifest.get('format')!r}, this code reads {FORMAT!r}; rerun the shards stage")
    if verify:
        for entry in manifest["shards"]:
            verify_shard(shards_dir, entry)
    return manifest


def shard_path(shards_dir: str | Path, entry: dict[str, Any]) -> Path:
    root = Path(shards_dir).resolve()
    path = (root / entry["path"]).resolve()
    if path.parent != root:
        raise InputError(f"{root / MANIFEST_JSON} lists shard {entry['path']!r} outside its folder; refusing it")
    return path


def verify_shard(shards_dir: str | Path, entry: dict[str, Any]) -> Path:
    """The shard's path if its bytes match the manifest's sha256, else ShardChecksumError."""
    path = shard_path(shards_dir, entry)
    fix = "rerun the shards stage (crawl2gpt stage shards --force) to rebuild it"
    if not path.is_file():
        raise ShardChecksumError(f"shard {path} listed in {MANIFEST_JSON} is missing; {fix}")
    actual = sha256_file(path)
    if actual != entry["sha256"]:
        raise ShardChecksumError(
            f"shard {path} does not match its checksum (manifest {entry['sha256'][:12]}..., file {actual[:12]}...): "
            f"it was modified or truncated; {fix}"
        )
    return path


def open_shard(shards_dir: str | Path, entry: dict[str, Any]) -> pq.ParquetFile:
    return pq.ParquetFile(verify_shard(shards_dir, entry))
