"""The dedup stage's output, the same for every backend: kept rows and rejects, one task per part.

A backend's answer is a list of removed documents with their cluster roots. `removed_tables`
turns it into one small table per part (row, cluster_id, kept_doc_id, reason), reading only the
columns it needs of the minhash parts; `write_part` then streams its input part once, in record
batches, splitting it into part-i.parquet (kept rows, input columns as they were) and
rejects/part-i.parquet. Both run the same way whichever backend found the clusters, so the files
are byte for byte the same.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.atomic import fsync_dir, temp_path
from pipeline.stage import PartResult

REJECT_FIELDS = [("cluster_id", pa.int64()), ("kept_doc_id", pa.string()), ("reason", pa.string())]
ROW_GROUP_ROWS = 8192


def part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


class PartWriter:
    """Parquet written in row groups as rows arrive, under a temporary name, renamed when closed.

    The temporary file lives in `tmp_dir` (the stage's scratch folder, removed before the manifest
    lists the stage folder), so a task killed mid-write leaves nothing a manifest could list.
    """

    def __init__(self, path: Path, schema: pa.Schema, tmp_dir: Path, rows_per_group: int = ROW_GROUP_ROWS):
        self.path, self.schema, self.rows_per_group = Path(path), schema, rows_per_group
        tmp_dir.mkdir(parents=True, exist_ok=True)
        self.tmp = tmp_dir / f"{self.path.name}.{uuid.uuid4().hex[:8]}"
        self.writer = pq.ParquetWriter(self.tmp, schema, compression="zstd")
        self.pending: list[pa.Table] = []
        self.pending_rows = 0

    def add(self, table: pa.Table | pa.RecordBatch) -> None:
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        if not table.num_rows:
            return
        self.pending.append(table.replace_schema_metadata(self.schema.metadata))
        self.pending_rows += table.num_rows
        if self.pending_rows >= self.rows_per_group:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            self.writer.write_table(pa.concat_tables(self.pending), row_group_size=self.rows_per_group)
            self.pending, self.pending_rows = [], 0

    def close(self) -> None:
        self._flush()
        self.writer.close()
        with open(self.tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.tmp, self.path)
        fsync_dir(self.path.parent)


# ------------------------------------------------------------------ the backends' answer, per part


@dataclass(frozen=True)
class OutputPart:
    """One input part to split into kept rows and rejects."""

    index: int
    source: str  # the input part
    minhash: str  # its minhash part, relative to the stage folder
    offset: int  # global index of its first row
    rows: int

    @property
    def label(self) -> str:
        return f"write-{self.index:05d}"


def column_at(workdir: Path, parts: list[OutputPart], keys: np.ndarray, column: str) -> pa.Array:
    """Values of a minhash-part column at sorted global indices, reading each part's column once."""
    chunks = []
    for part in parts:
        lo, hi = np.searchsorted(keys, [part.offset, part.offset + part.rows])
        if hi > lo:
            values = pq.read_table(workdir / part.minhash, columns=[column]).column(column)
            chunks.append(values.take(pa.array(keys[lo:hi] - part.offset)))
    return pa.concat_arrays([c.combine_chunks() for c in chunks]) if chunks else pa.array([], pa.null())


def removed_tables(
    workdir: Path, scratch: Path, parts: list[OutputPart], removed: np.ndarray, roots: np.ndarray
) -> None:
    """Write scratch/removed/part-i.parquet: the removed rows of part i with cluster, kept id and reason."""
    if not len(removed):
        return
    order = np.argsort(removed, kind="stable")
    removed, roots = removed[order].astype(np.int64), roots[order].astype(np.int64)
    kept = np.unique(roots)
    kept_ids = column_at(workdir, parts, kept, "doc_id")
    kept_hashes = column_at(workdir, parts, kept, "text_hash").to_numpy()
    removed_hashes = column_at(workdir, parts, removed, "text_hash").to_numpy()
    at = np.searchsorted(kept, roots)
    reason = np.where(removed_hashes == kept_hashes[at], "exact", "near")
    for part in parts:
        lo, hi = np.searchsorted(removed, [part.offset, part.offset + part.rows])
        if hi == lo:
            continue
        table = pa.table(
            {
                "row": pa.array(removed[lo:hi] - part.offset),
                "cluster_id": pa.array(roots[lo:hi]),
                "kept_doc_id": kept_ids.take(pa.array(at[lo:hi])),
                "reason": pa.array(reason[lo:hi].tolist(), pa.string()),
            }
        )
        path = scratch / "removed" / part_name(part.index)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(path)
        pq.write_table(table, tmp)
        os.replace(tmp, path)


def write_part(part: OutputPart, workdir: Path, scratch: Path, batch_size: int = 2048) -> PartResult:
    """Split one input part into kept rows and rejects (removed by a cluster, or empty)."""
    started = time.time()
    removed_path = scratch / "removed" / part_name(part.index)
    removed = pq.read_table(removed_path) if removed_path.is_file() else None
    removed_rows = removed.column("row").to_numpy() if removed is not None else np.zeros(0, np.int64)
    empty = pq.read_table(workdir / part.minhash, columns=["n_shingles"]).column("n_shingles").to_numpy() == 0
    schema = pq.ParquetFile(part.source).schema_arrow
    reject_schema = schema
    for name, kind in REJECT_FIELDS:
        reject_schema = reject_schema.append(pa.field(name, kind))
    kept_out = PartWriter(workdir / part_name(part.index), schema, scratch / "tmp")
    rejects_out = None
    drops = {"exact_duplicate": 0, "near_duplicate": 0, "empty": 0}
    start = 0
    for batch in pq.ParquetFile(part.source).iter_batches(batch_size=batch_size):
        rows = np.arange(start, start + batch.num_rows)
        lo, hi = np.searchsorted(removed_rows, [start, start + batch.num_rows])
        is_removed = np.zeros(batch.num_rows, dtype=bool)
        is_removed[removed_rows[lo:hi] - start] = True
        is_empty = empty[rows]
        kept_out.add(batch.filter(pa.array(~is_removed & ~is_empty)))
        dropped = np.flatnonzero(is_removed | is_empty)
        if len(dropped):
            rejects = _rejects(
                batch,
                dropped,
                is_empty,
                removed.slice(lo, hi - lo) if removed is not None else None,
                removed_rows[lo:hi] - start,
            )
            for reason in rejects.column("reason").to_pylist():
                drops[{"exact": "exact_duplicate", "near": "near_duplicate", "empty": "empty"}[reason]] += 1
            rejects_out = rejects_out or PartWriter(
                workdir / "rejects" / part_name(part.index), reject_schema, scratch / "tmp"
            )
            rejects_out.add(rejects)
        start += batch.num_rows
    kept_out.close()
    if rejects_out is not None:
        rejects_out.close()
    outputs = [part_name(part.index)] + ([f"rejects/{part_name(part.index)}"] if rejects_out is not None else [])
    return PartResult(part=part.label, outputs=outputs, counts=drops, seconds=time.time() - started)


def _rejects(
    batch: pa.RecordBatch,
    dropped: np.ndarray,
    is_empty: np.ndarray,
    removed: pa.Table | None,
    removed_local: np.ndarray,
) -> pa.Table:
    """The dropped rows of a batch (in row order) with cluster_id, kept_doc_id and reason."""
    table = pa.Table.from_batches([batch]).take(pa.array(dropped))
    cluster = np.full(len(dropped), -1, dtype=np.int64)
    kept_id: list[str | None] = [None] * len(dropped)
    reason = ["empty"] * len(dropped)
    if removed is not None and len(removed_local):
        at = np.searchsorted(dropped, removed_local)  # where each removed row sits among the dropped
        cluster[at] = removed.column("cluster_id").to_numpy()
        for i, kid, why in zip(
            at.tolist(), removed.column("kept_doc_id").to_pylist(), removed.column("reason").to_pylist()
        ):
            kept_id[i], reason[i] = kid, why
    table = table.append_column(pa.field(*REJECT_FIELDS[0]), pa.array(cluster))
    table = table.append_column(pa.field(*REJECT_FIELDS[1]), pa.array(kept_id, pa.string()))
    return table.append_column(pa.field(*REJECT_FIELDS[2]), pa.array(reason, pa.string()))
