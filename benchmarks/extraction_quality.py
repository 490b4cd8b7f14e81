"""Extraction quality: snippet precision / recall / F1, cross-validated over sites.

Scoring and folds: benchmarks/extraction_scoring.py (trafilatura's own snippet scoring; folds by
site). Pages marked `truncated` are left out: their payload was cut by the crawler. Precision,
recall and F1 are computed per fold; the report gives their mean and spread. A rule
or setting is kept only when it wins in at least 4 of the 5 folds (`--study`, which also tunes
each rule's parameters on 4 folds and scores the 5th: benchmarks/extraction_study.py).

Compares side by side, on the same pages: plain trafilatura defaults (`trafilatura.extract(html,
url=url)`, the peer) and our extraction (pipeline.extract.main_text + pipeline.extract.normalize, default config).

`--engines` adds the other extract engines (issue 26): resiliparse's main content, scored as it
is (it has no parameters), and the fast engine, scored out of fold (benchmarks/train_line_filter.py:
each fold's pages by a model trained on the other four); and every side's CPU per page, the sides
taking turns twice in this process, the faster run counting.

    python -m benchmarks.extraction_quality [WARC_DIR] [--truth FILE] [--study] [--engines]

Prints one JSON object as the last line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.extraction_pages import DEFAULT_DIR, load_pages, load_truth, run_ours, run_trafilatura_defaults
from benchmarks.extraction_scoring import FOLDS, cv_summary, fold_of, wins
from benchmarks.harness import print_result
from pipeline.extract.config import ExtractConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("warc_dir", nargs="?", default=str(DEFAULT_DIR))
    parser.add_argument(
        "--truth", default=None, help="truth JSONL (default: WARC_DIR/CC-SAMPLE-A-extraction-truth.jsonl)"
    )
    parser.add_argument("--study", action="store_true", help="also measure every candidate rule and setting under CV")
    parser.add_argument(
        "--engines", action="store_true", help="also the resiliparse and fast engines, with CPU per page"
    )
    args = parser.parse_args()
    warc_dir = Path(args.warc_dir)
    truth = load_truth(Path(args.truth) if args.truth else warc_dir / "CC-SAMPLE-A-extraction-truth.jsonl")
    pages = load_pages(warc_dir, truth)

    peer, peer_s = run_trafilatura_defaults(pages)
    ours, ours_s = run_ours(pages, ExtractConfig())
    result = {
        "benchmark": "extraction_quality",
        "pages": len(truth),
        "pages_found": len(pages),
        "folds": {
            "by": "sha1(registered domain) mod 5",
            "pages": [sum(fold_of(r["url"]) == k for r in truth) for k in range(FOLDS)],
        },
        "ours": {**cv_summary(ours, truth), "cpu_seconds": round(ours_s, 2)},
        "trafilatura_defaults": {**cv_summary(peer, truth), "cpu_seconds": round(peer_s, 2)},
    }
    result["f1_ratio"] = round(
        result["ours"]["cv"]["f1_mean"] / max(result["trafilatura_defaults"]["cv"]["f1_mean"], 1e-9), 4
    )
    result["wins_vs_trafilatura"] = wins(peer, ours, truth)
    if args.study:
        from benchmarks.extraction_study import run_study

        result["study"] = run_study(pages, truth, ours)
    if args.engines:
        result["engines"] = engine_figures(pages, truth, ours)
    print_result(result)


def engine_figures(pages: dict, truth: list[dict], ours: dict[str, str]) -> dict:
    """Per engine: CV precision / recall / F1 and CPU ms per page; trafilatura.extract beside them."""
    from benchmarks.train_line_filter import cross_validated, labelled_pages

    sides = {
        "trafilatura_defaults": run_trafilatura_defaults,
        "trafilatura": lambda p: run_ours(p, ExtractConfig()),
        "resiliparse": lambda p: run_ours(p, ExtractConfig(engine="resiliparse")),
        "fast": lambda p: run_ours(p, ExtractConfig(engine="fast")),
    }
    seconds: dict[str, float] = {}
    outputs: dict[str, dict[str, str]] = {}
    for _ in range(2):  # taking turns; the faster run of each counts
        for name, run in sides.items():
            outputs[name], cpu = run(pages)
            seconds[name] = min(seconds.get(name, cpu), cpu)
    fast_cv, thresholds = cross_validated(labelled_pages(pages, truth, ours), truth)
    scored = {
        "trafilatura_defaults": outputs["trafilatura_defaults"],
        "trafilatura": outputs["trafilatura"],
        "resiliparse": outputs["resiliparse"],
        "fast": fast_cv,
    }
    peer = seconds["trafilatura_defaults"]
    return {
        name: {
            **cv_summary(text, truth),
            "ms_per_page": round(1000 * seconds[name] / len(pages), 2),
            "cpu_share_of_trafilatura": round(seconds[name] / peer, 3),
            **({"thresholds_per_fold": thresholds} if name == "fast" else {}),
        }
        for name, text in scored.items()
    }


if __name__ == "__main__":
    main()
