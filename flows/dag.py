"""The end-to-end flow (the DAG): extract -> filter -> dedup -> tokenizer -> shards -> train.

Each stage runs as its own subflow (visible and rerunnable on its own in the UI) over the
run folder's sub-folders; stages whose manifest matches are skipped.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from crawl2gpt.runner import run_dag
from flows.interrupted import crash_dead_subflows, crash_interrupted_runs
from flows.server_lost import through_restarts
from flows.stages import STAGE_FLOWS, load_config, run_name
from pipeline.stage import StageStats


@flow(name="crawl2gpt-pipeline", flow_run_name=run_name("pipeline", "workdir"), log_prints=True)
def pipeline_flow(
    inputs: list[str],
    workdir: str,
    config_path: str | None = None,
    overrides: list[str] | None = None,
    force: str | None = None,
    until: str = "train",
) -> dict:
    """Run the whole crawl2gpt DAG: extract, filter, dedup, tokenizer, shards, train.

    Args:
        inputs: WARC files, folders, globs, http(s):// or s3:// URLs.
        workdir: The run folder; each stage writes a sub-folder named after it.
        config_path: A YAML config file; empty means the published defaults.
        overrides: Config overrides as section.key=value, e.g. train.max_steps=1000.
        force: A stage name to rerun it and every stage after it, or 'all'.
        until: The last stage to run (e.g. shards to stop before training).
    """
    logger = get_run_logger()
    cfg = load_config(config_path, overrides)
    config_file = str(Path(workdir) / "config.yaml")  # written by run_dag before the first stage

    def run_subflow(name: str, stage_inputs: list[str], output: Path, force_stage: bool) -> StageStats:
        def stage_flow() -> dict:
            return STAGE_FLOWS[name](
                inputs=stage_inputs, output=str(output), config_path=config_file, force=force_stage
            )

        # a Prefect server restart: the stage again once the server is back (flows/server_lost.py)
        stats = through_restarts(name, stage_flow, on_back=crash_dead_subflows)
        logger.info(
            "%s done: %s in, %s out%s",
            name,
            stats["docs_in"],
            stats["docs_out"],
            " (skipped)" if stats["skipped"] else "",
        )
        return StageStats.from_dict(stats)

    for name in crash_interrupted_runs(workdir):  # the UI would show them Running for ever
        logger.warning("flow run %s of this run folder had ended without reporting: marked Crashed", name)
    results = run_dag(inputs, workdir, cfg, run_subflow, force_from=force, until=until)
    return {name: stats.to_dict() for name, stats in results.items()}
