"""`crawl2gpt quality train`: a fastText classifier of positive vs negative documents, for the
`quality_model` filter family (pipeline/filter/quality_model.py).

Both sides are read with pipeline/document_texts.py (text, JSONL, Parquet, folders: a filter
stage's kept parts vs its `rejects/`, a reference corpus vs a crawl). A fixed share of each side
is held out by a stable hash of the text (pipeline/hashing.py), so the split does not depend on
file order and a document stays on its side when more data comes; the model is trained on the
rest and its held-out precision and recall are what the command prints. The model that is
saved is the one measured (it is not retrained on the held-out documents).

Training is deterministic: one thread and a fixed seed (fastText's hogwild threads race), a fresh
process (see `_fit`), and documents in a fixed pseudo-random order (fastText reads its file in order, and SGD over all
positives then all negatives would forget the first class). Same inputs, same options: the same
model bytes (tests/test_quality_model.py).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipeline.atomic import atomic_write_text, temp_path
from pipeline.document_texts import read_texts
from pipeline.errors import ConfigError, InputError
from pipeline.filter.quality_model import LABELS, NEGATIVE, POSITIVE, check_model_file, fasttext_line, load, score
from pipeline.hashing import stable_fraction

MIN_DOCS = 2  # per side: fewer cannot be split into something to learn and something to measure


@dataclass(frozen=True)
class TrainOptions:
    held_out: float = 0.2  # share of each side kept aside to measure precision and recall
    threshold: float = 0.5  # where precision and recall are measured (filter.quality_model.threshold's default)
    seed: int = 0
    epoch: int = 10  # fastText's default is 5; a few thousand documents need more passes
    lr: float = 0.1  # fastText's supervised default
    word_ngrams: int = 2  # word bigrams (fastText's text-classification setting, Joulin et al. 2017)
    dim: int = 32  # a binary decision needs few dimensions; the file is (words + bucket) x dim floats
    bucket: int = 2**18  # hashed n-gram rows: 2**18 x 32 floats = 32 MiB (fastText's 2M x 100 = 800 MiB)
    min_count: int = 1


def split(texts: Sequence[str], held_out: float) -> tuple[list[str], list[str]]:
    """(train, held out) by a stable hash of each text."""
    train, test = [], []
    for text in texts:
        (test if stable_fraction(text) < held_out else train).append(text)
    return train, test


def train_quality_model(
    positive: Sequence[str | Path],
    negative: Sequence[str | Path],
    out: str | Path,
    options: TrainOptions = TrainOptions(),
) -> dict[str, Any]:
    """Train on `positive` vs `negative` documents, save the model to `out` (atomically) and its
    report to `out`.json; returns the report (held-out precision, recall and counts)."""
    sides = {POSITIVE: read_texts(positive), NEGATIVE: read_texts(negative)}
    for label, texts in sides.items():
        if len(texts) < MIN_DOCS:
            name = label.removeprefix("__label__")
            raise InputError(f"--{name} holds {len(texts)} non-empty documents; give at least {MIN_DOCS}")
    splits = {label: split(texts, options.held_out) for label, texts in sides.items()}
    examples = [(label, text) for label, (train, _) in splits.items() for text in train]
    out = Path(out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(out)
    try:
        _fit(examples, options, tmp)
        check_model_file(tmp)  # what the filter stage will check, before the file takes the name
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    report = {
        "model": str(out),
        "positive": [str(p) for p in positive],
        "negative": [str(p) for p in negative],
        "documents": {label.removeprefix("__label__"): len(texts) for label, texts in sides.items()},
        "trained_on": {label.removeprefix("__label__"): len(train) for label, (train, _) in splits.items()},
        "held_out": evaluate(load(out), {label: test for label, (_, test) in splits.items()}, options.threshold),
        "options": asdict(options),
    }
    atomic_write_text(out.with_name(out.name + ".json"), json.dumps(report, indent=2) + "\n")
    return report


def _fit(examples: list[tuple[str, str]], options: TrainOptions, out: Path) -> None:
    """Train and save to `out`, in a fresh process: fastText's training reads memory it did not
    set (from the fourth model of a process on, the same inputs give other weights, and at times
    NaN: measured with fasttext-numpy2-wheel 0.9.3), so only a process's first model is the one its
    seed promises."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    ordered = sorted(examples, key=lambda e: (stable_fraction(f"{options.seed}:{e[1]}"), e[0]))
    with tempfile.TemporaryDirectory(prefix="quality-train-") as tmp:
        data = Path(tmp) / "train.txt"
        with open(data, "w", encoding="utf-8") as fh:
            fh.writelines(f"{label} {fasttext_line(text)}\n" for label, text in ordered)
        with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
            error = pool.submit(_train_and_save, str(data), str(out), options).result()
    if error:  # "Encountered NaN.": SGD diverged
        raise ConfigError(f"fastText training failed ({error}); lower --lr (now {options.lr:g}) or change --seed")


def _train_and_save(data: str, out: str, options: TrainOptions) -> str | None:
    """The child process's work: the error's text, or None once the model is saved."""
    import fasttext

    try:
        model = fasttext.train_supervised(
            input=data,
            thread=1,
            seed=options.seed,
            epoch=options.epoch,
            lr=options.lr,
            wordNgrams=options.word_ngrams,
            dim=options.dim,
            bucket=options.bucket,
            minCount=options.min_count,
            loss="softmax",
            verbose=0,
        )
    except RuntimeError as err:
        return str(err)
    model.save_model(out)
    return None


def evaluate(model, held_out: dict[str, list[str]], threshold: float) -> dict[str, Any]:
    """Precision and recall of "positive" (score >= threshold) on the held-out documents."""
    tp = fp = fn = tn = 0
    for label, texts in held_out.items():
        for text in texts:
            predicted = score(model, text) >= threshold
            actual = label == POSITIVE
            tp, fp, fn, tn = (
                tp + (predicted and actual),
                fp + (predicted and not actual),
                fn + (actual and not predicted),
                tn + (not predicted and not actual),
            )
    total = tp + fp + fn + tn
    return {
        "threshold": threshold,
        "positive": tp + fn,
        "negative": fp + tn,
        "precision": round(tp / (tp + fp), 4) if tp + fp else None,
        "recall": round(tp / (tp + fn), 4) if tp + fn else None,
        "accuracy": round((tp + tn) / total, 4) if total else None,
        "confusion": {"true_positive": tp, "false_positive": fp, "false_negative": fn, "true_negative": tn},
    }


def report_text(report: dict[str, Any]) -> str:
    """What the command prints."""
    h = report["held_out"]

    def show(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    lines = [
        f"quality model: {report['model']} ({', '.join(label.removeprefix('__label__') for label in LABELS)})",
        f"documents: {report['documents']['positive']} positive, {report['documents']['negative']} negative; "
        f"trained on {report['trained_on']['positive']} + {report['trained_on']['negative']}",
        f"held out: {h['positive']} positive, {h['negative']} negative; at score >= {h['threshold']:g}: "
        f"precision {show(h['precision'])}, recall {show(h['recall'])}, accuracy {show(h['accuracy'])}",
    ]
    if not h["positive"] or not h["negative"]:
        lines.append("  (a side has no held-out document: give more documents to measure the model)")
    return "\n".join(lines)
