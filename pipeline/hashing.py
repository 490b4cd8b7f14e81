"""A stable hash of a string as a fraction in [0, 1): the one rule every split and sample uses.

blake2b (8 bytes, big-endian) of the UTF-8 bytes, divided by 2**64: the same value on every
run, machine and Python process (the built-in hash() is salted per process). Splits by
`stable_fraction(key) < fraction` are fixed whatever the file order, and a key's side never
changes when the fraction grows: the shards' train/val split (by doc id), the tokenizer's
sample and the shard report's examples (smallest doc ids first), the SFT and classifier
held-out sets (by text).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np


def stable_fraction(key: str) -> float:
    """A uniform float in [0, 1) for `key` (a doc id or a text), stable across runs and machines."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") / 2**64


def stable_fractions(keys: Sequence[str]) -> np.ndarray:
    """stable_fraction of each key, as a float64 array (a column of doc ids at a time)."""
    return np.fromiter((stable_fraction(k) for k in keys), dtype=np.float64, count=len(keys))
