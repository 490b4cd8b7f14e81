"""LSH banding across all parts with datasketch's MinHashLSH, in memory or in Redis.

A signature of b*r values is cut into b bands of r rows; two documents become candidates when
any band is identical. For shingle-set Jaccard s the chance is the S-curve 1 - (1 - s^r)^b,
whose steepest point sits near (1/b)^(1/r): FineWeb's 14 x 8 puts it at ~0.72 and catches a
pair at s=0.8 with p~0.92, at s=0.9 with p~0.9998 (Penedo et al. 2024, section 3.4).

Storage is datasketch's `storage_config`: {"type": "dict"} keeps the band tables in this
process; {"type": "redis", ...} puts them in a Redis server so the index can outgrow one
machine's memory (key names, clean-up and failures: redis_keys.py). Candidates are read back
bucket by bucket (only buckets with >= 2 members), which costs one pass per band instead of one
query per document.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from datasketch import MinHashLSH

from pipeline.dedup.config import DedupConfig
from pipeline.dedup.minhash import estimated_jaccard, from_bytes
from pipeline.dedup.redis_keys import (
    attempt_basename,
    connection,
    redis_calls,
    register_attempt,
    remove_attempt,
    remove_dead_attempts,
    renew_attempt,
)
from pipeline.dedup.settings import check_redis
from pipeline.errors import RedisIndexError


def s_curve(similarity: np.ndarray | float, bands: int, rows: int) -> np.ndarray | float:
    """Probability that a pair with this Jaccard similarity shares at least one band."""
    return 1.0 - (1.0 - np.asarray(similarity, dtype=float) ** rows) ** bands


def lsh_threshold(bands: int, rows: int) -> float:
    """The similarity where the S-curve is steepest, (1/b)^(1/r)."""
    return (1.0 / bands) ** (1.0 / rows)


ALL_PAIRS_UP_TO = 256  # larger buckets pair each member with the earliest only (a k^2 guard)


def bucket_pairs(members: list[int]) -> Iterator[tuple[int, int]]:
    """Candidate pairs of one bucket (members sorted): all pairs, or a star from the earliest if huge."""
    if len(members) <= ALL_PAIRS_UP_TO:
        yield from ((a, b) for i, a in enumerate(members) for b in members[i + 1 :])
    else:
        yield from ((members[0], b) for b in members[1:])


def signature_agreeing(members: list[int], signatures: np.ndarray, threshold: float) -> Iterator[tuple[int, int]]:
    """Pairs of one bucket whose signatures agree on >= threshold of positions (estimated Jaccard)."""
    sigs = signatures[members]  # (k, P)
    if len(members) <= ALL_PAIRS_UP_TO:
        agree = estimated_jaccard(sigs[:, None, :], sigs[None, :, :])  # (k, k)
        for i, j in zip(*np.nonzero(np.triu(agree >= threshold, k=1))):
            yield members[i], members[j]
    else:
        agree = estimated_jaccard(sigs[1:], sigs[0])  # (k-1,) against the earliest member
        for j in np.nonzero(agree >= threshold)[0]:
            yield members[0], members[j + 1]


def shingle_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard of two sorted unique shingle-hash arrays (shingles.shingle_hashes' output).

    A binary search of a's values in b counts the intersection without the sort that
    np.intersect1d does: about 5x faster, which is most of the verification's cost.
    """
    if not len(a) or not len(b):
        return 0.0
    at = np.minimum(np.searchsorted(b, a), len(b) - 1)
    inter = int(np.count_nonzero(b[at] == a))
    return inter / (len(a) + len(b) - inter) if inter else 0.0


def _band_key(band: bytes) -> bytes:
    """8-byte digest of a band (r*4 bytes): shorter keys, same buckets (collisions ~ 2^-64)."""
    return hashlib.blake2b(band, digest_size=8).digest()


def storage_config(cfg: DedupConfig, basename: bytes | None = None) -> dict:
    if cfg.backend != "redis":  # memory, or auto on a corpus small enough for memory
        return {"type": "dict"}
    return {"type": "redis", "basename": basename, "redis": connection(cfg)}


class BandIndex:
    """The LSH tables of one dedup run; keys are document indices (ints).

    `workdir` is the stage's folder being written: with dedup.backend=redis the index takes a
    namespace of its own tied to the stage's output folder, after deleting what a dead attempt
    on that folder (or an expired one on any folder) left, and writes an owner record naming
    its tables before its first key (redis_keys.py, redis_owners.py); every part inserted and
    every band read renews the record's lease; `close()` deletes this attempt's keys and record.
    """

    def __init__(self, cfg: DedupConfig, workdir: Path | None = None):
        self.cfg = cfg
        self.redis_failed = False
        self.owner = None  # the owner record, with dedup.backend=redis
        self.basename, folder = attempt_basename(cfg, workdir) if cfg.backend == "redis" else (None, "")
        self.storage = storage_config(cfg, self.basename)
        if self.storage["type"] == "redis":
            check_redis(cfg)  # also checked before the run's first stage, with a shorter wait
            remove_dead_attempts(cfg, folder)
        # Creating the index writes nothing to Redis; the record goes first, then the keys it leads to.
        self.lsh = MinHashLSH(
            num_perm=cfg.num_perm, params=(cfg.bands, cfg.rows), storage_config=self.storage, hashfunc=_band_key
        )
        if self.storage["type"] == "redis":
            with self._calls():
                self.owner = register_attempt(cfg, self.basename, folder, redis_tables(self.lsh))
        self.size = 0

    @contextmanager
    def _calls(self) -> Iterator[None]:
        """Index calls: a Redis failure becomes RedisIndexError (and close() then skips its clean-up)."""
        try:
            with redis_calls(self.cfg):
                yield
        except RedisIndexError:
            self.redis_failed = True
            raise

    def insert(self, keys: list[int], signatures: list[bytes]) -> None:
        with self._calls():
            with self.lsh.insertion_session(buffer_size=50_000) as session:
                for key, signature in zip(keys, signatures):
                    session.insert(key, from_bytes(signature, self.cfg.seed), check_duplication=False)
            self._renew()
        self.size += len(keys)

    def _renew(self) -> None:
        if self.owner is not None:
            renew_attempt(self.cfg, self.owner)

    def candidate_buckets(self, chunk: int = 10_000) -> Iterator[list[int]]:
        """Member lists of every bucket holding >= 2 documents, band by band."""
        with self._calls():
            for table in self.lsh.hashtables:
                self._renew()
                crowded = [key for key, count in table.itemcounts().items() if count > 1]
                for start in range(0, len(crowded), chunk):
                    for members in table.getmany(*crowded[start : start + chunk]):
                        if self.lsh.prepickle:
                            yield [pickle.loads(m) for m in members]
                        else:
                            yield list(members)

    def close(self) -> None:
        """Delete this run's keys from Redis (the memory backend just goes out of scope). Not
        after a Redis failure: retrying a dead server would only delay the error; the next
        attempt on the folder deletes them."""
        if self.owner is not None and not self.redis_failed:
            remove_attempt(self.cfg, self.owner)


def redis_tables(lsh: MinHashLSH) -> list[bytes]:
    """The Redis hashes of a datasketch index: one per band and its `_keys` table. Each maps an
    entry to the name of the key holding it, so together they lead to every key of the index
    (tests/faults/test_redis_abandoned.py checks that against the keyspace). The names come from
    datasketch's own storage objects (their private `_name`: datasketch has no public accessor),
    so a change of its naming scheme cannot leave keys out of the record."""
    return [storage._name for storage in [*lsh.hashtables, lsh.keys]]
