"""The `extract` stage: WARC files -> Parquet documents, one part per input file.

Per record, cheapest test first, so most records cost no decompression copy and no decoding:
record type, HTTP status, payload type, WARC-Truncated, size cap (all from headers), then the
body is read, decoded once, extracted (trafilatura, time-limited) and normalized. Every skip
is counted under its reason; damage in a file is counted and reported with the file name,
and what was read before it is kept.
"""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config import ExtractConfig, PipelineConfig
from pipeline.documents import DOCUMENT_SCHEMA
from pipeline.atomic import fsync_dir
from pipeline.errors import InputError
from pipeline.extract import ExtractionTimeout, decode_html, extract_with_limit, is_html
from pipeline.normalize import normalize_text
from pipeline.sources import open_input, resolve_inputs
from pipeline.stage import PartResult, StageStats, merge_counts
from pipeline.warc import WarcRecord, iter_warc_records, parse_http_response

HTTP_HEAD_BYTES = 64 * 1024  # enough to read status and headers of an oversized response
ROW_GROUP_DOCS = 1000  # flush to Parquet every N documents: memory stays flat over a file
# Counts that describe the input rather than a dropped document (they go to StageStats.extra).
NOT_DROPS = {"records", "docs_in", "docs_out", "bytes_read", "unreadable_input", "truncated_file",
             "corrupt_file", "corrupt_record", "undecodable_bytes"}
# Records that are not documents at all (a crawl's requests, metadata, warcinfo, revisits):
# counted, but reported beside the drops, which are about response records.
NON_RESPONSE_SKIPS = {"skip_request", "skip_metadata", "skip_warcinfo", "skip_revisit", "skip_resource",
                      "skip_conversion", "skip_continuation", "skip_unknown"}


@dataclass(frozen=True)
class WarcPart:
    """One input file of the extract stage."""

    index: int
    source: str


def doc_id(record_id: str) -> str:
    """Stable document id: the first 20 hex digits (80 bits) of sha1(WARC-Record-ID)."""
    return hashlib.sha1(record_id.encode("utf-8")).hexdigest()[:20]


def domain_of(url: str) -> str:
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return ""
    return host.lower().removeprefix("www.")


class _CountingReader:
    """Counts the raw (compressed) bytes read from a source, for throughput figures."""

    def __init__(self, raw):
        self.raw, self.bytes = raw, 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.bytes += len(data)
        return data


# --------------------------------------------------------------------------- one record


def _bump(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1


def record_to_row(record: WarcRecord, source: str, cfg: ExtractConfig, counts: dict[str, int]) -> dict[str, Any] | None:
    """One WARC record -> one document row, or None after counting why it was skipped."""
    if record.rec_type != "response":
        # Only WARC 1.1's own types get their own counter: a damaged type ("\x00arcinfo", found
        # by tests/test_fuzz_ingest.py) would otherwise become a made-up drop reason in the report.
        kind = f"skip_{record.rec_type}"
        _bump(counts, kind if kind in NON_RESPONSE_SKIPS else "skip_unknown")
        return None
    _bump(counts, "docs_in")
    headers = record.headers
    url = headers.get("warc-target-uri", "").strip("<>")
    too_large = record.length > cfg.max_page_bytes + HTTP_HEAD_BYTES
    block = record.read_block(HTTP_HEAD_BYTES if too_large else None)
    if record.damaged:
        return None  # counted by the reader as a corrupt record / truncated file
    http = parse_http_response(block)
    if http is None:
        _bump(counts, "skip_not_http")
        return None
    if 300 <= http.status < 400:
        _bump(counts, "skip_redirect")
        return None
    if http.status != 200:
        _bump(counts, "skip_status")
        return None
    if not is_html(http.headers.get("content-type"), headers.get("warc-identified-payload-type"), http.body):
        _bump(counts, "skip_not_html")
        return None
    if headers.get("warc-truncated") and not cfg.keep_truncated:
        _bump(counts, "skip_truncated")
        return None
    if too_large or len(http.body) > cfg.max_page_bytes:
        _bump(counts, "skip_too_large")
        return None
    if not http.body.strip():
        _bump(counts, "skip_empty_body")
        return None

    html, undecodable = decode_html(http.body, http.headers.get("content-type"))
    if undecodable:
        _bump(counts, "undecodable_bytes")
    try:
        extracted = extract_with_limit(html, url or None, cfg)
    except ExtractionTimeout:
        _bump(counts, "skip_extraction_timeout")
        return None
    except Exception:  # noqa: BLE001 - a trafilatura/lxml bug on one page must not stop the file
        _bump(counts, "skip_extraction_error")
        return None
    text = normalize_text(extracted.text, cfg) if extracted else ""
    if len(text) < max(cfg.min_extracted_chars, 1):
        _bump(counts, "skip_extraction_empty")
        return None
    record_id = headers.get("warc-record-id") or f"{source}@{record.offset}"
    return {
        "doc_id": doc_id(record_id),
        "url": url,
        "domain": domain_of(url),
        "warc_date": headers.get("warc-date"),
        "title": extracted.title,
        "date": extracted.date,
        "source": source,
        "offset": record.offset,
        "text": text,
    }


# --------------------------------------------------------------------------- one file


def extract_file(source: str, output: Path, cfg: ExtractConfig) -> PartResult:
    """Stream one WARC into one Parquet part; never raises for bad input (counts it instead)."""
    started = time.time()
    counts: dict[str, int] = {"records": 0, "docs_in": 0, "docs_out": 0}
    errors: list[str] = []
    rows: list[dict[str, Any]] = []
    tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    writer = pq.ParquetWriter(tmp, DOCUMENT_SCHEMA, compression="zstd")
    try:
        try:
            raw = _CountingReader(open_input(source))
        except (OSError, ValueError) as err:
            counts["unreadable_input"] = 1
            errors.append(f"{source}: cannot open: {err}")
        else:
            try:
                for record in iter_warc_records(raw, source, counts, errors, cfg.max_gzip_member_bytes):
                    row = record_to_row(record, source, cfg, counts)
                    if row is not None:
                        rows.append(row)
                        if len(rows) >= ROW_GROUP_DOCS:
                            writer.write_table(pa.Table.from_pylist(rows, schema=DOCUMENT_SCHEMA))
                            counts["docs_out"] += len(rows)
                            rows.clear()
            except OSError as err:  # network drop or disk error mid-file: keep what was read
                counts["unreadable_input"] = counts.get("unreadable_input", 0) + 1
                errors.append(f"{source}: read failed after {counts['records']} records: {err}")
            finally:
                counts["bytes_read"] = raw.bytes
                close = getattr(raw.raw, "close", None)
                if close:
                    close()
        if rows:
            writer.write_table(pa.Table.from_pylist(rows, schema=DOCUMENT_SCHEMA))
            counts["docs_out"] += len(rows)
    finally:
        writer.close()
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, output)
    fsync_dir(output.parent)
    return PartResult(
        part=source,
        outputs=[output.name],
        counts=counts,
        errors=errors,
        seconds=round(time.time() - started, 3),
        meta={"source": source},
    )


# --------------------------------------------------------------------------- the stage


class ExtractStage:
    name = "extract"
    config_sections = ("extract",)

    def plan(self, inputs: Sequence[str], cfg: PipelineConfig) -> list[WarcPart]:
        return [WarcPart(i, source) for i, source in enumerate(resolve_inputs(list(inputs)))]

    def run_part(self, part: WarcPart, workdir: Path, cfg: PipelineConfig) -> PartResult:
        return extract_file(part.source, Path(workdir) / f"part-{part.index:05d}.parquet", cfg.extract)

    def finish(self, workdir: Path, results: list[PartResult], cfg: PipelineConfig) -> StageStats:
        counts = merge_counts(results)
        readable = [r for r in results if not r.counts.get("unreadable_input") or r.counts.get("records")]
        if results and not readable:
            raise InputError(
                "no input could be read: " + "; ".join(e for r in results for e in r.errors[:1])
            )
        extra: dict[str, Any] = {
            k: v for k, v in counts.items() if k in NOT_DROPS | NON_RESPONSE_SKIPS and k not in ("docs_in", "docs_out")
        }
        extra["files"] = len(results)
        extra["files_with_errors"] = sum(1 for r in results if r.errors)
        extra["per_file"] = {
            r.part: {"docs_out": r.counts.get("docs_out", 0), "records": r.counts.get("records", 0),
                     "seconds": r.seconds, "errors": r.errors}
            for r in results
        }
        return StageStats(
            stage=self.name,
            docs_in=counts.get("docs_in", 0),
            docs_out=counts.get("docs_out", 0),
            drops={k: v for k, v in sorted(counts.items()) if k not in NOT_DROPS | NON_RESPONSE_SKIPS},
            extra=extra,
            errors=[e for r in results for e in r.errors],
        )


EXTRACT = ExtractStage()
