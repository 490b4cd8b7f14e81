"""Invisible marker characters before a page's container, link and heading tags, so that
resiliparse's text shows where those elements open and close.

resiliparse (C++) renders a page to text in about a millisecond but tells nothing of the elements
a line sat in, and a walk over its DOM in Python costs ~5 ms a page (issue 26's prototype). So
before the parse, one regular expression puts a marker character in front of every container,
link and heading tag; resiliparse keeps the markers in its text exactly where the elements open
and close, and pipeline/extract/page_lines.py turns them into per-line features with numpy.

The markers are Unicode noncharacters (U+FDD0..U+FDD6), which no text may carry; any the page
holds are removed first. A marker before an unclosed tag only misplaces a boundary: features get
noisier, nothing fails. The regex has no nested repetition, so it scans in linear time.
Containers are elements whose end tag HTML requires (not <td>, <li> or <p>), so the markers'
depth follows the page's.
"""

from __future__ import annotations

import re

import numpy as np

OPEN, CLOSE, LINK_OPEN, LINK_CLOSE, BOX_OPEN, BOX_CLOSE, HEADING = (chr(0xFDD0 + i) for i in range(7))
MARK_CHARS = (OPEN, CLOSE, LINK_OPEN, LINK_CLOSE, BOX_OPEN, BOX_CLOSE, HEADING)
FIRST_MARK, LAST_MARK = 0xFDD0, 0xFDD6
BULLET = "\u2022"  # resiliparse's list bullet
# Elements whose extent is a line's context; BOXES (page furniture by their tag) are containers too.
CONTAINERS = (
    "div",
    "section",
    "article",
    "main",
    "ul",
    "ol",
    "dl",
    "form",
    "figure",
    "blockquote",
    "table",
    "nav",
    "header",
    "footer",
    "aside",
)
CONTAINER_SET = frozenset(CONTAINERS)
BOXES = ("nav", "header", "footer", "aside")
HEADINGS = frozenset(f"h{level}" for level in range(1, 7))
_FIRST_LETTERS = "".join(sorted({name[0] for name in (*CONTAINERS, "a", "h1")}))
# "<", an optional "/" and a tag name whose first letter one of ours has, captured to its end (the
# first non-word character: where `\b` after a name would hold), so re.split hands back the names
# and a lookup says which are ours. One alternative per name under re.I cost twice the scan.
TAG_RE = re.compile(rf"<(/?[{_FIRST_LETTERS}{_FIRST_LETTERS.upper()}]\w*)")


def _marker_of(closing: bool, name: str) -> str:
    if name in CONTAINER_SET:
        box = BOX_CLOSE if closing else BOX_OPEN
        return (CLOSE if closing else OPEN) + (box if name in BOXES else "")
    if name == "a":
        return LINK_CLOSE if closing else LINK_OPEN
    if name in HEADINGS:
        return "" if closing else HEADING  # only the opening counts
    # any other tag; and look-alikes: HTML folds ASCII case only, so "<dıv" opens no div (an
    # earlier pattern under re.I took "<ſection" for a section, and raised KeyError on it)
    return ""


MAX_SPELLINGS = 50_000  # tag names remembered as spelled; the 667 shared pages spell 464


class _MarkedTags(dict):
    """ "/Div" -> CLOSE + "</Div", "span" -> "<span": the replacement of each tag name as pages
    spell it, made on first sight, so marking needs no Python call per tag. Bounded: a hostile
    page's made-up names cannot grow it without end."""

    def __missing__(self, tag: str) -> str:
        if len(self) >= MAX_SPELLINGS:
            self.clear()
        closing = tag.startswith("/")
        marked = self[tag] = _marker_of(closing, tag[closing:].lower()) + "<" + tag
        return marked


_MARKED_TAGS = _MarkedTags()


def mark(html: str) -> str:
    """The page with a marker character before every container, link and heading tag."""
    if any(ch in html for ch in MARK_CHARS):  # a substring search each: a regex scan cost 0.4 ms a page
        html = unmark(html)
    # text and tag names alternate; a replacement per tag through a C-level lookup (a function
    # called per tag cost 0.3 ms a page of 750 tags)
    pieces = TAG_RE.split(html)
    pieces[1::2] = map(_MARKED_TAGS.__getitem__, pieces[1::2])
    return "".join(pieces)


def unmark(text: str) -> str:
    for ch in MARK_CHARS:  # a substring search each, a copy only for those present: faster than a regex
        if ch in text:
            text = text.replace(ch, "")
    return text


def code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def in_range(cp: np.ndarray, first: int, last: int) -> np.ndarray:
    """first <= cp <= last for unsigned code points, in one comparison: below `first`, the
    difference wraps around to a huge number."""
    return (cp - np.uint32(first)) <= np.uint32(last - first)


def is_marker(cp: np.ndarray) -> np.ndarray:
    return in_range(cp, FIRST_MARK, LAST_MARK)
