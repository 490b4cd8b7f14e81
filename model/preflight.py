"""Checks a training run makes before step 1, so a bad setting fails in seconds, not at the
first evaluation or checkpoint after minutes of steps.

  check_tokenizer   the shards folder's tokenizer.model is the one its shards were encoded with
  check_windows     each split holds one batch of block_size + 1 token windows for every rank
  check_run         both, plus the FP8 requirements; called by the train stage's plan (for the
                    ranks it will launch) and by every rank before it builds the model

Each failure is one of pipeline/errors.py's types with the file, the numbers and the fix.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from model.config import TrainConfig
from model.tokenizer import shards_tokenizer
from pipeline.errors import InputError
from pipeline.shard_format import load_manifest


def check_tokenizer(shards_dir: str | Path, manifest: dict[str, Any]) -> None:
    """tokenizer.model beside the shards must be the file the manifest recorded (its sha256), with
    our special ids and the manifest's vocabulary size (model/tokenizer.py checks all three)."""
    shards_tokenizer(shards_dir, manifest)


def largest_shard_windows(manifest: dict[str, Any], split: str, block_size: int) -> tuple[int, int] | None:
    """(windows of block_size + 1 tokens in the split's largest shard, its tokens); None when the
    split has no shards or the manifest does not count tokens (the loader then checks itself)."""
    counts = [e.get("tokens") for e in manifest["shards"] if e.get("split") == split]
    if not counts or any(c is None for c in counts):
        return None
    tokens = max(counts)
    return max(0, (tokens - 1) // block_size), tokens


def check_windows(shards_dir: str | Path, manifest: dict[str, Any], cfg: TrainConfig, world_size: int) -> None:
    """The loader (model/data.py) cuts each shard into windows of block_size + 1 tokens and deals
    them in groups of batch_size x world_size; a shard smaller than one group is skipped. So each
    split needs at least one shard holding a whole group, or its first batch never comes: for
    train at step 1, for validation at the first evaluation (eval_interval steps later)."""
    group = cfg.batch_size * world_size
    ranks = f" x {world_size} ranks" if world_size > 1 else ""
    for split, fix in (("train", "or give the shards stage more documents"),
                       ("val", "or hold out more documents for validation (shards.val_fraction)")):
        found = largest_shard_windows(manifest, split, cfg.block_size)
        if found is None or found[0] >= group:
            continue
        windows, tokens = found
        raise InputError(
            f"the {split!r} shards of {shards_dir} cannot fill one batch: the largest holds {tokens} tokens = {windows} "
            f"windows of block_size {cfg.block_size} + 1, a batch needs train.batch_size {cfg.batch_size}{ranks} = "
            f"{group} windows ({group * (cfg.block_size + 1)} tokens). Lower train.batch_size or train.block_size, {fix}"
        )


def check_run(shards_dir: str | Path, cfg: TrainConfig, world_size: int, device: str | None = None) -> dict[str, Any]:
    """Every check that needs no model: shards, tokenizer, batch fit, FP8. Returns the manifest."""
    manifest = load_manifest(shards_dir)
    check_tokenizer(shards_dir, manifest)
    check_windows(shards_dir, manifest, cfg, world_size)
    if cfg.fp8:
        from model import fp8

        if device is None:
            fp8.float8_module()  # the launcher: torchao must import; each rank checks its GPU
        else:
            fp8.check_device(device)
    return manifest
