"""The `dedup` stage: exact dedup, then MinHash-LSH near dedup across all parts, one kept per cluster.

  plan      one part per data part of the input `filter` folders, numbered in sorted order; rows
            are numbered across all parts (a part's `offset` is its first row's global index),
            and the backend is chosen from the total (dedup.backend, 'auto': disk above
            dedup.disk_above_docs documents)
  run_part  (worker) normalized-text hash + MinHash signature of every document, written batch
            by batch -> minhash/part-{i:05d}.parquet (doc_id, text_hash, n_shingles, signature,
            shingles); the disk backend also writes its bucket files (disk.PartSpill)
  finish    the backend finds the clusters: memory.py (one index of all parts, in this process
            or Redis) or disk.py (bucket-range tasks sent through `map_parts`, like the parts);
            then one task per part splits it into part-{i:05d}.parquet (kept rows, input columns
            as they were) and rejects/part-{i:05d}.parquet (removed rows + cluster_id,
            kept_doc_id, reason), the same code for every backend (output.py)

Rules, all deterministic (no dependence on worker count, task runner or backend):
  - kept document of a cluster: the earliest one, lowest (part, row), as datatrove keeps the
    cluster root; cluster_id is that document's global index.
  - merging: by default (dedup.verify='exact') an LSH candidate pair is merged only when the exact
    Jaccard of its stored shingle sets reaches dedup.verify_threshold (0.8); 'none' is FineWeb's
    plain banding (a shared band merges), 'signature' checks the estimated Jaccard instead.
  - reason: 'exact' when the removed text's normalized hash equals the kept one's, else 'near'.
  - empty: no word after normalization -> dropped ('empty'); no text to train on, and the MinHash
    of an empty set would collide with every other empty one.
  - short: fewer words than one shingle -> the whole text is one shingle (counted 'short_docs');
    exact dedup applies as usual, near dedup then only matches the same short text.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config import PipelineConfig
from pipeline.dedup.config import DedupConfig
from pipeline.dedup.disk import PartSpill, disk_clusters, scratch_dir
from pipeline.dedup.lsh import lsh_threshold
from pipeline.dedup.memory import memory_clusters
from pipeline.dedup.minhash import lean_minhashes, signature_bytes, signature_matrix
from pipeline.dedup.output import OutputPart, PartWriter, part_name, removed_tables, write_part
from pipeline.dedup.settings import check_config
from pipeline.dedup.shingles import shingle_hashes, simplify_text, text_hash
from pipeline.documents import iter_batches
from pipeline.errors import InputError
from pipeline.stage import MapParts, PartResult, Stage, StageStats, process_map, stage_parts

MINHASH_SCHEMA = pa.schema(
    [("doc_id", pa.string()), ("text_hash", pa.uint64()), ("n_shingles", pa.int32()), ("signature", pa.binary())]
)
KEEP_RULE = "earliest document (lowest part, row) of each cluster"


def minhash_schema(with_shingles: bool) -> pa.Schema:
    return MINHASH_SCHEMA.append(pa.field("shingles", pa.list_(pa.uint32()))) if with_shingles else MINHASH_SCHEMA


def resolve_backend(d: DedupConfig, docs: int) -> str:
    """'memory', 'redis' or 'disk' for a corpus of `docs` documents."""
    if d.backend == "auto":
        return "disk" if docs > d.disk_above_docs else "memory"
    return d.backend


@dataclass(frozen=True)
class SignaturePart:
    """One input part of the signature phase."""

    index: int
    path: str
    offset: int  # global index of the part's first row
    backend: str  # resolved for the whole corpus in plan()

    @property
    def label(self) -> str:
        return f"signatures-{self.index:05d}"


def signature_batch(d: DedupConfig, texts: list[str | None]) -> tuple[dict[str, pa.Array], dict, list[np.ndarray]]:
    """The minhash columns of one batch of texts, its counts (empty, short_docs) and its shingle sets."""
    normalized = [simplify_text(t or "") for t in texts]
    shingles = [shingle_hashes(n, d.ngram) for n in normalized]
    sketches = iter(lean_minhashes((s for s in shingles if len(s)), d.num_perm, d.seed))
    signatures = [signature_bytes(next(sketches)) if len(s) else None for s in shingles]
    counts = {
        "empty": sum(1 for n in normalized if not n),
        "short_docs": sum(1 for n in normalized if n and n.count(" ") + 1 < d.ngram),
    }
    columns = {
        "text_hash": pa.array([text_hash(n) for n in normalized], pa.uint64()),
        "n_shingles": pa.array([len(s) for s in shingles], pa.int32()),
        "signature": pa.array(signatures, pa.binary()),
    }
    if keeps_shingles(d):  # for exact verification of LSH candidates
        columns["shingles"] = pa.ListArray.from_arrays(
            pa.array(np.cumsum([0] + [len(x) for x in shingles]), pa.int32()),
            pa.array(np.concatenate(shingles) if shingles else np.empty(0, np.uint32), pa.uint32()),
        )
    return columns, counts, shingles


def keeps_shingles(d: DedupConfig) -> bool:
    return d.near and d.verify == "exact"


class DedupStage(Stage):
    name = "dedup"
    config_sections = ("dedup",)
    finish_maps = True  # the disk backend's bucket tasks and the output writers are map phases too

    def config_slice(self, cfg: PipelineConfig) -> dict:
        # Where the indexes live does not change which documents survive (tests/test_dedup_disk.py
        # checks it), so switching backends must not invalidate a finished dedup stage.
        not_output_relevant = {
            "backend",
            "redis_host",
            "redis_port",
            "redis_prefix",
            "redis_timeout_s",
            "redis_ttl_h",
            "disk_above_docs",
            "bucket_docs",
        }
        return {"dedup": cfg.dedup.model_dump(mode="json", exclude=not_output_relevant)}

    def plan(self, inputs: Sequence[str], cfg: PipelineConfig) -> list[SignaturePart]:
        check_config(cfg.dedup)  # the same check `crawl2gpt run` makes before its first stage
        paths = [path for folder in inputs for path in stage_parts(folder)]
        if not paths:
            raise InputError(f"no data parts in {', '.join(map(str, inputs))}: run the filter stage first")
        rows = [pq.ParquetFile(p).metadata.num_rows for p in paths]  # footers only
        offsets = np.cumsum([0] + rows).tolist()
        backend = resolve_backend(cfg.dedup, offsets[-1])
        return [SignaturePart(i, str(p), offsets[i], backend) for i, p in enumerate(paths)]

    def run_part(self, part: SignaturePart, workdir: Path, cfg: PipelineConfig) -> PartResult:
        started, d = time.time(), cfg.dedup
        names = pq.ParquetFile(part.path).schema_arrow.names
        if "text" not in names or "doc_id" not in names:
            raise InputError(f"{part.path} has no doc_id/text columns; is it a filter stage part?")
        rel = f"minhash/{part_name(part.index)}"
        schema = minhash_schema(keeps_shingles(d)).with_metadata({"num_perm": str(d.num_perm), "seed": str(d.seed)})
        out = PartWriter(workdir / rel, schema, scratch_dir(workdir) / "tmp")
        spill = PartSpill(workdir, part.index, d) if part.backend == "disk" else None
        counts, row = {"docs_in": 0, "empty": 0, "short_docs": 0}, part.offset
        for batch in iter_batches(Path(part.path), columns=["doc_id", "text"], batch_size=2048):
            columns, batch_counts, shingles = signature_batch(d, batch.column("text").to_pylist())
            out.add(pa.table({"doc_id": batch.column("doc_id"), **columns}, schema=schema))
            if spill is not None:
                present = np.array([len(s) > 0 for s in shingles], dtype=bool)
                signatures = signature_matrix(columns["signature"].drop_null().to_pylist(), d.num_perm)
                keys = (row + np.flatnonzero(present)).astype(np.uint64)
                spill.add(keys, columns["text_hash"].to_numpy()[present], signatures, shingles, present)
            row += batch.num_rows
            counts["docs_in"] += batch.num_rows
            for key, value in batch_counts.items():
                counts[key] += value
        out.close()
        if spill is not None:
            spill.close()
        meta = {
            "index": part.index,
            "source": part.path,
            "offset": part.offset,
            "rows": counts["docs_in"],
            "minhash": rel,
            "backend": part.backend,
        }
        return PartResult(part=part.path, outputs=[rel], counts=counts, seconds=time.time() - started, meta=meta)

    # ------------------------------------------------------------------ finish: clusters across all parts

    def finish(
        self, workdir: Path, results: list[PartResult], cfg: PipelineConfig, map_parts: MapParts | None = None
    ) -> StageStats:
        d, timings = cfg.dedup, {}
        map_parts = map_parts or process_map(1)
        results = sorted(results, key=lambda r: r.meta["index"])
        parts = [
            OutputPart(r.meta["index"], r.meta["source"], r.meta["minhash"], r.meta["offset"], r.meta["rows"])
            for r in results
        ]
        total = parts[-1].offset + parts[-1].rows if parts else 0
        backend = results[0].meta["backend"] if results else resolve_backend(d, 0)
        scratch = scratch_dir(workdir)
        try:
            started = time.time()
            if backend == "disk":
                starts = [p.offset for p in parts] + [total]
                removed, roots, counts = disk_clusters(workdir, starts, d, map_parts, timings)
            else:
                removed, roots, counts = memory_clusters(workdir, parts, d, timings)
            timings["cluster_s"] = round(time.time() - started, 3)
            started = time.time()
            removed_tables(workdir, scratch, parts, removed, roots)
            written = map_parts(partial(write_part, workdir=workdir, scratch=scratch), parts)
            timings["write_s"] = round(time.time() - started, 3)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

        drops = {"exact_duplicate": 0, "near_duplicate": 0, "empty": 0}
        for result in written:
            for key, value in result.counts.items():
                drops[key] += value
        non_empty = total - drops["empty"]
        roots_of_clusters, sizes = np.unique(roots, return_counts=True)
        extra = {
            "clusters": len(roots_of_clusters),
            "largest_cluster": int(sizes.max()) + 1 if len(sizes) else int(non_empty > 0),
            "docs_in_clusters": len(removed) + len(roots_of_clusters),
            "short_docs": sum(r.counts.get("short_docs", 0) for r in results),
            "ngram": d.ngram,
            "bands": d.bands,
            "rows": d.rows,
            "num_perm": d.num_perm,
            "lsh_threshold": round(lsh_threshold(d.bands, d.rows), 4),
            "verify": d.verify,
            "verify_threshold": d.verify_threshold,
            "backend": backend,
            "keep_rule": KEEP_RULE,
            **counts,
            "signature_s": round(sum(r.seconds for r in results), 3),
            **timings,
        }
        errors = [e for r in results for e in r.errors]
        return StageStats(
            stage=self.name,
            docs_in=total,
            docs_out=total - sum(drops.values()),
            drops=drops,
            extra=extra,
            errors=errors,
        )


DEDUP = DedupStage()
