"""Ingest throughput: our extract stage vs datatrove (WarcReader + Trafilatura), same files, same processes.

datatrove runs in its own virtual environment (it pins trafilatura 1.11), made on first use by
benchmarks/datatrove_env.py (.bench/datatrove).

    python -m benchmarks.ingest_throughput [WARC ...] [--workers N] [--repeat R]

Reports documents out per second per core for both, and the ratio (ours / datatrove); the
best of R runs each, alternating, so a noisy neighbour hurts both sides alike.
Prints one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from benchmarks.datatrove_env import ensure_datatrove
from benchmarks.harness import add_warcs_argument, existing_files, print_result, run_json, timed

DATATROVE_SCRIPT = r"""
import json, sys, time
from pathlib import Path
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import WarcReader
from datatrove.pipeline.extractors import Trafilatura

folder, workers, tasks, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])

def count(data, rank=0, world_size=1):
    n = 0
    for doc in data:
        n += 1
        yield doc
    (out / f"count-{rank}.txt").write_text(str(n))

if __name__ == "__main__":
    started = time.perf_counter()
    LocalPipelineExecutor(
        pipeline=[WarcReader(folder, glob_pattern="*.warc.gz"), Trafilatura(), count],
        tasks=tasks, workers=workers, logging_dir=str(out / "logs"),
    ).run()
    seconds = time.perf_counter() - started
    docs = sum(int(p.read_text()) for p in out.glob("count-*.txt"))
    print(json.dumps({"docs_out": docs, "seconds": seconds}))
"""


def run_datatrove(python: Path, warcs: list[Path], workers: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder, out = Path(tmp) / "in", Path(tmp) / "out"
        folder.mkdir()
        out.mkdir()
        for i, warc in enumerate(warcs):
            (folder / f"{i:05d}-{warc.name}").symlink_to(warc.resolve())
        script = Path(tmp) / "dt.py"
        script.write_text(DATATROVE_SCRIPT)
        return run_json([str(python), str(script), str(folder), str(workers), str(len(warcs)), str(out)], cwd=Path(tmp))


def run_ours(warcs: list[Path], workers: int) -> dict:
    from crawl2gpt.config import RunConfig
    from pipeline.extract.stage import EXTRACT
    from pipeline.stage import run_stage

    with tempfile.TemporaryDirectory() as tmp, timed() as clock:
        # every page through trafilatura, as datatrove's extractor does: the language pre-screen is
        # measured against a whole curation chain in benchmarks/curation_speed.py
        cfg = RunConfig(workers=workers).with_overrides(["extract.language_prescreen=false"])
        stats = run_stage(EXTRACT, [str(w) for w in warcs], Path(tmp) / "extract", cfg, force=True)
    return {"docs_out": stats.docs_out, "docs_in": stats.docs_in, "seconds": clock.wall_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_warcs_argument(parser)
    parser.add_argument("--workers", type=int, default=0, help="processes for both (default: min(files, cores))")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    warcs = existing_files(args.warcs)
    workers = args.workers or min(len(warcs), os.cpu_count() or 1)
    python = ensure_datatrove()

    ours, theirs = [], []
    for _ in range(args.repeat):
        ours.append(run_ours(warcs, workers))
        theirs.append(run_datatrove(python, warcs, workers))
        print("ours", ours[-1], "datatrove", theirs[-1], file=sys.stderr)
    best_ours = min(ours, key=lambda r: r["seconds"])
    best_theirs = min(theirs, key=lambda r: r["seconds"])
    ours_rate = best_ours["docs_out"] / best_ours["seconds"] / workers
    theirs_rate = best_theirs["docs_out"] / best_theirs["seconds"] / workers
    print_result(
        {
            "benchmark": "ingest_throughput",
            "files": len(warcs),
            "workers": workers,
            "ours": {
                **{k: round(v, 2) if isinstance(v, float) else v for k, v in best_ours.items()},
                "docs_per_s_per_core": round(ours_rate, 2),
            },
            "datatrove": {
                **{k: round(v, 2) if isinstance(v, float) else v for k, v in best_theirs.items()},
                "docs_per_s_per_core": round(theirs_rate, 2),
                "version": "0.10.1 (trafilatura 1.11)",
            },
            "ratio": round(ours_rate / theirs_rate, 3) if theirs_rate else None,
            "machine": "2-core CPU sandbox, no GPU",
        }
    )


if __name__ == "__main__":
    main()
