"""Tallies whose memory does not grow with the corpus: what the report keeps while it streams.

Nearest         the k documents closest to a value (ties broken by a stable doc-id hash, so
                the pick is fixed and unbiased whatever the file order)
BoundedCounter  counts per key (domain, cluster) in at most `capacity` keys; past that the
                keys with the smallest counts are let go and the counter says it is no
                longer exact (the large keys a report shows are the ones that survive)
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable
from typing import Any

import numpy as np


class Nearest:
    """The k items with the smallest (distance, hash), fed a batch at a time."""

    def __init__(self, k: int):
        self.k, self._heap, self._order = k, [], itertools.count()

    def offer(self, distance: np.ndarray, hashes: np.ndarray, mask: np.ndarray, payload) -> None:
        """Consider the rows where `mask` holds; `payload(i)` builds row i's record when it enters."""
        rows = np.flatnonzero(mask)
        if not len(rows):
            return
        best = rows[np.lexsort((hashes[rows], distance[rows]))[: self.k]]
        for i in best:
            key = (-float(distance[i]), -float(hashes[i]))  # a min-heap of negated keys keeps the smallest
            if len(self._heap) < self.k:
                heapq.heappush(self._heap, (key, next(self._order), payload(int(i))))
            elif key > self._heap[0][0]:
                heapq.heapreplace(self._heap, (key, next(self._order), payload(int(i))))
            else:
                break  # `best` is sorted: the rest are farther still

    def items(self) -> list[Any]:
        """Nearest first."""
        return [entry[2] for entry in sorted(self._heap, key=lambda e: (-e[0][0], -e[0][1]))]


class BoundedCounter:
    """Per-key vectors of `width` counts; column `key_column` decides which keys stay when full."""

    def __init__(self, width: int, capacity: int = 200_000, key_column: int = 0):
        self.width, self.capacity, self.key_column, self.exact = width, capacity, key_column, True
        self.counts: dict[Any, list[int]] = {}

    def add(self, keys: Iterable[Any], *columns: Iterable[int]) -> None:
        for key, *values in zip(keys, *columns):
            row = self.counts.get(key)
            if row is None:
                row = self.counts[key] = [0] * self.width
            for j, v in enumerate(values):
                row[j] += int(v)
        if len(self.counts) > self.capacity:
            self._shrink()

    def _shrink(self) -> None:
        keep = heapq.nlargest(self.capacity // 2, self.counts.items(), key=lambda kv: kv[1][self.key_column])
        self.counts, self.exact = dict(keep), False

    def top(self, n: int, column: int = 0) -> list[tuple[Any, list[int]]]:
        return heapq.nlargest(n, self.counts.items(), key=lambda kv: (kv[1][column], kv[1][0]))
