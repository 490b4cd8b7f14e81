"""The extraction benchmarks' pages: the shared WARCs' pages that have extraction truth, and the
extractors run over them as the extract stage runs them (ours, with any engine) and as
trafilatura's defaults run (the peer). Shared by extraction_quality.py and train_line_filter.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.harness import SHARED, timed
from pipeline.extract.config import ExtractConfig
from pipeline.extract.http_response import parse_http_response
from pipeline.extract.main_text import decode_html, extract_main_text
from pipeline.extract.normalize import normalize_text
from pipeline.extract.warc import iter_warc_records

DEFAULT_DIR = SHARED / "warc"


def load_truth(path: Path) -> list[dict]:
    truth = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    # Two truth URLs end in a space that the WARC's target URI does not have.
    return [{**row, "url": row["url"].strip()} for row in truth if not row.get("truncated")]


def load_pages(warc_dir: Path, truth: list[dict]) -> dict[str, tuple[str, str | None]]:
    """url -> (decoded html, content type) for every page of the truth file."""
    wanted = {row["url"] for row in truth}
    pages = {}
    for warc in sorted({row["warc"] for row in truth}):
        with open(warc_dir / warc, "rb") as fh:
            for record in iter_warc_records(fh, warc, {}, []):
                url = record.headers.get("warc-target-uri", "").strip()
                if record.rec_type != "response" or url not in wanted:
                    continue
                http = parse_http_response(record.read_block())
                if http and http.status == 200:
                    ctype = http.headers.get("content-type")
                    pages[url] = (decode_html(http.body, ctype)[0], ctype)
    return pages


def run_ours(pages: dict, cfg: ExtractConfig) -> tuple[dict[str, str], float]:
    """Our extraction exactly as the extract stage runs it; CPU seconds of this process."""
    outputs = {}
    with timed() as clock:
        for url, (html, _) in pages.items():
            extracted = extract_main_text(html, url, cfg)
            outputs[url] = normalize_text(extracted.text, cfg) if extracted else ""
    return outputs, clock.cpu_s


def run_trafilatura_defaults(pages: dict) -> tuple[dict[str, str], float]:
    import trafilatura

    outputs = {}
    with timed() as clock:
        for url, (html, _) in pages.items():
            outputs[url] = trafilatura.extract(html, url=url) or ""
    return outputs, clock.cpu_s
