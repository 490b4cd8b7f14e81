"""Training throughput of our GPT vs transformers' GPT2LMHeadModel under the same loop.

GPT-2 124M (12 layers, 12 heads, 768 wide, sequence 1024, vocabulary 50304), BF16 autocast,
torch.compile, fused AdamW, gradient clipping: tokens/s, MFU and peak memory for each model,
and the ratio ours / transformers. MFU counts 6N + 12 L T C FLOPs per token (PaLM appendix B,
as nanoGPT's estimate_mfu) against 989 TFLOP/s, the H100 SXM's dense BF16 peak.

Token ids are drawn uniformly at random (seeded): throughput does not depend on which ids
a batch holds, and this machine-independent input keeps the run self-contained on the GPU
machine. Same batches for both models.

    python benchmarks/train_throughput.py [--steps 10] [--batch-size 64] [--accum 1] [--attn cudnn]
        [--models ours,ours_bf16_residual,ours_fp32_residual,transformers] [--no-compile] [--small]
Models: ours (trainer defaults: bf16 residual stream, fused loss), ours_bf16_residual (plain loss),
ours_fp32_residual (nanoGPT-style), transformers.
Last line: one JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from model.gpt import GPT, GPTConfig, param_groups  # noqa: E402

H100_BF16_DENSE = 989e12  # NVIDIA H100 SXM datasheet, dense BF16 tensor core
COMPILE_MODE = None  # --mode
ATTN = "default"  # --attn
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

    hf_cfg = GPT2Config(vocab_size=cfg.vocab_size, n_positions=cfg.block_size, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
                        n_head=cfg.n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, attn_implementation="sdpa")
    model = GPT2LMHeadModel(hf_cfg)
    assert model.config._attn_implementation == "sdpa", model.config._attn_implementation

    def loss(model, x, y):  # nanoGPT's loss: fp32 cross-entropy over the bf16 logits
        logits = model(input_ids=x, use_cache=False).logits
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.view(-1))

    return model, loss


def measure(name, make, cfg, batches, steps, warmup, compile_model, device):
    torch.manual_seed(0)
    model, loss_of_batch = make(cfg)
    model = model.to(device).train()
    optimizer = torch.optim.AdamW(param_groups(model, 0.1), lr=6e-4, betas=(0.9, 0.95), fused=device == "cuda")
    step_fn = _step(loss_of_batch, model, optimizer, device, compile_model)
    n_params = sum(p.numel() for p in model.parameters()) - cfg.block_size * cfg.n_embd  # minus position table
    flops_per_token = 6 * n_params + 12 * cfg.n_layer * cfg.block_size * cfg.n_embd
    if device == "cuda":
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
    tokens = steps * ACCUM * batches[0][0].numel()
    if PROFILE:
        _profile(step_fn, batches, device)
    row = {
        "model": name, "graph_breaks": _graph_breaks() - breaks_before, "params": n_params, "tokens_per_s": tokens / seconds, "ms_per_step": 1000 * seconds / steps,
        "mfu": flops_per_token * tokens / seconds / H100_BF16_DENSE, "warmup_s": warm_s, "final_loss": float(loss),
        "first_loss": float(losses[0]),
        "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None,
    }
    del model, optimizer, step_fn
    if device == "cuda":
        torch.cuda.empty_cache()
    return row


def _step(loss_of_batch, model, optimizer, device, compile_model):
    """One training step, the same for both models: ACCUM micro-batches of forward + loss (compiled
    as one graph) and backward, then clip and AdamW."""
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)

    def loss_of(x, y):
        with autocast:
            return loss_of_batch(model, x, y)

    loss_fn = torch.compile(loss_of, mode=COMPILE_MODE) if compile_model else loss_of

    def step(x, y):
        with sdpa_backend():
            for _ in range(ACCUM):  # the same micro-batch again: the work, not the data, is measured
                loss = loss_fn(x, y)
                (loss / ACCUM).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    return step


def sdpa_backend():
    """The attention kernels both models' SDPA calls may use (--attn): the default choice, or
    cuDNN's fused attention, which is the faster one on Hopper in recent PyTorch."""
    from contextlib import nullcontext

    if ATTN == "default" or not torch.cuda.is_available():
        return nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([{"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION}[ATTN]])


def _profile(step_fn, batches, device, steps: int = 5) -> None:
    """Where a step's GPU time goes: the top kernels over a few steps (--profile)."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device == "cuda"
    with profile(activities=[ProfilerActivity.CUDA if cuda else ProfilerActivity.CPU]) as prof:
        for i in range(steps):
            step_fn(*batches[i % len(batches)])
        _sync(device)
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=30, max_name_column_width=80), flush=True)


def _graph_breaks() -> int:
    """Graph breaks torch.compile has taken so far (0: forward + loss compiled as one graph)."""
    from torch._dynamo.utils import counters

    return sum(counters["graph_break"].values())


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # defaults: the configuration of the table in docs/benchmarks-train.md
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--small", action="store_true", help="a tiny model, for a CPU smoke run")
    parser.add_argument("--models", default="ours,ours_bf16_residual,ours_fp32_residual,transformers")
    parser.add_argument("--mode", default=None, help="torch.compile mode, e.g. max-autotune-no-cudagraphs")
    parser.add_argument("--cd-tuning", action="store_true", help="inductor coordinate-descent tuning of kernel configs")
    parser.add_argument("--attn", choices=["default", "cudnn", "flash"], default="cudnn",
                        help="SDPA kernel for both models (GPU only; cuDNN is the fastest on Hopper)")
    parser.add_argument("--accum", type=int, default=1, help="micro-batches per optimizer step (GPT-2 recipes: about 0.5M tokens a step)")
    parser.add_argument("--profile", action="store_true", help="print the top GPU kernels of a few steps after timing")
    args = parser.parse_args()
    global COMPILE_MODE, ATTN, PROFILE
    global ACCUM
    COMPILE_MODE, ATTN, PROFILE, ACCUM = args.mode, args.attn, args.profile, args.accum
    if args.cd_tuning:
        import torch._inductor.config as inductor_config

        inductor_config.coordinate_descent_tuning = True
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    cfg = GPTConfig(vocab_size=50304, block_size=1024, n_layer=12, n_head=12, n_embd=768)
    if args.small:
        cfg = GPTConfig(vocab_size=512, block_size=64, n_layer=2, n_head=2, n_embd=64)
    gen = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(4):  # rotate a few batches (not one buffer) so no step reuses cached inputs
        w = torch.randint(0, 50257 if not args.small else 512, (args.batch_size, cfg.block_size + 1), generator=gen)
        batches.append((w[:, :-1].contiguous().to(device), w[:, 1:].contiguous().to(device)))
    makers = {"ours": ours, "ours_bf16_residual": ours_bf16_residual, "ours_fp32_residual": ours_fp32_residual,
              "transformers": transformers_gpt2}
    rows = []
    for name in args.models.split(","):
        rows.append(measure(name, makers[name], cfg, batches, args.steps, args.warmup, not args.no_compile, device))
        print(json.dumps(rows[-1]), flush=True)
    by = {r["model"]: r for r in rows}
    print(f"{'model':<20}{'tok/s':>12}{'ms/step':>10}{'MFU':>8}{'peak GiB':>10}")
    for r in rows:
        mem = f"{r['peak_mem_gib']:.1f}" if r["peak_mem_gib"] is not None else "-"
        print(f"{r['model']:<20}{r['tokens_per_s']:>12,.0f}{r['ms_per_step']:>10.1f}{r['mfu']:>8.1%}{mem:>10}")
    result = {
        "benchmark": "train_throughput", "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "torch": torch.__version__, "batch_size": args.batch_size, "block_size": cfg.block_size, "compiled": not args.no_compile, "compile_mode": args.mode, "cd_tuning": args.cd_tuning, "attn": args.attn, "accum": args.accum,
        "tokens_per_optimizer_step": args.accum * args.batch_size * cfg.block_size,
        "precision": "bf16" if device == "cuda" else "fp32", "rows": rows,
        "speedup_vs_transformers": {r["model"]: r["tokens_per_s"] / by["transformers"]["tokens_per_s"]
                                    for r in rows if r["model"] != "transformers"} if "transformers" in by else None,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
