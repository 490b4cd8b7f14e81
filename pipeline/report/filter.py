"""The filter stage seen through its stored columns: what each threshold does to the corpus.

Reads a finished filter folder's kept parts and rejects/ a record batch at a time, and only the
columns it needs (signals, language, domain, url, the stored reason); the `text` column is read
at the end for the few example rows alone. Every threshold is rechecked on the stored signals
(pipeline/report/thresholds.py), with the config the filter stage recorded in its manifest:

  rules      per threshold: documents it fails, documents it dropped first (the stored reason),
             documents ONLY it drops (no other threshold fails them: what relaxing it would
             bring back), and kept documents it fails (0 unless the data and config disagree)
  signals    per signal a threshold reads: histograms of kept and dropped documents + the lines
  examples   per threshold: the EXAMPLES documents nearest its line on each side
  languages  documents, drops and the commonest drop reason per language
  domains    the domains with the most drops (bounded memory: pipeline/bounded.py)
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.bounded import BoundedCounter, Nearest
from pipeline.filter.config import FilterConfig
from pipeline.hashing import stable_fractions
from pipeline.outcomes import outcome_files
from pipeline.report.excerpts import read_excerpts
from pipeline.report.thresholds import Threshold, thresholds
from pipeline.stage import read_manifest

EXAMPLES = 5  # documents shown on each side of each threshold
BINS = 40
LOG_AXIS_FROM = 100.0  # a count reaching past this (words, sentences) gets log-spaced bins
TOP_DOMAINS = 20
BATCH_DOCS = 4096


def filter_config(manifest: dict[str, Any]) -> FilterConfig:
    """The filter config a finished filter stage recorded (its manifest's config slice)."""
    recorded = manifest.get("config", {}).get("filter")
    return FilterConfig.model_validate(recorded) if recorded is not None else FilterConfig()


# --------------------------------------------------------------------------- histogram bins


def signal_ranges(files: list[Path], signals: list[str]) -> dict[str, tuple[float, float]]:
    """Min and max of each signal from the Parquet row-group statistics (no data read when present)."""
    lo, hi = dict.fromkeys(signals, math.inf), dict.fromkeys(signals, -math.inf)
    for path in files:
        parquet = pq.ParquetFile(path)
        index = {parquet.metadata.schema.column(j).path: j for j in range(parquet.metadata.num_columns)}
        for group in range(parquet.num_row_groups):
            meta = parquet.metadata.row_group(group)
            for name in (s for s in signals if s in index):
                stats = meta.column(index[name]).statistics
                if stats is not None and stats.has_min_max:
                    low, high = stats.min, stats.max
                else:  # a writer without statistics: read this one column of this row group
                    values = parquet.read_row_group(group, columns=[name]).column(0).to_numpy(zero_copy_only=False)
                    values = values[~np.isnan(values)]
                    if not len(values):
                        continue
                    low, high = values.min(), values.max()
                lo[name], hi[name] = min(lo[name], float(low)), max(hi[name], float(high))
    return {s: (lo[s], hi[s]) for s in signals if lo[s] <= hi[s]}


def bin_edges(low: float, high: float, lines: list[float]) -> tuple[np.ndarray, bool]:
    """Histogram edges covering the data and every threshold line; log-spaced for long tails."""
    low, high = min([low, *lines]), max([high, *lines])
    if low >= 0 and high >= LOG_AXIS_FROM:
        return np.concatenate([[0.0], np.geomspace(1.0, high, BINS)]), True
    if high <= low:
        high = low + 1.0
    return np.linspace(low, high, BINS + 1), False


# --------------------------------------------------------------------------- the scan


class FilterScan:
    """Running tallies over the record batches of a filter folder's kept and dropped files."""

    def __init__(self, rules: list[Threshold], edges: dict[str, np.ndarray]):
        self.rules, self.edges = rules, edges
        self.docs = self.dropped = self.mismatched = 0
        self.fails, self.only, self.kept_failing = Counter(), Counter(), Counter()
        self.first = Counter()
        self.hist = {
            s: {"kept": np.zeros(len(e) - 1, np.int64), "dropped": np.zeros(len(e) - 1, np.int64)}
            for s, e in edges.items()
        }
        self.near = {t.rule: {"fails": Nearest(EXAMPLES), "passes": Nearest(EXAMPLES)} for t in rules}
        self.languages = BoundedCounter(2)  # [documents, dropped]
        self.language_reasons: dict[str, Counter] = {}
        self.domains = BoundedCounter(2, key_column=1)  # keep the domains with the most drops

    def add(self, batch: pa.RecordBatch, dropped: bool, path: Path, first_row: int) -> None:
        n, names = batch.num_rows, batch.schema.names
        self.docs += n
        self.dropped += n if dropped else 0
        column = {name: batch.column(name).to_numpy(zero_copy_only=False) for name in names}
        hashes = stable_fractions(batch.column("doc_id").to_pylist())
        fails = {t.rule: t.fails(column[t.signal]) for t in self.rules}
        n_failing = np.sum(list(fails.values()), axis=0) if fails else np.zeros(n, np.int64)
        self.mismatched += int(np.count_nonzero((n_failing > 0) != dropped))
        reasons = column.get("first_failing_rule") if dropped else None
        if reasons is not None:
            self.first.update(reasons.tolist())
        for t in self.rules:
            failed = fails[t.rule]
            self.fails[t.rule] += int(failed.sum())
            self.only[t.rule] += int((failed & (n_failing == 1)).sum())
            if not dropped:
                self.kept_failing[t.rule] += int(failed.sum())
            values = column[t.signal]
            distance = np.abs(values - t.line).astype(float) if t.line is not None else np.zeros(n)
            distance = np.nan_to_num(distance, nan=np.inf)

            def example(i: int, t: Threshold = t, values: np.ndarray = values) -> dict[str, Any]:
                value = values[i]
                return {
                    "doc_id": column["doc_id"][i],
                    "url": column["url"][i] if "url" in column else None,
                    "value": float(value) if t.numeric else value,
                    "status": f"dropped: {reasons[i]}" if reasons is not None else ("dropped" if dropped else "kept"),
                    "file": str(path),
                    "row": first_row + i,
                }

            self.near[t.rule]["fails"].offer(distance, hashes, failed, example)
            self.near[t.rule]["passes"].offer(distance, hashes, ~failed, example)
        side = "dropped" if dropped else "kept"
        for signal, edges in self.edges.items():
            values = column[signal]
            self.hist[signal][side] += np.histogram(values[~np.isnan(values)], bins=edges)[0]
        self._by_key(batch, dropped)

    def _by_key(self, batch: pa.RecordBatch, dropped: bool) -> None:
        """Documents and drops per language and per domain; drop reasons per language."""
        names = batch.schema.names
        labels = {k: _labels(batch.column(k)) for k in ("language", "domain", "first_failing_rule") if k in names}
        for key, counter in (("language", self.languages), ("domain", self.domains)):
            if key in labels:
                grouped = pa.table({"k": labels[key]}).group_by("k").aggregate([("k", "count")])
                counts = grouped.column("k_count").to_pylist()
                counter.add(grouped.column("k").to_pylist(), counts, counts if dropped else [0] * len(counts))
        if dropped and "language" in labels and "first_failing_rule" in labels:
            pairs = pa.table({"language": labels["language"], "reason": labels["first_failing_rule"]})
            for row in pairs.group_by(["language", "reason"]).aggregate([("reason", "count")]).to_pylist():
                self.language_reasons.setdefault(row["language"], Counter())[row["reason"]] += row["reason_count"]


def _labels(values: pa.Array) -> pa.Array:
    """A string column with missing and empty values named `unknown`."""
    values = values.fill_null("unknown")
    return pc.if_else(pc.equal(values, ""), "unknown", values)


def filter_report(folder: str | Path) -> dict[str, Any]:
    """Every figure of the filter section of the report (see the module docstring)."""
    folder = Path(folder)
    files = outcome_files(folder, "filter")
    manifest = read_manifest(folder)
    schema_names = set().union(*(pq.read_schema(p).names for p, _ in files)) if files else set()
    rules = [t for t in thresholds(filter_config(manifest)) if t.signal in schema_names]
    numeric = sorted({t.signal for t in rules if t.numeric and t.fails_when not in ("set", "== 0")})
    ranges = signal_ranges([p for p, _ in files], numeric)
    lines = {s: [t.line for t in rules if t.signal == s] for s in numeric}
    binned = {s: bin_edges(*ranges[s], lines[s]) for s in numeric if s in ranges}
    scan = FilterScan(rules, {s: edges for s, (edges, _) in binned.items()})
    wanted = sorted({"doc_id", "url", "language", "domain", "first_failing_rule", *(t.signal for t in rules)})
    for path, dropped in files:
        columns = [c for c in wanted if c in pq.read_schema(path).names]
        row = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_DOCS, columns=columns):
            scan.add(batch, dropped, path, row)
            row += batch.num_rows
    return _summary(folder, scan, rules, binned)


def _summary(
    folder: Path, scan: FilterScan, rules: list[Threshold], binned: dict[str, tuple[np.ndarray, bool]]
) -> dict[str, Any]:
    examples = {rule: {side: near.items() for side, near in sides.items()} for rule, sides in scan.near.items()}
    texts = read_excerpts((e["file"], e["row"]) for sides in examples.values() for side in sides.values() for e in side)
    for sides in examples.values():
        for side in sides.values():
            for e in side:
                e["excerpt"] = texts.get((e.pop("file"), e.pop("row")), {}).get("excerpt", "")
    languages = [
        {
            "language": lang,
            "documents": docs,
            "kept": docs - dropped,
            "dropped": dropped,
            "drop_share": round(dropped / docs, 4) if docs else 0.0,
            "top_reason": (scan.language_reasons.get(lang) or Counter({"": 0})).most_common(1)[0][0],
        }
        for lang, (docs, dropped) in scan.languages.top(len(scan.languages.counts))
    ]
    domains = [
        {"domain": d, "documents": docs, "dropped": dropped, "drop_share": round(dropped / docs, 4) if docs else 0.0}
        for d, (docs, dropped) in scan.domains.top(TOP_DOMAINS, column=1)
        if dropped
    ]
    return {
        "folder": str(folder),
        "documents": scan.docs,
        "kept": scan.docs - scan.dropped,
        "dropped": scan.dropped,
        "recheck_mismatches": scan.mismatched,
        "rules": [
            {
                "rule": t.rule,
                "threshold": t.describe(),
                "fails": scan.fails[t.rule],
                "dropped_first": scan.first[t.rule],
                "only_this_rule": scan.only[t.rule],
                "kept_but_failing": scan.kept_failing[t.rule],
            }
            for t in rules
        ],
        "signals": [
            {
                "signal": s,
                "edges": edges.tolist(),
                "log_x": log_x,
                "kept": scan.hist[s]["kept"].tolist(),
                "dropped": scan.hist[s]["dropped"].tolist(),
                "lines": [{"rule": t.rule, "value": t.line} for t in rules if t.signal == s],
            }
            for s, (edges, log_x) in binned.items()
        ],
        "examples": examples,
        "languages": languages,
        "domains": domains,
        "domains_exact": scan.domains.exact,
    }
