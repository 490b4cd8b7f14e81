"""Data-parallel training through torchrun: DDP or FSDP2, one process per device.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them training runs in one process.
CUDA uses NCCL, CPU uses gloo (how tests/test_ddp.py runs two CPU processes).
FSDP2 (`torch.distributed.fsdp.fully_shard`, PyTorch >= 2.6) shards each Block's parameters,
gradients and optimizer state across ranks; DDP keeps a full replica per rank.

Entry: `torchrun --nproc_per_node=2 -m model.train --shards DIR --out DIR [train.x=y ...]`.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from model.training import pick_device


@dataclass
class World:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init(device: str = "auto") -> World:
    """Join the process group torchrun describes (if any) and choose this rank's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    device = pick_device(device)
    if world_size <= 1:
        return World(device=device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    return World(rank, world_size, local_rank, device)


def shutdown(world: World) -> None:
    """Leave the group together: a rank that tears gloo down while another still works (rank 0
    writing the loss plot, say) can abort with 'terminate called without an active exception'."""
    if world.distributed and dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


def wrap(model: torch.nn.Module, world: World, mode: str) -> torch.nn.Module:
    """Wrap for data parallelism: 'ddp' or 'fsdp' (FSDP2); unchanged in one process."""
    if not world.distributed:
        return model
    if mode == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for block in getattr(getattr(model, "transformer", None), "h", []):
            fully_shard(block)  # one all-gather per block keeps peak memory at one block's weights
        fully_shard(model)
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(model, device_ids=[world.local_rank] if world.device.startswith("cuda") else None)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DDP and torch.compile wrappers (FSDP2 modules are their own)."""
    model = getattr(model, "_orig_mod", model)
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


@contextmanager
def grad_sync(model: torch.nn.Module, sync: bool):
    """Skip the gradient all-reduce on accumulation micro-steps; only the last one syncs."""
    if sync or not hasattr(model, "no_sync") and not hasattr(model, "set_requires_gradient_sync"):
        yield
    elif hasattr(model, "no_sync"):
        with model.no_sync():
            yield
    else:
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)


def mean(value: torch.Tensor, world: World) -> float:
    """Mean of a scalar over ranks (the loss every rank reports is the same number)."""
    if world.distributed:
        value = value.detach().clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= world.world_size
    return float(value)


def rng_states(world: World) -> dict[str, torch.Tensor]:
    """Every rank's generator states as `cpu.<rank>` / `cuda.<rank>` (all ranks call it: a collective)."""
    mine = {"cpu": torch.get_rng_state()}
    if world.device.startswith("cuda"):
        mine["cuda"] = torch.cuda.get_rng_state()
    if not world.distributed:
        return {f"{name}.0": state for name, state in mine.items()}
    gathered = {}
    for name, state in mine.items():  # fixed-size uint8 tensors, so a plain all_gather (NCCL needs them on the GPU)
        state = state.to(world.device)
        parts = [torch.empty_like(state) for _ in range(world.world_size)]
        dist.all_gather(parts, state)
        gathered.update({f"{name}.{rank}": part.cpu() for rank, part in enumerate(parts)})
    return gathered


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()



def full_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Full (unsharded, CPU) model and name-keyed optimizer state dicts; a collective under FSDP.

    Under FSDP2 only rank 0 receives the tensors; every rank must call this.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options), get_optimizer_state_dict(model, optimizer, options=options)


def load_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Load a full name-keyed optimizer state dict (FSDP2 keeps this rank's shard of it)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))
