"""The token shard format: a shards folder's manifest.json and the checks every reader makes.

A shards folder holds `train-00000.parquet`, `val-00000.parquet`, ... and manifest.json, which
names the format, the token dtype, and each shard's split, rows, tokens and sha256. Readers (the
training loader, the report) go through `load_manifest` and `read_shard` / `open_shard`, which
refuse a foreign format, a shard path outside the folder and a shard whose bytes do not match the
manifest.
The writer is the shards stage (pipeline/tokens/shards.py).

The check costs one sha256 pass over a shard when it is opened (0.61 s per GB of shard file, 0.9 s
per billion tokens, on one core of the 2-core dev machine: benchmarks/shard_verify.py), over the
same memory-mapped bytes the reader then parses: nothing is hashed up front, so a crawl-sized run starts
at once, and what is checked is what is read. A shard that fails names itself and the command that
rebuilds it (the shards stage is deterministic, so the rebuilt shards are byte-identical and training resumes from its
checkpoint).
"""

from __future__ import annotations

import hashlib
import json
import shlex
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from pipeline.errors import InputError, ShardChecksumError, StageIncompleteError
from pipeline.stage import read_manifest
from pipeline.tokens.config import ShardsConfig

FORMAT = "crawl2gpt-shards/1"
MANIFEST_JSON = "manifest.json"
SPLITS = ("train", "val")


def token_dtype(vocab_size: int) -> pa.DataType:
    return pa.uint16() if vocab_size <= 1 << 16 else pa.uint32()


def load_manifest(shards_dir: str | Path, verify: bool = False) -> dict[str, Any]:
    """manifest.json of a shards folder; `verify=True` also checks every shard's sha256."""
    path = Path(shards_dir) / MANIFEST_JSON
    if not path.is_file():
        raise StageIncompleteError(
            f"{path} not found: {shards_dir} is not a finished shards folder; run the shards stage"
        )
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:  # a damaged or foreign file
        raise StageIncompleteError(f"{path} is not valid JSON ({err}); rerun the shards stage with --force") from None
    if manifest.get("format") != FORMAT:
        raise InputError(
            f"{path} has format {manifest.get('format')!r}, this code reads {FORMAT!r}; rerun the shards stage"
        )
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


def read_shard(shards_dir: str | Path, entry: dict[str, Any]) -> pa.Buffer:
    """The shard's bytes, memory-mapped, if their sha256 matches the manifest; else ShardChecksumError.

    Parse the returned buffer (pa.BufferReader), not the path: those are the bytes checked.
    """
    path = shard_path(shards_dir, entry)
    if not path.is_file():
        raise ShardChecksumError(f"shard {path} listed in {MANIFEST_JSON} is missing; {rebuild_advice(shards_dir)}")
    data = pa.memory_map(str(path)).read_buffer()
    actual = hashlib.sha256(data).hexdigest()  # releases the GIL: a loader thread does not stall the step
    if actual != entry["sha256"]:
        raise ShardChecksumError(
            f"shard {path} does not match its checksum in {MANIFEST_JSON} (recorded {entry['sha256'][:12]}..., "
            f"now {actual[:12]}...): its bytes changed after the shards stage wrote it (disk, copy or edit). "
            f"{rebuild_advice(shards_dir)}"
        )
    return data


def verify_shard(shards_dir: str | Path, entry: dict[str, Any]) -> Path:
    """The shard's path if its bytes match the manifest's sha256, else ShardChecksumError."""
    read_shard(shards_dir, entry)
    return shard_path(shards_dir, entry)


def open_shard(shards_dir: str | Path, entry: dict[str, Any]) -> pq.ParquetFile:
    return pq.ParquetFile(pa.BufferReader(read_shard(shards_dir, entry)))


# --------------------------------------------------------------------------- what to do about a damaged shard


def rebuild_advice(shards_dir: str | Path) -> str:
    """What to do about a damaged shard, ending with the exact command (copy-pasteable last)."""
    return (
        "To fix it, rebuild the shards (the stage is deterministic: they come back byte-identical), then start "
        "training again as before (crawl2gpt run or crawl2gpt train): it resumes from its last checkpoint. "
        "Adding --force shards to your crawl2gpt run command does both. "
        f"Rebuild with: {rebuild_command(shards_dir)}"
    )


def rebuild_command(shards_dir: str | Path) -> str:
    """`crawl2gpt stage shards ... --force` with the inputs and settings this folder's _stage.json recorded."""
    shards_dir = Path(shards_dir)
    try:
        recorded = read_manifest(shards_dir)
    except StageIncompleteError:  # a folder not written by the shards stage: name the stage, not its inputs
        return (
            "crawl2gpt stage shards --input DEDUP_FOLDER TOKENIZER_FOLDER "
            f"--output {shlex.quote(str(shards_dir))} --force"
        )
    inputs = [spec["input"] for spec in recorded.get("inputs", []) if spec.get("kind") == "stage"]
    words = ["crawl2gpt", "stage", "shards", "--input", *inputs, "--output", str(shards_dir), "--force"]
    return shlex.join(words + _settings_args(shards_dir, recorded.get("config", {}).get("shards", {})))


def _settings_args(shards_dir: Path, recorded: dict[str, Any]) -> list[str]:
    """The run folder's config.yaml when its shards section is the one the stage used (the usual
    case), else that section spelled out: other settings would build other shards."""
    run_config = shards_dir.parent / "config.yaml"
    try:
        section = (yaml.safe_load(run_config.read_text()) or {}).get("shards") or {}
        if ShardsConfig.model_validate(section).model_dump(mode="json") == recorded:
            return ["--config", str(run_config)]
    except (OSError, ValueError, AttributeError, yaml.YAMLError):  # no run folder, or a config we cannot read
        pass
    return [arg for key, value in recorded.items() for arg in ("--set", f"shards.{key}={json.dumps(value)}")]
