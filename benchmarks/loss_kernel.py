"""The loss over GPT-2's logits: our fused row kernel vs torch.compile'd F.cross_entropy, side by side.

Both compute the mean loss and d(loss)/d(logits) for (rows x 50304) bf16 logits, the work the
training step does between the un-embedding matmul and its backward matmuls. Peer: the compiled
plain path (fp32 upcast, F.cross_entropy, backward), which is what nanoGPT-style code runs.
Also tries a few block sizes / warp counts of our kernel (model/fused_loss.py BLOCK, NUM_WARPS).
Needs a CUDA GPU. Bytes moved at the least: read the logits once, write the gradient once.

    python -m benchmarks.loss_kernel [--rows 65536] [--vocab 50304]
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json

import torch
from torch.nn import functional as F

import model.fused_loss as fused_loss
from benchmarks.harness import print_result

CONFIGS = [(4096, 8), (8192, 16), (8192, 8), (16384, 16), (32768, 32)]


def time_ms(fn, reps: int = 20) -> float:
    """Median time of fn() over reps runs, after warm-up, with CUDA events: the GPU's time for the
    kernels, which the host-side clocks of benchmarks/harness.py do not see."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=65536)
    parser.add_argument("--vocab", type=int, default=50304)
    args = parser.parse_args()
    gen = torch.Generator(device="cuda").manual_seed(0)
    logits = (torch.randn(args.rows, args.vocab, device="cuda", generator=gen) * 2).to(torch.bfloat16)
    targets = torch.randint(0, args.vocab, (args.rows,), device="cuda", generator=gen)
    inv_n = 1.0 / args.rows  # the mean's 1/N, which the trainer applies after the matmuls

    leaf = logits.detach().requires_grad_()
    compiled = torch.compile(lambda lg: F.cross_entropy(lg.float(), targets))  # forward and backward compiled

    def plain():
        leaf.grad = None
        loss = compiled(leaf)
        loss.backward()
        return loss

    ref_loss = plain()
    ref_grad = leaf.grad.clone()
    plain_ms = time_ms(plain)
    floor_ms = 2 * logits.numel() * logits.element_size() / 3.0e12 * 1e3  # read + write at ~3.0 TB/s
    rows = []
    work = torch.empty_like(logits)
    for block, warps in CONFIGS:
        fused_loss.BLOCK, fused_loss.NUM_WARPS = block, warps

        def ours():
            work.copy_(logits)  # the kernel overwrites its input; timed apart below and subtracted
            return fused_loss.softmax_cross_entropy_grad_(work, targets, -1)  # work := softmax - one_hot

        loss = ours().sum() * inv_n
        rel = (torch.linalg.norm(work.float() * inv_n - ref_grad.float()) / torch.linalg.norm(ref_grad.float())).item()
        copy_ms = time_ms(lambda: work.copy_(logits))
        ms = time_ms(ours) - copy_ms
        rows.append(
            {
                "block": block,
                "num_warps": warps,
                "ms": round(ms, 3),
                "loss_diff": abs(loss.item() - ref_loss.item()),
                "grad_rel_err": rel,
                "speedup_vs_compiled_plain": round(plain_ms / ms, 3),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    best = min(rows, key=lambda r: r["ms"])
    print(
        f"plain compiled {plain_ms:.2f} ms; best fused {best['ms']:.2f} ms (BLOCK {best['block']}, "
        f"{best['num_warps']} warps); floor {floor_ms:.2f} ms"
    )
    print_result(
        {
            "benchmark": "loss_kernel",
            "device": torch.cuda.get_device_name(),
            "torch": torch.__version__,
            "rows": args.rows,
            "vocab": args.vocab,
            "plain_compiled_ms": round(plain_ms, 3),
            "floor_ms": round(floor_ms, 3),
            "configs": rows,
            "best": best,
        }
    )


if __name__ == "__main__":
    main()
