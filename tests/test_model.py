"""The GPT: the two attention paths agree, causality holds, the cache is exact, options work."""

from __future__ import annotations

import math

import pytest
import torch

from model.gpt import GPT, GPTConfig, param_groups
from model.lstm import LSTMLM

pytestmark = pytest.mark.usefixtures("one_torch_thread")


VARIANTS = [
    dict(),
    dict(norm="rmsnorm", mlp="swiglu", positions="rope", bias=False),
]


def tiny(**kw) -> GPTConfig:
    return GPTConfig(**dict(dict(vocab_size=211, block_size=32, n_layer=2, n_head=4, n_embd=64), **kw))


@pytest.mark.parametrize("variant", VARIANTS)
def test_manual_and_fused_attention_give_same_outputs_and_gradients(variant):
    torch.manual_seed(0)
    manual = GPT(tiny(attention="manual", **variant))
    fused = GPT(tiny(attention="fused", **variant))
    fused.load_state_dict(manual.state_dict())
    idx = torch.randint(0, 211, (3, 32))
    targets = torch.randint(0, 211, (3, 32))
    logits_m, loss_m = manual(idx, targets)
    logits_f, loss_f = fused(idx, targets)
    loss_m.backward()
    loss_f.backward()
    assert torch.allclose(logits_m, logits_f, atol=1e-5)
    grads_f = dict(fused.named_parameters())
    for name, p in manual.named_parameters():
        assert torch.allclose(p.grad, grads_f[name].grad, atol=1e-6, rtol=1e-4), name


@pytest.mark.parametrize("variant", VARIANTS)
def test_attention_is_causal(variant):
    """Changing token t changes no logit before position t."""
    torch.manual_seed(1)
    model = GPT(tiny(**variant)).eval()
    idx = torch.randint(0, 211, (1, 32))
    changed = idx.clone()
    changed[0, 20] = (changed[0, 20] + 1) % 211
    a, _ = model(idx)
    b, _ = model(changed)
    assert torch.allclose(a[:, :20], b[:, :20], atol=1e-6)
    assert not torch.allclose(a[:, 20:], b[:, 20:])


@pytest.mark.parametrize("attention", ["manual", "fused"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_kv_cache_matches_full_forward(variant, attention):
    torch.manual_seed(2)
    model = GPT(tiny(attention=attention, **variant)).eval()
    idx = torch.randint(0, 211, (2, 24))
    full, _ = model(idx)
    caches = model.new_caches()
    prefix, _ = model(idx[:, :10], caches=caches, start=0)
    steps = [model(idx[:, t : t + 1], caches=caches, start=t)[0] for t in range(10, 24)]
    assert torch.allclose(torch.cat([prefix] + steps, dim=1), full, atol=1e-5)


def test_gpt2_initialisation_and_tied_embeddings():
    torch.manual_seed(3)
    model = GPT(tiny(n_layer=6, n_embd=128))
    assert model.lm_head.weight is model.transformer.wte.weight
    proj = model.transformer.h[0].attn.c_proj.weight
    assert abs(proj.std().item() - 0.02 / math.sqrt(12)) < 0.002  # GPT-2 section 2.3 scaling
    assert abs(model.transformer.h[0].mlp.c_fc.weight.std().item() - 0.02) < 0.002
    decay, no_decay = param_groups(model, 0.1)
    assert all(p.dim() == 2 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    assert sum(p.numel() for g in (decay, no_decay) for p in g["params"]) == sum(p.numel() for p in model.parameters())


def test_initial_loss_is_uniform_cross_entropy():
    torch.manual_seed(4)
    model = GPT(tiny())
    _, loss = model(torch.randint(0, 211, (4, 32)), torch.randint(0, 211, (4, 32)))
    assert abs(loss.item() - math.log(211)) < 0.15


def test_too_long_input_is_refused():
    with pytest.raises(ValueError, match="block_size"):
        GPT(tiny())(torch.zeros(1, 33, dtype=torch.long))


@pytest.mark.parametrize(
    "make, lr",
    [
        (lambda: GPT(tiny()), 3e-3),
        (lambda: GPT(tiny(positions="rope", mlp="swiglu")), 3e-3),
        (lambda: LSTMLM(tiny(n_layer=1)), 2e-2),
    ],
)
def test_models_learn_a_repeating_sequence(make, lr):
    """A few dozen AdamW steps drive loss on a memorisable sequence far below chance."""
    torch.manual_seed(5)
    model = make()
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    seq = torch.arange(33) * 7 % 211
    x, y = seq[:-1].repeat(4, 1), seq[1:].repeat(4, 1)
    for _ in range(60):
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5
