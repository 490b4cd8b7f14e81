"""Artifacts for the two stages whose output is best seen as pictures: shards and train."""
from __future__ import annotations

from pathlib import Path

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.artifacts import artifact_key, png_markdown


def publish_shard_report(shards_dir: Path, run_name: str) -> None:
    """The shard quality report: its table, its markdown and its plots."""
    from pipeline.report import report_tables

    rows, markdown = report_tables(shards_dir)
    create_table_artifact(key=artifact_key(run_name, "shards", "quality"), table=rows, description="shard quality per shard and in total")
    plots = "".join(png_markdown(p, p.stem.replace("_", " ")) for p in sorted(shards_dir.glob("*.png")))
    report = shards_dir / "report.html"
    create_markdown_artifact(
        key=artifact_key(run_name, "shards", "report"),
        markdown=f"{markdown}\n\nFull report: `{report}`\n\n{plots}",
        description="shard quality report",
    )


def publish_training(train_dir: Path, run_name: str) -> None:
    """Loss curve and the last evaluation of a training run."""
    from model.training import MetricsLog  # here, not at the top: the shards report needs no torch

    evals = MetricsLog.of(train_dir).evals()
    if evals:
        create_table_artifact(key=artifact_key(run_name, "train", "evals"), table=evals, description="evaluations during training")
    parts = [f"## Training `{run_name}`", ""]
    if evals:
        last = evals[-1]
        parts.append(f"- last eval: step {last.get('step')}, val loss {last.get('val_loss'):.4f}")
    samples = train_dir / "samples.txt"
    if samples.is_file():
        parts += ["", "Last sample:", "", "```", samples.read_text()[-1500:], "```"]
    loss_png = train_dir / "loss.png"
    if loss_png.is_file():
        parts.append(png_markdown(loss_png, "loss curve"))
    create_markdown_artifact(key=artifact_key(run_name, "train", "summary"), markdown="\n".join(parts), description="training summary")
