"""Artifacts for the two stages whose output is best seen as pictures: shards and train."""

from __future__ import annotations

from pathlib import Path

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.artifacts import artifact_key, png_markdown, run_label


def publish_shard_report(shards_dir: Path, config_name: str) -> None:
    """The quality report: the per-shard table and one markdown artifact per report section
    (filter rules, signal histograms, dedup clusters, examples, shards, samples), plots inlined."""
    from pipeline.report.build import REPORT_HTML, report_markdown, report_tables

    run = run_label(shards_dir, "shards")
    rows, _ = report_tables(shards_dir)
    create_table_artifact(
        key=artifact_key(run, "shards", "quality"), table=rows, description="shard quality per shard and in total"
    )
    where = f"\n\nThe whole report (config `{config_name}`): `{Path(shards_dir).resolve() / REPORT_HTML}`"
    for section, markdown in report_markdown(shards_dir).items():
        create_markdown_artifact(
            key=artifact_key(run, "report", section),
            markdown=markdown + where,
            description=f"quality report: {section}",
        )


def publish_training(train_dir: Path, config_name: str) -> None:
    """Loss curve and the last evaluation of a training run."""
    from model.training import MetricsLog  # here, not at the top: the shards report needs no torch

    run = run_label(train_dir, "train")
    evals = MetricsLog.of(train_dir).evals()
    if evals:
        create_table_artifact(
            key=artifact_key(run, "train", "evals"), table=evals, description="evaluations during training"
        )
    parts = [f"## Training `{run}` (config `{config_name}`)", ""]
    if evals:
        last = evals[-1]
        bpb = f", {last['val_bpb']:.4f} bits per byte" if last.get("val_bpb") is not None else ""
        parts.append(f"- last eval: step {last.get('step')}, val loss {last.get('val_loss'):.4f}{bpb}")
    samples = train_dir / "samples.txt"
    if samples.is_file():
        parts += ["", "Last sample:", "", "```", samples.read_text()[-1500:], "```"]
    loss_png = train_dir / "loss.png"
    if loss_png.is_file():
        parts.append(png_markdown(loss_png, "loss curve"))
    create_markdown_artifact(
        key=artifact_key(run, "train", "summary"), markdown="\n".join(parts), description="training summary"
    )
