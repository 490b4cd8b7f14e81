"""Gopher repetition rules, Rae et al. 2021, table A1 (as datatrove's GopherRepetitionFilter).

Fractions of the document's characters covered by duplicated lines and paragraphs, by the most
frequent 2-4-gram, and by duplicated 5-10-grams. The n-gram work is vectorized: words become
integer ids, each n-gram a 64-bit rolling hash (collisions: ~n²/2⁶⁴, negligible), counts and
first occurrences come from numpy sorts, and datatrove's sequential scan of duplicated n-grams
is decided at the repeated n-grams only (a few percent of the positions on ordinary text).
After the smallest n, repeated n-grams are looked for only among the positions whose shorter
n-gram repeats: the same result, except where two different n-grams share a hash, which that
narrowing can only make rarer.
"""

from __future__ import annotations

from bisect import bisect_left

import numpy as np

from pipeline.filter.config import GopherRepetitionConfig
from pipeline.filter.text import LINE_RE, PARAGRAPH_RE, split_words

NAME = "gopher_repetition"
_MUL = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier (golden ratio), wraps mod 2**64


def find_duplicates(items: list[str]) -> tuple[int, int]:
    """(number of repeated items, characters in them), counting every repeat after the first."""
    seen: set[str] = set()
    dup_items = dup_chars = 0
    for item in items:
        if item in seen:
            dup_items += 1
            dup_chars += len(item)
        else:
            seen.add(item)
    return dup_items, dup_chars


def ngram_hashes(ids: np.ndarray, max_n: int) -> dict[int, np.ndarray]:
    """{n: 64-bit hash of each n-gram of word ids (len(ids) - n + 1 values)} for n = 1..max_n.

    Each n extends the (n-1)-gram hashes by one word (Horner's rule), so all of them cost
    max_n vector operations rather than 2 + 3 + ... + max_n."""
    hashes = {1: ids}
    for n in range(2, min(max_n, len(ids)) + 1):  # h = ((id0 * M + id1) * M + id2) ... mod 2**64
        hashes[n] = hashes[n - 1][:-1] * _MUL + ids[n - 1 :]
    return hashes


def repeated_ngrams(hashes: np.ndarray, candidates: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(repeats, firsts): the positions whose n-gram occurred before, ascending, and the first
    position of each one's n-gram. `candidates` (ascending): the only positions that can share
    an n-gram with another (None: all), e.g. those sharing their (n-1)-gram, since equal
    n-grams have equal (n-1)-gram prefixes; outside them every n-gram is a first occurrence."""
    pos = np.arange(len(hashes)) if candidates is None else candidates[candidates < len(hashes)]
    order = np.argsort(hashes[pos], kind="stable")  # equal hashes keep their left-to-right order
    ordered = hashes[pos[order]]
    same = ordered[1:] == ordered[:-1]  # sorted k + 1 holds the n-gram of sorted k
    group = np.arange(len(order))
    group[1:][same] = 0
    np.maximum.accumulate(group, out=group)  # sorted index where each one's n-gram starts
    later = np.flatnonzero(same) + 1
    repeats, firsts = pos[order[later]], pos[order[group[later]]]
    by_position = np.argsort(repeats)
    return repeats[by_position], firsts[by_position]


def top_ngram_chars(repeats: np.ndarray, firsts: np.ndarray, gram_chars: np.ndarray) -> int:
    """Characters of the most frequent n-gram times its count (ties: the one seen first), from
    repeated_ngrams' answer: an n-gram's count is 1 + its repeats; with no repeat at all, every
    n-gram counts once and the first one wins."""
    if not len(repeats):
        return int(gram_chars[0])
    repeats_of = np.bincount(firsts)  # indexed by first position
    top = int(np.argmax(repeats_of))  # the first maximum: the earliest of the most frequent
    return int(gram_chars[top]) * (int(repeats_of[top]) + 1)


def duplicated_ngram_chars(repeats: np.ndarray, firsts: np.ndarray, gram_chars: np.ndarray, n: int) -> int:
    """Characters in repeated n-grams, scanning left to right and skipping past each repeat
    (so overlapping repeats are not counted twice), as datatrove's find_all_duplicate:

        seen, i = set(), 0
        while i < len(hashes):
            if hashes[i] in seen: chars += gram_chars[i]; i += n
            else: seen.add(hashes[i]); i += 1

    That scan is only decided at repeats (positions whose n-gram occurred before): a first
    occurrence is never in `seen`, so it is added whenever the scan does not skip it. A repeat
    counts when the scan reaches it (it is not inside the n-1 positions skipped after the last
    counted repeat) and an earlier occurrence of its n-gram was reached: the first one (unless a
    skip covered it) or an earlier repeat. So the loop below runs over the repeats only
    (`repeats` and `firsts` as repeated_ngrams gives them).
    """
    chars, skip_until, counted = 0, 0, []  # counted: positions of counted repeats, ascending
    reached: set[int] = set()  # n-grams (by first position) met at a repeat the scan reached
    for i, f in zip(repeats.tolist(), firsts.tolist()):
        if i < skip_until:
            continue  # skipped after the last counted repeat
        k = bisect_left(counted, f)
        if f in reached or not (k and f < counted[k - 1] + n):  # seen before i
            chars += int(gram_chars[i])
            skip_until = i + n
            counted.append(i)
        else:
            reached.add(f)
    return chars


def signals(text: str, cfg: GopherRepetitionConfig) -> dict[str, float]:
    n_chars = len(text) or 1  # empty text: every fraction is 0 (the quality rules drop it)
    paragraphs = PARAGRAPH_RE.split(text.strip())
    lines = LINE_RE.split(text)
    dup_paras, dup_para_chars = find_duplicates(paragraphs)
    dup_lines, dup_line_chars = find_duplicates(lines)
    sig = {
        "rep_dup_para_frac": dup_paras / len(paragraphs),
        "rep_dup_para_char_frac": dup_para_chars / n_chars,
        "rep_dup_line_frac": dup_lines / len(lines),
        "rep_dup_line_char_frac": dup_line_chars / n_chars,
    }
    words = split_words(text)
    vocab = {word: i for i, word in enumerate(dict.fromkeys(words))}  # ids in first-seen order
    ids = np.fromiter(map(vocab.__getitem__, words), dtype=np.uint64, count=len(words))
    # chars[i:j] of the words = ends[j] - ends[i]; n-grams are joined by " " (top) or "" (dup)
    ends = np.zeros(len(words) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, words), dtype=np.int64, count=len(words)), out=ends[1:])
    top_ns, dup_ns = {n for n, _ in cfg.top_n_grams}, {n for n, _ in cfg.dup_n_grams}
    hashes = ngram_hashes(ids, max(top_ns | dup_ns, default=1))
    top_chars, dup_chars, candidates = {}, {}, None
    for n in sorted(n for n in top_ns | dup_ns if len(words) >= n):  # each n narrows the next
        if candidates is not None and not len(candidates):
            # no shorter n-gram repeats, so neither does this one: every n-gram counts once, the
            # first is the top one (top_ngram_chars' no-repeat case), nothing is duplicated
            top_chars[n] = int(ends[n] - ends[0]) + n - 1
            dup_chars[n] = 0
            continue
        repeats, firsts = repeated_ngrams(hashes[n], candidates)
        if n in top_ns:
            top_chars[n] = top_ngram_chars(repeats, firsts, ends[n:] - ends[:-n] + (n - 1))
        if n in dup_ns:
            dup_chars[n] = duplicated_ngram_chars(repeats, firsts, ends[n:] - ends[:-n], n)
        shared = np.zeros(len(words), dtype=bool)
        shared[repeats] = shared[firsts] = True
        candidates = np.flatnonzero(shared)  # positions whose n-gram occurs more than once
    for n, _ in cfg.top_n_grams:
        sig[f"rep_top_{n}gram_char_frac"] = top_chars[n] / n_chars if n in top_chars else 0.0
    for n, _ in cfg.dup_n_grams:
        sig[f"rep_dup_{n}gram_char_frac"] = dup_chars[n] / n_chars if n in dup_chars else 0.0
    return sig


def check(sig: dict[str, float], cfg: GopherRepetitionConfig) -> str | None:
    """Name of the first failing threshold (datatrove's order: paragraphs, lines, n-grams)."""
    # One `if` per published threshold, in the stage's order (the filters' hot path); the report's
    # pipeline/report/thresholds.py lists the same rules as data.
    if sig["rep_dup_para_frac"] > cfg.dup_para_frac:
        return "dup_para_frac"
    if sig["rep_dup_para_char_frac"] > cfg.dup_para_char_frac:
        return "dup_para_char_frac"
    if sig["rep_dup_line_frac"] > cfg.dup_line_frac:
        return "dup_line_frac"
    if sig["rep_dup_line_char_frac"] > cfg.dup_line_char_frac:
        return "dup_line_char_frac"
    for n, limit in cfg.top_n_grams:
        if sig[f"rep_top_{n}gram_char_frac"] > limit:
            return f"top_{n}gram_char_frac"
    for n, limit in cfg.dup_n_grams:
        if sig[f"rep_dup_{n}gram_char_frac"] > limit:
            return f"dup_{n}gram_char_frac"
    return None
