"""The DAG's stages in order, where each one's code lives and which folders feed it.

The one list of stages (train included): the runner, the CLI's choices and the Prefect flows
all read it from here.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.stage import Stage

STAGES = ("extract", "filter", "dedup", "tokenizer", "shards", "train")

# Where each stage's implementation lives, imported lazily so that `crawl2gpt stage filter`
# never pays for importing torch.
STAGE_OBJECTS = {
    "extract": "pipeline.extract.stage:EXTRACT",
    "filter": "pipeline.filter.stage:FILTER",
    "dedup": "pipeline.dedup.stage:DEDUP",
    "tokenizer": "pipeline.tokens.tokenizer:TOKENIZER",
    "shards": "pipeline.tokens.shards:SHARDS",
    "train": "model.train_stage:TRAIN",
}

# The run-folder sub-folders each stage reads; extract reads the raw WARC inputs instead.
UPSTREAM: dict[str, list[str] | None] = {
    "extract": None,
    "filter": ["extract"],
    "dedup": ["filter"],
    "tokenizer": ["dedup"],
    "shards": ["dedup", "tokenizer"],
    "train": ["shards"],
}


def check_stage_name(name: str) -> str:
    if name not in STAGES:
        raise ConfigError(f"unknown stage {name!r}; stages are {', '.join(STAGES)}")
    return name


def load_stage(name: str) -> Stage:
    module, attr = STAGE_OBJECTS[check_stage_name(name)].split(":")
    return getattr(importlib.import_module(module), attr)


def stage_options(name: str) -> dict[str, Any]:
    """How run_stage treats a stage: training writes in place, so a crashed run resumes from its checkpoints."""
    return {"atomic": name != "train"}


def stage_inputs(name: str, workdir: str | Path, raw_inputs: Sequence[str]) -> list[str]:
    """The inputs of a stage inside a run folder: raw WARC specs for extract, else folders."""
    upstream = UPSTREAM[check_stage_name(name)]
    if upstream is None:
        return list(raw_inputs)
    return [str(Path(workdir) / folder) for folder in upstream]


def stages_until(until: str) -> tuple[str, ...]:
    """The stages a run executes when it stops after `until`."""
    if until not in STAGES:
        raise ConfigError(f"until={until!r} is not a stage; stages are {', '.join(STAGES)}")
    return STAGES[: STAGES.index(until) + 1]


def stages_to_force(force_from: str | None) -> set[str]:
    """`--force filter` reruns filter and every stage after it."""
    if force_from is None:
        return set()
    if force_from == "all":
        return set(STAGES)
    if force_from not in STAGES:
        raise ConfigError(f"--force expects a stage name or 'all', got {force_from!r}")
    return set(STAGES[STAGES.index(force_from) :])
