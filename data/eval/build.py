"""Rebuild web-main-text.jsonl: the default evaluation text of `crawl2gpt ablate` (see README.md).

    .venv/bin/python data/eval/build.py ../shared/data/warc

Extracts CC-SAMPLE-A-00000.warc.gz with the extract stage as configured by default, and keeps a
page when its text holds every `with` snippet of the extraction ground truth and none of its
`without` boilerplate, is not truncated, and is German or English (fastText lid.176 >= 0.65: the
languages the demo keeps); pages are taken in the order of a hash of their URL while they fit in
MAX_BYTES (a small text keeps an evaluation at every eval_interval cheap on a CPU).
Deterministic: same inputs, same file.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

from crawl2gpt.config import RunConfig
from pipeline.extract.stage import EXTRACT
from pipeline.filter.language import detect
from pipeline.hashing import stable_fraction
from pipeline.stage import run_stage, stage_parts

WARC = "CC-SAMPLE-A-00000.warc.gz"  # not the bundled sample (00002), nor the WARCs docs/ablation.md trains on
TRUTH = "CC-SAMPLE-A-extraction-truth.jsonl"
LANGUAGES = {"en", "de"}
MIN_SCORE = 0.65
MAX_BYTES = 100_000
OUT = Path(__file__).with_name("web-main-text.jsonl")


def main(warc_dir: str) -> None:
    truth = {row["url"]: row for row in map(json.loads, open(Path(warc_dir) / TRUTH)) if row["warc"] == WARC}
    cfg = RunConfig().with_overrides(["workers=1", "filter.language.languages=[en, de]"])
    with tempfile.TemporaryDirectory() as tmp:
        run_stage(EXTRACT, [str(Path(warc_dir) / WARC)], Path(tmp) / "extract", cfg)
        rows = [
            r for p in stage_parts(Path(tmp) / "extract") for r in pq.read_table(p, columns=["url", "text"]).to_pylist()
        ]
    kept = []
    size = 0
    for row in sorted(rows, key=lambda r: stable_fraction(r["url"])):
        page = truth.get(row["url"])
        text = row["text"] or ""
        if page is None or page["truncated"]:
            continue
        if not all(s in text for s in page["with"]) or any(s in text for s in page["without"]):
            continue
        language, score = detect([text])[0]
        if language not in LANGUAGES or score < MIN_SCORE:
            continue
        if size + len(text.encode()) > MAX_BYTES:
            continue  # a smaller page may still fit
        size += len(text.encode())
        kept.append({"url": row["url"], "language": language, "text": text})
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept))
    chars = sum(len(r["text"]) for r in kept)
    by_language = {lang: sum(r["language"] == lang for r in kept) for lang in sorted(LANGUAGES)}
    print(
        f"{OUT}: {len(kept)} clean pages of {len(truth)} ({by_language}), {chars} characters, "
        f"{sum(len(r['text'].encode()) for r in kept)} UTF-8 bytes"
    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/warc")
