"""The training loop and the train stage: learning, outputs, exact resume, schedule, LSTM."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from crawl2gpt.config import RunConfig
from helpers.model_shards import TINY_TRAIN, make_shards
from model.checkpoint import checkpoint_dirs, latest_checkpoint, read_state
from model.config import TrainConfig
from model.train import train
from model.train_stage import TRAIN
from model.training import cosine_lr, read_metrics
from pipeline.stage import read_manifest, run_stage

TINY = dict(TINY_TRAIN, precision="bf16")


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return make_shards(tmp_path_factory.getbasetemp() / "model-shards")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def cfg(**kw) -> TrainConfig:
    return TrainConfig(**dict(TINY, **kw))


def test_training_learns_and_writes_its_outputs(shards, tmp_path):
    settings = cfg(max_steps=30, eval_interval=10, checkpoint_interval=10)
    summary = train(shards, tmp_path, settings, progress=False)
    rows = read_metrics(tmp_path)
    assert [r["step"] for r in rows] == list(range(1, 31))
    assert [r["lr"] for r in rows] == [cosine_lr(s, settings.learning_rate, settings.min_lr, 2, 30) for s in range(30)]
    assert rows[-1]["loss"] < rows[0]["loss"] - 0.5
    evals = [r for r in rows if "val_loss" in r]
    assert [r["step"] for r in evals] == [10, 20, 30]
    assert evals[-1]["val_loss"] < evals[0]["val_loss"]
    assert summary["val_perplexity"] == pytest.approx(math.exp(summary["val_loss"]))
    totals = json.loads((shards / "manifest.json").read_text())["totals"]["val"]  # bits per byte: the val text's
    for r in evals + [summary]:  # tokens per UTF-8 byte, counted from its documents, times nats / ln 2
        assert r["val_bpb"] == pytest.approx(r["val_loss"] * totals["tokens"] / totals["bytes"] / math.log(2))
    assert summary["precision"] == "fp32" and summary["steps"] == 30 and summary["params"] > 0
    assert (tmp_path / "samples.txt").read_text().count("--- step") == 3
    assert (tmp_path / "loss.png").stat().st_size > 1000
    assert [p.name for p in checkpoint_dirs(tmp_path / "checkpoints")] == ["step-000020", "step-000030"]  # keep 2
    state = read_state(latest_checkpoint(tmp_path / "checkpoints"))
    assert state["step"] == 30 and state["loader"]["chunk_pos"] > 0


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_interrupted_run_resumes_with_identical_losses(shards, tmp_path, optimizer):
    """Kill after step 7 (checkpoint at 6), resume: every loss equals the uninterrupted run's
    (with Muon too: its momentum buffers are in the checkpoint beside AdamW's moments)."""
    settings = cfg(
        max_steps=12,
        eval_interval=4,
        checkpoint_interval=3,
        dropout=0.1,  # dropout: RNG must be restored
        optimizer=optimizer,
    )
    train(shards, tmp_path / "straight", settings, progress=False)

    class Killed(Exception):
        pass

    def kill_at_7(step, loss):
        if step == 7:
            raise Killed

    with pytest.raises(Killed):
        train(shards, tmp_path / "resumed", settings, progress=False, on_step=kill_at_7)
    assert latest_checkpoint(tmp_path / "resumed/checkpoints").name == "step-000006"
    summary = train(shards, tmp_path / "resumed", settings, progress=False)
    assert summary["resumed_from"].endswith("step-000006")
    straight, resumed = read_metrics(tmp_path / "straight"), read_metrics(tmp_path / "resumed")
    assert [r["step"] for r in resumed] == list(range(1, 13))  # the lost step 7 line was dropped, then rewritten
    assert [r["loss"] for r in resumed] == [r["loss"] for r in straight]
    assert [r.get("val_loss") for r in resumed] == [r.get("val_loss") for r in straight]


def test_changed_optimizer_does_not_resume(shards, tmp_path):
    adamw = cfg(max_steps=3, eval_interval=3, checkpoint_interval=3, optimizer="adamw")
    train(shards, tmp_path, adamw, progress=False)
    summary = train(
        shards, tmp_path, cfg(max_steps=3, eval_interval=3, checkpoint_interval=3, optimizer="muon"), progress=False
    )
    assert summary["resumed_from"] is None and summary["steps"] == 3
    assert list(tmp_path.glob("checkpoints.incompatible-*"))


def test_changed_architecture_does_not_resume(shards, tmp_path):
    train(shards, tmp_path, cfg(max_steps=3, eval_interval=3, checkpoint_interval=3), progress=False)
    summary = train(
        shards, tmp_path, cfg(max_steps=3, eval_interval=3, checkpoint_interval=3, n_embd=48), progress=False
    )
    assert summary["resumed_from"] is None and summary["steps"] == 3
    assert list(tmp_path.glob("checkpoints.incompatible-*"))


def test_checkpoint_from_before_rope_base_was_a_setting_resumes(shards, tmp_path):
    """Checkpoints written before train.rope_base existed store no rope_base (their model used
    10000): a run with the default resumes from one; another rope_base is another architecture."""
    rope = dict(eval_interval=3, checkpoint_interval=3, positions="rope")
    train(shards, tmp_path, cfg(max_steps=3, **rope), progress=False)
    ckpt = latest_checkpoint(tmp_path / "checkpoints")
    state = json.loads((ckpt / "state.json").read_text())
    assert state["model_config"].pop("rope_base") == 10000.0
    (ckpt / "state.json").write_text(json.dumps(state))  # as the code before this setting wrote it
    assert train(shards, tmp_path, cfg(max_steps=4, **rope), progress=False)["resumed_from"] == str(ckpt)
    changed = train(shards, tmp_path, cfg(max_steps=6, rope_base=500000.0, **rope), progress=False)
    assert changed["resumed_from"] is None and list(tmp_path.glob("checkpoints.incompatible-*"))
    assert read_state(latest_checkpoint(tmp_path / "checkpoints"))["model_config"]["rope_base"] == 500000.0


def test_lstm_trains_through_the_same_loop(shards, tmp_path):
    summary = train(
        shards,
        tmp_path,
        cfg(arch="lstm", n_layer=1, max_steps=15, eval_interval=15, checkpoint_interval=15, learning_rate=1e-2),
        progress=False,
    )
    rows = read_metrics(tmp_path)
    assert summary["arch"] == "lstm" and rows[-1]["loss"] < rows[0]["loss"]


def test_train_stage_runs_in_place_and_reports(shards, tmp_path):
    run_cfg = RunConfig(train=cfg(max_steps=4, eval_interval=2, checkpoint_interval=2))
    out = tmp_path / "train"
    stats = run_stage(TRAIN, [str(shards)], out, run_cfg, atomic=False)
    for key in (
        "final_train_loss",
        "val_loss",
        "val_perplexity",
        "tokens_per_s",
        "steps",
        "params",
        "device",
        "sample",
    ):
        assert key in stats.extra
    assert stats.extra["steps"] == 4 and isinstance(stats.extra["sample"], str)
    assert read_manifest(out)["stats"]["extra"]["steps"] == 4
    again = run_stage(TRAIN, [str(shards)], out, run_cfg, atomic=False)
    assert again.skipped
    with pytest.raises(Exception, match="one shards folder"):
        TRAIN.plan([str(shards), str(shards)], run_cfg)
    json.dumps(stats.to_dict())  # the manifest body is JSON


def test_sigkilled_process_resumes_with_identical_losses(shards, tmp_path):
    """A real kill -9 of `python -m model.train` at an arbitrary moment (maybe mid-checkpoint)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    settings = dict(TINY, max_steps=40, eval_interval=10, checkpoint_interval=4, dropout=0.1)
    train(shards, tmp_path / "straight", cfg(**settings), progress=False)
    out = tmp_path / "killed"
    overrides = [f"train.{k}={v}" for k, v in settings.items()]
    proc = subprocess.Popen(
        [sys.executable, "-m", "model.train", "--shards", str(shards), "--out", str(out), "--quiet", *overrides],
        cwd=Path(__file__).parents[1],
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while latest_checkpoint(out / "checkpoints") is None and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = latest_checkpoint(out / "checkpoints")
    assert killed_at is not None and read_state(killed_at)["step"] < 40, "the kill came before the run finished"
    summary = train(shards, out, cfg(**settings), progress=False)
    assert summary["resumed_from"] is not None
    assert [r["loss"] for r in read_metrics(out)] == [r["loss"] for r in read_metrics(tmp_path / "straight")]


def test_resume_drops_a_metrics_line_torn_by_the_kill(shards, tmp_path):
    settings = cfg(max_steps=6, eval_interval=3, checkpoint_interval=3)
    train(shards, tmp_path, settings, progress=False)
    import shutil

    shutil.rmtree(tmp_path / "checkpoints/step-000006")
    with open(tmp_path / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 7, "lo')  # the kill hit mid-line
    train(shards, tmp_path, settings, progress=False)
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3, 4, 5, 6]


def test_without_validation_shards_training_runs_and_says_so(shards, tmp_path):
    import shutil

    copy = tmp_path / "shards"
    shutil.copytree(shards, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["shards"] = [e for e in manifest["shards"] if e["split"] != "val"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    summary = train(copy, tmp_path / "out", cfg(max_steps=2, eval_interval=1, checkpoint_interval=2), progress=False)
    assert summary["val_loss"] is None and summary["val_perplexity"] is None and summary["val_bpb"] is None
    assert all("val_loss" not in r for r in read_metrics(tmp_path / "out"))


def test_bf16_on_cpu_falls_back_to_fp32_with_a_note(shards, tmp_path, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="crawl2gpt.train"):
        summary = train(
            shards, tmp_path, cfg(max_steps=1, eval_interval=1, checkpoint_interval=1, precision="bf16"), progress=False
        )
    assert summary["precision"] == "fp32"
    assert any("CPU trains in fp32" in r.getMessage() for r in caplog.records)


def test_reading_each_step_a_step_late_changes_nothing_but_timing(shards, tmp_path, monkeypatch):
    """On a GPU the loop queues step n + 1 before it reads step n's loss (model/train.py); forced
    on here, every row, evaluation, checkpoint and the on_step order equal the plain loop's."""
    from model import train as train_module

    settings = cfg(max_steps=9, eval_interval=4, checkpoint_interval=3, dropout=0.1)
    seen_plain, seen_ahead = [], []
    train(shards, tmp_path / "plain", settings, progress=False, on_step=lambda s, loss: seen_plain.append((s, loss)))
    monkeypatch.setattr(train_module, "reads_a_step_late", lambda device: True)
    summary = train(
        shards, tmp_path / "ahead", settings, progress=False, on_step=lambda s, loss: seen_ahead.append((s, loss))
    )
    plain, ahead = read_metrics(tmp_path / "plain"), read_metrics(tmp_path / "ahead")
    assert seen_ahead == seen_plain and [s for s, _ in seen_ahead] == list(range(1, 10))
    for key in ("step", "loss", "lr", "grad_norm", "val_loss"):
        assert [r.get(key) for r in ahead] == [r.get(key) for r in plain], key
    assert [p.name for p in checkpoint_dirs(tmp_path / "ahead/checkpoints")] == ["step-000006", "step-000009"]
    state = read_state(latest_checkpoint(tmp_path / "ahead/checkpoints"))
    assert state["loader"] == read_state(latest_checkpoint(tmp_path / "plain/checkpoints"))["loader"]
    assert summary["steps"] == 9 and summary["tokens_per_s"] > 0
