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
# The tag's "<", an optional "/" and its name, captured: re.split hands back the names alone.
TAG_RE = re.compile(r"<(/?(?:a|h[1-6]|{})\b)".format("|".join(CONTAINERS)), re.I)


HEADINGS = frozenset(f"h{level}" for level in range(1, 7))


def _marker_of(closing: bool, name: str) -> str:
    if name in CONTAINER_SET:
        box = BOX_CLOSE if closing else BOX_OPEN
        return (CLOSE if closing else OPEN) + (box if name in BOXES else "")
    if name == "a":
        return LINK_CLOSE if closing else LINK_OPEN
    if name in HEADINGS:
        return "" if closing else HEADING  # only the opening counts
    # Unicode case folding lets "<ſection" or "<dıv" match the pattern; HTML folds ASCII only,
    # so no such element opens there (these names used to raise KeyError)
    return ""


class _MarkedTags(dict):
    """ "/Div" -> CLOSE + "</Div": the replacement of each tag as the page spells it, made on first
    sight (a page spells its tags a few ways), so marking needs no Python call per tag."""

    def __missing__(self, tag: str) -> str:
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
