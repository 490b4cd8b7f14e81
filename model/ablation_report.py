"""What a finished ablation writes into its folder, and what the CLI and the Prefect UI show:

ablation.json    the plan, every arm's result and curve, each run's spread over seeds, the
                 differences against the first run with their noise estimate and verdict
ablation.md      the table and the verdicts (the text the CLI prints, as markdown)
curves.png       learning curves: bits per byte on the common evaluation text, and on each run's
                 own validation split, against tokens seen (mean over seeds, band = min to max)
ablation.html    one standalone page of all of it (the plot inlined)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from model.ablation import METRICS, arms, read_result
from model.ablation_stats import difference_lines, markdown_table, summarize, table_rows, text_table
from pipeline.atomic import atomic_write_text, atomic_write_with

CURVES = "curves.png"


def finish(plan: dict[str, Any]) -> dict[str, Any]:
    """Summarize every finished arm of `plan` into its folder; returns ablation.json's content."""
    results = [r for label, seed in arms(plan) if (r := read_result(plan, label, seed)) is not None]
    labels = [run["label"] for run in plan["runs"]]
    summary = summarize(results, labels, METRICS)
    epochs = {run["label"]: plan["tokens"] / run["train_tokens"] for run in plan["runs"]}
    ablation = {
        "plan": plan,
        "arms": results,
        "complete": len(results) == len(arms(plan)),
        "epochs": epochs,
        **summary,
    }
    out = Path(plan["out"])
    atomic_write_text(out / "ablation.json", json.dumps(ablation, indent=2) + "\n")
    plot_curves(out / CURVES, results, labels)
    atomic_write_text(out / "ablation.md", markdown(ablation))
    atomic_write_text(out / "ablation.html", page(out, ablation))
    return ablation


def headline(ablation: dict[str, Any]) -> str:
    plan, train = ablation["plan"], ablation["plan"]["train"]
    shape = f"{train['arch']} {train['n_layer']} layers x {train['n_embd']}, block {train['block_size']}"
    done = (
        ""
        if ablation["complete"]
        else f" (incomplete: {len(ablation['arms'])} of {len(plan['runs']) * len(plan['seeds'])} arms)"
    )
    return (
        f"{len(plan['runs'])} runs x {len(plan['seeds'])} seeds, {plan['tokens']:,} tokens each ({shape}); "
        f"eval text {Path(plan['eval']['path']).name} ({plan['eval']['bytes']:,} bytes){done}"
    )


def text(ablation: dict[str, Any]) -> str:
    """The table and verdicts as the CLI prints them."""
    rows = table_rows(ablation, ablation["epochs"])
    return "\n".join([f"ablation: {headline(ablation)}", "", text_table(rows), "", *difference_lines(ablation)])


def markdown(ablation: dict[str, Any]) -> str:
    rows = table_rows(ablation, ablation["epochs"])
    lines = [
        f"## Ablation `{Path(ablation['plan']['out']).name}`",
        "",
        headline(ablation),
        "",
        markdown_table(rows),
        "",
    ]
    lines += [f"- {line}" for line in difference_lines(ablation)]
    lines += [
        "",
        "Bits per byte: lower is better. Mean ± sample standard deviation [min, max] over seeds; "
        "'within noise' when the seeds' ranges overlap.",
    ]
    return "\n".join(lines) + "\n"


def page(out: Path, ablation: dict[str, Any]) -> str:
    import html

    from pipeline.report.page import STYLE, html_table
    from pipeline.report.plots import png_data_uri

    rows = table_rows(ablation, ablation["epochs"])
    body = [
        f"<h1>Ablation {html.escape(out.name)}</h1>",
        f"<p>{html.escape(headline(ablation))}</p>",
        html_table(rows),
        "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in difference_lines(ablation)) + "</ul>",
    ]
    if (out / CURVES).is_file():
        body.append(f'<figure><img alt="learning curves" src="{png_data_uri(out / CURVES)}"></figure>')
    arm_rows = [
        {k: a[k] for k in ("run", "seed", "steps", "tokens", "eval_bpb", "val_bpb", "final_train_loss", "seconds")}
        for a in ablation["arms"]
    ]
    body += ["<h2>Arms</h2>", html_table(arm_rows)]
    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>crawl2gpt ablation</title>'
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def plot_curves(path: Path, results: list[dict[str, Any]], labels: list[str]) -> None:
    """Bits per byte against tokens seen, per run: the mean over seeds, a band from min to max."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharex=True)
    titles = {"eval_bpb": "common evaluation text", "val_bpb": "own validation split (trainer's estimate)"}
    for ax, metric in zip(axes, METRICS):
        for label in labels:
            curves = [r["curve"] for r in results if r["run"] == label]
            steps = sorted({p["tokens"] for c in curves for p in c if p.get(metric) is not None})
            if not steps:
                continue
            values = np.array(
                [[next((p[metric] for p in c if p["tokens"] == t), np.nan) for t in steps] for c in curves], dtype=float
            )
            mean = np.nanmean(values, axis=0)
            (line,) = ax.plot(steps, mean, marker="o", markersize=3, label=f"{label} ({len(curves)} seeds)")
            ax.fill_between(
                steps, np.nanmin(values, axis=0), np.nanmax(values, axis=0), color=line.get_color(), alpha=0.2
            )
        ax.set(title=titles[metric], xlabel="tokens seen", ylabel="bits per byte")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    atomic_write_with(path, lambda fh: fig.savefig(fh, format="png", dpi=110))
    plt.close(fig)
