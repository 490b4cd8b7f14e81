"""The fast engine's vectorised steps give what their plain-Python definitions give.

Marking tags (pipeline/extract/tag_markers.py) and cutting resiliparse's text into lines with
their word counts, end punctuation and bullets (pipeline/extract/line_shapes.py) are numpy and
re.split tricks that replaced a regex callback and per-line Python; the features, and so the
kept lines, must stay the same. Each is compared with the straightforward version on the bundled
sample's pages and on strings built to hit the edge cases (Unicode spaces, bullets, control
characters, markers inside words, tag names in any case or with Unicode look-alike letters).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from pipeline.extract import tag_markers
from pipeline.extract.http_response import parse_http_response
from pipeline.extract.line_shapes import END_PUNCTUATION, LineShapes, is_space
from pipeline.extract.main_text import decode_html, is_html
from pipeline.extract.nesting_limit import check_html
from pipeline.extract.resiliparse_text import parse, whole_page_text
from pipeline.extract.tag_markers import (
    BOX_CLOSE,
    BOX_OPEN,
    BOXES,
    BULLET,
    CLOSE,
    CONTAINERS,
    HEADING,
    LINK_CLOSE,
    LINK_OPEN,
    MARK_CHARS,
    OPEN,
    code_points,
    is_marker,
    mark,
    unmark,
)
from pipeline.extract.warc import iter_warc_records

_TAG_RE = re.compile(r"<(/?)(a|h[1-6]|{})\b".format("|".join(CONTAINERS)), re.I)


def reference_mark(html: str) -> str:
    """The marking as first written: a regex with a function called per tag."""

    def marker(match: re.Match) -> str:
        closing, name = match[1] == "/", match[2].lower()
        if name in CONTAINERS:
            kind = (CLOSE if closing else OPEN) + ((BOX_CLOSE if closing else BOX_OPEN) if name in BOXES else "")
        elif name == "a":
            kind = LINK_CLOSE if closing else LINK_OPEN
        elif re.fullmatch("h[1-6]", name):
            kind = "" if closing else HEADING
        else:  # a Unicode look-alike letter matched under re.I: no HTML element
            kind = ""
        return kind + match[0]

    return _TAG_RE.sub(marker, re.sub("[\ufdd0-\ufdd6]", "", html))


def reference_lines(full: str) -> tuple[list[int], list[str], list[int], list[bool], list[bool]]:
    """Kept line numbers, their text, words, end punctuation and bullet, per line in Python."""
    stripped = [line.strip() for line in unmark(full).split("\n")]
    keep = [i for i, line in enumerate(stripped) if line.strip(BULLET + " ")]
    lines = [stripped[i] for i in keep]
    return (
        keep,
        lines,
        [len(line.split()) for line in lines],
        [line[-1] in END_PUNCTUATION for line in lines],
        [line[0] == BULLET for line in lines],
    )


def assert_same_lines(full: str) -> None:
    cp = code_points(full)
    shapes = LineShapes(cp, is_marker(cp))
    keep, lines, words, end_punct, bullet = reference_lines(full)
    assert shapes.keep.tolist() == keep
    assert shapes.kept_lines() == lines
    if keep:
        assert shapes.words.tolist() == words
        assert shapes.end_punct.astype(bool).tolist() == end_punct
        assert shapes.bullet.astype(bool).tolist() == bullet


def sample_pages(sample_warc) -> list[str]:
    pages = []
    with open(sample_warc, "rb") as fh:
        for record in iter_warc_records(fh, sample_warc.name, {}, []):
            http = parse_http_response(record.read_block()) if record.rec_type == "response" else None
            if http and is_html(http.headers.get("content-type"), None, http.body[:2048]):
                pages.append(decode_html(http.body, http.headers.get("content-type"))[0])
    return pages


EDGE_TEXTS = [
    "",
    "\n\n",
    "\u2022\n\u2022 \n \u2022 \u2022 ",
    "\u2022 \xa0 \u2022\nx",  # a no-break space between bullets: str.strip keeps it, so the line stays
    "  two  words \n\x1c\x1d sep\x1f\narrow\u2003space\u3000end.",
    "\x01\n\x01 control\n\x85next\u2028line",
    f"mark{OPEN}ed word{CLOSE}s {LINK_OPEN}link{LINK_CLOSE}.\n{HEADING}Heading\n{OPEN}\n{CLOSE} \u2022 item”",
    f"{BULLET}{OPEN} start\n end {CLOSE}{BULLET}",
    "é è\u00adsoft » « ” …\nlast line without newline",
]
EDGE_PAGES = [
    "<DIV class=x><Div-x>y</DIV></div><dIv><A href=1>l</a></A><H2>h</h2><NAV><Aside>",
    "<divé>no</divé><div_x>no<div1>no<a_b>no<h7>no<h1x>no<h1>yes</h1 >",
    "<ſection>s</ſection><dıv>d</dıv><DİV>x</DİV><blockquote>q</BLOCKQUOTE><article><aside>",
    "text \ufdd0 with \ufdd4 markers <div>inside</div>",
    "<a",
    "</",
    "<div",
    "</div",
    "<",
    "plain",
]


def test_marking_matches_the_per_tag_regex(sample_warc):
    for html in EDGE_PAGES + sample_pages(sample_warc):
        assert mark(html) == reference_mark(html)
        check_html(html)  # look-alike names neither mark nor raise


def test_made_up_tag_names_do_not_grow_the_spelling_cache():
    html = "".join(f"<a{i:x}>" for i in range(tag_markers.MAX_SPELLINGS + 10))
    assert mark(html) == html and len(tag_markers._MARKED_TAGS) <= tag_markers.MAX_SPELLINGS


@pytest.mark.parametrize("text", EDGE_TEXTS)
def test_line_shapes_match_python_on_edge_cases(text):
    assert_same_lines(text)


def test_line_shapes_match_python_on_the_sample(sample_warc):
    for html in sample_pages(sample_warc):
        assert_same_lines(whole_page_text(parse(mark(html))))


def test_space_table_is_str_isspace_everywhere():
    cp = np.arange(0x110000, dtype=np.uint32)
    assert np.flatnonzero(is_space(cp)).tolist() == [c for c in range(0x110000) if chr(c).isspace()]


def test_unmark_removes_every_marker():
    assert unmark("a" + "".join(MARK_CHARS) + "b" + OPEN) == "ab"


def test_window_columns_are_the_neighboured_values_in_order():
    from pipeline.extract.page_lines import _WINDOWS, FEATURES, NEIGHBOURED

    for w, columns in _WINDOWS.items():
        names = FEATURES[columns]
        assert names and names == tuple(f"{name}_win{w}" for name in NEIGHBOURED[: len(names)])
        assert not any(f"{name}_win{w}" in FEATURES for name in NEIGHBOURED[len(names) :])
