"""Language-ID accuracy and speed: our detector (fastText lid.176 + lingua when unsure) beside
fastText alone, on `lang<TAB>sentence` lines (default: ../shared/data/langid-sentences.tsv,
Leipzig sentences as bundled by lingua-py). A language counts only where lid.176 can name it.
Speed is sentences per CPU-second of this process (one core; a busy machine skews it less than
wall time), in steady state: models loaded once (load time reported apart), then a first pass
(reported too), then the timed pass. Also: English precision/recall on
the shared sample's extracted documents against each page's own <html lang>.

usage: python -m benchmarks.langid_quality [TSV] [--docs-only]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from benchmarks.filter_docs import load_docs
from benchmarks.harness import SENTENCES, print_result, timed
from pipeline.filter import language
from pipeline.filter.config import LanguageConfig


def read_tsv(path: Path) -> list[tuple[str, str]]:
    rows = [line.rstrip("\n").split("\t", 1) for line in path.open(encoding="utf-8")]
    return [(lang, text) for lang, text in rows[1:] if lang != "lang"]


def score(rows, predictions) -> dict:
    per = defaultdict(lambda: [0, 0])
    for (gold, _), (label, _) in zip(rows, predictions):
        per[gold][0] += gold == label
        per[gold][1] += 1
    acc = {lang: right / n for lang, (right, n) in per.items()}
    return {
        "macro_accuracy": round(sum(acc.values()) / len(acc), 4),
        "micro_accuracy": round(sum(r for r, _ in per.values()) / sum(n for _, n in per.values()), 4),
        "per_language": dict(sorted(acc.items(), key=lambda kv: kv[1])),
    }


def detect_timed(rows, cfg) -> tuple[list, float]:
    """Predictions for every row and the CPU seconds they took."""
    with timed() as clock:
        predictions = language.detect([text for _, text in rows], cfg)
    return predictions, clock.cpu_s


def english_on_documents(cfg) -> dict:
    docs = [d for d in load_docs() if d["html_lang"] and d["text"]]
    got = language.detect([d["text"] for d in docs], cfg)
    for d in docs:  # lid.176 and ISO 639-1: Norwegian pages declare "no", mostly Bokmål
        d["html_lang"] = language.ALIASES.get(d["html_lang"], d["html_lang"])
    gold = [d["html_lang"] == "en" for d in docs]
    said = [label == "en" and s >= 0.65 for label, s in got]
    tp = sum(g and s for g, s in zip(gold, said))
    disagree = [(d["url"], d["html_lang"], label) for d, (label, _) in zip(docs, got) if d["html_lang"] != label]
    return {
        "documents": len(docs),
        "en_precision": round(tp / max(sum(said), 1), 4),
        "en_recall": round(tp / max(sum(gold), 1), 4),
        "agreement_with_html_lang": round(1 - len(disagree) / len(docs), 4),
        "disagreements": disagree,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tsv", nargs="?", type=Path, default=SENTENCES, help="lang<TAB>sentence lines with a header")
    parser.add_argument(
        "--docs-only", action="store_true", help="only English precision/recall on the sample's documents"
    )
    args = parser.parse_args()
    tsv = args.tsv
    ours, alone = LanguageConfig(), LanguageConfig(second_opinion=False)
    result: dict = {}
    if not args.docs_only:
        if not tsv.is_file():
            raise SystemExit(f"{tsv} not found: pass a lang<TAB>sentence file")
        nameable = language.fasttext_labels()
        rows = [r for r in read_tsv(tsv) if r[0] in nameable]
        with timed() as load:
            language.detect(["warm up"], ours)
            language.lingua_detector(None).compute_language_confidence_values("warm up")  # loads every model
        base_pred, base_s = detect_timed(rows, alone)
        _, first_s = detect_timed(rows, ours)  # first pass also builds lingua detectors per candidate set
        our_pred, our_s = detect_timed(rows, ours)  # steady state, as over a long run
        base, mine = score(rows, base_pred), score(rows, our_pred)
        print("per-language accuracy (ours):", json.dumps(mine["per_language"]), file=sys.stderr)
        result = {
            "macro_accuracy": mine["macro_accuracy"],
            "micro_accuracy": mine["micro_accuracy"],
            "languages": len(mine["per_language"]),
            "sentences_per_s": round(len(rows) / our_s),
            "sentences_per_s_first_pass": round(len(rows) / first_s),
            "fasttext_alone": {
                "macro_accuracy": base["macro_accuracy"],
                "micro_accuracy": base["micro_accuracy"],
                "sentences_per_s": round(len(rows) / base_s),
            },
            "speed_ratio_vs_fasttext": round(base_s / our_s, 3),
            "model_load_cpu_s": round(load.cpu_s, 2),
            "sentences": len(rows),
            "skipped_languages": sorted({lang for lang, _ in read_tsv(tsv)} - {lang for lang, _ in rows}),
            "timing": "CPU seconds of this process (one core)",
        }
    docs = english_on_documents(ours)
    print("documents where detector and <html lang> differ:", json.dumps(docs.pop("disagreements")), file=sys.stderr)
    result["documents"] = docs
    print_result(result)


if __name__ == "__main__":
    main()
