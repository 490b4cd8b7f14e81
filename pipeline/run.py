"""The end-to-end DAG without Prefect: which folder feeds which stage, and a plain runner.

flows/dag.py runs the same DAG as Prefect subflows; both take their wiring from here.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable, Sequence

from pipeline.config import RunConfig
from pipeline.errors import ConfigError
from pipeline.preflight import check_run
from pipeline.stage import STAGES, MapParts, Stage, StageStats, run_stage

# Where each stage's implementation lives, imported lazily so that `crawl2gpt stage filter`
# never pays for importing torch.
STAGE_OBJECTS = {
    "extract": "pipeline.ingest:EXTRACT",
    "filter": "pipeline.filtering:FILTER",
    "dedup": "pipeline.dedup.stage:DEDUP",
    "tokenizer": "pipeline.tokenizer:TOKENIZER",
    "shards": "pipeline.shards:SHARDS",
    "train": "model.train:TRAIN",
}


def load_stage(name: str) -> Stage:
    if name not in STAGE_OBJECTS:
        raise ConfigError(f"unknown stage {name!r}; stages are {', '.join(STAGES)}")
    module, attr = STAGE_OBJECTS[name].split(":")
    return getattr(importlib.import_module(module), attr)


def stage_options(name: str) -> dict:
    """How run_stage treats a stage: training resumes in place and also depends on model/."""
    if name == "train":
        return {"code_packages": ("pipeline", "model"), "atomic": False}
    return {"code_packages": ("pipeline",), "atomic": True}


def stage_inputs(name: str, workdir: Path, raw_inputs: Sequence[str]) -> list[str]:
    """The inputs of a stage inside a run folder: raw WARC specs for extract, else folders."""
    upstream = {
        "extract": None,
        "filter": ["extract"],
        "dedup": ["filter"],
        "tokenizer": ["dedup"],
        "shards": ["dedup", "tokenizer"],
        "train": ["shards"],
    }[name]
    if upstream is None:
        return list(raw_inputs)
    return [str(Path(workdir) / folder) for folder in upstream]


def stages_to_force(force_from: str | None, last: str = "train") -> set[str]:
    """`--force filter` reruns filter and every stage after it."""
    if force_from is None:
        return set()
    if force_from == "all":
        return set(STAGES)
    if force_from not in STAGES:
        raise ConfigError(f"--force expects a stage name or 'all', got {force_from!r}")
    return set(STAGES[STAGES.index(force_from) :])


def run_pipeline(
    raw_inputs: Sequence[str],
    workdir: str | Path,
    cfg: RunConfig,
    *,
    force_from: str | None = None,
    until: str = "train",
    map_parts: MapParts | None = None,
    on_stage: Callable[[StageStats], None] | None = None,
) -> dict[str, StageStats]:
    """Run every stage in order into `workdir/<stage>`; finished, matching stages are skipped."""
    check_run(raw_inputs, workdir, cfg, until)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cfg.write(workdir / "config.yaml")
    forced = stages_to_force(force_from)
    results: dict[str, StageStats] = {}
    for name in STAGES[: STAGES.index(until) + 1]:
        stats = run_stage(
            load_stage(name),
            stage_inputs(name, workdir, raw_inputs),
            workdir / name,
            cfg,
            force=name in forced,
            map_parts=map_parts,
            **stage_options(name),
        )
        results[name] = stats
        if on_stage:
            on_stage(stats)
    return results
