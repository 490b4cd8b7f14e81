"""Train the `fast` engine's line filter (pipeline/extract/line_filter.json) and report its CV F1.

Data: the shared WARCs' pages that have extraction truth (../shared/data/warc/
CC-SAMPLE-A-extraction-truth.jsonl, 297 pages). Each page is rendered by resiliparse with
container markers (pipeline/extract/tag_markers.py): one feature row per non-empty line
(pipeline/extract/page_lines.py).

Labels per line, two sources:
  - the truth's snippets: a line holding part of a `with` snippet is content (1), of a `without`
    snippet boilerplate (0), weighted SNIPPET_WEIGHT (the score counts these);
  - elsewhere, our default extraction (trafilatura + our rules, CV F1 0.940) as a teacher: a line
    is content when its text (bullets, soft hyphens and spacing ignored) is in the teacher's, or
    when TEACHER_SHARE of its word pairs are (the teacher splits and joins lines differently).
    Weight 1. No snippet of a page outside the training folds is ever read for training.

Model: standardized features, one ReLU layer of HIDDEN units, a logit; full-batch Adam in numpy
from a fixed seed, so a run gives the same weights bit for bit. Quality is measured with the
5 site-grouped folds of benchmarks/extraction_scoring.py: for each fold, a model trained on the
other four (its threshold chosen by an inner cross-validation over those four, never on the
fold) extracts the fold's pages, and snippet precision / recall / F1 are scored per fold. The
shipped model is then trained on all pages with the threshold the five folds chose most (of a
tie, the one nearest 0.5).

    python -m benchmarks.train_line_filter [--write]   # --write: replace pipeline/extract/line_filter.json

Prints one JSON object as the last line.
"""

from __future__ import annotations

import os

# Before numpy loads: on a shared 2-core machine OpenBLAS's threads made training ~20x slower in
# CPU time (and the run is bit-for-bit reproducible only with a fixed summation order).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np

from benchmarks.extraction_pages import DEFAULT_DIR, load_pages, load_truth, run_ours
from benchmarks.extraction_scoring import FOLDS, cv_summary, fold_of, squash
from benchmarks.harness import print_result, timed
from pipeline.extract.config import ExtractConfig
from pipeline.extract.line_filter import MODEL_PATH, LineModel, render
from pipeline.extract.normalize import normalize_text
from pipeline.extract.page_lines import FEATURES

SNIPPET_WEIGHT = 20.0
TEACHER_SHARE = 0.7
HIDDEN = 32
EPOCHS = 300
LEARNING_RATE = 0.01
WEIGHT_DECAY = 1e-4
SEED = 0
THRESHOLDS = (0.3, 0.4, 0.5, 0.6)
_NORM_RE = re.compile(r"[\s\u00ad\u2022]+")
_NOT_WORD_RE = re.compile(r"[^\w ]+")


# --------------------------------------------------------------------------- labels


def normalized(text: str) -> str:
    return _NORM_RE.sub(" ", text.replace("\u00ad", "")).strip()


def word_pairs(text: str) -> set[tuple[str, str]]:
    words = _NOT_WORD_RE.sub("", text).lower().split()
    return set(zip(words, words[1:])) if len(words) >= 3 else set()


def line_labels(lines: list[str], row: dict, teacher: str) -> tuple[np.ndarray, np.ndarray]:
    """(label, weight) per line: the teacher's verdict (weight 1), overridden by the snippets."""
    labels, weights = np.zeros(len(lines)), np.ones(len(lines))
    teacher_text = normalized(teacher)
    teacher_pairs = word_pairs(teacher_text)
    for i, line in enumerate(lines):
        text = normalized(line)
        pairs = word_pairs(text) if text not in teacher_text else set()
        labels[i] = text in teacher_text or bool(pairs) and len(pairs & teacher_pairs) >= TEACHER_SHARE * len(pairs)
    squashed = [squash(line) for line in lines]
    starts = np.cumsum([0] + [len(s) + 1 for s in squashed[:-1]])
    joined = " ".join(squashed)
    for kind, value in (("without", 0.0), ("with", 1.0)):
        for snippet in row[kind]:
            wanted = squash(snippet)
            at = joined.find(wanted) if wanted else -1
            if at < 0:
                continue
            first = np.searchsorted(starts, at, side="right") - 1
            last = np.searchsorted(starts, at + len(wanted) - 1, side="right") - 1
            labels[first : last + 1], weights[first : last + 1] = value, SNIPPET_WEIGHT
    return labels, weights


# --------------------------------------------------------------------------- model


def train(x: np.ndarray, y: np.ndarray, w: np.ndarray, seed: int = SEED) -> LineModel:
    """One ReLU layer by full-batch Adam on the weighted logistic loss (L2 as Adam's weight decay)."""
    mean, scale = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / scale
    rng = np.random.default_rng(seed)
    bound1, bound2 = 1 / np.sqrt(z.shape[1]), 1 / np.sqrt(HIDDEN)
    params = [
        rng.uniform(-bound1, bound1, (HIDDEN, z.shape[1])),
        rng.uniform(-bound1, bound1, HIDDEN),
        rng.uniform(-bound2, bound2, (1, HIDDEN)),
        rng.uniform(-bound2, bound2, 1),
    ]
    moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
    share = w / w.sum()
    for step in range(1, EPOCHS + 1):
        w1, b1, w2, b2 = params
        pre = z @ w1.T + b1
        hidden = np.maximum(pre, 0)
        logit = hidden @ w2[0] + b2[0]
        grad_logit = (1 / (1 + np.exp(-logit)) - y) * share
        grad_hidden = np.outer(grad_logit, w2[0]) * (pre > 0)
        grads = [grad_hidden.T @ z, grad_hidden.sum(0), (grad_logit @ hidden)[None, :], np.array([grad_logit.sum()])]
        for p, g, (m, v) in zip(params, grads, moments):
            g = g + WEIGHT_DECAY * p
            m *= 0.9
            m += 0.1 * g
            v *= 0.999
            v += 0.001 * g * g
            p -= LEARNING_RATE * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
    w1, b1, w2, b2 = params
    return LineModel(mean, scale, ((w1, b1), (w2, b2)), 0.0)


def probabilities(model: LineModel, features: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-model.logits(features))) if len(features) else np.zeros(0)


def stacked(pages: dict, urls: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.vstack([pages[u]["features"] for u in urls]),
        np.concatenate([pages[u]["labels"] for u in urls]),
        np.concatenate([pages[u]["weights"] for u in urls]),
    )


def extracted(pages: dict, urls: list[str], probs: dict, threshold: float) -> dict[str, str]:
    """The pages' kept lines, normalized as the extract stage normalizes every engine's text."""
    cfg = ExtractConfig()
    return {
        u: normalize_text("\n".join(line for line, p in zip(pages[u]["lines"], probs[u]) if p >= threshold), cfg)
        for u in urls
    }


def out_of_fold(pages: dict, urls: list[str], folds: list[int]) -> dict[str, np.ndarray]:
    """Line probabilities of every page in `urls`, each from a model trained without its fold."""
    probs = {}
    for k in folds:
        model = train(*stacked(pages, [u for u in urls if fold_of(u) != k]))
        for u in urls:
            if fold_of(u) == k:
                probs[u] = probabilities(model, pages[u]["features"])
    return probs


def best_threshold(pages: dict, urls: list[str], probs: dict, truth: list[dict]) -> float:
    rows = [r for r in truth if r["url"] in set(urls)]
    return max(THRESHOLDS, key=lambda t: (cv_summary(extracted(pages, urls, probs, t), rows)["f1"], -abs(t - 0.5)))


def to_json(model: LineModel, threshold: float, report: dict) -> dict:
    return {
        "features": list(FEATURES),
        "mean": model.mean.round(8).tolist(),
        "scale": model.scale.round(8).tolist(),
        "layers": [{"weight": w.round(8).tolist(), "bias": b.round(8).tolist()} for w, b in model.layers],
        "threshold": threshold,
        "trained": report,
    }


# --------------------------------------------------------------------------- main


def labelled_pages(html_of: dict, truth: list[dict], teacher: dict[str, str]) -> dict[str, dict]:
    """url -> lines, features, labels, weights."""
    rows = {r["url"]: r for r in truth}
    pages = {}
    for url, (html, _) in html_of.items():
        page, _ = render(html)
        labels, weights = line_labels(page.lines, rows[url], teacher[url])
        pages[url] = {"lines": page.lines, "features": page.features, "labels": labels, "weights": weights}
    return pages


def cross_validated(pages: dict, truth: list[dict]) -> tuple[dict[str, str], list[float]]:
    """Each fold's pages extracted by a model trained on the other four, with the threshold an inner
    cross-validation on those four chose; (outputs, the thresholds per fold)."""
    urls = sorted(pages)
    outputs, thresholds = {}, []
    for k in range(FOLDS):
        train_urls = [u for u in urls if fold_of(u) != k]
        inner = out_of_fold(pages, train_urls, [f for f in range(FOLDS) if f != k])
        threshold = best_threshold(pages, train_urls, inner, truth)
        thresholds.append(threshold)
        model = train(*stacked(pages, train_urls))
        test_urls = [u for u in urls if fold_of(u) == k]
        probs = {u: probabilities(model, pages[u]["features"]) for u in test_urls}
        outputs.update(extracted(pages, test_urls, probs, threshold))
    return outputs, thresholds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help=f"write the model trained on all pages to {MODEL_PATH}")
    args = parser.parse_args()
    truth = load_truth(DEFAULT_DIR / "CC-SAMPLE-A-extraction-truth.jsonl")
    html_of = load_pages(DEFAULT_DIR, truth)
    teacher, _ = run_ours(html_of, ExtractConfig())
    with timed() as clock:
        pages = labelled_pages(html_of, truth, teacher)
    urls = sorted(pages)
    outputs, thresholds = cross_validated(pages, truth)
    scores = cv_summary(outputs, truth)
    votes = Counter(thresholds)  # the folds' most frequent choice; of a tie, the one nearest 0.5
    chosen = max(votes, key=lambda t: (votes[t], -abs(t - 0.5)))
    result = {
        "benchmark": "train_line_filter",
        "pages": len(urls),
        "lines": int(sum(len(p["lines"]) for p in pages.values())),
        "features": len(FEATURES),
        "model": {"hidden": HIDDEN, "epochs": EPOCHS, "snippet_weight": SNIPPET_WEIGHT, "teacher_share": TEACHER_SHARE},
        "render_and_label_ms_per_page": round(1000 * clock.cpu_s / len(urls), 2),
        "thresholds_per_fold": thresholds,
        "threshold": chosen,
        "fast": scores,
    }
    if args.write:
        model = train(*stacked(pages, urls))
        report = {"pages": len(urls), "cv": scores["cv"], "thresholds_per_fold": thresholds}
        MODEL_PATH.write_text(json.dumps(to_json(model, chosen, report), separators=(",", ":")) + "\n")
        result["written"] = str(Path(MODEL_PATH).name)
    print_result(result)


if __name__ == "__main__":
    main()
