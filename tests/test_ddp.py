"""DDP through torchrun on 2 CPU processes (gloo) = 1 process with 2x gradient accumulation.

The loader gives rank r its n-th batch as global chunk 2n + r, the single process's micro-steps
2n and 2n + 1; DDP averages gradients over ranks as accumulation averages over micro-steps.
So the losses agree to float rounding (the all-reduce sums in another order).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.model_shards import SETTINGS, make_shards
from model.training import read_metrics

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return make_shards(tmp_path_factory.getbasetemp() / "model-shards")


def run(args: list[str], out: Path, timeout: int = 240) -> tuple[list[dict], dict]:
    """(metrics.jsonl rows, the summary rank 0 prints last) of one training process group."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return read_metrics(out), json.loads(done.stdout.strip().splitlines()[-1])


def torchrun(nproc: int, shards: Path, out: Path, extra: list[str]) -> tuple[list[dict], dict]:
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    trainer = ["-m", "model.train", "--shards", str(shards), "--out", str(out), "--quiet", *SETTINGS, *extra]
    return run(launcher + trainer, out)


def assert_same_rows(a: list[dict], b: list[dict], rel: float, abs_: float = 0.0) -> None:
    """Both runs wrote a row for every step (not none, not fewer) with equal losses and evaluations."""
    assert len(a) == len(b) > 0, f"{len(a)} rows against {len(b)}"
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(1, len(a) + 1))
    for x, y in zip(a, b):
        assert y["loss"] == pytest.approx(x["loss"], rel=rel, abs=abs_), x["step"]
        assert ("val_loss" in x) == ("val_loss" in y), x["step"]
        if "val_loss" in x:
            assert y["val_loss"] == pytest.approx(x["val_loss"], rel=rel, abs=abs_), x["step"]


# ~15 s of CPU for two ranks under torchrun: make test-slow. make test launches DDP through the train
# stage instead (tests/test_train_launch.py), with the same comparison against accumulation.
@pytest.mark.slow
def test_ddp_two_cpu_processes_match_one_process_with_accumulation(shards, tmp_path):
    from crawl2gpt.config import RunConfig
    from model.train import train

    one_process = RunConfig().with_overrides(SETTINGS + ["train.grad_accum_steps=2"]).train
    train(shards, tmp_path / "one", one_process, progress=False)
    single = read_metrics(tmp_path / "one")
    ddp, _ = torchrun(2, shards, tmp_path / "ddp", [])
    assert len(single) == 6
    assert_same_rows(single, ddp, rel=1e-5, abs_=1e-6)
    assert single[-1]["loss"] < single[0]["loss"]
    assert (tmp_path / "ddp/checkpoints/step-000006/state.json").is_file()  # rank 0 saved
    assert json.loads((tmp_path / "ddp/checkpoints/step-000006/state.json").read_text())["world_size"] == 2


@pytest.mark.slow
def test_fsdp_two_cpu_processes_match_ddp(shards, tmp_path):
    ddp, _ = torchrun(2, shards, tmp_path / "ddp", [])
    fsdp, _ = torchrun(2, shards, tmp_path / "fsdp", ["train.parallel=fsdp", "train.fsdp_unit=block"])
    one_unit, _ = torchrun(2, shards, tmp_path / "fsdp-model", ["train.parallel=fsdp"])  # auto: one group under 1B
    assert len(ddp) == 6
    assert_same_rows(ddp, fsdp, rel=1e-4)
    assert_same_rows(ddp, one_unit, rel=1e-4)  # one sharding group for the whole model trains the same


@pytest.mark.slow
@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_distributed_checkpoint_resumes_with_the_same_losses(shards, tmp_path, parallel):
    """Resume after a kill under DDP or FSDP2 (full tensors gathered from shards, each rank's RNG
    restored, dropout on): the losses after the resume are those of the uninterrupted run."""
    import shutil

    out = tmp_path / parallel
    settings = [f"train.parallel={parallel}", "train.dropout=0.1"]
    straight, _ = torchrun(2, shards, out, settings)
    shutil.rmtree(out / "checkpoints/step-000006")  # as if killed right after the step-3 checkpoint
    resumed, summary = torchrun(2, shards, out, settings)
    assert summary["resumed_from"].endswith("step-000003")
    assert len(straight) == 6
    assert_same_rows(straight, resumed, rel=1e-6)
    # A plain process reads the final checkpoint (full tensors, whatever the sharding): its model
    # gives the validation loss the run logged at that step, on the same batches.
    import torch

    from crawl2gpt.config import RunConfig
    from model.data import TokenWindows
    from model.training import load_model

    cfg = RunConfig().with_overrides(SETTINGS).train
    model, state, _ = load_model(out)
    assert state["step"] == 6
    val = TokenWindows(shards, "val", cfg.block_size, cfg.batch_size, seed=cfg.seed)
    with torch.no_grad():
        loss = sum(model.eval()(*val.next_batch())[1].item() for _ in range(cfg.eval_batches)) / cfg.eval_batches
    assert loss == pytest.approx(resumed[-1]["val_loss"], rel=1e-5)


FSDP_BF16_SCRIPT = """
import json, sys
from contextlib import nullcontext
import torch
from model import distributed
from model.config import TrainConfig
from model.gpt import GPT, GPTConfig, param_groups

torch.set_num_threads(1)
world = distributed.init("cpu")
result = {}
for mode in ("ddp", "fsdp"):
    cfg = TrainConfig(parallel=mode, compile=False)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=128, block_size=32, n_layer=2, n_head=2, n_embd=32))
    runner = distributed.prepare(model, world, cfg, "bf16")
    casts = distributed.fsdp_casts_params(cfg, world, "bf16")
    autocast = nullcontext if casts else (lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    optimizer = torch.optim.AdamW(param_groups(model, 0.1), lr=1e-2)
    batches = torch.Generator().manual_seed(world.rank)
    losses = []
    for step in range(5):
        window = torch.randint(0, 128, (4, 33), generator=batches)
        with autocast():
            _, loss = runner(window[:, :-1], window[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(runner.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(distributed.mean(loss, world))
    dtypes = sorted({str(p.dtype) for p in model.parameters()})
    result[mode] = {"losses": losses, "bf16_params": casts, "param_dtypes": dtypes}
if world.is_main:
    print(json.dumps(result))
distributed.shutdown(world)
"""


@pytest.mark.slow  # ~25 s under torchrun
def test_fsdp_with_bf16_weights_matches_ddp_under_bf16_autocast(tmp_path):
    """FSDP2's MixedPrecisionPolicy (bf16 weights gathered and computed in, fp32 gradient reduction,
    autocast off) against DDP with fp32 weights under bf16 autocast: the same losses within bf16
    rounding. On CPU with gloo (the trainer forces fp32 on CPU, so the policy is driven directly)."""
    script = tmp_path / "fsdp_bf16.py"
    script.write_text(FSDP_BF16_SCRIPT)
    _, result = run(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)], tmp_path)
    assert result["fsdp"]["bf16_params"] and not result["ddp"]["bf16_params"]
    assert result["fsdp"]["param_dtypes"] == ["torch.float32"]  # the sharded master weights stay fp32 for AdamW
    assert result["fsdp"]["losses"] == pytest.approx(result["ddp"]["losses"], abs=5e-3)
    assert result["fsdp"]["losses"] != result["ddp"]["losses"]  # bf16 weights did round differently


@pytest.mark.slow
def test_two_launchers_with_c10d_rendezvous_train_like_one(shards, tmp_path):
    """Two torchrun launchers (--nnodes=2, c10d rendezvous on 127.0.0.1), as two machines would run
    them, give the losses of one launcher with two processes (python -m benchmarks.two_launchers, gloo)."""
    import socket

    with socket.socket() as probe:  # a free port for the rendezvous store
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        "-m",
        "benchmarks.two_launchers",
        "--shards",
        str(shards),
        "--out",
        str(tmp_path),
        "--device",
        "cpu",
        "--steps",
        "4",
        "--port",
        str(port),
        *[f"--set={s}" for s in SETTINGS if "max_steps" not in s],
    ]
    _, result = run(command, tmp_path / "two-launchers", timeout=400)
    assert result["world_size"] == [2, 2] and result["steps"] == 4
    assert result["within_tolerance"] and result["max_abs_loss_diff"] <= 1e-6  # gloo on CPU: the same sums
