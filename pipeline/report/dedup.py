"""The dedup stage's largest clusters, read from its rejects.

Every removed document's row names its cluster (`cluster_id`), the document the cluster kept
(`kept_doc_id`) and why it went (`exact` or `near`; `empty` rows belong to no cluster). One pass
over those three columns counts cluster sizes in bounded memory; a second finds one removed
member of each of the TOP_CLUSTERS largest clusters, and the kept documents are located by
doc id in the kept parts, so only those few texts are read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.bounded import BoundedCounter
from pipeline.outcomes import outcome_files
from pipeline.report.excerpts import locate, read_excerpts, rows_where
from pipeline.stage import read_manifest

TOP_CLUSTERS = 10
REASONS = ("exact", "near")
BATCH_DOCS = 8192


def _cluster_sizes(rejects: list[Path]) -> BoundedCounter:
    """Removed members per cluster: [removed, exact, near]."""
    sizes = BoundedCounter(1 + len(REASONS))
    for path in rejects:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_DOCS, columns=["cluster_id", "reason"]):
            clustered = batch.filter(pc.greater_equal(batch.column("cluster_id"), 0))  # -1: empty, no cluster
            table = pa.table({"cluster": clustered.column("cluster_id"), "reason": clustered.column("reason")})
            grouped = table.group_by(["cluster", "reason"]).aggregate([("reason", "count")]).to_pylist()
            for row in grouped:
                by_reason = [row["reason_count"] if row["reason"] == r else 0 for r in REASONS]
                sizes.add([row["cluster"]], [row["reason_count"]], *([n] for n in by_reason))
    return sizes


def _first_members(rejects: list[Path], clusters: set[int]) -> dict[int, dict[str, Any]]:
    """One removed document (the first in file order) and the kept doc id of each wanted cluster."""
    found: dict[int, dict[str, Any]] = {}
    wanted = pa.array(sorted(clusters), pa.int64())
    columns = ["doc_id", "cluster_id", "kept_doc_id", "reason"]
    for path, row, record in rows_where(rejects, "cluster_id", wanted, columns, BATCH_DOCS):
        found.setdefault(record["cluster_id"], {**record, "file": str(path), "row": row})
        if len(found) == len(clusters):
            break
    return found


def dedup_report(folder: str | Path) -> dict[str, Any]:
    """The largest clusters with the kept document and one removed member each, plus stage counts."""
    folder = Path(folder)
    files = outcome_files(folder, "dedup")
    kept_parts, rejects = [p for p, dropped in files if not dropped], [p for p, dropped in files if dropped]
    rejects = [p for p in rejects if "cluster_id" in pq.read_schema(p).names]
    sizes = _cluster_sizes(rejects)
    top = sizes.top(TOP_CLUSTERS)
    members = _first_members(rejects, {cluster for cluster, _ in top})
    kept_at = locate(kept_parts, {m["kept_doc_id"] for m in members.values()})
    texts = read_excerpts([(m["file"], m["row"]) for m in members.values()] + list(kept_at.values()))
    largest = []
    for cluster, (removed, *by_reason) in top:
        member = members[cluster]
        kept = texts.get(kept_at.get(member["kept_doc_id"]), {})
        shown = texts.get((member["file"], member["row"]), {})
        largest.append(
            {
                "cluster_id": cluster,
                "documents": removed + 1,
                "removed": removed,
                **dict(zip(REASONS, by_reason)),
                "kept": {"doc_id": member["kept_doc_id"], "url": kept.get("url"), "excerpt": kept.get("excerpt", "")},
                "removed_example": {
                    "doc_id": member["doc_id"],
                    "url": shown.get("url"),
                    "reason": member["reason"],
                    "excerpt": shown.get("excerpt", ""),
                },
            }
        )
    stats = read_manifest(folder).get("stats", {})
    return {
        "folder": str(folder),
        "documents": stats.get("docs_in", 0),
        "kept": stats.get("docs_out", 0),
        "drops": stats.get("drops", {}),
        "clusters": stats.get("extra", {}).get("clusters"),
        "clusters_exact": sizes.exact,
        "largest": largest,
    }
