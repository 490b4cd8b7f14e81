"""train.fp8 (model/fp8.py): which layers become torchao Float8Linear, that such a model trains
through the real loop, and that its checkpoint is a plain GPT's. On CPU the FP8 casts and
matmuls run through PyTorch's reference kernels; speed is measured on an H200
(benchmarks/train_throughput.py --fp8, docs/benchmarks-train.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("torchao.float8", reason="torchao is installed with the test extras")

from helpers.model_shards import TINY_TRAIN, make_shards  # noqa: E402
from model import fp8  # noqa: E402
from model.config import TrainConfig  # noqa: E402
from model.generate import load_for_generation, sample  # noqa: E402
from model.gpt import GPT, GPTConfig  # noqa: E402
from model.train import train  # noqa: E402
from model.training import load_model, read_metrics  # noqa: E402

TINY = TINY_TRAIN

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return make_shards(tmp_path_factory.getbasetemp() / "model-shards")


def test_block_linears_convert_and_the_head_and_odd_sizes_do_not():
    from torchao.float8.float8_linear import Float8Linear

    model = GPT(GPTConfig(vocab_size=96, block_size=16, n_layer=2, n_head=2, n_embd=32))
    names_before = list(model.state_dict())
    converted = fp8.convert(model)
    layers = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
    expected = [f"transformer.h.{i}.{layer}" for i in range(2) for layer in layers]
    assert converted == expected
    assert [n for n, m in model.named_modules() if isinstance(m, Float8Linear)] == expected
    assert type(model.lm_head) is torch.nn.Linear and model.lm_head.weight is model.transformer.wte.weight
    assert list(model.state_dict()) == names_before  # checkpoints keep their names
    assert not fp8.eligible(torch.nn.Linear(30, 64), "transformer.h.0.mlp.c_fc")  # 30 is not a multiple of 16


def test_fp8_model_trains_and_its_checkpoint_is_a_plain_gpt(shards, tmp_path):
    cfg = TrainConfig(**dict(TINY, fp8=True, max_steps=20, eval_interval=10, checkpoint_interval=20))
    summary = train(shards, tmp_path / "fp8", cfg, progress=False)
    rows = read_metrics(tmp_path / "fp8")
    assert summary["fp8"] is True and rows[-1]["loss"] < rows[0]["loss"] - 0.3
    plain_cfg = TrainConfig(**dict(TINY, max_steps=20, eval_interval=10, checkpoint_interval=20))
    plain = train(shards, tmp_path / "plain", plain_cfg, progress=False)
    assert plain["fp8"] is False
    # same data and seed: FP8's rounding moves every loss a little (so the FP8 path ran), not the trend
    plain_losses = [r["loss"] for r in read_metrics(tmp_path / "plain")]
    assert [r["loss"] for r in rows] != plain_losses
    assert [r["loss"] for r in rows] == pytest.approx(plain_losses, abs=0.02)
    assert abs(summary["val_loss"] - plain["val_loss"]) < 0.02, (summary["val_loss"], plain["val_loss"])
    model, state, _ = load_model(tmp_path / "fp8")
    float8_linear = fp8.float8_module().float8_linear.Float8Linear
    assert type(model) is GPT and all(type(m) is not float8_linear for m in model.modules())
    # The sample of the last evaluation is the FP8 model's own continuation: the checkpoint,
    # converted again, draws the same tokens with the generator the trainer seeds (seed + step).
    model, tokenizer, eot_id = load_for_generation(tmp_path / "fp8")
    fp8.convert(model)
    generator = torch.Generator().manual_seed(cfg.seed + cfg.max_steps)
    ids = sample(model, [], cfg.sample_tokens, cfg.sample_temperature, cfg.sample_top_k, None, eot_id, generator)
    assert ids and summary["sample"] == tokenizer.decode(ids)
