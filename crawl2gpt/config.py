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

    # Keys that are gone (or were printed by our own --help but never existed), and what to use instead.
    RENAMED: ClassVar[dict[str, str]] = {
        "finetune.lora.enabled": "use finetune.method=lora",
        "extract.fallback_on_empty": "delete it (it never fired with trafilatura 2.x and was removed)",
    }

    train: TrainConfig = Field(default_factory=TrainConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
