"""Extraction quality: snippet precision / recall / F1, cross-validated over sites.

Scoring and folds: benchmarks/extraction_scoring.py (trafilatura's own snippet scoring; folds by
site). Pages marked `truncated` are left out: their payload was cut by the crawler. Precision,
recall and F1 are computed per fold; the report gives their mean and spread. A rule
or setting is kept only when it wins in at least 4 of the 5 folds (`--study`, which also tunes
each rule's parameters on 4 folds and scores the 5th: benchmarks/extraction_study.py).

Compares side by side, on the same pages: plain trafilatura defaults (`trafilatura.extract(html,
url=url)`, the peer) and our extraction (pipeline.extract.main_text + pipeline.extract.normalize, default config).

    python -m benchmarks.extraction_quality [WARC_DIR] [--truth FILE] [--study]

Prints one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.extraction_scoring import FOLDS, cv_summary, fold_of, wins
from benchmarks.harness import SHARED, print_result, timed
from pipeline.config import ExtractConfig
from pipeline.extract.http_response import parse_http_response
from pipeline.extract.main_text import decode_html, extract_main_text
from pipeline.extract.normalize import normalize_text
from pipeline.extract.warc import iter_warc_records

DEFAULT_DIR = SHARED / "warc"


def load_truth(path: Path) -> list[dict]:
    truth = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    # Two truth URLs end in a space that the WARC's target URI does not have.
    return [{**row, "url": row["url"].strip()} for row in truth if not row.get("truncated")]


def load_pages(warc_dir: Path, truth: list[dict]) -> dict[str, tuple[str, str | None]]:
    """url -> (decoded html, content type) for every page of the truth file."""
    wanted = {row["url"] for row in truth}
    pages = {}
    for warc in sorted({row["warc"] for row in truth}):
        with open(warc_dir / warc, "rb") as fh:
            for record in iter_warc_records(fh, warc, {}, []):
                url = record.headers.get("warc-target-uri", "").strip()
                if record.rec_type != "response" or url not in wanted:
                    continue
                http = parse_http_response(record.read_block())
                if http and http.status == 200:
                    ctype = http.headers.get("content-type")
                    pages[url] = (decode_html(http.body, ctype)[0], ctype)
    return pages


def run_ours(pages: dict, cfg: ExtractConfig) -> tuple[dict[str, str], float]:
    """Our extraction exactly as the extract stage runs it; CPU seconds of this process."""
    outputs = {}
    with timed() as clock:
        for url, (html, _) in pages.items():
            extracted = extract_main_text(html, url, cfg)
            outputs[url] = normalize_text(extracted.text, cfg) if extracted else ""
    return outputs, clock.cpu_s


def run_trafilatura_defaults(pages: dict) -> tuple[dict[str, str], float]:
    import trafilatura

    outputs = {}
    with timed() as clock:
        for url, (html, _) in pages.items():
            outputs[url] = trafilatura.extract(html, url=url) or ""
    return outputs, clock.cpu_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("warc_dir", nargs="?", default=str(DEFAULT_DIR))
    parser.add_argument(
        "--truth", default=None, help="truth JSONL (default: WARC_DIR/CC-SAMPLE-A-extraction-truth.jsonl)"
    )
    parser.add_argument("--study", action="store_true", help="also measure every candidate rule and setting under CV")
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
    print_result(result)


if __name__ == "__main__":
    main()
