"""Plain-Python readings of Gopher's n-gram repetition rules, against which the vectorized code
in pipeline/filter/gopher_repetition.py is checked (datatrove's scan, word tuples, no hashing)."""

from __future__ import annotations

from collections import Counter


def reference_dup_chars(words: list[str], n: int) -> int:
    """datatrove's find_all_duplicate over word tuples: a repeat counts and skips n words."""
    seen, chars, i = set(), 0, 0
    while i < len(words) - n + 1:
        gram = tuple(words[i : i + n])
        if gram in seen:
            chars += sum(map(len, gram))
            i += n
        else:
            seen.add(gram)
            i += 1
    return chars


def reference_top_chars(words: list[str], n: int) -> int:
    """Most frequent n-gram (first seen wins a tie: Counter keeps insertion order) x its count."""
    gram, count = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1)).most_common(1)[0]
    return (sum(map(len, gram)) + n - 1) * count
