"""One Prefect task per input part, so a failed part retries alone and shows in the UI.

Where parts run is the config's `task_runner`:
  processes  task threads each hand their part to a shared pool of spawned processes
             (the task is the unit of retry and visibility, the process the unit of parallelism)
  threads    parts run in task threads of this process (I/O-bound work, debugging)
  dask       prefect-dask: a LocalCluster of one-thread worker processes, or `dask_address`
  ray        prefect-ray, when installed
Caching is off on purpose: skipping finished work is the stage manifests' job (one
mechanism, not two).
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from typing import Any

from prefect import task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from pipeline.config import PipelineConfig
from pipeline.errors import Crawl2GPTError
from pipeline.preflight import check_task_runner
from pipeline.stage import PartResult, default_workers

# The process pool of the `processes` runner, set while a stage's parts run. Tasks look it
# up here rather than taking it as a parameter: Prefect records task parameters.
_POOL: ProcessPoolExecutor | None = None


def _worth_retrying(task, task_run, state) -> bool:
    """Retry passing faults (a dropped connection); not our own errors, which name a cause a
    retry cannot fix (bad config, corrupt shard, a full disk: DiskFullError, raised in the task)."""
    return not isinstance(state.result(raise_on_failure=False), Crawl2GPTError)


def _part_label(part: Any, index: int) -> str:
    for attr in ("name", "label", "path", "input"):
        value = getattr(part, attr, None) or (part.get(attr) if isinstance(part, dict) else None)
        if value:
            return str(value).rsplit("/", 1)[-1]
    return f"part-{index:05d}"


@task(
    name="stage-part",
    task_run_name="{stage}:{label}",
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=_worth_retrying,
    cache_policy=NO_CACHE,
)
def run_part_task(stage: str, label: str, fn: Callable[[Any], PartResult], part: Any) -> PartResult:
    if _POOL is None:
        return fn(part)
    return _POOL.submit(fn, part).result()


def task_runner_for(cfg: PipelineConfig, n_parts: int):
    check_task_runner(cfg)  # as before a run's first stage: the integration installed, the scheduler answering
    workers = max(1, min(default_workers(cfg), n_parts))
    if cfg.task_runner in ("processes", "threads"):
        return ThreadPoolTaskRunner(max_workers=workers)
    if cfg.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if cfg.dask_address:
            return DaskTaskRunner(address=cfg.dask_address)
        # Loopback only: distributed's default dashboard address ':8787' listens on every interface.
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": workers,
                "threads_per_worker": 1,
                "processes": True,
                "host": "127.0.0.1",
                "dashboard_address": "127.0.0.1:0",
            }
        )
    from prefect_ray import RayTaskRunner

    return RayTaskRunner()


class PrefectMap:
    """A `map_parts` for pipeline.stage.run_stage that submits one Prefect task per part.

    A stage may map several times (dedup: signatures, bucket ranges, verification, writing);
    used as a context manager around the stage, the task runner (a Dask client or LocalCluster,
    a thread pool) and the process pool start at the first map and serve every later one.
    Called outside a `with`, each map starts and stops its own.
    """

    def __init__(self, stage: str, cfg: PipelineConfig):
        self.stage, self.cfg = stage, cfg
        self.stack: ExitStack | None = None
        self.runner = None

    def __enter__(self) -> PrefectMap:
        self.stack = ExitStack()
        return self

    def __exit__(self, *exc) -> None:
        global _POOL
        stack, self.stack, self.runner = self.stack, None, None
        try:
            if stack is not None:
                stack.close()
        finally:
            if _POOL is not None:
                _POOL.shutdown(cancel_futures=True)
                _POOL = None

    def _start(self, n_parts: int) -> None:
        global _POOL
        if self.runner is None:
            # sized for the stage, not this phase: later phases may have more tasks than the first
            self.runner = self.stack.enter_context(task_runner_for(self.cfg, max(n_parts, default_workers(self.cfg))))
        use_pool = self.cfg.task_runner == "processes" and default_workers(self.cfg) > 1 and n_parts > 1
        if use_pool and _POOL is None:
            _POOL = ProcessPoolExecutor(default_workers(self.cfg), mp_context=mp.get_context("spawn"))

    def __call__(self, fn: Callable[[Any], PartResult], parts: list[Any]) -> list[PartResult]:
        if not parts:
            return []
        if self.stack is None:  # one map, not inside a stage's `with`
            with self:
                return self(fn, parts)
        self._start(len(parts))
        label = getattr(parts[0], "label", None)  # dedup's tasks are labelled "PHASE-NUMBER"
        phase = label.split("-")[0] if isinstance(label, str) else "parts"
        progress = create_progress_artifact(0.0, description=f"{self.stage} {phase}: tasks finished of {len(parts)}")
        futures = [
            self.runner.submit(run_part_task, {"stage": self.stage, "label": _part_label(p, i), "fn": fn, "part": p})
            for i, p in enumerate(parts)
        ]
        for done, _ in enumerate(as_completed(futures), start=1):
            update_progress_artifact(progress, 100.0 * done / len(parts))
        return [f.result() for f in futures]


def prefect_map(stage: str, cfg: PipelineConfig) -> PrefectMap:
    return PrefectMap(stage, cfg)
