"""What the fault tests (tests/faults/) share: the CLI as a user runs it, and what "same data" means.

A fault test runs `crawl2gpt run` as a subprocess against the session's Prefect server (the
`prefect_api` fixture: a real server, as with PREFECT_API_URL set; it saves the temporary
server's start-up on every run), provokes the fault, reads the one message the user gets, and
compares the stage folders before and after with `stage_snapshot`: every file's bytes (sha256)
and the manifest without its timings and without the run folder's own path.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from warcio.archiveiterator import ArchiveIterator
from warcio.warcwriter import WARCWriter

from pipeline.stage import MANIFEST

CLI = Path(sys.executable).with_name("crawl2gpt")
# Small settings for the bundled sample: its German and English pages, nothing else changed.
SAMPLE_SETTINGS = ["filter.language.languages=[en, de]"]
# A whole run of the bundled sample that ends in a tiny model (20 steps, evaluations at 10 and 20): the
# stage contract is the point, not learning. Each test adds its checkpoint interval and workers.
SAMPLE_RUN_SETTINGS = [
    *SAMPLE_SETTINGS,
    "tokenizer.vocab_size=500",
    "shards.val_fraction=0.1",
    "train.n_layer=2",
    "train.n_head=2",
    "train.n_embd=64",
    "train.block_size=64",
    "train.batch_size=16",
    "train.max_steps=20",
    "train.warmup_steps=2",
    "train.eval_interval=10",
    "train.eval_batches=2",
    "train.precision=fp32",
    "train.device=cpu",
    "train.sample_tokens=8",
]


def cli_env(home: Path) -> dict[str, str]:
    """A user's environment pointed at the session's Prefect server (PREFECT_API_URL), and no
    other PREFECT_* variable from the calling shell."""
    from prefect.settings import PREFECT_API_URL

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_API_URL=PREFECT_API_URL.value(), PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false"
    )
    return env


@dataclass
class CliRun:
    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def error_lines(self) -> list[str]:
        """Our own lines on stderr (`crawl2gpt: ...`), without Prefect's log lines."""
        return [line for line in self.stderr.splitlines() if line.startswith("crawl2gpt:")]


def start_cli(args: list[str], env: dict[str, str], preexec_fn: Callable[[], None] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [str(CLI), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=preexec_fn
    )


def finish_cli(proc: subprocess.Popen, started: float, timeout: float = 300) -> CliRun:
    out, err = proc.communicate(timeout=timeout)
    return CliRun(proc.returncode, out, err, round(time.monotonic() - started, 1))


def run_cli(
    args: list[str], env: dict[str, str], preexec_fn: Callable[[], None] | None = None, timeout: float = 300
) -> CliRun:
    started = time.monotonic()
    return finish_cli(start_cli(args, env, preexec_fn), started, timeout)


def split_warc(source: Path, out_dir: Path, pieces: int = 2) -> list[Path]:
    """The records of `source` cut into `pieces` consecutive WARC files (one stage part each)."""
    with open(source, "rb") as fh:
        total = sum(1 for _ in ArchiveIterator(fh))
    outs = [out_dir / f"{source.name.split('.')[0]}-{i}.warc.gz" for i in range(pieces)]
    handles = [open(p, "wb") for p in outs]
    try:
        writers = [WARCWriter(h, gzip=True) for h in handles]
        with open(source, "rb") as fh:
            for i, record in enumerate(ArchiveIterator(fh)):
                writers[i * pieces // total].write_record(record)
    finally:
        for handle in handles:
            handle.close()
    return outs


# --------------------------------------------------------------------------- comparing stage folders


def _without_timings(value: Any, run_dir: str) -> Any:
    """A manifest value with clock readings dropped and the run folder's path replaced by RUN."""
    if isinstance(value, dict):
        return {
            k: _without_timings(v, run_dir)
            for k, v in value.items()
            if k not in ("seconds", "started_at", "finished_at", "key_digest") and not k.endswith("_s")
        }
    if isinstance(value, list):
        return [_without_timings(v, run_dir) for v in value]
    if isinstance(value, str):
        return value.replace(run_dir, "RUN")
    return value


def stage_snapshot(folder: Path) -> dict[str, Any]:
    """A finished stage folder as a rerun must reproduce it: the sha256 of every file on disk
    (the manifest's own list is checked against them) and the manifest without its timings.
    `key_digest` is left out because it hashes the input folders' absolute paths; the inputs
    themselves are compared, path-normalized, with their data digests."""
    manifest = json.loads((folder / MANIFEST).read_text())
    on_disk = {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    listed = {rel: entry["sha256"] for rel, entry in manifest["files"].items()}
    assert on_disk == listed, f"{folder}: the files on disk differ from its manifest"
    return {"files": on_disk, "manifest": _without_timings(manifest, str(folder.parent.resolve()))}


def run_snapshot(run_dir: Path, stages: list[str]) -> dict[str, dict[str, Any]]:
    return {name: stage_snapshot(run_dir / name) for name in stages}


def leftovers(run_dir: Path) -> list[str]:
    """Temporary or set-aside stage folders (`.NAME.tmp-*`, `.NAME.old-*`) in a run folder."""
    return sorted(p.name for p in run_dir.glob(".*") if ".tmp-" in p.name or ".old-" in p.name)
