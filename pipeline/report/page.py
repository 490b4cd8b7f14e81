"""The quality report as a page (report.html) and as markdown (Prefect artifacts), from one outline.

Each section is a list of blocks (heading, paragraph, table, image, details) built once from
report.json's dict; `to_html` and `to_markdown` only lay the same blocks out. Images are inlined
as PNG data URIs, so the page is one standalone file and the Prefect UI shows the plots without
a file server (both Prefect 3 UIs render data URIs in markdown: tests/test_report_browser.py).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.report.plots import png_data_uri

Block = tuple  # ("h", level, text) | ("p", text) | ("table", rows) | ("img", file, caption) | ("pre", text)
EXCERPT_COLUMNS = ("side", "value", "status", "url", "excerpt")
RULE_COLUMNS = ("rule", "threshold", "fails", "dropped_first", "only_this_rule")  # + kept_but_failing when not all 0
REMOVING = ("filter", "dedup")  # extract's skips are WARC records (requests, metadata), not documents


def fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


# --------------------------------------------------------------------------- the outline


def removed_rows(upstream: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"stage": stage, "rule": rule, "documents": n}
        for stage, s in upstream.items()
        if stage in REMOVING
        for rule, n in s["drops"].items()
    ]


def shard_blocks(report: dict[str, Any]) -> list[Block]:
    splits = [{"split": s, **v} for s, v in report["splits"].items()] + [{"split": "total", **report["total"]}]
    stages = [
        {"stage": s, "docs_in": v["docs_in"], "docs_out": v["docs_out"], "extractor": v.get("engine", "")}
        for s, v in report["upstream"].items()
    ]
    blocks: list[Block] = [
        ("h", 2, "Token shards"),
        (
            "p",
            f"vocabulary {report['vocab_size']:,} ({report['dtype']}); byte-fallback ids "
            f"{report['byte_fallback_ids'][0]}..{report['byte_fallback_ids'][1]}",
        ),
        ("table", splits),
        *[("img", name, name) for name in report["plots"]],
        ("h", 3, "Per shard"),
        ("table", report["shards"]),
        ("h", 3, "Language mix"),
        ("table", report["languages"]),
        ("h", 3, f"Top domains ({report['distinct_domains']:,} distinct)"),
        ("table", report["top_domains"]),
        ("h", 3, "Mean quality signals"),
        ("table", [{"signal": k, "mean": v} for k, v in report["quality_signals"].items()]),
        ("h", 3, "Upstream stages"),
        ("table", stages),
        ("h", 3, "Documents removed upstream, by rule"),
        ("table", removed_rows(report["upstream"])),
    ]
    return blocks


def filter_blocks(f: dict[str, Any]) -> list[Block]:
    plots = f.get("plots", {})
    blocks: list[Block] = [
        ("h", 2, "Filter: what each threshold does"),
        (
            "p",
            f"{f['documents']:,} documents: {f['kept']:,} kept, {f['dropped']:,} dropped. Every threshold is "
            f"rechecked on the stored signals with the config the filter stage recorded: `fails` counts the "
            f"documents it fails, `dropped_first` those it dropped (the first failing rule), `only_this_rule` "
            f"those no other threshold fails (what relaxing it alone would bring back). "
            f"{f['recheck_mismatches']:,} documents disagree with their stored outcome.",
        ),
        ("table", f["rules"], RULE_COLUMNS + (("kept_but_failing",) if f["recheck_mismatches"] else ())),
    ]
    if plots.get("rules"):
        blocks.append(("img", plots["rules"], "documents per rule"))
    blocks += [("h", 3, "Drops by language"), ("table", f["languages"])]
    if plots.get("languages"):
        blocks.append(("img", plots["languages"], "documents per language"))
    approximate = "" if f["domains_exact"] else " (approximate: more distinct domains than the counter holds)"
    blocks += [("h", 3, f"Top domains by drops{approximate}"), ("table", f["domains"])]
    if plots.get("domains"):
        blocks.append(("img", plots["domains"], "documents per domain"))
    return blocks


def signal_blocks(f: dict[str, Any]) -> list[Block]:
    names = f.get("plots", {}).get("signals", {})
    return [("h", 2, "Signals: kept (blue) and dropped (red) documents, thresholds dashed")] + [
        ("img", names[s["signal"]], s["signal"]) for s in f["signals"] if s["signal"] in names
    ]


def example_blocks(f: dict[str, Any]) -> list[Block]:
    blocks: list[Block] = [("h", 2, "Examples nearest each threshold, on both sides")]
    for rule in f["rules"]:
        sides = f["examples"].get(rule["rule"], {})
        rows = [{"side": side, **e} for side in ("fails", "passes") for e in sides.get(side, [])]
        if rows:
            blocks += [("h", 3, f"{rule['rule']}: {rule['threshold']}"), ("table", rows, EXCERPT_COLUMNS)]
    return blocks


def dedup_blocks(d: dict[str, Any]) -> list[Block]:
    drops = ", ".join(f"{k} {v:,}" for k, v in d["drops"].items() if v) or "none"
    rows = []
    for c in d["largest"]:
        for role, doc in (("kept", c["kept"]), (f"removed ({c['removed_example']['reason']})", c["removed_example"])):
            rows.append(
                {
                    "cluster": c["cluster_id"],
                    "documents": c["documents"],
                    "exact": c["exact"],
                    "near": c["near"],
                    "role": role,
                    "url": doc["url"],
                    "excerpt": doc["excerpt"],
                }
            )
    approximate = "" if d["clusters_exact"] else " (sizes approximate: more clusters than the counter holds)"
    return [
        ("h", 2, f"Dedup: the largest clusters{approximate}"),
        (
            "p",
            f"{d['documents']:,} documents in, {d['kept']:,} kept; removed: {drops}; "
            f"{fmt(d['clusters'])} clusters with more than one document. Each cluster keeps its earliest document.",
        ),
        ("table", rows),
    ]


def sample_blocks(report: dict[str, Any]) -> list[Block]:
    blocks: list[Block] = [("h", 2, "Sample documents (decoded from the shards)")]
    for s in report["samples"]:
        blocks += [
            ("h", 3, f"{s['doc_id']} · {s['url'] or ''} · first {s['shown_tokens']} of {s['n_tokens']} tokens"),
            ("pre", s["text"]),
        ]
    return blocks


def sections(report: dict[str, Any]) -> dict[str, list[Block]]:
    """The report's sections in page order (what a user tunes first); the keys name the artifacts."""
    out: dict[str, list[Block]] = {}
    if report.get("filter"):
        out.update(filter=filter_blocks(report["filter"]), signals=signal_blocks(report["filter"]))
    if report.get("dedup"):
        out["dedup"] = dedup_blocks(report["dedup"])
    if report.get("filter"):
        out["examples"] = example_blocks(report["filter"])
    out["shards"] = shard_blocks(report)
    out["samples"] = sample_blocks(report)
    return out


# --------------------------------------------------------------------------- layouts


def _columns(rows: list[dict[str, Any]], columns: Sequence[str] | None) -> list[str]:
    return list(columns or rows[0].keys())


def html_table(rows: list[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    if not rows:
        return "<p><em>none</em></p>"
    columns = _columns(rows, columns)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(r.get(c)) for c in columns) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    text = ' class="text"' if isinstance(value, str) else ""  # words align left, numbers right
    return f"<td{text}>{html.escape(fmt(value))}</td>"


def md_table(rows: list[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    if not rows:
        return "_none_\n"
    columns = _columns(rows, columns)
    cell = lambda v: fmt(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def to_html(folder: Path, blocks: list[Block]) -> str:
    out = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            out.append(f"<h{block[1]}>{html.escape(block[2])}</h{block[1]}>")
        elif kind == "p":
            out.append(f"<p>{html.escape(block[1])}</p>")
        elif kind == "table":
            out.append(html_table(*block[1:]))
        elif kind == "img":
            out.append(
                f'<figure><img alt="{html.escape(block[2])}" src="{png_data_uri(folder / block[1])}">'
                f"<figcaption>{html.escape(block[1])}</figcaption></figure>"
            )
        elif kind == "pre":
            out.append(f"<pre>{html.escape(block[1])}</pre>")
    return "\n".join(out)


# The same walk over the blocks as to_html, for the other format: a new kind of block goes in both.
def to_markdown(folder: Path, blocks: list[Block]) -> str:
    out = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            out.append(f"{'#' * block[1]} {block[2]}\n")
        elif kind == "p":
            out.append(block[1] + "\n")
        elif kind == "table":
            out.append(md_table(*block[1:]))
        elif kind == "img":
            out.append(f"![{block[2]}]({png_data_uri(folder / block[1])})\n")
        elif kind == "pre":
            out.append("```\n" + block[1].replace("```", "'''") + "\n```\n")
    return "\n".join(out)


STYLE = """body{font:14px/1.4 system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:2px 8px;text-align:right;vertical-align:top}
td.text,th:first-child{text-align:left;overflow-wrap:anywhere}
pre{white-space:pre-wrap;background:#f6f6f6;padding:.6em}
figure{display:inline-block;margin:0 1em 1em 0}img{max-width:100%}"""


def render_html(folder: Path, report: dict[str, Any]) -> str:
    body = "\n".join(to_html(folder, blocks) for blocks in sections(report).values())
    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>crawl2gpt quality report</title>'
        f"<style>{STYLE}</style></head><body>\n<h1>Quality report</h1>\n{body}\n</body></html>\n"
    )


def markdown_sections(folder: Path, report: dict[str, Any]) -> dict[str, str]:
    """{section name: markdown with its plots inlined}, one Prefect artifact each."""
    return {name: to_markdown(folder, blocks) for name, blocks in sections(report).items()}
