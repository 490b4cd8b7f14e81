"""The lines of resiliparse's marked text and what their text looks like, for all lines at once.

For every line of the text (split at "\\n", markers removed, stripped of whitespace as str.strip
strips it): whether it is kept (it holds more than bullets and spaces: a list item without text
is a bullet alone, and would split a sentence's snippet), how many words str.split finds in it,
whether it ends in punctuation and whether it starts with a bullet. Each is a few numpy
operations over the code points; per-line Python calls (strip, split, indexing) cost ~0.5 ms a
page, a third of the features' time. Only the kept lines' text is cut out as strings.
"""

from __future__ import annotations

import numpy as np

from pipeline.extract.tag_markers import BULLET

END_PUNCTUATION = ".!?:;\"'”»)…"


def _table(chars: str) -> np.ndarray:
    """A lookup table: `table.take(code_points, mode="clip")` says which are in `chars` (its last
    entry, False, answers for every code point above them)."""
    table = np.zeros(max(map(ord, chars)) + 2, dtype=bool)
    table[[ord(ch) for ch in chars]] = True
    return table


# Python's whitespace (str.isspace, which str.strip and str.split use): all of it lies at or below
# U+3000 (tests/test_extract_engines.py checks every code point).
_IS_SPACE = _table("".join(ch for ch in map(chr, range(0x3001)) if ch.isspace()))
_IS_END_PUNCTUATION = _table(END_PUNCTUATION)


def is_space(cp: np.ndarray) -> np.ndarray:
    """str.isspace of each code point."""
    return _IS_SPACE.take(cp, mode="clip")


def running_count(flags: np.ndarray) -> np.ndarray:
    """How many of `flags` are set before each index (0 .. len(flags)): a count over any range
    [a, b) is out[b] - out[a]."""
    out = np.empty(len(flags) + 1, np.int64)
    out[0] = 0
    np.cumsum(flags, out=out[1:])
    return out


class LineShapes:
    """Line boundaries (in the marked text: newlines, line_start, line_end), the kept lines'
    numbers (`keep`), and per kept line: words, end_punct, bullet."""

    def __init__(self, cp: np.ndarray, is_mark: np.ndarray):
        self.newlines = np.flatnonzero(cp == 10)
        self.line_start = np.concatenate([[0], self.newlines + 1])
        self.line_end = np.append(self.newlines, len(cp))
        plain = cp[~is_mark]  # the text as the reader sees it: markers removed
        self._plain = plain
        newlines = np.flatnonzero(plain == 10)
        starts, ends = np.concatenate([[0], newlines + 1]), np.append(newlines, len(plain))
        space = is_space(plain)
        solid = np.flatnonzero(~space)  # what str.strip keeps the ends of
        first_k = np.searchsorted(solid, starts)
        last_k = np.searchsorted(solid, ends) - 1
        if not len(solid):  # nothing but whitespace and markers: no line is kept
            self.keep = np.zeros(0, np.int64)
            return
        first = solid[np.minimum(first_k, len(solid) - 1)]
        last = solid[np.maximum(last_k, 0)]
        # str.strip(BULLET + " ") leaves something: a character between the ends that is neither
        not_bullet = running_count((plain != ord(BULLET)) & (plain != 32))
        self.keep = np.flatnonzero((last_k >= first_k) & (not_bullet[last + 1] > not_bullet[first]))
        self._first, self._last = first[self.keep], last[self.keep]
        # a word starts at a non-space character after a space or at the text's start
        words_before = running_count(~space & np.concatenate([[True], space[:-1]]))
        self.words = (words_before[ends[self.keep]] - words_before[starts[self.keep]]).astype(float)
        self.end_punct = _IS_END_PUNCTUATION.take(plain[self._last], mode="clip").astype(float)
        self.bullet = (plain[self._first] == ord(BULLET)).astype(float)

    def kept_lines(self) -> list[str]:
        """The kept lines' text, stripped."""
        if not len(self.keep):
            return []
        text = self._plain.tobytes().decode("utf-32-le")
        return [text[a : b + 1] for a, b in zip(self._first.tolist(), self._last.tolist())]
