"""Gopher repetition rules, Rae et al. 2021, table A1 (as datatrove's GopherRepetitionFilter).

Fractions of the document's characters covered by duplicated lines and paragraphs, by the most
frequent 2-4-gram, and by duplicated 5-10-grams. The n-gram work is vectorized: words become
integer ids, each n-gram a 64-bit rolling hash (collisions: ~n²/2⁶⁴, negligible), counts come
from numpy, and the exact sequential scan of duplicated n-grams only runs on documents where
some n-gram repeats at all.
"""
from __future__ import annotations

import numpy as np

from pipeline.config import GopherRepetitionConfig
from pipeline.filters.text import LINE_RE, PARAGRAPH_RE, split_words

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


def ngram_hashes(ids: np.ndarray, n: int) -> np.ndarray:
    """64-bit hash of each n-gram of word ids (len(ids) - n + 1 values)."""
    h = np.zeros(len(ids) - n + 1, dtype=np.uint64)
    for k in range(n):  # h = ((id0 * M + id1) * M + id2) ... mod 2**64
        h = h * _MUL + ids[k : len(ids) - n + 1 + k]
    return h


def top_ngram_chars(hashes: np.ndarray, gram_chars: np.ndarray) -> int:
    """Characters of the most frequent n-gram times its count (ties: the one seen first)."""
    _, first, counts = np.unique(hashes, return_index=True, return_counts=True)
    best = counts.max()
    top = first[counts == best].min()
    return int(gram_chars[top]) * int(best)


def duplicated_ngram_chars(hashes: np.ndarray, gram_chars: np.ndarray, n: int) -> int:
    """Characters in repeated n-grams, scanning left to right and skipping past each repeat
    (so overlapping repeats are not counted twice), as datatrove's find_all_duplicate."""
    if len(np.unique(hashes)) == len(hashes):
        return 0
    seen: set[int] = set()
    chars, i, hs, gc = 0, 0, hashes.tolist(), gram_chars.tolist()
    while i < len(hs):
        if hs[i] in seen:
            chars += gc[i]
            i += n
        else:
            seen.add(hs[i])
            i += 1
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
    vocab: dict[str, int] = {}
    ids = np.fromiter((vocab.setdefault(w, len(vocab)) for w in words), dtype=np.uint64, count=len(words))
    # chars[i:j] of the words = ends[j] - ends[i]; n-grams are joined by " " (top) or "" (dup)
    ends = np.concatenate(([0], np.cumsum([len(w) for w in words], dtype=np.int64)))
    for n, _ in cfg.top_n_grams:
        value = 0.0
        if len(words) >= n:
            joined = ends[n:] - ends[:-n] + (n - 1)
            value = top_ngram_chars(ngram_hashes(ids, n), joined) / n_chars
        sig[f"rep_top_{n}gram_char_frac"] = value
    for n, _ in cfg.dup_n_grams:
        value = 0.0
        if len(words) >= n:
            value = duplicated_ngram_chars(ngram_hashes(ids, n), ends[n:] - ends[:-n], n) / n_chars
        sig[f"rep_dup_{n}gram_char_frac"] = value
    return sig


def check(sig: dict[str, float], cfg: GopherRepetitionConfig) -> str | None:
    """Name of the first failing threshold (datatrove's order: paragraphs, lines, n-grams)."""
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
