"""Checks a run makes before any stage starts: a bad path or setting fails in a second, not
after an hour of extraction. Config values are already checked by the pydantic types
(pipeline/config.py and the model's own); these are the facts types cannot see: files that must
exist, models that must load, codes a model must know, servers that must answer.

Each stage's check lives beside the stage (its plan calls it too: one check, two callers);
`check_settings` runs those of the stages a run reaches, in stage order, importing each stage's
module only when that stage is reached. The model's (train) are crawl2gpt/runner.py's to add:
the data pipeline does not import the model.
"""

from __future__ import annotations

import glob
import importlib.util
import socket
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from pipeline.config import PipelineConfig
from pipeline.errors import ConfigError, InputError

DATA_STAGES = ("extract", "filter", "dedup", "tokenizer", "shards")
SCHEDULER_WAIT_S = 3.0  # how long the checks wait for a Dask scheduler to accept a connection


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


def check_settings(cfg: PipelineConfig, stages: Collection[str]) -> None:
    """Raise the first error of the data stages in `stages` (in stage order) whose settings
    cannot work: a language code fastText does not know, a word list or tokenizer that is not
    there, a Redis or Dask scheduler that does not answer."""
    if any(name in DATA_STAGES for name in stages):
        check_task_runner(cfg)  # every data stage runs its parts through it
    for name, check in STAGE_SETTINGS.items():  # in stage order: the first stage's error comes first
        if name in stages:
            check(cfg)


def _extract(cfg: PipelineConfig) -> None:
    from pipeline.extract.line_filter import check_config as check_engine
    from pipeline.extract.prescreen import check_config

    check_config(cfg)
    check_engine(cfg)


def _filter(cfg: PipelineConfig) -> None:
    from pipeline.filter.stage import check_config

    check_config(cfg.filter)


def _dedup(cfg: PipelineConfig) -> None:
    from pipeline.dedup.settings import PREFLIGHT_REDIS_S, check_config, check_redis

    check_config(cfg.dedup)
    if cfg.dedup.backend == "redis":
        check_redis(cfg.dedup, timeout_s=PREFLIGHT_REDIS_S)


def _tokenizer(cfg: PipelineConfig) -> None:
    from pipeline.tokens.tokenizer import check_config

    check_config(cfg)


# The shards stage has no entry: its settings are all bounded by their types, and its inputs are
# checked by `crawl2gpt stage shards` (crawl2gpt/runner.py check_stage).
STAGE_SETTINGS: dict[str, Callable[[PipelineConfig], None]] = {
    "extract": _extract,
    "filter": _filter,
    "dedup": _dedup,
    "tokenizer": _tokenizer,
}


def check_task_runner(cfg: PipelineConfig) -> None:
    """task_runner=dask or ray needs its Prefect integration installed, and dask_address (when
    set) a scheduler that accepts a connection: else the first stage fails once Prefect runs it."""
    package = {"dask": "prefect_dask", "ray": "prefect_ray"}.get(cfg.task_runner)
    if package and importlib.util.find_spec(package) is None:
        name = package.replace("_", "-")
        raise ConfigError(
            f"task_runner={cfg.task_runner!r} needs {name}: pip install {name} (or set task_runner=processes)"
        )
    if cfg.task_runner == "dask" and cfg.dask_address:
        check_scheduler(cfg.dask_address)


def check_scheduler(address: str) -> None:
    """A Dask scheduler at tcp://host:port (or tls://) accepts a TCP connection within SCHEDULER_WAIT_S."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme not in ("tcp", "tls"):
        return  # inproc://, ucx://: nothing a socket can check
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not host or not port:
        raise ConfigError(f"dask_address={address!r} is not host:port; give tcp://HOST:PORT of a running scheduler")
    try:
        socket.create_connection((host, port), timeout=SCHEDULER_WAIT_S).close()
    except OSError as err:
        raise ConfigError(
            f"dask_address={address!r}: no Dask scheduler accepts connections there within "
            f"{SCHEDULER_WAIT_S:g} s ({err}); start `dask scheduler` there, fix the address, or unset "
            "dask_address for a local cluster"
        ) from None
