"""The `extract:` section of the config: WARC reading, HTML extraction and its engines, the
language and quality pre-screens, text normalization. Each default says where it comes from
(trafilatura's own, or chosen by site-grouped cross-validation in benchmarks/).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipeline.config_section import Section


# Fields are declarations (type, default, bounds, the reason for the default), so they look alike by nature.
class ExtractConfig(Section):
    """WARC reading, HTML extraction (trafilatura) and text normalization."""

    max_page_bytes: int = Field(
        2_000_000, gt=0, description="Skip HTML payloads larger than this (counted as 'too_large')."
    )
    keep_truncated: bool = Field(False, description="Keep payloads marked WARC-Truncated (cut short by the crawler).")
    favor_precision: bool = Field(
        False,
        description="trafilatura favor_precision. Off: it loses F1 in 5 of 5 site-grouped folds "
        "(benchmarks/extraction_quality.py, docs/benchmarks-ingest.md), 4 points of recall for 1 of precision.",
    )
    favor_recall: bool = Field(False, description="trafilatura favor_recall.")
    include_tables: bool = Field(True, description="Keep text inside <table> elements.")
    include_comments: bool = Field(
        False, description="trafilatura include_comments: reader comments are not main text."
    )
    deduplicate: bool = Field(
        False, description="trafilatura deduplicate (drops repeated text segments within a page)."
    )
    fast: bool = Field(False, description="trafilatura fast mode: skip its readability/jusText fallback comparison.")
    min_extracted_chars: int = Field(
        1, ge=0, description="Documents with fewer characters after extraction are skipped ('empty_text')."
    )
    extraction_timeout_s: float = Field(30.0, gt=0, description="Per-document time limit for extraction.")
    drop_link_lines: bool = Field(
        True,
        description="Drop extracted lines that are mostly link text (pipeline/extract/link_density.py; wins in 5 of 5 "
        "site-grouped folds).",
    )
    link_density: float = Field(
        0.5, ge=0, le=1, description="... at least this share of the line's page element is link text (chosen by CV)."
    )
    link_line_max_words: int = Field(
        20, ge=1, description="... and the line has at most this many words (chosen by CV)."
    )
    remove_boilerplate_lines: bool = Field(
        True,
        description="Drop calls to action during normalization: newsletter, subscribe, follow us, cookie notices (5 "
        "of 5 folds).",
    )
    fix_mojibake: bool = Field(True, description="Repair mojibake with ftfy during normalization.")
    language_prescreen: bool = Field(
        True,
        description="Skip full extraction for pages that no kept language (filter.language.languages) can pass: "
        "fastText on the page's visible text (pipeline/extract/prescreen.py). Skipped pages go to extract's "
        "rejects as language.prescreen; false runs every page through trafilatura.",
    )
    prescreen_threshold: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Skip only when every 600-character window gives the kept languages less fastText probability than "
        "this (the lowest page the filter kept on the sample WARCs and the built set had 0.40; "
        "docs/benchmarks-ingest.md).",
    )
    max_gzip_member_bytes: int = Field(64_000_000, gt=0, description="Decompression cap per WARC record (bomb guard).")
    engine: Literal["trafilatura", "resiliparse", "fast"] = Field(
        "trafilatura",
        description="Main-text extractor: trafilatura (best quality); resiliparse (its main-content text, about 10x "
        "cheaper, more boilerplate kept); fast (resiliparse's lines through a small learned line filter, "
        "pipeline/extract/line_filter.py). CV F1 and cost of each: docs/benchmarks-ingest.md.",
    )
    quality_prescreen: bool = Field(
        True,
        description="Before trafilatura, skip pages whose cheap text (resiliparse, every visible line) already fails "
        "the filter's Gopher word or C4 sentence floor by the margin (pipeline/extract/quality_prescreen.py); skipped "
        "pages go to extract's rejects as quality.prescreen. Only the trafilatura engine is screened.",
    )
    quality_prescreen_margin: float = Field(
        0.4,
        gt=0,
        le=1,
        description="Skip when the cheap text has fewer than margin x the floor's words or sentences (a floor above "
        "the published one counts as the published one). Chosen by site-grouped CV: pages the full path keeps had at "
        "least twice this (benchmarks/quality_prescreen.py, docs/benchmarks-ingest.md).",
    )
