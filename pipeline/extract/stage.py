"""The `extract` stage: WARC files -> Parquet documents, one part per input file.

Per record, cheapest test first, so most records cost no decompression copy and no decoding:
record type, HTTP status, payload type, WARC-Truncated, size cap (all from headers), then the
body is read, decoded once, parsed once, pre-screened for language, extracted (trafilatura,
time-limited) and normalized. Every skip is counted under its reason; damage in a file is
counted and reported with the file name, and what was read before it is kept.

When the filter keeps only some languages, pages that none of them can pass skip extraction
(pipeline/extract/prescreen.py) and are written, as the filter writes its drops, to
rejects/part-NNNNN.parquet under the rule `language.prescreen`. Before trafilatura, pages whose
cheap text already fails the filter's word or sentence floor skip it too (`quality.prescreen`,
pipeline/extract/quality_prescreen.py). `extract.engine` picks the extractor (trafilatura,
resiliparse, fast); the stage's summary names it.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.atomic import fsync_dir, temp_path
from pipeline.config import PipelineConfig
from pipeline.documents import DOCUMENT_SCHEMA
from pipeline.errors import InputError
from pipeline.extract.config import ExtractConfig
from pipeline.extract.http_response import parse_http_response
from pipeline.extract.line_filter import check_config as check_engine
from pipeline.extract.line_filter import model_hash
from pipeline.extract.main_text import ExtractionTimeout, decode_html, extract_with_limit, is_html
from pipeline.extract.nesting_limit import PageTooDeep
from pipeline.extract.normalize import normalize_text
from pipeline.extract.prescreen import Verdict, check_config, prescreen_languages
from pipeline.extract.quality_prescreen import RULE as QUALITY_RULE
from pipeline.extract.quality_prescreen import Floors, QualityVerdict, quality_floors
from pipeline.extract.sources import open_input, resolve_inputs
from pipeline.extract.warc import WarcRecord, iter_warc_records
from pipeline.stage import PartResult, Stage, StageStats, merge_counts

HTTP_HEAD_BYTES = 64 * 1024  # enough to read status and headers of an oversized response
ROW_GROUP_DOCS = 1000  # flush to Parquet every N documents: memory stays flat over a file
# Counts that describe the input rather than a dropped document (they go to StageStats.extra).
NOT_DROPS = {
    "records",
    "docs_in",
    "docs_out",
    "bytes_read",
    "unreadable_input",
    "truncated_file",
    "corrupt_file",
    "corrupt_record",
    "undecodable_bytes",
}
# Records that are not documents at all (a crawl's requests, metadata, warcinfo, revisits):
# counted, but reported beside the drops, which are about response records.
NON_RESPONSE_SKIPS = {
    "skip_request",
    "skip_metadata",
    "skip_warcinfo",
    "skip_revisit",
    "skip_resource",
    "skip_conversion",
    "skip_continuation",
    "skip_unknown",
}
# Pages the language pre-screen skipped: a drop under the filter's own rule family, written to
# rejects/ as the filter writes its drops (the language fastText saw, its score, the rule).
PRESCREEN_RULE = "language.prescreen"
REJECTS = "rejects"
# The quality pre-screen's rows carry the cheap text's word and sentence counts instead.
REJECT_SCHEMA = (
    DOCUMENT_SCHEMA.append(pa.field("language", pa.string()))
    .append(pa.field("language_score", pa.float64()))
    .append(pa.field("prescreen_kept_score", pa.float64()))
    .append(pa.field("first_failing_rule", pa.string()))
    .append(pa.field("failing_rules", pa.list_(pa.string())))
    .append(pa.field("prescreen_words", pa.int64()))
    .append(pa.field("prescreen_sentences", pa.int64()))
)


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


def record_to_row(
    record: WarcRecord,
    source: str,
    cfg: ExtractConfig,
    counts: dict[str, int],
    kept_languages: frozenset[str] = frozenset(),
    floors: Floors | None = None,
) -> dict[str, Any] | None:
    """One WARC record -> one document row, or None after counting why it was skipped.

    A page a pre-screen skips (language: `kept_languages` given; quality: `floors` given) comes back
    as a reject row (REJECT_SCHEMA, with `first_failing_rule`), counted under that rule.
    """
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
        content_language = http.headers.get("content-language")
        extracted = extract_with_limit(html, url or None, cfg, kept_languages, content_language, floors)
    except ExtractionTimeout:
        _bump(counts, "skip_extraction_timeout")
        return None
    except PageTooDeep:  # the resiliparse engines' guard (pipeline/extract/nesting_limit.py)
        _bump(counts, "skip_too_deep")
        return None
    except Exception:  # noqa: BLE001 - a trafilatura/lxml bug on one page must not stop the file
        _bump(counts, "skip_extraction_error")
        return None
    record_id = headers.get("warc-record-id") or f"{source}@{record.offset}"
    row = {
        "doc_id": doc_id(record_id),
        "url": url,
        "domain": domain_of(url),
        "warc_date": headers.get("warc-date"),
        "title": None,
        "date": None,
        "source": source,
        "offset": record.offset,
    }
    if isinstance(extracted, Verdict):
        _bump(counts, PRESCREEN_RULE)
        _bump(counts, f"prescreen_lang_{extracted.language}")
        return {
            **row,
            "text": extracted.text,
            "language": extracted.language,
            "language_score": extracted.score,
            "prescreen_kept_score": extracted.kept_score,
            "first_failing_rule": PRESCREEN_RULE,
            "failing_rules": [PRESCREEN_RULE],
        }
    if isinstance(extracted, QualityVerdict):
        _bump(counts, QUALITY_RULE)
        return {
            **row,
            "text": extracted.text,
            "prescreen_words": extracted.words,
            "prescreen_sentences": extracted.sentences,
            "first_failing_rule": QUALITY_RULE,
            "failing_rules": [QUALITY_RULE],
        }
    text = normalize_text(extracted.text, cfg) if extracted else ""
    if len(text) < max(cfg.min_extracted_chars, 1):
        _bump(counts, "skip_extraction_empty")
        return None
    return {**row, "title": extracted.title, "date": extracted.date, "text": text}


# --------------------------------------------------------------------------- one file


class _PartFile:
    """One Parquet file written under a temporary name, flushed every ROW_GROUP_DOCS rows and
    renamed into place on close; a file that never got a row is never created."""

    def __init__(self, path: Path, schema: pa.Schema):
        self.path, self.schema, self.rows, self.written, self.writer = path, schema, [], 0, None
        self.tmp = temp_path(path, str(os.getpid()))

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if len(self.rows) >= ROW_GROUP_DOCS:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(self.tmp, self.schema, compression="zstd")
        self.writer.write_table(pa.Table.from_pylist(self.rows, schema=self.schema))
        self.written += len(self.rows)
        self.rows.clear()

    def close(self, create_empty: bool = False) -> bool:
        """Finish the file; returns whether it exists."""
        self.flush()
        if self.writer is None and create_empty:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(self.tmp, self.schema, compression="zstd")
        if self.writer is None:
            return False
        self.writer.close()
        with open(self.tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(self.tmp, self.path)
        fsync_dir(self.path.parent)
        return True


def extract_file(
    source: str,
    output: Path,
    cfg: ExtractConfig,
    kept_languages: frozenset[str] = frozenset(),
    floors: Floors | None = None,
) -> PartResult:
    """Stream one WARC into one Parquet part (and rejects/ for pre-screened pages); never raises
    for bad input (counts it instead). `kept_languages` turns the language pre-screen on, `floors`
    the quality pre-screen."""
    started = time.time()
    counts: dict[str, int] = {"records": 0, "docs_in": 0, "docs_out": 0}
    errors: list[str] = []
    kept = _PartFile(output, DOCUMENT_SCHEMA)
    rejects = _PartFile(output.parent / REJECTS / output.name, REJECT_SCHEMA)
    try:
        raw = _CountingReader(open_input(source))
    except (OSError, ValueError) as err:
        counts["unreadable_input"] = 1
        errors.append(f"{source}: cannot open: {err}")
    else:
        try:
            for record in iter_warc_records(raw, source, counts, errors, cfg.max_gzip_member_bytes):
                row = record_to_row(record, source, cfg, counts, kept_languages, floors)
                if row is not None:
                    (rejects if "first_failing_rule" in row else kept).add(row)
        except OSError as err:  # network drop or disk error mid-file: keep what was read
            counts["unreadable_input"] = counts.get("unreadable_input", 0) + 1
            errors.append(f"{source}: read failed after {counts['records']} records: {err}")
        finally:
            counts["bytes_read"] = raw.bytes
            close = getattr(raw.raw, "close", None)
            if close:
                close()
    kept.close(create_empty=True)
    counts["docs_out"] = kept.written
    outputs = [output.name] + ([f"{REJECTS}/{output.name}"] if rejects.close() else [])
    return PartResult(
        part=source,
        outputs=outputs,
        counts=counts,
        errors=errors,
        seconds=round(time.time() - started, 3),
        meta={"source": source},
    )


# --------------------------------------------------------------------------- the stage


PRESCREEN_FIELDS = {"language_prescreen", "prescreen_threshold"}
QUALITY_FIELDS = {"quality_prescreen", "quality_prescreen_margin"}


class ExtractStage(Stage):
    name = "extract"
    config_sections = ("extract",)

    def config_slice(self, cfg: PipelineConfig) -> dict[str, Any]:
        """The extract section, and what the pre-screens read from the filter's settings while they
        run (the kept languages; the word and sentence floors and C4's line rules), so changing
        those reruns extract; each pre-screen's own settings count only while it runs. With the
        fast engine, its weights' hash: new weights rerun extract."""
        kept, floors = prescreen_languages(cfg), quality_floors(cfg)
        exclude = (set() if kept else PRESCREEN_FIELDS) | (set() if floors else QUALITY_FIELDS)
        config: dict[str, Any] = {"extract": cfg.extract.model_dump(mode="json", exclude=exclude or None)}
        if kept:
            config["filter.language.languages"] = sorted(kept)
        if floors:
            config["filter.gopher_quality.min_doc_words"] = floors.min_words
            config["filter.c4"] = cfg.filter.c4.model_dump(mode="json") if floors.min_sentences is not None else None
        if cfg.extract.engine == "fast":
            config["line_filter"] = model_hash()
        return config

    def plan(self, inputs: Sequence[str], cfg: PipelineConfig) -> list[WarcPart]:
        check_config(cfg)
        check_engine(cfg)
        return [WarcPart(i, source) for i, source in enumerate(resolve_inputs(list(inputs)))]

    def run_part(self, part: WarcPart, workdir: Path, cfg: PipelineConfig) -> PartResult:
        output = Path(workdir) / f"part-{part.index:05d}.parquet"
        return extract_file(part.source, output, cfg.extract, prescreen_languages(cfg), quality_floors(cfg))

    def finish(self, workdir: Path, results: list[PartResult], cfg: PipelineConfig) -> StageStats:
        counts = merge_counts(results)
        readable = [r for r in results if not r.counts.get("unreadable_input") or r.counts.get("records")]
        if results and not readable:
            raise InputError("no input could be read: " + "; ".join(e for r in results for e in r.errors[:1]))
        extra: dict[str, Any] = {
            k: v for k, v in counts.items() if k in NOT_DROPS | NON_RESPONSE_SKIPS and k not in ("docs_in", "docs_out")
        }
        prescreened = {
            k.removeprefix("prescreen_lang_"): v for k, v in counts.items() if k.startswith("prescreen_lang_")
        }
        if prescreened:
            extra["prescreen_languages"] = dict(sorted(prescreened.items(), key=lambda kv: (-kv[1], kv[0])))
        extra["engine"] = cfg.extract.engine
        extra["files"] = len(results)
        extra["files_with_errors"] = sum(1 for r in results if r.errors)
        extra["per_file"] = {
            r.part: {
                "docs_out": r.counts.get("docs_out", 0),
                "records": r.counts.get("records", 0),
                "seconds": r.seconds,
                "errors": r.errors,
            }
            for r in results
        }
        return StageStats(
            stage=self.name,
            docs_in=counts.get("docs_in", 0),
            docs_out=counts.get("docs_out", 0),
            drops={
                k: v
                for k, v in sorted(counts.items())
                if k not in NOT_DROPS | NON_RESPONSE_SKIPS and not k.startswith("prescreen_lang_")
            },
            extra=extra,
            errors=[e for r in results for e in r.errors],
        )


EXTRACT = ExtractStage()
