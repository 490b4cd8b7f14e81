"""Does a bf16 residual stream cost model quality? Train twice, fp32 vs bf16 residual, side by side.

`train.residual=bf16` keeps the residual stream in bf16 under BF16 autocast (Megatron-LM's
default, llm.c); nanoGPT and transformers keep it in fp32. It is faster (fewer bytes through every
norm and residual add, see train_throughput.py); this script checks what it does to the loss: the
same trainer, data, seed and steps, once per setting, and the per-step train loss and the
validation losses of both runs compared. A third run (fp32, the next seed) gives the yardstick:
how far two equally good runs differ.

Needs a CUDA GPU (on CPU both runs train in fp32 and the setting is a no-op: the script says so).
Input: a shards folder; without --shards it builds one from ../shared/data/warc with the
pipeline (CPU, about a minute).

    python -m benchmarks.residual_precision [--shards DIR] [--out DIR] [--steps 300] [--set train.k=v ...]
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

from benchmarks.harness import SHARED, print_result
from crawl2gpt.config import RunConfig
from model.train import train
from model.training import read_metrics

# GPT-2 small's body (12 x 12 x 768) at a shorter block, so a small corpus gives many steps
DEFAULTS = [
    "train.block_size=256",
    "train.batch_size=16",
    "train.warmup_steps=30",
    "train.eval_interval=50",
    "train.eval_batches=8",
    "train.checkpoint_interval=1000",
    "train.sample_tokens=0",
    "train.compile=true",
    "train.learning_rate=6e-4",
    "train.min_lr=6e-5",
]


def build_shards(warc_dir: Path, workdir: Path) -> Path:
    from crawl2gpt.runner import run_pipeline

    cfg = RunConfig.load(
        None,
        [
            "tokenizer.vocab_size=4096",
            "shards.val_fraction=0.05",
            "filter.language.languages=[en,de,fr,es,it,nl,pt,pl,ru]",
        ],
    )
    warcs = sorted(str(p) for p in warc_dir.glob("*.warc.gz"))
    run_pipeline(warcs, workdir, cfg, until="shards")
    return workdir / "shards"


def run_one(shards: Path, out: Path, overrides: list[str], residual: str, seed_offset: int = 0) -> list[dict]:
    cfg = RunConfig.load(None, DEFAULTS + overrides + [f"train.residual={residual}"]).train
    cfg.seed += seed_offset
    name = f"{residual}_seed{cfg.seed}"
    summary = train(shards, out / name, cfg, progress=False)
    print(
        json.dumps({"run": name, **{k: summary[k] for k in ("val_loss", "tokens_per_s", "precision", "device")}}),
        flush=True,
    )
    return read_metrics(out / name)


def compare(fp32: list[dict], bf16: list[dict]) -> dict:
    """Per-step train-loss differences and the validation losses at each eval of both runs."""
    a = {r["step"]: r for r in fp32 if "loss" in r}
    b = {r["step"]: r for r in bf16 if "loss" in r}
    steps = sorted(set(a) & set(b))
    diffs = [b[s]["loss"] - a[s]["loss"] for s in steps]
    val_a = {r["step"]: r["val_loss"] for r in fp32 if r.get("val_loss") is not None}
    val_b = {r["step"]: r["val_loss"] for r in bf16 if r.get("val_loss") is not None}
    evals = [{"step": s, "fp32": val_a[s], "bf16": val_b[s]} for s in sorted(set(val_a) & set(val_b))]
    return {
        "steps": len(steps),
        "train_loss_mean_diff": sum(diffs) / len(diffs) if diffs else None,
        "train_loss_max_abs_diff": max(map(abs, diffs)) if diffs else None,
        "train_loss_last_10": {"fp32": _mean(a, steps[-10:]), "bf16": _mean(b, steps[-10:])},
        "best_val": {"fp32": min(e["fp32"] for e in evals), "bf16": min(e["bf16"] for e in evals)} if evals else None,
        "evals": evals,
    }


def _mean(rows: dict, steps: list[int]) -> float:
    return sum(rows[s]["loss"] for s in steps) / max(len(steps), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shards", type=Path, default=None, help="a shards stage folder (default: built from --warc)")
    parser.add_argument("--warc", type=Path, default=SHARED / "warc", help="a folder of WARC files")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="train.field=value")
    args = parser.parse_args()
    import torch

    out = args.out or Path(tempfile.mkdtemp(prefix="residual-precision-"))
    shards = args.shards or build_shards(args.warc, out / "pipeline")
    if not torch.cuda.is_available():
        print("no CUDA GPU: both runs train in fp32 on CPU, so they are the same run", file=sys.stderr)
    overrides = [f"train.max_steps={args.steps}"] + args.overrides
    fp32 = run_one(shards, out, overrides, "fp32")
    bf16 = run_one(shards, out, overrides, "bf16")
    fp32_next_seed = run_one(shards, out, overrides, "fp32", seed_offset=1)
    result = compare(fp32, bf16)
    result["yardstick_fp32_vs_fp32_next_seed"] = {
        k: v for k, v in compare(fp32, fp32_next_seed).items() if k != "evals"
    }
    for e in result["evals"]:
        print(
            f"step {e['step']:>5}  val fp32 {e['fp32']:.4f}  bf16 {e['bf16']:.4f}  "
            f"(ppl {math.exp(e['fp32']):.1f} vs {math.exp(e['bf16']):.1f})"
        )
    print_result(
        {
            "benchmark": "residual_precision",
            "shards": str(shards),
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
            "torch": torch.__version__,
            "overrides": DEFAULTS + overrides,
            **result,
        }
    )


if __name__ == "__main__":
    main()
