"""Connected components over document indices (disjoint-set forest in a numpy array).

Union always hangs the larger root under the smaller one, so every component's root is its
lowest index: with indices assigned in (part, row) order, the root is the earliest document,
which is the one the stage keeps (the same rule as datatrove's MinhashDedupCluster).
"""
from __future__ import annotations

import numpy as np


class UnionFind:
    def __init__(self, size: int):
        self.parent = np.arange(size, dtype=np.int64)

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:  # path halving: each step skips a generation
            parent[x] = parent[parent[x]]
            x = int(parent[x])
        return x

    def union(self, a: int, b: int) -> bool:
        """Join the sets of a and b; True when they were apart."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        if rb < ra:
            ra, rb = rb, ra
        self.parent[rb] = ra
        return True

    def roots(self) -> np.ndarray:
        """Root of every element, (n,), fully compressed (vectorized pointer jumping)."""
        parent = self.parent
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                return parent.copy()
            parent[:] = grand
