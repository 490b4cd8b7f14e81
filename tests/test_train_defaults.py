"""Training defaults and the checks made before step 1 (issue 15): compile "auto", a validation
split that cannot fill one batch, a tokenizer that is not the shards' own, batch and block that
do not fit the data. Each fails before any step runs, with one of pipeline/errors.py's types."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import yaml

from crawl2gpt.config import RunConfig
from helpers.model_shards import TINY_TRAIN, make_shards
from model.config import ModelSections, TrainConfig
from model.train import train
from model.train_stage import TRAIN
from model.training import read_metrics, use_compile
from pipeline.errors import ConfigError, InputError, TokenizerError

ROOT = Path(__file__).parents[1]
TINY = dict(TINY_TRAIN, sample_tokens=0, max_steps=4, eval_interval=2, checkpoint_interval=4)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return make_shards(tmp_path_factory.getbasetemp() / "model-shards")


def windows(shards: Path, split: str, block_size: int) -> int:
    """Windows of block_size + 1 tokens in the split's largest shard (what the loader deals out)."""
    manifest = json.loads((shards / "manifest.json").read_text())
    return max((e["tokens"] - 1) // block_size for e in manifest["shards"] if e["split"] == split)


def never_steps(step, loss):
    raise AssertionError(f"step {step} ran: the check should have failed before step 1")


# --------------------------------------------------------------------------- compile defaults


def test_compile_defaults_to_auto_on_cuda_only():
    assert TrainConfig().compile == "auto"
    assert use_compile("auto", "cuda") and use_compile("auto", "cuda:1") and not use_compile("auto", "cpu")
    assert use_compile(True, "cpu") and not use_compile(False, "cuda")


@pytest.mark.parametrize("value, expected", [("auto", "auto"), ("true", True), ("false", False)])
def test_compile_setting_accepts_auto_and_old_booleans(value, expected):
    assert ModelSections.load(None, [f"train.compile={value}"]).train.compile == expected
    with pytest.raises(ConfigError):
        ModelSections.load(None, ["train.compile=sometimes"])


def test_old_config_files_with_a_boolean_compile_still_load(tmp_path):
    demo = RunConfig.load(ROOT / "configs/demo.yaml")
    assert demo.train.compile == "auto" and demo.train.device == "cpu"
    data = yaml.safe_load((ROOT / "configs/demo.yaml").read_text())
    for value in (True, False):
        data["train"]["compile"] = value
        (tmp_path / "old.yaml").write_text(yaml.safe_dump(data))
        assert RunConfig.load(tmp_path / "old.yaml").train.compile is value


def test_cpu_run_with_defaults_is_not_compiled(shards, tmp_path):
    summary = train(shards, tmp_path, TrainConfig(**TINY), progress=False)
    assert summary["compiled"] is False and summary["steps"] == 4


# --------------------------------------------------------------------------- before step 1


def test_validation_split_that_cannot_fill_a_batch_fails_before_step_1(shards, tmp_path):
    """Before: the run trained eval_interval steps, then the loader failed at the first evaluation."""
    val, train_windows = windows(shards, "val", 32), windows(shards, "train", 32)
    assert train_windows > val + 1  # the train split fits the batch below, the val split does not
    cfg = TrainConfig(**dict(TINY, batch_size=val + 1, eval_interval=50, max_steps=100))
    started = time.perf_counter()
    with pytest.raises(InputError, match=r"'val' shards .* cannot fill one batch.*shards.val_fraction"):
        train(shards, tmp_path, cfg, progress=False, on_step=never_steps)
    assert time.perf_counter() - started < 10
    assert read_metrics(tmp_path) == []


def test_batch_that_no_train_shard_holds_fails_before_step_1(shards, tmp_path):
    cfg = TrainConfig(**dict(TINY, block_size=1024, batch_size=windows(shards, "train", 1024) + 1))
    with pytest.raises(
        InputError, match=r"'train' shards .* cannot fill one batch.*Lower train.batch_size or train.block_size"
    ):
        train(shards, tmp_path, cfg, progress=False, on_step=never_steps)


def test_the_train_stage_checks_for_the_ranks_it_will_launch(shards, tmp_path):
    """Two ranks need twice the windows: the stage's plan refuses before torchrun starts any."""
    val = windows(shards, "val", 32)
    fits_one = RunConfig().with_overrides(
        [f"train.{k}={v}" for k, v in TINY.items()] + [f"train.batch_size={val // 2 + 1}"]
    )
    assert TRAIN.plan([str(shards)], fits_one) == [str(shards)]
    two = fits_one.with_overrides(["train.nproc_per_node=2"])
    with pytest.raises(InputError, match="x 2 ranks"):
        TRAIN.plan([str(shards)], two)


def test_a_tokenizer_that_is_not_the_shards_own_fails_before_step_1(shards, tmp_path):
    other = make_shards(tmp_path / "other", vocab_size=600)
    copy = tmp_path / "shards"
    shutil.copytree(shards, copy)
    shutil.copyfile(other / "tokenizer.model", copy / "tokenizer.model")
    with pytest.raises(TokenizerError, match="is not the tokenizer the shards .* were encoded with"):
        train(copy, tmp_path / "out", TrainConfig(**TINY), progress=False, on_step=never_steps)
    # the manifest rewritten to bless the new file: its vocabulary still does not match the shards'
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["tokenizer"]["sha256"] = json.loads((other / "manifest.json").read_text())["tokenizer"]["sha256"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(TokenizerError, match="has 600 pieces, the manifest .* says vocab_size 512"):
        TRAIN.plan([str(copy)], RunConfig(train=TrainConfig(**TINY)))


def test_fp8_without_torchao_is_a_config_error_before_step_1(shards, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torchao", None)  # as if not installed: the import fails
    monkeypatch.setitem(sys.modules, "torchao.float8", None)
    with pytest.raises(ConfigError, match="train.fp8=true needs torchao"):
        train(shards, tmp_path, TrainConfig(**dict(TINY, fp8=True)), progress=False, on_step=never_steps)


# --------------------------------------------------------------------------- step throughput


def test_tokens_per_s_leave_out_checkpoint_and_evaluation_time(shards, tmp_path, monkeypatch):
    """A slow checkpoint (and evaluation) at every step must not show in the step throughput."""
    from model import train as train_module

    real_save, real_eval = train_module.Run.save, train_module.evaluate

    def slow_save(self):
        time.sleep(0.3)
        real_save(self)

    def slow_evaluate(run, model):
        time.sleep(0.3)
        return real_eval(run, model)

    monkeypatch.setattr(train_module.Run, "save", slow_save)
    monkeypatch.setattr(train_module, "evaluate", slow_evaluate)
    cfg = TrainConfig(**dict(TINY, max_steps=6, eval_interval=1, checkpoint_interval=1))
    summary = train(shards, tmp_path, cfg, progress=False)
    tokens_per_step = cfg.batch_size * cfg.block_size
    step_seconds = [tokens_per_step / r["tokens_per_s"] for r in read_metrics(tmp_path)[1:]]
    assert max(step_seconds) < 0.25, step_seconds  # a tiny CPU step takes milliseconds, not the 0.6 s added
    assert summary["tokens_per_s"] > tokens_per_step / 0.25
    assert summary["first_step_s"] is not None and summary["flops_per_token"] > 0


# --------------------------------------------------------------------------- bigger shapes


@pytest.mark.parametrize(
    "name, layers, width, params", [("gpt2-medium", 24, 1024, 353.8e6), ("gpt2-large", 36, 1280, 772.8e6)]
)
def test_gpt2_medium_and_large_configs(name, layers, width, params):
    """Train sections alone: the model's own loader and the full run config read them alike, and the
    shapes are GPT-2's (parameters counted with its 50304-entry vocabulary, position table left out)."""
    import torch

    from model.gpt import GPT

    path = ROOT / "configs" / f"{name}.yaml"
    cfg = ModelSections.load(path).train
    assert RunConfig.load(path).train == cfg
    assert (cfg.n_layer, cfg.n_embd, cfg.block_size) == (layers, width, 1024)
    with torch.device("meta"):
        model = GPT(cfg.gpt_config(50304))
    assert model.num_params() == pytest.approx(params, rel=1e-3)
    assert cfg.batch_size * cfg.block_size * cfg.grad_accum_steps == 524288  # GPT-3's 0.5M tokens a step
