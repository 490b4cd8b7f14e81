"""A torch.profiler trace of a few training steps (train.profile_steps), to see where a step's time goes.

The trace starts after the first steps (compilation and warm-up would swamp it) and covers
`steps` optimizer steps, CPU and CUDA. Rank 0 writes, into OUT/profile/:
  trace.json.gz   the timeline (chrome://tracing or https://ui.perfetto.dev): idle GPU gaps between
                  kernels show where the host, not the device, sets the pace
  table.txt       the top operators by GPU time and by CPU time
  summary.json    wall time per step, GPU busy time per step, and their difference (the idle time)

Profiling slows the traced steps themselves a little; the steps outside the window are untouched.
"""

from __future__ import annotations

import gzip
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

import torch

from pipeline.atomic import atomic_write_text, atomic_write_with

START_AFTER = 3  # steps: the first compiles, the next few still settle (allocator, autotuning)


class StepProfiler:
    """Call `step_done()` after each queued optimizer step; it opens and closes the trace window."""

    def __init__(self, out_dir: Path, steps: int, is_main: bool, device: str):
        self.out_dir, self.steps, self.device = Path(out_dir) / "profile", steps, device
        self.enabled = steps > 0 and is_main
        self.seen, self.prof, self.started = 0, None, 0.0

    def step_done(self) -> None:
        if not self.enabled:
            return
        self.seen += 1
        if self.seen == START_AFTER:
            self._start()
        elif self.prof is not None and self.seen == START_AFTER + self.steps:
            self._stop()

    def close(self) -> None:
        """End a window the run stopped inside of (max_steps reached first): write what was traced."""
        if self.prof is not None:
            self.steps = self.seen - START_AFTER
            self._stop()

    def _start(self) -> None:
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.device.startswith("cuda") else [])
        self._sync()
        self.prof = profile(activities=activities)
        self.prof.__enter__()
        self.started = time.perf_counter()

    def _stop(self) -> None:
        self._sync()
        wall = time.perf_counter() - self.started
        self.prof.__exit__(None, None, None)
        with tempfile.TemporaryDirectory(prefix="trace-") as tmp:  # torch writes the trace to a path of its own
            raw = Path(tmp) / "trace.json"
            self.prof.export_chrome_trace(str(raw))
            atomic_write_with(self.out_dir / "trace.json.gz", lambda fh: _gzip_into(raw, fh))
        events = self.prof.key_averages()
        tables = [
            events.table(sort_by=key, row_limit=40, max_name_column_width=90)
            for key in ("self_device_time_total", "self_cpu_time_total")
        ]
        atomic_write_text(self.out_dir / "table.txt", "\n\n".join(tables))
        busy_us = gpu_busy_us(self.prof)
        summary = {
            "steps": self.steps,
            "wall_ms_per_step": 1000 * wall / self.steps,
            "gpu_busy_ms_per_step": busy_us / 1000 / self.steps if busy_us is not None else None,
        }
        if summary["gpu_busy_ms_per_step"] is not None:
            summary["gpu_idle_ms_per_step"] = summary["wall_ms_per_step"] - summary["gpu_busy_ms_per_step"]
        atomic_write_text(self.out_dir / "summary.json", json.dumps(summary, indent=2))
        self.prof, self.enabled = None, False

    def _sync(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()


def gpu_busy_us(prof) -> float | None:
    """Microseconds at least one kernel or copy ran on the GPU (overlapping intervals merged):
    wall time minus this is time the GPU waited for the host or for communication."""
    spans = []
    for event in prof.events():
        if (
            getattr(event, "device_type", None) == torch.autograd.DeviceType.CUDA
            and event.time_range.end > event.time_range.start
        ):
            spans.append((event.time_range.start, event.time_range.end))
    if not spans:
        return None
    spans.sort()
    busy, (start, end) = 0.0, spans[0]
    for s, e in spans[1:]:
        if s > end:
            busy, start, end = busy + end - start, s, e
        else:
            end = max(end, e)
    return busy + end - start


def _gzip_into(raw: Path, fh: BinaryIO) -> None:
    with open(raw, "rb") as src, gzip.GzipFile(filename="trace.json", mode="wb", fileobj=fh) as out:
        shutil.copyfileobj(src, out)
