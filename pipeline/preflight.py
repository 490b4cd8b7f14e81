"""Checks a run makes before any stage starts: a bad path or setting fails in a second, not
after an hour of extraction. Config values are already checked by the pydantic types
(pipeline/config.py and the model's own); these are the facts types cannot see: files that must
exist, a run folder that must be a folder.
"""
from __future__ import annotations

import glob
from pathlib import Path
from typing import Collection, Sequence

from pipeline.config import PipelineConfig
from pipeline.errors import ConfigError, InputError


def check_inputs(raw_inputs: Sequence[str], workdir: str | Path) -> None:
    """Raise InputError naming the path and the fix; return when the run folder and inputs can be used."""
    workdir = Path(workdir)
    if workdir.exists() and not workdir.is_dir():
        raise InputError(f"run folder {workdir} is a file; give a folder (it is created if missing)")
    if not raw_inputs:
        raise InputError("no input given; pass WARC files, a folder, a glob, a URL or a crawl id")
    local = [spec for spec in map(str, raw_inputs) if "://" not in spec]  # URLs are checked when opened
    for pattern in (spec for spec in local if glob.has_magic(spec)):
        if not any(glob.iglob(str(Path(pattern).expanduser()), recursive=True)):
            raise InputError(f"the pattern {pattern!r} matches no file; check the folder and the file names")
    missing = [spec for spec in local if not glob.has_magic(spec) and not Path(spec).expanduser().exists()]
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise InputError(f"input{'s' * (len(missing) > 1)} not found: {shown}; check the path")


def check_data_settings(cfg: PipelineConfig, stages: Collection[str]) -> None:
    """Raise ConfigError for a setting of one of `stages` that points at a file that is not there."""
    c4 = cfg.filter.c4
    if "filter" in stages and c4.enabled and c4.badwords:
        if not c4.badwords_file:
            raise ConfigError("filter.c4.badwords is on but filter.c4.badwords_file is not set; give a word list path")
        if not Path(c4.badwords_file).expanduser().is_file():
            raise ConfigError(f"filter.c4.badwords_file {c4.badwords_file!r} does not exist; point it at a word list")
    reuse = cfg.tokenizer.reuse
    if "tokenizer" in stages and reuse:
        path = Path(reuse).expanduser()
        if not (path.is_file() or (path / "tokenizer.model").is_file()):
            raise ConfigError(f"tokenizer.reuse {reuse!r} is not a tokenizer.model (or a folder holding one); fix or unset it")
