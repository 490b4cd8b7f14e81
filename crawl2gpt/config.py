"""The one config of a run: the data pipeline's sections plus the model's.

`crawl2gpt run` writes it to RUN_DIR/config.yaml; every stage reads the sections it depends on
(a stage's manifest fingerprints only those, see `pipeline.stage.stage_config`).
"""
from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from model.config import FinetuneConfig, TrainConfig
from pipeline.config import PipelineConfig


class RunConfig(PipelineConfig):
    """Everything one run uses: extract, filter, dedup, tokenizer, shards, train, finetune."""

    # Keys that were never valid but were once printed by our own --help, and their real names.
    RENAMED: ClassVar[dict[str, str]] = {"finetune.lora.enabled": "finetune.method=lora"}

    train: TrainConfig = Field(default_factory=TrainConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
