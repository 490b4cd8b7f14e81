"""The `filter:` section of the config: one class per rule family, with the published defaults.

- Gopher: Rae et al. 2021, "Scaling Language Models: Methods, Analysis & Insights from
  Training Gopher", appendix A.1.1 (quality filters) and table A1 (repetition filters).
- C4: Raffel et al. 2020, "Exploring the Limits of Transfer Learning...", section 2.2.
- FineWeb: Penedo et al. 2024, "The FineWeb Datasets", section 3 and its datatrove recipe
  (LanguageFilter 0.65, FineWebQualityFilter).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from pipeline.config_section import Section


class GopherQualityConfig(Section):
    """Gopher quality filter, Rae et al. 2021, appendix A.1.1."""

    enabled: bool = True
    min_doc_words: int = Field(50, ge=0, description="Gopher: documents need 50..100,000 words.")
    max_doc_words: int = Field(100_000, ge=0)
    min_avg_word_length: float = Field(3.0, ge=0, description="Gopher: mean word length 3..10 characters.")
    max_avg_word_length: float = Field(10.0, ge=0)
    max_symbol_word_ratio: float = Field(0.1, ge=0, description="Gopher: at most 0.1 '#' or '...' per word.")
    max_bullet_lines_ratio: float = Field(0.9, ge=0, description="Gopher: at most 90% of lines start with a bullet.")
    max_ellipsis_lines_ratio: float = Field(0.3, ge=0, description="Gopher: at most 30% of lines end with an ellipsis.")
    max_non_alpha_words_ratio: float = Field(
        0.8, ge=0, le=1, description="Gopher: at least 80% of words contain a letter (datatrove's name)."
    )
    min_stop_words: int = Field(2, ge=0, description="Gopher: at least 2 of the 8 English stop words.")
    stop_words: list[str] = Field(default_factory=lambda: ["the", "be", "to", "of", "and", "that", "have", "with"])
    stop_words_by_language: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Stop-word lists for other languages (FineWeb-2 uses per-language lists); "
        "a kept language without a list skips the stop-word rule, 'en' uses stop_words.",
    )

    @model_validator(mode="after")
    def _check_ranges(self) -> GopherQualityConfig:
        """A minimum above its maximum drops every document; said now, not after extraction."""
        for low, high in (("min_doc_words", "max_doc_words"), ("min_avg_word_length", "max_avg_word_length")):
            if getattr(self, low) > getattr(self, high):
                raise ValueError(
                    f"filter.gopher_quality.{low} ({getattr(self, low)}) is above {high} ({getattr(self, high)}): "
                    "every document would be dropped; lower the one or raise the other"
                )
        return self


# An n-gram rule's (n, largest fraction of characters): n-grams of 0 words do not exist.
NGramSize = Annotated[int, Field(ge=1)]
Fraction = Annotated[float, Field(ge=0)]


class GopherRepetitionConfig(Section):
    """Gopher repetition filter, Rae et al. 2021, table A1."""

    enabled: bool = True
    dup_line_frac: float = Field(0.3, ge=0, description="Gopher: duplicate lines / lines.")
    dup_para_frac: float = Field(0.3, ge=0, description="Gopher: duplicate paragraphs / paragraphs.")
    dup_line_char_frac: float = Field(0.2, ge=0, description="Gopher: characters in duplicate lines / characters.")
    dup_para_char_frac: float = Field(0.2, ge=0, description="Gopher: characters in duplicate paragraphs / characters.")
    top_n_grams: list[tuple[NGramSize, Fraction]] = Field(default_factory=lambda: [(2, 0.2), (3, 0.18), (4, 0.16)])
    dup_n_grams: list[tuple[NGramSize, Fraction]] = Field(
        default_factory=lambda: [(5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)]
    )


class C4Config(Section):
    """C4 rules, Raffel et al. 2020, section 2.2 (as in datatrove's C4QualityFilter)."""

    enabled: bool = True
    filter_no_terminal_punct: bool = Field(True, description="C4: drop lines not ending in terminal punctuation.")
    min_words_per_line: int = Field(3, ge=0, description="C4: drop lines with fewer than 3 words.")
    max_word_length: int = Field(
        1000, ge=-1, description="C4: drop lines with a word longer than 1000 characters (-1: off)."
    )
    min_num_sentences: int = Field(
        5, ge=0, description="C4: drop pages with fewer than 5 sentences (after line removal)."
    )
    filter_javascript: bool = Field(True, description="C4: drop lines containing 'javascript'.")
    filter_policy: bool = Field(
        True, description="C4: drop lines with 'terms of use', 'privacy policy', cookie notices."
    )
    filter_lorem_ipsum: bool = Field(True, description="C4: drop pages containing 'lorem ipsum'.")
    filter_curly_bracket: bool = Field(True, description="C4: drop pages containing '{' (code).")
    remove_citations: bool = Field(True, description="C4: remove wikipedia-style [1] citation markers.")
    badwords: bool = Field(False, description="Drop pages with a word from the badwords list (optional in C4).")
    badwords_file: str | None = Field(
        None, description="One bad word per line (C4 used LDNOOBW's list); required when badwords is on."
    )
    rewrite_text: bool = Field(
        True, description="C4 and datatrove's C4QualityFilter keep only the lines that pass the line rules."
    )


class FineWebConfig(Section):
    """FineWeb's own quality rules, Penedo et al. 2024, section 3.3."""

    enabled: bool = True
    line_punct_thr: float = Field(0.12, ge=0, le=1, description="FineWeb: at least 12% of lines end in punctuation.")
    line_punct_exclude_zero: bool = False
    short_line_thr: float = Field(0.67, ge=0, description="FineWeb: at most 67% of lines shorter than 30 chars.")
    short_line_length: int = Field(30, ge=0)
    char_duplicates_ratio: float = Field(
        0.01, ge=0, description="FineWeb: at most 1% of characters in duplicated lines."
    )
    new_line_ratio: float = Field(0.3, ge=0, description="FineWeb: at most 0.3 newlines per word.")


class LanguageConfig(Section):
    """fastText lid.176 language identification (FineWeb keeps English with score >= 0.65)."""

    enabled: bool = True
    languages: list[str] = Field(
        default_factory=lambda: ["en"], description="ISO 639-1 codes to keep; empty keeps all."
    )
    min_score: float = Field(0.65, ge=0, le=1, description="FineWeb: fastText English score >= 0.65.")
    partition_by_language: bool = Field(False, description="Write kept documents into one folder per language.")
    second_opinion_below: float = Field(
        0.9,
        ge=0,
        le=1,
        description="Consult lingua when fastText is less sure than this (0.9: 0.960 macro at ~2,000 sentences/s "
        "per core vs 0.959 at 0.8, benchmarks/langid_quality.py).",
    )
    second_opinion: bool = Field(True, description="Use lingua (offline models) as the second detector.")
    max_chars: int = Field(
        10_000,
        gt=0,
        description="Characters of a document given to the detectors (the opening is enough; bounds cost).",
    )


class PIIConfig(Section):
    """FineWeb masks e-mail addresses and public IP addresses."""

    enabled: bool = True
    email_replacement: str = "email@example.com"
    ip_replacement: str = "0.0.0.0"
    only_public_ips: bool = Field(
        True, description="FineWeb/datatrove mask only global IPs (private ones are not PII)."
    )


class QualityModelConfig(Section):
    """A fastText classifier trained by `crawl2gpt quality train` (the DCLM / FineWeb-Edu idea):
    a document whose score (the probability of the positive class) is below `threshold` is dropped.
    Off while `path` is unset."""

    path: str | None = Field(None, description="The .bin `crawl2gpt quality train` wrote; unset: no model filter.")
    threshold: float = Field(
        0.5, ge=0, le=1, description="Keep documents scored >= this (0.5: the classifier's own decision line)."
    )

    @property
    def enabled(self) -> bool:
        return self.path is not None


class FilterConfig(Section):
    gopher_quality: GopherQualityConfig = Field(default_factory=GopherQualityConfig)
    gopher_repetition: GopherRepetitionConfig = Field(default_factory=GopherRepetitionConfig)
    c4: C4Config = Field(default_factory=C4Config)
    fineweb: FineWebConfig = Field(default_factory=FineWebConfig)
    language: LanguageConfig = Field(default_factory=LanguageConfig)
    pii: PIIConfig = Field(default_factory=PIIConfig)
    quality_model: QualityModelConfig = Field(default_factory=QualityModelConfig)
