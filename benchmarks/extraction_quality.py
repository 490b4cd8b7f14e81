"""Extraction quality: snippet precision / recall / F1 of our extraction against the truth file.

Scoring (as trafilatura's own evaluation, tests/comparison.py): per page, each `with` snippet
found in the output is a true positive (missing: false negative), each `without` snippet found
is a false positive (absent: true negative). Whitespace is collapsed on both sides first.
Pages marked `truncated` are left out: their payload was cut by the crawler.

Compares side by side, on the same pages: plain trafilatura defaults (the peer), and our
pipeline (pipeline.extract + pipeline.normalize) under the chosen config and a few variants.

    python benchmarks/extraction_quality.py [WARC_DIR] [--truth FILE] [--variants]

Prints one JSON object as the last line.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import ExtractConfig  # noqa: E402
from pipeline.extract import decode_html, extract_main_text  # noqa: E402
from pipeline.normalize import normalize_text  # noqa: E402
from pipeline.warc import iter_warc_records, parse_http_response  # noqa: E402

DEFAULT_DIR = ROOT / "../shared/data/warc"
_WS = re.compile(r"\s+")


def squash(text: str) -> str:
    return _WS.sub(" ", text).strip()


def load_pages(warc_dir: Path, truth: list[dict]) -> dict[str, tuple[str, str | None]]:
    """url -> (decoded html, content type) for every page of the truth file."""
    wanted = {row["url"] for row in truth}
    pages = {}
    for warc in sorted({row["warc"] for row in truth}):
        with open(warc_dir / warc, "rb") as fh:
            for record in iter_warc_records(fh, warc, {}, []):
                url = record.headers.get("warc-target-uri", "")
                if record.rec_type != "response" or url not in wanted:
                    continue
                http = parse_http_response(record.read_block())
                if http and http.status == 200:
                    ctype = http.headers.get("content-type")
                    pages[url] = (decode_html(http.body, ctype)[0], ctype)
    return pages


def score(outputs: dict[str, str], truth: list[dict]) -> dict[str, float]:
    tp = fn = fp = tn = 0
    for row in truth:
        text = squash(outputs.get(row["url"], ""))
        for snippet in row["with"]:
            if squash(snippet) in text:
                tp += 1
            else:
                fn += 1
        for snippet in row["without"]:
            if squash(snippet) in text:
                fp += 1
            else:
                tn += 1
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "accuracy": round((tp + tn) / max(tp + tn + fp + fn, 1), 4)}


def run_ours(pages: dict, cfg: ExtractConfig) -> tuple[dict[str, str], float]:
    started, outputs = time.perf_counter(), {}
    for url, (html, _) in pages.items():
        extracted = extract_main_text(html, url, cfg)
        outputs[url] = normalize_text(extracted.text, cfg) if extracted else ""
    return outputs, time.perf_counter() - started


def run_trafilatura_defaults(pages: dict) -> tuple[dict[str, str], float]:
    import trafilatura

    started, outputs = time.perf_counter(), {}
    for url, (html, _) in pages.items():
        outputs[url] = trafilatura.extract(html, url=url) or ""
    return outputs, time.perf_counter() - started


VARIANTS = {
    "precision_only": {"fallback_on_empty": False, "remove_boilerplate_lines": False},
    "precision_fast": {"fast": True},
    "balanced": {"favor_precision": False},
    "recall": {"favor_precision": False, "favor_recall": True},
    "no_tables": {"include_tables": False},
    "deduplicate": {"deduplicate": True},
    "no_line_cleanup": {"remove_boilerplate_lines": False},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("warc_dir", nargs="?", default=str(DEFAULT_DIR))
    parser.add_argument("--truth", default=None, help="truth JSONL (default: WARC_DIR/CC-SAMPLE-A-extraction-truth.jsonl)")
    parser.add_argument("--variants", action="store_true", help="also score the config variants")
    args = parser.parse_args()
    warc_dir = Path(args.warc_dir)
    truth_path = Path(args.truth) if args.truth else warc_dir / "CC-SAMPLE-A-extraction-truth.jsonl"
    truth = [json.loads(line) for line in truth_path.read_text().splitlines() if line.strip()]
    truth = [row for row in truth if not row.get("truncated")]
    pages = load_pages(warc_dir, truth)

    peer, peer_s = run_trafilatura_defaults(pages)
    ours, ours_s = run_ours(pages, ExtractConfig())
    result = {
        "benchmark": "extraction_quality",
        "pages": len(truth),
        "pages_found": len(pages),
        "ours": {**score(ours, truth), "seconds": round(ours_s, 2)},
        "trafilatura_defaults": {**score(peer, truth), "seconds": round(peer_s, 2)},
    }
    result["f1_ratio"] = round(result["ours"]["f1"] / max(result["trafilatura_defaults"]["f1"], 1e-9), 4)
    if args.variants:
        result["variants"] = {}
        for name, overrides in VARIANTS.items():
            outputs, seconds = run_ours(pages, ExtractConfig(**overrides))
            result["variants"][name] = {**score(outputs, truth), "seconds": round(seconds, 2)}
            print(name, result["variants"][name], file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
