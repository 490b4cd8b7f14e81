"""The `dedup:` section of the config: exact and MinHash-LSH near-dup, the index backend, pair checks.

Defaults follow FineWeb (Penedo et al. 2024, section 3 and its datatrove recipe: MinHash 14 bands x 8 rows
on word 5-grams). The checks types cannot make (bands, shingle size, a Redis that answers) are in
settings.py.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipeline.config_section import Section


class DedupConfig(Section):
    """Exact hash dedup, then MinHash-LSH near-dup (FineWeb: 14 bands x 8 rows, word 5-grams)."""

    exact: bool = True
    near: bool = True
    ngram: int = Field(5, ge=1, description="FineWeb: word 5-gram shingles.")
    bands: int = Field(14, ge=1, description="FineWeb: 14 buckets ...")
    rows: int = Field(8, ge=1, description="... of 8 hashes = 112 permutations.")
    seed: int = 1
    backend: Literal["auto", "memory", "redis", "disk"] = Field(
        "auto",
        description="Where the exact-hash and LSH indexes live. 'memory': datasketch's dict storage in the stage "
        "process (~7 KB per document, docs/benchmarks-dedup.md); 'redis': datasketch's Redis storage; 'disk': sorted "
        "bucket files, one task per hash range, memory bounded by dedup.bucket_docs (docs/scale.md); 'auto': memory "
        "up to dedup.disk_above_docs documents, disk above. Same kept documents with every backend.",
    )
    disk_above_docs: int = Field(
        100_000,
        ge=0,
        description="backend=auto uses the disk backend above this many "
        "input documents (the memory backend peaks near 1 GB at 100k).",
    )
    bucket_docs: int = Field(
        2_000_000,
        ge=1,
        description="Disk backend: records (16 bytes each) one bucket task "
        "sorts; a band's hash space is cut into ceil(documents / bucket_docs) ranges.",
    )
    redis_host: str = "127.0.0.1"
    redis_port: int = 6379
    redis_prefix: str = "crawl2gpt"
    redis_timeout_s: float = Field(
        60.0,
        gt=0,
        description="Seconds a Redis connection or command may take before dedup stops with "
        "RedisIndexError: a hung server or a network partition would otherwise block the stage for ever.",
    )
    redis_ttl_h: float = Field(
        72.0,
        gt=0,
        description="Hours a dedup attempt's Redis keys outlive its last sign of life (its owner record is "
        "renewed after every part it indexes) before any later dedup on the same Redis and prefix, or `crawl2gpt "
        "dedup-clean --expired`, deletes them: what a killed run on a folder that is never rerun leaves behind "
        "(pipeline/dedup/redis_owners.py). Raise it if one part of a dedup can take longer.",
    )
    verify: Literal["none", "signature", "exact"] = Field(
        "exact",
        description="Check LSH candidate pairs before merging: 'none' = FineWeb (a shared band merges, S-curve knee "
        "~0.72), 'signature' = estimated Jaccard, 'exact' = Jaccard of the stored shingle sets. The issue asks for "
        "precision >= 0.98 at J >= 0.8, which plain banding misses (docs/benchmarks-dedup.md).",
    )
    verify_threshold: float = Field(0.8, ge=0, le=1, description="Jaccard a verified pair needs (the issue's 0.8).")

    @property
    def num_perm(self) -> int:
        return self.bands * self.rows
