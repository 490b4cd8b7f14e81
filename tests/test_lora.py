"""LoRA from scratch: starts as the base model, merge and unmerge agree, only adapters train."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from model.gpt import GPT, GPTConfig
from model.lora import (
    LoRALinear,
    apply_lora,
    count_params,
    lora_layers,
    lora_state_dict,
    merge_lora,
    remove_lora,
    unmerge_lora,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ALL = ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"]


def tiny_gpt(**kw) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(**dict(dict(vocab_size=97, block_size=32, n_layer=2, n_head=2, n_embd=32), **kw))).eval()


def tokens() -> torch.Tensor:
    return torch.randint(0, 97, (3, 17), generator=torch.Generator().manual_seed(1))


def perturb_adapters(model: nn.Module) -> None:
    """B starts at zero (the update is 0); give it values as training would."""
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for layer in lora_layers(model):
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=gen) * 0.05)


def test_fresh_adapters_compute_the_base_model():
    model, x = tiny_gpt(), tokens()
    before = model(x)[0]
    apply_lora(model, ALL, rank=4, alpha=8)
    assert torch.equal(model(x)[0], before)


@pytest.mark.parametrize("mlp,positions", [("gelu", "learned"), ("swiglu", "rope")])
def test_merged_and_unmerged_outputs_agree(mlp, positions):
    model, x = tiny_gpt(mlp=mlp, positions=positions), tokens()
    base_weights = {k: v.clone() for k, v in model.state_dict().items()}
    apply_lora(model, ALL, rank=4, alpha=8)
    perturb_adapters(model)
    unmerged = model(x)[0]
    assert not torch.allclose(unmerged, GPT(model.config).eval()(x)[0])  # the adapters do change the output
    merge_lora(model)
    assert all(layer.merged for layer in lora_layers(model))
    torch.testing.assert_close(model(x)[0], unmerged, atol=1e-5, rtol=1e-5)
    unmerge_lora(model)
    torch.testing.assert_close(model(x)[0], unmerged, atol=1e-5, rtol=1e-5)
    for name, layer in model.named_modules():  # unmerge restores the frozen base weights
        if isinstance(layer, LoRALinear):
            torch.testing.assert_close(layer.base.weight, base_weights[name + ".weight"], atol=1e-6, rtol=0)


def test_merge_twice_is_idempotent():
    model, x = tiny_gpt(), tokens()
    apply_lora(model, ALL, rank=2, alpha=4)
    perturb_adapters(model)
    merge_lora(model)
    once = model(x)[0]
    merge_lora(model)
    torch.testing.assert_close(model(x)[0], once)


def test_only_adapters_train_and_count_matches_formula():
    model = tiny_gpt()
    total = count_params(model)["total"]
    wrapped = apply_lora(model, ALL, rank=4, alpha=8)
    assert len(wrapped) == 2 * 4
    C = model.config.n_embd
    per_block = 4 * (C + 3 * C) + 4 * (C + C) + 4 * (C + 4 * C) + 4 * (4 * C + C)  # r * (in + out) per layer
    counts = count_params(model)
    assert counts["trainable"] == 2 * per_block
    assert counts["total"] == total + 2 * per_block
    x = tokens()
    _, loss = model(x, x)
    loss.backward()
    for name, p in model.named_parameters():
        assert (p.grad is not None) == (".lora_" in name), name


def test_targets_select_layers():
    model = tiny_gpt()
    wrapped = apply_lora(model, ["attn.c_attn"], rank=2, alpha=2)
    assert wrapped == ["transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn"]
    assert isinstance(model.transformer.h[0].mlp.c_proj, nn.Linear)  # mlp.c_proj is not attn.c_proj
    assert isinstance(model.transformer.h[0].attn.c_proj, nn.Linear)


def test_no_matching_target_is_a_clear_error():
    with pytest.raises(ValueError, match="no linear layer matches"):
        apply_lora(tiny_gpt(), ["q_proj"], rank=2, alpha=2)


def test_remove_lora_gives_a_plain_gpt_that_loads_as_the_base_class():
    model, x = tiny_gpt(), tokens()
    wrapped = apply_lora(model, ALL, rank=4, alpha=8, dropout=0.1)
    perturb_adapters(model)
    model.eval()
    adapted = model(x)[0]
    assert set(lora_state_dict(model)) == {f"{n}.lora_{m}" for n in wrapped for m in "AB"}
    remove_lora(model)
    assert not lora_layers(model)
    fresh = tiny_gpt()
    fresh.load_state_dict(model.state_dict())
    torch.testing.assert_close(fresh(x)[0], adapted, atol=1e-5, rtol=1e-5)


def test_dropout_only_while_training():
    model, x = tiny_gpt(), tokens()
    apply_lora(model, ALL, rank=4, alpha=8, dropout=0.5)
    perturb_adapters(model)
    model.eval()
    assert torch.equal(model(x)[0], model(x)[0])
    model.train()
    torch.manual_seed(0)
    a = model(x)[0]
    torch.manual_seed(1)
    assert not torch.allclose(a, model(x)[0])
