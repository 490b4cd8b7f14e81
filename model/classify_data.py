"""Labelled data for classification fine-tuning (model/classify.py), one of:
  TSV    `label<TAB>text` per line; a first line `lang<TAB>sentence` / `label<TAB>text` is a header
         (../shared/data/langid-sentences.tsv has this shape)
  JSONL  {"text": ..., "label": ...} per line
  a finished `filter` stage folder: kept documents are labelled `keep`, documents in rejects/
         `drop` (the quality filters' own decision); `label_column=language` labels by fastText language
Bad lines are counted (missing_fields, empty_text) and skipped; `select` keeps the configured labels
and caps each class.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from model.config import ClassifyConfig
from pipeline.errors import InputError


def read_labelled(source: str | Path, label_column: str = "keep_drop") -> tuple[list[str], list[str], Counter]:
    """(texts, labels, counts of skipped lines by reason) from a TSV, a JSONL or a filter stage folder."""
    source = Path(source)
    if source.is_dir():
        return _from_filter_stage(source, label_column)
    if not source.is_file():
        raise InputError(
            f"labelled data {source} not found; give a TSV (label<TAB>text), a JSONL or a filter stage folder"
        )
    texts, labels, counts = [], [], Counter()
    jsonl = source.suffix in (".jsonl", ".json")
    with open(source, encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            label, text = _parse_line(line, jsonl)
            if n == 0 and not jsonl and label in ("lang", "label"):
                continue  # header row
            _add(texts, labels, counts, label, text)
    return texts, labels, counts


def _parse_line(line: str, jsonl: bool) -> tuple[Any, Any]:
    if not jsonl:
        label, sep, text = line.partition("\t")
        return (label.strip(), text) if sep else (None, None)
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return None, None
    return (obj.get("label"), obj.get("text")) if isinstance(obj, dict) else (None, None)


def _add(texts: list, labels: list, counts: Counter, label: Any, text: Any) -> None:
    if label is None or text is None or not str(label).strip():
        counts["missing_fields"] += 1
    elif not isinstance(text, str) or not text.strip():
        counts["empty_text"] += 1
    else:
        texts.append(text)
        labels.append(str(label).strip())


def _from_filter_stage(folder: Path, label_column: str) -> tuple[list[str], list[str], Counter]:
    """Kept parts -> 'keep', rejects/ parts -> 'drop' (or the value of label_column, e.g. language)."""
    from pipeline.documents import iter_batches
    from pipeline.stage import read_manifest, stage_parts

    stage = read_manifest(folder).get("stage")
    if stage != "filter":
        raise InputError(f"{folder} is a {stage!r} stage folder; keep/drop labels come from a finished filter folder")
    texts, labels, counts = [], [], Counter()
    sources = [(p, "keep") for p in stage_parts(folder)] + [
        (p, "drop") for p in sorted((folder / "rejects").glob("*.parquet"))
    ]
    for part, decision in sources:
        columns = ["text"] + ([label_column] if label_column != "keep_drop" else [])
        for batch in iter_batches(part, columns=columns):
            column = (
                batch.column(label_column).to_pylist() if label_column != "keep_drop" else [decision] * batch.num_rows
            )
            for text, label in zip(batch.column("text").to_pylist(), column):
                _add(texts, labels, counts, label, text)
    return texts, labels, counts


def select(texts: list[str], labels: list[str], cc: ClassifyConfig, counts: Counter) -> tuple[list[str], list[str]]:
    """Keep the configured labels and at most max_examples_per_class of each (first in file order)."""
    per_class: Counter = Counter()
    out_t, out_l = [], []
    for text, label in zip(texts, labels):
        if cc.labels and label not in cc.labels:
            counts["other_label"] += 1
            continue
        if cc.max_examples_per_class and per_class[label] >= cc.max_examples_per_class:
            counts["over_class_cap"] += 1
            continue
        per_class[label] += 1
        out_t.append(text)
        out_l.append(label)
    return out_t, out_l
