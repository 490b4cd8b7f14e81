"""Every filter threshold as data: its rule name, the stored signal it reads, which side fails.

The filter stage keeps every signal as a column (pipeline/filter/stage.py), so a threshold can be
rechecked on stored values without running the rules again. The report uses this table to draw
each threshold on its signal's histogram, to count the documents each rule would drop and the
documents ONLY that rule drops, and to pick examples on both sides of each line.

Each family's list follows the order of that family's `check()`, so the first threshold of a
family that fails is the rule `check()` names; tests/test_report.py holds the two to agreement
on real documents and on every edge value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pipeline.filter.config import FilterConfig

# How a threshold fails a document, by the value v of its signal and the threshold t.
FAILS: dict[str, Callable[[np.ndarray, object], np.ndarray]] = {
    "<": lambda v, t: v < t,
    ">": lambda v, t: v > t,
    "< (-1 = n/a)": lambda v, t: (v >= 0) & (v < t),  # Gopher stop words: -1 marks a language without a list
    "< (0 passes)": lambda v, t: (v < t) & (v != 0),  # FineWeb line_punct_exclude_zero
    "set": lambda v, t: v != 0,  # a 0/1 flag (C4 lorem ipsum, curly bracket, bad words)
    "== 0": lambda v, t: v == 0,  # FineWeb: no lines at all
    "not in": lambda v, t: ~np.isin(v, list(t)),  # language label outside the kept list
}


@dataclass(frozen=True)
class Threshold:
    rule: str  # `family.name`, the name the filter stage gives a drop
    signal: str  # the column it reads
    fails_when: str  # a key of FAILS
    value: float | tuple[str, ...]

    @property
    def family(self) -> str:
        return self.rule.split(".")[0]

    @property
    def numeric(self) -> bool:
        return self.fails_when != "not in"

    @property
    def line(self) -> float | None:
        """Where the threshold is drawn on the signal's axis (flags: between 0 and 1)."""
        if self.fails_when in ("set", "== 0"):
            return 0.5
        return float(self.value) if self.numeric else None

    def fails(self, values: np.ndarray) -> np.ndarray:
        """A boolean per document: does this threshold drop it?"""
        return np.asarray(FAILS[self.fails_when](values, self.value), dtype=bool)

    def describe(self) -> str:
        if self.fails_when in ("set", "== 0"):
            return f"{self.signal} {self.fails_when}"
        if not self.numeric:
            return f"{self.signal} not in {', '.join(self.value)}"
        op, _, note = self.fails_when.partition(" (")  # "< (0 passes)" -> "x < 0.12 (0 passes)"
        return f"{self.signal} {op} {self.value:g}" + (f" ({note}" if note else "")


def thresholds(cfg: FilterConfig) -> list[Threshold]:
    """The thresholds a filter config applies, in the stage's rule order (FineWeb's)."""
    # Written out as data, one row per published threshold: the rows look alike by design.
    out: list[Threshold] = []
    if cfg.language.enabled:
        if cfg.language.languages:
            out.append(Threshold("language.not_kept_language", "language", "not in", tuple(cfg.language.languages)))
        out.append(Threshold("language.min_score", "language_score", "<", cfg.language.min_score))
    if cfg.gopher_repetition.enabled:
        r = cfg.gopher_repetition
        out += [
            Threshold("gopher_repetition.dup_para_frac", "rep_dup_para_frac", ">", r.dup_para_frac),
            Threshold("gopher_repetition.dup_para_char_frac", "rep_dup_para_char_frac", ">", r.dup_para_char_frac),
            Threshold("gopher_repetition.dup_line_frac", "rep_dup_line_frac", ">", r.dup_line_frac),
            Threshold("gopher_repetition.dup_line_char_frac", "rep_dup_line_char_frac", ">", r.dup_line_char_frac),
        ]
        out += [
            Threshold(f"gopher_repetition.top_{n}gram_char_frac", f"rep_top_{n}gram_char_frac", ">", limit)
            for n, limit in r.top_n_grams
        ]
        out += [
            Threshold(f"gopher_repetition.dup_{n}gram_char_frac", f"rep_dup_{n}gram_char_frac", ">", limit)
            for n, limit in r.dup_n_grams
        ]
    if cfg.gopher_quality.enabled:
        q = cfg.gopher_quality
        out += [
            Threshold("gopher_quality.min_doc_words", "gopher_word_count", "<", q.min_doc_words),
            Threshold("gopher_quality.max_doc_words", "gopher_word_count", ">", q.max_doc_words),
            Threshold("gopher_quality.min_avg_word_length", "gopher_mean_word_length", "<", q.min_avg_word_length),
            Threshold("gopher_quality.max_avg_word_length", "gopher_mean_word_length", ">", q.max_avg_word_length),
            Threshold("gopher_quality.max_hash_word_ratio", "gopher_hash_word_ratio", ">", q.max_symbol_word_ratio),
            Threshold(
                "gopher_quality.max_ellipsis_word_ratio", "gopher_ellipsis_word_ratio", ">", q.max_symbol_word_ratio
            ),
            Threshold(
                "gopher_quality.max_bullet_lines_ratio", "gopher_bullet_lines_ratio", ">", q.max_bullet_lines_ratio
            ),
            Threshold(
                "gopher_quality.max_ellipsis_lines_ratio",
                "gopher_ellipsis_lines_ratio",
                ">",
                q.max_ellipsis_lines_ratio,
            ),
            Threshold(
                "gopher_quality.min_alpha_words_ratio", "gopher_alpha_words_ratio", "<", q.max_non_alpha_words_ratio
            ),
            Threshold("gopher_quality.min_stop_words", "gopher_stop_words", "< (-1 = n/a)", q.min_stop_words),
        ]
    if cfg.c4.enabled:
        out += [
            Threshold("c4.lorem_ipsum", "c4_lorem_ipsum", "set", 0.0),
            Threshold("c4.curly_bracket", "c4_curly_bracket", "set", 0.0),
            Threshold("c4.min_num_sentences", "c4_sentences", "<", cfg.c4.min_num_sentences),
            Threshold("c4.badwords", "c4_badwords", "set", 0.0),
        ]
    if cfg.fineweb.enabled:
        f = cfg.fineweb
        out += [
            Threshold("fineweb.empty", "fw_lines", "== 0", 0.0),
            Threshold(
                "fineweb.line_punct_ratio",
                "fw_line_punct_ratio",
                "< (0 passes)" if f.line_punct_exclude_zero else "<",
                f.line_punct_thr,
            ),
            Threshold("fineweb.short_line_ratio", "fw_short_line_ratio", ">", f.short_line_thr),
            Threshold("fineweb.char_dup_ratio", "fw_char_dup_ratio", ">", f.char_duplicates_ratio),
            Threshold("fineweb.newline_word_ratio", "fw_newline_word_ratio", ">", f.new_line_ratio),
        ]
    if cfg.quality_model.enabled:
        out.append(Threshold("quality_model.below_threshold", "quality_model_score", "<", cfg.quality_model.threshold))
    return out
