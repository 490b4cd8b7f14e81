"""One Prefect task per input part, so a failed part retries alone and shows in the UI.

CPU-bound parts run in a shared process pool (spawned workers): the Prefect task is the
unit of retry and visibility, the pool is the unit of parallelism. Caching is off on purpose:
skipping finished work is the stage manifests' job (one mechanism, not two).
"""
from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait

from pipeline.errors import Crawl2GPTError
from pipeline.stage import PartResult


def _worth_retrying(task, task_run, state) -> bool:
    """Retry passing faults (a dropped connection, a full disk being cleaned); not our own
    errors, which name a cause a retry cannot fix (bad config, corrupt shard)."""
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
def run_part_task(stage: str, label: str, fn: Callable[[Any], PartResult], part: Any, pool: Any = None) -> PartResult:
    if pool is None:
        return fn(part)
    return pool.submit(fn, part).result()


def prefect_map(stage: str, workers: int):
    """A `map_parts` for pipeline.stage.run_stage that submits one Prefect task per part."""

    def run(fn: Callable[[Any], PartResult], parts: list[Any]) -> list[PartResult]:
        if not parts:
            return []
        use_pool = workers > 1 and len(parts) > 1
        pool = ProcessPoolExecutor(min(workers, len(parts)), mp_context=mp.get_context("spawn")) if use_pool else None
        try:
            futures = [
                run_part_task.submit(stage, _part_label(part, i), fn, part, pool) for i, part in enumerate(parts)
            ]
            wait(futures)
            return [f.result() for f in futures]
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)

    return run
