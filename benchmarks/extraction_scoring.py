"""How extraction output is scored: snippet precision / recall / F1 per page, cross-validated over sites.

Shared by extraction_quality.py (the default config against trafilatura) and extraction_study.py
(every candidate rule under the same folds). Per page, each `with` snippet found in the output is
a true positive (missing: false negative), each `without` snippet found is a false positive
(absent: true negative), after collapsing whitespace on both sides (trafilatura's own
evaluation, tests/comparison.py). The pages are split into FOLDS fixed folds by site: all pages of
one registered domain in one fold, fold = sha1(domain) mod 5, so the split never changes.
"""

from __future__ import annotations

import hashlib
import re
import statistics
from urllib.parse import urlsplit

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
        "cv": {
            "f1_mean": round(mean["f1"], 4),
            "f1_sd": round(statistics.stdev(f["f1"] for f in per_fold), 4),
            "precision_mean": round(mean["precision"], 4),
            "recall_mean": round(mean["recall"], 4),
            "f1_folds": [round(f["f1"], 4) for f in per_fold],
        },
    }


def wins(base: dict[str, str], changed: dict[str, str], truth: list[dict]) -> tuple[int, int]:
    """(folds where `changed` has the higher F1, folds where it has the lower)."""
    a = [f["f1"] for f in fold_scores(base, truth)]
    b = [f["f1"] for f in fold_scores(changed, truth)]
    return sum(y > x + 1e-12 for x, y in zip(a, b)), sum(y < x - 1e-12 for x, y in zip(a, b))
