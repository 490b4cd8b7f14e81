"""Earlier pipeline runs of a run folder that the Prefect server still shows Running: marked Crashed.

A run whose process lost the server (flows/server_lost.py) or was killed could not report its
end, so the UI would show it, and the stage subflow it was in, Running for ever. The next
pipeline run of the same folder holds the folder's lock (pipeline/run_lock.py) while it looks:
no other process can be running in that folder then, so every such run is dead, and it is set
to Crashed with a message saying so, with its subflows still Pending or Running.
"""
from __future__ import annotations

from pathlib import Path

from pipeline.run_lock import run_lock

PIPELINE_FLOW = "crawl2gpt-pipeline"
MESSAGE = ("Its process ended without reporting (the Prefect server stopped answering, or the process was "
           "killed); found by flow run {by} of the same run folder, which holds the folder's lock.")


def crash_interrupted_runs(workdir: str | Path) -> list[str]:
    """Names of the flow runs set Crashed. Nothing to do for a folder that does not exist yet."""
    folder = Path(workdir).resolve()
    if not folder.is_dir():
        return []  # no earlier run; and a preflight error must not create the folder
    from prefect import get_client
    from prefect.client.schemas.filters import (FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterParentFlowRunId,
                                                FlowRunFilterState, FlowRunFilterStateType)
    from prefect.client.schemas.objects import StateType
    from prefect.runtime import flow_run
    from prefect.states import Crashed

    running = FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING]))
    crashed: list[str] = []
    with run_lock(folder), get_client(sync_client=True) as client:
        pipelines = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[PIPELINE_FLOW])),
                                          flow_run_filter=FlowRunFilter(state=running))
        dead = [run for run in pipelines if str(run.id) != flow_run.id and _folder_of(run) == folder]
        if not dead:
            return []
        unfinished = FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PENDING, StateType.RUNNING]))
        stages = client.read_flow_runs(flow_run_filter=FlowRunFilter(  # a subflow may have died before it ran
            state=unfinished, parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run.id for run in dead])))
        for run in [*stages, *dead]:
            client.set_flow_run_state(run.id, Crashed(message=MESSAGE.format(by=flow_run.name)), force=True)
            crashed.append(run.name)
    return crashed


def _folder_of(run) -> Path | None:
    workdir = (run.parameters or {}).get("workdir")
    return Path(workdir).resolve() if workdir else None
