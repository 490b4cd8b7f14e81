"""A page as resiliparse's text, line by line, with what each line sits in: the `fast` engine's input.

Which lines are content depends most on their surroundings: the neighbouring lines, the size and
link density of the element a line sits in and of that element's parents (issue 26's prototype).
resiliparse renders the page with a marker character before every container, link and heading
tag (pipeline/extract/tag_markers.py); every per-line and per-container figure is then a handful
of numpy operations over the text's code points (pipeline/extract/marked_text.py), no loop over
nodes, and the per-line text figures (words, end punctuation, bullets) too: Python touches each
kept line only to cut it out of the text and to compare it with the main-content lines.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from pipeline.extract.line_shapes import LineShapes, running_count
from pipeline.extract.marked_text import Containers, MarkerDepth, TextCounts
from pipeline.extract.tag_markers import (
    BOX_CLOSE,
    BOX_OPEN,
    CLOSE,
    HEADING,
    LINK_OPEN,
    OPEN,
    code_points,
    in_range,
    is_marker,
    unmark,
)

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
COLUMN = {name: i for i, name in enumerate(FEATURES)}
# Per-line figures that the model also reads for the neighbouring lines and windows around a line.
NEIGHBOURED = ("main", "link_share", "log_chars", "end_punct")
LEVELS = 3  # the line's container, its parent, its grandparent
_LEVEL_COLUMNS = {
    name: [COLUMN[name.format(level)] for level in ("parent", "grandparent", "great")]
    for name in ("log_{}_chars", "{}_link_share", "log_{}_lines", "{}_main_share")
}


@dataclass
class PageLines:
    """The non-empty lines of resiliparse's text of a page (markers removed, stripped) and one
    feature row per line (columns: FEATURES)."""

    lines: list[str]
    features: np.ndarray


def page_lines(full: str, main: str, cp: np.ndarray | None = None) -> PageLines:
    """Lines and features from resiliparse's text of the marked page (`full`, every visible line;
    `cp`: its code points, when the caller has them) and its main-content text of the same tree
    (`main`)."""
    cp = code_points(full) if cp is None else cp
    is_mark = is_marker(cp)
    shapes = LineShapes(cp, is_mark)
    keep = shapes.keep
    lines = shapes.kept_lines()
    n_lines = len(lines)
    if not n_lines:
        return PageLines([], np.zeros((0, len(FEATURES))))
    main_lines = {line.strip() for line in unmark(main).split("\n")}
    in_main = np.fromiter((line in main_lines for line in lines), float, n_lines)

    out = np.empty((n_lines, len(FEATURES)))
    n_raw, n_chars = len(shapes.line_start), len(cp)
    marks = np.flatnonzero(is_mark)
    kinds = cp[marks]
    text = TextCounts(cp, is_mark, marks, kinds, shapes.newlines)
    line_start, line_end = shapes.line_start, shapes.line_end
    chars_all = (text.chars(line_end) - text.chars(line_start)).astype(float)
    chars = chars_all[keep]
    digits = running_count(in_range(cp, ord("0"), ord("9")))
    digits = (digits[line_end] - digits[line_start])[keep]
    start = text.at[np.searchsorted(text.at, line_start[keep])]  # each kept line's first text character
    # a marker stands before its tag, so a block's marker ends the line above: it counts for the
    # line of the next text character
    opens = (kinds == ord(LINK_OPEN)) | (kinds == ord(HEADING))
    links, headings = text.next_text_line(marks[opens], (kinds[opens] == ord(HEADING)).astype(np.int64), 2, n_raw)
    links = links[keep].astype(float)
    out[:, COLUMN["heading"]] = headings[keep] > 0
    box = (kinds == ord(BOX_OPEN)) | (kinds == ord(BOX_CLOSE))
    out[:, COLUMN["in_box"]] = MarkerDepth(marks[box], kinds[box] == ord(BOX_OPEN)).depth_at(start) > 0

    container = (kinds == ord(OPEN)) | (kinds == ord(CLOSE))
    opening = kinds[container] == ord(OPEN)
    events = MarkerDepth(marks[container], opening)
    level = events.depth_at(start).astype(np.int64)
    # the line's container, its parent and grandparent, all in one batch of offsets: lo, hi
    lo, hi = Containers(events, opening, n_chars).extent(
        np.concatenate([np.maximum(level - up, 0) for up in range(LEVELS)]), np.tile(start, LEVELS)
    )
    # every offset whose link text is needed, in one searchsorted: the kept lines' ends and
    # starts, then the containers' starts and ends
    link_chars = text.link_chars(np.concatenate([line_end[keep], line_start[keep], lo, hi]))
    link_share = (link_chars[:n_lines] - link_chars[n_lines : 2 * n_lines]) / np.maximum(chars, 1)
    box_links = link_chars[2 * n_lines + len(lo) :] - link_chars[2 * n_lines : 2 * n_lines + len(lo)]
    size = (text.chars(hi) - text.chars(lo)).astype(float)
    line_main = np.zeros(n_raw)
    line_main[keep] = in_main
    main_before_line = np.concatenate([[0], np.cumsum(chars_all * line_main)])
    ends = np.concatenate([lo, hi])
    line = text.line_of(ends)
    main_chars = main_before_line[line] + line_main[line] * (text.chars(ends) - text.chars(line_start[line]))
    box_main = main_chars[len(lo) :] - main_chars[: len(lo)]
    box_lines = (line[len(lo) :] - line[: len(lo)]).astype(float)

    log_chars = np.log1p(chars)
    total = chars.sum()
    end_punct = shapes.end_punct
    out[:, COLUMN["main"]] = in_main
    out[:, COLUMN["log_chars"]] = log_chars
    out[:, COLUMN["log_words"]] = np.log1p(shapes.words)
    out[:, COLUMN["end_punct"]] = end_punct
    out[:, COLUMN["link_share"]] = link_share
    out[:, COLUMN["log_links"]] = np.log1p(links)
    out[:, COLUMN["bullet"]] = shapes.bullet
    out[:, COLUMN["digit_share"]] = digits / np.maximum(chars, 1)
    out[:, COLUMN["line_position"]] = np.arange(n_lines) / max(n_lines - 1, 1)
    out[:, COLUMN["char_position"]] = np.cumsum(chars) / max(total, 1)
    _neighbours(out, np.column_stack([in_main, link_share, log_chars, end_punct]))
    # one row per level (the line's container, its parent, its grandparent), one column per line
    size = size.reshape(LEVELS, n_lines)
    wide = np.maximum(size, 1)
    out[:, _LEVEL_COLUMNS["log_{}_chars"]] = np.log1p(size).T
    out[:, _LEVEL_COLUMNS["{}_link_share"]] = (box_links.reshape(LEVELS, n_lines) / wide).T
    out[:, _LEVEL_COLUMNS["log_{}_lines"]] = np.log1p(box_lines.reshape(LEVELS, n_lines)).T
    out[:, _LEVEL_COLUMNS["{}_main_share"]] = (box_main.reshape(LEVELS, n_lines) / wide).T
    out[:, COLUMN["share_of_parent"]] = chars / wide[0]
    out[:, COLUMN["log_page_chars"]] = np.log1p(total)
    out[:, COLUMN["page_main_share"]] = in_main.mean()
    out[:, COLUMN["between_main"]], distance = _main_span(in_main)
    out[:, COLUMN["log_main_distance"]] = np.log1p(distance)
    seen = Counter(lines)  # menus and teasers repeat on a page; prose seldom does
    out[:, COLUMN["log_repeats"]] = np.log1p(np.fromiter((seen[line] - 1 for line in lines), float, n_lines))
    out[:, COLUMN["page_link_share"]] = (chars * link_share).sum() / max(total, 1)
    return PageLines(lines, out)


def _neighbours(out: np.ndarray, values: np.ndarray) -> None:
    """The NEIGHBOURED columns (`values`, one per column) of the line above and below (zeros at
    the edges) and their means over windows of 3 and 10 lines on either side, into `out`."""
    n = len(values)
    out[0, _PREV] = 0
    out[1:, _PREV] = values[:-1]
    out[-1, _NEXT] = 0
    out[:-1, _NEXT] = values[1:]
    sums = np.zeros((n + 1, values.shape[1]))
    np.cumsum(values, axis=0, out=sums[1:])
    i = np.arange(n)
    for w, columns in _WINDOWS.items():
        lo, hi = np.maximum(i - w, 0), np.minimum(i + w + 1, n)
        width = columns.stop - columns.start  # the first `width` NEIGHBOURED values
        out[:, columns] = (sums[hi, :width] - sums[lo, :width]) / (hi - lo)[:, None]


_PREV = [COLUMN[f"{name}_prev"] for name in NEIGHBOURED]
_NEXT = [COLUMN[f"{name}_next"] for name in NEIGHBOURED]
# window -> its feature columns: the window means of the first NEIGHBOURED values, side by side
_WINDOWS = {
    w: slice(COLUMN[f"main_win{w}"], COLUMN[f"main_win{w}"] + sum(f"{name}_win{w}" in COLUMN for name in NEIGHBOURED))
    for w in (3, 10)
}


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
