"""How many of the planted duplicate pairs (CC-SAMPLE-A-duplicates.jsonl) the dedup stage merges.

Runs the real stages: extract -> filter -> dedup on the sample WARCs, then checks every planted
pair (a, b URLs): both survived the filters?  same cluster after dedup (one of them in
dedup/rejects with the other as kept doc, or both removed into the same kept doc)?
Side by side: default config vs dedup.verify=none (FineWeb's plain banding); with
--no-language the language filter is off so the mostly non-English planted pairs reach dedup.

usage: python -m benchmarks.dedup_planted [--no-language] [WARC ...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

from benchmarks.harness import SHARED, add_warcs_argument, print_result
from crawl2gpt.config import RunConfig
from crawl2gpt.stages import load_stage
from pipeline.stage import run_stage


def kept_root_by_url(dedup: Path) -> dict[str, str]:
    """url -> doc_id of the document kept for it (itself when kept)."""
    roots = {}
    for part in sorted(dedup.glob("part-*.parquet")):
        for row in pq.read_table(part, columns=["doc_id", "url"]).to_pylist():
            roots[row["url"]] = row["doc_id"]
    for part in sorted((dedup / "rejects").glob("part-*.parquet")):
        for row in pq.read_table(part, columns=["url", "kept_doc_id", "reason"]).to_pylist():
            if row["reason"] != "empty":
                roots[row["url"]] = row["kept_doc_id"]
    return roots


def serial(fn, parts: list) -> list:
    """The stages' parts one after another in this process (no worker pool)."""
    return [fn(p) for p in parts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_warcs_argument(parser)
    parser.add_argument("--pairs", type=Path, default=SHARED / "warc" / "CC-SAMPLE-A-duplicates.jsonl")
    parser.add_argument("--no-language", action="store_true")
    args = parser.parse_args()
    pairs = [json.loads(line) for line in args.pairs.read_text().splitlines() if line.strip()]
    base = ["workers=1"] + (["filter.language.enabled=false"] if args.no_language else [])
    result = {"benchmark": "dedup_planted", "pairs": len(pairs), "language_filter": not args.no_language}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = RunConfig().with_overrides(base)
        run_stage(load_stage("extract"), [str(w) for w in args.warcs], Path(tmp) / "extract", cfg, map_parts=serial)
        run_stage(load_stage("filter"), [str(Path(tmp) / "extract")], Path(tmp) / "filter", cfg, map_parts=serial)
        for label, extra in [("default_exact_verify", []), ("fineweb_verify_none", ["dedup.verify=none"])]:
            stats = run_stage(
                load_stage("dedup"),
                [str(Path(tmp) / "filter")],
                Path(tmp) / label,
                cfg.with_overrides(extra),
                map_parts=serial,
            )
            roots = kept_root_by_url(Path(tmp) / label)
            by_kind: dict[str, dict[str, int]] = {}
            for pair in pairs:
                counts = by_kind.setdefault(pair["kind"], {"planted": 0, "both_reach_dedup": 0, "merged": 0})
                counts["planted"] += 1
                if pair["a"] in roots and pair["b"] in roots:
                    counts["both_reach_dedup"] += 1
                    counts["merged"] += roots[pair["a"]] == roots[pair["b"]]
            result[label] = {
                "by_kind": by_kind,
                "docs_in": stats.docs_in,
                "drops": stats.drops,
                "clusters": stats.extra["clusters"],
            }
    print_result(result)


if __name__ == "__main__":
    main()
