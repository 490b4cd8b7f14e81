"""Pretraining: the loop, read top to bottom as nanoGPT's train.py is; `train` is its entry.

The loop follows nanoGPT's train.py: AdamW with decay/no-decay groups (fused on CUDA), linear
warmup then cosine decay to min_lr, gradient accumulation, clipping, BF16 autocast on CUDA
(FP16 + GradScaler as an option; CPU always runs FP32), TF32, torch.compile on CUDA by default,
FP8 linear layers as an option (model/fp8.py). Everything that can be checked without a model is
checked before step 1 (model/preflight.py).
Every eval_interval steps: validation loss, perplexity and bits per byte (model/bits_per_byte.py),
and a generated sample.
A step's loss and gradient norm are read one step late on a GPU: the host queues step n + 1
before it waits for step n's numbers, so the GPU never idles while the host logs (tokens/s per
row and in the summary count training steps only, not evaluation or checkpoint time).
Outputs in out_dir: checkpoints/ (model.safetensors + state.json ...), metrics.jsonl,
samples.txt, loss.png, tb/ (TensorBoard, when installed).

A run resumes from the newest compatible checkpoint in out_dir/checkpoints: weights,
optimizer moments, step, loader position and RNG states are restored, so on CPU the losses
after a resume equal those of an uninterrupted run (tests/test_train.py, tests/test_ddp.py).

The rest of the trainer, one idea a module (as torchtitan lays it out):
  model/train_state.py    Run: model, optimizer, loaders, step; checkpoints saved and resumed
  model/train_metrics.py  Recorder (metrics.jsonl, samples, TensorBoard, progress bar), StepClock, summary
  model/train_stage.py    the `train` stage and its torchrun launcher (ranks run this module's `main`)

Run alone: `python -m model.train --shards runs/x/shards --out runs/x/train train.max_steps=300`
or under torchrun for DDP/FSDP (model/distributed.py).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from model import distributed
from model.bits_per_byte import from_mean_loss
from model.config import ModelSections, TrainConfig
from model.generate import sample
from model.profiling import StepProfiler
from model.train_metrics import Recorder, StepClock, summary
from model.train_state import Run
from model.training import attention_kernels, cosine_lr, plot_losses
from pipeline.disk_full import as_disk_full
from pipeline.errors import Crawl2GPTError

log = logging.getLogger("crawl2gpt.train")


# --------------------------------------------------------------------------- the loop


def train(
    shards_dir,
    out_dir,
    train_cfg: TrainConfig,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
    on_eval: Callable[[int, torch.nn.Module], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Train (or resume) in out_dir; returns the run's summary (what the stage reports).

    `on_step(step, loss)` is called after each optimizer step (tests use it to interrupt a run);
    `on_eval(step, model)` at each evaluation, its figures added to that step's row of
    metrics.jsonl (an ablation measures its common text there, model/ablation.py).
    """
    world = distributed.init(train_cfg.device)
    summary = _train(Path(shards_dir), Path(out_dir), train_cfg, world, progress, on_step, on_eval)
    # Only a rank that finished leaves the group together with the others. After an error it does
    # not: another rank may be waiting in a collective this one never joins (a barrier would then
    # wait out the 30-minute timeout), and torchrun stops the others once this one has exited.
    distributed.shutdown(world)
    return summary


def _train(
    shards_dir: Path,
    out_dir: Path,
    cfg: TrainConfig,
    world: distributed.World,
    progress: bool,
    on_step: Callable[[int, float], None] | None,
    on_eval: Callable[[int, torch.nn.Module], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    run = Run(shards_dir, out_dir, cfg, world)
    run.try_resume()
    run.open_shards()
    if run.resumed_from is None:  # dropout masks differ per rank (a resume restores the saved generator instead)
        torch.manual_seed(cfg.seed + world.rank)
    model = distributed.prepare(run.raw, world, cfg, run.precision)
    if run.compiled:
        log.info(
            "torch.compile on (train.compile=%s, scope %s); the first step compiles",
            cfg.compile,
            distributed.compile_scope(cfg, world),
        )
    run.make_optimizer()
    recorder = Recorder(run, progress and world.is_main)
    clock = StepClock()
    profiler = StepProfiler(out_dir, cfg.profile_steps, world.is_main, world.device)
    late: Step | None = None  # a step whose numbers are read while the next one runs
    while run.step < cfg.max_steps:
        step = train_step(run, model)  # queued on the device; nothing has waited for it yet
        profiler.step_done()
        # Which steps' numbers to read now: the late one, then this one unless it too can wait (on a
        # GPU, until the next step is queued). A step that evaluates or checkpoints cannot: both
        # need the model as of that step.
        ready = [late] if late is not None else []
        late = step if reads_a_step_late(world.device) and not is_boundary(step.number, cfg) else None
        ready += [step] if late is None else []
        for done in ready:
            loss, grad_norm = done.values()  # waits for that step to finish
            row = {
                "step": done.number,
                "loss": loss,
                "lr": done.lr,
                "grad_norm": grad_norm,
                "tokens_per_s": run.tokens_per_step / clock.lap(),
            }
            last = done.number == cfg.max_steps
            if done.number % cfg.eval_interval == 0 or last:
                with clock.paused():
                    val_loss = evaluate(run, model)
                    recorder.sample(done.number, generate_sample(run) if world.is_main else None)
                    extra = on_eval(done.number, run.raw) if on_eval else {}
                if val_loss is not None:  # no val shards: no eval columns (readers take their presence as an eval)
                    row.update(
                        val_loss=val_loss,
                        val_perplexity=math.exp(val_loss),
                        val_bpb=from_mean_loss(val_loss, run.val_tokens_per_byte),
                    )
                row.update(extra)
            recorder.write(row)
            if done.number % cfg.checkpoint_interval == 0 or last:
                with clock.paused():
                    run.save()
            if on_step:
                on_step(done.number, loss)
    recorder.close()
    profiler.close()
    if world.is_main:
        plot_losses(out_dir, f"{cfg.arch} {run.config['n_layer']}x{run.config['n_embd']}")
    return summary(run, recorder, clock)


def reads_a_step_late(device: str) -> bool:
    """Only an asynchronous device gains from reading a step's numbers one step late: a CPU has
    finished the step when train_step returns (and reading late would blur each row's timing)."""
    return device.startswith("cuda")


def is_boundary(number: int, cfg: TrainConfig) -> bool:
    """Step `number` evaluates or saves a checkpoint."""
    return number % cfg.eval_interval == 0 or number % cfg.checkpoint_interval == 0 or number == cfg.max_steps


# --------------------------------------------------------------------------- one step


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
    for group in run.optimizer.param_groups:  # each group at its own peak (Muon's, AdamW's) times the schedule
        group["lr"] = lr * group["lr_scale"]
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


# --------------------------------------------------------------------------- evaluation and samples


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
        ids = sample(
            run.raw,
            prompt,
            run.cfg.sample_tokens,
            run.cfg.sample_temperature,
            run.cfg.sample_top_k or None,
            None,
            run.eot_id,
            generator,
        )
    return run.cfg.sample_prompt + run.tokenizer.decode(ids)


def eager():
    """Run compiled modules as plain Python (generation needs no compiled graph)."""
    set_stance = getattr(torch.compiler, "set_stance", None)
    return set_stance("force_eager") if set_stance else nullcontext()


# --------------------------------------------------------------------------- the command line


def main(argv: list[str] | None = None) -> None:
    """`python -m model.train`: one process, or a rank under torchrun (as the train stage's
    launcher starts it). Rank 0 prints the summary as its last line; our errors go to the launcher."""
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
    except Exception as err:
        # A write that found no room is told as one process tells it (the folder, the free space
        # there, the fix): the DiskFullError the stage runner makes of it, made here on the rank
        # ("train" is the stage's name, TrainStage.name).
        ours = err if isinstance(err, Crawl2GPTError) else as_disk_full(err, "train", Path(args.out), atomic=False)
        if ours is None:
            raise
        distributed.tell_launcher(ours)
        raise SystemExit(2) from None
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary))
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        distributed.exit_rank(0)


if __name__ == "__main__":
    main()
