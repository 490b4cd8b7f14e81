"""What a training run records: a row per step, samples, the time steps take, and its summary.

Recorder   metrics.jsonl, samples.txt, TensorBoard and the progress bar (rank 0 writes them);
           on every rank, the latest loss, validation loss and sample the summary reports
StepClock  wall time per training step, evaluation and checkpoints paused out
summary    the run's numbers: what the train stage reports and `python -m model.train` prints
"""

from __future__ import annotations

import logging
import math
import sys
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from model import distributed
from model.bits_per_byte import from_mean_loss
from model.training import MetricsLog, peak_memory_mb, read_metrics

if TYPE_CHECKING:
    from model.train_state import Run

log = logging.getLogger("crawl2gpt.train")


class Recorder:
    """metrics.jsonl, samples.txt, TensorBoard and the progress bar (rank 0 only), and the
    latest figures (every rank)."""

    def __init__(self, run: Run, progress: bool):
        self.out_dir, self.enabled, self.tb, self.bar = run.out_dir, run.world.is_main, None, None
        self.loss: float | None = None
        self.val_loss: float | None = None
        self.sample_text: str | None = None
        if not self.enabled:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.metrics = MetricsLog.of(self.out_dir)
        self.metrics.truncate(run.step)  # after a resume, forget rows the interrupted run wrote past the checkpoint
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.out_dir / "tb"), purge_step=run.step + 1)
        except ImportError:
            log.info("tensorboard is not installed: metrics go to metrics.jsonl only")
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(
                total=run.cfg.max_steps,
                initial=run.step,
                desc=f"train {run.cfg.arch}",
                file=sys.stderr,
                dynamic_ncols=True,
            )

    def write(self, row: dict[str, Any]) -> None:
        """One step's row (an evaluation step's has val_loss): to the log, TensorBoard and the bar."""
        self.loss = row["loss"]
        self.val_loss = row.get("val_loss", self.val_loss)
        if not self.enabled:
            return
        self.metrics.append(row)
        if self.tb:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.tb.add_scalar(key, value, row["step"])
        if self.bar:
            self.bar.update(1)
            val = f"{self.val_loss:.3f}" if self.val_loss is not None else "-"
            self.bar.set_postfix(loss=f"{self.loss:.3f}", val=val)

    def sample(self, step: int, text: str | None) -> None:
        """The sample generated at an evaluation (None when there is none: no tokenizer, another rank)."""
        self.sample_text = text
        if self.enabled and text is not None:
            with open(self.out_dir / "samples.txt", "a") as fh:
                fh.write(f"--- step {step}\n{text}\n")

    def close(self) -> None:
        if self.bar:
            self.bar.close()
        if self.tb:
            self.tb.close()


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


def summary(run: Run, recorder: Recorder, clock: StepClock) -> dict[str, Any]:
    """The run's numbers. tokens_per_s counts this process's training steps after the first (no
    evaluation, no checkpoints); a run with nothing left to train reports its last logged figures."""
    loss, val_loss = recorder.loss, recorder.val_loss
    rows = read_metrics(run.out_dir) if run.world.is_main else []
    if loss is None and rows:  # nothing left to train: report the finished run's last figures
        loss = next((r["loss"] for r in reversed(rows) if "loss" in r), None)
        val_loss = next((r["val_loss"] for r in reversed(rows) if r.get("val_loss") is not None), None)
    peaks = peak_memory_mb(run.world.device)
    memory = {key: distributed.max_over_ranks(value, run.world) for key, value in peaks.items()}
    return {
        "final_train_loss": loss,
        "val_loss": val_loss,
        "val_perplexity": math.exp(val_loss) if val_loss is not None else None,
        "val_bpb": from_mean_loss(val_loss, run.val_tokens_per_byte),
        "tokens_per_s": run.tokens_per_step * clock.steps / clock.seconds if clock.seconds else None,
        "first_step_s": clock.first_seconds,
        "steps": run.step,
        "tokens_seen": run.step * run.tokens_per_step,
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
        "sample": recorder.sample_text,
    }
