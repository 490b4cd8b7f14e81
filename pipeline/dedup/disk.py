"""The disk backend: exact and near dedup as independent tasks over bucket files, memory bounded by a bucket.

  signatures  (stage.run_part, per part)  besides the minhash part: exact/part-i.npy (text-hash
              records), bands/part-i.npy ((bands, n, 2) band-hash records, each band sorted) and
              rows/part-i.* (shingle sets or signatures, for verification), all as they are computed
  exact       per text-hash range: documents sharing a hash -> edges (earliest, copy) + the copies
  bands       per (band, hash range): buckets of >= 2 documents, exact copies left out as the
              in-memory index leaves them out -> candidate pairs (lsh.bucket_pairs' rule)
  verify      per part holding a pair's first document: Jaccard of the two stored shingle sets
              (or signatures); each pair is checked once, by the task that owns its first document
  cluster     (finish, one process) union-find over the edges only -> removed documents, roots

Nothing here holds a structure of the whole corpus: a task reads one hash range of every part's
bucket file (dedup.bucket_docs records, 16 bytes each) or the pairs of one part. Every task is a
plain function of a small picklable description, so `map_parts` can send it to a process pool,
Prefect tasks or a Dask cluster; results are files, written beside their final name and renamed,
so a task killed and run again leaves no torn file.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from pipeline.atomic import temp_path
from pipeline.dedup.buckets import (
    band_hashes,
    buckets,
    candidate_pairs,
    in_sorted,
    read_range,
    sorted_records,
    star_pairs,
    unique_pairs,
)
from pipeline.dedup.config import DedupConfig
from pipeline.dedup.lsh import shingle_jaccard
from pipeline.dedup.minhash import estimated_jaccard
from pipeline.dedup.rowstore import RowReader, RowWriter, save_npy
from pipeline.dedup.union_find import components
from pipeline.stage import PartResult


def scratch_dir(workdir: Path) -> Path:
    """Intermediate files of one run, removed before the manifest lists the stage folder."""
    return Path(workdir) / ".dedup-scratch"


def _part_file(folder: Path, index: int) -> Path:
    return folder / f"part-{index:05d}.npy"


def hash_ranges(docs: int, bucket_docs: int) -> int:
    """Hash ranges per band: each range task then sorts about `bucket_docs` records."""
    return max(1, -(-docs // bucket_docs))


# ------------------------------------------------------------------ signatures phase: what a part writes


class PartSpill:
    """The disk backend's files of one part, appended batch by batch and published by close()."""

    def __init__(self, workdir: Path, index: int, d: DedupConfig):
        self.root, self.index, self.d = scratch_dir(workdir), index, d
        self.keys: list[np.ndarray] = []
        self.text_hashes: list[np.ndarray] = []
        self.bands: list[np.ndarray] = []
        verify_rows = d.near and d.verify in ("exact", "signature")
        self.rows = RowWriter(self.root / "rows", index) if verify_rows else None

    def add(
        self,
        keys: np.ndarray,
        text_hashes: np.ndarray,
        signatures: np.ndarray,
        shingles: list[np.ndarray],
        present: np.ndarray,
    ) -> None:
        """One batch: global indices, hashes and (n, num_perm) signatures of its non-empty documents;
        `shingles` and `present` cover every row (empty documents store nothing)."""
        self.keys.append(keys)
        self.text_hashes.append(text_hashes)
        if self.d.near:
            self.bands.append(band_hashes(signatures, self.d.bands, self.d.rows))
        if self.rows is not None:
            if self.d.verify == "exact":
                self.rows.append(shingles)
            else:
                sig_rows = iter(signatures)
                self.rows.append([next(sig_rows) if p else np.zeros(0, np.uint32) for p in present])

    def close(self) -> None:
        keys = np.concatenate(self.keys or [np.zeros(0, np.uint64)]).astype(np.uint64)
        if self.d.exact:
            hashes = np.concatenate(self.text_hashes or [np.zeros(0, np.uint64)])
            save_npy(_part_file(self.root / "exact", self.index), sorted_records(hashes, keys))
        if self.d.near:
            bands = np.concatenate(self.bands) if self.bands else np.zeros((0, self.d.bands), np.uint64)
            self.bands = []
            _save_bands(_part_file(self.root / "bands", self.index), bands, keys)
        if self.rows is not None:
            self.rows.close()


def _save_bands(path: Path, bands: np.ndarray, keys: np.ndarray) -> None:
    """(bands, n, 2) records, each band sorted by hash, written band by band (one band in memory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    header = {"descr": "<u8", "fortran_order": False, "shape": (bands.shape[1], len(keys), 2)}
    with open(tmp, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        for b in range(bands.shape[1]):
            fh.write(sorted_records(bands[:, b], keys).astype("<u8", copy=False).tobytes())
    os.replace(tmp, path)


# ------------------------------------------------------------------ bucket tasks


@dataclass(frozen=True)
class RangeTask:
    """One hash range of the exact records (band = -1) or of one band."""

    band: int
    k: int
    ranges: int
    parts: int

    @property
    def label(self) -> str:
        return f"exact-{self.k:04d}" if self.band < 0 else f"band-{self.band:02d}-{self.k:04d}"


def exact_range(task: RangeTask, workdir: Path, d: DedupConfig) -> PartResult:
    """Documents sharing a normalized-text hash: edges (earliest, copy) and the sorted copies."""
    started, root = time.time(), scratch_dir(workdir)
    records = read_range([_part_file(root / "exact", i) for i in range(task.parts)], task.k, task.ranges)
    edges = star_pairs(*buckets(records))
    save_npy(root / "exact-edges" / f"{task.label}.npy", edges)
    save_npy(root / "exact-copies" / f"{task.label}.npy", np.sort(edges[:, 1]))
    return PartResult(
        part=task.label, counts={"exact_copies": len(edges), "records": len(records)}, seconds=time.time() - started
    )


def band_range(task: RangeTask, workdir: Path, d: DedupConfig, exact_ranges: int) -> PartResult:
    """Buckets of >= 2 documents of one band's hash range -> candidate pairs (or FineWeb's star edges)."""
    started, root = time.time(), scratch_dir(workdir)
    records = read_range(
        [_part_file(root / "bands", i) for i in range(task.parts)], task.k, task.ranges, band=task.band
    )
    keep = None
    if d.exact:  # the in-memory index holds the first of each text hash only; so do the buckets
        copies = [
            np.load(root / "exact-copies" / f"{RangeTask(-1, k, exact_ranges, task.parts).label}.npy", mmap_mode="r")
            for k in range(exact_ranges)
        ]
        keep = ~in_sorted(records[:, 1], copies)
    keys, starts = buckets(records, keep)
    pairs = star_pairs(keys, starts) if d.verify == "none" else candidate_pairs(keys, starts)
    save_npy(root / "pairs" / f"{task.label}.npy", pairs)
    return PartResult(
        part=task.label, counts={"pairs": len(pairs), "records": len(records)}, seconds=time.time() - started
    )


# ------------------------------------------------------------------ verification


@dataclass(frozen=True)
class VerifyTask:
    """The candidate pairs whose first document lies in part `index` (rows starts[index]..starts[index+1])."""

    index: int
    starts: tuple[int, ...]  # first global index of every part, plus the total

    @property
    def label(self) -> str:
        return f"verify-{self.index:05d}"


def verify_part(task: VerifyTask, workdir: Path, d: DedupConfig) -> PartResult:
    started, root = time.time(), scratch_dir(workdir)
    lo, hi = task.starts[task.index], task.starts[task.index + 1]
    slices = []
    for path in sorted((root / "pairs").glob("band-*.npy")):
        pairs = np.load(path, mmap_mode="r")  # sorted by first document
        first = pairs[:, 0]
        slices.append(np.array(pairs[np.searchsorted(first, np.uint64(lo)) : np.searchsorted(first, np.uint64(hi))]))
    pairs = unique_pairs(np.concatenate(slices) if slices else np.zeros((0, 2), np.uint64))
    reader = RowReader(root / "rows", list(task.starts[:-1]))
    passed = np.zeros(len(pairs), dtype=bool)
    try:
        current, values = -1, None
        for n, (a, b) in enumerate(pairs.tolist()):
            if a != current:  # pairs are sorted by a: each first document is read once
                current, values = a, reader[a]
            other = reader[b]
            if d.verify == "exact":
                passed[n] = shingle_jaccard(values, other) >= d.verify_threshold
            else:  # the stored signatures, as lsh.signature_agreeing compares them
                passed[n] = estimated_jaccard(values, other) >= d.verify_threshold
    finally:
        reader.close()
    save_npy(root / "verified" / f"{task.label}.npy", pairs[passed])
    return PartResult(
        part=task.label,
        counts={"candidate_pairs": len(pairs), "pairs_verified": int(passed.sum())},
        seconds=time.time() - started,
    )


# ------------------------------------------------------------------ the backend, phase by phase


def _load_all(folder: Path) -> np.ndarray:
    arrays = [np.load(p) for p in sorted(folder.glob("*.npy"))]
    return np.concatenate(arrays) if arrays else np.zeros((0, 2), np.uint64)


def disk_clusters(
    workdir: Path, starts: list[int], d: DedupConfig, map_parts, timings: dict
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Run the bucket phases through `map_parts`; returns (removed documents, their roots, counts)."""
    root, parts, total = scratch_dir(workdir), len(starts) - 1, starts[-1]
    ranges = hash_ranges(total, d.bucket_docs)
    counts: dict[str, int] = {"hash_ranges": ranges}
    if d.exact:
        started = time.time()
        map_parts(partial(exact_range, workdir=workdir, d=d), [RangeTask(-1, k, ranges, parts) for k in range(ranges)])
        timings["exact_s"] = round(time.time() - started, 3)
    if d.near:
        started = time.time()
        tasks = [RangeTask(b, k, ranges, parts) for b in range(d.bands) for k in range(ranges)]
        map_parts(partial(band_range, workdir=workdir, d=d, exact_ranges=ranges if d.exact else 0), tasks)
        timings["bands_s"] = round(time.time() - started, 3)
        if d.verify != "none":
            started = time.time()
            results = map_parts(
                partial(verify_part, workdir=workdir, d=d), [VerifyTask(i, tuple(starts)) for i in range(parts)]
            )
            counts["candidate_pairs"] = sum(r.counts["candidate_pairs"] for r in results)
            timings["verify_s"] = round(time.time() - started, 3)
    started = time.time()
    exact_edges = _load_all(root / "exact-edges")
    near_edges = (
        _load_all(root / ("pairs" if d.verify == "none" else "verified")) if d.near else np.zeros((0, 2), np.uint64)
    )
    nodes, roots, merged = components(exact_edges.astype(np.int64), near_edges.astype(np.int64))
    if d.near and d.verify != "none":
        counts["pairs_merged"] = merged
    timings["union_s"] = round(time.time() - started, 3)
    removed = roots != nodes
    return nodes[removed], roots[removed], counts
