"""Quality report: what the token shards hold, and what the pipeline removed to get there.

Read from the shards themselves (checksums verified) in one streaming pass, so a report can be
rebuilt for any finished shards folder. Per shard and in total: documents, tokens, the share of
byte-fallback tokens (text the vocabulary had to spell byte by byte), tokens per document,
language mix, top domains, mean quality signals, a few decoded documents; from the upstream
stage manifests (`_stage.json` of extract, filter, dedup) the documents each rule removed; and
from the filter and dedup folders themselves what a user tunes thresholds with
(pipeline/report/filter.py: per-signal histograms, per-rule and only-this-rule counts, examples
on both sides of each threshold, drops by language and domain; pipeline/report/dedup.py: the
largest clusters).

Outputs beside the shards: `report.json` (the summary, machine-readable), `report.html`
(standalone: PNGs inlined as base64, also written as files next to it) and `report-*.png`.
Laid out by pipeline/report/page.py, which also gives the Prefect artifacts their markdown.
"""

from __future__ import annotations

import heapq
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.atomic import atomic_write_text
from pipeline.errors import InputError, StageIncompleteError
from pipeline.hashing import stable_fraction
from pipeline.report import plots
from pipeline.report.dedup import dedup_report
from pipeline.report.filter import filter_report
from pipeline.report.page import REMOVING, markdown_sections, removed_rows, render_html, shard_blocks, to_markdown
from pipeline.shard_format import MANIFEST_JSON, SPLITS, load_manifest, open_shard
from pipeline.stage import MANIFEST, read_manifest
from pipeline.tokens.tokenizer import MODEL, byte_id_range, load

REPORT_JSON, REPORT_HTML = "report.json", "report.html"
LENGTH_EDGES = [2.0**k for k in range(0, 21)]  # 1 .. 1M tokens, doubling
TOP_DOMAINS, TOP_LANGUAGES, SAMPLES, SAMPLE_TOKENS = 20, 15, 3, 256
UPSTREAM = ("extract", "filter", "dedup")


# --------------------------------------------------------------------------- reading shards


class Tally:
    """Running totals over record batches of one shard or of all of them."""

    def __init__(self, signals: Sequence[str]):
        self.docs = self.tokens = self.byte_tokens = 0
        self.lengths = np.zeros(len(LENGTH_EDGES) - 1, dtype=np.int64)
        self.languages: Counter = Counter()
        self.language_tokens: Counter = Counter()
        self.domains: Counter = Counter()
        self.domain_tokens: Counter = Counter()
        self.signal_sum = dict.fromkeys(signals, 0.0)
        self.signal_n = dict.fromkeys(signals, 0)

    def add(self, batch: pa.RecordBatch, byte_ids: tuple[int, int]) -> None:
        n_tokens = batch.column("n_tokens").to_numpy(zero_copy_only=False)
        self.docs += batch.num_rows
        self.tokens += int(n_tokens.sum())
        self.lengths += np.histogram(n_tokens, bins=LENGTH_EDGES)[0]
        if byte_ids[0] >= 0:
            ids = pc.list_flatten(batch.column("tokens")).to_numpy(zero_copy_only=False)
            self.byte_tokens += int(np.count_nonzero((ids >= byte_ids[0]) & (ids <= byte_ids[1])))
        for column, docs, tokens in (
            ("language", self.languages, self.language_tokens),
            ("domain", self.domains, self.domain_tokens),
        ):
            if column in batch.schema.names:
                grouped = pa.table({"k": batch.column(column).fill_null("unknown"), "n": n_tokens})
                for row in grouped.group_by("k").aggregate([("n", "sum"), ("n", "count")]).to_pylist():
                    docs[row["k"]] += row["n_count"]
                    tokens[row["k"]] += row["n_sum"]
        for name in self.signal_sum:
            values = batch.column(name)
            self.signal_sum[name] += float(pc.sum(values).as_py() or 0.0)
            self.signal_n[name] += len(values) - values.null_count

    def summary(self) -> dict[str, Any]:
        return {
            "documents": self.docs,
            "tokens": self.tokens,
            "tokens_per_doc": round(self.tokens / self.docs, 1) if self.docs else 0.0,
            "byte_fallback_tokens": self.byte_tokens,
            "byte_fallback_share": round(self.byte_tokens / self.tokens, 6) if self.tokens else 0.0,
        }


def _signal_columns(schema: pa.Schema) -> list[str]:
    return [f.name for f in schema if pa.types.is_floating(f.type)]


def scan(shards_dir: Path) -> dict[str, Any]:
    """Every figure of the report from one pass over the (checksum-verified) shards."""
    manifest = load_manifest(shards_dir)
    sp = load(shards_dir / MODEL)
    byte_ids = byte_id_range(sp)
    first = open_shard(shards_dir, manifest["shards"][0]).schema_arrow if manifest["shards"] else pa.schema([])
    signals = _signal_columns(first)
    total, by_split, per_shard, samples = Tally(signals), {s: Tally([]) for s in SPLITS}, [], []
    for entry in manifest["shards"]:
        shard, tally = open_shard(shards_dir, entry), Tally([])
        columns = [
            c
            for c in ("doc_id", "url", "tokens", "n_tokens", "language", "domain", *signals)
            if c in shard.schema_arrow.names
        ]
        for batch in shard.iter_batches(batch_size=1024, columns=columns):
            for t in (total, by_split[entry["split"]], tally):
                t.add(batch, byte_ids)
            _keep_samples(samples, batch)
        top = tally.languages.most_common(1)
        per_shard.append(
            {
                "shard": entry["path"],
                "split": entry["split"],
                **tally.summary(),
                "top_language": top[0][0] if top else None,
            }
        )
    return {
        "vocab_size": manifest["vocab_size"],
        "dtype": manifest["dtype"],
        "byte_fallback_ids": list(byte_ids),
        "total": {"shards": len(manifest["shards"]), **total.summary()},
        "splits": {s: {"shards": manifest["totals"][s]["shards"], **t.summary()} for s, t in by_split.items()},
        "shards": per_shard,
        "tokens_per_doc_histogram": {"edges": LENGTH_EDGES, "counts": total.lengths.tolist()},
        "languages": _mix(total.languages, total.language_tokens, total.docs, TOP_LANGUAGES),
        "top_domains": _mix(total.domains, total.domain_tokens, total.docs, TOP_DOMAINS),
        "distinct_domains": len(total.domains),
        "quality_signals": {k: round(total.signal_sum[k] / total.signal_n[k], 6) for k in signals if total.signal_n[k]},
        "samples": [_decode(sp, s) for s in sorted(samples, reverse=True)],
    }


def _keep_samples(heap: list, batch: pa.RecordBatch) -> None:
    """Keep the SAMPLES documents with the smallest doc-id hash: a fixed, unbiased pick."""
    urls = batch.column("url").to_pylist() if "url" in batch.schema.names else [None] * batch.num_rows
    for i, doc_id in enumerate(batch.column("doc_id").to_pylist()):
        key = -stable_fraction(doc_id)  # a min-heap of negated keys keeps the smallest hashes
        if len(heap) < SAMPLES or key > heap[0][0]:
            tokens = batch.column("tokens")[i].values[:SAMPLE_TOKENS].to_pylist()
            entry = (key, doc_id, urls[i], batch.column("n_tokens")[i].as_py(), tokens)
            (heapq.heappush if len(heap) < SAMPLES else heapq.heapreplace)(heap, entry)


def _decode(sp, sample: tuple) -> dict[str, Any]:
    _, doc_id, url, n_tokens, tokens = sample
    return {
        "doc_id": doc_id,
        "url": url,
        "n_tokens": n_tokens,
        "shown_tokens": len(tokens),
        "text": sp.DecodeIds(tokens),
    }


def _mix(docs: Counter, tokens: Counter, total_docs: int, top: int) -> list[dict[str, Any]]:
    return [
        {"name": k, "documents": n, "tokens": int(tokens[k]), "share": round(n / total_docs, 4) if total_docs else 0.0}
        for k, n in docs.most_common(top)
    ]


# --------------------------------------------------------------------------- upstream


def upstream_stats(start: Sequence[Path]) -> dict[str, dict[str, Any]]:
    """Counts and drop reasons of the extract/filter/dedup stages behind `start` (their manifests' inputs)."""
    found, queue, seen = {}, [Path(p) for p in start], set()
    while queue:
        folder = queue.pop(0)
        if folder.resolve() in seen:
            continue
        seen.add(folder.resolve())
        try:
            manifest = read_manifest(folder)
        except StageIncompleteError:
            continue
        if manifest.get("stage") in UPSTREAM and manifest["stage"] not in found:
            stats = manifest.get("stats", {})
            found[manifest["stage"]] = {
                "folder": str(folder),
                "docs_in": stats.get("docs_in", 0),
                "docs_out": stats.get("docs_out", 0),
                "drops": {k: v for k, v in sorted(stats.get("drops", {}).items(), key=lambda kv: -kv[1]) if v},
            }
            engine = (stats.get("extra") or {}).get("engine")
            if engine:  # extract's main-text engine (extract.engine)
                found[manifest["stage"]]["engine"] = engine
        queue += [Path(i["input"]) for i in manifest.get("inputs", []) if i.get("kind") == "stage"]
    return {s: found[s] for s in UPSTREAM if s in found}


def _upstream_of(shards_dir: Path) -> list[Path]:
    """The shards stage's recorded inputs; else the run folder's sibling stage folders."""
    starts = []
    if (shards_dir / MANIFEST).is_file():
        starts = [Path(i["input"]) for i in read_manifest(shards_dir).get("inputs", []) if i.get("kind") == "stage"]
    return starts + [shards_dir.parent / s for s in reversed(UPSTREAM)]


# --------------------------------------------------------------------------- writing


def write_report(shards_dir: str | Path, upstream: Sequence[Path] | None = None) -> dict[str, Any]:
    """Scan the shards and the filter and dedup folders behind them; write report.json,
    report.html and the PNGs beside the shards; return the report."""
    shards_dir = Path(shards_dir)
    report = scan(shards_dir)
    report["upstream"] = upstream_stats(list(upstream or []) + _upstream_of(shards_dir))
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
    if report["languages"]:
        langs = report["languages"]
        made.append(
            plots.bars(
                folder / "report-languages.png",
                [r["name"] for r in langs],
                [r["documents"] for r in langs],
                "Language mix",
                "documents",
            )
        )
    if report["top_domains"]:
        doms = report["top_domains"]
        made.append(
            plots.bars(
                folder / "report-domains.png",
                [r["name"] for r in doms],
                [r["tokens"] for r in doms],
                f"Top {len(doms)} domains",
                "tokens",
            )
        )
    shards = report["shards"]
    made.append(
        plots.bars(
            folder / "report-shards.png",
            [r["shard"] for r in shards],
            [r["tokens"] for r in shards],
            "Tokens per shard",
            "tokens",
            colors=["#4c72b0" if r["split"] == "train" else "#dd8452" for r in shards],
        )
    )
    removed = [(f"{r['stage']}: {r['rule']}", r["documents"]) for r in removed_rows(report["upstream"])]
    if removed:
        made.append(
            plots.bars(
                folder / "report-removed.png",
                [r for r, _ in removed],
                [n for _, n in removed],
                "Documents removed upstream, by rule",
                "documents",
                colors="#c44e52",
            )
        )
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
