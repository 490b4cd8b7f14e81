"""The train stage launches torchrun itself when train.nproc_per_node > 1 (here: 2 CPU
processes with gloo) and gives the losses of one process with the equivalent accumulation."""

from __future__ import annotations

import pytest

from helpers.model_shards import SETTINGS, make_shards


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return make_shards(tmp_path_factory.getbasetemp() / "launch-shards")


def test_train_stage_with_two_processes_matches_accumulation(shards, tmp_path, monkeypatch):
    from crawl2gpt.config import RunConfig
    from model.train import train
    from model.train_stage import TRAIN
    from model.training import read_metrics
    from pipeline.stage import run_stage

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    cfg = RunConfig().with_overrides(SETTINGS + ["train.nproc_per_node=2"])
    stats = run_stage(TRAIN, [str(shards)], tmp_path / "train", cfg, atomic=False)
    assert stats.extra["world_size"] == 2 and stats.docs_out == 6
    assert (tmp_path / "train" / "train-config.yaml").is_file()
    single_cfg = RunConfig().with_overrides(SETTINGS + ["train.grad_accum_steps=2"]).train
    train(shards, tmp_path / "one", single_cfg, progress=False)
    launched = read_metrics(tmp_path / "train")
    single = read_metrics(tmp_path / "one")
    assert [r["loss"] for r in launched] == pytest.approx([r["loss"] for r in single], rel=1e-5, abs=1e-6)
