"""Bucket files: (hash, document) records sorted by hash on disk, grouped one hash range at a time.

As datatrove's MinhashDedupSignature/Buckets do it: each part writes, per band, the records of
its documents sorted by band hash; the 2^64 hash space is cut into `ranges` equal ranges, and one
task per (band, range) reads that range's slice of every part (a binary search in a memory-mapped
sorted file), merges the slices and finds the buckets holding >= 2 documents by sorting, never by
a dict of all keys. Exact dedup uses the same records with the normalized-text hash as the key.

A record is two uint64: [hash, document index]. Document indices number the rows of all parts in
order, so within one hash the lowest index is the earliest document, as the in-memory backend
keeps it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.dedup.lsh import ALL_PAIRS_UP_TO

HASH_SPACE = 1 << 64
_MULT = np.uint64(0x9E3779B97F4A7C15)  # odd: multiplying by it permutes the 64-bit integers
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)  # splitmix64 finalizer


def _mix(h: np.ndarray) -> np.ndarray:
    h ^= h >> np.uint64(30)
    h *= _MIX1
    h ^= h >> np.uint64(27)
    h *= _MIX2
    h ^= h >> np.uint64(31)
    return h


def band_hashes(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n, num_perm) uint32 signatures -> (n, bands) uint64: equal bands give equal hashes.

    Each step xors in one value and applies a bijection, so two different bands collide only by
    chance (~2^-64 a pair), the same odds as the in-memory backend's 8-byte blake2b keys.
    """
    values = signatures.astype(np.uint64).reshape(len(signatures), bands, rows)  # (n, b, r)
    h = np.full(values.shape[:2], 0x243F6A8885A308D3, dtype=np.uint64)  # (n, b)
    with np.errstate(over="ignore"):
        for j in range(rows):
            h ^= values[:, :, j]
            h *= _MULT
            h = _mix(h)
    return h


def sorted_records(hashes: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """(m, 2) records sorted by hash, ties by key (keys arrive ascending; the sort is stable)."""
    order = np.argsort(hashes, kind="stable")
    return np.stack([hashes[order], keys[order]], axis=1)


def range_slice(records: np.ndarray, k: int, ranges: int) -> np.ndarray:
    """The records of hash range k of `ranges` from a hash-sorted (memory-mapped) array, copied."""
    column = records[:, 0]
    lo = np.searchsorted(column, np.uint64((k * HASH_SPACE) // ranges), side="left")
    hi = len(column) if k == ranges - 1 else np.searchsorted(column, np.uint64(((k + 1) * HASH_SPACE) // ranges))
    return np.array(records[lo:hi])


def merge_slices(slices: list[np.ndarray]) -> np.ndarray:
    """Slices of parts in part order -> one array sorted by (hash, key)."""
    records = np.concatenate(slices) if slices else np.zeros((0, 2), np.uint64)
    return records[np.argsort(records[:, 0], kind="stable")]  # parts in order: keys stay ascending


def read_range(files: list[Path], k: int, ranges: int, band: int | None = None) -> np.ndarray:
    """Hash range k of every part's bucket file, merged; `band` picks a band of a (bands, n, 2) file."""
    slices = []
    for path in files:
        records = np.load(path, mmap_mode="r")
        slices.append(range_slice(records if band is None else records[band], k, ranges))
    return merge_slices(slices)


def buckets(records: np.ndarray, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Buckets of >= 2 documents in (hash, key)-sorted records: (member keys, start of each bucket).

    `keep` masks records out before counting (exact copies that the band index leaves out).
    """
    if keep is not None:
        records = records[keep]
    if not len(records):
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    hashes = records[:, 0]
    first = np.ones(len(hashes), dtype=bool)
    first[1:] = hashes[1:] != hashes[:-1]
    starts = np.flatnonzero(first)
    sizes = np.diff(np.append(starts, len(hashes)))
    crowded = np.repeat(sizes >= 2, sizes)  # per record: its bucket has company
    return records[crowded, 1], starts_of(sizes[sizes >= 2])


def starts_of(sizes: np.ndarray) -> np.ndarray:
    """Where each bucket begins, from the buckets' sizes."""
    return (np.cumsum(sizes) - sizes).astype(np.int64)


def bucket_sizes(keys: np.ndarray, starts: np.ndarray) -> np.ndarray:
    return np.diff(np.append(starts, len(keys)))


def star_pairs(keys: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """(earliest member, other member) for every bucket: FineWeb's merge, and the k^2 guard."""
    sizes = bucket_sizes(keys, starts)
    first = np.repeat(keys[starts], sizes)
    others = np.ones(len(keys), dtype=bool)
    others[starts] = False
    return np.stack([first[others], keys[others]], axis=1)


def candidate_pairs(keys: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """lsh.bucket_pairs for every bucket at once: all pairs up to ALL_PAIRS_UP_TO members, else a star."""
    sizes = bucket_sizes(keys, starts)
    pairs = [star_pairs(*_subset(keys, starts, sizes, sizes > ALL_PAIRS_UP_TO))]
    for size in np.unique(sizes[sizes <= ALL_PAIRS_UP_TO]).tolist():
        members = starts[sizes == size][:, None] + np.arange(size)  # (buckets, size) record positions
        i, j = np.triu_indices(size, k=1)
        pairs.append(np.stack([keys[members[:, i]].ravel(), keys[members[:, j]].ravel()], axis=1))
    return unique_pairs(np.concatenate(pairs))


def _subset(
    keys: np.ndarray, starts: np.ndarray, sizes: np.ndarray, chosen: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The keys and starts of the chosen buckets only."""
    return keys[np.repeat(chosen, sizes)], starts_of(sizes[chosen])


def unique_pairs(pairs: np.ndarray) -> np.ndarray:
    """Sorted by (a, b), duplicates removed."""
    if not len(pairs):
        return np.zeros((0, 2), np.uint64)
    pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
    fresh = np.ones(len(pairs), dtype=bool)
    fresh[1:] = (pairs[1:] != pairs[:-1]).any(axis=1)
    return pairs[fresh]


def in_sorted(values: np.ndarray, sorted_arrays: list[np.ndarray]) -> np.ndarray:
    """Mask: which values occur in any of the sorted (possibly memory-mapped) arrays."""
    found = np.zeros(len(values), dtype=bool)
    for array in sorted_arrays:
        if len(array) and len(values):
            at = np.minimum(np.searchsorted(array, values), len(array) - 1)
            found |= np.asarray(array[at]) == values
    return found
