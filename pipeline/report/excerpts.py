"""Text excerpts of a few chosen rows, read without holding any other document's text.

The report picks its examples from signal columns alone; only then does it read the `text`
column, and only of the row groups that hold a chosen row, a batch at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

EXCERPT_CHARS = 280


def excerpt(text: str | None, chars: int = EXCERPT_CHARS) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= chars else flat[: chars - 1] + "…"


def read_excerpts(rows: Iterable[tuple[str, int]], chars: int = EXCERPT_CHARS) -> dict[tuple[str, int], dict]:
    """{(file, row): {"excerpt", "url"}} for rows given as (parquet file, row index within the file)."""
    by_file: dict[str, set[int]] = {}
    for path, row in rows:
        by_file.setdefault(str(path), set()).add(row)
    found: dict[tuple[str, int], dict] = {}
    for path, wanted in by_file.items():
        parquet, start = pq.ParquetFile(path), 0
        columns = [c for c in ("text", "url") if c in parquet.schema_arrow.names]
        for group in range(parquet.num_row_groups):
            size = parquet.metadata.row_group(group).num_rows
            if any(start <= r < start + size for r in wanted):
                offset = start
                for batch in parquet.iter_batches(batch_size=1024, row_groups=[group], columns=columns):
                    for r in (r for r in wanted if offset <= r < offset + batch.num_rows):
                        row = batch.slice(r - offset, 1).to_pylist()[0]
                        found[(path, r)] = {"excerpt": excerpt(row.get("text"), chars), "url": row.get("url")}
                    offset += batch.num_rows
            start += size
    return found


def rows_where(
    files: Iterable[Path], column: str, values: pa.Array, columns: list[str], batch_size: int = 8192
) -> Iterator[tuple[Path, int, dict[str, Any]]]:
    """(file, row within the file, the row's `columns`) of every row whose `column` is one of `values`,
    in file order, reading only `columns`."""
    for path in files:
        row = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=columns):
            hits = pc.is_in(batch.column(column), value_set=values).to_numpy(zero_copy_only=False)
            for i in np.flatnonzero(hits):
                yield path, row + int(i), batch.slice(int(i), 1).to_pylist()[0]
            row += batch.num_rows


def locate(files: Iterable[Path], doc_ids: set[str]) -> dict[str, tuple[str, int]]:
    """Where each wanted doc id sits: {doc_id: (file, row)}, reading the doc_id column only."""
    found: dict[str, tuple[str, int]] = {}
    for path, row, record in rows_where(files, "doc_id", pa.array(sorted(doc_ids), pa.string()), ["doc_id"]):
        found.setdefault(record["doc_id"], (str(path), row))
        if len(found) == len(doc_ids):
            break
    return found
