"""Run a benchmark's child process and sample its whole process tree (the stage's pool workers
included): peak summed RSS, when it peaked, and CPU seconds. Shared by dedup_scale.py and
crawl_volume.py."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import ROOT, last_json_line, module_command


def run_measured(module: str, argv: list[str], python: str | Path = sys.executable) -> dict:
    """`python -m module argv...` in a child process: its last JSON line plus the tree's peak memory and CPU."""
    import psutil

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(module_command(module, argv, python), stdout=out, stderr=err, cwd=ROOT)
        root, peak, samples, started, peak_at = psutil.Process(proc.pid), 0, 0, time.time(), 0.0
        cpu: dict[int, float] = {}  # pid -> CPU seconds when last seen (a pool's workers may never be joined)
        while proc.poll() is None:
            total = 0
            try:
                for p in [root, *root.children(recursive=True)]:
                    try:
                        total += p.memory_info().rss
                        times = p.cpu_times()
                        cpu[p.pid] = times.user + times.system
                    except psutil.NoSuchProcess:
                        pass
            except psutil.NoSuchProcess:
                pass
            if total > peak:
                peak, peak_at = total, time.time() - started
            samples += 1
            time.sleep(0.2)
        out.seek(0), err.seek(0)
        if proc.returncode:
            raise RuntimeError(f"{argv[0]} failed:\n{err.read()[-3000:]}")
        result = last_json_line(out.read())
    result["peak_tree_mb"] = round(peak / 2**20, 1)
    result["rss_samples"] = samples
    result["cpu_s"] = round(sum(cpu.values()), 1)  # sampled every 0.2 s: the last 0.2 s of a process is missed
    result["peak_at_s"] = round(peak_at, 1)  # when, from the child's start: which phase peaked
    return result
