"""Dedup throughput and memory at scale, side by side with datatrove's MinHash dedup.

Documents: real text (paragraphs of the sample WARCs' pages, trafilatura) recombined into
distinct documents of 3-8 paragraphs, 20% of them followed somewhere later by a perturbed copy
(1-3% word edits or a banner/footer). The same Parquet parts go through
  ours:      the dedup stage (run_stage, workers=2, default config: 14x8, exact verification)
  datatrove: MinhashDedupSignature -> Buckets -> Cluster -> Filter (0.10.1, same 14x8 5-grams,
             tasks/workers = 2), run in its own venv (.bench/datatrove)
Each runs in a fresh subprocess; wall time and peak RSS (the largest process) are measured.
Index bytes per document: RSS growth of an in-memory BandIndex holding n signatures.

usage: python benchmarks/dedup_scale.py [--docs 30000 100000] [--warcs W ...] [--datatrove-python PATH]
"""
from __future__ import annotations

import argparse
import heapq
import json
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / ".." / "shared" / "data"
DEFAULT_WARCS = [SHARED / "warc" / f"CC-SAMPLE-A-0000{i}.warc.gz" for i in range(3)]
WORK = ROOT / ".bench" / "dedup_scale"


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


# ------------------------------------------------------------------ corpus


def make_corpus(warcs: list[Path], n_docs: int, parts: int, out: Path, seed: int = 3) -> dict:
    sys.path.insert(0, str(ROOT))
    from benchmarks.dedup_quality import add_boilerplate, edit_words, page_texts
    from crawl2gpt.config import RunConfig
    from pipeline.documents import DOCUMENT_SCHEMA, write_parquet
    from pipeline.stage import PartResult, StageStats, run_stage
    import pyarrow as pa

    cache = WORK / "pages.json"
    if not cache.is_file():
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(page_texts(warcs)))
    paragraphs = [p for t in json.loads(cache.read_text()) for p in t.split("\n") if len(p.split()) >= 12]
    rng = random.Random(seed)
    docs: list[str] = []
    pending: list[tuple[int, int, str]] = []  # heap of (position to insert at, tie, copy)
    while len(docs) < n_docs:
        text = "\n".join(rng.sample(paragraphs, rng.randint(3, 8)))
        docs.append(text)
        if rng.random() < 0.2:
            copy = edit_words(text, rng.choice([0.01, 0.02, 0.03]), rng) if rng.random() < 0.5 else add_boilerplate(text, 2, rng)
            heapq.heappush(pending, (len(docs) + rng.randint(1, max(1, min(5000, n_docs // 10))), len(docs), copy))
        while pending and pending[0][0] <= len(docs):
            docs.append(heapq.heappop(pending)[2])
    docs = docs[:n_docs]

    class WriteParts:  # writes the corpus as a finished filter-shaped stage folder
        name = "filter"

        def plan(self, inputs, cfg):
            return list(range(parts))

        def run_part(self, part, workdir, cfg):
            chunk = docs[part::parts]
            rows = {f.name: [""] * len(chunk) for f in DOCUMENT_SCHEMA if f.name != "offset"}
            rows.update(doc_id=[f"d{part}-{i}" for i in range(len(chunk))], text=chunk, offset=[0] * len(chunk))
            write_parquet(pa.table(rows, schema=DOCUMENT_SCHEMA), workdir / f"part-{part:05d}.parquet")
            return PartResult(part=str(part), outputs=[f"part-{part:05d}.parquet"])

        def finish(self, workdir, results, cfg):
            return StageStats(stage="filter", docs_in=len(docs), docs_out=len(docs))

    run_stage(WriteParts(), [], out, RunConfig(), map_parts=lambda fn, ps: [fn(p) for p in ps], force=True)
    words = sum(len(d.split()) for d in docs)
    return {"docs": len(docs), "mean_words": round(words / len(docs), 1)}


# ------------------------------------------------------------------ the two runs (each in its own process)


def run_ours(folder: Path, out: Path) -> dict:
    sys.path.insert(0, str(ROOT))
    from crawl2gpt.config import RunConfig
    from pipeline.dedup.stage import DEDUP
    from pipeline.stage import run_stage

    started = time.time()
    stats = run_stage(DEDUP, [str(folder)], out, RunConfig().with_overrides(["workers=2"]), force=True)
    return {"seconds": time.time() - started, "docs_out": stats.docs_out, "drops": stats.drops,
            "extra": {k: stats.extra[k] for k in ("signature_s", "index_s", "bands_s", "verify_s", "write_s") if k in stats.extra}}


def run_datatrove(folder: Path, out: Path) -> dict:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster,
                                                   MinhashDedupFilter, MinhashDedupSignature)
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter

    files = len(list(folder.glob("part-*.parquet")))
    cfg = MinhashConfig()  # FineWeb: 5-grams, 14 buckets x 8 hashes
    reader = lambda: ParquetReader(str(folder), glob_pattern="part-*.parquet", id_key="doc_id")  # noqa: E731
    logs = out / "logs"
    started = time.time()
    steps = [
        ([reader(), MinhashDedupSignature(output_folder=str(out / "sigs"), config=cfg)], files, "sig"),
        ([MinhashDedupBuckets(input_folder=str(out / "sigs"), output_folder=str(out / "buckets"), config=cfg)],
         cfg.num_buckets, "buckets"),
        ([MinhashDedupCluster(input_folder=str(out / "buckets"), output_folder=str(out / "remove_ids"), config=cfg)], 1, "cluster"),
        ([reader(), MinhashDedupFilter(input_folder=str(out / "remove_ids")),
          ParquetWriter(str(out / "deduped"))], files, "filter"),
    ]
    timings = {}
    for pipeline, tasks, name in steps:
        t0 = time.time()
        LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=2, logging_dir=str(logs / name),
                              skip_completed=False).run()
        timings[name] = round(time.time() - t0, 2)
    removed = sum(int(p.stat().st_size // 4) for p in (out / "remove_ids").glob("*.remove"))  # uint32 doc ids
    return {"seconds": time.time() - started, "removed": removed, "steps_s": timings}


def index_bytes_per_doc(folder: Path, n: int) -> float:
    """RSS growth of an in-memory LSH index (datasketch dict storage) of n stored signatures."""
    sys.path.insert(0, str(ROOT))
    import pyarrow.parquet as pq
    from crawl2gpt.config import RunConfig
    from pipeline.dedup.lsh import BandIndex

    sigs = [s for p in sorted(folder.glob("minhash/part-*.parquet"))
            for s in pq.read_table(p, columns=["signature"]).column("signature").to_pylist() if s]
    sigs = sigs[:n]
    before = _rss_mb()
    index = BandIndex(RunConfig().dedup)
    index.insert(list(range(len(sigs))), sigs)
    return round((_rss_mb() - before) * 2**20 / len(sigs), 1)


def measured(argv: list[str], python: str = sys.executable) -> dict:
    """Run this script in a child process; its JSON line plus the peak RSS of it and its children."""
    proc = subprocess.run([python, __file__, *argv], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode:
        raise RuntimeError(f"{argv[0]} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["peak_rss_mb"] = round(max(result.pop("self_rss_mb"), result.pop("children_rss_mb")), 1)
    return result


def _child(kind: str, folder: Path, out: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
    result = run_ours(folder, out) if kind == "--ours" else run_datatrove(folder, out)
    result["self_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["children_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps(result))


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] in ("--ours", "--datatrove"):
        return _child(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, nargs="+", default=[30_000, 100_000])
    parser.add_argument("--parts", type=int, default=4)
    parser.add_argument("--warcs", type=Path, nargs="+", default=DEFAULT_WARCS)
    parser.add_argument("--datatrove-python", default=str(ROOT / ".bench" / "datatrove" / "bin" / "python"))
    parser.add_argument("--no-datatrove", action="store_true",
                        help="ours only (for sizes where the peer would not finish in the time at hand); no ratio")
    args = parser.parse_args()

    rows = []
    for n in args.docs:
        folder = WORK / f"corpus-{n}"
        corpus = make_corpus(args.warcs, n, args.parts, folder)
        ours = measured(["--ours", str(folder), str(WORK / f"ours-{n}")])
        row = {"docs": n, **corpus, "ours_docs_per_s": round(n / ours["seconds"]), "ours_peak_rss_mb": ours["peak_rss_mb"],
               "ours_removed": n - ours["docs_out"], "ours_phases_s": ours["extra"]}
        if not args.no_datatrove:
            theirs = measured(["--datatrove", str(folder), str(WORK / f"datatrove-{n}")], python=args.datatrove_python)
            row.update({"datatrove_docs_per_s": round(n / theirs["seconds"]), "datatrove_peak_rss_mb": theirs["peak_rss_mb"],
                        "datatrove_removed": theirs["removed"], "datatrove_steps_s": theirs["steps_s"],
                        "speed_ratio_ours_vs_datatrove": round(theirs["seconds"] / ours["seconds"], 2)})
        row.update({"index_bytes_per_doc": index_bytes_per_doc(WORK / f"ours-{n}", n),
               "minhash_bytes_per_doc_on_disk": round(sum(p.stat().st_size for p in (WORK / f"ours-{n}" / "minhash").glob("*.parquet")) / n, 1)})
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    print(json.dumps({"benchmark": "dedup_scale", "machine": "2-core CPU sandbox, no GPU", "runs": rows}))


if __name__ == "__main__":
    main()
