"""The `fast` engine: resiliparse's text of a page, then a small learned filter over its lines.

Each line of the marked page's text (pipeline/extract/page_lines.py) gets a row of features; a
tiny network (standardize, one ReLU layer, a logit: a few numpy matrix products for the whole
page) says which lines are main text. Its weights are line_filter.json beside this file, written
by `python -m benchmarks.train_line_filter`, which trains it deterministically on the shared
pages' extraction truth and reports its site-grouped cross-validated F1 (docs/benchmarks-ingest.md).
The file's hash is part of the extract stage's key while the engine runs, so new weights rerun it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from resiliparse.parse.html import HTMLTree

from pipeline.config import PipelineConfig
from pipeline.errors import ConfigError
from pipeline.extract.nesting_limit import check_marked_text
from pipeline.extract.page_lines import FEATURES, PageLines, page_lines
from pipeline.extract.resiliparse_text import date_of, main_content_text, parse, title_of, whole_page_text
from pipeline.extract.tag_markers import code_points, mark, unmark

MODEL_PATH = Path(__file__).with_name("line_filter.json")
ROWS_PER_PRODUCT = 128


@dataclass(frozen=True)
class LineModel:
    """Standardization, then layers (ReLU between them); a line is kept when its logit reaches
    `min_logit` (the logit of the probability threshold chosen by cross-validation)."""

    mean: np.ndarray
    scale: np.ndarray
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]
    min_logit: float

    def logits(self, features: np.ndarray) -> np.ndarray:
        # In row blocks: OpenBLAS hands a larger product to its threads, which on a busy machine
        # cost ~6x the CPU of one thread (1,000 lines: 1.6 against 0.24 ms).
        return np.concatenate(
            [self._logits(features[i : i + ROWS_PER_PRODUCT]) for i in range(0, len(features), ROWS_PER_PRODUCT)]
        )

    def _logits(self, features: np.ndarray) -> np.ndarray:
        h = (features - self.mean) / self.scale
        for i, (weight, bias) in enumerate(self.layers):
            h = h @ weight.T + bias
            if i < len(self.layers) - 1:
                np.maximum(h, 0, out=h)
        return h[:, 0]

    def keep(self, features: np.ndarray) -> np.ndarray:
        if not len(features):
            return np.zeros(0, bool)
        return self.logits(features) >= self.min_logit


def model_from_json(spec: dict) -> LineModel:
    if tuple(spec["features"]) != FEATURES:
        raise ValueError(
            "line_filter.json was trained on other features; retrain it: python -m benchmarks.train_line_filter --write"
        )
    threshold = float(spec["threshold"])
    return LineModel(
        mean=np.asarray(spec["mean"], dtype=np.float64),
        scale=np.asarray(spec["scale"], dtype=np.float64),
        layers=tuple(
            (
                np.asarray(layer["weight"], dtype=np.float64).reshape(len(layer["bias"]), -1),
                np.asarray(layer["bias"], dtype=np.float64),
            )
            for layer in spec["layers"]
        ),
        min_logit=float(np.log(threshold / (1 - threshold))),
    )


@lru_cache(maxsize=1)
def shipped_model() -> LineModel:
    return model_from_json(json.loads(MODEL_PATH.read_text()))


def check_config(cfg: PipelineConfig) -> None:
    """With `extract.engine=fast` the shipped weights must load: checked before the first stage
    (pipeline/preflight.py) and by the stage's plan, not at the first page."""
    if cfg.extract.engine != "fast":
        return
    try:
        shipped_model()
    except (OSError, ValueError, KeyError) as err:
        raise ConfigError(
            f"extract.engine=fast cannot load its line filter {MODEL_PATH} ({err}); reinstall crawl2gpt, or "
            "retrain it with python -m benchmarks.train_line_filter --write, or set extract.engine=trafilatura"
        ) from None


@lru_cache(maxsize=1)
def model_hash() -> str:
    """sha1 of the shipped weights: part of extract's key while the fast engine runs."""
    return hashlib.sha1(MODEL_PATH.read_bytes()).hexdigest()[:16]


def render(html: str) -> tuple[PageLines, HTMLTree]:
    """The page's lines with their features, and the parsed marked tree."""
    tree = parse(mark(html))
    full = whole_page_text(tree)
    cp = code_points(full)
    check_marked_text(cp, html)  # before the main-content pass, which deep nesting makes last minutes
    return page_lines(full, main_content_text(tree), cp), tree


def kept_lines(html: str, model: LineModel | None = None) -> tuple[str, HTMLTree]:
    """(the page's lines the model keeps, joined by newlines; the parsed marked tree)."""
    page, tree = render(html)
    keep = (model or shipped_model()).keep(page.features)
    return "\n".join(line for line, kept in zip(page.lines, keep) if kept), tree


def fast_extract(html: str) -> tuple[str, str | None, str | None]:
    """(main text, title, date) of a page with the fast engine."""
    text, tree = kept_lines(html)
    title = title_of(tree)
    return text, unmark(title) if title else None, date_of(html)
