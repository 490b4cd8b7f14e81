"""Fault 3 of issue 19: a stage's write finds no room, ENOSPC on a full disk or EFBIG past a file-size limit.

Two ways to provoke it, chosen by what the machine allows (the test prints which one ran):
  tmpfs   (mount rights, e.g. root) the run folder is a tmpfs of its own. A first run writes
          extract; the tmpfs is then shrunk to what it holds plus 64 KiB (`mount -o remount,size=`),
          so the filter stage's Parquet part finds the disk full: ENOSPC. Cleared by growing it back.
  rlimit  (no mount rights; CRAWL2GPT_FAULTS_NO_MOUNT=1 forces it) the second run's CLI process,
          and the workers it spawns, get RLIMIT_FSIZE = 64 KiB with SIGXFSZ ignored, so the
          same write fails with EFBIG instead of killing the process. Cleared by running without it.
The same is done to training's checkpoint write (`crawl2gpt train`): with a tmpfs that holds one
checkpoint and a half, the second checkpoint fails, the first survives and the rerun resumes
from it; with the file-size limit the first checkpoint already fails and the rerun starts over.

Promise checked (docs/reliability.md): exit code 2 and one message naming the fault, the folder
and the fix, no traceback; extract unchanged, no filter folder, no temporary folder left; after the
fault is cleared, a rerun writes exactly the stage folders of an undisturbed run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from crawl2gpt.config import RunConfig
from crawl2gpt.runner import run_pipeline
from helpers.fault_runs import SAMPLE_SETTINGS, cli_env, leftovers, run_cli, run_snapshot
from helpers.programs import find_program
from pipeline.extract.stage import EXTRACT
from pipeline.stage import run_stage

pytestmark = pytest.mark.faults
STAGES = ["extract", "filter", "dedup"]
# A 2-layer GPT that trains in seconds on CPU, checkpointing every 4 steps (as tests/chaos does).
TRAIN_SETTINGS = [
    "tokenizer.vocab_size=500",
    "shards.val_fraction=0.1",
    "train.n_layer=2",
    "train.n_head=2",
    "train.n_embd=32",
    "train.block_size=32",
    "train.batch_size=4",
    "train.max_steps=12",
    "train.warmup_steps=2",
    "train.eval_interval=4",
    "train.eval_batches=2",
    "train.checkpoint_interval=4",
    "train.precision=fp32",
    "train.device=cpu",
    "train.sample_tokens=8",
]
HEADROOM = 64 * 1024  # room left for the faulted run: config.yaml and the error log fit, a Parquet part does not
MESSAGES = {
    "tmpfs": "no space left on device",
    "rlimit": r"file too large \(past the file-size limit of this process, `ulimit -f`, or of the file system\)",
}


class Room:
    """Where the run writes, and how its room is taken away and given back."""

    def __init__(self, base: Path):
        self.folder = base / "room"
        self.folder.mkdir()
        self.mode = "rlimit"
        # Without mount and umount (or without the rights) the rlimit way provokes the same fault.
        self.mount, self.umount = find_program("mount"), find_program("umount")
        if not os.environ.get("CRAWL2GPT_FAULTS_NO_MOUNT") and self.mount and self.umount:
            mounted = subprocess.run(
                [self.mount, "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(self.folder)], capture_output=True
            )
            self.mode = "tmpfs" if mounted.returncode == 0 else "rlimit"
        self.full = False

    def fill(self, headroom: int = HEADROOM) -> None:
        """From now on, writing more than `headroom` bytes in all (tmpfs) or into one file (rlimit,
        where the limit is always HEADROOM) fails."""
        if self.mode == "tmpfs":
            used = shutil.disk_usage(self.folder).used
            self._remount(used + headroom)
        self.full = True

    def clear(self) -> None:
        if self.mode == "tmpfs":
            self._remount(16 * 2**20)
        self.full = False

    def preexec(self):
        """For the CLI subprocess: the file-size limit while the room is full in rlimit mode."""
        if self.mode != "rlimit" or not self.full:
            return None

        def limit_file_size() -> None:  # runs in the child between fork and exec; inherited by its workers
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (HEADROOM, HEADROOM))

        return limit_file_size

    def describe(self, headroom: int = HEADROOM) -> str:
        if self.mode == "tmpfs":
            return f"tmpfs: the run's own tmpfs shrunk to its contents + {headroom // 1024} KiB (ENOSPC)"
        return (
            f"rlimit: RLIMIT_FSIZE {HEADROOM // 1024} KiB on the CLI process and its workers, SIGXFSZ ignored (EFBIG)"
        )

    def _remount(self, size: int) -> None:
        pages = -(-size // 4096)
        subprocess.run([self.mount, "-o", f"remount,size={pages * 4096}", str(self.folder)], check=True)

    def close(self) -> None:
        if self.mode == "tmpfs":
            subprocess.run([self.umount, "--lazy", str(self.folder)], check=False)


@pytest.fixture
def room(tmp_path):
    room = Room(tmp_path)
    yield room
    room.close()


def settings_args(settings: list[str]) -> list[str]:
    return [arg for item in settings for arg in ("--set", item)]


@pytest.fixture(scope="module")
def undisturbed_run(sample_warc, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("undisturbed") / "run"
    run_pipeline([str(sample_warc)], run, RunConfig().with_overrides(SAMPLE_SETTINGS), until="dedup")
    return run


@pytest.fixture(scope="module")
def undisturbed(undisturbed_run) -> dict:
    return run_snapshot(undisturbed_run, STAGES)


@pytest.fixture(scope="module")
def undisturbed_training(sample_warc, undisturbed_run) -> tuple[Path, dict]:
    """The same run continued to the end with the tiny model (one torch thread, as the CLI gets)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = RunConfig().with_overrides([*SAMPLE_SETTINGS, *TRAIN_SETTINGS])
        run_pipeline([str(sample_warc)], undisturbed_run, cfg, until="train")
    finally:
        torch.set_num_threads(threads)
    return undisturbed_run / "shards", training_snapshot(undisturbed_run / "train")


def training_snapshot(train: Path) -> dict:
    """What a resumed training must reproduce: every step's losses and the last weights."""
    metrics = [json.loads(line) for line in (train / "metrics.jsonl").read_text().splitlines() if line]
    checkpoints = sorted((train / "checkpoints").glob("step-*"))
    return {
        "losses": [(m["step"], m.get("loss"), m.get("val_loss")) for m in metrics],
        "checkpoints": [c.name for c in checkpoints],
        "last_weights": hashlib.sha256((checkpoints[-1] / "model.safetensors").read_bytes()).hexdigest(),
        "checkpoint_bytes": sum(f.stat().st_size for f in checkpoints[0].rglob("*") if f.is_file()),
    }


# The filter stage alone, in a child process as the CLI runs it (so the file-size limit of rlimit
# mode binds that process only): it prints its DiskFullError and exits 2.
FILTER_INTO = """
import sys
from crawl2gpt.config import RunConfig
from pipeline.errors import DiskFullError
from pipeline.filter.stage import FILTER
from pipeline.stage import run_stage
try:
    run_stage(FILTER, [sys.argv[1]], sys.argv[2], RunConfig().with_overrides(sys.argv[3:]))
except DiskFullError as err:
    print(err)
    sys.exit(2)
"""


def test_filter_stage_out_of_room_names_the_folder_and_leaves_nothing(sample_warc, room, tmp_path):
    """make test's part of the CLI test below (which is slow: three CLI runs and a reference run):
    the same write failing gives the same message and leaves no stage folder and no temp folder."""
    cfg = RunConfig().with_overrides(SAMPLE_SETTINGS)
    run_stage(EXTRACT, [str(sample_warc)], tmp_path / "extract", cfg)
    out = room.folder / "filter"
    room.fill()
    print(f"\ndisk full during filter, provoked with {room.describe()}")
    done = subprocess.run(
        [sys.executable, "-c", FILTER_INTO, str(tmp_path / "extract"), str(out), *SAMPLE_SETTINGS],
        preexec_fn=room.preexec(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    message = done.stdout.strip().splitlines()[-1]
    assert re.match(rf"{MESSAGES[room.mode]} while the filter stage wrote {re.escape(str(out))}", message), message
    assert "and rerun the same command: finished stages are kept" in message
    assert not out.exists() and leftovers(room.folder) == []


@pytest.mark.slow  # ~25 s of CPU: three CLI runs and a reference run; the test above keeps the failure in make test
def test_cli_filter_write_fails_for_lack_of_room_then_rerun_matches(
    prefect_api, sample_warc, undisturbed, room, tmp_path
):
    run = room.folder / "run"
    args = ["run", "--input", str(sample_warc), "--workdir", str(run), *settings_args(SAMPLE_SETTINGS)]
    env = cli_env(tmp_path / "prefect-home")

    first = run_cli([*args, "--until", "extract"], env)
    assert first.code == 0, first.stderr[-3000:]
    finished = run_snapshot(run, ["extract"])

    room.fill()
    print(f"\ndisk full during filter, provoked with {room.describe()}")
    failed = run_cli([*args, "--until", "dedup"], env, preexec_fn=room.preexec())
    assert failed.code == 2, failed.stderr[-3000:]
    assert "Traceback" not in failed.stderr
    assert failed.error_lines[0].startswith("crawl2gpt: DiskFullError"), failed.error_lines
    message = failed.error_lines[-1]
    assert re.match(
        rf"crawl2gpt: error: {MESSAGES[room.mode]} while the filter stage wrote {re.escape(str(run / 'filter'))}",
        message,
    ), message
    assert "and rerun the same command: finished stages are kept" in message
    assert not (run / "filter").exists() and not (run / "dedup").exists() and leftovers(run) == []
    assert run_snapshot(run, ["extract"]) == finished

    room.clear()
    rerun = run_cli([*args, "--until", "dedup"], env, preexec_fn=room.preexec())
    assert rerun.code == 0, rerun.stderr[-3000:]
    assert run_snapshot(run, STAGES) == undisturbed
    print(
        f"{message}\nfaulted run {failed.seconds} s, rerun {rerun.seconds} s; "
        f"docs {[undisturbed[s]['manifest']['stats']['docs_out'] for s in STAGES]} as undisturbed"
    )


@pytest.mark.slow  # ~50 s with its reference training; the filter stage test covers ENOSPC in make test
def test_cli_checkpoint_write_fails_for_lack_of_room_then_training_resumes(
    prefect_api, undisturbed_training, room, tmp_path
):
    shards, reference = undisturbed_training
    out = room.folder / "train"
    args = ["train", "--shards", str(shards), "--output", str(out), *settings_args([*SAMPLE_SETTINGS, *TRAIN_SETTINGS])]
    env = dict(cli_env(tmp_path / "prefect-home"), OMP_NUM_THREADS="1")

    headroom = reference["checkpoint_bytes"] * 3 // 2  # tmpfs: room for the first checkpoint, not the second
    room.fill(headroom)
    print(f"\ndisk full during training's checkpoint write, provoked with {room.describe(headroom)}")
    failed = run_cli(args, env, preexec_fn=room.preexec())
    assert failed.code == 2, failed.stderr[-3000:]
    assert "Traceback" not in failed.stderr
    message = failed.error_lines[-1]
    assert re.match(
        rf"crawl2gpt: error: {MESSAGES[room.mode]} while the train stage wrote {re.escape(str(out))}", message
    ), message
    assert message.endswith("finished stages are kept, and this stage resumes from what it completed")
    assert not (out / "_stage.json").exists()
    survived = sorted(p.name for p in (out / "checkpoints").glob("step-*"))
    assert survived == (["step-000004"] if room.mode == "tmpfs" else []), survived
    assert list((out / "checkpoints").glob(".step-*")) == []  # the failed save took its half-written folder away

    room.clear()
    rerun = run_cli(args, env)
    assert rerun.code == 0, rerun.stderr[-3000:]
    resumed_from = json.loads((out / "_stage.json").read_text())["stats"]["extra"]["resumed_from"]
    if survived:
        assert resumed_from.endswith(survived[-1])
    else:
        assert resumed_from is None
    assert training_snapshot(out) == reference
    print(
        f"{message}\nfaulted train {failed.seconds} s, rerun {rerun.seconds} s (resumed from {resumed_from}); "
        f"{len(reference['losses'])} steps with the undisturbed run's losses and last weights"
    )


@pytest.fixture(scope="module")
def undisturbed_shards(sample_warc, undisturbed_run) -> Path:
    """The undisturbed run's shards stage, with the tiny model's tokenizer settings."""
    cfg = RunConfig().with_overrides([*SAMPLE_SETTINGS, *TRAIN_SETTINGS])
    run_pipeline([str(sample_warc)], undisturbed_run, cfg, until="shards")
    return undisturbed_run / "shards"


@pytest.mark.slow  # ~90 s on 2 cores: the CLI, two ranks under torchrun that fail, then two that train
def test_torchrun_rank_out_of_room_reads_as_one_process(prefect_api, undisturbed_shards, room, tmp_path):
    """train.nproc_per_node=2 (2 CPU ranks, gloo): rank 0's first checkpoint write finds no room.
    The user gets the DiskFullError one process gives (exit 2; the folder, the free space there and
    the fix), not the launcher's "torchrun failed" with every rank's traceback; with the room back,
    the same command trains."""
    out = room.folder / "train"
    args = [
        "train",
        "--shards",
        str(undisturbed_shards),
        "--output",
        str(out),
        *settings_args([*SAMPLE_SETTINGS, *TRAIN_SETTINGS, "train.nproc_per_node=2"]),
    ]
    env = dict(cli_env(tmp_path / "prefect-home"), OMP_NUM_THREADS="1")

    room.fill()  # the metrics rows fit in the headroom, the step-4 checkpoint (about 0.5 MB) does not
    print(f"\ndisk full under torchrun's rank 0, provoked with {room.describe()}")
    failed = run_cli(args, env, preexec_fn=room.preexec())
    assert failed.code == 2, failed.stderr[-3000:]
    assert "Traceback" not in failed.stderr and "torchrun with" not in failed.stderr, failed.stderr[-3000:]
    assert failed.error_lines[0].startswith("crawl2gpt: DiskFullError"), failed.error_lines
    message = failed.error_lines[-1]
    assert re.match(
        rf"crawl2gpt: error: {MESSAGES[room.mode]} while the train stage wrote {re.escape(str(out))}"
        r".* \([\d,.]+ MiB free on that file system when it failed\)\. ",
        message,
    ), message
    fix = "Free space there" if room.mode == "tmpfs" else "Raise that limit"
    assert message.endswith(
        f"{fix} and rerun the same command: finished stages are kept, and this stage resumes from what it completed"
    ), message
    assert not (out / "_stage.json").exists() and list((out / "checkpoints").glob("*step-*")) == []

    room.clear()
    rerun = run_cli(args, env)
    assert rerun.code == 0, rerun.stderr[-3000:]
    summary = json.loads((out / "_stage.json").read_text())["stats"]["extra"]
    assert (summary["world_size"], summary["steps"], summary["resumed_from"]) == (2, 12, None)
    print(f"{message}\nfaulted train {failed.seconds} s, rerun {rerun.seconds} s")
