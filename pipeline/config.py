"""The typed config of the data pipeline: the `extract:` section, the whole file (PipelineConfig) and
how a config file is read, overridden and written (ConfigBase).

The other stages' sections live beside their stages, with their published defaults cited per field:
pipeline/filter/config.py (Gopher, C4, FineWeb, language, PII, quality model),
pipeline/dedup/config.py (MinHash-LSH) and pipeline/tokens/config.py (tokenizer, shards).

A config is read from YAML (`ConfigBase.from_yaml`) and overridden on the command line with
dotted `section.field=value` pairs (`ConfigBase.with_overrides`). Unknown keys are an error,
so a typo never silently falls back to a default; a key that moved is refused with its new name
(`RENAMED`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import yaml
from pydantic import Field, ValidationError

from pipeline.atomic import atomic_write_text
from pipeline.config_section import Section
from pipeline.dedup.config import DedupConfig
from pipeline.errors import ConfigError
from pipeline.filter.config import C4Config, FilterConfig, GopherQualityConfig
from pipeline.tokens.config import ShardsConfig, TokenizerConfig

# C4Config and GopherQualityConfig are named here for the extract stage's quality pre-screen, which reads the
# filter's floors (pipeline/extract/quality_prescreen.py imports them from this module).
__all__ = [
    "C4Config",
    "ConfigBase",
    "DedupConfig",
    "ExtractConfig",
    "FilterConfig",
    "GopherQualityConfig",
    "PipelineConfig",
    "Section",
    "ShardsConfig",
    "TokenizerConfig",
]


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
