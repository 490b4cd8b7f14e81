"""The shared training utilities (model/training.py): schedule values, the metrics log, model
build + checkpoint round trip, device and precision choice."""

from __future__ import annotations

import json
import math

import pytest
import torch

from model.checkpoint import save_checkpoint
from model.gpt import GPT, GPTConfig
from model.training import (
    MetricsLog,
    build_model,
    cosine_lr,
    load_model,
    make_optimizer,
    pick_device,
    precision_setup,
    read_metrics,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --------------------------------------------------------------------------- schedule


@pytest.mark.parametrize(
    "step, expected",
    [
        (0, 1e-3 / 11),  # warmup: (step + 1) / (warmup + 1) of the peak
        (4, 5e-3 / 11),
        (9, 1e-2 / 11),
        (10, 1e-3),  # warmup done: the peak
        (60, 5.5e-4),  # half way down the cosine: the mean of peak and floor
        (35, 1e-4 + 0.5 * (1 + math.cos(math.pi / 4)) * 9e-4),
        (110, 1e-4),  # the end: the floor
        (500, 1e-4),  # past the end: stays at the floor
    ],
)
def test_schedule_values_at_known_steps(step, expected):
    assert cosine_lr(step, peak=1e-3, floor=1e-4, warmup_steps=10, total_steps=110) == pytest.approx(
        expected, rel=1e-12
    )


def test_schedule_rises_then_falls():
    lrs = [cosine_lr(s, 1e-3, 1e-4, 10, 110) for s in range(111)]
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:11]))
    assert all(a > b for a, b in zip(lrs[10:110], lrs[11:111]))
    assert cosine_lr(0, 1e-3, 1e-4, 0, 5) == 1e-3  # no warmup starts at the peak


def test_pretraining_and_finetuning_build_adamw_from_their_own_sections():
    """One builder for both: each section's betas and weight decay reach AdamW (decay on matrices
    only); fine-tuning's betas were hard-coded to (0.9, 0.95) before."""
    from model.config import FinetuneConfig, TrainConfig

    model = GPT(GPTConfig(vocab_size=97, block_size=16, n_layer=1, n_head=2, n_embd=16))
    assert (FinetuneConfig().beta1, FinetuneConfig().beta2) == (TrainConfig().beta1, TrainConfig().beta2) == (0.9, 0.95)
    for settings in (TrainConfig(beta2=0.99, weight_decay=0.2), FinetuneConfig(beta1=0.8, beta2=0.9)):
        optimizer = make_optimizer(model, settings, 1e-3, "cpu")
        assert [g["betas"] for g in optimizer.param_groups] == [(settings.beta1, settings.beta2)] * 2
        assert [g["weight_decay"] for g in optimizer.param_groups] == [settings.weight_decay, 0.0]
        assert [g["lr"] for g in optimizer.param_groups] == [1e-3, 1e-3]


# --------------------------------------------------------------------------- metrics log


def test_metrics_log_appends_reads_and_truncates(tmp_path):
    log = MetricsLog.of(tmp_path)
    assert log.path == tmp_path / "metrics.jsonl" and log.read() == [] and log.evals() == []
    rows = [{"step": s, "loss": 5.0 - s / 10, "lr": 1e-3} for s in range(1, 7)]
    rows[2].update(val_loss=4.5)
    rows[5].update(val_loss=4.2)
    rows[3].update(val_loss=None)  # an eval that had nothing to measure (fine-tuning without a val split)
    for row in rows:
        log.append(row)
    assert log.read() == rows == read_metrics(tmp_path)
    assert [r["step"] for r in log.evals()] == [3, 6]
    log.truncate(4)
    assert log.read() == rows[:4]
    log.clear()
    assert not log.path.exists() and log.read() == []


def test_torn_last_line_is_left_out_and_truncated_away(tmp_path):
    log = MetricsLog.of(tmp_path)
    for s in (1, 2, 3):
        log.append({"step": s, "loss": 1.0})
    with open(log.path, "a") as fh:
        fh.write('{"step": 4, "lo')  # a kill mid-write
    assert [r["step"] for r in log.read()] == [1, 2, 3]
    log.truncate(10)
    assert log.path.read_text().splitlines() == [json.dumps({"step": s, "loss": 1.0}) for s in (1, 2, 3)]


def test_damaged_line_in_the_middle_is_an_error(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\nnot json\n{"step": 3}\n')
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        MetricsLog(path).read()


# --------------------------------------------------------------------------- models and checkpoints


@pytest.mark.parametrize(
    "arch, config",
    [
        ("gpt", dict(positions="rope", mlp="swiglu", norm="rmsnorm", bias=False)),
        ("gpt", dict()),
        ("lstm", dict(n_layer=1)),
    ],
)
def test_checkpoint_round_trip(tmp_path, arch, config):
    """build -> save -> load_model from the run folder: same class, same weights, same outputs."""
    model_config = dict(dict(vocab_size=97, block_size=16, n_layer=2, n_head=2, n_embd=32), **config)
    torch.manual_seed(0)
    model = build_model(model_config, arch)
    assert isinstance(model, GPT) == (arch == "gpt")
    save_checkpoint(tmp_path / "checkpoints", 7, model, None, {"model_config": model_config, "arch": arch})
    loaded, state, ckpt = load_model(tmp_path)  # a run folder: the newest checkpoint in checkpoints/
    assert ckpt == tmp_path / "checkpoints" / "step-000007" and state["step"] == 7 and state["arch"] == arch
    assert type(loaded) is type(model)
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    idx = torch.randint(0, 97, (2, 16))
    model.eval(), loaded.eval()
    assert torch.equal(loaded(idx)[0], model(idx)[0])
    if arch == "gpt":
        assert loaded.lm_head.weight is loaded.transformer.wte.weight  # the tie survives the round trip
        assert loaded.config == GPTConfig.from_dict(model_config)


def test_device_and_precision_choice():
    assert pick_device("cpu") == "cpu"
    assert pick_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    autocast, scaler, used = precision_setup("bf16", "cpu")
    assert used == "fp32" and not scaler.is_enabled()
    with autocast():
        assert not torch.is_autocast_enabled("cpu")  # CPU runs fp32 whatever was asked


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize(
    "precision, dtype, scaled", [("bf16", torch.bfloat16, False), ("fp16", torch.float16, True), ("fp32", None, False)]
)
def test_precision_on_the_gpu(precision, dtype, scaled):
    autocast, scaler, used = precision_setup(precision, "cuda")
    assert used == precision and scaler.is_enabled() == scaled
    with autocast():
        assert torch.is_autocast_enabled("cuda") == (dtype is not None)
        if dtype is not None:
            assert torch.get_autocast_dtype("cuda") == dtype
