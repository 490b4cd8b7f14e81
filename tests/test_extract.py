"""HTML detection, charset decoding, trafilatura extraction and the per-page time limit."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from pipeline.extract.config import ExtractConfig
from pipeline.extract.main_text import (
    ExtractionTimeout,
    declared_charsets,
    decode_html,
    extract_main_text,
    is_html,
    mostly_utf8,
    run_with_time_limit,
    sniff_html,
)

ARTICLE = (
    '<html><head><title>Die Füchse von Wien</title><meta name="date" content="2021-03-04"></head><body>\n'
    '<nav><a href="/">Home</a> <a href="/a">Archiv</a></nav>\n'
    "<article><h1>Die Füchse von Wien</h1>\n"
    "<p>In den Parks der Stadt leben mehr Füchse, als die meisten Bewohner vermuten. Forscher zählen "
    "seit Jahren die Tiere.</p>\n"
    "<p>Die Füchse haben gelernt, sich tagsüber in Gärten zu verstecken und nachts auf Nahrungssuche zu "
    "gehen, erklärt die Biologin.</p>\n"
    "<p>Ein Fuchs braucht ein Revier von etwa einem Quadratkilometer, in der Stadt reicht oft weniger, "
    "weil es genug Futter gibt.</p>\n"
    "</article><footer>Impressum | Datenschutz</footer></body></html>"
)

ROOT = Path(__file__).resolve().parents[1]


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
    # A UTF-8 page with one stray byte: UTF-8 with that byte replaced, flagged; detection used to
    # guess cp1250 here and turn every umlaut of the page into mojibake ("GrĂĽĂźe").
    text = "<p>" + "Grüße aus Köln, schön. " * 20 + "</p>"
    damaged = text.encode()[:40] + b"\xff" + text.encode()[40:]
    assert not mostly_utf8(text.encode("cp1252")) and mostly_utf8(damaged)
    for content_type in ("text/html; charset=utf-8", None):
        decoded, undecodable = decode_html(damaged, content_type)
        assert undecodable is True
        head = text.encode()[:40].decode()
        assert decoded == head + "\ufffd" + text[len(head) :]


def test_a_clean_page_is_not_flagged():
    assert decode_html("<p>Grüße</p>".encode(), "text/html; charset=utf-8") == ("<p>Grüße</p>", False)


def test_extracts_main_text_title_and_date():
    doc = extract_main_text(ARTICLE, "https://example.org/fuechse", ExtractConfig())
    assert "Revier von etwa einem Quadratkilometer" in doc.text
    assert "Impressum" not in doc.text and "Archiv" not in doc.text
    assert doc.title == "Die Füchse von Wien"
    assert doc.date == "2021-03-04"


def test_empty_page_gives_none():
    assert (
        extract_main_text("<html><head><script>var x = 1;</script></head><body> </body></html>", None, ExtractConfig())
        is None
    )


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


LINKY = (
    "<html><body><article>\n"
    "<p>In den Parks der Stadt leben mehr Füchse, als die meisten Bewohner vermuten. Forscher zählen "
    "seit Jahren die Tiere.</p>\n"
    "<p>Die Füchse haben gelernt, sich tagsüber in Gärten zu verstecken und nachts auf Nahrungssuche zu "
    "gehen, erklärt die Biologin.</p>\n"
    '<p>Mehr dazu: <a href="/a">Wildschweine im Grunewald</a> und <a href="/b">Waschbären in Kassel</a></p>\n'
    '<p>Ein Fuchs braucht ein Revier von etwa einem Quadratkilometer, sagt <a href="/c">die Biologin</a> '
    "in ihrem neuen Buch.</p>\n"
    "</article></body></html>"
)


def test_lines_that_are_mostly_links_are_dropped():
    kept = extract_main_text(LINKY, None, ExtractConfig()).text
    assert "Wildschweine im Grunewald" not in kept  # 52 of 65 characters are link text
    assert "sagt die Biologin in ihrem neuen Buch" in kept  # one link in a sentence stays
    assert "Revier von etwa einem Quadratkilometer" in kept
    unfiltered = extract_main_text(LINKY, None, ExtractConfig(drop_link_lines=False)).text
    assert "Mehr dazu: Wildschweine im Grunewald und Waschbären in Kassel" in unfiltered
    assert unfiltered.replace("\nMehr dazu: Wildschweine im Grunewald und Waschbären in Kassel", "") == kept


def test_element_link_density():
    from trafilatura.utils import load_html

    from pipeline.extract.link_density import element_link_density

    densities = element_link_density(load_html(LINKY))
    line = "Mehr dazu: Wildschweine im Grunewald und Waschbären in Kassel"
    assert densities[line] == len("Wildschweine im Grunewald" + "Waschbären in Kassel") / len(line)
    assert densities["Wildschweine im Grunewald"] == 1.0
    assert not any(text.startswith("Die Füchse haben gelernt") for text in densities)  # no link inside: never looked at


@pytest.mark.slow  # ~7 s: every page of the sample parsed and extracted twice
def test_our_parser_gives_trafilaturas_text_title_and_date():
    """pipeline/extract/html_tree.py swaps lxml.html's Python class lookup for a C one; on every HTML page
    of the bundled WARC, and on pages trafilatura repairs or rejects, nothing extracted changes."""
    from trafilatura.utils import load_html

    from pipeline.extract.html_tree import parse_html
    from pipeline.extract.http_response import parse_http_response
    from pipeline.extract.main_text import decode_html, is_html, main_text, title_and_date
    from pipeline.extract.warc import iter_warc_records

    pages = [
        "",
        "   ",
        "<p>x</p>",
        "not html at all",
        "<html/><body><p>a</p></body>",
        "<?xml version='1.0' encoding='iso-8859-1'?><html><body><p>declared</p></body></html>",
    ]
    with open(ROOT / "data/sample/CC-SAMPLE-A-00002.warc.gz", "rb") as fh:
        for record in iter_warc_records(fh, "sample", {}, []):
            http = parse_http_response(record.read_block()) if record.rec_type == "response" else None
            if http and http.status == 200 and is_html(http.headers.get("content-type"), None, http.body):
                pages.append(decode_html(http.body, http.headers.get("content-type"))[0])
    assert len(pages) > 80
    cfg = ExtractConfig()
    for page in pages:
        ours, theirs = parse_html(page), load_html(page)
        assert (ours is None) == (theirs is None)
        if ours is not None:
            assert (title_and_date(ours, None), main_text(ours, cfg)) == (
                title_and_date(theirs, None),
                main_text(theirs, cfg),
            )
