"""The pretraining optimizer: AdamW, or Muon for the hidden matrices and AdamW for the rest.

Muon (Jordan et al. 2024, "Muon: An optimizer for hidden layers in neural networks") steps each 2-D
weight matrix by its momentum orthogonalized with a Newton-Schulz iteration. It is meant for the
matrices inside the network only: modded-nanogpt, where it set the GPT-2 124M speed records, keeps
the embedding, the un-embedding (here one tied matrix), norm gains and biases on Adam. The split
here is the same: `torch.optim.Muon` for the 2-D weights of the transformer blocks (attention's
c_attn and c_proj, the MLP's c_fc and c_proj), AdamW with the plain run's groups for the rest.

Both optimizers follow the run's schedule (warmup, cosine decay): each param group carries
`lr_scale`, its peak rate over train.learning_rate, and the trainer sets a group's rate to the
schedule's value times that scale.

`OptimizerSet` steps several optimizers as one. It is iterable, as torch.distributed.checkpoint's
get/set_optimizer_state_dict take several optimizers, so a checkpoint holds one name-keyed state
for all of them (AdamW's moments and Muon's momentum buffers under their parameters' names).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from model.config import TrainConfig
from model.training import make_optimizer
from pipeline.errors import ConfigError


class OptimizerSet:
    """Optimizers over disjoint parameters, stepped and zeroed together."""

    def __init__(self, optimizers: list[torch.optim.Optimizer]):
        self.optimizers = optimizers

    def __iter__(self) -> Iterator[torch.optim.Optimizer]:
        return iter(self.optimizers)

    @property
    def param_groups(self) -> list[dict]:
        return [group for optimizer in self.optimizers for group in optimizer.param_groups]

    def step(self) -> None:
        for optimizer in self.optimizers:
            optimizer.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=set_to_none)


def muon_parameter_names(model: torch.nn.Module) -> list[str]:
    """The hidden matrices: 2-D weights inside the transformer blocks (not the embeddings, the
    tied un-embedding, norm gains or biases)."""
    return [
        name
        for name, p in model.named_parameters()
        if p.requires_grad and p.dim() == 2 and name.startswith("transformer.h.")
    ]


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: str) -> OptimizerSet:
    """AdamW over every trainable parameter (train.optimizer=adamw), or Muon over the hidden
    matrices plus AdamW over the rest (muon); fused AdamW on CUDA."""
    betas, fused = (cfg.beta1, cfg.beta2), device.startswith("cuda")
    if cfg.optimizer == "adamw":
        adamw = make_optimizer(model, cfg, cfg.learning_rate, device)
        for group in adamw.param_groups:
            group["lr_scale"] = 1.0
        return OptimizerSet([adamw])
    hidden = set(muon_parameter_names(model))
    params = dict(model.named_parameters())
    if any(type(params[name]).__name__ == "DTensor" for name in hidden):
        raise ConfigError(
            "train.optimizer=muon orthogonalizes whole weight matrices, but FSDP2 (train.parallel=fsdp) "
            "shards them across ranks: use train.parallel=ddp with Muon, or train.optimizer=adamw"
        )
    muon = torch.optim.Muon(
        [{"params": [params[name] for name in sorted(hidden)], "lr_scale": cfg.muon_lr / cfg.learning_rate}],
        lr=cfg.muon_lr,
        momentum=cfg.muon_momentum,
        weight_decay=cfg.muon_weight_decay,
        nesterov=True,
    )
    rest = [p for name, p in model.named_parameters() if p.requires_grad and name not in hidden]
    decay = [p for p in rest if p.dim() >= 2]  # the embedding (and, untied, a head): decayed as under AdamW
    no_decay = [p for p in rest if p.dim() < 2]
    adamw_groups = [
        {"params": decay, "weight_decay": cfg.weight_decay, "lr_scale": 1.0},
        {"params": no_decay, "weight_decay": 0.0, "lr_scale": 1.0},
    ]
    adamw_groups = [group for group in adamw_groups if group["params"]]
    adamw = torch.optim.AdamW(adamw_groups, lr=cfg.learning_rate, betas=betas, fused=fused)
    return OptimizerSet([muon, adamw])
