"""The `dedup` stage: exact dedup, then MinHash-LSH near dedup across all parts, one kept per cluster.

  plan      one part per data part of the input `filter` folders, numbered in sorted order
  run_part  (worker) normalized-text hash + MinHash signature of every document ->
            minhash/part-{i:05d}.parquet (doc_id, text_hash, n_shingles, signature)
  finish    exact hashes and LSH bands over ALL parts -> union-find components -> keep one per
            component -> part-{i:05d}.parquet (kept rows, input columns as they were) and
            rejects/part-{i:05d}.parquet (removed rows + cluster_id, kept_doc_id, reason)

Rules, all deterministic (no dependence on worker count or backend):
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
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config import PipelineConfig
from pipeline.dedup.exact import ExactIndex
from pipeline.dedup.lsh import BandIndex, bucket_pairs, lsh_threshold, shingle_jaccard, signature_agreeing
from pipeline.dedup.minhash import lean_minhashes, signature_bytes, signature_matrix
from pipeline.dedup.shingles import normalize_text, shingle_hashes, text_hash
from pipeline.dedup.union_find import UnionFind
from pipeline.documents import iter_batches, write_parquet
from pipeline.errors import ConfigError, InputError
from pipeline.stage import PartResult, StageStats, stage_parts

MINHASH_SCHEMA = pa.schema(
    [("doc_id", pa.string()), ("text_hash", pa.uint64()), ("n_shingles", pa.int32()), ("signature", pa.binary())]
)
REJECT_FIELDS = [("cluster_id", pa.int64()), ("kept_doc_id", pa.string()), ("reason", pa.string())]
KEEP_RULE = "earliest document (lowest part, row) of each cluster"


def minhash_schema(with_shingles: bool) -> pa.Schema:
    return MINHASH_SCHEMA.append(pa.field("shingles", pa.list_(pa.uint32()))) if with_shingles else MINHASH_SCHEMA


def part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def signature_part(ngram: int, num_perm: int, seed: int, texts: list[str | None],
                   keep_shingles: bool) -> tuple[dict[str, pa.Array], dict]:
    """The minhash columns of one batch of texts, and its counts (empty, short_docs)."""
    normalized = [normalize_text(t or "") for t in texts]
    shingles = [shingle_hashes(n, ngram) for n in normalized]
    sketches = iter(lean_minhashes((s for s in shingles if len(s)), num_perm, seed))
    signatures = [signature_bytes(next(sketches)) if len(s) else None for s in shingles]
    counts = {
        "empty": sum(1 for n in normalized if not n),
        "short_docs": sum(1 for n in normalized if n and n.count(" ") + 1 < ngram),
    }
    columns = {
        "text_hash": pa.array([text_hash(n) for n in normalized], pa.uint64()),
        "n_shingles": pa.array([len(s) for s in shingles], pa.int32()),
        "signature": pa.array(signatures, pa.binary()),
    }
    if keep_shingles:  # for exact verification of LSH candidates in finish()
        columns["shingles"] = pa.ListArray.from_arrays(
            pa.array(np.cumsum([0] + [len(x) for x in shingles]), pa.int32()),
            pa.array(np.concatenate(shingles) if shingles else np.empty(0, np.uint32), pa.uint32()),
        )
    return columns, counts


class DedupStage:
    name = "dedup"
    config_sections = ("dedup",)

    def config_slice(self, cfg: PipelineConfig) -> dict:
        # Where the LSH index lives does not change which documents survive, so moving it to
        # Redis must not invalidate a finished dedup stage.
        not_output_relevant = {"backend", "redis_host", "redis_port", "redis_prefix"}
        return {"dedup": cfg.dedup.model_dump(mode="json", exclude=not_output_relevant)}

    def plan(self, inputs: Sequence[str], cfg: PipelineConfig) -> list[tuple[int, str]]:
        if cfg.dedup.bands < 2:
            raise ConfigError(f"dedup.bands={cfg.dedup.bands}: LSH needs at least 2 bands (FineWeb: 14)")
        if cfg.dedup.ngram > 10:
            raise ConfigError(f"dedup.ngram={cfg.dedup.ngram}: shingles of up to 10 words are supported (FineWeb: 5)")
        paths = [path for folder in inputs for path in stage_parts(folder)]
        if not paths:
            raise InputError(f"no data parts in {', '.join(map(str, inputs))}: run the filter stage first")
        return list(enumerate(str(p) for p in paths))

    def run_part(self, part: tuple[int, str], workdir: Path, cfg: PipelineConfig) -> PartResult:
        index, path = part
        started, d = time.time(), cfg.dedup
        names = pq.ParquetFile(path).schema_arrow.names
        if "text" not in names or "doc_id" not in names:
            raise InputError(f"{path} has no doc_id/text columns; is it a filter stage part?")
        tables, counts = [], {"docs_in": 0, "empty": 0, "short_docs": 0}
        for batch in iter_batches(Path(path), columns=["doc_id", "text"], batch_size=2048):
            keep = d.near and d.verify == "exact"
            columns, batch_counts = signature_part(d.ngram, d.num_perm, d.seed, batch.column("text").to_pylist(), keep)
            tables.append(pa.table({"doc_id": batch.column("doc_id"), **columns}, schema=minhash_schema(keep)))
            counts["docs_in"] += batch.num_rows
            for key, value in batch_counts.items():
                counts[key] += value
        table = pa.concat_tables(tables) if tables else minhash_schema(d.near and d.verify == "exact").empty_table()
        rel = f"minhash/{part_name(index)}"
        write_parquet(table.replace_schema_metadata({"num_perm": str(d.num_perm), "seed": str(d.seed)}), workdir / rel)
        meta = {"index": index, "source": path, "rows": table.num_rows, "minhash": rel}
        return PartResult(part=path, outputs=[rel], counts=counts, seconds=time.time() - started, meta=meta)

    # ------------------------------------------------------------------ finish: cluster across all parts

    def finish(self, workdir: Path, results: list[PartResult], cfg: PipelineConfig) -> StageStats:
        d, timings = cfg.dedup, {}
        results = sorted(results, key=lambda r: r.meta["index"])
        offsets = np.cumsum([0] + [r.meta["rows"] for r in results])
        total = int(offsets[-1])
        started = time.time()
        clusters, text_hashes, empty = self._cluster(workdir, results, offsets, cfg, timings)
        roots = clusters.roots()
        timings["cluster_s"] = round(time.time() - started, 3)
        started = time.time()
        drops = self._write_parts(workdir, results, offsets, roots, text_hashes, empty)
        timings["write_s"] = round(time.time() - started, 3)

        sizes = np.bincount(roots[~empty], minlength=total) if total else np.zeros(0, dtype=np.int64)
        extra = {
            "clusters": int(np.count_nonzero(sizes > 1)),
            "largest_cluster": int(sizes.max()) if total else 0,
            "docs_in_clusters": int(sizes[sizes > 1].sum()),
            "short_docs": sum(r.counts.get("short_docs", 0) for r in results),
            "ngram": d.ngram, "bands": d.bands, "rows": d.rows, "num_perm": d.num_perm,
            "lsh_threshold": round(lsh_threshold(d.bands, d.rows), 4),
            "verify": d.verify, "verify_threshold": d.verify_threshold, "backend": d.backend, "keep_rule": KEEP_RULE,
            "signature_s": round(sum(r.seconds for r in results), 3), **timings,
        }
        errors = [e for r in results for e in r.errors]
        return StageStats(stage=self.name, docs_in=total, docs_out=total - sum(drops.values()), drops=drops,
                          extra=extra, errors=errors)

    def _cluster(self, workdir: Path, results: list[PartResult], offsets: np.ndarray, cfg: PipelineConfig,
                 timings: dict) -> tuple[UnionFind, np.ndarray, np.ndarray]:
        """Union exact copies and LSH candidates of all parts; returns (components, hashes, empty mask)."""
        d, total = cfg.dedup, int(offsets[-1])
        clusters = UnionFind(total)
        text_hashes = np.zeros(total, dtype=np.uint64)
        empty = np.zeros(total, dtype=bool)
        exact = ExactIndex()
        index = BandIndex(d) if d.near else None
        scratch = workdir / ".dedup-scratch"  # removed before the manifest lists the folder
        signatures = None
        if d.near and d.verify == "signature":
            scratch.mkdir(exist_ok=True)  # signatures by global index, paged by the OS (4 B x num_perm per doc)
            signatures = np.lib.format.open_memmap(scratch / "sig.npy", mode="w+", dtype="<u4", shape=(total, d.num_perm))
        try:
            started = time.time()
            for result, offset in zip(results, offsets):
                table = pq.read_table(workdir / result.meta["minhash"], columns=["text_hash", "signature"])
                hashes = table.column("text_hash").to_numpy()
                text_hashes[offset : offset + len(hashes)] = hashes
                keys, sigs = [], []
                for row, (h, sig) in enumerate(zip(hashes.tolist(), table.column("signature").to_pylist())):
                    g = int(offset) + row
                    if sig is None:
                        empty[g] = True
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
                timings.update(self._verify_exact(workdir, results, offsets, candidates, clusters, d.verify_threshold))
                timings["verify_s"] = round(time.time() - started, 3)
        finally:
            if index is not None:
                index.close()
            del signatures
            shutil.rmtree(scratch, ignore_errors=True)
        return clusters, text_hashes, empty

    @staticmethod
    def _verify_exact(workdir: Path, results: list[PartResult], offsets: np.ndarray, candidates: set[tuple[int, int]],
                      clusters: UnionFind, threshold: float) -> dict[str, int]:
        """Merge candidate pairs whose stored shingle sets have Jaccard >= threshold."""
        pairs = sorted(candidates)  # deterministic order: lowest pair first
        needed = np.unique(np.array(pairs, dtype=np.int64))
        shingles: dict[int, np.ndarray] = {}
        for result, offset in zip(results, offsets):
            local = needed[(needed >= offset) & (needed < offset + result.meta["rows"])] - offset
            if not len(local):
                continue
            column = pq.read_table(workdir / result.meta["minhash"], columns=["shingles"]).column("shingles")
            lists = column.take(pa.array(local)).combine_chunks()
            flat, bounds = lists.values.to_numpy(), lists.offsets.to_numpy()
            for k, row in enumerate(local.tolist()):
                shingles[int(offset) + row] = flat[bounds[k] : bounds[k + 1]]
        checked = merged = 0
        for a, b in pairs:
            if clusters.find(a) == clusters.find(b):
                continue  # already one component: checking cannot change anything
            checked += 1
            if shingle_jaccard(shingles[a], shingles[b]) >= threshold:
                merged += clusters.union(a, b)
        return {"candidate_pairs": len(pairs), "pairs_checked": checked, "pairs_merged": merged}

    def _write_parts(self, workdir: Path, results: list[PartResult], offsets: np.ndarray, roots: np.ndarray,
                     text_hashes: np.ndarray, empty: np.ndarray) -> dict[str, int]:
        """Stream the input parts once more, splitting each into kept rows and rejects."""
        drops = {"exact_duplicate": 0, "near_duplicate": 0, "empty": 0}
        kept_ids = self._kept_doc_ids(workdir, results, offsets, roots, empty)
        for result, offset in zip(results, offsets):
            table = pq.read_table(result.meta["source"])
            g = np.arange(offset, offset + table.num_rows)
            root = roots[g]
            kept = (root == g) & ~empty[g]
            write_parquet(table.filter(pa.array(kept)), workdir / part_name(result.meta["index"]))
            removed = np.nonzero(~kept)[0]
            if not len(removed):
                continue
            gr, rr = g[removed], root[removed]
            is_empty = empty[gr]
            is_exact = text_hashes[gr] == text_hashes[rr]
            reason = np.where(is_empty, "empty", np.where(is_exact, "exact", "near"))
            drops["empty"] += int(is_empty.sum())
            drops["exact_duplicate"] += int((~is_empty & is_exact).sum())
            drops["near_duplicate"] += int((~is_empty & ~is_exact).sum())
            rejects = table.take(pa.array(removed))
            rejects = rejects.append_column(pa.field(*REJECT_FIELDS[0]), pa.array(np.where(is_empty, -1, rr)))
            rejects = rejects.append_column(pa.field(*REJECT_FIELDS[1]),
                                            pa.array([None if e else kept_ids[r] for e, r in zip(is_empty, rr.tolist())],
                                                     pa.string()))
            rejects = rejects.append_column(pa.field(*REJECT_FIELDS[2]), pa.array(reason.tolist(), pa.string()))
            write_parquet(rejects, workdir / "rejects" / part_name(result.meta["index"]))
        return drops

    @staticmethod
    def _kept_doc_ids(workdir: Path, results: list[PartResult], offsets: np.ndarray, roots: np.ndarray,
                      empty: np.ndarray) -> dict[int, str]:
        """doc_id of every cluster root that has removed members (read from the minhash parts)."""
        g = np.arange(len(roots))
        needed = np.unique(roots[(roots != g) & ~empty])
        ids: dict[int, str] = {}
        for result, offset in zip(results, offsets):
            local = needed[(needed >= offset) & (needed < offset + result.meta["rows"])] - offset
            if len(local):
                column = pq.read_table(workdir / result.meta["minhash"], columns=["doc_id"]).column("doc_id")
                for row, doc_id in zip(local.tolist(), column.take(pa.array(local)).to_pylist()):
                    ids[int(offset) + row] = doc_id
        return ids


DEDUP = DedupStage()
