"""The Prefect flow `ablate` (what `crawl2gpt ablate RUN_A RUN_B [...]` runs, flows/ablate_cli.py):
train the same small GPT on each run's shards for the same tokens and seeds, and compare them in
bits per byte on one evaluation text (the work is model/ablation.py; this is the flow and its artifacts).

One task per arm (run x seed), in order: an arm uses every core (or the GPU) by itself. A failed
or killed ablation rerun with the same arguments skips the finished arms and resumes the others
from their checkpoints.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.artifacts import artifact_key, png_markdown


@task(name="ablation-arm", task_run_name="{label}-seed-{seed}", retries=0)
def arm_task(plan: dict, label: str, seed: int) -> dict:
    from model.ablation import run_arm

    return run_arm(plan, label, seed)


def publish(ablation: dict) -> None:
    """The table and verdicts (markdown with the curves inlined) and every arm (a table)."""
    from model.ablation_report import CURVES, markdown

    out = Path(ablation["plan"]["out"])
    name = out.name
    create_markdown_artifact(
        key=artifact_key(name, "ablation"),
        markdown=markdown(ablation) + "\n" + png_markdown(out / CURVES, "learning curves"),
        description="ablation: bits per byte per run over seeds, differences, verdict",
    )
    rows = [
        {k: a[k] for k in ("run", "seed", "steps", "tokens", "eval_bpb", "val_bpb", "final_train_loss", "seconds")}
        for a in ablation["arms"]
    ]
    create_table_artifact(
        key=artifact_key(name, "ablation", "arms"),
        table=rows,
        description="ablation: every arm (run x seed) and its bits per byte",
    )


@flow(name="ablate", flow_run_name="ablate-{output}")
def ablate_flow(
    runs: list[str],
    output: str,
    eval_path: str | None = None,
    seeds: int = 3,
    tokens: int | None = None,
    config_path: str | None = None,
    overrides: list[str] | None = None,
) -> dict:
    """Train the same GPT on each run's shards (same shape, tokens, seeds) and compare them.

    Args:
        runs: Two or more run folders (their shards/ is used) or shards folders; the first is the baseline.
        output: The ablation's folder (ablation.json, ablation.html, curves.png, arms/); rerun to resume.
        eval_path: The common evaluation text (text, JSONL or Parquet documents); empty: data/eval/web-main-text.jsonl.
        seeds: Seeds per run (3 or more give a noise estimate).
        tokens: Training tokens per arm; empty: one pass over the smallest run's train split.
        config_path: A YAML config whose train section sets the shape (e.g. configs/ablate-demo.yaml).
        overrides: train.* overrides, e.g. train.device=cuda.
    """
    from model.ablation import arms, plan_ablation, start, train_settings
    from model.ablation_report import finish
    from model.ablation_stats import difference_lines

    cfg, explicit = train_settings(config_path, overrides or [])
    plan = plan_ablation(runs, output, cfg, eval_path=eval_path, seeds=seeds, tokens=tokens, explicit=explicit)
    start(plan)
    for label, seed in arms(plan):
        arm_task(plan, label, seed)
    ablation = finish(plan)
    for line in difference_lines(ablation):  # the verdicts (the CLI prints the whole table)
        get_run_logger().info(line)
    publish(ablation)
    return ablation
