"""The document table every document stage reads and writes (Parquet, one part per input).

Columns written by extract; filter appends its signal columns and language; dedup keeps the
columns and drops rows. Readers select the columns they need.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.atomic import fsync_dir

DOCUMENT_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),  # stable: derived from the WARC-Record-ID
        ("url", pa.string()),
        ("domain", pa.string()),
        ("warc_date", pa.string()),
        ("title", pa.string()),  # trafilatura metadata
        ("date", pa.string()),  # publication date from trafilatura metadata
        ("source", pa.string()),  # WARC file the record came from
        ("offset", pa.int64()),  # byte offset of the record in that file
        ("text", pa.string()),  # extracted, normalized main text
    ]
)


def write_parquet(table: pa.Table, path: Path) -> None:
    """Write a table durably (fsync) so a manifest written afterwards never lists a torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd")
    with open(path, "rb+") as fh:
        import os

        os.fsync(fh.fileno())
    fsync_dir(path.parent)


def iter_batches(path: Path, columns: list[str] | None = None, batch_size: int = 1024) -> Iterator[pa.RecordBatch]:
    """Stream a part in record batches so memory is bounded by batch size, not part size."""
    yield from pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=columns)
