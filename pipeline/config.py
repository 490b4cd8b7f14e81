"""The typed config of the data pipeline: ingest, filters, dedup, tokenizer, shards.

Defaults are the published choices, each cited next to its field:
  - Gopher: Rae et al. 2021, "Scaling Language Models: Methods, Analysis & Insights from
    Training Gopher", appendix A.1.1 (quality filters) and table A1 (repetition filters).
  - C4: Raffel et al. 2020, "Exploring the Limits of Transfer Learning...", section 2.2.
  - FineWeb: Penedo et al. 2024, "The FineWeb Datasets", section 3 and its datatrove recipe
    (LanguageFilter 0.65, MinHash 14 bands x 8 rows on 5-grams, FineWebQualityFilter).

A config is read from YAML (`ConfigBase.from_yaml`) and overridden on the command line with
dotted `section.field=value` pairs (`ConfigBase.with_overrides`). Unknown keys are an error,
so a typo never silently falls back to a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.atomic import atomic_write_text
from pipeline.errors import ConfigError


class Section(BaseModel):
    """Base of every config section: strict keys, validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------- ingest


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


# --------------------------------------------------------------------------- filters


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


# --------------------------------------------------------------------------- dedup


class DedupConfig(Section):
    """Exact hash dedup, then MinHash-LSH near-dup (FineWeb: 14 bands x 8 rows, word 5-grams)."""

    exact: bool = True
    near: bool = True
    ngram: int = Field(5, ge=1, description="FineWeb: word 5-gram shingles.")
    bands: int = Field(14, ge=1, description="FineWeb: 14 buckets ...")
    rows: int = Field(8, ge=1, description="... of 8 hashes = 112 permutations.")
    seed: int = 1
    backend: Literal["auto", "memory", "redis", "disk"] = Field(
        "auto",
        description="Where the exact-hash and LSH indexes live. 'memory': datasketch's dict storage in the stage "
        "process (~7 KB per document, docs/benchmarks-dedup.md); 'redis': datasketch's Redis storage; 'disk': sorted "
        "bucket files, one task per hash range, memory bounded by dedup.bucket_docs (docs/scale.md); 'auto': memory "
        "up to dedup.disk_above_docs documents, disk above. Same kept documents with every backend.",
    )
    disk_above_docs: int = Field(
        100_000,
        ge=0,
        description="backend=auto uses the disk backend above this many "
        "input documents (the memory backend peaks near 1 GB at 100k).",
    )
    bucket_docs: int = Field(
        2_000_000,
        ge=1,
        description="Disk backend: records (16 bytes each) one bucket task "
        "sorts; a band's hash space is cut into ceil(documents / bucket_docs) ranges.",
    )
    redis_host: str = "127.0.0.1"
    redis_port: int = 6379
    redis_prefix: str = "crawl2gpt"
    redis_timeout_s: float = Field(
        60.0,
        gt=0,
        description="Seconds a Redis connection or command may take before dedup stops with "
        "RedisIndexError: a hung server or a network partition would otherwise block the stage for ever.",
    )
    redis_ttl_h: float = Field(
        72.0,
        gt=0,
        description="Hours a dedup attempt's Redis keys outlive its last sign of life (its owner record is "
        "renewed after every part it indexes) before any later dedup on the same Redis and prefix, or `crawl2gpt "
        "dedup-clean --expired`, deletes them: what a killed run on a folder that is never rerun leaves behind "
        "(pipeline/dedup/redis_owners.py). Raise it if one part of a dedup can take longer.",
    )
    verify: Literal["none", "signature", "exact"] = Field(
        "exact",
        description="Check LSH candidate pairs before merging: 'none' = FineWeb (a shared band merges, S-curve knee "
        "~0.72), 'signature' = estimated Jaccard, 'exact' = Jaccard of the stored shingle sets. The issue asks for "
        "precision >= 0.98 at J >= 0.8, which plain banding misses (docs/benchmarks-dedup.md).",
    )
    verify_threshold: float = Field(0.8, ge=0, le=1, description="Jaccard a verified pair needs (the issue's 0.8).")

    @property
    def num_perm(self) -> int:
        return self.bands * self.rows


# --------------------------------------------------------------------------- tokenizer and shards


# With byte fallback, SentencePiece needs 256 byte pieces + <|pad|>, <unk>, <|endoftext|> + every character
# the corpus covers: any corpus has one, so below this no corpus can train (how many more is the data's to say).
BYTE_FALLBACK_MIN_VOCAB = 260


class TokenizerConfig(Section):
    """SentencePiece BPE trained on a deterministic sample of the deduplicated text."""

    vocab_size: int = Field(32_000, ge=64, description="GPT-2 scale vocabularies are 32k-50k.")
    sample_bytes: int = Field(200_000_000, gt=0, description="Bytes of text drawn (by doc hash) for training.")
    input_sentence_size: int = Field(2_000_000, ge=0, description="SentencePiece input_sentence_size (0 = all).")
    character_coverage: float = Field(0.9995, gt=0, le=1)
    byte_fallback: bool = True
    normalization_rule_name: Literal["identity", "nfkc", "nmt_nfkc", "nfkc_cf", "nmt_nfkc_cf"] = Field(
        "identity",
        description="NFC is applied upstream; 'identity' keeps text byte-exact. The others are "
        "SentencePiece's built-in rules (any other name fails its training).",
    )
    reuse: str | None = Field(None, description="Path to an existing tokenizer.model to reuse instead of training.")
    threads: int = Field(0, ge=0, description="0 = all cores.")
    seed: int = Field(
        1, description="SentencePiece random seed (input_sentence_size subsampling), for reproducible models."
    )
    split_digits: bool = Field(
        True,
        description="LLaMA (Touvron et al. 2023, sec. 2.1): numbers split into single digits. "
        "Costs ~3% more tokens on web text (docs/benchmarks-shards.md).",
    )

    @model_validator(mode="after")
    def _check_room_for_bytes(self) -> TokenizerConfig:
        """With byte fallback SentencePiece reserves 256 byte pieces and our 3 special pieces before
        the first character or merge; a smaller vocabulary fails its training, after dedup."""
        if self.byte_fallback and self.vocab_size < BYTE_FALLBACK_MIN_VOCAB and not self.reuse:
            raise ValueError(
                f"tokenizer.vocab_size={self.vocab_size} leaves no room for learned pieces: byte_fallback "
                f"takes 256 ids and the special pieces 3; raise tokenizer.vocab_size (above "
                f"{BYTE_FALLBACK_MIN_VOCAB} plus the corpus's characters: 32000 is GPT-2 scale) or set "
                "tokenizer.byte_fallback=false"
            )
        return self


class ShardsConfig(Section):
    target_shard_tokens: int = Field(50_000_000, gt=0, description="Start a new shard past this many tokens.")
    val_fraction: float = Field(
        0.01, ge=0, lt=1, description="Documents whose id hash falls below this go to validation."
    )
    append_eot: bool = Field(True, description="Append <|endoftext|> after each document.")


# --------------------------------------------------------------------------- loading and saving


class ConfigBase(Section):
    """A whole config file: read from YAML, overridden by `section.field=value`, written back.

    `RENAMED` maps a dotted key that is no longer valid to the key (or setting) that replaced it,
    so an old config file or command line is refused with the new name instead of a bare
    "unknown key".
    """

    RENAMED: ClassVar[dict[str, str]] = {}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> Self:
        for old, new in cls.RENAMED.items():
            if _has_key(data or {}, old.split(".")):
                raise ConfigError(f"{source}: {old!r} is no longer a config key: {new}")
        try:
            return cls.model_validate(data or {})
        except ValidationError as err:
            raise ConfigError(f"invalid {source}: {'; '.join(map(_said, err.errors()))}") from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> Self:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping at top level")
        return cls.from_dict(data, source=str(path))

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: list[str] | None = None) -> Self:
        cfg = cls.from_yaml(path) if path else cls()
        return cfg.with_overrides(overrides or [])

    def with_overrides(self, overrides: list[str]) -> Self:
        """Apply `a.b.c=value` strings; values are parsed as YAML (so 0.7, true, [en, de] work)."""
        data = self.model_dump(mode="json")
        for item in overrides:
            key, sep, raw = item.partition("=")
            key = key.strip()
            if not sep or not key:
                raise ConfigError(f"override {item!r} must look like section.field=value")
            if key in self.RENAMED:
                raise ConfigError(f"override {item!r}: {key!r} is no longer a config key: {self.RENAMED[key]}")
            node = data
            parts = key.split(".")
            for part in parts[:-1]:
                if not isinstance(node.get(part), dict):
                    raise ConfigError(f"override {item!r}: no config section {part!r}")
                node = node[part]
            if parts[-1] not in node:
                raise ConfigError(f"override {item!r}: unknown config key {key!r}")
            node[parts[-1]] = yaml.safe_load(raw)
        return type(self).from_dict(data, source="config overrides")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)

    def write(self, path: str | Path) -> None:
        atomic_write_text(Path(path), self.to_yaml())


def _said(error: dict[str, Any]) -> str:
    """One pydantic error as `section.key=value: what is wrong`, without pydantic's type codes and
    links; a check across keys (a model validator) says its keys itself."""
    key = ".".join(map(str, error["loc"]))
    message = error["msg"].removeprefix("Value error, ")
    if isinstance(error.get("input"), dict):
        return message if error["type"] == "value_error" else f"{key}: {message}"
    return f"{key}={error['input']!r}: {message}" if key else message


def _has_key(data: dict[str, Any], parts: list[str]) -> bool:
    node: Any = data
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


# --------------------------------------------------------------------------- the data pipeline


class PipelineConfig(ConfigBase):
    """Everything the data stages (extract .. shards) use. The full run config (crawl2gpt/config.py)
    adds the model's sections to it; the data stages never see those."""

    name: str = "crawl2gpt"
    workers: int = Field(0, ge=0, description="Processes for per-part work; 0 = all cores.")
    task_runner: Literal["processes", "threads", "dask", "ray"] = Field(
        "processes",
        description="Where Prefect runs per-part tasks: 'processes' (task threads feeding a local process pool; "
        "starts in a second), 'threads' (in-process, for I/O-bound parts), 'dask' (prefect-dask: a LocalCluster, "
        "or the cluster at dask_address), 'ray' (prefect-ray, if installed).",
    )
    dask_address: str | None = Field(
        None, description="tcp://host:8786 of a running Dask scheduler; empty starts a LocalCluster."
    )
    extract: ExtractConfig = Field(default_factory=ExtractConfig)
    filter: FilterConfig = Field(default_factory=FilterConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    shards: ShardsConfig = Field(default_factory=ShardsConfig)
