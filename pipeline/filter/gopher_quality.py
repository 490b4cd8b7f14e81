"""Gopher quality rules, Rae et al. 2021 ("Scaling Language Models..."), appendix A.1.1.

Checked in the paper's (and datatrove's GopherQualityFilter's) order, so the first failing
threshold names the same rule. The stop-word rule is English-specific: it applies to a
document only when its language has a list (`stop_words` for "en", `stop_words_by_language`
for others); documents in other kept languages skip it, as FineWeb-2 replaced it by
per-language lists rather than applying the English one (which would drop all German text).
"""

from __future__ import annotations

from collections import Counter

from pipeline.filter.config import GopherQualityConfig
from pipeline.filter.text import has_alpha, is_symbol, ratio, split_words

NAME = "gopher_quality"
BULLETS = ("•", "-")  # datatrove's choice; the paper says "bullet point"
ELLIPSES = ("...", "…")


def stop_words_for(cfg: GopherQualityConfig, language: str | None) -> list[str] | None:
    """The stop-word list that applies to a document, or None when the rule is skipped."""
    if language in cfg.stop_words_by_language:
        return cfg.stop_words_by_language[language]
    if language in (None, "", "en"):
        return cfg.stop_words
    return None


def signals(text: str, cfg: GopherQualityConfig, language: str | None = "en") -> dict[str, float]:
    words = split_words(text)
    counts = Counter(words)
    # Totals over all tokens, less the symbols and the words without a letter: only distinct words
    # that are not all letters (a few of them) need a test in Python.
    odd = [word for word in counts if not word.isalpha()]
    symbols = [word for word in odd if is_symbol(word)]
    n_words = len(words) - sum(counts[word] for word in symbols)
    n_chars = sum(map(len, words)) - sum(counts[word] * len(word) for word in symbols)
    n_alpha = len(words) - sum(counts[word] for word in odd if not has_alpha(word))
    lines = text.splitlines() or [""]
    stop = stop_words_for(cfg, language)
    return {
        "gopher_word_count": float(n_words),
        "gopher_mean_word_length": n_chars / n_words if n_words else 0.0,
        "gopher_hash_word_ratio": ratio(text.count("#"), len(words)),
        "gopher_ellipsis_word_ratio": ratio(text.count("...") + text.count("…"), len(words)),
        "gopher_bullet_lines_ratio": sum(ln.lstrip().startswith(BULLETS) for ln in lines) / len(lines),
        "gopher_ellipsis_lines_ratio": sum(ln.rstrip().endswith(ELLIPSES) for ln in lines) / len(lines),
        "gopher_alpha_words_ratio": ratio(n_alpha, len(words)),
        # -1 marks "rule not applicable to this language" so a stored column stays numeric
        "gopher_stop_words": float(len(counts.keys() & set(stop))) if stop is not None else -1.0,
    }


def check(sig: dict[str, float], cfg: GopherQualityConfig) -> str | None:
    """Name of the first failing threshold, or None when the document passes."""
    # One `if` per published threshold, in the stage's order (the filters' hot path); the report's
    # pipeline/report/thresholds.py lists the same rules as data.
    n, mean = sig["gopher_word_count"], sig["gopher_mean_word_length"]
    if n < cfg.min_doc_words:
        return "min_doc_words"
    if n > cfg.max_doc_words:
        return "max_doc_words"
    if mean < cfg.min_avg_word_length:
        return "min_avg_word_length"
    if mean > cfg.max_avg_word_length:
        return "max_avg_word_length"
    if sig["gopher_hash_word_ratio"] > cfg.max_symbol_word_ratio:
        return "max_hash_word_ratio"
    if sig["gopher_ellipsis_word_ratio"] > cfg.max_symbol_word_ratio:
        return "max_ellipsis_word_ratio"
    if sig["gopher_bullet_lines_ratio"] > cfg.max_bullet_lines_ratio:
        return "max_bullet_lines_ratio"
    if sig["gopher_ellipsis_lines_ratio"] > cfg.max_ellipsis_lines_ratio:
        return "max_ellipsis_lines_ratio"
    if sig["gopher_alpha_words_ratio"] < cfg.max_non_alpha_words_ratio:
        return "min_alpha_words_ratio"
    if 0 <= sig["gopher_stop_words"] < cfg.min_stop_words:
        return "min_stop_words"
    return None
