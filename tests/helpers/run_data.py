"""What two runs of the same inputs and config must share, whatever happened to either of them
(a server restart, 20 runs at once), even when their run folders differ.

A stage's files are compared by sha256: Parquet parts (so document ids, texts and the rejects'
reasons), the tokenizer, every token shard, the report. Left out: `_stage.json` (timings, and
input paths; its counts are compared instead), and in shards/report.json the run folder's own
path. Training is compared by its loss and validation-loss sequence, the last checkpoint's
weights and the samples it wrote (metrics.jsonl also holds tokens/s, which vary).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from crawl2gpt.stages import STAGES
from pipeline.stage import MANIFEST, read_manifest

RUN_PATH_IN = {"shards": ("report.json",)}  # files that record the run folder's absolute path


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stage_data(run_dir: Path, stage: str) -> dict:
    folder = run_dir / stage
    counts = read_manifest(folder)["stats"]
    if stage == "train":
        return _train_data(folder)
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST):
        data = path.read_bytes()
        if path.name in RUN_PATH_IN.get(stage, ()):
            data = data.replace(str(run_dir.resolve()).encode(), b"RUN")
        files[path.relative_to(folder).as_posix()] = _sha256(data)
    return {"files": files, "docs_in": counts["docs_in"], "docs_out": counts["docs_out"]}


def _train_data(folder: Path) -> dict:
    metrics = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line]
    last = sorted((folder / "checkpoints").glob("step-*"))[-1]
    return {
        "losses": [(m["step"], m.get("loss"), m.get("val_loss")) for m in metrics],
        "checkpoint": (last.name, _sha256((last / "model.safetensors").read_bytes())),
        "samples": _sha256((folder / "samples.txt").read_bytes()),
    }


def run_data(run_dir: Path, until: str = "train") -> dict:
    """Every stage up to `until`, each of which must be finished (read_manifest raises if not)."""
    stages = STAGES[: STAGES.index(until) + 1]
    return {stage: stage_data(run_dir, stage) for stage in stages}


def leftovers(run_dir: Path) -> list[str]:
    """Temporary stage folders (`.NAME.tmp-*`) an interrupted stage must not leave readable."""
    return sorted(p.name for p in run_dir.glob(".*.tmp-*"))
