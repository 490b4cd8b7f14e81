"""Shared splitting for every rule family: words, lines, paragraphs, sentences.

The published filters were defined over a word tokenizer (Gopher: whitespace words; datatrove,
whose FineWeb recipe we follow, uses spaCy's blank English tokenizer, where punctuation marks
are tokens of their own). A regex reproduces that tokenizer's shape well enough for ratios
and counts (measured in benchmarks/filters_throughput.py) at a fraction of its cost:
  - a word is a run of non-space, non-punctuation characters, joined across ' ’ . , _ / inside it
    and : between digits ("don't", "3.5", "1,000", "10:21", "snake_case" stay one token as in spaCy),
  - URLs and e-mail addresses are one token each,
  - every punctuation mark is a token of its own, except "..." which stays whole.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from functools import lru_cache

# Unicode punctuation (categories P*), ASCII symbols and control characters: a "word" made only
# of these is a symbol, not a word (Gopher counts words "containing a letter" separately).
_ASCII_SYMBOLS = "$+<=>^`|~"
PUNCTUATION = frozenset(
    [chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c))[0] == "P"]
    + list(_ASCII_SYMBOLS)
    + [chr(c) for c in (*range(0, 32), *range(127, 160))]
)
_P = re.escape("".join(sorted(PUNCTUATION - set("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\x85"))))
# URLs and e-mail addresses stay whole, as spaCy's URL and e-mail matchers keep them (the
# lookbehind tries an address only at a word start: matching is linear, not quadratic, in word length).
_URL = r"(?:https?://|www\.)[^\s\"'<>()\[\]]*[^\s\"'<>()\[\].,;:!?]|(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
# A word character: \w (checked first: the common, fast case; "_" included, as in snake_case) or
# another non-space, non-punctuation character (emoji, symbols, combining marks).
_W = rf"(?:\w|[^\s\w{_P}])+"
WORD_RE = re.compile(rf"{_URL}|{_W}(?:(?:['’.,/]|(?<=\d):(?=\d)){_W})*|\.\.\.|[{_P}]")

# Sentence enders of the major scripts (Latin, CJK full-width, Arabic, Devanagari, Ethiopic...).
TERMINAL_PUNCTUATION = frozenset(".!?։؞؟۔܀܁܂।॥၊။።፧፨᙮᜵᜶‼‽⁇⁈⁉⸮。꓿꘎꘏꛳꛷﹒﹖﹗！．？｡")
# A sentence ends at a run of enders, optionally followed by closing quotes/brackets, then space
# or end of text (so "3.5" and "e.g.x" do not end sentences).
_END = re.escape("".join(sorted(TERMINAL_PUNCTUATION)))
SENTENCE_END_RE = re.compile(rf"(?:[{_END}]+|…)['\"”’)\]»]*(?=\s|$)")
PARAGRAPH_RE = re.compile(r"\n{2,}")
LINE_RE = re.compile(r"\n+")


# A punctuation mark ending a chunk of letters/digits is a token of its own: no joiner, URL or
# e-mail can end with it, and "_" (punctuation, but \w) is the one mark the word would swallow.
_TRAILING_MARK = PUNCTUATION - {"_"}


@lru_cache(maxsize=4)
def split_words(text: str) -> tuple[str, ...]:
    r"""WORD_RE's tokens, found between spaces: no token holds or touches a space (every pattern
    starts and ends on a non-space character, and its lookarounds see a space and a text edge
    alike), so matching each space-free chunk alone gives the same tokens; and the common chunks
    skip the regex: letters/digits only, or one character, are one token; letters/digits and a
    trailing mark are two (~5x faster than findall over the text). re's \s and str.split()
    agree on what a space is.
    Cached: the repetition, quality and FineWeb rules all split the same document."""
    words: list[str] = []
    for chunk in text.split():
        if chunk.isalnum() or len(chunk) == 1:  # \w without "_": no URL, e-mail or joiner inside
            words.append(chunk)
        elif chunk[-1] in _TRAILING_MARK and chunk[:-1].isalnum():  # "word," "end." "dogs'"
            words += (chunk[:-1], chunk[-1])
        else:
            words.extend(WORD_RE.findall(chunk))
    return tuple(words)


def is_symbol(word: str) -> bool:
    """True for tokens made only of punctuation/symbols ("...", "#"): by WORD_RE's construction,
    exactly the tokens whose first character is punctuation."""
    return word[0] in PUNCTUATION


def has_alpha(word: str) -> bool:
    return word.isalpha() or any(ch.isalpha() for ch in word)


def count_sentences(line: str) -> int:
    """Sentences in one line: sentence ends, plus a trailing unterminated piece of text."""
    line = line.strip()
    if not line:
        return 0
    ends = list(SENTENCE_END_RE.finditer(line))
    tail = line[ends[-1].end() :] if ends else line
    return len(ends) + (1 if tail.strip() else 0)


def ratio(part: float, whole: float) -> float:
    """part/whole that never raises: 0/0 is 0 (nothing to measure), x/0 is inf."""
    if whole:
        return part / whole
    return float("inf") if part else 0.0
