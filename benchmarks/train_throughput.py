"""Training throughput of our GPT vs transformers' GPT2LMHeadModel under the same loop.

GPT-2 124M by default (12 layers, 12 heads, 768 wide, sequence 1024, vocabulary 50304), or
medium (350M) and large (774M) with --shape; BF16 autocast, torch.compile, fused AdamW, gradient
clipping: tokens/s, MFU and peak memory for each model, and the ratio ours / transformers. MFU
counts 6N + 12 L T C FLOPs per token (PaLM appendix B, as nanoGPT's estimate_mfu) against 989
TFLOP/s per GPU, the H100 and H200 SXM's dense BF16 peak (the H200 has the H100's tensor cores).

Our model is compiled and wrapped by the trainer's own code (model/distributed.py prepare), so a
row here and `python -m model.train` at the same shape, batch and vocabulary run the same step;
the trainer adds only its loader and logging (compare them with --vocab set to the shards').
Under torchrun every row runs data-parallel (DDP, or FSDP2 with --variant ...=parallel=fsdp),
and each --variant (train.* settings: parallel, fsdp_*, compile_scope, fp8) is one more row of
ours in the same process group, so variants are compared on the same machine state.

Token ids are drawn uniformly at random (seeded): throughput does not depend on which ids a
batch holds, and this machine-independent input keeps the run self-contained on the GPU machine.

    python -m benchmarks.train_throughput [--shape gpt2|gpt2-medium|gpt2-large|tiny] [--vocab 50304]
        [--steps 10] [--batch-size 64] [--accum 1] [--attn trainer] [--fp8] [--no-compile]
        [--models ours,ours_bf16_residual,ours_fp32_residual,transformers] [--variant NAME=key=value,key=value ...]
    torchrun --nproc_per_node=2 -m benchmarks.train_throughput --models ours \\
        --variant ddp=parallel=ddp --variant fsdp=parallel=fsdp \\
        --variant fsdp_reshard=parallel=fsdp,fsdp_reshard_after_forward=true
Models: ours (trainer defaults: bf16 residual stream, fused loss), ours_bf16_residual (plain loss),
ours_fp32_residual (nanoGPT-style), transformers (one process only). --fp8 adds the variant
fp8=fp8=true (torchao's float8 linear layers in the blocks, model/fp8.py).
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from contextlib import nullcontext
from dataclasses import replace

import numpy as np
import torch
from torch.nn import functional as F

from benchmarks.harness import print_result
from model import distributed
from model.gpt import GPT, GPTConfig, param_groups

PEAK_BF16_DENSE = 989e12  # H100/H200 SXM datasheet, dense BF16 tensor core, per GPU
SHAPES = {  # (n_layer, n_head, n_embd): GPT-2 paper table 2; tiny is for CPU smoke runs
    "tiny": (2, 2, 64),
    "gpt2": (12, 12, 768),
    "gpt2-medium": (24, 16, 1024),
    "gpt2-large": (36, 20, 1280),
}
COMPILE_MODE = None  # --mode
ATTN = "trainer"  # --attn
PROFILE = False  # --profile
ACCUM = 1  # --accum


def ours(cfg: GPTConfig):
    """Our GPT as the trainer builds it: bf16 residual stream, fused un-embedding + loss on the GPU."""
    return GPT(cfg), lambda model, x, y: model(x, y)[1]


def ours_bf16_residual(cfg: GPTConfig):
    """Ours with the plain loss (F.linear + F.cross_entropy): the fused loss's share."""
    return ours(replace(cfg, fused_loss=False))


def ours_fp32_residual(cfg: GPTConfig):
    """Ours as nanoGPT builds it: fp32 residual stream, plain loss."""
    return ours(replace(cfg, residual="fp32", fused_loss=False))


def transformers_gpt2(cfg: GPTConfig):
    from transformers import GPT2Config, GPT2LMHeadModel

    hf_cfg = GPT2Config(
        vocab_size=cfg.vocab_size,
        n_positions=cfg.block_size,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        attn_implementation="sdpa",
    )
    model = GPT2LMHeadModel(hf_cfg)
    assert model.config._attn_implementation == "sdpa", model.config._attn_implementation

    def loss(model, x, y):  # nanoGPT's loss: fp32 cross-entropy over the bf16 logits
        logits = model(input_ids=x, use_cache=False).logits
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.view(-1))

    return model, loss


MAKERS = {
    "ours": ours,
    "ours_bf16_residual": ours_bf16_residual,
    "ours_fp32_residual": ours_fp32_residual,
    "transformers": transformers_gpt2,
}


def measure(name, variant, settings, make, cfg, batches, steps, warmup, world):
    """One row: build, compile/wrap, warm up, time `steps` optimizer steps (all ranks together)."""
    torch.manual_seed(0)
    device = world.device
    model, loss_of_batch = make(cfg)
    model = model.to(device).train()
    n_params = sum(p.numel() for p in model.parameters()) - cfg.block_size * cfg.n_embd  # minus position table
    flops_per_token = 6 * n_params + 12 * cfg.n_layer * cfg.block_size * cfg.n_embd
    step_fn = _step(loss_of_batch, model, settings, world)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    losses = []
    breaks_before = _graph_breaks()
    compile_start = time.perf_counter()
    for i in range(warmup):
        losses.append(step_fn(*batches[i % len(batches)]))
    _sync(device)
    warm_s = time.perf_counter() - compile_start
    start = time.perf_counter()
    for i in range(steps):
        loss = step_fn(*batches[i % len(batches)])
    _sync(device)
    seconds = time.perf_counter() - start
    tokens = steps * ACCUM * batches[0][0].numel() * world.world_size
    if PROFILE:
        _profile(step_fn, batches, device, f"{name}/{variant}", world.is_main)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None
    row = {
        "model": name,
        "variant": variant,
        "settings": settings.get("overrides", []),
        "world_size": world.world_size,
        "graph_breaks": _graph_breaks() - breaks_before,
        "params": n_params,
        "tokens_per_s": tokens / seconds,
        "tokens_per_s_per_gpu": tokens / seconds / world.world_size,
        "ms_per_step": 1000 * seconds / steps,
        "mfu": flops_per_token * tokens / seconds / (PEAK_BF16_DENSE * world.world_size),
        "warmup_s": warm_s,
        "final_loss": distributed.mean(loss, world),
        "first_loss": distributed.mean(losses[0], world),
        "peak_mem_gib": distributed.max_over_ranks(peak, world) if peak is not None else None,
    }
    del model, step_fn
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    torch._dynamo.reset()  # the next row compiles afresh, never against this row's recompile budget
    return row


def _step(loss_of_batch, model, settings, world):
    """One training step, the same for every model: ACCUM micro-batches of forward + loss and
    backward, then clip and AdamW. Ours is compiled and wrapped by the trainer's code
    (distributed.prepare); transformers' forward + loss is compiled as one function."""
    device = world.device
    cuda = device.startswith("cuda")
    train_cfg = settings["train"]
    precision = "bf16" if cuda else "fp32"
    if isinstance(model, GPT):
        if train_cfg.fp8:
            from model import fp8

            fp8.convert(model)
        runner = distributed.prepare(model, world, train_cfg, precision)
        bf16_params = distributed.fsdp_casts_params(train_cfg, world, precision)
        autocast = nullcontext() if bf16_params or not cuda else torch.autocast("cuda", dtype=torch.bfloat16)

        def loss_fn(x, y):
            with autocast:
                return loss_of_batch(runner, x, y)
    else:
        runner = model
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext()

        def loss_of(x, y):
            with autocast:
                return loss_of_batch(model, x, y)

        loss_fn = torch.compile(loss_of, mode=COMPILE_MODE) if train_cfg.compile else loss_of
    optimizer = torch.optim.AdamW(param_groups(model, 0.1), lr=6e-4, betas=(0.9, 0.95), fused=cuda)

    def step(x, y):
        with attention_backend(device):
            for micro in range(ACCUM):  # the same micro-batch again: the work, not the data, is measured
                with distributed.grad_sync(runner, micro == ACCUM - 1):
                    loss = loss_fn(x, y)
                    (loss / ACCUM).backward()
        torch.nn.utils.clip_grad_norm_(runner.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    return step


def attention_backend(device: str):
    """The attention kernels both models' SDPA calls may use (--attn): the trainer's choice
    (model/training.py attention_kernels: cuDNN first on a GPU), PyTorch's default choice, or
    only cuDNN's or only flash's kernel."""
    if ATTN == "default" or not device.startswith("cuda"):
        return nullcontext()
    if ATTN == "trainer":
        from model.training import attention_kernels

        return attention_kernels(device)
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([{"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION}[ATTN]])


def _profile(step_fn, batches, device, label: str, show: bool, steps: int = 5) -> None:
    """Where a step's time goes (--profile): the top operators by GPU and by CPU time over a few
    steps, and how long the GPU sat idle per step (waiting for the host or for communication)."""
    from torch.profiler import ProfilerActivity, profile

    from model.profiling import gpu_busy_us

    cuda = device.startswith("cuda")
    _sync(device)
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
        started = time.perf_counter()
        for i in range(steps):
            step_fn(*batches[i % len(batches)])
        _sync(device)
        wall_ms = 1000 * (time.perf_counter() - started) / steps
    if not show:  # every rank traces (the steps hold collectives); rank 0 prints
        return
    print(f"=== profile of {label}", flush=True)
    for key in (["self_device_time_total"] if cuda else []) + ["self_cpu_time_total"]:
        print(prof.key_averages().table(sort_by=key, row_limit=25, max_name_column_width=80), flush=True)
    busy = gpu_busy_us(prof)
    if busy is not None:
        busy_ms = busy / 1000 / steps
        print(
            f"profile {label}: {wall_ms:.2f} ms per step, GPU busy {busy_ms:.2f} ms, idle {wall_ms - busy_ms:.2f} ms",
            flush=True,
        )


def _graph_breaks() -> int:
    """Graph breaks torch.compile has taken so far (0: forward + loss compiled as one graph)."""
    from torch._dynamo.utils import counters

    return sum(counters["graph_break"].values())


def _sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def parse_variant(text: str) -> tuple[str, list[str]]:
    """'fsdp_reshard=parallel=fsdp,fsdp_reshard_after_forward=true' -> (name, ['train.parallel=fsdp', ...])."""
    name, _, settings = text.partition("=")
    if not name or not settings:
        raise SystemExit(f"--variant {text!r}: expected NAME=key=value[,key=value...]")
    return name, [f"train.{pair.strip()}" for pair in settings.split(",") if pair.strip()]


def variant_settings(overrides: list[str], compiled: bool) -> dict:
    """A TrainConfig for distributed.prepare from train.* overrides (pydantic validates each)."""
    from model.config import ModelSections

    train_cfg = ModelSections.load(None, [f"train.compile={str(compiled).lower()}"] + overrides).train
    return {"train": train_cfg, "overrides": overrides}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # defaults: the configuration of the table in docs/benchmarks-train.md
    parser.add_argument(
        "--shape", choices=sorted(SHAPES), default="gpt2", help="model shape (GPT-2 small, medium, large)"
    )
    parser.add_argument("--vocab", type=int, default=50304, help="vocabulary size (50304: GPT-2's padded to 64)")
    parser.add_argument("--block-size", type=int, default=None, help="sequence length (default: 1024, tiny 64)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64, help="micro-batch per GPU")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--small", action="store_true", help="same as --shape tiny (a CPU smoke run)")
    parser.add_argument("--models", default="ours,ours_bf16_residual,ours_fp32_residual,transformers")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=key=value,...",
        help="one more row of each GPT model with these train.* settings (repeatable)",
    )
    parser.add_argument("--no-default-variant", action="store_true", help="measure only the --variant rows")
    parser.add_argument("--fp8", action="store_true", help="add the variant fp8=fp8=true (FP8 linears, needs torchao)")
    parser.add_argument("--mode", default=None, help="torch.compile mode, e.g. max-autotune-no-cudagraphs")
    parser.add_argument("--cd-tuning", action="store_true", help="inductor coordinate-descent tuning of kernel configs")
    parser.add_argument(
        "--attn",
        choices=["trainer", "default", "cudnn", "flash"],
        default="trainer",
        help="SDPA kernels for both models (GPU only): the trainer's choice (cuDNN first), PyTorch's "
        "default, or one kernel only",
    )
    parser.add_argument(
        "--accum",
        type=int,
        default=1,
        help="micro-batches per optimizer step (GPT-2 recipes: about 0.5M tokens a step)",
    )
    parser.add_argument(
        "--tokens",
        default=None,
        metavar="SHARDS",
        help="cut the batches from this shards folder's train split instead of uniform random ids",
    )
    parser.add_argument("--profile", action="store_true", help="print the top GPU kernels of a few steps after timing")
    args = parser.parse_args()
    global COMPILE_MODE, ATTN, PROFILE, ACCUM
    COMPILE_MODE, ATTN, PROFILE, ACCUM = args.mode, args.attn, args.profile, args.accum
    if args.cd_tuning:
        import torch._inductor.config as inductor_config

        inductor_config.coordinate_descent_tuning = True
    shape = "tiny" if args.small else args.shape
    world = distributed.init("auto")
    try:
        run(args, shape, world)
    finally:
        distributed.shutdown(world)


def real_tokens(shards_dir: str, vocab: int) -> torch.Tensor:
    """The train split of a shards folder as one LongTensor (its vocabulary must fit --vocab)."""
    from model.data import load_tokens, shard_paths

    tokens = torch.from_numpy(
        np.concatenate([load_tokens(p) for p in shard_paths(shards_dir, "train")]).astype(np.int64)
    )
    if int(tokens.max()) >= vocab:
        raise SystemExit(f"--tokens {shards_dir}: token id {int(tokens.max())} does not fit --vocab {vocab}")
    return tokens


def run(args, shape: str, world) -> None:
    device = world.device
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    n_layer, n_head, n_embd = SHAPES[shape]
    block_size = args.block_size or (64 if shape == "tiny" else 1024)
    vocab = args.vocab if not (shape == "tiny" and args.vocab == 50304) else 512
    cfg = GPTConfig(vocab_size=vocab, block_size=block_size, n_layer=n_layer, n_head=n_head, n_embd=n_embd)
    gen = torch.Generator().manual_seed(1000 + world.rank)  # each rank its own batches, as data parallelism has
    text = real_tokens(args.tokens, vocab) if args.tokens else None
    batches = []
    for _ in range(4):  # rotate a few batches (not one buffer) so no step reuses cached inputs
        if text is None:
            w = torch.randint(0, min(vocab, 50257), (args.batch_size, cfg.block_size + 1), generator=gen)
        else:  # windows of real text: token frequencies as skewed as training's (embedding backward cares)
            starts = torch.randint(0, len(text) - cfg.block_size - 1, (args.batch_size,), generator=gen)
            w = torch.stack([text[s : s + cfg.block_size + 1] for s in starts.tolist()])
        batches.append((w[:, :-1].contiguous().to(device), w[:, 1:].contiguous().to(device)))
    variants = [] if args.no_default_variant else [("default", [])]
    variants += [parse_variant(v) for v in args.variant] + ([("fp8", ["train.fp8=true"])] if args.fp8 else [])
    rows = []
    for variant, overrides in variants:
        settings = variant_settings(overrides, not args.no_compile)
        for name in args.models.split(","):
            if name == "transformers" and (variant != "default" or world.distributed):
                continue  # transformers' model is measured as-is, in one process
            rows.append(measure(name, variant, settings, MAKERS[name], cfg, batches, args.steps, args.warmup, world))
            if world.is_main:
                print(json.dumps(rows[-1]), flush=True)
    if not world.is_main:
        return
    print(f"{'model':<20}{'variant':<16}{'tok/s':>12}{'ms/step':>10}{'MFU':>8}{'peak GiB':>10}")
    for r in rows:
        mem = f"{r['peak_mem_gib']:.1f}" if r["peak_mem_gib"] is not None else "-"
        print(
            f"{r['model']:<20}{r['variant']:<16}{r['tokens_per_s']:>12,.0f}{r['ms_per_step']:>10.1f}{r['mfu']:>8.1%}{mem:>10}"
        )
    hf = next((r for r in rows if r["model"] == "transformers"), None)
    result = {
        "benchmark": "train_throughput",
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
        "torch": torch.__version__,
        "shape": shape,
        "vocab_size": vocab,
        "world_size": world.world_size,
        "batch_size": args.batch_size,
        "block_size": cfg.block_size,
        "compiled": not args.no_compile,
        "compile_mode": args.mode,
        "cd_tuning": args.cd_tuning,
        "attn": args.attn,
        "accum": args.accum,
        "tokens": args.tokens or "random",
        "tokens_per_optimizer_step": args.accum * args.batch_size * cfg.block_size * world.world_size,
        "precision": "bf16" if device.startswith("cuda") else "fp32",
        "rows": rows,
        "speedup_vs_transformers": {
            f"{r['model']}@{r['variant']}": r["tokens_per_s"] / hf["tokens_per_s"]
            for r in rows
            if r["model"] != "transformers"
        }
        if hf
        else None,
    }
    print_result(result)


if __name__ == "__main__":
    main()
