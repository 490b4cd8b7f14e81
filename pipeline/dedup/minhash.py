"""MinHash signatures with datasketch's batch API, stored as raw bytes beside each part.

`MinHash.bulk` builds one sketch per document from a shared initial state (permutations drawn
once from `seed`), `update_batch` hashes a whole shingle array per call, and `LeanMinHash` keeps
only seed + hash values: the form we store and index. Shingles arrive already hashed
(shingles.py), so the sketch's hash function is the identity; datasketch's affine32 scheme
mixes inputs with the MurmurHash3 finalizer first, which is what makes that safe.

A signature is `num_perm` little-endian uint32 values (448 bytes at FineWeb's 112).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from datasketch import LeanMinHash, MinHash

SCHEME = "affine32"
DTYPE = np.dtype("<u4")


def _identity(value: int) -> int:
    return value


def lean_minhashes(shingle_sets: Iterable[np.ndarray], num_perm: int, seed: int) -> list[LeanMinHash]:
    """One LeanMinHash per document (each an array of shingle hashes, see shingles.py)."""
    batches = (s.tolist() for s in shingle_sets)  # python ints: the cheapest input to update_batch
    sketches = MinHash.bulk(batches, num_perm=num_perm, seed=seed, hashfunc=_identity, scheme=SCHEME)
    return [LeanMinHash(m) for m in sketches]


def signature_bytes(sketch: LeanMinHash) -> bytes:
    return sketch.hashvalues.astype(DTYPE, copy=False).tobytes()


def from_bytes(data: bytes, seed: int) -> LeanMinHash:
    return LeanMinHash(seed=seed, hashvalues=np.frombuffer(data, dtype=DTYPE), scheme=SCHEME)


def signature_matrix(column: Iterable[bytes], num_perm: int) -> np.ndarray:
    """Stored signatures -> (n, num_perm) uint32 array (one row per document)."""
    flat = np.frombuffer(b"".join(column), dtype=DTYPE)
    return flat.reshape(-1, num_perm)


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> np.ndarray | float:
    """Share of equal positions along the last axis: an unbiased estimate of the shingle sets'
    Jaccard similarity. Two signatures give one number; arrays of them broadcast (a bucket's
    (k, 1, P) against (1, k, P) gives every pair's estimate)."""
    return np.mean(a == b, axis=-1)
