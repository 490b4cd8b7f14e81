"""What every benchmark shares: where the inputs are, how it times, how it reports, how it runs peers.

Benchmarks run from the repository root as modules (`python -m benchmarks.NAME`), so the product
packages and this one import without any change to sys.path; a child process runs the same way
(`module_command`), with the root as its working directory.

- Inputs: ROOT, the sample data beside the repository (SHARED: ../shared/data, its WARCs and
  labelled sentences) and BENCH_DIR (.bench/, git-ignored) for caches and peers' environments.
- Timing: `timed()` gives the CPU seconds (user + system, optionally of waited-for children too)
  and the wall seconds of a block; `best_seconds` the fastest of a few runs.
- Reporting: every benchmark prints one JSON object as its last line (`print_result`); a parent
  reads a child's or a peer's with `run_json`.
- Peers whose pins clash with ours (datatrove wants trafilatura 1.x) get their own virtual
  environment under BENCH_DIR, built once under a lock (`peer_python`).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SAMPLE_WARCS = [SHARED / "warc" / f"CC-SAMPLE-A-0000{i}.warc.gz" for i in range(3)]
SENTENCES = SHARED / "langid-sentences.tsv"  # lang<TAB>sentence lines with a header (Leipzig, as lingua bundles them)
BENCH_DIR = ROOT / ".bench"  # git-ignored: caches, work folders, peers' virtual environments


# --------------------------------------------------------------------------- inputs


def add_warcs_argument(parser: argparse.ArgumentParser) -> None:
    """The WARC files as positional arguments; the three shared sample WARCs by default."""
    parser.add_argument(
        "warcs", nargs="*", type=Path, default=SAMPLE_WARCS, help="WARC files (default: the shared sample)"
    )


def existing_files(paths: list[Path]) -> list[Path]:
    """The paths, resolved; exits naming every one that is missing (the shared data lives in ../shared/data)."""
    resolved = [Path(p).resolve() for p in paths]
    missing = [str(p) for p in resolved if not p.is_file()]
    if missing:
        sys.exit(f"missing input files: {missing}")
    return resolved


# --------------------------------------------------------------------------- timing


def cpu_seconds(children: bool = False) -> float:
    """User + system CPU seconds of this process (all threads); with children, also of the child
    processes it has waited for (a pool's workers, a peer's sandbox)."""
    seconds = time.process_time()
    if children:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        seconds += usage.ru_utime + usage.ru_stime
    return seconds


@dataclass
class Timing:
    cpu_s: float = 0.0
    wall_s: float = 0.0


@contextmanager
def timed(children: bool = False) -> Iterator[Timing]:
    """`with timed() as t: ...` then t.cpu_s and t.wall_s: the block's CPU seconds (one core's
    work, which a busy machine skews far less than wall time) and its wall seconds."""
    timing = Timing()
    cpu, wall = cpu_seconds(children), time.perf_counter()
    try:
        yield timing
    finally:
        timing.cpu_s, timing.wall_s = cpu_seconds(children) - cpu, time.perf_counter() - wall


def best_seconds(fn: Callable[[], object], repeats: int) -> float:
    """The fastest wall time of `repeats` calls of fn (noise from other jobs only ever adds)."""
    best = float("inf")
    for _ in range(repeats):
        with timed() as t:
            fn()
        best = min(best, t.wall_s)
    return best


# --------------------------------------------------------------------------- results and child processes


def print_result(result: dict) -> None:
    """The benchmark's result: one JSON object, the last line of its output."""
    print(json.dumps(result), flush=True)


def last_json_line(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def module_command(module: str, args: list[str], python: str | Path = sys.executable) -> list[str]:
    """`python -m module args...`: how a benchmark starts itself (or another) in a child process."""
    return [str(python), "-m", module, *map(str, args)]


def run_json(command: list[str], cwd: Path = ROOT, env: dict | None = None, timeout: float | None = None) -> dict:
    """Run a child to the end and return the JSON object of its last line; its stderr's tail if it fails."""
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} ... failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return last_json_line(done.stdout)


# --------------------------------------------------------------------------- peers


def peer_python(name: str, packages: list[str], probe: str) -> Path:
    """The python of the virtual environment BENCH_DIR/name, after installing `packages` if `probe` (a
    line of imports) fails in it. A lock keeps two benchmarks from building it at once."""
    venv = BENCH_DIR / name
    python = venv / "bin" / "python"
    BENCH_DIR.mkdir(exist_ok=True)
    with open(BENCH_DIR / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if python.is_file() and subprocess.run([python, "-c", probe], capture_output=True).returncode == 0:
            return python
        if not python.is_file():
            subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", *packages], check=True)
    return python
