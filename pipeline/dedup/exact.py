"""Exact dedup: documents whose normalized text hashes equal (shingles.text_hash) are one cluster.

Only the first document of each hash goes on to the LSH index; its exact copies would collide
with it in every band anyway, so indexing them would only cost memory.
"""

from __future__ import annotations


class ExactIndex:
    """text hash -> index of the first document seen with it."""

    def __init__(self) -> None:
        self.first: dict[int, int] = {}

    def first_of(self, text_hash: int, index: int) -> int:
        """The earliest index with this hash (`index` itself when the hash is new)."""
        return self.first.setdefault(text_hash, index)

    def __len__(self) -> int:
        return len(self.first)
