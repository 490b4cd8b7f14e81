"""The in-memory (and Redis) backend: one process reads every part's signatures into one LSH index.

The exact-hash dict and datasketch's band tables hold the whole corpus (~7 KB per document in
memory, docs/benchmarks-dedup.md), which is quick and simple for small runs; the disk backend
(disk.py) gives the same answer in bounded memory. With dedup.backend=redis the band tables
live in a Redis server instead (datasketch storage).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.dedup.config import DedupConfig
from pipeline.dedup.exact import ExactIndex
from pipeline.dedup.lsh import BandIndex, bucket_pairs, shingle_jaccard, signature_agreeing
from pipeline.dedup.minhash import signature_matrix
from pipeline.dedup.output import OutputPart
from pipeline.dedup.union_find import UnionFind


def memory_clusters(
    workdir: Path, parts: list[OutputPart], d: DedupConfig, timings: dict
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Union exact copies and LSH candidates of all parts; returns (removed documents, their roots, counts)."""
    total = parts[-1].offset + parts[-1].rows if parts else 0
    clusters = UnionFind(total)
    exact = ExactIndex()
    index = BandIndex(d, workdir) if d.near else None
    scratch = workdir / ".dedup-memory"  # removed before the manifest lists the folder
    signatures = None
    counts: dict[str, int] = {}
    if d.near and d.verify == "signature":
        scratch.mkdir(exist_ok=True)  # signatures by global index, paged by the OS (4 B x num_perm per doc)
        signatures = np.lib.format.open_memmap(scratch / "sig.npy", mode="w+", dtype="<u4", shape=(total, d.num_perm))
    try:
        started = time.time()
        for part in parts:
            table = pq.read_table(workdir / part.minhash, columns=["text_hash", "signature"])
            keys, sigs = [], []
            for row, (h, sig) in enumerate(
                zip(table.column("text_hash").to_numpy().tolist(), table.column("signature").to_pylist())
            ):
                g = part.offset + row
                if sig is None:  # empty document: dropped by the writer, never clustered
                    continue
                if d.exact and (first := exact.first_of(h, g)) != g:
                    clusters.union(first, g)
                    continue
                keys.append(g)
                sigs.append(sig)
            if signatures is not None and keys:
                signatures[np.array(keys)] = signature_matrix(sigs, d.num_perm)
            if index is not None:
                index.insert(keys, sigs)
        timings["index_s"] = round(time.time() - started, 3)
        started = time.time()
        candidates: set[tuple[int, int]] = set()
        for members in index.candidate_buckets() if index is not None else ():
            members = sorted(members)
            if d.verify == "none":  # FineWeb: a shared band is enough; a star joins the bucket
                for other in members[1:]:
                    clusters.union(members[0], other)
            elif d.verify == "signature":
                for a, b in signature_agreeing(members, signatures, d.verify_threshold):
                    clusters.union(a, b)
            else:
                candidates.update(bucket_pairs(members))
        timings["bands_s"] = round(time.time() - started, 3)
        if candidates:
            started = time.time()
            counts.update(verify_exact(workdir, parts, candidates, clusters, d.verify_threshold))
            timings["verify_s"] = round(time.time() - started, 3)
    finally:
        if index is not None:
            index.close()
        del signatures
        shutil.rmtree(scratch, ignore_errors=True)
    roots = clusters.roots()
    removed = np.flatnonzero(roots != np.arange(total))
    return removed, roots[removed], counts


def verify_exact(
    workdir: Path, parts: list[OutputPart], candidates: set[tuple[int, int]], clusters: UnionFind, threshold: float
) -> dict[str, int]:
    """Merge candidate pairs whose stored shingle sets have Jaccard >= threshold."""
    pairs = sorted(candidates)  # deterministic order: lowest pair first
    needed = np.unique(np.array(pairs, dtype=np.int64))
    shingles: dict[int, np.ndarray] = {}
    for part in parts:
        local = needed[(needed >= part.offset) & (needed < part.offset + part.rows)] - part.offset
        if not len(local):
            continue
        column = pq.read_table(workdir / part.minhash, columns=["shingles"]).column("shingles")
        lists = column.take(pa.array(local)).combine_chunks()
        flat, bounds = lists.values.to_numpy(), lists.offsets.to_numpy()
        for k, row in enumerate(local.tolist()):
            shingles[part.offset + row] = flat[bounds[k] : bounds[k + 1]]
    checked = merged = 0
    for a, b in pairs:
        if clusters.find(a) == clusters.find(b):
            continue  # already one component: checking cannot change anything
        checked += 1
        if shingle_jaccard(shingles[a], shingles[b]) >= threshold:
            merged += clusters.union(a, b)
    return {"candidate_pairs": len(pairs), "pairs_checked": checked, "pairs_merged": merged}
