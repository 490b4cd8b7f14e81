"""Language-ID accuracy and speed: our detector (fastText lid.176 + lingua when unsure) beside
fastText alone, on `lang<TAB>sentence` lines (default: ../shared/data/langid-sentences.tsv,
Leipzig sentences as bundled by lingua-py). A language counts only where lid.176 can name it.
Speed is sentences per CPU-second of this process (one core; a busy machine skews it less than
wall time), in steady state: models loaded once (load time reported apart), then a first pass
(reported too), then the timed pass. Also: English precision/recall on
the shared sample's extracted documents against each page's own <html lang>.

usage: python benchmarks/langid_quality.py [TSV] [--docs-only]
"""
from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pipeline.config import LanguageConfig  # noqa: E402
from pipeline.filter import language  # noqa: E402


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


def timed(rows, cfg) -> tuple[list, float]:
    start = time.process_time()
    predictions = language.detect([text for _, text in rows], cfg)
    return predictions, time.process_time() - start


def english_on_documents(cfg) -> dict:
    from filter_docs import load_docs

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


def main(argv: list[str]) -> None:
    args = [a for a in argv if not a.startswith("--")]
    tsv = Path(args[0]) if args else ROOT / "../shared/data/langid-sentences.tsv"
    ours, alone = LanguageConfig(), LanguageConfig(second_opinion=False)
    result: dict = {}
    if "--docs-only" not in argv:
        if not tsv.is_file():
            raise SystemExit(f"{tsv} not found: pass a lang<TAB>sentence file")
        nameable = language.fasttext_labels()
        rows = [r for r in read_tsv(tsv) if r[0] in nameable]
        start = time.process_time()
        language.detect(["warm up"], ours)
        language.lingua_detector(None).compute_language_confidence_values("warm up")  # loads every model
        load_s = time.process_time() - start
        base_pred, base_s = timed(rows, alone)
        _, first_s = timed(rows, ours)  # first pass also builds lingua detectors per candidate set
        our_pred, our_s = timed(rows, ours)  # steady state, as over a long run
        base, mine = score(rows, base_pred), score(rows, our_pred)
        print("per-language accuracy (ours):", json.dumps(mine["per_language"]), file=sys.stderr)
        result = {
            "macro_accuracy": mine["macro_accuracy"],
            "micro_accuracy": mine["micro_accuracy"],
            "languages": len(mine["per_language"]),
            "sentences_per_s": round(len(rows) / our_s),
            "sentences_per_s_first_pass": round(len(rows) / first_s),
            "fasttext_alone": {"macro_accuracy": base["macro_accuracy"], "micro_accuracy": base["micro_accuracy"],
                               "sentences_per_s": round(len(rows) / base_s)},
            "speed_ratio_vs_fasttext": round(base_s / our_s, 3),
            "model_load_cpu_s": round(load_s, 2),
            "sentences": len(rows),
            "skipped_languages": sorted({lang for lang, _ in read_tsv(tsv)} - {lang for lang, _ in rows}),
            "timing": "CPU seconds of this process (one core)",
        }
    docs = english_on_documents(ours)
    print("documents where detector and <html lang> differ:", json.dumps(docs.pop("disagreements")), file=sys.stderr)
    result["documents"] = docs
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
