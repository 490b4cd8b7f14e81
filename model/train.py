"""Pretraining loop and the `train` stage: shards folder in, checkpoints + metrics out.

The loop follows nanoGPT's train.py: AdamW with decay/no-decay groups (fused on CUDA), linear
warmup then cosine decay to min_lr, gradient accumulation, clipping, BF16 autocast on CUDA
(FP16 + GradScaler as an option; CPU always runs FP32), TF32, optional torch.compile.
Every eval_interval steps: validation loss and perplexity, and a generated sample.
Outputs in out_dir: checkpoints/ (model.safetensors + state.json ...), metrics.jsonl,
samples.txt, loss.png, tb/ (TensorBoard, when installed).

A run resumes from the newest compatible checkpoint in out_dir/checkpoints: weights,
optimizer moments, step, loader position and RNG states are restored, so on CPU the losses
after a resume equal those of an uninterrupted run (tests/test_train.py, tests/test_ddp.py).

Run alone: `python -m model.train --shards runs/x/shards --out runs/x/train train.max_steps=300`
or under torchrun for DDP/FSDP (model/distributed.py).
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from model import checkpoint as ckpt_io
from model import distributed
from model.data import TokenWindows, read_shards_manifest, shard_paths
from model.generate import sample
from model.gpt import param_groups
from model.training import MetricsLog, build_model, cosine_lr, plot_losses, precision_setup, read_metrics
from model.config import ModelRun, ModelSections, TrainConfig
from pipeline.errors import InputError
from pipeline.stage import PartResult, StageStats, sha256_file

log = logging.getLogger("crawl2gpt.train")
MODEL_FIELDS = ("n_layer", "n_head", "n_embd", "block_size", "dropout", "bias", "norm", "mlp", "positions", "attention", "residual", "fused_loss")


# --------------------------------------------------------------------------- building blocks


def model_config(cfg: TrainConfig, vocab_size: int) -> dict[str, Any]:
    return dict({k: getattr(cfg, k) for k in MODEL_FIELDS}, vocab_size=vocab_size)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: str) -> torch.optim.Optimizer:
    return torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.learning_rate, betas=(cfg.beta1, cfg.beta2),
                             fused=device.startswith("cuda"))


def load_tokenizer(shards_dir: Path):
    path = Path(shards_dir) / "tokenizer.model"
    if not path.is_file():
        log.warning("%s has no tokenizer.model: samples are skipped", shards_dir)
        return None
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=str(path))


# --------------------------------------------------------------------------- the run's state


class Run:
    """What one training run holds: model, optimizer, loaders, outputs; the loop is `train`."""

    def __init__(self, shards_dir: Path, out_dir: Path, cfg: TrainConfig, world: distributed.World):
        self.shards_dir, self.out_dir, self.cfg, self.world = Path(shards_dir), Path(out_dir), cfg, world
        self.manifest = read_shards_manifest(shards_dir)
        self.eot_id = self.manifest.get("eot_id")
        self.config = model_config(cfg, int(self.manifest["vocab_size"]))
        torch.manual_seed(cfg.seed)  # same initial weights on every rank
        self.raw = build_model(self.config, cfg.arch).to(world.device)
        self.optimizer: torch.optim.Optimizer | None = None  # made by make_optimizer(), after wrapping
        self.pending_optimizer: dict[str, Any] | None = None
        self.autocast, self.scaler, self.precision = precision_setup(cfg.precision, world.device, cfg.tf32)
        loader_args = dict(block_size=cfg.block_size, batch_size=cfg.batch_size, rank=world.rank,
                           world_size=world.world_size, seed=cfg.seed)
        self.train_loader = TokenWindows(shards_dir, "train", **loader_args)
        self.val_loader = TokenWindows(shards_dir, "val", **loader_args) if shard_paths(shards_dir, "val") else None
        self.val_start = self.val_loader.state_dict() if self.val_loader else None
        self.tokenizer = load_tokenizer(shards_dir)
        self.step = 0
        self.resumed_from: str | None = None

    def state(self) -> dict[str, Any]:
        tok = self.shards_dir / "tokenizer.model"
        return {"model_config": self.config, "arch": self.cfg.arch, "train_config": self.cfg.model_dump(mode="json"),
                "loader": self.train_loader.state_dict(), "world_size": self.world.world_size, "eot_id": self.eot_id,
                "tokenizer_sha256": sha256_file(tok) if tok.is_file() else None, "shards_dir": str(self.shards_dir),
                "grad_scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None}

    def save(self) -> None:
        """Rank 0 writes the checkpoint; under FSDP every rank first helps gather the full tensors."""
        model_state, optimizer_state = distributed.full_state(self.raw, self.optimizer)
        rng = distributed.rng_states(self.world)
        if not self.world.is_main:
            return
        path = ckpt_io.save_checkpoint(self.out_dir / "checkpoints", self.step, model_state, optimizer_state, self.state(),
                                       ckpt_io.tied_names(self.raw), rng, keep=self.cfg.keep_checkpoints)
        tok = self.shards_dir / "tokenizer.model"
        if tok.is_file():  # a checkpoint folder is enough to generate text
            shutil.copyfile(tok, path / "tokenizer.model")

    def try_resume(self) -> None:
        """Restore weights, loader position, RNG and step; the optimizer state waits for `restore_optimizer`."""
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

    def make_optimizer(self) -> None:
        """After wrapping (FSDP2 swaps in sharded parameters), so the optimizer steps the real ones."""
        self.optimizer = make_optimizer(self.raw, self.cfg, self.world.device)
        if self.pending_optimizer is not None:
            distributed.load_optimizer_state(self.raw, self.optimizer, self.pending_optimizer)
            self.pending_optimizer = None

    def _incompatible(self, state: dict[str, Any]) -> str | None:
        if state.get("model_config") != self.config or state.get("arch") != self.cfg.arch:
            return "model architecture differs"
        if state.get("world_size") != self.world.world_size:
            return f"saved with {state.get('world_size')} ranks, now {self.world.world_size}"
        try:
            self.train_loader.load_state_dict(state["loader"])
        except (ValueError, KeyError) as err:
            return f"loader position does not fit: {err}"
        return None


# --------------------------------------------------------------------------- steps


def train_step(run: Run, model: torch.nn.Module) -> tuple[float, float, float]:
    """One optimizer step over grad_accum_steps micro-batches -> (mean loss, grad norm, lr)."""
    cfg, device = run.cfg, run.world.device
    lr = cosine_lr(run.step, cfg.learning_rate, cfg.min_lr, cfg.warmup_steps, cfg.max_steps)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    model.train()
    total = torch.zeros((), device=device)
    for micro in range(cfg.grad_accum_steps):
        x, y = run.train_loader.next_batch()
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with distributed.grad_sync(model, micro == cfg.grad_accum_steps - 1), run.autocast():
            _, loss = model(x, y)
        total += loss.detach()
        run.scaler.scale(loss / cfg.grad_accum_steps).backward()
    run.scaler.unscale_(run.optimizer)
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip) if cfg.grad_clip > 0 else torch.zeros(())
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    run.step += 1
    return distributed.mean(total / cfg.grad_accum_steps, run.world), float(norm), lr


@torch.no_grad()
def evaluate(run: Run, model: torch.nn.Module) -> float | None:
    """Mean validation loss over eval_batches batches, always the same ones (the split's start).

    The ranks share the batches (rank r takes chunks r, r + world, ...), so the figure is the
    same for any number of ranks when eval_batches divides evenly.
    """
    if run.val_loader is None:
        return None
    run.val_loader.load_state_dict(run.val_start)
    model.eval()
    total = torch.zeros((), device=run.world.device)
    batches = -(-run.cfg.eval_batches // run.world.world_size)
    for _ in range(batches):
        x, y = run.val_loader.next_batch()
        with run.autocast():
            _, loss = model(x.to(run.world.device), y.to(run.world.device))
        total += loss.float()
    model.train()
    return distributed.mean(total / batches, run.world)


def generate_sample(run: Run) -> str | None:
    """A short continuation of sample_prompt; its own generator, so training RNG is untouched."""
    if run.tokenizer is None or run.cfg.sample_tokens == 0 or (run.world.distributed and run.cfg.parallel == "fsdp"):
        return None
    generator = torch.Generator().manual_seed(run.cfg.seed + run.step)
    prompt = run.tokenizer.encode(run.cfg.sample_prompt) if run.cfg.sample_prompt else []
    ids = sample(run.raw, prompt, run.cfg.sample_tokens, run.cfg.sample_temperature, run.cfg.sample_top_k or None,
                 None, run.eot_id, generator)
    return run.cfg.sample_prompt + run.tokenizer.decode(ids)


# --------------------------------------------------------------------------- outputs


class Recorder:
    """metrics.jsonl, samples.txt and TensorBoard (rank 0 only)."""

    def __init__(self, out_dir: Path, resumed_step: int, enabled: bool):
        self.out_dir, self.enabled, self.tb = out_dir, enabled, None
        if not enabled:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        self.metrics = MetricsLog.of(out_dir)
        self.metrics.truncate(resumed_step)  # after a resume, forget rows the interrupted run wrote past the checkpoint
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out_dir / "tb"), purge_step=resumed_step + 1)
        except ImportError:
            log.info("tensorboard is not installed: metrics go to metrics.jsonl only")

    def write(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.metrics.append(row)
        if self.tb:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.tb.add_scalar(key, value, row["step"])

    def sample(self, step: int, text: str) -> None:
        if self.enabled:
            with open(self.out_dir / "samples.txt", "a") as fh:
                fh.write(f"--- step {step}\n{text}\n")

    def close(self) -> None:
        if self.tb:
            self.tb.close()


# --------------------------------------------------------------------------- the loop


def train(shards_dir, out_dir, train_cfg: TrainConfig, progress: bool = True,
          on_step: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Train (or resume) in out_dir; returns the run's summary (what the stage reports).

    `on_step(step, loss)` is called after each optimizer step (tests use it to interrupt a run).
    """
    world = distributed.init(train_cfg.device)
    try:
        return _train(Path(shards_dir), Path(out_dir), train_cfg, world, progress, on_step)
    finally:
        distributed.shutdown(world)


def _train(shards_dir: Path, out_dir: Path, cfg: TrainConfig, world: distributed.World, progress: bool,
           on_step: Callable[[int, float], None] | None) -> dict[str, Any]:
    run = Run(shards_dir, out_dir, cfg, world)
    run.try_resume()
    if run.resumed_from is None:  # dropout masks differ per rank (a resume restores the saved generator instead)
        torch.manual_seed(cfg.seed + world.rank)
    model = torch.compile(run.raw) if cfg.compile else run.raw
    model = distributed.wrap(model, world, cfg.parallel)
    run.make_optimizer()
    recorder = Recorder(out_dir, run.step, world.is_main)
    tokens_per_step = cfg.batch_size * cfg.block_size * cfg.grad_accum_steps * world.world_size
    bar = _progress_bar(run, progress and world.is_main)
    loss = val_loss = sample_text = None
    train_seconds, steps_timed = 0.0, 0
    while run.step < cfg.max_steps:
        started = time.perf_counter()
        loss, norm, lr = train_step(run, model)
        seconds = time.perf_counter() - started
        if run.step > 1 or run.resumed_from:  # the first step pays for compilation and warm-up
            train_seconds, steps_timed = train_seconds + seconds, steps_timed + 1
        row = {"step": run.step, "loss": loss, "lr": lr, "grad_norm": norm, "tokens_per_s": tokens_per_step / seconds}
        last = run.step == cfg.max_steps
        if run.step % cfg.eval_interval == 0 or last:
            val_loss, sample_text = _eval_and_sample(run, model, recorder)
            if val_loss is not None:  # no val shards: no eval columns (readers take their presence as an eval)
                row.update(val_loss=val_loss, val_perplexity=math.exp(val_loss))
        recorder.write(row)
        if run.step % cfg.checkpoint_interval == 0 or last:
            run.save()
        if bar:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", val=f"{val_loss:.3f}" if val_loss is not None else "-")
        if on_step:
            on_step(run.step, loss)
    if bar:
        bar.close()
    recorder.close()
    if world.is_main:
        plot_losses(out_dir, f"{cfg.arch} {run.config['n_layer']}x{run.config['n_embd']}")
    return _summary(run, out_dir, loss, val_loss, sample_text, tokens_per_step * steps_timed / train_seconds if train_seconds else None)


def _eval_and_sample(run: Run, model: torch.nn.Module, recorder: Recorder) -> tuple[float | None, str | None]:
    val_loss = evaluate(run, model)
    text = generate_sample(run) if run.world.is_main else None
    if text is not None:
        recorder.sample(run.step, text)
    return val_loss, text


def _progress_bar(run: Run, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=run.cfg.max_steps, initial=run.step, desc=f"train {run.cfg.arch}", file=sys.stderr, dynamic_ncols=True)


def _summary(run: Run, out_dir: Path, loss, val_loss, sample_text, tokens_per_s) -> dict[str, Any]:
    rows = read_metrics(out_dir) if run.world.is_main else []
    if loss is None and rows:  # nothing left to train: report the finished run's last figures
        loss = next((r["loss"] for r in reversed(rows) if "loss" in r), None)
        val_loss = next((r["val_loss"] for r in reversed(rows) if r.get("val_loss") is not None), None)
    return {
        "final_train_loss": loss,
        "val_loss": val_loss,
        "val_perplexity": math.exp(val_loss) if val_loss is not None else None,
        "tokens_per_s": tokens_per_s,
        "steps": run.step,
        "tokens_seen": run.step * run.cfg.batch_size * run.cfg.block_size * run.cfg.grad_accum_steps * run.world.world_size,
        "params": run.raw.num_params(),
        "arch": run.cfg.arch,
        "device": run.world.device,
        "precision": run.precision,
        "world_size": run.world.world_size,
        "resumed_from": run.resumed_from,
        "sample": sample_text,
    }


# --------------------------------------------------------------------------- the stage


class TrainStage:
    """Stage `train`: inputs = [shards folder]; one part (the run); writes in place (atomic=False)."""

    name = "train"
    config_sections = ("train",)

    def plan(self, inputs: Sequence[str], cfg: ModelRun) -> list[str]:
        if len(inputs) != 1:
            raise InputError(f"train takes one shards folder, got {len(inputs)} inputs: {list(inputs)}")
        read_shards_manifest(inputs[0])  # fail before any work if it is not a shards folder
        return [str(inputs[0])]

    def run_part(self, part: str, workdir: Path, cfg: ModelRun) -> PartResult:
        started = time.time()
        if cfg.train.nproc_per_node > 1 and "RANK" not in os.environ:
            summary = launch_torchrun(part, workdir, cfg)
        else:
            summary = train(part, workdir, cfg.train, progress=sys.stderr.isatty())
        outputs = ["metrics.jsonl", "loss.png", "checkpoints"]
        return PartResult(part=part, outputs=outputs, counts={"steps": summary["steps"], "tokens": summary["tokens_seen"]},
                          seconds=round(time.time() - started, 3), meta=summary)

    def finish(self, workdir: Path, results: list[PartResult], cfg: ModelRun) -> StageStats:
        summary = results[0].meta
        return StageStats(stage=self.name, docs_in=summary["tokens_seen"], docs_out=summary["steps"], extra=summary)


TRAIN = TrainStage()


def launch_torchrun(shards_dir: str, out_dir: Path, cfg: ModelRun) -> dict[str, Any]:
    """Train with `cfg.train.nproc_per_node` processes under torchrun (DDP or FSDP2), so a flow
    or `crawl2gpt train` uses every GPU of its machine. Rank 0 prints the summary last."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config_path = out_dir / "train-config.yaml"  # the exact config the ranks use, kept beside the outputs
    cfg.write(config_path)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={cfg.train.nproc_per_node}",
        "-m", "model.train", "--shards", str(shards_dir), "--out", str(out_dir), "--config", str(config_path), "--quiet",
    ]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")])))
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"torchrun with {cfg.train.nproc_per_node} processes failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Train a GPT (or the LSTM baseline) on a shards folder.")
    parser.add_argument("--shards", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--config", default=None, help="run config YAML (its train section is used)")
    parser.add_argument("overrides", nargs="*", help="train.field=value pairs")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = ModelSections.load(args.config, args.overrides).train
    summary = train(args.shards, args.out, cfg, progress=not args.quiet)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
