"""Checks a run makes before any stage starts: a bad path or setting fails in a second, not
after an hour of extraction. Config values are already checked by the pydantic types
(pipeline/config.py); these are the facts types cannot see: files that must exist, a run
folder that must be a folder, a stage name that must be one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from pipeline.config import RunConfig
from pipeline.errors import ConfigError, InputError
from pipeline.stage import STAGES


def check_run(raw_inputs: Sequence[str], workdir: str | Path, cfg: RunConfig, until: str = "train") -> None:
    """Raise ConfigError / InputError naming the setting or path and the fix; return when the run can start."""
    if until not in STAGES:
        raise ConfigError(f"until={until!r} is not a stage; stages are {', '.join(STAGES)}")
    workdir = Path(workdir)
    if workdir.exists() and not workdir.is_dir():
        raise InputError(f"run folder {workdir} is a file; give a folder (it is created if missing)")
    if not raw_inputs:
        raise InputError("no input given; pass WARC files, a folder, a glob, a URL or a crawl id")
    wanted = STAGES[: STAGES.index(until) + 1]
    c4 = cfg.filter.c4
    if "filter" in wanted and c4.enabled and c4.badwords:
        if not c4.badwords_file:
            raise ConfigError("filter.c4.badwords is on but filter.c4.badwords_file is not set; give a word list path")
        if not Path(c4.badwords_file).expanduser().is_file():
            raise ConfigError(f"filter.c4.badwords_file {c4.badwords_file!r} does not exist; point it at a word list")
    reuse = cfg.tokenizer.reuse
    if "tokenizer" in wanted and reuse:
        path = Path(reuse).expanduser()
        if not (path.is_file() or (path / "tokenizer.model").is_file()):
            raise ConfigError(f"tokenizer.reuse {reuse!r} is not a tokenizer.model (or a folder holding one); fix or unset it")
    if "train" in wanted and cfg.train.min_lr > cfg.train.learning_rate:
        raise ConfigError(f"train.min_lr ({cfg.train.min_lr}) is above train.learning_rate ({cfg.train.learning_rate})")
