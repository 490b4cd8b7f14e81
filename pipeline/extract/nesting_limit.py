"""A guard before resiliparse's main-content pass: pages nested so deep that it would run for minutes.

resiliparse's main-content pass costs about (tags x container depth) x 20 ns: on 8,000 nested
<div>s it took 2.6 s, on 100,000 over ten minutes, in C++ where no time limit can stop it. So
before that pass the resiliparse engines take the page's tag count times its deepest container
nesting (the shared pages: at most 2.2 x 10^5) and raise PageTooDeep above MAX_NESTING_WORK; the
extract stage counts the page as skipped.
"""

from __future__ import annotations

import numpy as np

from pipeline.extract.tag_markers import CLOSE, CONTAINER_SET, OPEN, TAG_RE, in_range

MAX_NESTING_WORK = 20_000_000  # ~0.4 s of resiliparse's main-content pass; 90x the shared pages' largest


class PageTooDeep(ValueError):
    """The page's elements nest so deep that resiliparse's main-content pass would run for minutes."""


def max_depth(opening: np.ndarray) -> int:
    """The deepest container nesting, from the page's container events in order (True: an
    opening, False: a close); a stray close never takes the depth below zero."""
    if not len(opening):
        return 0
    walk = np.cumsum(np.where(opening, 1, -1))
    return int((walk - np.minimum(np.minimum.accumulate(walk), 0)).max())  # the walk held at zero


def check_nesting(tags: int, depth: int) -> None:
    if tags * depth > MAX_NESTING_WORK:
        raise PageTooDeep(f"{tags:,} tags x containers nested {depth:,} deep is over {MAX_NESTING_WORK:,}")


def check_marked_text(cp: np.ndarray, html: str) -> None:
    """PageTooDeep when the marked page's text (its code points: resiliparse keeps every marker)
    nests too deep for the number of tags of its `html`."""
    events = cp[in_range(cp, ord(OPEN), ord(CLOSE))]  # the two are neighbours
    depth = max_depth(events == ord(OPEN))
    if len(html) * depth > MAX_NESTING_WORK:  # tags are fewer than characters: counting them may tell
        check_nesting(html.count("<"), depth)


def check_html(html: str) -> None:
    """PageTooDeep when the page's container tags nest too deep (a page with few enough tags to pass
    at any nesting is not scanned)."""
    tags = html.count("<")
    if tags * tags <= MAX_NESTING_WORK:
        return
    names = TAG_RE.findall(html)
    events = [not name.startswith("/") for name in names if name.lstrip("/").lower() in CONTAINER_SET]
    check_nesting(tags, max_depth(np.array(events, dtype=bool)))
