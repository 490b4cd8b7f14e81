"""The typed config of the data pipeline: the whole file (PipelineConfig) and how a config file is
read, overridden and written (ConfigBase).

Each stage's section lives beside its stage, with its published defaults cited per field:
pipeline/extract/config.py (WARC reading, extraction, pre-screens, normalization),
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
from pipeline.extract.config import ExtractConfig
from pipeline.filter.config import FilterConfig
from pipeline.tokens.config import ShardsConfig, TokenizerConfig

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
