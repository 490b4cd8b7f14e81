"""train.profile_steps: a torch.profiler trace of a few real training steps, and no retraining for it."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from crawl2gpt.config import RunConfig
from helpers.model_shards import SETTINGS, make_shards
from model.train import train
from model.train_stage import TrainStage
from pipeline.stage import stage_key

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return make_shards(tmp_path_factory.getbasetemp() / "model-shards")


def test_profile_steps_write_a_trace_table_and_idle_time(shards, tmp_path):
    cfg = RunConfig().with_overrides(SETTINGS + ["train.profile_steps=2"]).train
    train(shards, tmp_path / "run", cfg, progress=False)
    folder = tmp_path / "run" / "profile"
    trace = json.loads(gzip.decompress((folder / "trace.json.gz").read_bytes()))
    assert any(e.get("name", "").startswith("aten::") for e in trace["traceEvents"])  # real operators were traced
    assert "Self CPU time total" in (folder / "table.txt").read_text()
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["wall_ms_per_step"] > 0
    assert summary["gpu_busy_ms_per_step"] is None  # on the CPU there is no device timeline to measure


def test_a_window_cut_short_by_max_steps_is_still_written(shards, tmp_path):
    cfg = RunConfig().with_overrides(SETTINGS + ["train.profile_steps=50"]).train  # 6 steps: the window never closes
    train(shards, tmp_path / "run", cfg, progress=False)
    assert json.loads((tmp_path / "run/profile/summary.json").read_text())["steps"] == 6 - 3


def test_profiling_is_not_part_of_the_train_key(shards):
    plain = RunConfig().with_overrides(SETTINGS)
    traced = RunConfig().with_overrides(SETTINGS + ["train.profile_steps=5"])
    assert stage_key(TrainStage(), [str(shards)], plain) == stage_key(TrainStage(), [str(shards)], traced)
    other = RunConfig().with_overrides(SETTINGS + ["train.fsdp_unit=model"])
    assert stage_key(TrainStage(), [str(shards)], plain) != stage_key(TrainStage(), [str(shards)], other)
