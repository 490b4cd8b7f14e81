"""The DAG loop: run the stages in order into RUN_DIR/<stage>, skipping the up-to-date ones.

One loop, two drivers: `run_pipeline` runs each stage in this process (tests, scripts, the chaos
driver), and flows/dag.py passes a function that runs each stage as a Prefect subflow. Either way
the loop holds the run folder's lock (pipeline/run_lock.py): a second run on the same folder
stops at once with RunLockedError, before it writes anything.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from crawl2gpt.config import RunConfig
from crawl2gpt.stages import load_stage, stage_inputs, stage_options, stages_to_force, stages_until
from pipeline.atomic import out_of_room
from pipeline.errors import DiskFullError
from pipeline.preflight import check_inputs, check_settings
from pipeline.run_lock import run_lock
from pipeline.stage import MapParts, StageStats, read_manifest, run_stage

# run_one(stage name, its inputs, its output folder, force) -> the stage's stats
RunOne = Callable[[str, list[str], Path, bool], StageStats]


def check_run(raw_inputs: Sequence[str], workdir: str | Path, cfg: RunConfig, until: str = "train") -> None:
    """Everything that can be checked before the first stage, for every stage up to `until`: a
    bad path or setting fails in seconds, and writes nothing."""
    stages = stages_until(until)
    check_inputs(raw_inputs, workdir)
    check_stage_settings(cfg, stages)


def check_stage_settings(cfg: RunConfig, stages: Sequence[str]) -> None:
    """The settings checks of `stages` (pipeline/preflight.py), the train stage's included."""
    check_settings(cfg, stages)
    if "train" in stages:
        from model.preflight import check_settings as check_train_settings

        check_train_settings(cfg.train, world_size=cfg.train.nproc_per_node)


def check_stage(name: str, inputs: Sequence[str], output: str | Path, cfg: RunConfig) -> None:
    """What `crawl2gpt stage NAME` can check before it starts: its inputs exist, its output
    is not a file, its input folders are finished stages, the stage's settings (as `run` checks
    them) and, where the stage has such a check, that its input folders are the ones it reads."""
    check_inputs(inputs, output)
    if name != "extract":  # extract reads WARC files; every other stage reads stage folders
        for folder in inputs:
            read_manifest(Path(folder))  # StageIncompleteError names the unfinished folder
    check_stage_settings(cfg, [name])
    load_stage(name).check_inputs(list(inputs), cfg)  # a no-op for stages without such a check


def run_dag(
    raw_inputs: Sequence[str],
    workdir: str | Path,
    cfg: RunConfig,
    run_one: RunOne,
    *,
    force_from: str | None = None,
    until: str = "train",
    on_stage: Callable[[StageStats], None] | None = None,
) -> dict[str, StageStats]:
    """Check the run, lock its folder, write its config, then call `run_one` for each stage up to `until`."""
    check_run(raw_inputs, workdir, cfg, until)
    workdir = Path(workdir)
    with run_lock(workdir):  # creates the folder; refuses it while another process runs in it
        write_config(cfg, workdir / "config.yaml")
        forced = stages_to_force(force_from)
        results: dict[str, StageStats] = {}
        for name in stages_until(until):
            stats = run_one(name, stage_inputs(name, workdir, raw_inputs), workdir / name, name in forced)
            results[name] = stats
            if on_stage:
                on_stage(stats)
    return results


def write_config(cfg: RunConfig, path: Path) -> None:
    """The exact config this run used (subflows read it back); a full disk here is said as such."""
    try:
        cfg.write(path)
    except OSError as err:
        if out_of_room(err) is None:
            raise
        raise DiskFullError(
            f"no room to write {path} ({err.strerror}) before the first stage. Free space there and "
            "rerun the same command: finished stages are kept"
        ) from err


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
    """The whole DAG in this process, no Prefect: parts run in a local process pool."""

    def run_one(name: str, inputs: list[str], output: Path, force: bool) -> StageStats:
        return run_stage(load_stage(name), inputs, output, cfg, force=force, map_parts=map_parts, **stage_options(name))

    return run_dag(raw_inputs, workdir, cfg, run_one, force_from=force_from, until=until, on_stage=on_stage)
