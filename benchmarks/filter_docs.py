"""Benchmark documents for the filter benchmarks: the shared sample WARCs' pages, extracted by
the project's own extract code, each with the page's declared language (<html lang="..">) as an
independent label for language-ID precision/recall. Cached as JSONL under .bench/."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

from benchmarks.harness import BENCH_DIR, SHARED

DEFAULT_WARCS = sorted((SHARED / "warc").glob("CC-SAMPLE-A-0000?.warc.gz"))
CACHE = BENCH_DIR / "filter-docs.jsonl"
HTML_LANG = re.compile(rb"<html[^>]*?\blang\s*=\s*[\"']?([A-Za-z]{2})(?![A-Za-z])", re.I)


def declared_languages(warc: Path) -> dict[str, str]:
    """URL -> the language its HTML declares (only pages that declare one)."""
    from warcio.archiveiterator import ArchiveIterator

    langs = {}
    with open(warc, "rb") as fh:
        for record in ArchiveIterator(fh):
            if record.rec_type != "response":
                continue
            match = HTML_LANG.search(record.content_stream().read(20_000))
            if match:
                langs[record.rec_headers.get_header("WARC-Target-URI")] = match.group(1).decode().lower()
    return langs


def load_docs(warcs: list[Path] | None = None, cache: Path = CACHE) -> list[dict]:
    warcs = [Path(w) for w in (warcs or DEFAULT_WARCS)]
    if not warcs:
        raise SystemExit("no WARC files: pass paths, or provide ../shared/data/warc/")
    if cache.is_file() and warcs == [Path(w) for w in DEFAULT_WARCS]:
        return [json.loads(line) for line in cache.open(encoding="utf-8")]
    import pyarrow.parquet as pq

    from pipeline.extract.config import ExtractConfig
    from pipeline.extract.stage import extract_file

    docs = []
    with tempfile.TemporaryDirectory() as tmp:
        for warc in warcs:
            part = Path(tmp) / f"{warc.name}.parquet"
            extract_file(str(warc), part, ExtractConfig())
            langs = declared_languages(warc)
            for row in pq.read_table(part, columns=["url", "text"]).to_pylist():
                docs.append({"url": row["url"], "text": row["text"], "html_lang": langs.get(row["url"])})
    if warcs == [Path(w) for w in DEFAULT_WARCS]:
        cache.parent.mkdir(exist_ok=True)
        cache.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    return docs
