"""Quality report cost as the corpus grows: the filter report's memory stays flat; a pandas read is the peer.

Input: the filter stage's real output on the sample WARCs (../shared/data/warc, demo config: en +
de kept), replicated with fresh doc ids into filter folders of --docs and 10 x --docs documents
(real signals and texts; kept parts and rejects/ in the stage's layout, parts of about 10k
documents, a _stage.json listing them). Each side runs in a fresh subprocess; peak memory is that
process's max RSS:
  ours   pipeline.report.filter.filter_report(folder): the columns it needs, record batches,
         bounded tallies, texts of the example rows only
  peer   pandas.read_parquet of every kept and rejected part (what a notebook would do), then the
         per-rule failure counts with the same thresholds (less than the report computes)
Last line: one JSON object, both sides at both sizes and the ratios.

usage: python -m benchmarks.report_scale [--docs 20000] [--warc-dir ../shared/data/warc]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks.harness import BENCH_DIR, ROOT, SHARED, print_result, run_json

WORK = BENCH_DIR / "report_scale"
PART_DOCS = 10_000

MEASURE = {
    "ours": "from pipeline.report.filter import filter_report; r = filter_report(FOLDER); n = r['documents']",
    "peer": (
        "import pandas as pd; from pipeline.outcomes import outcome_files;"
        "from pipeline.report.filter import filter_config;"
        "from pipeline.stage import read_manifest; from pipeline.report.thresholds import thresholds;"
        "df = pd.concat([pd.read_parquet(p) for p, _ in outcome_files(FOLDER, 'filter')], ignore_index=True);"
        "rules = thresholds(filter_config(read_manifest(FOLDER)));"
        "fails = {t.rule: int(t.fails(df[t.signal].to_numpy()).sum()) for t in rules};"
        "n = len(df)"
    ),
}


def base_filter(warc_dir: Path) -> Path:
    """extract + filter of the sample WARCs with the demo config, once (kept under .bench/)."""
    base = WORK / "base"
    if not (base / "filter" / "_stage.json").is_file():
        from crawl2gpt.config import RunConfig
        from crawl2gpt.runner import run_pipeline
        from pipeline.stage import process_map

        cfg = RunConfig.load(ROOT / "configs" / "demo.yaml", [])
        warcs = sorted(str(p) for p in warc_dir.glob("CC-SAMPLE-A-*.warc.gz"))
        run_pipeline(warcs, base, cfg, until="filter", map_parts=process_map(2))
    return base / "filter"


def replicate(base: Path, docs: int) -> Path:
    """A filter folder of about `docs` documents: the base's kept and rejected rows, repeated
    with doc ids suffixed by the copy number."""
    from pipeline.outcomes import outcome_files
    from pipeline.stage import read_manifest

    folder = WORK / f"filter-{docs}"
    if (folder / "_stage.json").is_file():
        return folder
    tables = {
        dropped: pa.concat_tables([pq.read_table(p) for p, d in outcome_files(base, "filter") if d == dropped])
        for dropped in (False, True)
    }
    per_copy = sum(t.num_rows for t in tables.values())
    copies = max(1, round(docs / per_copy))
    files = {}
    for dropped, table in tables.items():
        sub = "rejects/" if dropped else ""
        (folder / sub).mkdir(parents=True, exist_ok=True)
        copies_per_part = max(1, PART_DOCS // max(1, table.num_rows))
        for start in range(0, copies, copies_per_part):
            name = f"{sub}part-{start // copies_per_part:05d}.parquet"
            with pq.ParquetWriter(folder / name, table.schema, compression="zstd") as writer:
                for copy in range(start, min(copies, start + copies_per_part)):
                    ids = pc.binary_join_element_wise(table.column("doc_id"), pa.scalar(f"{copy}"), "-")
                    writer.write_table(table.set_column(table.schema.get_field_index("doc_id"), "doc_id", ids))
            files[name] = {}
    manifest = {**read_manifest(base), "files": files}
    (folder / "_stage.json").write_text(json.dumps(manifest))
    return folder


def measure(side: str, folder: Path) -> dict:
    code = (
        f"import json, resource, time; FOLDER = {str(folder)!r}; t = time.time(); {MEASURE[side]}; "
        "print(json.dumps({'docs': n, 'seconds': round(time.time() - t, 2), "
        "'peak_mib': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))"
    )
    return run_json([sys.executable, "-c", code])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--warc-dir", type=Path, default=SHARED / "warc")
    args = parser.parse_args()
    base = base_filter(args.warc_dir)
    rows = {}
    for docs in (args.docs, 10 * args.docs):
        folder = replicate(base, docs)
        mib = sum(p.stat().st_size for p in folder.rglob("*.parquet")) / 2**20
        for side in ("ours", "peer"):
            started = time.time()
            rows[f"{side}_{docs}"] = {**measure(side, folder), "parquet_mib": round(mib, 1)}
            print(side, docs, rows[f"{side}_{docs}"], f"({time.time() - started:.0f} s with start-up)", flush=True)
    small, large = args.docs, 10 * args.docs
    print_result(
        {
            **rows,
            "ours_peak_growth_10x_docs": round(
                rows[f"ours_{large}"]["peak_mib"] / rows[f"ours_{small}"]["peak_mib"], 2
            ),
            "peer_peak_growth_10x_docs": round(
                rows[f"peer_{large}"]["peak_mib"] / rows[f"peer_{small}"]["peak_mib"], 2
            ),
            "peak_ours_over_peer_at_10x": round(
                rows[f"ours_{large}"]["peak_mib"] / rows[f"peer_{large}"]["peak_mib"], 3
            ),
            "seconds_ours_over_peer_at_10x": round(
                rows[f"ours_{large}"]["seconds"] / rows[f"peer_{large}"]["seconds"], 3
            ),
        }
    )


if __name__ == "__main__":
    main()
