"""Data-parallel training through torchrun: DDP or FSDP2, one process per device, and the
order in which a model is compiled and wrapped (`prepare`).

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them training runs in one process.
CUDA uses NCCL, CPU uses gloo (how tests/test_ddp.py runs two CPU processes). Several machines:
the same command on each with c10d rendezvous (docs/training.md).

DDP keeps a full replica per rank; its gradient all-reduce is bucketed and overlapped with
backward, and torch.compile of the whole model inside it splits the graph at bucket boundaries.
FSDP2 (`torch.distributed.fsdp.fully_shard`, PyTorch >= 2.6) shards each Block's parameters,
gradients and optimizer state across ranks and all-gathers a block's weights just before its
forward and backward. What makes it fast (train.fsdp_* fields, measured in docs/benchmarks-train.md):
  - one FSDP group per Block, the root (embedding, tied lm_head, final norm) its own group
  - MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32): weights travel and compute as
    bf16 (half the all-gather bytes, no autocast casts), gradients are reduced in fp32
  - reshard_after_forward: False keeps small models' gathered weights until backward (no second
    all-gather); the last block is never resharded, backward needs it first
  - explicit prefetching: block i+1's all-gather is issued when block i starts
  - compile each Block before sharding (torchtitan's order): FSDP2's hooks run between compiled
    graphs instead of breaking one whole-model graph at every block

Entry: `torchrun --nproc_per_node=2 -m model.train --shards DIR --out DIR [train.x=y ...]`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from model.training import pick_device
from pipeline import errors
from pipeline.errors import Crawl2GPTError


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


def exit_rank(code: int = 0):
    """End a rank's process now, skipping interpreter finalization; everything is written and
    flushed first. The process group's C++ side outlives destroy_process_group (nothing in Python
    refers to it any more, the DDP reducer still does), so it was torn down during finalization,
    where gloo's threads can abort the process: 'terminate called without an active exception',
    SIGABRT, after a run that finished (CI saw it once in tests/test_ddp.py), and torchrun then
    reports the whole run failed and stops the other ranks."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def prepare(model: torch.nn.Module, world: World, cfg, precision: str) -> torch.nn.Module:
    """Compile and wrap `model` (in place where it can) for this world; returns what the step calls.

    `cfg` is a TrainConfig (compile, compile_scope, parallel, fsdp_*); `precision` the one actually
    used (model/training.py precision_setup). Order: blocks compiled in place first (their state
    dict names stay unchanged), then FSDP2 sharding or DDP, whole-model compile where asked.
    """
    from model.training import use_compile

    compiled = use_compile(cfg.compile, world.device)
    scope = compile_scope(cfg, world)
    if compiled and scope == "blocks":
        for block in blocks_of(model):
            block.compile()  # nn.Module.compile: in place, one graph shared by every block
    if world.distributed and cfg.parallel == "fsdp":
        shard(model, cfg, bf16_params=fsdp_casts_params(cfg, world, precision))
        return torch.compile(model) if compiled and scope == "model" else model
    if compiled and scope == "model":
        model = torch.compile(model)
    if not world.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(model, device_ids=[world.local_rank] if world.device.startswith("cuda") else None)


def compile_scope(cfg, world: World) -> str:
    """train.compile_scope with 'auto' resolved: each block under FSDP, the whole model otherwise."""
    if cfg.compile_scope != "auto":
        return cfg.compile_scope
    return "blocks" if world.distributed and cfg.parallel == "fsdp" else "model"


def blocks_of(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The transformer blocks (GPT.transformer.h); none for the LSTM baseline."""
    return list(getattr(getattr(model, "transformer", None), "h", []))


def fsdp_casts_params(cfg, world: World, precision: str) -> bool:
    """Does FSDP2's MixedPrecisionPolicy give the blocks bf16 weights (so autocast stays off)?
    Only with bf16 precision and a bf16 residual stream: an fp32 residual needs autocast's fp32 norms."""
    return (
        world.distributed
        and cfg.parallel == "fsdp"
        and precision == "bf16"
        and cfg.fsdp_param_dtype == "bf16"
        and getattr(cfg, "residual", "bf16") == "bf16"
    )


def reshard_after_forward(cfg, model: torch.nn.Module) -> bool:
    """train.fsdp_reshard_after_forward with 'auto' resolved by model size: below 1B parameters the
    gathered bf16 weights (under 2 GiB) are cheaper to keep than to gather again in backward."""
    if cfg.fsdp_reshard_after_forward != "auto":
        return bool(cfg.fsdp_reshard_after_forward)
    return is_large(model)


def fsdp_unit(cfg, model: torch.nn.Module) -> str:
    """train.fsdp_unit with 'auto' resolved by model size: under 1B parameters one group for the whole
    model (per-block groups cost more in hooks and small collectives than they save), blocks above."""
    unit = getattr(cfg, "fsdp_unit", "block")
    if unit != "auto":
        return unit
    return "block" if is_large(model) else "model"


def is_large(model: torch.nn.Module) -> bool:
    """1B parameters or more: where FSDP2's 'auto' settings switch to per-block groups and resharding
    (below it the gathered bf16 weights, under 2 GiB a GPU, are cheaper to keep than to free)."""
    return sum(p.numel() for p in model.parameters()) >= 1_000_000_000


def shard(model: torch.nn.Module, cfg, bf16_params: bool) -> None:
    """FSDP2: one group per Block, then the root (or one group for all, train.fsdp_unit=model);
    resharding and prefetching as train.fsdp_* say, bf16 weights with fp32 gradient reduction when
    `bf16_params`. In place: `model` becomes an FSDPModule whose parameters are DTensor shards."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    policy = (
        MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        if bf16_params
        else MixedPrecisionPolicy()
    )
    if fsdp_unit(cfg, model) == "model":  # one group: gathered once, kept until backward ends
        fully_shard(model, mp_policy=policy, reshard_after_forward=False)
        return
    reshard = reshard_after_forward(cfg, model)
    blocks = blocks_of(model)
    for i, block in enumerate(blocks):
        fully_shard(block, mp_policy=policy, reshard_after_forward=reshard and i < len(blocks) - 1)
    fully_shard(model, mp_policy=policy)  # the root keeps its weights gathered for backward (FSDP2's rule)
    ahead = cfg.fsdp_prefetch
    if ahead and len(blocks) > 1:
        for i, block in enumerate(blocks):
            block.set_modules_to_forward_prefetch(blocks[i + 1 : i + 1 + ahead])
            block.set_modules_to_backward_prefetch(blocks[max(0, i - ahead) : i][::-1])


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
    return float(mean_tensor(value, world))


def mean_tensor(value: torch.Tensor, world: World) -> torch.Tensor:
    """Mean of a scalar over ranks, left on the device: with NCCL the all-reduce is queued behind
    the step's work and the host does not wait (the trainer reads it one step later)."""
    value = value.detach().clone()
    if world.distributed:
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= world.world_size
    return value


def max_over_ranks(value: float, world: World) -> float:
    """The largest of one number per rank (peak memory: the fullest GPU)."""
    if not world.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=world.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return float(tensor)


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


# --------------------------------------------------------------------------- a rank's error, to the launcher

# How a rank under torchrun hands one of our errors (a damaged shard, a full disk, ...) to the
# launcher (model/train_stage.py), which raises it again as itself: the user reads its message,
# not torchrun's traceback of every rank.
RANK_ERROR = "crawl2gpt-rank-error: "


def tell_launcher(err: Crawl2GPTError) -> None:
    """On stderr, one line the launcher's `rank_error` reads back."""
    print(RANK_ERROR + json.dumps({"type": type(err).__name__, "message": str(err)}), file=sys.stderr, flush=True)


def rank_error(stderr: str) -> Crawl2GPTError | None:
    """The first of our errors a rank reported on stderr (`tell_launcher`), as an exception of its type."""
    for line in stderr.splitlines():
        if RANK_ERROR not in line:
            continue
        try:  # ranks write at once: another rank's line may follow on the same line
            reported, _ = json.JSONDecoder().raw_decode(line.split(RANK_ERROR, 1)[1])
        except json.JSONDecodeError:
            continue
        kind = getattr(errors, reported.get("type", ""), None)
        if isinstance(kind, type) and issubclass(kind, Crawl2GPTError):
            return kind(reported["message"])
    return None
