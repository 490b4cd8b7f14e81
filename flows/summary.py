"""The short summary a run ends with: one line per stage, the loss curve in numbers, a sample."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from pipeline.extract.config import ExtractConfig

console = Console()
DEFAULT_ENGINE = ExtractConfig.model_fields["engine"].default
SHOWN_FILE_ERRORS = 5  # the rest are in the stage's _stage.json


def file_errors(stats: dict) -> list[tuple[str, str]]:
    """(file, its first error) for each input file of a stage that had errors, in input order.

    Extract keeps errors per file (extra.per_file); other stages list theirs as "file: reason".
    """
    per_file = (stats.get("extra") or {}).get("per_file")
    if per_file:
        # A file that gave no record at all ends with the verdict on the whole file ("no WARC
        # record found: not a WARC file"), which says more than the first bad offset.
        found = [
            (name, info["errors"][-1 if info.get("records") == 0 else 0])
            for name, info in per_file.items()
            if info.get("errors")
        ]
    else:
        first: dict[str, tuple[str, str]] = {}
        for error in stats.get("errors") or []:
            name, _, reason = error.partition(": ") if ": " in error else ("", "", error)
            first.setdefault(name or reason, (name, reason))
        found = list(first.values())
    # The reason repeats the file's path as its prefix; the table shows the name once.
    return [(Path(name).name or name, reason.removeprefix(f"{name}: ")) for name, reason in found]


def error_rows(stats: dict) -> list[str]:
    """'file: first reason' lines, at most SHOWN_FILE_ERRORS, then where the others are."""
    errors = file_errors(stats)
    rows = [f"{name}: {reason}" if name else reason for name, reason in errors[:SHOWN_FILE_ERRORS]]
    if len(errors) > SHOWN_FILE_ERRORS:
        rows.append(f"... {len(errors) - SHOWN_FILE_ERRORS} more in {Path(stats.get('output', '')) / '_stage.json'}")
    return rows


def documents_out(stats: dict) -> str:
    """An empty output is valid (every document dropped, or none came in): say so, not just 0."""
    return (
        f"{stats['docs_out']} (empty output)"
        if stats["docs_out"] == 0 and stats["stage"] != "train"
        else str(stats["docs_out"])
    )


def print_stage_summary(stats: dict) -> None:
    table = Table(title=f"stage {stats['stage']}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("documents in", str(stats["docs_in"]))
    table.add_row("documents out", documents_out(stats))
    engine = (stats.get("extra") or {}).get("engine")
    if engine:  # extract's main-text engine
        table.add_row("engine", engine)
    for reason, n in sorted(stats["drops"].items(), key=lambda kv: -kv[1]):
        table.add_row(f"dropped: {reason}", str(n))
    errors = error_rows(stats)
    if errors:
        table.add_row("files with errors", str(len(file_errors(stats))))
    for row in errors:
        table.add_row("  error", row)
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
        + (f"  val bits/byte {r['val_bpb']:.3f}" if r.get("val_bpb") is not None else "")
        for r in chosen
    ]


def print_run_summary(run_dir: Path, results: dict[str, dict]) -> None:
    table = Table(title=f"crawl2gpt run {run_dir}")
    for column in ("stage", "in", "out", "seconds", "top drops; files with errors"):
        table.add_column(column, justify="right" if column in ("in", "out", "seconds") else "left")
    for name, stats in results.items():
        drops = ", ".join(f"{k} {v}" for k, v in sorted(stats["drops"].items(), key=lambda kv: -kv[1])[:3] if v)
        seconds = "skipped" if stats["skipped"] else f"{stats['seconds']:.1f}"
        if name == "train":  # training counts tokens seen and optimizer steps, not documents
            table.add_row(name, f"{stats['docs_in']:,} tokens", f"{stats['docs_out']} steps", seconds, "")
            continue
        table.add_row(name, str(stats["docs_in"]), documents_out(stats), seconds, drops)
        engine = (stats.get("extra") or {}).get("engine")
        if engine and engine != DEFAULT_ENGINE:  # extract's engine, when not the default (_stage.json has it always)
            table.add_row("", "", "", "", f"engine: {engine}")
        for row in error_rows(stats):
            table.add_row("", "", "", "", f"error: {row}")
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
