"""Extraction quality: snippet precision / recall / F1, cross-validated over sites.

Scoring (as trafilatura's own evaluation, tests/comparison.py): per page, each `with` snippet
found in the output is a true positive (missing: false negative), each `without` snippet found
is a false positive (absent: true negative). Whitespace is collapsed on both sides first.
Pages marked `truncated` are left out: their payload was cut by the crawler.

Cross-validation: the pages are split into FOLDS fixed folds by site (all pages of one
registered domain in one fold; fold = sha1(domain) mod 5, so the split never changes), and
precision, recall and F1 are computed per fold; the report gives their mean and spread. A rule
or setting is kept only when it wins in at least 4 of the 5 folds (`--study`, which also tunes
each rule's parameters on 4 folds and scores the 5th: benchmarks/extraction_study.py).

Compares side by side, on the same pages: plain trafilatura defaults (`trafilatura.extract(html,
url=url)`, the peer) and our extraction (pipeline.extract.main_text + pipeline.extract.normalize, default config).

    python benchmarks/extraction_quality.py [WARC_DIR] [--truth FILE] [--study]

Prints one JSON object as the last line.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import ExtractConfig  # noqa: E402
from pipeline.extract.main_text import decode_html, extract_main_text  # noqa: E402
from pipeline.extract.normalize import normalize_text  # noqa: E402
from pipeline.extract.warc import iter_warc_records, parse_http_response  # noqa: E402

DEFAULT_DIR = ROOT / "../shared/data/warc"
FOLDS = 5
MIN_WINS = 4  # a change is kept when it wins in at least 4 of the 5 folds
# Second-level labels under which a country code's registrations sit (example.co.uk, example.com.br).
COUNTRY_SECOND_LEVEL = {"ac", "co", "com", "edu", "gob", "go", "gov", "ne", "net", "nic", "or", "org"}
_WS = re.compile(r"\s+")


def squash(text: str) -> str:
    return _WS.sub(" ", text).strip()


def site_of(url: str) -> str:
    """The registered domain of a URL (news.example.co.uk -> example.co.uk): pages of one site share it.

    Blog hosts (wordpress.com) count as one site: their pages share one template.
    """
    labels = (urlsplit(url).hostname or "").lower().rstrip(".").split(".")
    country_registry = len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in COUNTRY_SECOND_LEVEL
    return ".".join(labels[-3:] if country_registry else labels[-2:])


def fold_of(url: str) -> int:
    """Fixed fold of a page: a hash of its site, never of the page or of a random draw."""
    return int(hashlib.sha1(site_of(url).encode()).hexdigest(), 16) % FOLDS


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


def page_counts(text: str, row: dict) -> tuple[int, int, int, int]:
    """(tp, fn, fp, tn) of one page's output."""
    text = squash(text)
    found = sum(squash(s) in text for s in row["with"])
    leaked = sum(squash(s) in text for s in row["without"])
    return found, len(row["with"]) - found, leaked, len(row["without"]) - leaked


def prf(tp: int, fn: int, fp: int, tn: int) -> dict[str, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "accuracy": (tp + tn) / max(tp + tn + fp + fn, 1)}


def pooled(outputs: dict[str, str], truth: list[dict], folds: set[int] | None = None) -> dict[str, float]:
    """Precision / recall / F1 over the pages of the given folds (all pages when None)."""
    total = [0, 0, 0, 0]
    for row in truth:
        if folds is None or fold_of(row["url"]) in folds:
            for i, n in enumerate(page_counts(outputs.get(row["url"], ""), row)):
                total[i] += n
    return prf(*total)


def fold_scores(outputs: dict[str, str], truth: list[dict]) -> list[dict[str, float]]:
    return [pooled(outputs, truth, {k}) for k in range(FOLDS)]


def cv_summary(outputs: dict[str, str], truth: list[dict]) -> dict:
    """Pooled scores over all pages, and the mean and spread of the per-fold scores."""
    per_fold = fold_scores(outputs, truth)
    mean = {m: statistics.mean(f[m] for f in per_fold) for m in ("precision", "recall", "f1")}
    return {
        **{m: round(v, 4) for m, v in pooled(outputs, truth).items()},
        "cv": {"f1_mean": round(mean["f1"], 4), "f1_sd": round(statistics.stdev(f["f1"] for f in per_fold), 4),
               "precision_mean": round(mean["precision"], 4), "recall_mean": round(mean["recall"], 4),
               "f1_folds": [round(f["f1"], 4) for f in per_fold]},
    }


def wins(base: dict[str, str], changed: dict[str, str], truth: list[dict]) -> tuple[int, int]:
    """(folds where `changed` has the higher F1, folds where it has the lower)."""
    a = [f["f1"] for f in fold_scores(base, truth)]
    b = [f["f1"] for f in fold_scores(changed, truth)]
    return sum(y > x + 1e-12 for x, y in zip(a, b)), sum(y < x - 1e-12 for x, y in zip(a, b))


def run_ours(pages: dict, cfg: ExtractConfig) -> tuple[dict[str, str], float]:
    """Our extraction exactly as the extract stage runs it; CPU seconds of this process."""
    started, outputs = time.process_time(), {}
    for url, (html, _) in pages.items():
        extracted = extract_main_text(html, url, cfg)
        outputs[url] = normalize_text(extracted.text, cfg) if extracted else ""
    return outputs, time.process_time() - started


def run_trafilatura_defaults(pages: dict) -> tuple[dict[str, str], float]:
    import trafilatura

    started, outputs = time.process_time(), {}
    for url, (html, _) in pages.items():
        outputs[url] = trafilatura.extract(html, url=url) or ""
    return outputs, time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("warc_dir", nargs="?", default=str(DEFAULT_DIR))
    parser.add_argument("--truth", default=None, help="truth JSONL (default: WARC_DIR/CC-SAMPLE-A-extraction-truth.jsonl)")
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
        "folds": {"by": "sha1(registered domain) mod 5", "pages": [sum(fold_of(r["url"]) == k for r in truth) for k in range(FOLDS)]},
        "ours": {**cv_summary(ours, truth), "cpu_seconds": round(ours_s, 2)},
        "trafilatura_defaults": {**cv_summary(peer, truth), "cpu_seconds": round(peer_s, 2)},
    }
    result["f1_ratio"] = round(result["ours"]["cv"]["f1_mean"] / max(result["trafilatura_defaults"]["cv"]["f1_mean"], 1e-9), 4)
    result["wins_vs_trafilatura"] = wins(peer, ours, truth)
    if args.study:
        from extraction_study import run_study

        result["study"] = run_study(pages, truth, ours)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
