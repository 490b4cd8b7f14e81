"""SIGKILL the pipeline from outside at seeded points inside each stage, rerun, and snapshot.

Nothing in pipeline/ knows about this: the driver (tests/chaos/driver.py) is a plain
`run_pipeline` call in its own process group; the harness watches the run folder to see which
stage is running (a stage writes into `.NAME.tmp-*` until it renames it into place; training
writes into `train/` with no `_stage.json` until it is done), waits a seeded fraction of that
stage's duration in an uninterrupted run, and kills the whole group (driver + pool workers),
as an OOM kill or a lost machine would. After every kill it checks that no stage folder is
readable without being complete; at the end `snapshot` of the rerun must equal the
uninterrupted run's.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from crawl2gpt.stages import STAGES
from helpers.fault_runs import SAMPLE_RUN_SETTINGS
from pipeline.stage import MANIFEST, read_manifest, stage_parts

DRIVER = Path(__file__).resolve().parent / "driver.py"
ROOT = Path(__file__).resolve().parents[2]
# A tiny model: the point is the stage contract, not learning (kept small so a CI run is < 90 s).
SMALL = [*SAMPLE_RUN_SETTINGS, "train.checkpoint_interval=5", "workers=2"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _text_hash(text: str | None) -> str:
    return hashlib.sha1((text or "").encode()).hexdigest()


# --------------------------------------------------------------------------- running and killing


def start(workdir: Path, inputs: list[str], overrides: list[str], log: Path) -> subprocess.Popen:
    args = [sys.executable, str(DRIVER), "--workdir", str(workdir)]
    for spec in inputs:
        args += ["--input", spec]
    for item in overrides:
        args += ["--set", item]
    with open(log, "ab") as out:
        # Own session: killpg reaches the driver and every pool worker it spawned.
        return subprocess.Popen(args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def run_to_end(workdir: Path, inputs: list[str], overrides: list[str], timeout: float = 600) -> float:
    started = time.time()
    log = workdir.parent / f"{workdir.name}.log"
    proc = start(workdir, inputs, overrides, log)
    if proc.wait(timeout=timeout) != 0:
        raise AssertionError(f"pipeline run failed (rc {proc.returncode}); log:\n{log.read_text()[-4000:]}")
    return time.time() - started


def temp_folders(workdir: Path) -> set[Path]:
    return {p for p in workdir.glob(".*.tmp-*")} if workdir.is_dir() else set()


def running_stage(workdir: Path, leftovers: set[Path]) -> str | None:
    """The stage writing right now, seen from the folders (None: between stages or not started)."""
    for path in temp_folders(workdir) - leftovers:
        name = path.name[1:].split(".tmp-")[0]
        if name in STAGES:
            return name
    train = workdir / "train"
    if train.is_dir() and not (train / MANIFEST).is_file():
        return "train"
    return None


def assert_no_half_stage(workdir: Path) -> None:
    """A stage folder (not a dot-temp one) is either complete with its manifest, or it is
    train/ (which resumes in place and gets its manifest last). Downstream readers refuse the rest."""
    for name in STAGES:
        folder = workdir / name
        if folder.is_dir() and name != "train":
            manifest = read_manifest(folder)  # raises if missing or not JSON
            for rel, entry in manifest["files"].items():
                assert (folder / rel).stat().st_size == entry["bytes"], f"{folder / rel} differs from its manifest"


@dataclass
class KillPoint:
    target: str  # the stage the plan aimed at
    delay_s: float  # after that stage was seen running
    landed: str = ""  # what was running when the signal went out ("between" = between stages)
    note: str = ""


@dataclass
class ChaosLog:
    kills: list[KillPoint] = field(default_factory=list)
    seconds: float = 0.0

    def landed(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for k in self.kills:
            if k.landed:
                out[k.landed] = out.get(k.landed, 0) + 1
        return out


def kill_plan(seed: int, per_stage: int, stage_seconds: dict[str, float], stages=STAGES) -> list[KillPoint]:
    """`per_stage` kills in each stage, in pipeline order, each at a seeded fraction of the
    stage's uninterrupted duration (a finished stage is skipped on rerun, so order matters).
    The fraction stops at 0.8: a stage's recorded time includes its manifest and rename, and
    runs vary, so later points would often land after the stage (still valid, but not inside)."""
    rng = random.Random(seed)
    return [
        KillPoint(name, round(rng.random() * 0.8 * stage_seconds[name], 3)) for name in stages for _ in range(per_stage)
    ]


def chaos_run(
    workdir: Path, inputs: list[str], overrides: list[str], plan: list[KillPoint], timeout: float = 120
) -> ChaosLog:
    """Run, kill at every point of `plan`, then run to the end; returns where the kills landed."""
    log = ChaosLog()
    started = time.time()
    out = workdir.parent / f"{workdir.name}.log"
    for point in plan:
        leftovers = temp_folders(workdir)
        proc = start(workdir, inputs, overrides, out)
        deadline = time.time() + timeout
        while proc.poll() is None and running_stage(workdir, leftovers) != point.target and time.time() < deadline:
            if point.target != "train" and (workdir / point.target / MANIFEST).is_file():
                break  # already past it (should not happen: the plan is in stage order)
            time.sleep(0.005)
        time.sleep(point.delay_s)
        if proc.poll() is not None:
            point.note = f"run ended (rc {proc.returncode}) before the kill"
            assert proc.returncode == 0, out.read_text()[-4000:]
            log.kills.append(point)
            continue
        point.landed = running_stage(workdir, leftovers) or "between"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.kills.append(point)
        assert_no_half_stage(workdir)
    run_to_end(workdir, inputs, overrides)
    log.seconds = round(time.time() - started, 1)
    return log


# --------------------------------------------------------------------------- comparing runs


def _docs(files: list[Path], extra_cols: tuple[str, ...] = ()) -> list[tuple]:
    rows = []
    for path in files:
        table = pq.read_table(path)
        cols = [c for c in ("doc_id", "text", *extra_cols) if c in table.column_names]
        data = table.select(cols).to_pylist()
        rows += [(r["doc_id"], _text_hash(r.get("text")), *(r.get(c) for c in extra_cols)) for r in data]
    return sorted(rows)


def snapshot(workdir: Path) -> dict:
    """Everything a rerun must reproduce: documents (ids, text hashes) and rejects with their
    reason per stage, the tokenizer, shard checksums, and the training loss sequence."""
    snap: dict = {}
    for name in ("extract", "filter", "dedup"):
        folder = workdir / name
        docs = _docs(stage_parts(folder))
        ids = [d[0] for d in docs]
        assert len(ids) == len(set(ids)), f"{name}: duplicated document ids"
        rejects = _docs(sorted((folder / "rejects").glob("*.parquet")), ("first_failing_rule", "reason", "kept_doc_id"))
        snap[name] = {"docs": docs, "rejects": rejects, "docs_out": read_manifest(folder)["stats"]["docs_out"]}
    snap["tokenizer"] = _sha256(workdir / "tokenizer" / "tokenizer.model")
    manifest = json.loads((workdir / "shards" / "manifest.json").read_text())
    snap["shards"] = [(s["path"], s["rows"], s["tokens"], s["sha256"]) for s in manifest["shards"]]
    for entry in manifest["shards"]:  # the files really are what the manifest says
        assert _sha256(workdir / "shards" / entry["path"]) == entry["sha256"]
    metrics = [json.loads(line) for line in (workdir / "train" / "metrics.jsonl").read_text().splitlines() if line]
    snap["train_losses"] = [(m["step"], m.get("loss"), m.get("val_loss")) for m in metrics]
    last = sorted((workdir / "train" / "checkpoints").glob("step-*"))[-1]
    snap["train_weights"] = (last.name, _sha256(last / "model.safetensors"))
    return snap


def stage_seconds(workdir: Path) -> dict[str, float]:
    return {name: read_manifest(workdir / name)["stats"]["seconds"] for name in STAGES}
