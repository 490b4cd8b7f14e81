"""HTML payload -> main text, title and date (trafilatura or a resiliparse engine), charset handling, a time limit.

Charset order (WHATWG's encoding sniffing, simplified): byte-order mark, the HTTP
`Content-Type` charset, a `<meta charset>` in the first 4 KB, strict UTF-8; then, for a page
that is UTF-8 apart from a few damaged bytes, UTF-8 with those bytes replaced; then statistical
detection (charset-normalizer). Bytes that no candidate decodes are replaced, and the page
is flagged `undecodable` (counted by the caller), never dropped for it.

Extraction is trafilatura's balanced pass with its readability/jusText comparison, then the
lines that are mostly link text are dropped (pipeline/extract/link_density.py). Every setting was chosen
by 5-fold cross-validation grouped by site (`benchmarks/extraction_quality.py`,
docs/benchmarks-ingest.md), and so was everything that was measured and left out.
"""

from __future__ import annotations

import codecs
import re
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass

from pipeline.extract.config import ExtractConfig
from pipeline.extract.html_tree import parse_html
from pipeline.extract.line_filter import fast_extract
from pipeline.extract.link_density import drop_link_lines
from pipeline.extract.prescreen import Verdict, screen
from pipeline.extract.quality_prescreen import Floors, QualityVerdict, screen_quality
from pipeline.extract.resiliparse_text import resiliparse_extract

HTML_TYPES = ("text/html", "application/xhtml+xml")
META_SCAN_BYTES = 4096  # HTML spec: the prescan looks at the first 1024 bytes; pages often put it later
SNIFF_BYTES = 1024
_CHARSET_RE = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]+)""", re.I)
_HEADER_CHARSET_RE = re.compile(r"""charset\s*=\s*["']?([a-zA-Z0-9_.:-]+)""", re.I)
_HTML_SNIFF_RE = re.compile(
    rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body|title|meta|div|p\b|script)", re.I | re.S
)
_NON_ASCII_RE = re.compile(r"[^\x00-\x7f]")
MIN_UTF8_PER_ERROR = 10  # see mostly_utf8
# WHATWG Encoding standard: these labels mean windows-1252, a superset of Latin-1.
_WHATWG_ALIASES = {
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
}


class ExtractionTimeout(BaseException):
    """One page took longer than `extract.extraction_timeout_s`.

    A BaseException, like KeyboardInterrupt: trafilatura wraps lxml parsing in
    `except Exception` and carries on, which swallowed the alarm and let one page run for
    minutes (tests/test_bad_input.py, test_slow_page_hits_the_per_document_time_limit).
    """


@dataclass
class Extracted:
    text: str
    title: str | None
    date: str | None


# --------------------------------------------------------------------------- payload type and charset


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_html(http_type: str | None, identified_type: str | None, body: bytes) -> bool:
    """HTML by the HTTP Content-Type, else by WARC-Identified-Payload-Type, else sniffed."""
    for declared in (http_type, identified_type):
        kind = media_type(declared)
        if kind:
            return kind in HTML_TYPES
    return sniff_html(body)


def sniff_html(body: bytes) -> bool:
    head = body[:SNIFF_BYTES].lstrip(b"\xef\xbb\xbf")
    return bool(_HTML_SNIFF_RE.match(head))


def _codec(label: str | bytes | None) -> str | None:
    if not label:
        return None
    if isinstance(label, bytes):
        label = label.decode("ascii", "ignore")
    label = label.strip().lower()
    label = _WHATWG_ALIASES.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def declared_charsets(content_type: str | None, body: bytes) -> list[str]:
    """Candidate codecs in the order the page declares them: BOM, HTTP header, <meta>."""
    found = []
    for bom, name in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if body.startswith(bom):
            found.append(name)
    match = _HEADER_CHARSET_RE.search(content_type or "")
    found.append(_codec(match.group(1)) if match else None)
    match = _CHARSET_RE.search(body[:META_SCAN_BYTES])
    found.append(_codec(match.group(1)) if match else None)
    return [c for c in dict.fromkeys(found) if c]


def mostly_utf8(body: bytes) -> bool:
    """UTF-8 with a few damaged bytes (a stray Latin-1 byte, a sequence cut at the end), not
    another encoding: at least MIN_UTF8_PER_ERROR valid multi-byte characters per invalid byte.

    Text in a single-byte encoding almost never forms valid UTF-8 sequences, so this tells the two
    apart where statistical detection cannot: on such a page it guessed cp1250 and turned every
    'ü' of a German page into 'ĂĽ' (tests/test_extract.py).
    """
    text = body.decode("utf-8", errors="replace")
    errors = text.count("\ufffd")
    multibyte = len(_NON_ASCII_RE.findall(text)) - errors
    return multibyte >= MIN_UTF8_PER_ERROR * max(errors, 1)


def decode_html(body: bytes, content_type: str | None = None) -> tuple[str, bool]:
    """Decode an HTML payload once; returns (text, undecodable) where undecodable means
    some bytes had to be replaced because no candidate charset decodes them all."""
    candidates = declared_charsets(content_type, body) + ["utf-8"]
    for codec in dict.fromkeys(candidates):
        try:
            return body.decode("utf-8-sig" if codec == "utf-8" else codec), False
        except (UnicodeDecodeError, LookupError):
            continue
    if mostly_utf8(body):
        return body.decode("utf-8-sig", errors="replace"), True
    guess = _detect(body)
    if guess:
        try:
            return body.decode(guess), False
        except (UnicodeDecodeError, LookupError):
            pass
    return body.decode(candidates[0], errors="replace"), True


def _detect(body: bytes) -> str | None:
    from charset_normalizer import from_bytes

    best = from_bytes(body[:200_000]).best()
    return _codec(best.encoding) if best else None


# --------------------------------------------------------------------------- time limit


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise ExtractionTimeout in this thread after `seconds` (SIGALRM: main thread only).

    SIGALRM costs nothing per call (no thread, no process); elsewhere the caller uses
    `run_with_time_limit`, which falls back to a helper thread.
    """

    def expire(signum, frame):  # noqa: ARG001
        raise ExtractionTimeout(f"extraction took longer than {seconds}s")

    previous = signal.signal(signal.SIGALRM, expire)
    # Re-armed every `seconds` after the first: should some code still swallow one alarm, the next one fires.
    signal.setitimer(signal.ITIMER_REAL, seconds, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


_fallback_pool: ThreadPoolExecutor | None = None


def run_with_time_limit(fn, seconds: float, *args, **kwargs):
    """fn(*args, **kwargs) under a time limit; raises ExtractionTimeout when it runs over."""
    global _fallback_pool
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        with time_limit(seconds):
            return fn(*args, **kwargs)
    # Not the main thread (e.g. a Prefect thread worker): a helper thread keeps the limit.
    # A stuck thread cannot be killed, so the pool is abandoned and replaced after a timeout.
    if _fallback_pool is None:
        _fallback_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="extract")
    future = _fallback_pool.submit(fn, *args, **kwargs)
    try:
        return future.result(timeout=seconds)
    except FutureTimeout:
        _fallback_pool.shutdown(wait=False, cancel_futures=True)
        _fallback_pool = None
        raise ExtractionTimeout(f"extraction took longer than {seconds}s") from None


# --------------------------------------------------------------------------- trafilatura


def main_text(tree, cfg: ExtractConfig) -> str:
    """trafilatura's main text of a parsed page ("" when it finds none); the tree is not changed
    (trafilatura works on a copy when it is handed a tree)."""
    import trafilatura

    doc = trafilatura.bare_extraction(
        tree,
        fast=cfg.fast,
        favor_precision=cfg.favor_precision,
        favor_recall=cfg.favor_recall,
        include_comments=cfg.include_comments,
        include_tables=cfg.include_tables,
        deduplicate=cfg.deduplicate,
        with_metadata=False,
    )
    return (doc.text or "") if doc is not None else ""


def title_and_date(tree, url: str | None) -> tuple[str | None, str | None]:
    """Title and publication date with trafilatura's own metadata code, and nothing else.

    `with_metadata=True` also hunts authors, site name, categories, tags and licence: a
    quarter of all extraction time (profiled on the sample WARCs), for fields we do not keep.
    These are the same calls trafilatura's `extract_metadata` makes for the two we keep;
    the date search is its non-extensive one (the extensive one scans every text node).
    """
    from trafilatura.metadata import examine_meta, extract_meta_json, extract_title, find_date, set_date_params

    meta = examine_meta(tree)
    try:
        meta = extract_meta_json(tree, meta)
    except Exception:  # noqa: BLE001 - trafilatura guards this call the same way (bad JSON-LD)
        pass
    title = meta.title or extract_title(tree)
    date = find_date(tree, **{**set_date_params(False), "url": meta.url or url})
    return (title or None), (date or None)


# The engines other than trafilatura: html -> (main text, title, date), each from one resiliparse parse.
CHEAP_ENGINES = {"resiliparse": resiliparse_extract, "fast": fast_extract}


def extract_main_text(
    html: str,
    url: str | None,
    cfg: ExtractConfig,
    kept_languages: frozenset[str] = frozenset(),
    content_language: str | None = None,
    floors: Floors | None = None,
) -> Extracted | Verdict | QualityVerdict | None:
    """Main text, title and date of one page; None when the engine finds no main text; the
    language pre-screen's Verdict when no kept language can pass (pipeline/extract/prescreen.py;
    only with `cfg.language_prescreen` and kept languages given); the quality pre-screen's
    QualityVerdict when the page's cheap text fails the filter's floors (`floors` given:
    pipeline/extract/quality_prescreen.py).

    The pre-screens read the HTML string and resiliparse's text, so a page they skip is never
    parsed by lxml; the page is then parsed once: the metadata and trafilatura read the same tree
    (trafilatura and the date search prune copies of it). `cfg.engine` other than trafilatura:
    resiliparse's engines, no quality pre-screen (they cost about what it does).
    """
    if cfg.language_prescreen and kept_languages:
        verdict = screen(html, content_language, kept_languages, cfg.prescreen_threshold)
        if verdict is not None:
            return verdict
    if cfg.engine in CHEAP_ENGINES:
        text, title, date = CHEAP_ENGINES[cfg.engine](html)
        return Extracted(text, title, date) if text.strip() else None
    if floors is not None:
        quality = screen_quality(html, floors)
        if quality is not None:
            return quality
    tree = parse_html(html)
    if tree is None:
        return None
    title, date = title_and_date(tree, url)
    text = main_text(tree, cfg)
    if not text.strip():
        return None
    if cfg.drop_link_lines:
        text = drop_link_lines(text, tree, cfg.link_density, cfg.link_line_max_words)
    return Extracted(text, title, date)


def extract_with_limit(
    html: str,
    url: str | None,
    cfg: ExtractConfig,
    kept_languages: frozenset[str] = frozenset(),
    content_language: str | None = None,
    floors: Floors | None = None,
) -> Extracted | Verdict | QualityVerdict | None:
    """extract_main_text under the per-page time limit (cfg.extraction_timeout_s). The same
    arguments, spelled out rather than *args so that callers' types are checked."""
    return run_with_time_limit(
        extract_main_text, cfg.extraction_timeout_s, html, url, cfg, kept_languages, content_language, floors
    )
