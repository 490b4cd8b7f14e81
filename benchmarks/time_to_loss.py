"""Time to loss: AdamW against Muon (train.optimizer) on the same real shards, token budget and seeds.

Each (optimizer, seed) is one run of the trainer (`python -m model.train`, a child process) with
the same settings but train.optimizer and train.seed: GPT-2 124M's body by default, --steps
optimizer steps of --batch-size x --block-size tokens (the token budget), the same warmup and
cosine schedule, validation every --eval-every steps over the same batches (--eval-batches).
From each run's metrics.jsonl: validation loss against tokens seen and against training seconds
(the steps' own wall time: evaluation excluded, and the first step, which compiles, counted at the
second step's time).

The verdict compares the final validation loss: Muon wins when its mean over the seeds is below
AdamW's by more than the seed spread (the largest difference between two seeds of one optimizer).
The best validation loss of each run is reported too: on a small corpus a long budget overfits.

    python -m benchmarks.time_to_loss --shards runs/x/shards [--steps 60] [--batch-size 16] [--block-size 512]
        [--seeds 1337,1338] [--optimizers adamw,muon] [--work .bench/time_to_loss] [--set train.key=value ...]
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from pathlib import Path

from benchmarks.harness import BENCH_DIR, ROOT, module_command, print_result, run_json

SHAPES = {"gpt2": (12, 12, 768), "tiny": (2, 2, 64)}


def run_settings(args, optimizer: str, seed: int) -> list[str]:
    n_layer, n_head, n_embd = SHAPES[args.shape]
    return [
        f"train.optimizer={optimizer}",
        f"train.seed={seed}",
        f"train.n_layer={n_layer}",
        f"train.n_head={n_head}",
        f"train.n_embd={n_embd}",
        f"train.block_size={args.block_size}",
        f"train.batch_size={args.batch_size}",
        f"train.max_steps={args.steps}",
        f"train.warmup_steps={max(1, args.steps // 10)}",
        f"train.eval_interval={args.eval_every}",
        f"train.eval_batches={args.eval_batches}",
        f"train.checkpoint_interval={10 * args.steps}",
        "train.sample_tokens=0",
        *args.set,
    ]


def curve(out_dir: Path, tokens_per_step: int) -> list[dict]:
    """(step, tokens, seconds, val_loss) at each evaluation, from the run's metrics.jsonl."""
    rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    step_seconds = [tokens_per_step / r["tokens_per_s"] for r in rows]
    if len(step_seconds) > 1:
        step_seconds[0] = step_seconds[1]  # the first step compiles and warms up: counted as the second
    points, seconds = [], 0.0
    for row, s in zip(rows, step_seconds):
        seconds += s
        if row.get("val_loss") is not None:
            points.append(
                {
                    "step": row["step"],
                    "tokens": row["step"] * tokens_per_step,
                    "seconds": round(seconds, 3),
                    "val_loss": row["val_loss"],
                }
            )
    return points


def val_at(points: list[dict], key: str, x: float) -> float:
    """Validation loss at `key` (tokens or seconds) = x, linearly between evaluations."""
    for a, b in zip(points, points[1:]):
        if a[key] <= x <= b[key]:
            t = (x - a[key]) / (b[key] - a[key]) if b[key] > a[key] else 0.0
            return a["val_loss"] + t * (b["val_loss"] - a["val_loss"])
    return points[-1]["val_loss"] if x >= points[-1][key] else points[0]["val_loss"]


def verdict(runs: list[dict], seconds_budget: float) -> dict:
    """Per optimizer: mean and spread of the final and best validation loss, and the loss at the
    seconds every run reached; whether Muon beats AdamW by more than the seed spread."""
    by_opt: dict[str, dict] = {}
    for r in runs:
        entry = by_opt.setdefault(r["optimizer"], {"final": [], "best": [], "at_seconds": []})
        entry["final"].append(r["final_val"])
        entry["best"].append(r["best_val"])
        entry["at_seconds"].append(val_at(r["curve"], "seconds", seconds_budget))
    out = {}
    for name, entry in by_opt.items():
        out[name] = {f"{k}_mean": statistics.mean(v) for k, v in entry.items()}
        out[name].update({f"{k}_spread": max(v) - min(v) for k, v in entry.items()})
    if {"adamw", "muon"} <= set(out):
        spread = max(out["adamw"]["final_spread"], out["muon"]["final_spread"])
        gain = out["adamw"]["final_mean"] - out["muon"]["final_mean"]
        out["muon_gain_final"] = gain
        out["seed_spread_final"] = spread
        out["muon_gain_at_seconds"] = out["adamw"]["at_seconds_mean"] - out["muon"]["at_seconds_mean"]
        out["muon_wins"] = gain > spread
    out["seconds_compared"] = seconds_budget
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shards", required=True)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="gpt2")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--block-size", type=int, default=512)
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--eval-batches", type=int, default=6)
    parser.add_argument("--seeds", default="1337,1338")
    parser.add_argument("--optimizers", default="adamw,muon")
    parser.add_argument("--work", type=Path, default=BENCH_DIR / "time_to_loss")
    parser.add_argument("--set", action="append", default=[], metavar="train.KEY=VALUE", help="more trainer settings")
    args = parser.parse_args()
    shards = str(Path(args.shards).resolve())
    tokens_per_step = args.batch_size * args.block_size
    runs = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for optimizer in args.optimizers.split(","):
            out = args.work / f"{optimizer}-{seed}"
            shutil.rmtree(out, ignore_errors=True)  # a leftover checkpoint would resume
            summary = run_json(
                module_command(
                    "model.train", ["--shards", shards, "--out", out, "--quiet", *run_settings(args, optimizer, seed)]
                ),
                cwd=ROOT,
            )
            points = curve(out, tokens_per_step)
            runs.append(
                {
                    "optimizer": optimizer,
                    "seed": seed,
                    "final_val": points[-1]["val_loss"],
                    "best_val": min(p["val_loss"] for p in points),
                    "train_seconds": points[-1]["seconds"],
                    "tokens_per_s": summary.get("tokens_per_s"),
                    "compiled": summary.get("compiled"),
                    "device": summary.get("device"),
                    "curve": points,
                }
            )
            print(
                f"{optimizer:<6} seed {seed}: final val {runs[-1]['final_val']:.4f}, best {runs[-1]['best_val']:.4f}, "
                f"{runs[-1]['train_seconds']:.1f} s of steps",
                flush=True,
            )
    seconds_budget = min(r["train_seconds"] for r in runs)
    result = {
        "benchmark": "time_to_loss",
        "device": _device_name(),
        "shards": args.shards,
        "shape": args.shape,
        "tokens_budget": args.steps * tokens_per_step,
        "settings": run_settings(args, "OPTIMIZER", 0),
        "runs": runs,
        "verdict": verdict(runs, seconds_budget),
    }
    print_result(result)


def _device_name() -> str:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


if __name__ == "__main__":
    main()
