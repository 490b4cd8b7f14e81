"""The state of one training run, and its checkpoints: what model/train.py's loop steps.

`Run` builds the model (the same initial weights on every rank), the loaders of the train and val
splits, the precision setup and, after the model is wrapped for DDP/FSDP, the optimizer. It saves
a checkpoint (model/checkpoint.py: weights, optimizer moments, loader position, RNG states, the
tokenizer) and resumes from the newest compatible one: a checkpoint of another architecture,
tokenizer or number of ranks is moved aside, not loaded.
"""

from __future__ import annotations

import logging
import shutil
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from model import checkpoint as ckpt_io
from model import distributed, preflight
from model.bits_per_byte import tokens_per_byte
from model.config import TrainConfig
from model.data import TokenWindows, shard_paths
from model.gpt_config import GPTConfig
from model.optimizers import OptimizerSet, build_optimizer
from model.tokenizer import shards_tokenizer
from model.training import build_model, precision_setup, use_compile
from pipeline.stage import sha256_file

log = logging.getLogger("crawl2gpt.train")


class Run:
    """What one training run holds: model, optimizer, loaders, step, outputs; the loop is model/train.py's."""

    def __init__(self, shards_dir: Path, out_dir: Path, cfg: TrainConfig, world: distributed.World):
        self.shards_dir, self.out_dir, self.cfg, self.world = Path(shards_dir), Path(out_dir), cfg, world
        self.manifest = preflight.check_run(shards_dir, cfg, world.world_size, world.device)
        self.eot_id = self.manifest.get("eot_id")
        self.config = cfg.gpt_config(int(self.manifest["vocab_size"])).to_dict()
        torch.manual_seed(cfg.seed)  # same initial weights on every rank
        self.raw = build_model(self.config, cfg.arch).to(world.device)
        self.fp8_layers = fp8_convert(self.raw) if cfg.fp8 else []
        self.optimizer: OptimizerSet | None = None  # made by make_optimizer(), after wrapping
        self.pending_optimizer: dict[str, Any] | None = None
        self.autocast, self.scaler, self.precision = precision_setup(cfg.precision, world.device, cfg.tf32)
        if distributed.fsdp_casts_params(cfg, world, self.precision):  # FSDP2 hands the blocks bf16 weights
            self.autocast = nullcontext
        self.compiled = use_compile(cfg.compile, world.device)
        loader_args = dict(
            block_size=cfg.block_size,
            batch_size=cfg.batch_size,
            rank=world.rank,
            world_size=world.world_size,
            seed=cfg.seed,
        )
        self.train_loader = TokenWindows(shards_dir, "train", **loader_args)
        self.val_loader = TokenWindows(shards_dir, "val", **loader_args) if shard_paths(shards_dir, "val") else None
        self.val_start = self.val_loader.state_dict() if self.val_loader else None
        self.val_tokens_per_byte = tokens_per_byte(self.manifest, "val")  # for validation bits per byte
        self.tokenizer = shards_tokenizer(shards_dir, self.manifest)
        if self.tokenizer is None:
            log.warning("%s has no tokenizer.model: samples are skipped", shards_dir)
        self.step = 0
        self.resumed_from: str | None = None
        self.tokens_per_step = cfg.batch_size * cfg.block_size * cfg.grad_accum_steps * world.world_size

    def state(self) -> dict[str, Any]:
        tok = self.shards_dir / "tokenizer.model"
        return {
            "model_config": self.config,
            "arch": self.cfg.arch,
            "train_config": self.cfg.model_dump(mode="json"),
            "loader": self.train_loader.state_dict(),
            "world_size": self.world.world_size,
            "eot_id": self.eot_id,
            "tokenizer_sha256": sha256_file(tok) if tok.is_file() else None,
            "shards_dir": str(self.shards_dir),
            "grad_scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
        }

    def save(self) -> None:
        """Rank 0 writes the checkpoint; under FSDP every rank first helps gather the full tensors."""
        model_state, optimizer_state = distributed.full_state(self.raw, self.optimizer)
        rng = distributed.rng_states(self.world)
        if not self.world.is_main:
            return
        path = ckpt_io.save_checkpoint(
            self.out_dir / "checkpoints",
            self.step,
            model_state,
            optimizer_state,
            self.state(),
            ckpt_io.tied_names(self.raw),
            rng,
            keep=self.cfg.keep_checkpoints,
        )
        tok = self.shards_dir / "tokenizer.model"
        if tok.is_file():  # a checkpoint folder is enough to generate text
            shutil.copyfile(tok, path / "tokenizer.model")

    def try_resume(self) -> None:
        """Restore weights, loader position, RNG and step; the optimizer state waits for `make_optimizer`."""
        root = self.out_dir / "checkpoints"
        found = ckpt_io.latest_checkpoint(root)
        if found is None:
            return
        state = ckpt_io.read_state(found)
        reason = self._incompatible(state)
        if reason:
            aside = root.with_name(f"checkpoints.incompatible-{int(time.time())}")
            log.warning("not resuming from %s (%s); moved it aside to %s", found, reason, aside)
            distributed.barrier(self.world)
            if self.world.is_main:
                root.rename(aside)
            return
        ckpt_io.load_model_weights(found, self.raw)
        self.pending_optimizer = ckpt_io.load_optimizer_state(found, state)
        self.train_loader.load_state_dict(state["loader"])
        if state.get("grad_scaler") and self.scaler.is_enabled():  # fp16: keep the loss scale it had found
            self.scaler.load_state_dict(state["grad_scaler"])
        ckpt_io.restore_rng(found, self.world.rank)
        self.step, self.resumed_from = int(state["step"]), str(found)
        log.info("resumed from %s at step %d", found, self.step)

    def open_shards(self) -> None:
        """Load, and so check against the manifest, the shards step 1 and the first evaluation read
        (after a resume: those at the restored position): a damaged one fails before any step."""
        for loader in (self.train_loader, self.val_loader):
            if loader is not None:
                loader.open_current_shard()

    def make_optimizer(self) -> None:
        """After wrapping (FSDP2 swaps in sharded parameters), so the optimizer steps the real ones."""
        self.optimizer = build_optimizer(self.raw, self.cfg, self.world.device)
        if self.pending_optimizer is not None:
            scales = [group["lr_scale"] for group in self.optimizer.param_groups]
            distributed.load_optimizer_state(self.raw, self.optimizer, self.pending_optimizer)
            for group, scale in zip(self.optimizer.param_groups, scales):  # from this run's config (older
                group["lr_scale"] = scale  # checkpoints have none; muon_lr may have been changed since)
            self.pending_optimizer = None

    def _incompatible(self, state: dict[str, Any]) -> str | None:
        saved = state.get("model_config")  # compared as GPTConfigs: a field added since (rope_base) has its default
        same_model = saved is not None and GPTConfig.from_dict(saved) == GPTConfig.from_dict(self.config)
        if not same_model or state.get("arch") != self.cfg.arch:
            return "model architecture differs"
        tok = self.shards_dir / "tokenizer.model"
        if state.get("tokenizer_sha256") and tok.is_file() and state["tokenizer_sha256"] != sha256_file(tok):
            return "the shards' tokenizer differs from the one the checkpoint was trained with"
        saved_optimizer = state.get("train_config", {}).get("optimizer", "adamw")
        if saved_optimizer != self.cfg.optimizer:  # AdamW's moments are no Muon momentum, nor the other way
            return f"trained with train.optimizer={saved_optimizer}, now {self.cfg.optimizer}"
        if state.get("world_size") != self.world.world_size:
            return f"saved with {state.get('world_size')} ranks, now {self.world.world_size}"
        try:
            self.train_loader.load_state_dict(state["loader"])
        except (ValueError, KeyError) as err:
            return f"loader position does not fit: {err}"
        return None


def fp8_convert(model: torch.nn.Module) -> list[str]:
    from model import fp8

    layers = fp8.convert(model)
    log.info("FP8 training: %d linear layers converted (embedding and lm_head stay bf16)", len(layers))
    return layers
