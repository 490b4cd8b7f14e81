"""Checks a training run makes before step 1, so a bad setting fails in seconds, not at the
first evaluation or checkpoint after minutes of steps.

  check_tokenizer   the shards folder's tokenizer.model is the one its shards were encoded with
  check_windows     each split holds one batch of block_size + 1 token windows for every rank
  check_settings    what needs no shards: the device and a GPU per rank, torchao for FP8; also
                    called by `crawl2gpt run` before its first stage (crawl2gpt/runner.py)
  check_run         all three, plus the rank's own GPU for FP8; called by the train stage's plan
                    (for the ranks it will launch) and by every rank before it builds the model

Each failure is one of pipeline/errors.py's types with the file, the numbers and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from model.config import TrainConfig
from model.tokenizer import shards_tokenizer
from pipeline.errors import ConfigError, InputError
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
    for split, fix in (
        ("train", "or give the shards stage more documents"),
        ("val", "or hold out more documents for validation (shards.val_fraction)"),
    ):
        found = largest_shard_windows(manifest, split, cfg.block_size)
        if found is None or found[0] >= group:
            continue
        windows, tokens = found
        raise InputError(
            f"the {split!r} shards of {shards_dir} cannot fill one batch: "
            f"the largest holds {tokens} tokens = {windows} windows of block_size {cfg.block_size} + 1, "
            f"a batch needs train.batch_size {cfg.batch_size}{ranks} = {group} windows "
            f"({group * (cfg.block_size + 1)} tokens). Lower train.batch_size or train.block_size, {fix}"
        )


def check_device(cfg: TrainConfig, world_size: int) -> None:
    """train.device names a device this machine has, and a CUDA run has one GPU per rank: else
    the model's first move to the device, or torchrun's second rank, fails after the data stages.
    torch is imported only when the answer needs it (auto on one process falls back to the CPU)."""
    if cfg.device == "cpu" or (cfg.device == "auto" and world_size == 1):
        return
    import torch

    try:
        auto = "cuda" if torch.cuda.is_available() else "cpu"
        kind = torch.device(cfg.device).type if cfg.device != "auto" else auto
    except RuntimeError as err:
        raise ConfigError(
            f"train.device={cfg.device!r} is not a device PyTorch knows ({err}); use auto, cpu, cuda or cuda:N"
        ) from None
    if kind == "cuda":
        gpus = torch.cuda.device_count()  # counts without initialising CUDA (forked workers stay usable)
        if gpus == 0:
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise ConfigError(
                f"train.device={cfg.device!r} but PyTorch ({torch.__version__}, {build}) sees no CUDA GPU; "
                "set train.device=auto (or cpu)"
            )
        index = torch.device(cfg.device).index if cfg.device != "auto" else None
        if world_size == 1 and index is not None and index >= gpus:
            raise ConfigError(
                f"train.device={cfg.device!r} but this machine has {gpus} GPU(s), cuda:0 to cuda:{gpus - 1}; "
                "pick one of them"
            )
        if world_size > gpus:
            raise ConfigError(
                f"train.nproc_per_node={world_size} starts one process per GPU but this machine has {gpus}; "
                f"set train.nproc_per_node to {gpus} or fewer"
            )
    elif kind != "cpu" and not getattr(getattr(torch, kind, None), "is_available", lambda: True)():
        raise ConfigError(
            f"train.device={cfg.device!r} is not available on this machine; set train.device=auto (or cpu)"
        )


def check_settings(cfg: TrainConfig, world_size: int) -> None:
    """What the train stage can check before its shards exist (model shapes are TrainConfig's own
    validators): the device and GPUs per rank, torchao for FP8 (each rank checks its GPU's FP8 support)."""
    check_device(cfg, world_size)
    if cfg.fp8:
        from model import fp8

        fp8.float8_module()


def check_run(shards_dir: str | Path, cfg: TrainConfig, world_size: int, device: str | None = None) -> dict[str, Any]:
    """Every check that needs no model: settings, shards, tokenizer, batch fit, FP8. Returns the manifest.
    `device` is a rank's own device (its GPU must do FP8); None in the launcher, which checks the settings."""
    if device is None:
        check_settings(cfg, world_size)
    elif cfg.fp8:
        from model import fp8

        fp8.check_device(device)
    manifest = load_manifest(shards_dir)
    check_tokenizer(shards_dir, manifest)
    check_windows(shards_dir, manifest, cfg, world_size)
    return manifest
