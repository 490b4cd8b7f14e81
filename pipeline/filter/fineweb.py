"""FineWeb's own quality rules, Penedo et al. 2024, section 3.3 (datatrove's FineWebQualityFilter):
enough lines ending in punctuation, not mostly short lines, few characters in repeated lines,
and (from the released recipe) not more than 0.3 newlines per word (list-like pages).
"""

from __future__ import annotations

from pipeline.filter.config import FineWebConfig
from pipeline.filter.gopher_repetition import find_duplicates
from pipeline.filter.text import TERMINAL_PUNCTUATION, ratio, split_words

NAME = "fineweb"
_ENDERS = tuple(TERMINAL_PUNCTUATION)


def signals(text: str, cfg: FineWebConfig) -> dict[str, float]:
    lines = [ln for ln in text.split("\n") if ln.strip()]
    if not lines:  # blank page: fails as 'empty'
        return {
            "fw_lines": 0.0,
            "fw_line_punct_ratio": 0.0,
            "fw_short_line_ratio": 0.0,
            "fw_char_dup_ratio": 0.0,
            "fw_newline_word_ratio": 0.0,
        }
    n_words = len(split_words(text))
    return {
        "fw_lines": float(len(lines)),
        "fw_line_punct_ratio": sum(ln.endswith(_ENDERS) for ln in lines) / len(lines),
        "fw_short_line_ratio": sum(len(ln) <= cfg.short_line_length for ln in lines) / len(lines),
        "fw_char_dup_ratio": ratio(find_duplicates(lines)[1], len(text) - text.count("\n")),
        "fw_newline_word_ratio": ratio(text.count("\n"), n_words),
    }


def check(sig: dict[str, float], cfg: FineWebConfig) -> str | None:
    # One `if` per published threshold, in the stage's order (the filters' hot path); the report's
    # pipeline/report/thresholds.py lists the same rules as data.
    if not sig["fw_lines"]:
        return "empty"
    punct = sig["fw_line_punct_ratio"]
    if punct < cfg.line_punct_thr and not (punct == 0 and cfg.line_punct_exclude_zero):
        return "line_punct_ratio"
    if sig["fw_short_line_ratio"] > cfg.short_line_thr:
        return "short_line_ratio"
    if sig["fw_char_dup_ratio"] > cfg.char_duplicates_ratio:
        return "char_dup_ratio"
    if sig["fw_newline_word_ratio"] > cfg.new_line_ratio:
        return "newline_word_ratio"
    return None
