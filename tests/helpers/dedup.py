"""Helpers shared by the dedup tests: real page texts and a finished `filter`-shaped stage folder."""

from __future__ import annotations

import functools
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from crawl2gpt.config import RunConfig
from pipeline.documents import DOCUMENT_SCHEMA, write_parquet
from pipeline.stage import PartResult, Stage, StageStats, run_stage

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_WARC = ROOT / "data" / "sample" / "CC-SAMPLE-A-00002.warc.gz"


def serial(fn, parts):
    return [fn(p) for p in parts]


def sample_texts(limit: int = 40, min_words: int = 150) -> list[str]:
    """Main texts of real pages of the bundled sample WARC (trafilatura, like the extract stage):
    the first `limit` distinct ones with at least `min_words` words."""
    return [text for text in _sample_texts() if len(text.split()) >= min_words][:limit]


@functools.cache
def _sample_texts() -> tuple[str, ...]:
    """Every distinct main text of the sample, in file order; extracted once per test process
    (trafilatura takes seconds, and several modules ask)."""
    import trafilatura
    from warcio.archiveiterator import ArchiveIterator

    texts = []
    with open(SAMPLE_WARC, "rb") as fh:
        for record in ArchiveIterator(fh):
            if record.rec_type != "response" or "html" not in (record.http_headers.get_header("Content-Type") or ""):
                continue
            text = trafilatura.extract(record.content_stream().read().decode("utf-8", "replace"))
            if text and text not in texts:
                texts.append(text)
    return tuple(texts)


def document_table(rows: list[dict]) -> pa.Table:
    """Rows with at least doc_id and text; other schema columns filled, plus a filter-like signal column."""
    full = [{f.name: row.get(f.name, "" if f.type == pa.string() else 0) for f in DOCUMENT_SCHEMA} for row in rows]
    table = pa.Table.from_pylist(full, schema=DOCUMENT_SCHEMA)
    return table.append_column("gopher_words", pa.array([len((r.get("text") or "").split()) for r in rows], pa.int64()))


class TablesStage(Stage):
    """Writes given tables as a finished stage folder named like the filter stage's output."""

    name = "filter"
    config_sections = ()

    def __init__(self, tables: list[pa.Table]):
        self.tables = tables

    def plan(self, inputs, cfg):
        return list(range(len(self.tables)))

    def run_part(self, part, workdir, cfg):
        rel = f"part-{part:05d}.parquet"
        write_parquet(self.tables[part], workdir / rel)
        return PartResult(part=str(part), outputs=[rel])

    def finish(self, workdir, results, cfg):
        rows = sum(t.num_rows for t in self.tables)
        return StageStats(stage="filter", docs_in=rows, docs_out=rows)


def filter_folder(tmp: Path, parts: list[list[dict]]) -> Path:
    folder = tmp / "filter"
    run_stage(TablesStage([document_table(rows) for rows in parts]), [], folder, RunConfig(), map_parts=serial)
    return folder


def read_folder(folder: Path, sub: str = "") -> pa.Table:
    files = sorted((folder / sub).glob("part-*.parquet")) if sub else sorted(folder.glob("part-*.parquet"))
    tables = [pq.read_table(f) for f in files]
    return pa.concat_tables(tables) if tables else pa.table({})
