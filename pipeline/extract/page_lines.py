"""A page as resiliparse's text, line by line, with what each line sits in: the `fast` engine's input.

resiliparse (C++) renders a page to text in about a millisecond, but its main-content guess keeps
navigation, teasers and footers (precision 0.75 on the shared pages). Which lines are content
depends most on their surroundings: the neighbouring lines, the size and link density of the
element a line sits in and of that element's parents (issue 26's prototype). A walk over the
DOM in Python to learn that costs ~5 ms a page, more than the rendering. Instead, before the
parse, one regular expression puts an invisible marker character in front of every container,
link and heading tag; the markers come out in resiliparse's text exactly where the elements
open and close, and every per-line and per-container figure is then a handful of numpy
operations over the text's code points (cumulative sums, searchsorted), no loop over nodes.

The markers are Unicode noncharacters (U+FDD0..U+FDD6), which no text may carry; any the page
holds are removed first. A marker before an unclosed tag only misplaces a boundary: features
get noisier, nothing fails. The regex has no nested repetition, so it scans in linear time.
Containers are elements whose end tag HTML requires (not <td>, <li> or <p>), so the markers'
depth follows the page's.

resiliparse's main-content pass costs about (tags x container depth) x 20 ns: on 8,000 nested
<div>s it took 2.6 s, on 100,000 over ten minutes, in C++ where no time limit can stop it. So
before that pass, `check_nesting` takes the page's tag count times its deepest container nesting
(the shared pages: at most 2.2 x 10^5) and raises PageTooDeep above MAX_NESTING_WORK; the stage
counts it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

OPEN, CLOSE, LINK_OPEN, LINK_CLOSE, BOX_OPEN, BOX_CLOSE, HEADING = (chr(0xFDD0 + i) for i in range(7))
FIRST_MARK, LAST_MARK = 0xFDD0, 0xFDD6
MARKS_RE = re.compile("[\ufdd0-\ufdd6]")
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
MAX_NESTING_WORK = 20_000_000  # ~0.4 s of resiliparse's main-content pass; 90x the shared pages' largest
BOXES = ("nav", "header", "footer", "aside")
_TAG_RE = re.compile(r"<(/?)(a|h[1-6]|{})\b".format("|".join(CONTAINERS)), re.I)
_MARK_OF: dict[tuple[str, str], str] = {}
for _tag in CONTAINERS:
    _MARK_OF["", _tag] = OPEN + (BOX_OPEN if _tag in BOXES else "")
    _MARK_OF["/", _tag] = CLOSE + (BOX_CLOSE if _tag in BOXES else "")
_MARK_OF["", "a"], _MARK_OF["/", "a"] = LINK_OPEN, LINK_CLOSE
for _level in range(1, 7):
    _MARK_OF["", f"h{_level}"], _MARK_OF["/", f"h{_level}"] = HEADING, ""
END_PUNCTUATION = frozenset(".!?:;\"'”»)…")
BULLET = "\u2022"  # resiliparse's list bullet
# Feature columns, in order (the shipped model's JSON names them; a mismatch refuses to load).
FEATURES = (
    "main",
    "log_chars",
    "log_words",
    "end_punct",
    "link_share",
    "log_links",
    "heading",
    "bullet",
    "digit_share",
    "line_position",
    "char_position",
    "in_box",
    "main_prev",
    "main_next",
    "log_chars_prev",
    "log_chars_next",
    "link_share_prev",
    "link_share_next",
    "end_punct_prev",
    "end_punct_next",
    "main_win3",
    "link_share_win3",
    "log_chars_win3",
    "end_punct_win3",
    "main_win10",
    "link_share_win10",
    "log_parent_chars",
    "parent_link_share",
    "log_parent_lines",
    "log_grandparent_chars",
    "grandparent_link_share",
    "log_grandparent_lines",
    "log_great_chars",
    "great_link_share",
    "log_great_lines",
    "share_of_parent",
    "log_page_chars",
    "page_main_share",
    "parent_main_share",
    "grandparent_main_share",
    "great_main_share",
    "between_main",
    "log_main_distance",
    "log_repeats",
    "page_link_share",
)


class PageTooDeep(ValueError):
    """The page's elements nest so deep that resiliparse's main-content pass would run for minutes."""


@dataclass
class PageLines:
    """The non-empty lines of resiliparse's text of a page (markers removed, stripped) and one
    feature row per line (columns: FEATURES)."""

    lines: list[str]
    features: np.ndarray


def _marker(match: re.Match) -> str:
    return _MARK_OF[match[1], match[2].lower()] + match[0]


def mark(html: str) -> str:
    """The page with a marker character before every container, link and heading tag."""
    if any(ch in html for ch in _MARK_CHARS):  # a substring search each: a regex scan cost 0.4 ms a page
        html = MARKS_RE.sub("", html)
    return _TAG_RE.sub(_marker, html)


_MARK_CHARS = (OPEN, CLOSE, LINK_OPEN, LINK_CLOSE, BOX_OPEN, BOX_CLOSE, HEADING)


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


def code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def check_marked_text(cp: np.ndarray, tags: int) -> None:
    """PageTooDeep when the marked page's text (its code points: resiliparse keeps every marker)
    nests too deep for its number of `tags`."""
    events = cp[(cp == ord(OPEN)) | (cp == ord(CLOSE))]
    check_nesting(tags, max_depth(events == ord(OPEN)))


def check_html(html: str) -> None:
    """PageTooDeep when the page's container tags nest too deep (a page with few enough tags to pass
    at any nesting is not scanned)."""
    tags = html.count("<")
    if tags * tags <= MAX_NESTING_WORK:
        return
    events = [closing == "" for closing, tag in _TAG_RE.findall(html) if tag.lower() in _CONTAINER_SET]
    check_nesting(tags, max_depth(np.array(events, dtype=bool)))


_CONTAINER_SET = frozenset(CONTAINERS)


def unmark(text: str) -> str:
    return MARKS_RE.sub("", text)


def _shift(values: np.ndarray, k: int) -> np.ndarray:
    """values moved k lines down (k > 0: each line sees the one k above), zeros at the edge."""
    out = np.zeros(len(values))
    if k > 0:
        out[k:] = values[:-k]
    elif k < 0:
        out[:k] = values[-k:]
    return out


def _window(values: np.ndarray, w: int) -> np.ndarray:
    """Mean of values over each line and its w neighbours on either side."""
    n = len(values)
    sums = np.concatenate([[0.0], np.cumsum(values)])
    i = np.arange(n)
    lo, hi = np.maximum(i - w, 0), np.minimum(i + w + 1, n)
    return (sums[hi] - sums[lo]) / (hi - lo)


class _Events:
    """Marker events of one kind (an opening and its close) in text order, and the running depth
    after each: the depth at any position is one searchsorted away, no pass over the characters."""

    def __init__(self, positions: np.ndarray, opening: np.ndarray):
        self.positions = positions
        self.depth = np.cumsum(np.where(opening, 1, -1)) if len(positions) else np.zeros(0, np.int64)

    def depth_at(self, at: np.ndarray) -> np.ndarray:
        """The depth just before each offset in `at` (markers at that offset included)."""
        k = np.searchsorted(self.positions, at, side="right") - 1
        return np.where(k >= 0, self.depth[np.maximum(k, 0)], 0) if len(self.positions) else np.zeros(len(at), np.int64)


class _Containers:
    """Each marked container's extent in the text, found with sorted keys, not a stack.

    A container's level is the marker depth just after its opening; its end is the first close
    marker after it that brings the depth back to level - 1 (the page's end when none does).
    The container a character sits in at level d is the last opening at level d before it.
    """

    def __init__(self, events: _Events, opening: np.ndarray, n: int):
        self.n, self.base = n, np.int64(n + 1)
        self.opens = events.positions[opening]
        level = events.depth[opening].astype(np.int64)
        close_keys = np.sort(events.depth[~opening].astype(np.int64) * self.base + events.positions[~opening])
        j = np.searchsorted(close_keys, (level - 1) * self.base + self.opens)
        if len(close_keys):
            jj = np.minimum(j, len(close_keys) - 1)
            matched = (j < len(close_keys)) & (close_keys[jj] // self.base == level - 1)
            self.ends = np.where(matched, close_keys[jj] % self.base, n)
        else:
            self.ends = np.full(len(self.opens), n)
        keys = level * self.base + self.opens
        self.order = np.argsort(keys)
        self.keys = keys[self.order]

    def extent(self, levels: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(start, end) character offsets of the container at `levels` around positions `at`;
        the whole page where there is none."""
        if not len(self.opens):
            return np.zeros(len(at), np.int64), np.full(len(at), self.n)
        k = np.searchsorted(self.keys, levels * self.base + at, side="right") - 1
        kk = np.maximum(k, 0)
        found = (k >= 0) & (self.keys[kk] // self.base == levels) & (levels > 0)
        which = self.order[kk]
        return np.where(found, self.opens[which], 0), np.where(found, self.ends[which], self.n)


class _Text:
    """Cumulative counts of one page's text at any character offset: text characters, text inside
    links, newlines and main-content text. One cumulative sum over the characters; the rest from
    the marker, newline and line arrays."""

    def __init__(self, cp: np.ndarray, marks: np.ndarray, kinds: np.ndarray, newlines: np.ndarray):
        is_text = cp > 32
        is_text[marks] = False
        is_text[cp == ord(BULLET)] = False
        self.at = np.flatnonzero(is_text)
        self.cum = np.concatenate([[0], np.cumsum(is_text)])
        self.newlines = newlines
        link = (kinds == ord(LINK_OPEN)) | (kinds == ord(LINK_CLOSE))
        self.link_marks, self.link_open = marks[link], kinds[link] == ord(LINK_OPEN)
        # text of each span from a link marker to the next: link text when the marker opens
        ends = np.append(self.link_marks[1:], len(cp))
        span = np.where(self.link_open, self.cum[ends] - self.cum[self.link_marks], 0)
        self.link_before = np.concatenate([[0], np.cumsum(span)])

    def chars(self, at: np.ndarray) -> np.ndarray:
        return self.cum[at]

    def link_chars(self, at: np.ndarray) -> np.ndarray:
        """Text characters inside links before each offset: the last link marker before it decides."""
        k = np.searchsorted(self.link_marks, at, side="right") - 1
        kk = np.maximum(k, 0)
        partial = np.where(
            (k >= 0) & self.link_open[kk] if len(self.link_marks) else False,
            self.cum[at] - self.cum[self.link_marks[kk]] if len(self.link_marks) else 0,
            0,
        )
        return np.where(k >= 0, self.link_before[kk], 0) + partial

    def line_of(self, at: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.newlines, at)

    def next_text_line(self, at: np.ndarray, n_lines: int) -> np.ndarray:
        """Per line, how many of the offsets `at` have their next text character on it."""
        nxt = np.searchsorted(self.at, at)
        return np.bincount(self.line_of(self.at[nxt[nxt < len(self.at)]]), minlength=n_lines).astype(float)


def page_lines(full: str, main: str, cp: np.ndarray | None = None) -> PageLines:
    """Lines and features from resiliparse's text of the marked page (`full`, every visible line;
    `cp`: its code points, when the caller has them) and its main-content text of the same tree
    (`main`)."""
    clean = unmark(full).split("\n")
    stripped = [line.strip() for line in clean]
    # a list item without text is a bullet alone: no line (it would split a sentence's snippet)
    keep = np.array([i for i, line in enumerate(stripped) if line.strip(BULLET + " ")], dtype=np.int64)
    lines = [stripped[i] for i in keep]
    n_lines = len(lines)
    if not n_lines:
        return PageLines([], np.zeros((0, len(FEATURES))))
    main_lines = {line.strip() for line in unmark(main).split("\n")}
    in_main = np.fromiter((line in main_lines for line in lines), float, n_lines)

    cp = code_points(full) if cp is None else cp
    n_raw, n_chars = len(clean), len(cp)
    marks = np.flatnonzero((cp >= FIRST_MARK) & (cp <= LAST_MARK))
    kinds = cp[marks]
    newlines = np.flatnonzero(cp == 10)
    text = _Text(cp, marks, kinds, newlines)
    line_start = np.concatenate([[0], newlines + 1])
    line_end = np.append(newlines, n_chars)
    chars_all = (text.chars(line_end) - text.chars(line_start)).astype(float)
    chars = chars_all[keep]
    link_share = (text.link_chars(line_end[keep]) - text.link_chars(line_start[keep])) / np.maximum(chars, 1)
    digits = np.concatenate([[0], np.cumsum((cp >= 48) & (cp <= 57))])
    digits = (digits[line_end] - digits[line_start])[keep]
    start = text.at[np.searchsorted(text.at, line_start[keep])]  # each kept line's first text character
    # a marker stands before its tag, so a block's marker ends the line above: it counts for the
    # line of the next text character
    links = text.next_text_line(marks[kinds == ord(LINK_OPEN)], n_raw)[keep]
    heading = text.next_text_line(marks[kinds == ord(HEADING)], n_raw)[keep] > 0
    box = (kinds == ord(BOX_OPEN)) | (kinds == ord(BOX_CLOSE))
    in_box = _Events(marks[box], kinds[box] == ord(BOX_OPEN)).depth_at(start) > 0

    line_main = np.zeros(n_raw)
    line_main[keep] = in_main
    main_before_line = np.concatenate([[0], np.cumsum(chars_all * line_main)])

    def main_chars(at: np.ndarray) -> np.ndarray:
        line = text.line_of(at)
        return main_before_line[line] + line_main[line] * (text.chars(at) - text.chars(line_start[line]))

    container = (kinds == ord(OPEN)) | (kinds == ord(CLOSE))
    opening = kinds[container] == ord(OPEN)
    events = _Events(marks[container], opening)
    containers = _Containers(events, opening, n_chars)
    level = events.depth_at(start).astype(np.int64)
    context = []
    for up in range(3):  # the line's container, its parent, its grandparent
        lo, hi = containers.extent(np.maximum(level - up, 0), start)
        size = (text.chars(hi) - text.chars(lo)).astype(float)
        context.append(
            (
                size,
                (text.link_chars(hi) - text.link_chars(lo)) / np.maximum(size, 1),
                (text.line_of(hi) - text.line_of(lo)).astype(float),
                (main_chars(hi) - main_chars(lo)) / np.maximum(size, 1),
            )
        )

    words = np.fromiter((len(line.split()) for line in lines), float, n_lines)
    end_punct = np.fromiter((line[-1] in END_PUNCTUATION for line in lines), float, n_lines)
    bullet = np.fromiter((line[0] == BULLET for line in lines), float, n_lines)
    log_chars = np.log1p(chars)
    total = chars.sum()
    between, distance = _main_span(in_main)
    columns = [
        in_main,
        log_chars,
        np.log1p(words),
        end_punct,
        link_share,
        np.log1p(links),
        heading,
        bullet,
        digits / np.maximum(chars, 1),
        np.arange(n_lines) / max(n_lines - 1, 1),
        np.cumsum(chars) / max(total, 1),
        in_box,
        _shift(in_main, 1),
        _shift(in_main, -1),
        _shift(log_chars, 1),
        _shift(log_chars, -1),
        _shift(link_share, 1),
        _shift(link_share, -1),
        _shift(end_punct, 1),
        _shift(end_punct, -1),
        _window(in_main, 3),
        _window(link_share, 3),
        _window(log_chars, 3),
        _window(end_punct, 3),
        _window(in_main, 10),
        _window(link_share, 10),
    ]
    for size, links_share, n, _ in context:
        columns += [np.log1p(size), links_share, np.log1p(n)]
    columns += [
        chars / np.maximum(context[0][0], 1),
        np.full(n_lines, np.log1p(total)),
        np.full(n_lines, in_main.mean()),
    ]
    columns += [main_share for *_, main_share in context]
    columns += [between, np.log1p(distance)]
    seen = Counter(lines)  # menus and teasers repeat on a page; prose seldom does
    columns += [
        np.log1p(np.fromiter((seen[line] - 1 for line in lines), float, n_lines)),
        np.full(n_lines, (chars * link_share).sum() / max(total, 1)),
    ]
    return PageLines(lines, np.column_stack(columns).astype(np.float64))


def _main_span(in_main: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per line: whether it lies between the first and last main-content lines, and how many
    lines away the nearest main-content line is."""
    n = len(in_main)
    marked = np.flatnonzero(in_main)
    if not len(marked):
        return np.zeros(n), np.full(n, float(n))
    i = np.arange(n)
    k = np.searchsorted(marked, i)
    after = marked[np.minimum(k, len(marked) - 1)]
    before = marked[np.maximum(k - 1, 0)]
    between = ((i >= marked[0]) & (i <= marked[-1])).astype(float)
    return between, np.minimum(np.abs(i - after), np.abs(i - before)).astype(float)
