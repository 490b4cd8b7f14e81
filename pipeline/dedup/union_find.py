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


def lowest_labels(n: int, edges: np.ndarray) -> np.ndarray:
    """For each of n nodes, the lowest node of its component (edges: (m, 2) node numbers).

    Vectorized: every edge pulls both ends to the lower label, then labels jump to their
    label's label, until nothing moves. A label only ever names a lower node of the same
    component, and at the fixed point both ends of every edge agree, so it is the minimum.
    """
    labels = np.arange(n, dtype=np.int64)
    if not len(edges):
        return labels
    a, b = edges[:, 0], edges[:, 1]
    while True:
        low = np.minimum(labels[a], labels[b])
        moved = labels.copy()
        np.minimum.at(moved, a, low)
        np.minimum.at(moved, b, low)
        moved = moved[moved]
        if np.array_equal(moved, labels):
            return labels
        labels = moved


def components(first: np.ndarray, then: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Components over the documents that appear in an edge only (memory grows with edges, not corpus).

    `first` are the exact-copy edges, `then` the near ones: returns (documents, the lowest document
    of each one's component, the unions `then` adds), the last being what UnionFind counts when
    the in-memory backend merges exact copies first and verified pairs after.
    """
    nodes = np.unique(np.concatenate([first.ravel(), then.ravel()]))
    local_first = np.searchsorted(nodes, first).reshape(-1, 2)
    local_all = np.concatenate([local_first, np.searchsorted(nodes, then).reshape(-1, 2)])
    after_first = lowest_labels(len(nodes), local_first)
    labels = lowest_labels(len(nodes), local_all)
    merged = len(np.unique(after_first)) - len(np.unique(labels))
    return nodes, nodes[labels], merged
