"""Dedup throughput and memory at scale: the disk and in-memory backends side by side, and datatrove.

Documents: real text (paragraphs of the sample WARCs' pages, trafilatura) recombined into
distinct documents of 3-8 paragraphs, 20% of them followed somewhere later by a perturbed copy
(1-3% word edits or a banner/footer). The generator streams documents into Parquet parts (a
bounded queue of pending copies, no corpus list), so it reaches 10M documents. The same parts go
through
  disk:      the dedup stage, dedup.backend=disk (the default above dedup.disk_above_docs)
  memory:    the dedup stage, dedup.backend=memory (datasketch's in-memory index)
  datatrove: MinhashDedupSignature -> Buckets -> Cluster -> Filter (0.10.1, same 14x8 5-grams,
             tasks/workers = 2), in its own venv (.bench/datatrove)
all with 2 workers, each in a fresh subprocess. Peak memory is the process tree's: the summed RSS
of the child and all its descendants (the stage's worker processes), sampled every 0.2 s; CPU
seconds are summed over the same processes (on a machine shared with other jobs, wall time
depends on their load, CPU time far less).
The disk and memory backends must keep the same document ids (checked part by part).

usage: python -m benchmarks.dedup_scale [--docs 100000] [--backends disk memory] [--no-datatrove]
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import shutil
import sys
import time
from pathlib import Path

from benchmarks.datatrove_env import ensure_datatrove
from benchmarks.harness import BENCH_DIR, SAMPLE_WARCS, print_result
from benchmarks.process_tree import run_measured

WORK = BENCH_DIR / "dedup_scale"
CORPUS_VERSION = "stream-1"  # bump when the generator changes, so cached corpora are rebuilt


# ------------------------------------------------------------------ corpus


def documents(paragraphs: list[str], n_docs: int, seed: int = 3):
    """Yield n_docs texts: fresh recombinations, 20% followed 1..5000 documents later by a perturbed copy."""
    from benchmarks.dedup_quality import add_boilerplate, edit_words

    rng = random.Random(seed)
    pending: list[tuple[int, int, str]] = []  # heap of (position to emit at, tie, copy): at most ~1000 entries
    emitted = 0
    while emitted < n_docs:
        if pending and pending[0][0] <= emitted:
            yield heapq.heappop(pending)[2]
        else:
            text = "\n".join(rng.sample(paragraphs, rng.randint(3, 8)))
            yield text
            if rng.random() < 0.2:
                copy = (
                    edit_words(text, rng.choice([0.01, 0.02, 0.03]), rng)
                    if rng.random() < 0.5
                    else add_boilerplate(text, 2, rng)
                )
                heapq.heappush(pending, (emitted + 1 + rng.randint(1, max(1, min(5000, n_docs // 10))), emitted, copy))
        emitted += 1


def make_corpus(warcs: list[Path], n_docs: int, parts: int, out: Path) -> dict:
    """A finished filter-shaped stage folder of n_docs documents in `parts` parts (document i -> part i % parts)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from benchmarks.dedup_quality import page_texts
    from crawl2gpt.config import RunConfig
    from pipeline.documents import DOCUMENT_SCHEMA
    from pipeline.stage import PartResult, Stage, StageStats, read_manifest, run_stage

    try:
        stats = read_manifest(out)["stats"]
        if stats["extra"].get("corpus") == CORPUS_VERSION and stats["docs_in"] == n_docs:
            return {"docs": n_docs, "mean_words": stats["extra"]["mean_words"], "corpus_s": stats["seconds"]}
    except Exception:
        pass
    cache = WORK / "pages.json"
    if not cache.is_file():
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(page_texts(warcs)))
    paragraphs = [p for t in json.loads(cache.read_text()) for p in t.split("\n") if len(p.split()) >= 12]

    class StreamParts(Stage):  # one "part" task that streams every document to its part's writer
        name, config_sections = "filter", ()

        def plan(self, inputs, cfg):
            return ["all"]

        def run_part(self, _, workdir, cfg):
            writers = [
                pq.ParquetWriter(workdir / f"part-{p:05d}.parquet", DOCUMENT_SCHEMA, compression="zstd")
                for p in range(parts)
            ]
            buffers: list[list[str]] = [[] for _ in range(parts)]
            rows, words = [0] * parts, 0

            def flush(p):
                texts = buffers[p]
                columns = {f.name: [""] * len(texts) for f in DOCUMENT_SCHEMA if f.name != "offset"}
                columns.update(
                    doc_id=[f"d{p}-{rows[p] + i}" for i in range(len(texts))], text=texts, offset=[0] * len(texts)
                )
                writers[p].write_table(pa.table(columns, schema=DOCUMENT_SCHEMA))
                rows[p] += len(texts)
                buffers[p] = []

            for i, text in enumerate(documents(paragraphs, n_docs)):
                words += text.count(" ") + text.count("\n") + 1
                buffers[i % parts].append(text)
                if len(buffers[i % parts]) >= 20_000:
                    flush(i % parts)
            for p in range(parts):
                flush(p)
                writers[p].close()
            return PartResult(
                part="all", outputs=[f"part-{p:05d}.parquet" for p in range(parts)], counts={"words": words}
            )

        def finish(self, workdir, results, cfg):
            mean = round(results[0].counts["words"] / n_docs, 1)
            return StageStats(
                stage="filter", docs_in=n_docs, docs_out=n_docs, extra={"corpus": CORPUS_VERSION, "mean_words": mean}
            )

    stats = run_stage(StreamParts(), [], out, RunConfig(), map_parts=lambda fn, ps: [fn(p) for p in ps], force=True)
    return {"docs": n_docs, "mean_words": stats.extra["mean_words"], "corpus_s": stats.seconds}


# ------------------------------------------------------------------ the runs (each in its own process)


def run_ours(folder: Path, out: Path, backend: str) -> dict:
    from crawl2gpt.config import RunConfig
    from pipeline.dedup.stage import DEDUP
    from pipeline.stage import run_stage

    started = time.time()
    cfg = RunConfig().with_overrides(["workers=2", f"dedup.backend={backend}"])
    stats = run_stage(DEDUP, [str(folder)], out, cfg, force=True)
    phases = ("signature_s", "index_s", "exact_s", "bands_s", "verify_s", "union_s", "cluster_s", "write_s")
    return {
        "seconds": time.time() - started,
        "docs_out": stats.docs_out,
        "drops": stats.drops,
        "extra": {k: stats.extra[k] for k in phases + ("candidate_pairs", "hash_ranges") if k in stats.extra},
    }


def run_datatrove(folder: Path, out: Path) -> dict:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter

    files = len(list(folder.glob("part-*.parquet")))
    cfg = MinhashConfig()  # FineWeb: 5-grams, 14 buckets x 8 hashes

    def reader():  # a fresh reader for each step that reads the documents
        return ParquetReader(str(folder), glob_pattern="part-*.parquet", id_key="doc_id")

    logs = out / "logs"
    started = time.time()
    steps = [
        ([reader(), MinhashDedupSignature(output_folder=str(out / "sigs"), config=cfg)], files, "sig"),
        (
            [MinhashDedupBuckets(input_folder=str(out / "sigs"), output_folder=str(out / "buckets"), config=cfg)],
            cfg.num_buckets,
            "buckets",
        ),
        (
            [MinhashDedupCluster(input_folder=str(out / "buckets"), output_folder=str(out / "remove_ids"), config=cfg)],
            1,
            "cluster",
        ),
        (
            [reader(), MinhashDedupFilter(input_folder=str(out / "remove_ids")), ParquetWriter(str(out / "deduped"))],
            files,
            "filter",
        ),
    ]
    timings = {}
    for pipeline, tasks, name in steps:
        t0 = time.time()
        LocalPipelineExecutor(
            pipeline=pipeline, tasks=tasks, workers=2, logging_dir=str(logs / name), skip_completed=False
        ).run()
        timings[name] = round(time.time() - t0, 2)
    removed = sum(int(p.stat().st_size // 4) for p in (out / "remove_ids").glob("*.remove"))  # uint32 doc ids
    return {"seconds": time.time() - started, "removed": removed, "steps_s": timings}


def measured(argv: list[str], python: str | Path = sys.executable) -> dict:
    """Run this benchmark in a child process; its JSON line plus its process tree's peak memory and CPU."""
    return run_measured("benchmarks.dedup_scale", argv, python)


def same_kept_ids(a: Path, b: Path) -> bool:
    """Do two dedup outputs keep the same documents, part by part and in order?"""
    import pyarrow.parquet as pq

    parts_a, parts_b = sorted(a.glob("part-*.parquet")), sorted(b.glob("part-*.parquet"))
    return [p.name for p in parts_a] == [p.name for p in parts_b] and all(
        pq.read_table(x, columns=["doc_id"])
        .column("doc_id")
        .equals(pq.read_table(y, columns=["doc_id"]).column("doc_id"))
        for x, y in zip(parts_a, parts_b)
    )


def _child(kind: str, folder: Path, out: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
    result = run_datatrove(folder, out) if kind == "datatrove" else run_ours(folder, out, kind)
    print(json.dumps(result))


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        return _child(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, nargs="+", default=[100_000])
    parser.add_argument("--parts", type=int, default=0, help="Parquet parts (0: one per 250k documents, at least 4)")
    parser.add_argument("--backends", nargs="+", default=["disk", "memory"], choices=["disk", "memory"])
    parser.add_argument("--warcs", type=Path, nargs="+", default=SAMPLE_WARCS)
    parser.add_argument("--datatrove-python", default=None, help="default: .bench/datatrove, built on first use")
    parser.add_argument(
        "--no-datatrove",
        action="store_true",
        help="ours only (for sizes where the peer would not finish in the time at hand); no ratio",
    )
    parser.add_argument("--keep-outputs", action="store_true", help="leave the dedup outputs in .bench/dedup_scale")
    args = parser.parse_args()

    rows = []
    for n in args.docs:
        folder = WORK / f"corpus-{n}"
        corpus = make_corpus(args.warcs, n, args.parts or max(4, -(-n // 250_000)), folder)
        row = {"docs": n, **corpus}
        for backend in args.backends:
            result = measured(["--child", backend, str(folder), str(WORK / f"{backend}-{n}")])
            row[backend] = {
                "docs_per_s": round(n / result["seconds"]),
                "seconds": round(result["seconds"], 1),
                "cpu_s": round(result["cpu_s"], 1),
                "docs_per_cpu_s": round(n / result["cpu_s"], 1),
                "peak_tree_mb": result["peak_tree_mb"],
                "peak_at_s": result["peak_at_s"],
                "removed": n - result["docs_out"],
                "drops": result["drops"],
                "phases_s": result["extra"],
            }
            print(json.dumps({backend: row[backend]}), file=sys.stderr)
        if len(args.backends) == 2:
            row["same_kept_ids"] = same_kept_ids(WORK / f"disk-{n}", WORK / f"memory-{n}")
            row["disk_vs_memory_docs_per_s"] = round(row["disk"]["docs_per_s"] / row["memory"]["docs_per_s"], 3)
            row["disk_vs_memory_docs_per_cpu_s"] = round(
                row["disk"]["docs_per_cpu_s"] / row["memory"]["docs_per_cpu_s"], 3
            )
            row["disk_vs_memory_peak"] = round(row["disk"]["peak_tree_mb"] / row["memory"]["peak_tree_mb"], 3)
        if not args.no_datatrove:
            python = args.datatrove_python or ensure_datatrove()
            theirs = measured(["--child", "datatrove", str(folder), str(WORK / f"datatrove-{n}")], python=python)
            row["datatrove"] = {
                "docs_per_s": round(n / theirs["seconds"]),
                "seconds": round(theirs["seconds"], 1),
                "cpu_s": round(theirs["cpu_s"], 1),
                "docs_per_cpu_s": round(n / theirs["cpu_s"], 1),
                "peak_tree_mb": theirs["peak_tree_mb"],
                "removed": theirs["removed"],
                "steps_s": theirs["steps_s"],
            }
            ours = args.backends[0]
            row[f"{ours}_vs_datatrove_docs_per_s"] = round(theirs["seconds"] / row[ours]["seconds"], 2)
            row[f"{ours}_vs_datatrove_docs_per_cpu_s"] = round(theirs["cpu_s"] / row[ours]["cpu_s"], 2)
        if "disk" in args.backends:
            row["minhash_bytes_per_doc_on_disk"] = round(
                sum(p.stat().st_size for p in (WORK / f"disk-{n}" / "minhash").glob("*.parquet")) / n, 1
            )
        if not args.keep_outputs:
            for name in ("disk", "memory", "datatrove"):
                shutil.rmtree(WORK / f"{name}-{n}", ignore_errors=True)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    print_result({"benchmark": "dedup_scale", "machine": "2-core CPU sandbox, 24 GiB, no GPU", "runs": rows})


if __name__ == "__main__":
    main()
