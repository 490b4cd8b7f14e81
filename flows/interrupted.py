"""Flow runs the Prefect server still shows Running after their process lost it: marked Crashed.

A run whose process lost the server (flows/server_lost.py) or was killed could not report its
end, so the UI would show it, and the stage subflow it was in, Running for ever. Two moments
know such a run is dead:
- the next pipeline run of the same folder, holding the folder's lock (pipeline/run_lock.py)
  while it looks: no other process can be running in the folder then, so its earlier pipeline
  runs still Running, and their stage subflows still Pending or Running, are dead
  (`crash_interrupted_runs`; a stage flow run on its own, with no parent, is left alone);
- a pipeline run that waited out a server restart, before it runs the cut-off stage again: its
  own subflows still unfinished are the one the restart cut off (`crash_dead_subflows`).
"""

from __future__ import annotations

from pathlib import Path

from crawl2gpt.stages import STAGES
from pipeline.run_lock import run_lock

PIPELINE_FLOW = "crawl2gpt-pipeline"
MESSAGE = (
    "Its process ended without reporting (the Prefect server stopped answering, or the process was "
    "killed); found by flow run {by} of the same run folder, which holds the folder's lock."
)
RERUN_MESSAGE = (
    "The Prefect server stopped answering during this stage; once it answered again, flow run {by} "
    "ran the stage again in a new subflow."
)


def crash_interrupted_runs(workdir: str | Path) -> list[str]:
    """Names of the flow runs set Crashed. Call before this run's first stage: any stage subflow
    of the folder still unfinished then is an earlier run's (its pipeline run may already be
    Crashed: `crawl2gpt serve`'s runner marks that one when its process exits, not its subflows)."""
    folder = Path(workdir).resolve()
    if not folder.is_dir():
        return []  # no earlier run; and a preflight error must not create the folder
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterParentTaskRunId
    from prefect.client.schemas.objects import StateType
    from prefect.runtime import flow_run
    from prefect.states import Crashed

    crashed: list[str] = []
    with run_lock(folder), get_client(sync_client=True) as client:
        pipelines = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[PIPELINE_FLOW])),
            flow_run_filter=FlowRunFilter(state=unfinished(StateType.RUNNING)),
        )
        subflows = client.read_flow_runs(  # a subflow may have died before it ran: Pending too
            flow_filter=FlowFilter(name=FlowFilterName(any_=list(STAGES))),
            flow_run_filter=FlowRunFilter(
                state=unfinished(StateType.PENDING, StateType.RUNNING),
                parent_task_run_id=FlowRunFilterParentTaskRunId(is_null_=False),
            ),
        )
        dead = [run for run in subflows if _folder_of(run, "output", up=1) == folder]
        dead += [run for run in pipelines if str(run.id) != flow_run.id and _folder_of(run, "workdir") == folder]
        for run in dead:
            client.set_flow_run_state(run.id, Crashed(message=MESSAGE.format(by=flow_run.name)), force=True)
            crashed.append(run.name)
    return crashed


def unfinished(*types):
    """A flow-run filter for runs in any of these state types (Prefect's StateType)."""
    from prefect.client.schemas.filters import FlowRunFilterState, FlowRunFilterStateType

    return FlowRunFilterState(type=FlowRunFilterStateType(any_=list(types)))


def _folder_of(run, parameter: str, up: int = 0) -> Path | None:
    """The run folder a flow run worked in: its `workdir`, or its stage `output`'s parent."""
    value = (run.parameters or {}).get(parameter)
    if not value:
        return None
    path = Path(value).resolve()
    return path.parents[up - 1] if up else path


def crash_dead_subflows() -> list[str]:
    """Between two stages of this pipeline run, after the server came back: its subflows still
    Pending or Running are the one the outage killed, whose end could not be reported."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
    from prefect.client.schemas.objects import StateType
    from prefect.runtime import flow_run
    from prefect.states import Crashed

    with get_client(sync_client=True) as client:
        dead = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                state=unfinished(StateType.PENDING, StateType.RUNNING),
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run.id]),
            )
        )
        for run in dead:
            client.set_flow_run_state(run.id, Crashed(message=RERUN_MESSAGE.format(by=flow_run.name)), force=True)
    return [run.name for run in dead]
