"""Text normalization and word n-gram shingles, shared by exact and near dedup.

Normalization follows datatrove's `simplify_text` (used by FineWeb's MinHash dedup): lowercase,
accents stripped, digits folded to 0, punctuation dropped, whitespace collapsed. Two pages that
differ only in case, punctuation or numbers (dates, counters) therefore hash the same.

Shingles are word n-grams (FineWeb: 5-grams). A shingle is hashed without building its string:
every word gets a 64-bit hash (blake2b, cached per process), and an n-gram's hash is a linear
combination of its words' hashes with distinct odd multipliers, so word order matters. The
32-bit fold is what datasketch's affine32 scheme takes; it mixes the value again (MurmurHash3
finalizer) before permuting, so an arithmetic hash is safe as its input.

Short documents (fewer than n words) are one shingle of all their words; a document with no
word after normalization has no shingles (the stage drops it as 'empty').
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

import numpy as np

_DIGITS = re.compile(r"\d+")
_NON_WORD = re.compile(r"[^\w\s]+|_+")
_WORD_CACHE: dict[str, int] = {}
_WORD_CACHE_MAX = 2_000_000  # ~200 MB at worst; a corpus vocabulary is mostly far smaller
# odd 64-bit multipliers (splitmix64 constants and friends), one per position in the n-gram
_POSITION_MULT = np.array(
    [
        0x9E3779B97F4A7C15,
        0xBF58476D1CE4E5B9,
        0x94D049BB133111EB,
        0xD6E8FEB86659FD93,
        0xA0761D6478BD642F,
        0xE7037ED1A0B428DB,
        0x8EBC6AF09C88C6E3,
        0x589965CC75374CC3,
        0x1D8E4E27C47D124F,
        0xC2B2AE3D27D4EB4F,
    ],
    dtype=np.uint64,
)


def simplify_text(text: str) -> str:
    """datatrove's simplify_text, in short: casefold, no accents, digits -> 0, no punctuation."""
    text = text.casefold()  # lower() plus ß -> ss and friends, so case variants hash alike
    if not text.isascii():
        text = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    text = _DIGITS.sub("0", text)
    return " ".join(_NON_WORD.sub(" ", text).split())


def text_hash(normalized: str) -> int:
    """64-bit hash of normalized text: equal hashes = exact duplicates (collision odds ~ n^2 / 2^64)."""
    return int.from_bytes(hashlib.blake2b(normalized.encode("utf-8"), digest_size=8).digest(), "little")


def _word_hash(word: str) -> int:
    value = _WORD_CACHE.get(word)
    if value is None:
        value = int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")
        if len(_WORD_CACHE) < _WORD_CACHE_MAX:
            _WORD_CACHE[word] = value
    return value


def shingle_hashes(normalized: str, ngram: int) -> np.ndarray:
    """32-bit hashes of the word `ngram`-grams of a normalized text (unique, uint32)."""
    if ngram > len(_POSITION_MULT):
        raise ValueError(f"ngram {ngram} > {len(_POSITION_MULT)} is not supported (FineWeb uses 5)")
    words = normalized.split()
    if not words:
        return np.empty(0, dtype=np.uint32)
    word_hashes = np.fromiter((_word_hash(w) for w in words), dtype=np.uint64, count=len(words))
    n = min(ngram, len(words))  # fewer words than one shingle: the whole text is the shingle
    count = len(words) - n + 1
    combined = np.zeros(count, dtype=np.uint64)
    for k in range(n):  # (count,) += (count,) * scalar; uint64 arithmetic wraps mod 2^64
        combined += word_hashes[k : k + count] * _POSITION_MULT[k]
    folded = ((combined >> np.uint64(32)) ^ combined).astype(np.uint32)
    return np.unique(folded)
