"""Does FP8 training (train.fp8) cost model quality? BF16 vs FP8 on real shards, with seed noise as the yardstick.

The same trainer, data and steps: BF16 with the base seed, BF16 with the next seed (how far two
equally good runs land apart), FP8 with the base seed. FP8 passes when its distance from BF16
(best validation loss, mean train loss of the last 10 steps) is within the two BF16 seeds' distance.
Needs a GPU with FP8 tensor cores (H100/H200) and torchao; on CPU the FP8 path runs through
reference kernels (slow; for a smoke run only).

    python -m benchmarks.fp8_quality --shards RUN/shards [--out DIR] [--steps 200] [--set train.k=v ...]
        [--runs bf16,bf16_next_seed,fp8]   (a subset trains only those; --runs '' compares the three found in --out)
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from benchmarks.harness import print_result
from model.config import ModelSections
from model.train import train
from model.training import read_metrics

# GPT-2 small's body (12 x 12 x 768) at a shorter block, so a small corpus gives many steps
# (the recipe of benchmarks/residual_precision.py)
DEFAULTS = [
    "train.block_size=256",
    "train.batch_size=16",
    "train.warmup_steps=30",
    "train.eval_interval=25",
    "train.eval_batches=8",
    "train.checkpoint_interval=100000",
    "train.sample_tokens=0",
    "train.learning_rate=6e-4",
    "train.min_lr=6e-5",
]
RUNS = {"bf16": ([], 0), "bf16_next_seed": ([], 1), "fp8": (["train.fp8=true"], 0)}


def run_one(shards: Path, out: Path, name: str, overrides: list[str]) -> dict:
    extra, seed_offset = RUNS[name]
    cfg = ModelSections.load(None, DEFAULTS + overrides + extra).train
    cfg.seed += seed_offset
    shutil.rmtree(out / name, ignore_errors=True)  # a fresh run, never a resumed one
    summary = train(shards, out / name, cfg, progress=False)
    row = {
        "run": name,
        "seed": cfg.seed,
        **{k: summary[k] for k in ("val_loss", "tokens_per_s", "fp8", "compiled", "device")},
    }
    print(json.dumps(row), flush=True)
    return row


def best_val(rows: list[dict]) -> float:
    return min(r["val_loss"] for r in rows if r.get("val_loss") is not None)


def compare(a: list[dict], b: list[dict]) -> dict:
    """Distances between two runs' curves: per-step train loss, last-10 mean, best validation loss."""
    ta = {r["step"]: r["loss"] for r in a}
    tb = {r["step"]: r["loss"] for r in b}
    steps = sorted(set(ta) & set(tb))
    diffs = [tb[s] - ta[s] for s in steps]
    last = steps[-10:]
    return {
        "steps": len(steps),
        "train_loss_mean_diff": sum(diffs) / len(diffs),
        "train_loss_last_10": [sum(ta[s] for s in last) / len(last), sum(tb[s] for s in last) / len(last)],
        "best_val": [best_val(a), best_val(b)],
        "best_val_diff": best_val(b) - best_val(a),
        "evals": [
            (r["step"], round(r["val_loss"], 4), round(s["val_loss"], 4))
            for r, s in zip(a, b)
            if r.get("val_loss") is not None
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shards", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--runs", default=",".join(RUNS), help=f"which of {list(RUNS)} to train now")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="train.field=value")
    args = parser.parse_args()
    import torch

    out = args.out or Path(tempfile.mkdtemp(prefix="fp8-quality-"))
    overrides = [f"train.max_steps={args.steps}"] + args.overrides
    requested = [name for name in args.runs.split(",") if name]
    for name in requested:
        run_one(args.shards, out, name, overrides)
    done = [name for name in RUNS if (out / name / "metrics.jsonl").is_file()]
    if requested and set(requested) != set(RUNS) or len(done) < len(RUNS):  # part of a split run: compare later
        print(f"runs in {out}: {done}; compare with --runs '' once all of {list(RUNS)} have finished")
        return
    bf16, next_seed, fp8 = (read_metrics(out / name) for name in RUNS)
    fp8_vs_bf16, yardstick = compare(bf16, fp8), compare(bf16, next_seed)
    within = abs(fp8_vs_bf16["best_val_diff"]) <= abs(yardstick["best_val_diff"]) and abs(
        fp8_vs_bf16["train_loss_last_10"][1] - fp8_vs_bf16["train_loss_last_10"][0]
    ) <= abs(yardstick["train_loss_last_10"][1] - yardstick["train_loss_last_10"][0])
    for (step, a, b), (_, _, c) in zip(fp8_vs_bf16["evals"], yardstick["evals"]):
        print(f"step {step:>5}  val bf16 {a:.4f}  fp8 {b:.4f}  bf16 next seed {c:.4f}")
    print_result(
        {
            "benchmark": "fp8_quality",
            "shards": str(args.shards),
            "out": str(out),
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
            "torch": torch.__version__,
            "overrides": DEFAULTS + overrides,
            "fp8_within_seed_noise": within,
            "fp8_vs_bf16": fp8_vs_bf16,
            "yardstick_bf16_vs_next_seed": yardstick,
        }
    )


if __name__ == "__main__":
    main()
