"""Pretraining loop and the `train` stage: shards folder in, checkpoints + metrics out.

The loop follows nanoGPT's train.py: AdamW with decay/no-decay groups (fused on CUDA), linear
warmup then cosine decay to min_lr, gradient accumulation, clipping, BF16 autocast on CUDA
(FP16 + GradScaler as an option; CPU always runs FP32), TF32, torch.compile on CUDA by default,
FP8 linear layers as an option (model/fp8.py). Everything that can be checked without a model is
checked before step 1 (model/preflight.py).
Every eval_interval steps: validation loss and perplexity, and a generated sample.
A step's loss and gradient norm are read one step late: the host queues step n + 1 before it
waits for step n's numbers, so the GPU never idles while the host logs (tokens/s per row and in
the summary count training steps only, not evaluation or checkpoint time).
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
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from model import checkpoint as ckpt_io
from model import distributed, preflight
from model.data import TokenWindows, shard_paths
from model.generate import sample
from model.profiling import StepProfiler
from model.tokenizer import shards_tokenizer
from model.gpt_config import GPTConfig
from model.training import (MetricsLog, attention_kernels, build_model, cosine_lr, make_optimizer, peak_memory_mb,
                            plot_losses, precision_setup, read_metrics, use_compile)
from model.config import ModelRun, ModelSections, TrainConfig
from pipeline import errors
from pipeline.errors import Crawl2GPTError, InputError
from pipeline.stage import PartResult, Stage, StageStats, sha256_file

log = logging.getLogger("crawl2gpt.train")


# --------------------------------------------------------------------------- building blocks


# --------------------------------------------------------------------------- the run's state


class Run:
    """What one training run holds: model, optimizer, loaders, outputs; the loop is `train`."""

    def __init__(self, shards_dir: Path, out_dir: Path, cfg: TrainConfig, world: distributed.World):
        self.shards_dir, self.out_dir, self.cfg, self.world = Path(shards_dir), Path(out_dir), cfg, world
        self.manifest = preflight.check_run(shards_dir, cfg, world.world_size, world.device)
        self.eot_id = self.manifest.get("eot_id")
        self.config = cfg.gpt_config(int(self.manifest["vocab_size"])).to_dict()
        torch.manual_seed(cfg.seed)  # same initial weights on every rank
        self.raw = build_model(self.config, cfg.arch).to(world.device)
        self.fp8_layers = fp8_convert(self.raw) if cfg.fp8 else []
        self.optimizer: torch.optim.Optimizer | None = None  # made by make_optimizer(), after wrapping
        self.pending_optimizer: dict[str, Any] | None = None
        self.autocast, self.scaler, self.precision = precision_setup(cfg.precision, world.device, cfg.tf32)
        if distributed.fsdp_casts_params(cfg, world, self.precision):  # FSDP2 hands the blocks bf16 weights
            self.autocast = nullcontext
        self.compiled = use_compile(cfg.compile, world.device)
        loader_args = dict(block_size=cfg.block_size, batch_size=cfg.batch_size, rank=world.rank,
                           world_size=world.world_size, seed=cfg.seed)
        self.train_loader = TokenWindows(shards_dir, "train", **loader_args)
        self.val_loader = TokenWindows(shards_dir, "val", **loader_args) if shard_paths(shards_dir, "val") else None
        self.val_start = self.val_loader.state_dict() if self.val_loader else None
        self.tokenizer = shards_tokenizer(shards_dir, self.manifest)
        if self.tokenizer is None:
            log.warning("%s has no tokenizer.model: samples are skipped", shards_dir)
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

    def open_shards(self) -> None:
        """Load, and so check against the manifest, the shards step 1 and the first evaluation read
        (after a resume: those at the restored position): a damaged one fails before any step."""
        for loader in (self.train_loader, self.val_loader):
            if loader is not None:
                loader.open_current_shard()

    def make_optimizer(self) -> None:
        """After wrapping (FSDP2 swaps in sharded parameters), so the optimizer steps the real ones."""
        self.optimizer = make_optimizer(self.raw, self.cfg, self.cfg.learning_rate, self.world.device)
        if self.pending_optimizer is not None:
            distributed.load_optimizer_state(self.raw, self.optimizer, self.pending_optimizer)
            self.pending_optimizer = None

    def _incompatible(self, state: dict[str, Any]) -> str | None:
        saved = state.get("model_config")  # compared as GPTConfigs: a field added since (rope_base) has its default
        if saved is None or GPTConfig.from_dict(saved) != GPTConfig.from_dict(self.config) or state.get("arch") != self.cfg.arch:
            return "model architecture differs"
        tok = self.shards_dir / "tokenizer.model"
        if state.get("tokenizer_sha256") and tok.is_file() and state["tokenizer_sha256"] != sha256_file(tok):
            return "the shards' tokenizer differs from the one the checkpoint was trained with"
        if state.get("world_size") != self.world.world_size:
            return f"saved with {state.get('world_size')} ranks, now {self.world.world_size}"
        try:
            self.train_loader.load_state_dict(state["loader"])
        except (ValueError, KeyError) as err:
            return f"loader position does not fit: {err}"
        return None


# --------------------------------------------------------------------------- steps


class Step:
    """One optimizer step's numbers, still on the device until `values()` waits for them.

    On CUDA they are copied to pinned host memory as soon as the step is queued, and an event marks
    the copy: `values()` then waits for this step only. `float(loss)` would queue its copy behind
    everything queued since (the next step, which the loop queues before reading this one) and wait
    for all of it; the GPU then ran dry at every step boundary (9 ms of a 54 ms step, trace `j3`)."""

    def __init__(self, number: int, loss: torch.Tensor, grad_norm: torch.Tensor, lr: float):
        self.number, self.lr = number, lr
        self.numbers = torch.stack([loss.float().reshape(()), grad_norm.float().reshape(()).to(loss.device)])
        self.ready = None
        if self.numbers.is_cuda:
            host = torch.empty(2, dtype=torch.float32, pin_memory=True)
            self.numbers = host.copy_(self.numbers, non_blocking=True)
            self.ready = torch.cuda.Event()
            self.ready.record()

    def values(self) -> tuple[float, float]:
        """(mean loss over ranks and micro-batches, gradient norm): waits for the step to finish."""
        if self.ready is not None:
            self.ready.synchronize()
        loss, norm = self.numbers.tolist()
        return loss, norm


def train_step(run: Run, model: torch.nn.Module) -> Step:
    """Queue one optimizer step over grad_accum_steps micro-batches; nothing here waits for the device."""
    cfg, device = run.cfg, run.world.device
    lr = cosine_lr(run.step, cfg.learning_rate, cfg.min_lr, cfg.warmup_steps, cfg.max_steps)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    model.train()
    total = torch.zeros((), device=device)
    for micro in range(cfg.grad_accum_steps):
        x, y = to_device(run.train_loader.next_batch(), device)
        with distributed.grad_sync(model, micro == cfg.grad_accum_steps - 1), run.autocast(), attention_kernels(device):
            _, loss = model(x, y)
        total += loss.detach()
        run.scaler.scale(loss / cfg.grad_accum_steps).backward()
    run.scaler.unscale_(run.optimizer)
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip) if cfg.grad_clip > 0 else torch.zeros(())
    if hasattr(norm, "full_tensor"):  # FSDP2: a DTensor; its full value is queued here, read later
        norm = norm.full_tensor()
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    run.step += 1
    return Step(run.step, distributed.mean_tensor(total / cfg.grad_accum_steps, run.world), norm.detach(), lr)


def to_device(batch: tuple[torch.Tensor, torch.Tensor], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Copy a batch to the device without making the host wait (pinned memory on CUDA).

    The loader's x and y are strided views of one window array; copying a strided tensor makes a
    contiguous pageable clone first, and a copy from pageable memory waits for the whole stream:
    the host then stopped at every step until the previous step ended, and the GPU sat idle 6.9 ms
    of each 52 ms step (docs/benchmarks-train.md, trace `g1`). Contiguous before pinning avoids both."""
    if device.startswith("cuda"):
        return tuple(t.contiguous().pin_memory().to(device, non_blocking=True) for t in batch)
    return batch


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
        x, y = to_device(run.val_loader.next_batch(), run.world.device)
        with run.autocast(), attention_kernels(run.world.device):
            _, loss = model(x, y)
        total += loss.float()
    model.train()
    return distributed.mean(total / batches, run.world)


def generate_sample(run: Run) -> str | None:
    """A short continuation of sample_prompt; its own generator, so training RNG is untouched."""
    if run.tokenizer is None or run.cfg.sample_tokens == 0 or (run.world.distributed and run.cfg.parallel == "fsdp"):
        return None
    generator = torch.Generator().manual_seed(run.cfg.seed + run.step)
    prompt = run.tokenizer.encode(run.cfg.sample_prompt) if run.cfg.sample_prompt else []
    with eager():  # blocks compiled in place (compile_scope=blocks) would recompile for every length
        ids = sample(run.raw, prompt, run.cfg.sample_tokens, run.cfg.sample_temperature, run.cfg.sample_top_k or None,
                     None, run.eot_id, generator)
    return run.cfg.sample_prompt + run.tokenizer.decode(ids)


def eager():
    """Run compiled modules as plain Python (generation needs no compiled graph)."""
    set_stance = getattr(torch.compiler, "set_stance", None)
    return set_stance("force_eager") if set_stance else nullcontext()


def fp8_convert(model: torch.nn.Module) -> list[str]:
    from model import fp8

    layers = fp8.convert(model)
    log.info("FP8 training: %d linear layers converted (embedding and lm_head stay bf16)", len(layers))
    return layers


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
    run.open_shards()
    if run.resumed_from is None:  # dropout masks differ per rank (a resume restores the saved generator instead)
        torch.manual_seed(cfg.seed + world.rank)
    model = distributed.prepare(run.raw, world, cfg, run.precision)
    if run.compiled:
        log.info("torch.compile on (train.compile=%s, scope %s); the first step compiles", cfg.compile,
                 distributed.compile_scope(cfg, world))
    run.make_optimizer()
    loop = Loop(run, model, Recorder(out_dir, run.step, world.is_main), _progress_bar(run, progress and world.is_main), on_step)
    ahead = reads_a_step_late(world.device)
    profiler = StepProfiler(out_dir, cfg.profile_steps, world.is_main, world.device)
    queued: Step | None = None
    while run.step < cfg.max_steps:
        step = train_step(run, model)  # queued on the device
        profiler.step_done()
        if queued is not None:
            loop.report(queued)  # the previous step's numbers, read while this one runs
        queued = step
        if not ahead or loop.at_boundary(step.number):  # evaluation and checkpoint need the model as of this step
            loop.report(queued)
            queued = None
    loop.close()
    profiler.close()
    if world.is_main:
        plot_losses(out_dir, f"{cfg.arch} {run.config['n_layer']}x{run.config['n_embd']}")
    return _summary(run, out_dir, loop)


def reads_a_step_late(device: str) -> bool:
    """Only an asynchronous device gains from reading a step's numbers one step late: a CPU has
    finished the step when train_step returns (and reading late would blur each row's timing)."""
    return device.startswith("cuda")


class StepClock:
    """Wall time per training step, taken when the host sees each step finish; evaluation,
    samples and checkpoints are paused out. The first step of a process (compilation, warm-up)
    is kept apart from the rest."""

    def __init__(self):
        self.last = time.perf_counter()
        self.first_seconds: float | None = None
        self.seconds, self.steps = 0.0, 0

    def lap(self) -> float:
        now = time.perf_counter()
        seconds, self.last = now - self.last, now
        if self.first_seconds is None:
            self.first_seconds = seconds
        else:
            self.seconds, self.steps = self.seconds + seconds, self.steps + 1
        return seconds

    @contextmanager
    def paused(self):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.last += time.perf_counter() - started


class Loop:
    """What happens once a step's numbers are in: its metrics row, evaluation, checkpoint, progress."""

    def __init__(self, run: Run, model: torch.nn.Module, recorder: Recorder, bar, on_step):
        self.run, self.model, self.recorder, self.bar, self.on_step = run, model, recorder, bar, on_step
        self.clock = StepClock()
        self.tokens_per_step = run.cfg.batch_size * run.cfg.block_size * run.cfg.grad_accum_steps * run.world.world_size
        self.loss = self.val_loss = self.sample_text = None

    def at_boundary(self, number: int) -> bool:
        cfg = self.run.cfg
        return number % cfg.eval_interval == 0 or number % cfg.checkpoint_interval == 0 or number == cfg.max_steps

    def report(self, step: Step) -> None:
        cfg, last = self.run.cfg, step.number == self.run.cfg.max_steps
        self.loss, norm = step.values()
        row = {"step": step.number, "loss": self.loss, "lr": step.lr, "grad_norm": norm,
               "tokens_per_s": self.tokens_per_step / self.clock.lap()}
        if step.number % cfg.eval_interval == 0 or last:
            with self.clock.paused():
                self.val_loss, self.sample_text = _eval_and_sample(self.run, self.model, self.recorder)
            if self.val_loss is not None:  # no val shards: no eval columns (readers take their presence as an eval)
                row.update(val_loss=self.val_loss, val_perplexity=math.exp(self.val_loss))
        self.recorder.write(row)
        if step.number % cfg.checkpoint_interval == 0 or last:
            with self.clock.paused():
                self.run.save()
        if self.bar:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{self.loss:.3f}", val=f"{self.val_loss:.3f}" if self.val_loss is not None else "-")
        if self.on_step:
            self.on_step(step.number, self.loss)

    def tokens_per_s(self) -> float | None:
        """Training throughput of this process's steps after the first (no evaluation, no checkpoints)."""
        return self.tokens_per_step * self.clock.steps / self.clock.seconds if self.clock.seconds else None

    def close(self) -> None:
        if self.bar:
            self.bar.close()
        self.recorder.close()


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


def _summary(run: Run, out_dir: Path, loop: Loop) -> dict[str, Any]:
    loss, val_loss = loop.loss, loop.val_loss
    rows = read_metrics(out_dir) if run.world.is_main else []
    if loss is None and rows:  # nothing left to train: report the finished run's last figures
        loss = next((r["loss"] for r in reversed(rows) if "loss" in r), None)
        val_loss = next((r["val_loss"] for r in reversed(rows) if r.get("val_loss") is not None), None)
    memory = {key: distributed.max_over_ranks(value, run.world) for key, value in peak_memory_mb(run.world.device).items()}
    return {
        "final_train_loss": loss,
        "val_loss": val_loss,
        "val_perplexity": math.exp(val_loss) if val_loss is not None else None,
        "tokens_per_s": loop.tokens_per_s(),
        "first_step_s": loop.clock.first_seconds,
        "steps": run.step,
        "tokens_seen": run.step * run.cfg.batch_size * run.cfg.block_size * run.cfg.grad_accum_steps * run.world.world_size,
        "params": run.raw.num_params(),
        "flops_per_token": run.raw.flops_per_token(),
        "arch": run.cfg.arch,
        "device": run.world.device,
        "precision": run.precision,
        "compiled": run.compiled,
        "fp8": bool(run.fp8_layers),
        "parallel": run.cfg.parallel if run.world.distributed else None,
        "world_size": run.world.world_size,
        **memory,  # the fullest rank's peak
        "resumed_from": run.resumed_from,
        "sample": loop.sample_text,
    }


# --------------------------------------------------------------------------- the stage


class TrainStage(Stage):
    """Stage `train`: inputs = [shards folder]; one part (the run); writes in place (atomic=False)."""

    name = "train"
    config_sections = ("train",)
    NOT_IN_KEY = ("profile_steps",)  # a trace changes no weight: turning it on must not retrain

    def config_slice(self, cfg: ModelRun) -> dict[str, Any]:
        train = cfg.train.model_dump(mode="json")
        return {"train": {k: v for k, v in train.items() if k not in self.NOT_IN_KEY}}

    def check_inputs(self, inputs: Sequence[str], cfg: ModelRun) -> None:
        """One shards folder that can be trained on as configured, by the ranks the stage will
        launch: `crawl2gpt train` checks it before Prefect starts, the plan before torchrun does."""
        if len(inputs) != 1:
            raise InputError(f"train takes one shards folder, got {len(inputs)} inputs: {list(inputs)}")
        preflight.check_run(inputs[0], cfg.train, world_size=cfg.train.nproc_per_node)

    def plan(self, inputs: Sequence[str], cfg: ModelRun) -> list[str]:
        self.check_inputs(inputs, cfg)
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
        failed = f"torchrun with {cfg.train.nproc_per_node} processes failed (exit {done.returncode}):\n{done.stderr[-4000:]}"
        raise rank_error(done.stderr) or RuntimeError(failed)
    return json.loads(done.stdout.strip().splitlines()[-1])


# How a rank under torchrun hands one of our errors (a damaged shard, ...) to the launcher, which
# raises it again as itself: the user reads its message, not torchrun's traceback of every rank.
RANK_ERROR = "crawl2gpt-rank-error: "


def rank_error(stderr: str) -> Crawl2GPTError | None:
    """The first of our errors a rank reported on stderr (see `main`), as an exception of its type."""
    for line in stderr.splitlines():
        if RANK_ERROR not in line:
            continue
        try:  # ranks write at once: another rank's line may follow on the same line
            reported, _ = json.JSONDecoder().raw_decode(line.split(RANK_ERROR, 1)[1])
        except json.JSONDecodeError:
            continue
        kind = getattr(errors, reported.get("type", ""), None)
        if isinstance(kind, type) and issubclass(kind, Crawl2GPTError):
            return kind(reported["message"])
    return None


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
    try:
        summary = train(args.shards, args.out, cfg, progress=not args.quiet)
    except Crawl2GPTError as err:
        print(RANK_ERROR + json.dumps({"type": type(err).__name__, "message": str(err)}), file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
