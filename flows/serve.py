"""Deployments for the Prefect UI: the pipeline on a schedule, every stage, training, fine-tuning, ablation.

`crawl2gpt serve` registers them with the server at PREFECT_API_URL and executes the runs
started from the UI in this process (Prefect's `serve`, no work pool needed). For work pools
and several machines, see deployments/prefect.yaml.
"""

from __future__ import annotations

import os
from pathlib import Path

from prefect import serve

from crawl2gpt.stages import STAGES, stage_inputs
from flows.ablate import ablate_flow
from flows.dag import pipeline_flow
from flows.finetune import finetune_classify_flow, finetune_sft_flow
from flows.stages import STAGE_FLOWS
from pipeline.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample" / "CC-SAMPLE-A-00002.warc.gz"
DEMO_CONFIG = ROOT / "configs" / "demo.yaml"
ABLATE_DEMO = ROOT / "runs" / "ablate-demo"  # what `make ablate-demo` writes


def build_deployments(run_dir: Path, cron: str | None = "0 3 * * *", inputs: list[str] | None = None):
    """The whole DAG (scheduled), one per stage, and fine-tuning (defaults: the same run folder)."""
    run_dir = Path(run_dir).resolve()
    inputs = inputs or [str(SAMPLE)]
    deployments = [
        pipeline_flow.to_deployment(
            name="pipeline",
            cron=cron,
            parameters={"inputs": inputs, "workdir": str(run_dir), "config_path": str(DEMO_CONFIG)},
            description="The whole DAG on the bundled sample, nightly. "
            "Change inputs/workdir in the form for your own crawl.",
            tags=["crawl2gpt"],
        )
    ]
    for name in STAGES:
        deployments.append(
            STAGE_FLOWS[name].to_deployment(
                name=name,
                parameters={
                    "inputs": stage_inputs(name, run_dir, inputs),
                    "output": str(run_dir / name),
                    "config_path": str(DEMO_CONFIG),
                    "force": True,
                },
                description=f"Rerun the {name} stage of {run_dir.name} "
                "(force is on: that is what a rerun from the UI is for).",
                tags=["crawl2gpt", "stage"],
            )
        )
    finetune = [  # (flow, deployment, the run folder it reads as data, description)
        (
            finetune_sft_flow,
            "sft",
            "dedup",
            "Instruction-tune the run's GPT on pairs derived from its deduplicated documents (or your JSONL).",
        ),
        (
            finetune_classify_flow,
            "classify",
            "filter",
            "Train a keep/drop classifier from the run's filter decisions (or your TSV/JSONL labels).",
        ),
    ]
    for finetune_flow, name, data, description in finetune:
        parameters = {
            "config_path": str(DEMO_CONFIG),
            "base": str(run_dir / "train"),
            "data": str(run_dir / data),
            "output": str(run_dir / name),
        }
        deployments.append(
            finetune_flow.to_deployment(
                name=name, parameters=parameters, description=description, tags=["crawl2gpt", "finetune"]
            )
        )
    deployments.append(
        ablate_flow.to_deployment(
            name="ablate",
            parameters={
                "runs": [str(ABLATE_DEMO / "filters-on"), str(ABLATE_DEMO / "filters-off")],
                "output": str(ABLATE_DEMO / "ablation"),
                "config_path": str(ROOT / "configs" / "ablate-demo.yaml"),
                "tokens": 307_200,
            },
            description="Train the same small GPT on each run's shards (same tokens and seeds) "
            "and compare them in bits per byte on one evaluation text. "
            "Put your run folders in `runs`; rerun to resume.",
            tags=["crawl2gpt", "ablation"],
        )
    )
    return deployments


def serve_all(
    run_dir: Path, cron: str | None = "0 3 * * *", inputs: list[str] | None = None, limit: int | None = None
) -> None:
    """Register the deployments and execute their runs here, at most `limit` at once (default: one
    per CPU core). Runs past the limit wait as Scheduled and start as slots free up, so a burst of
    runs (a backfill, many users) queues instead of oversubscribing the machine."""
    if limit is None:
        limit = os.cpu_count() or 1  # as the stages' default `workers`
    if limit < 1:
        raise ConfigError(f"crawl2gpt serve --limit {limit}: give at least 1 (flow runs at once)")
    serve(*build_deployments(run_dir, cron, inputs), limit=limit)
