"""Counts at any offset of resiliparse's marked text (pipeline/extract/tag_markers.py), with no
loop over characters or nodes: cumulative sums over the text's code points, and searchsorted over
the marker positions.

- TextCounts: text characters, text inside links and the line of any offset;
- MarkerDepth: how deeply nested in one kind of marked element (containers, page furniture) any
  offset is;
- Containers: the extent of the container at a given depth around any offset.
Every method takes an array of offsets and answers for all of them in a few numpy operations.
"""

from __future__ import annotations

import numpy as np

from pipeline.extract.line_shapes import running_count
from pipeline.extract.tag_markers import BULLET, LINK_CLOSE, LINK_OPEN


class TextCounts:
    """Cumulative counts of one page's text at any character offset: text characters (not space,
    control, marker or bullet), text inside links, and newlines. One cumulative sum over the
    characters; the rest from the marker, newline and line arrays."""

    def __init__(self, cp: np.ndarray, is_mark: np.ndarray, marks: np.ndarray, kinds: np.ndarray, newlines: np.ndarray):
        is_text = (cp > 32) & ~is_mark & (cp != ord(BULLET))
        self.at = np.flatnonzero(is_text)
        self.cum = running_count(is_text)
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
        if not len(self.link_marks):
            return np.zeros(len(at), np.int64)
        k = np.searchsorted(self.link_marks, at, side="right") - 1
        kk = np.maximum(k, 0)
        inside = (k >= 0) & self.link_open[kk]
        partial = np.where(inside, self.cum[at] - self.cum[self.link_marks[kk]], 0)
        return np.where(k >= 0, self.link_before[kk], 0) + partial

    def line_of(self, at: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.newlines, at)

    def next_text_line(self, at: np.ndarray, group: np.ndarray, groups: int, n_lines: int) -> np.ndarray:
        """(groups, n_lines): per group and line, how many of the offsets `at` (each of group
        `group`, 0 .. groups - 1) have their next text character on that line."""
        nxt = np.searchsorted(self.at, at)
        found = nxt < len(self.at)
        line = self.line_of(self.at[nxt[found]])
        return np.bincount(group[found] * n_lines + line, minlength=groups * n_lines).reshape(groups, n_lines)


class MarkerDepth:
    """Marker events of one kind (an opening and its close) in text order, and the running depth
    after each: the depth at any position is one searchsorted away, no pass over the characters."""

    def __init__(self, positions: np.ndarray, opening: np.ndarray):
        self.positions = positions
        self.depth = np.cumsum(np.where(opening, 1, -1)) if len(positions) else np.zeros(0, np.int64)

    def depth_at(self, at: np.ndarray) -> np.ndarray:
        """The depth just before each offset in `at` (markers at that offset included)."""
        if not len(self.positions):
            return np.zeros(len(at), np.int64)
        k = np.searchsorted(self.positions, at, side="right") - 1
        return np.where(k >= 0, self.depth[np.maximum(k, 0)], 0)


class Containers:
    """Each marked container's extent in the text, found with sorted keys, not a stack.

    A container's level is the marker depth just after its opening; its end is the first close
    marker after it that brings the depth back to level - 1 (the page's end when none does).
    The container a character sits in at level d is the last opening at level d before it.
    """

    def __init__(self, events: MarkerDepth, opening: np.ndarray, n: int):
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
