"""Quality report: what the token shards hold, and what the pipeline removed to get there.

Built from the shards themselves (pipeline/report/shards_scan.py: one streaming pass, checksums
verified), so a report can be rebuilt for any finished shards folder; from the upstream stage
manifests the documents each rule removed (pipeline/report/upstream.py); and from the filter and
dedup folders themselves what a user tunes thresholds with (pipeline/report/filter.py: per-signal
histograms, per-rule and only-this-rule counts, examples on both sides of each threshold, drops by
language and domain; pipeline/report/dedup.py: the largest clusters).

Outputs beside the shards: `report.json` (the summary, machine-readable), `report.html`
(standalone: PNGs inlined as base64, also written as files next to it) and `report-*.png`.
Laid out by pipeline/report/page.py, which also gives the Prefect artifacts their markdown.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.atomic import atomic_write_text
from pipeline.errors import InputError
from pipeline.report import plots
from pipeline.report.dedup import dedup_report
from pipeline.report.filter import filter_report
from pipeline.report.page import REMOVING, markdown_sections, removed_rows, render_html, shard_blocks, to_markdown
from pipeline.report.shards_scan import TOP_LANGUAGES, scan
from pipeline.report.upstream import upstream_of, upstream_stats
from pipeline.shard_format import MANIFEST_JSON

REPORT_JSON, REPORT_HTML = "report.json", "report.html"


# --------------------------------------------------------------------------- writing


def write_report(shards_dir: str | Path, upstream: Sequence[Path] | None = None) -> dict[str, Any]:
    """Scan the shards and the filter and dedup folders behind them; write report.json,
    report.html and the PNGs beside the shards; return the report."""
    shards_dir = Path(shards_dir)
    report = scan(shards_dir)
    report["upstream"] = upstream_stats(list(upstream or []) + upstream_of(shards_dir))
    if "filter" in report["upstream"]:
        report["filter"] = filter_report(report["upstream"]["filter"]["folder"])
        report["filter"]["plots"] = _filter_plots(shards_dir, report["filter"])
    if "dedup" in report["upstream"]:
        report["dedup"] = dedup_report(report["upstream"]["dedup"]["folder"])
    report["plots"] = [p.name for p in _plots(shards_dir, report)]
    for stale in set(p.name for p in shards_dir.glob("report-*.png")) - set(plot_files(report)):
        (shards_dir / stale).unlink()  # a signal or rule the new report no longer has
    atomic_write_text(shards_dir / REPORT_JSON, json.dumps(report, indent=2, ensure_ascii=False))
    atomic_write_text(shards_dir / REPORT_HTML, render_html(shards_dir, report))
    return report


def plot_files(report: dict[str, Any]) -> list[str]:
    """Every PNG the report refers to."""
    filter_plots = report.get("filter", {}).get("plots", {})
    named = [v for k, v in filter_plots.items() if k != "signals"]
    return report["plots"] + named + list(filter_plots.get("signals", {}).values())


def _plots(folder: Path, report: dict[str, Any]) -> list[Path]:
    hist = report["tokens_per_doc_histogram"]
    made = [
        plots.histogram(
            folder / "report-tokens-per-doc.png",
            hist["edges"],
            hist["counts"],
            "Tokens per document",
            "tokens (log scale)",
        )
    ]
    langs, doms, shards = report["languages"], report["top_domains"], report["shards"]
    removed = [{"name": f"{r['stage']}: {r['rule']}", **r} for r in removed_rows(report["upstream"])]
    shard_colors = ["#4c72b0" if r["split"] == "train" else "#dd8452" for r in shards]
    bars = [  # (file name, rows, label column, value column, title, axis label, colours)
        ("languages", langs, "name", "documents", "Language mix", "documents", None),
        ("domains", doms, "name", "tokens", f"Top {len(doms)} domains", "tokens", None),
        ("shards", shards, "shard", "tokens", "Tokens per shard", "tokens", shard_colors),
        ("removed", removed, "name", "documents", "Documents removed upstream, by rule", "documents", "#c44e52"),
    ]
    for name, rows, label, value, title, axis, colors in bars:
        if rows or name == "shards":  # the shards plot is drawn even with no shard
            labels, values = [r[label] for r in rows], [r[value] for r in rows]
            made.append(plots.bars(folder / f"report-{name}.png", labels, values, title, axis, colors=colors))
    return made


def _filter_plots(folder: Path, f: dict[str, Any]) -> dict[str, Any]:
    """One histogram per thresholded signal, the per-rule counts, drops by language and domain."""
    made: dict[str, Any] = {"signals": {}}
    for s in f["signals"]:
        name = f"report-signal-{s['signal']}.png"
        lines = [(line["value"], line["rule"].split(".", 1)[1]) for line in s["lines"]]
        plots.signal_histogram(folder / name, s["edges"], s["kept"], s["dropped"], lines, s["signal"], s["log_x"])
        made["signals"][s["signal"]] = name
    active = [r for r in f["rules"] if r["fails"]]
    if active:
        made["rules"] = plots.grouped_bars(
            folder / "report-filter-rules.png",
            [r["rule"] for r in active],
            {k: [r[k] for r in active] for k in ("fails", "dropped_first", "only_this_rule")},
            ["#8c8c8c", plots.DROPPED, "#dd8452"],
            "Documents per filter rule",
            "documents",
        ).name
    for key, rows, label in (
        ("languages", f["languages"][:TOP_LANGUAGES], "language"),
        ("domains", f["domains"], "domain"),
    ):
        if rows:
            made[key] = plots.stacked_bars(
                folder / f"report-filter-{key}.png",
                [r[label] for r in rows],
                [r["documents"] - r["dropped"] for r in rows],
                [r["dropped"] for r in rows],
                f"Filter outcome by {label}",
            ).name
    return made


# --------------------------------------------------------------------------- entry points


def shards_folder(path: str | Path) -> Path:
    """A shards folder given itself or the run folder that holds it."""
    path = Path(path)
    for candidate in (path, path / "shards"):
        if (candidate / MANIFEST_JSON).is_file():
            return candidate
    raise InputError(
        f"{path} is neither a shards folder nor a run folder with shards/{MANIFEST_JSON}; run the shards stage first"
    )


def summary_text(report: dict[str, Any], html_path: Path | None = None) -> str:
    t = report["total"]
    lines = [
        f"shards: {len(report['shards'])} files, {t['documents']:,} documents, {t['tokens']:,} tokens "
        f"({t['tokens_per_doc']:,} per document), vocabulary {report['vocab_size']:,} ({report['dtype']})",
    ]
    for split, s in report["splits"].items():
        lines.append(f"  {split:<5} {s['shards']:>4} shards {s['documents']:>10,} documents {s['tokens']:>14,} tokens")
    lines.append(f"byte-fallback tokens: {t['byte_fallback_share']:.3%}")
    if report["languages"]:
        lines.append("languages: " + ", ".join(f"{r['name']} {r['share']:.1%}" for r in report["languages"][:6]))
    if report["top_domains"]:
        lines.append("top domains: " + ", ".join(f"{r['name']} ({r['documents']})" for r in report["top_domains"][:5]))
    for stage, s in report["upstream"].items():
        drops = ", ".join(f"{k} {v:,}" for k, v in s["drops"].items()) if stage in REMOVING else ""
        engine = f" (engine {s['engine']})" if s.get("engine") else ""
        removed = f"  removed: {drops}" if drops else ""
        lines.append(f"{stage}{engine}: {s['docs_in']:,} in -> {s['docs_out']:,} out{removed}")
    f = report.get("filter")
    if f:
        busiest = sorted((r for r in f["rules"] if r["fails"]), key=lambda r: -r["dropped_first"])[:5]
        lines.append(
            "filter rules (dropped first / only this rule): "
            + ", ".join(f"{r['rule']} {r['dropped_first']:,}/{r['only_this_rule']:,}" for r in busiest)
        )
    d = report.get("dedup")
    if d and d["largest"]:
        top = d["largest"][0]
        lines.append(f"largest dedup cluster: {top['documents']:,} documents, kept {top['kept']['url']}")
    if html_path:
        lines.append(f"report: {html_path}")
    return "\n".join(lines)


def build_report(path: str | Path, refresh: bool = False) -> tuple[str, Path]:
    """For `crawl2gpt report RUN_DIR`: the summary text and the report page's path.

    Reuses report.json written by the shards stage; `refresh=True` (or a missing report)
    rescans the shards and rewrites the report files in place (atomically; they are not data,
    so the stage's data checksums in manifest.json stay valid).
    """
    folder = shards_folder(path)
    report_json = folder / REPORT_JSON
    if refresh or not report_json.is_file() or not (folder / REPORT_HTML).is_file():
        report = write_report(folder)
    else:
        report = json.loads(report_json.read_text())
    return summary_text(report), folder / REPORT_HTML


def load_report(source: str | Path) -> tuple[Path, dict[str, Any]]:
    """(shards folder, report.json's dict) of a shards or run folder."""
    folder = shards_folder(source)
    return folder, json.loads((folder / REPORT_JSON).read_text())


def report_tables(source: str | Path | dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """Per-shard rows plus a total row (a Prefect table artifact), and the shards section as markdown."""
    report = source if isinstance(source, dict) else load_report(source)[1]
    rows = [dict(r) for r in report["shards"]] + [{"shard": "total", "split": "all", **report["total"]}]
    blocks = [b for b in shard_blocks(report) if b[0] != "img"]
    return rows, to_markdown(Path("."), blocks)


def report_markdown(source: str | Path) -> dict[str, str]:
    """Each section of the report as markdown with its plots inlined: one Prefect artifact each."""
    return markdown_sections(*load_report(source))
