"""The end-to-end flow (the DAG): extract -> filter -> dedup -> tokenizer -> shards -> train.

Each stage runs as its own subflow (visible and rerunnable on its own in the UI) over the
run folder's sub-folders; stages whose manifest matches are skipped.
"""
from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from flows.stages import STAGE_FLOWS, load_config, run_name
from pipeline.preflight import check_run
from pipeline.run import stage_inputs, stages_to_force
from pipeline.stage import STAGES


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
    check_run(inputs, workdir, cfg, until)  # bad settings fail in a second, not after extraction
    run_dir = Path(workdir)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.write(run_dir / "config.yaml")  # the exact config this run used; subflows read it back
    forced = stages_to_force(force)
    results = {}
    for name in STAGES[: STAGES.index(until) + 1]:
        stats = STAGE_FLOWS[name](
            inputs=stage_inputs(name, run_dir, inputs),
            output=str(run_dir / name),
            config_path=str(run_dir / "config.yaml"),
            force=name in forced,
        )
        results[name] = stats
        logger.info("%s done: %s in, %s out%s", name, stats["docs_in"], stats["docs_out"], " (skipped)" if stats["skipped"] else "")
    return results
