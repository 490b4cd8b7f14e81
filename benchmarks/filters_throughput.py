"""Quality-filter speed and agreement: our rule families beside datatrove 0.10.1's
GopherRepetitionFilter, GopherQualityFilter, C4QualityFilter and FineWebQualityFilter, on the
same documents (the shared sample WARCs' pages, extracted by our extract code; see filter_docs.py).

Each family runs alone on every document's original text (as each datatrove filter would), with
the English settings datatrove uses. Speed is documents per CPU-second of the process doing the
work (one core, so a busy machine does not skew it). Agreement: how often the keep/drop decision
differs; the differing documents are printed to stderr with both reasons.

datatrove runs in its own venv at .bench/datatrove (benchmarks/datatrove_env.py: built on first use).

usage: python -m benchmarks.filters_throughput [WARC ...] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from benchmarks.datatrove_env import ensure_datatrove
from benchmarks.filter_docs import load_docs
from benchmarks.harness import print_result, run_json, timed
from pipeline.filter import c4, fineweb, gopher_quality, gopher_repetition
from pipeline.filter.config import FilterConfig

PEERS = {  # our family -> datatrove class
    "gopher_repetition": "datatrove.pipeline.filters.gopher_repetition_filter:GopherRepetitionFilter",
    "gopher_quality": "datatrove.pipeline.filters.gopher_quality_filter:GopherQualityFilter",
    "c4": "datatrove.pipeline.filters.c4_filters:C4QualityFilter",
    "fineweb": "datatrove.pipeline.filters.fineweb_quality_filter:FineWebQualityFilter",
}
DATATROVE_RUNNER = r"""
import importlib, json, sys, time
from datatrove.data import Document
texts = [json.loads(line)["text"] for line in open(sys.argv[1], encoding="utf-8")]
peers, repeat = json.loads(sys.argv[2]), int(sys.argv[3])
out = {}
for family, target in peers.items():
    module, cls = target.split(":")
    flt = getattr(importlib.import_module(module), cls)()
    flt.filter(Document(text="Warm up the tokenizer. " * 20, id="w"))
    start = time.process_time()
    for _ in range(repeat):
        decisions = []
        for i, text in enumerate(texts):
            verdict = flt.filter(Document(text=text, id=str(i)))
            decisions.append(None if verdict is True else (verdict[1] if isinstance(verdict, tuple) else "drop"))
    out[family] = {"cpu_s": (time.process_time() - start) / repeat, "decisions": decisions}
# all four on each document in turn: datatrove's word-split cache (lru_cache on the text) then hits
filters = [getattr(importlib.import_module(t.split(":")[0]), t.split(":")[1])() for t in peers.values()]
start = time.process_time()
for _ in range(repeat):
    for i, text in enumerate(texts):
        for flt in filters:
            flt.filter(Document(text=text, id=str(i)))
out["all_four"] = {"cpu_s": (time.process_time() - start) / repeat}
print(json.dumps(out))
"""


def ours(texts: list[str], repeat: int) -> dict:
    cfg = FilterConfig()
    families = {
        "gopher_repetition": lambda t: gopher_repetition.check(
            gopher_repetition.signals(t, cfg.gopher_repetition), cfg.gopher_repetition
        ),
        "gopher_quality": lambda t: gopher_quality.check(
            gopher_quality.signals(t, cfg.gopher_quality, "en"), cfg.gopher_quality
        ),
        "c4": lambda t: c4.check(c4.signals(t, cfg.c4), cfg.c4),
        "fineweb": lambda t: fineweb.check(fineweb.signals(t, cfg.fineweb), cfg.fineweb),
    }
    out = {}
    for family, decide in families.items():
        with timed() as clock:
            for _ in range(repeat):
                decisions = [decide(t) for t in texts]
        out[family] = {"cpu_s": clock.cpu_s / repeat, "decisions": decisions}
    with timed() as clock:
        for _ in range(repeat):
            for t in texts:
                for decide in families.values():
                    decide(t)
    out["all_four"] = {"cpu_s": clock.cpu_s / repeat}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "warcs", nargs="*", type=Path, help="WARC files (default: the shared sample, cached in .bench/)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="passes over the documents; CPU seconds per pass")
    args = parser.parse_args()
    texts = [d["text"] for d in load_docs(args.warcs or None) if d["text"]]
    python = ensure_datatrove()
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", encoding="utf-8") as fh:
        fh.write("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts))
        fh.flush()
        theirs = run_json([str(python), "-c", DATATROVE_RUNNER, fh.name, json.dumps(PEERS), str(args.repeat)])
    mine = ours(texts, args.repeat)
    result = {"documents": len(texts), "timing": "CPU seconds of one process (one core)", "filters": {}}
    for family in PEERS:
        a, b = mine[family], theirs[family]
        differ = [i for i, (x, y) in enumerate(zip(a["decisions"], b["decisions"])) if (x is None) != (y is None)]
        for i in differ:
            print(
                f"{family}: doc {i} ours={a['decisions'][i]} datatrove={b['decisions'][i]} :: {texts[i][:80]!r}",
                file=sys.stderr,
            )
        result["filters"][family] = {
            "ours_docs_per_s": round(len(texts) / a["cpu_s"], 1),
            "datatrove_docs_per_s": round(len(texts) / b["cpu_s"], 1),
            "speedup": round(b["cpu_s"] / a["cpu_s"], 2),
            "ours_ms_per_doc": round(1000 * a["cpu_s"] / len(texts), 3),
            "datatrove_ms_per_doc": round(1000 * b["cpu_s"] / len(texts), 3),
            "ours_dropped": sum(d is not None for d in a["decisions"]),
            "datatrove_dropped": sum(d is not None for d in b["decisions"]),
            "decisions_differ": len(differ),
            "differ_rate": round(len(differ) / len(texts), 4),
        }
    a, b = mine["all_four"]["cpu_s"], theirs["all_four"]["cpu_s"]
    result["all_four"] = {
        "ours_docs_per_s": round(len(texts) / a, 1),
        "datatrove_docs_per_s": round(len(texts) / b, 1),
        "speedup": round(b / a, 2),
        "note": "each document through all four filters in turn",
    }
    print_result(result)


if __name__ == "__main__":
    main()
