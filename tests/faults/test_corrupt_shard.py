"""Fault 4 of issue 19: bytes flipped in a token shard after the shards stage finished.

The promise: training reads no damaged shard, in a fresh run as after a resume (every shard is
checked against manifest.json's sha256 when it is loaded, model/data.py); `crawl2gpt run` stops
with one message that names the shard and the command that rebuilds it (exit 2, no traceback);
nothing already finished is lost or changed; and after that command, rerunning `crawl2gpt run`
gives what an undisturbed run gives: the same shard bytes, the same losses, the same weights.

One run folder serves the whole module: its data stages are built once in this process (a run
folder cannot be copied: its manifests name their inputs by absolute path), the undisturbed
training goes to a folder beside it, and each test damages a shard, sees the failure through the
real CLI (subprocesses against one Prefect server), runs the printed command and reruns. Those
two tests are in make test-slow (a minute each on 2 cores); make test keeps the check itself under
torchrun, on the small shards folder the other training tests share.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crawl2gpt.config import RunConfig
from crawl2gpt.runner import run_pipeline
from helpers.fault_runs import SAMPLE_RUN_SETTINGS
from helpers.model_shards import SETTINGS as TINY_TRAIN
from helpers.model_shards import make_shards
from model.checkpoint import latest_checkpoint
from model.train import train
from model.train_stage import TRAIN
from model.training import read_metrics
from pipeline.errors import ShardChecksumError, StageIncompleteError
from pipeline.shard_format import load_manifest
from pipeline.stage import read_manifest, run_stage

pytestmark = [pytest.mark.faults, pytest.mark.usefixtures("one_torch_thread")]

CLI = Path(sys.executable).with_name("crawl2gpt")
DATA_STAGES = ("extract", "filter", "dedup", "tokenizer", "shards")
# A tiny model on the bundled sample: 20 steps, evaluation at 10 and 20, checkpoints every 5.
SETTINGS = [*SAMPLE_RUN_SETTINGS, "train.checkpoint_interval=5", "workers=1"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def flip_bytes(path: Path) -> None:
    """Invert 4 bytes in the middle of the file, in place (same size): what bit rot or a bad copy does."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4] = bytes(b ^ 0xFF for b in data[middle : middle + 4])
    with open(path, "r+b") as fh:
        fh.write(data)


def files_of(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def shard_sums(shards: Path) -> dict[str, str]:
    return {e["path"]: sha256(shards / e["path"]) for e in load_manifest(shards)["shards"]}


def without_timings(manifest: dict) -> dict:
    """A _stage.json less what differs between two runs of the same work: when, and how long."""

    def drop(value):
        if not isinstance(value, dict):
            return value
        return {
            k: drop(v)
            for k, v in value.items()
            if k not in ("seconds", "started_at", "finished_at") and not k.endswith(("_seconds", "_s"))
        }

    return drop(manifest)


def training_record(train_dir: Path) -> dict:
    """What must equal the undisturbed run: every step's loss (and evaluation), and the final weights."""
    rows = [(r["step"], r["loss"], r.get("val_loss")) for r in read_metrics(train_dir)]
    return {"rows": rows, "weights": sha256(latest_checkpoint(train_dir / "checkpoints") / "model.safetensors")}


@pytest.fixture(scope="module")
def cli_env(prefect_api) -> dict[str, str]:
    """The CLI against this session's Prefect server (one server start instead of one per command),
    on one torch thread as in this process, so its floating-point sums are the same."""
    from prefect.settings import PREFECT_API_URL

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return env | {
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "OMP_NUM_THREADS": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory, sample_warc) -> dict:
    """The run folder with its data stages done, its pristine shards, and the undisturbed training."""
    root = tmp_path_factory.mktemp("corrupt-shard")
    run, cfg = root / "run", RunConfig.load(None, SETTINGS)
    run_pipeline([str(sample_warc)], run, cfg, until="shards")
    shutil.copytree(run / "shards", root / "pristine-shards")
    run_stage(TRAIN, [str(run / "shards")], root / "undisturbed-train", cfg, atomic=False)
    return {
        "run": run,
        "cfg": cfg,
        "warc": str(sample_warc),
        "pristine": root / "pristine-shards",
        "undisturbed": training_record(root / "undisturbed-train"),
        "manifests": {name: without_timings(read_manifest(run / name)) for name in DATA_STAGES},
    }


def crawl2gpt(args: list[str], env: dict[str, str]) -> tuple[int, list[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [str(CLI), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600
    )
    return done.returncode, done.stdout.splitlines(), time.monotonic() - started


def run_command(folder: dict) -> list[str]:
    args = ["run", "--input", folder["warc"], "--workdir", str(folder["run"])]
    return args + [word for item in SETTINGS for word in ("--set", item)]


def start_clean(folder: dict) -> Path:
    """Each test starts from the pristine shards (a failed test must not leave the next one a damaged one)."""
    shards = folder["run"] / "shards"
    for name in shard_sums(folder["pristine"]):
        shutil.copyfile(folder["pristine"] / name, shards / name)
    assert shard_sums(shards) == shard_sums(folder["pristine"])
    return shards


def fails_with_one_message(folder: dict, damaged: Path, env: dict[str, str]) -> list[str]:
    """`crawl2gpt run` stops with exit 2 and one message naming the shard and the fix; returns the fix."""
    code, lines, seconds = crawl2gpt(run_command(folder), env)
    print(f"damaged {damaged.name}: crawl2gpt run exited {code} after {seconds:.1f} s")
    assert code == 2, lines[-30:]
    assert not any("Traceback" in line for line in lines), lines
    assert lines[-2].startswith("crawl2gpt: ShardChecksumError (full traceback in ")
    message = lines[-1]
    assert message.startswith(f"crawl2gpt: error: shard {damaged} does not match its checksum"), message
    assert (
        "resumes from its last checkpoint" in message
        and "Adding --force shards to your crawl2gpt run command" in message
    )
    fix = shlex.split(message.split("Rebuild with: ", 1)[1])
    assert fix[:3] == ["crawl2gpt", "stage", "shards"] and "--force" in fix
    with pytest.raises(StageIncompleteError):  # the interrupted training is not a finished stage anyone reads
        read_manifest(folder["run"] / "train")
    return fix


def recovers(folder: dict, fix: list[str] | None, env: dict[str, str]) -> None:
    """The printed command rebuilds byte-identical shards and the rerun trains (fix=None: the
    message's other way, the run command with --force shards, does both): every data stage as
    it was, and the undisturbed run's losses and weights."""
    rerun = run_command(folder)
    if fix is not None:
        code, lines, _ = crawl2gpt(fix[1:], env)
        assert code == 0, lines[-30:]
        assert shard_sums(folder["run"] / "shards") == shard_sums(folder["pristine"])
    else:
        rerun += ["--force", "shards"]
    code, lines, _ = crawl2gpt(rerun, env)
    assert code == 0, lines[-30:]
    assert shard_sums(folder["run"] / "shards") == shard_sums(folder["pristine"])
    for name in DATA_STAGES:
        assert without_timings(read_manifest(folder["run"] / name)) == folder["manifests"][name], name
    assert training_record(folder["run"] / "train") == folder["undisturbed"]


@pytest.mark.slow  # ~60 s: the data stages, an undisturbed training and three CLI runs
def test_fresh_training_refuses_a_damaged_val_shard_then_recovers(run_folder, cli_env):
    """No checkpoint yet; the damaged shard is the validation one, first read at step 10's evaluation
    if nothing checked it earlier: the trainer opens it before step 1."""
    shards = start_clean(run_folder)
    shutil.rmtree(run_folder["run"] / "train", ignore_errors=True)
    finished = {name: files_of(run_folder["run"] / name) for name in DATA_STAGES}
    damaged = shards / "val-00000.parquet"
    flip_bytes(damaged)
    finished["shards"][damaged.name] = sha256(damaged)

    fix = fails_with_one_message(run_folder, damaged, cli_env)
    assert {
        name: files_of(run_folder["run"] / name) for name in DATA_STAGES
    } == finished  # nothing finished was touched
    assert latest_checkpoint(run_folder["run"] / "train" / "checkpoints") is None  # it stopped before step 1
    recovers(run_folder, fix, cli_env)


@pytest.mark.slow  # ~60 s, as the test above
def test_resumed_training_refuses_a_damaged_train_shard_then_resumes(run_folder, cli_env):
    """Training stopped after step 10 (its checkpoint is there); then the train shard it was reading
    is damaged. The resumed run checks it again before step 11, keeps the checkpoints as they are,
    and `crawl2gpt run --force shards` rebuilds the shards and resumes from step 10 to the
    undisturbed run's numbers."""
    shards = start_clean(run_folder)
    train_dir = run_folder["run"] / "train"
    shutil.rmtree(train_dir, ignore_errors=True)

    class Stopped(Exception):
        pass

    def stop_after_10(step: int, loss: float) -> None:
        if step == 10:
            raise Stopped

    with pytest.raises(Stopped):  # as a killed `crawl2gpt run` leaves it: checkpoints 5 and 10, no _stage.json
        train(shards, train_dir, run_folder["cfg"].train, progress=False, on_step=stop_after_10)
    checkpoints = files_of(train_dir / "checkpoints")
    damaged = shards / "train-00000.parquet"
    flip_bytes(damaged)

    fails_with_one_message(run_folder, damaged, cli_env)
    assert files_of(train_dir / "checkpoints") == checkpoints  # the checkpoints it resumes from are untouched
    assert [r["step"] for r in read_metrics(train_dir)][-1] == 10  # not one step trained on the damaged shard
    recovers(run_folder, None, cli_env)  # this time the other way the message gives: run --force shards
    assert read_manifest(train_dir)["stats"]["extra"]["resumed_from"].endswith("step-000010")


def test_launched_ranks_report_the_damaged_shard_as_itself(tmp_path_factory, tmp_path, monkeypatch):
    """train.nproc_per_node=2: the ranks run under torchrun; the launcher raises the ranks' error as
    a ShardChecksumError (the CLI's one message), not torchrun's RuntimeError with every traceback."""
    shards = tmp_path / "shards"
    shutil.copytree(make_shards(tmp_path_factory.getbasetemp() / "model-shards"), shards)
    flip_bytes(shards / "val-00000.parquet")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    cfg = RunConfig().with_overrides([*TINY_TRAIN, "train.nproc_per_node=2"])
    with pytest.raises(ShardChecksumError, match=r"val-00000\.parquet does not match its checksum"):
        run_stage(TRAIN, [str(shards)], tmp_path / "train", cfg, atomic=False)
