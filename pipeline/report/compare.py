"""`crawl2gpt report --compare RUN_A RUN_B`: which documents moved between two runs, stage by stage.

For each document stage (extract's language pre-screen, filter, dedup), a document's outcome in a
run comes from that stage's kept parts and rejects/: kept, or dropped with the stored reason
(extract and filter: the first failing rule; dedup: exact/near and the document its cluster kept).
A document moved when one run kept it at a stage and the other dropped it; the page lists each with
its reason in both runs, and the stages' recorded config differences (the threshold that was edited).

Outcomes are joined by doc id in hash buckets written to a temporary folder, so memory holds one
bucket, never a whole run: two crawl-sized runs compare on one machine.

Writes into the output folder: compare.html (standalone), compare.json and moved-<stage>.parquet
(every moved document; the page shows the first SHOWN by doc-id hash).
"""

from __future__ import annotations

import json
import math
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.atomic import atomic_write_text
from pipeline.bounded import Nearest
from pipeline.errors import InputError
from pipeline.hashing import stable_fractions
from pipeline.outcomes import outcome_files
from pipeline.report.page import STYLE, html_table
from pipeline.stage import MANIFEST, read_manifest

STAGES = ("extract", "filter", "dedup")  # the stages whose rejects/ hold documents
ROWS_PER_BUCKET = 2_000_000  # outcome rows (four short columns) one bucket join holds in memory
SHOWN = 200
OUTCOME = pa.schema([("doc_id", pa.string()), ("url", pa.string()), ("kept", pa.bool_()), ("reason", pa.string())])
MOVED = pa.schema([("doc_id", pa.string()), ("url", pa.string()), ("run_a", pa.string()), ("run_b", pa.string())])


def outcomes(folder: Path, stage: str) -> Iterator[pa.Table]:
    """(doc_id, url, kept, reason) of every document the stage saw, a record batch at a time."""
    for path, dropped in outcome_files(folder, stage):
        names = pq.read_schema(path).names
        wanted = [c for c in ("doc_id", "url", "first_failing_rule", "reason", "kept_doc_id") if c in names]
        for batch in pq.ParquetFile(path).iter_batches(batch_size=8192, columns=wanted):
            n = batch.num_rows
            url = batch.column("url") if "url" in names else pa.nulls(n, pa.string())
            yield pa.table(
                [batch.column("doc_id"), url, pa.array(np.full(n, not dropped)), _reason(batch, dropped)],
                schema=OUTCOME,
            )


def _reason(batch: pa.RecordBatch, dropped: bool) -> pa.Array:
    names = batch.schema.names
    if not dropped:
        return pa.nulls(batch.num_rows, pa.string())
    if "first_failing_rule" in names:  # filter
        return batch.column("first_failing_rule")
    if "reason" in names:  # dedup: why, and which document of the cluster stayed
        kept = (
            pc.fill_null(batch.column("kept_doc_id"), "")
            if "kept_doc_id" in names
            else pa.nulls(batch.num_rows, pa.string())
        )
        return pc.binary_join_element_wise(batch.column("reason"), pc.fill_null(kept, ""), ", kept ")
    return pa.array(["dropped"] * batch.num_rows, pa.string())


def _rows(folder: Path, stage: str) -> int:
    return sum(pq.ParquetFile(p).metadata.num_rows for p, _ in outcome_files(folder, stage))


def _write_buckets(tables: Iterator[pa.Table], buckets: int, into: Path) -> None:
    """Spread outcome rows over `buckets` files by the stable hash of their doc id."""
    into.mkdir(parents=True)
    writers: dict[int, pq.ParquetWriter] = {}
    try:
        for table in tables:
            ids = table.column("doc_id").to_pylist()
            bucket = np.minimum((stable_fractions(ids) * buckets).astype(np.int64), buckets - 1)
            for b in np.unique(bucket):
                if b not in writers:
                    writers[b] = pq.ParquetWriter(into / f"{b:05d}.parquet", OUTCOME)
                writers[b].write_table(table.filter(pa.array(bucket == b)))
    finally:
        for writer in writers.values():
            writer.close()


def _bucket(into: Path, b: int) -> pa.Table:
    path = into / f"{b:05d}.parquet"
    return pq.read_table(path) if path.is_file() else OUTCOME.empty_table()


def _outcome_text(kept: pa.ChunkedArray, reason: pa.ChunkedArray) -> list[str]:
    return ["kept" if k else f"dropped: {r}" for k, r in zip(kept.to_pylist(), reason.to_pylist())]


def compare_stage(
    stage: str, folder_a: Path, folder_b: Path, output: Path, workdir: Path, rows_per_bucket: int = ROWS_PER_BUCKET
) -> dict[str, Any]:
    """Join one stage's outcomes of two runs by doc id; write moved-<stage>.parquet; return the counts."""
    buckets = max(1, math.ceil(max(_rows(folder_a, stage), _rows(folder_b, stage)) / rows_per_bucket))
    _write_buckets(outcomes(folder_a, stage), buckets, workdir / stage / "a")
    _write_buckets(outcomes(folder_b, stage), buckets, workdir / stage / "b")
    counts, transitions, shown = Counter(), Counter(), Nearest(SHOWN)
    moved_path = output / f"moved-{stage}.parquet"
    with pq.ParquetWriter(moved_path, MOVED) as moved_file:
        for b in range(buckets):
            a, bb = _bucket(workdir / stage / "a", b), _bucket(workdir / stage / "b", b)
            joined = a.join(bb, "doc_id", join_type="full outer", left_suffix="_a", right_suffix="_b")
            in_a, in_b = pc.is_valid(joined.column("kept_a")), pc.is_valid(joined.column("kept_b"))
            counts["documents_a"] += a.num_rows
            counts["documents_b"] += bb.num_rows
            counts["only_in_a"] += pc.sum(pc.and_not(in_a, in_b)).as_py() or 0
            counts["only_in_b"] += pc.sum(pc.and_not(in_b, in_a)).as_py() or 0
            both = joined.filter(pc.and_(in_a, in_b))
            moved = both.filter(pc.not_equal(both.column("kept_a"), both.column("kept_b")))
            counts["kept_a_dropped_b"] += pc.sum(moved.column("kept_a")).as_py() or 0
            counts["dropped_a_kept_b"] += pc.sum(moved.column("kept_b")).as_py() or 0
            run_a = _outcome_text(moved.column("kept_a"), moved.column("reason_a"))
            run_b = _outcome_text(moved.column("kept_b"), moved.column("reason_b"))
            url = pc.coalesce(moved.column("url_a"), moved.column("url_b"))
            table = pa.table(
                [moved.column("doc_id"), url, pa.array(run_a, pa.string()), pa.array(run_b, pa.string())], schema=MOVED
            )
            moved_file.write_table(table)
            transitions.update(zip(run_a, run_b))
            rows = table.to_pylist()
            ids = table.column("doc_id").to_pylist()
            shown.offer(np.zeros(len(ids)), stable_fractions(ids), np.ones(len(ids), bool), rows.__getitem__)
    return {
        "stage": stage,
        "folder_a": str(folder_a),
        "folder_b": str(folder_b),
        **counts,
        "config_changes": config_changes(folder_a, folder_b),
        "transitions": [{"run_a": a, "run_b": b, "documents": n} for (a, b), n in transitions.most_common()],
        "moved_file": moved_path.name,
        "shown": shown.items(),
    }


def config_changes(folder_a: Path, folder_b: Path) -> list[dict[str, Any]]:
    """The settings that differ between two finished stages' recorded config slices."""
    flat_a, flat_b = (
        _flatten(read_manifest(folder_a).get("config", {})),
        _flatten(read_manifest(folder_b).get("config", {})),
    )
    return [
        {"setting": k, "run_a": flat_a.get(k), "run_b": flat_b.get(k)}
        for k in sorted(set(flat_a) | set(flat_b))
        if flat_a.get(k) != flat_b.get(k)
    ]


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: json.dumps(tree) if isinstance(tree, list) else tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_flatten(value, f"{prefix}.{key}" if prefix else key))
    return out


def compare_runs(
    run_a: str | Path, run_b: str | Path, output: str | Path | None = None, rows_per_bucket: int = ROWS_PER_BUCKET
) -> tuple[dict[str, Any], Path]:
    """Compare every stage both run folders finished; write the page and files; return (summary, page)."""
    run_a, run_b = Path(run_a), Path(run_b)
    for run in (run_a, run_b):
        if not run.is_dir():
            raise InputError(f"{run} is not a folder; --compare takes two run folders (runs/NAME)")
    stages = [s for s in STAGES if (run_a / s / MANIFEST).is_file() and (run_b / s / MANIFEST).is_file()]
    if not stages:
        raise InputError(f"{run_a} and {run_b} share no finished {', '.join(STAGES)} stage; run them first")
    output = Path(output) if output else run_b / f"compare-{run_a.resolve().name}"
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".compare-", dir=output) as workdir:
        results = [compare_stage(s, run_a / s, run_b / s, output, Path(workdir), rows_per_bucket) for s in stages]
    summary = {"run_a": str(run_a), "run_b": str(run_b), "stages": results}
    atomic_write_text(output / "compare.json", json.dumps(summary, indent=2, ensure_ascii=False))
    page = output / "compare.html"
    atomic_write_text(page, render_compare(summary))
    return summary, page


COUNT_KEYS = ("documents_a", "documents_b", "only_in_a", "only_in_b", "kept_a_dropped_b", "dropped_a_kept_b")


def render_compare(summary: dict[str, Any]) -> str:
    parts = [
        f"<h1>What moved between two runs</h1><p>run A: <code>{summary['run_a']}</code><br>"
        f"run B: <code>{summary['run_b']}</code></p>"
    ]
    parts.append(
        "<h2>Per stage</h2>"
        + html_table([{"stage": s["stage"], **{k: s[k] for k in COUNT_KEYS}} for s in summary["stages"]])
    )
    for s in summary["stages"]:
        moved = s["kept_a_dropped_b"] + s["dropped_a_kept_b"]
        parts.append(f"<h2>{s['stage']}: {moved:,} documents moved</h2>")
        parts.append("<h3>Settings that differ</h3>" + html_table(s["config_changes"]))
        parts.append("<h3>Outcome in run A → outcome in run B</h3>" + html_table(s["transitions"]))
        parts.append(
            f"<h3>Moved documents (first {min(SHOWN, moved):,} of {moved:,}; all in {s['moved_file']})</h3>"
            + html_table(s["shown"], ("doc_id", "url", "run_a", "run_b"))
        )
    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>crawl2gpt compare</title>'
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )


def compare_text(summary: dict[str, Any], page: Path) -> str:
    lines = [f"run A: {summary['run_a']}", f"run B: {summary['run_b']}"]
    for s in summary["stages"]:
        changed = ", ".join(f"{c['setting']} {c['run_a']} -> {c['run_b']}" for c in s["config_changes"]) or "no setting"
        lines.append(
            f"{s['stage']}: {s['kept_a_dropped_b']:,} kept in A and dropped in B, "
            f"{s['dropped_a_kept_b']:,} dropped in A and kept in B ({changed} changed)"
        )
        lines += [f"  {t['documents']:>6,}  {t['run_a']}  ->  {t['run_b']}" for t in s["transitions"][:8]]
    lines.append(f"compare page: {page}")
    return "\n".join(lines)
