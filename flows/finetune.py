"""Prefect flows `finetune-sft` and `finetune-classify`: thin wrappers over model/finetune.py and
model/classify.py that publish each run's figures, plots and sample answers as artifacts."""

from __future__ import annotations

import json
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from crawl2gpt.config import RunConfig
from flows.artifacts import artifact_key, png_markdown, run_label, scalar_rows


@task(name="sft", retries=0)
def sft_task(base: str, data: str, output: str, cfg: RunConfig) -> dict:
    from model.finetune import run_sft

    return run_sft(base, data, output, cfg)


@task(name="classify", retries=0)
def classify_task(base: str, data: str, output: str, cfg: RunConfig, label_column: str) -> dict:
    from model.classify import run_classify

    return run_classify(base, data, output, cfg, label_column)


def _loss(value: float | None) -> str:
    # A data set too small to hold any example out has no held-out loss; say so instead of failing.
    return "n/a (no held-out examples)" if value is None else f"{value:.4f}"


def publish_sft(summary: dict, run_name: str) -> None:
    create_table_artifact(
        key=artifact_key(run_name, "finetune-sft", "summary"),
        table=scalar_rows(summary),
        description="SFT: counts (with skip reasons), parameters, losses, memory",
    )
    answers = [json.loads(line) for line in Path(summary["answers"]).read_text().splitlines()]
    parts = [
        f"## SFT of `{summary['base']}` ({summary['method']})",
        "",
        f"- held-out loss: {_loss(summary['base_val_loss'])} before, {_loss(summary['val_loss'])} after",
        f"- trainable parameters: {summary['params']['trainable']:,} of {summary['params']['total']:,}",
        "",
        png_markdown(Path(summary["loss_plot"]), "loss"),
        "",
        "| prompt | reference | base | fine-tuned |",
        "|---|---|---|---|",
    ]
    cell = lambda text: str(text).replace("|", "\\|").replace("\n", " ")[:300]  # noqa: E731
    parts += [
        f"| {cell(a['prompt'][-1][1])} | {cell(a['reference'])} "
        f"| {cell(a['base_answer'])} | {cell(a['finetuned_answer'])} |"
        for a in answers
    ]
    create_markdown_artifact(
        key=artifact_key(run_name, "finetune-sft", "report"),
        markdown="\n".join(parts),
        description="SFT loss curve and held-out answers",
    )


def publish_classify(summary: dict, run_name: str) -> None:
    create_table_artifact(
        key=artifact_key(run_name, "finetune-classify", "summary"),
        table=scalar_rows(summary),
        description="classifier: accuracy, macro F1, counts, parameters",
    )
    report = json.loads(Path(summary["eval"]).read_text())
    create_table_artifact(
        key=artifact_key(run_name, "finetune-classify", "per-class"),
        table=[dict(label=k, **v) for k, v in report["per_class"].items()],
        description="held-out precision / recall / F1 per label",
    )
    markdown = (
        f"## Classifier on `{summary['data']}`\n\n"
        f"accuracy {summary['accuracy']:.4f}, macro F1 {summary['macro_f1']:.4f} "
        f"(majority-class baseline {summary['majority_baseline_accuracy']:.4f})\n\n"
        + png_markdown(Path(summary["confusion_plot"]), "confusion matrix")
        + "\n"
        + png_markdown(Path(summary["loss_plot"]), "loss")
    )
    create_markdown_artifact(
        key=artifact_key(run_name, "finetune-classify", "report"),
        markdown=markdown,
        description="confusion matrix and loss curve",
    )


@flow(name="finetune-sft", flow_run_name="finetune-sft-{output}", log_prints=True)
def finetune_sft_flow(
    base: str, data: str, output: str, config_path: str | None = None, overrides: list[str] | None = None
) -> dict:
    """Instruction-tune a checkpoint (or GPT-2) on JSONL data.

    Args:
        base: A checkpoint, checkpoints/ or train run folder of ours, or a GPT-2 folder / cached hub name (gpt2).
        data: JSONL (Alpaca, chat messages or prompt/completion), or a finished extract/filter/dedup folder
            to derive pairs from.
        output: The folder the run writes (metrics, answers, checkpoint).
        config_path: A YAML config file; empty means the published defaults.
        overrides: Config overrides as section.key=value, e.g. finetune.method=lora.
    """
    cfg = RunConfig.load(config_path, overrides or [])
    summary = sft_task(base, data, output, cfg)
    get_run_logger().info("SFT held-out loss %.4f -> %.4f", summary["base_val_loss"], summary["val_loss"])
    publish_sft(summary, run_label(output, "sft"))  # keyed by the run folder, not the config name
    return summary


@flow(name="finetune-classify", flow_run_name="finetune-classify-{output}", log_prints=True)
def finetune_classify_flow(
    base: str,
    data: str,
    output: str,
    config_path: str | None = None,
    overrides: list[str] | None = None,
    label_column: str = "keep_drop",
) -> dict:
    """Fine-tune a checkpoint as a text classifier and evaluate it on a held-out split.

    Args:
        base: A checkpoint, checkpoints/ or train run folder of ours, or a GPT-2 folder.
        data: TSV (label<TAB>text), JSONL ({"text", "label"}) or a finished filter folder (keep/drop labels).
        output: The folder the run writes (eval.json, confusion.png, classifier weights).
        config_path: A YAML config file; empty means the published defaults.
        overrides: Config overrides as section.key=value, e.g. finetune.classify.pooling=mean.
        label_column: For a filter folder: keep_drop, or a column such as language.
    """
    cfg = RunConfig.load(config_path, overrides or [])
    summary = classify_task(base, data, output, cfg, label_column)
    get_run_logger().info("classifier accuracy %.4f, macro F1 %.4f", summary["accuracy"], summary["macro_f1"])
    publish_classify(summary, run_label(output, "classify"))
    return summary
