"""train.optimizer: AdamW alone, or Muon for the hidden matrices and AdamW for the rest (model/optimizers.py)."""

from __future__ import annotations

import pytest
import torch

from model.config import TrainConfig
from model.gpt import GPT
from model.optimizers import build_optimizer, muon_parameter_names

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small(optimizer: str, **settings) -> tuple[GPT, TrainConfig]:
    cfg = TrainConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, optimizer=optimizer, **settings)
    torch.manual_seed(0)
    return GPT(cfg.gpt_config(97)), cfg


def gradients(model: GPT) -> None:
    idx = torch.randint(0, 97, (4, 16), generator=torch.Generator().manual_seed(1))
    _, loss = model(idx[:, :-1], idx[:, 1:])
    loss.backward()


def changed(model: GPT, before: dict[str, torch.Tensor]) -> set[str]:
    return {name for name, p in model.named_parameters() if not torch.equal(p.detach(), before[name])}


def test_muon_owns_the_block_matrices_and_adamw_the_rest():
    model, cfg = small("muon")
    muon, adamw = build_optimizer(model, cfg, "cpu")
    assert isinstance(muon, torch.optim.Muon) and isinstance(adamw, torch.optim.AdamW)
    names = {id(p): name for name, p in model.named_parameters()}
    muon_names = {names[id(p)] for g in muon.param_groups for p in g["params"]}
    adamw_names = {names[id(p)] for g in adamw.param_groups for p in g["params"]}
    assert (
        muon_names
        == set(muon_parameter_names(model))
        == {
            f"transformer.h.{i}.{m}.weight"
            for i in range(2)
            for m in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
        }
    )
    assert not muon_names & adamw_names and muon_names | adamw_names == set(names.values())
    assert "lm_head.weight" in adamw_names or "transformer.wte.weight" in adamw_names  # tied: one tensor, AdamW's


@pytest.mark.parametrize("which", [0, 1], ids=["muon", "adamw"])
def test_a_step_changes_only_the_parameters_each_optimizer_owns(which):
    model, cfg = small("muon")
    optimizers = build_optimizer(model, cfg, "cpu")
    owned = {id(p) for g in optimizers.optimizers[which].param_groups for p in g["params"]}
    owned_names = {name for name, p in model.named_parameters() if id(p) in owned}
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    gradients(model)
    optimizers.optimizers[which].step()
    assert changed(model, before) == owned_names
    optimizers.optimizers[1 - which].step()  # and then the other: every parameter has moved
    assert changed(model, before) == set(before)


def test_adamw_setting_is_one_adamw_over_every_parameter():
    model, cfg = small("adamw")
    (adamw,) = build_optimizer(model, cfg, "cpu")
    assert isinstance(adamw, torch.optim.AdamW)
    assert sum(len(g["params"]) for g in adamw.param_groups) == len(list(model.parameters()))
    assert all(g["lr_scale"] == 1.0 for g in adamw.param_groups)


def test_muon_groups_follow_the_schedule_at_their_own_peak():
    model, cfg = small("muon", muon_lr=0.03, learning_rate=1e-3, min_lr=1e-4)
    optimizers = build_optimizer(model, cfg, "cpu")
    peaks = sorted({round(g["lr_scale"] * cfg.learning_rate, 9) for g in optimizers.param_groups})
    assert peaks == [1e-3, 0.03]
