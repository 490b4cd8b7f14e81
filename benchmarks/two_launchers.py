"""Two machines, simulated on one: two torchrun launchers (--nnodes=2, one process each, c10d
rendezvous on 127.0.0.1) against one launcher with --nproc_per_node=2, side by side.

On the 2-GPU machine each launcher sees one GPU (CUDA_VISIBLE_DEVICES), as each node of a real
cluster sees its own; the c10d rendezvous, the process group and the data split are those of a
multi-node run (docs/training.md has the command for N real nodes). Both runs train the same
steps on the same shards with 2 ranks, so their losses must agree step by step (within 1e-3:
BF16 kernels such as attention's backward are not bitwise deterministic).
On a CPU-only machine both runs use gloo (--device cpu), which tests the same launch path.

    python -m benchmarks.two_launchers --shards RUN/shards [--steps 20] [--device auto|cuda|cpu]
        [--port 29517] [--set train.key=value ...]
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import ROOT, last_json_line, print_result, run_json

# a model that trains in seconds: the launch path, not the speed, is under test
SETTINGS = [
    "train.n_layer=6",
    "train.n_head=6",
    "train.n_embd=384",
    "train.block_size=256",
    "train.batch_size=16",
    "train.warmup_steps=5",
    "train.eval_interval=10",
    "train.eval_batches=2",
    "train.checkpoint_interval=1000",
    "train.sample_tokens=0",
    "train.compile=false",
]
TOLERANCE = 1e-3


def environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The launchers' environment: one thread per process unless set (2 ranks share the cores)."""
    return dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), **(extra or {}))


def trainer(shards: Path, out: Path, overrides: list[str]) -> list[str]:
    return ["-m", "model.train", "--shards", str(shards), "--out", str(out), "--quiet", *overrides]


def one_launcher(shards: Path, out: Path, overrides: list[str], timeout: int) -> dict:
    """torchrun --standalone --nproc_per_node=2: both ranks under one launcher."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        *trainer(shards, out, overrides),
    ]
    return run_json(command, env=environment(), timeout=timeout)


def two_launchers(shards: Path, out: Path, overrides: list[str], port: int, gpus: bool, timeout: int) -> dict:
    """Two torchrun launchers, as on two nodes: --nnodes=2, one process each, rendezvous through a
    c10d store on 127.0.0.1 that the first launcher hosts (is_host), the second joins."""
    procs = []
    for node in (0, 1):
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nnodes=2",
            "--nproc_per_node=1",
            "--rdzv_backend=c10d",
            f"--rdzv_endpoint=127.0.0.1:{port}",
            "--rdzv_id=two-launchers",
            f"--rdzv_conf=is_host={1 if node == 0 else 0}",
            *trainer(shards, out, overrides),
        ]
        env = environment({"CUDA_VISIBLE_DEVICES": str(node)} if gpus else None)
        procs.append(
            subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
        time.sleep(1)  # the host launcher's store is up before the second one connects
    outputs = [proc.communicate(timeout=timeout) for proc in procs]
    for node, (proc, (_, stderr)) in enumerate(zip(procs, outputs)):
        if proc.returncode != 0:
            raise SystemExit(f"launcher {node} failed (exit {proc.returncode}):\n{stderr[-3000:]}")
    summaries = [last_json_line(stdout) for stdout, _ in outputs if stdout.strip()]
    return summaries[0]  # printed by the launcher that holds rank 0


def compare(a: list[dict], b: list[dict]) -> dict:
    """Per-step train and validation losses of two runs: the largest difference."""
    assert [r["step"] for r in a] == [r["step"] for r in b], "the runs logged different steps"
    train = [abs(x["loss"] - y["loss"]) for x, y in zip(a, b)]
    val = [abs(x["val_loss"] - y["val_loss"]) for x, y in zip(a, b) if x.get("val_loss") is not None]
    return {
        "steps": len(a),
        "max_abs_loss_diff": max(train),
        "max_abs_val_loss_diff": max(val) if val else None,
        "losses_one_launcher": [round(r["loss"], 5) for r in a],
        "losses_two_launchers": [round(r["loss"], 5) for r in b],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shards", type=Path, required=True, help="a shards stage folder")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    parser.add_argument("--port", type=int, default=29517)
    parser.add_argument("--timeout", type=int, default=400, help="seconds each run may take")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="train.field=value")
    args = parser.parse_args()
    import torch

    from model.training import read_metrics

    gpus = args.device == "cuda" or (args.device == "auto" and torch.cuda.device_count() >= 2)
    overrides = (
        SETTINGS + [f"train.max_steps={args.steps}", f"train.device={'cuda' if gpus else 'cpu'}"] + args.overrides
    )
    out = args.out or Path(tempfile.mkdtemp(prefix="two-launchers-"))
    one = one_launcher(args.shards, out / "one-launcher", overrides, args.timeout)
    two = two_launchers(args.shards, out / "two-launchers", overrides, args.port, gpus, args.timeout)
    result = compare(read_metrics(out / "one-launcher"), read_metrics(out / "two-launchers"))
    print(f"steps {result['steps']}: largest loss difference {result['max_abs_loss_diff']:.2e} (tolerance {TOLERANCE})")
    print_result(
        {
            "benchmark": "two_launchers",
            "device": torch.cuda.get_device_name() if gpus else "cpu (gloo)",
            "torch": torch.__version__,
            "world_size": [one["world_size"], two["world_size"]],
            "overrides": overrides,
            "tokens_per_s": {"one_launcher": one["tokens_per_s"], "two_launchers": two["tokens_per_s"]},
            "within_tolerance": result["max_abs_loss_diff"] <= TOLERANCE,
            "tolerance": TOLERANCE,
            **result,
        }
    )


if __name__ == "__main__":
    main()
