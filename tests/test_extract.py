"""HTML detection, charset decoding, trafilatura extraction and the per-page time limit."""
from __future__ import annotations

import threading
import time

import pytest

from pipeline.config import ExtractConfig
from pipeline.extract import (
    ExtractionTimeout,
    decode_html,
    declared_charsets,
    extract_main_text,
    is_html,
    run_with_time_limit,
    sniff_html,
)

ARTICLE = """<html><head><title>Die Füchse von Wien</title><meta name="date" content="2021-03-04"></head><body>
<nav><a href="/">Home</a> <a href="/a">Archiv</a></nav>
<article><h1>Die Füchse von Wien</h1>
<p>In den Parks der Stadt leben mehr Füchse, als die meisten Bewohner vermuten. Forscher zählen seit Jahren die Tiere.</p>
<p>Die Füchse haben gelernt, sich tagsüber in Gärten zu verstecken und nachts auf Nahrungssuche zu gehen, erklärt die Biologin.</p>
<p>Ein Fuchs braucht ein Revier von etwa einem Quadratkilometer, in der Stadt reicht oft weniger, weil es genug Futter gibt.</p>
</article><footer>Impressum | Datenschutz</footer></body></html>"""


def test_is_html_by_header_then_warc_type_then_sniffing():
    assert is_html("text/html; charset=utf-8", "application/pdf", b"%PDF")
    assert not is_html("application/pdf", "text/html", b"<html>")
    assert is_html(None, "application/xhtml+xml", b"")
    assert is_html(None, None, b"  <!DOCTYPE html><html>")
    assert not is_html(None, None, b"\x89PNG\r\n")
    assert sniff_html(b"\xef\xbb\xbf<!-- c --><html>") and not sniff_html(b"plain text")


def test_charset_order_header_then_meta_then_detection():
    text = "Grüße aus Köln – schön"
    cp = f'<meta charset="windows-1252"><p>{text}</p>'.encode("cp1252")
    assert declared_charsets("text/html; charset=ISO-8859-1", cp) == ["cp1252"]  # WHATWG: latin-1 means cp1252
    assert decode_html(cp, None) == (cp.decode("cp1252"), False)  # from <meta>
    utf = f"<p>{text}</p>".encode()
    assert decode_html(utf, "text/html; charset=utf-8")[0] == f"<p>{text}</p>"
    # header wrong (says UTF-8, bytes are cp1252, no meta): falls through to detection, not replacement
    decoded, undecodable = decode_html(f"<p>{text} {text}</p>".encode("cp1252"), "text/html; charset=utf-8")
    assert "Grüße" in decoded and not undecodable


def test_undecodable_bytes_are_replaced_and_flagged():
    decoded, undecodable = decode_html(b'<meta charset="utf-8"><p>ok \xff\xfe\xfd \x81\x8d</p>', "text/html; charset=utf-8")
    assert "ok" in decoded
    assert isinstance(undecodable, bool)  # detection may find a single-byte codec; either way no exception


def test_extracts_main_text_title_and_date():
    doc = extract_main_text(ARTICLE, "https://example.org/fuechse", ExtractConfig())
    assert "Revier von etwa einem Quadratkilometer" in doc.text
    assert "Impressum" not in doc.text and "Archiv" not in doc.text
    assert doc.title == "Die Füchse von Wien"
    assert doc.date == "2021-03-04"


def test_empty_page_gives_none():
    assert extract_main_text("<html><head><script>var x = 1;</script></head><body> </body></html>", None, ExtractConfig()) is None


def test_time_limit_in_main_thread_and_in_a_worker_thread():
    assert run_with_time_limit(lambda: 7, 1.0) == 7
    started = time.perf_counter()
    with pytest.raises(ExtractionTimeout):
        run_with_time_limit(time.sleep, 0.2, 5)
    assert time.perf_counter() - started < 2

    outcome = {}

    def worker():
        try:
            run_with_time_limit(time.sleep, 0.2, 1.5)
        except ExtractionTimeout as err:
            outcome["err"] = err

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(5)
    assert isinstance(outcome.get("err"), ExtractionTimeout)
