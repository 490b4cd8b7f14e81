"""The short summary a run ends with: one line per stage, the loss curve in numbers, a sample."""
from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

console = Console()


def print_stage_summary(stats: dict) -> None:
    table = Table(title=f"stage {stats['stage']}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("documents in", str(stats["docs_in"]))
    table.add_row("documents out", str(stats["docs_out"]))
    for reason, n in sorted(stats["drops"].items(), key=lambda kv: -kv[1]):
        table.add_row(f"dropped: {reason}", str(n))
    table.add_row("seconds", f"{stats['seconds']:.1f}" + (" (skipped: up to date)" if stats["skipped"] else ""))
    table.add_row("output", stats["output"])
    console.print(table)


def loss_curve_lines(metrics_path: Path, points: int = 6) -> list[str]:
    """A handful of (step, train loss, val loss) rows spread over the run."""
    from model.training import MetricsLog  # here, not at the top: a data-only run's summary needs no torch

    evals = MetricsLog(metrics_path).evals()
    if not evals:
        return []
    stride = max(1, len(evals) // points)
    chosen = evals[::stride]
    if chosen[-1] is not evals[-1]:
        chosen.append(evals[-1])
    return [
        f"step {r['step']:>6}  train loss {r.get('loss', float('nan')):.3f}  val loss {r['val_loss']:.3f}"
        f"  val perplexity {r.get('val_perplexity', float('nan')):.1f}"
        for r in chosen
    ]


def print_run_summary(run_dir: Path, results: dict[str, dict]) -> None:
    table = Table(title=f"crawl2gpt run {run_dir}")
    for column in ("stage", "in", "out", "seconds", "top drops"):
        table.add_column(column, justify="right" if column in ("in", "out", "seconds") else "left")
    for name, stats in results.items():
        drops = ", ".join(f"{k} {v}" for k, v in sorted(stats["drops"].items(), key=lambda kv: -kv[1])[:3] if v)
        seconds = "skipped" if stats["skipped"] else f"{stats['seconds']:.1f}"
        if name == "train":  # training counts tokens seen and optimizer steps, not documents
            table.add_row(name, f"{stats['docs_in']:,} tokens", f"{stats['docs_out']} steps", seconds, "")
            continue
        table.add_row(name, str(stats["docs_in"]), str(stats["docs_out"]), seconds, drops)
    console.print(table)
    curve = loss_curve_lines(run_dir / "train" / "metrics.jsonl")
    if curve:
        console.print("[bold]loss curve[/bold]")
        for line in curve:
            console.print("  " + line)
    sample = (results.get("train") or {}).get("extra", {}).get("sample")
    if sample:
        console.print("[bold]generated sample[/bold]")
        console.print(sample, markup=False, highlight=False)
    report = run_dir / "shards" / "report.html"
    if report.is_file():
        console.print(f"shard quality report: {report}")
