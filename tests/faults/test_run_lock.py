"""Fault 5 of issue 19: two `crawl2gpt run` on one run folder at once.

The promise: the second one refuses at once with one message naming the first (exit 2, no
traceback) and changes nothing in the folder; the first finishes as if alone; a holder killed
with SIGKILL does not block the next run (the kernel drops its flock), and that run gives the
same data as an undisturbed one. Runs in different folders never wait for each other.

The CLI runs as real subprocesses against this session's Prefect server (the `prefect_api`
fixture), so a run costs its own work, not a server start.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crawl2gpt.config import RunConfig
from crawl2gpt.runner import run_pipeline
from pipeline.errors import InputError, RunLockedError
from pipeline.run_lock import LOCK_FILE, run_lock
from pipeline.stage import read_manifest

pytestmark = pytest.mark.faults

CLI = Path(sys.executable).with_name("crawl2gpt")
SETTINGS = ["filter.language.languages=[en, de]", "workers=1"]
DATA_STAGES = ("extract", "filter", "dedup")
# A stand-in for a run that holds the lock and does nothing else, so the folder stays still.
IDLE_HOLDER = """
import sys, time
from pipeline.run_lock import run_lock
with run_lock(sys.argv[1], command="crawl2gpt run --workdir " + sys.argv[1]):
    print("locked", flush=True)
    time.sleep(600)
"""


@pytest.fixture(scope="module")
def cli_env(prefect_api) -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return env | {"PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


def run_args(warc: Path, workdir: Path, until: str) -> list[str]:
    args = [str(CLI), "run", "--input", str(warc), "--workdir", str(workdir), "--until", until]
    return args + [word for item in SETTINGS for word in ("--set", item)]


def crawl2gpt(args: list[str], env: dict[str, str]) -> tuple[int, list[str], float]:
    started = time.monotonic()
    done = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    return done.returncode, done.stdout.splitlines(), time.monotonic() - started


def folder_state(folder: Path) -> dict[str, tuple]:
    """Every entry under the folder, dot files included: kind, size, mtime and, for files, sha256."""
    state = {".": ("dir", folder.stat().st_mtime_ns)}
    for path in sorted(folder.rglob("*")):
        st = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        state[path.relative_to(folder).as_posix()] = (
            "file" if path.is_file() else "dir",
            st.st_size,
            st.st_mtime_ns,
            digest,
        )
    return state


def same_data(run: Path, reference: Path) -> dict[str, dict]:
    """Each stage's manifest with the run folder's path written RUN and without timings: file
    names and sha256s (so the Parquet bytes, hence contents and kept ids), counts, config, inputs."""

    def normal(value, root: str):
        if isinstance(value, dict):
            return {
                k: normal(v, root)
                for k, v in value.items()
                if k not in ("seconds", "started_at", "finished_at", "key_digest")
                and not k.endswith(("_seconds", "_s"))
            }
        if isinstance(value, list):
            return [normal(v, root) for v in value]
        return value.replace(root, "RUN") if isinstance(value, str) else value

    return {name: normal(read_manifest(run / name), str(run.resolve())) for name in DATA_STAGES}


def wait_for_holder(folder: Path, pid: int, timeout: float = 60) -> None:
    """Until the lock file names `pid`: that process holds the lock (it writes after locking)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if json.loads((folder / LOCK_FILE).read_text())["pid"] == pid:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"process {pid} never took the lock of {folder}")


def assert_refused(lines: list[str], seconds: float, folder: Path, holder_pid: int) -> None:
    assert lines[0] == "crawl2gpt: RunLockedError (rerun with --verbose for the traceback)", lines
    assert len(lines) == 2 and seconds < 10, (seconds, lines)  # before Prefect or any stage starts
    assert lines[1].startswith(f"crawl2gpt: error: {folder.resolve()} is in use by crawl2gpt run ")
    assert f"(pid {holder_pid} on " in lines[1]
    assert lines[1].endswith(
        "wait for it to finish or stop it; a lock left by a dead process is released automatically"
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory, sample_warc) -> Path:
    """An undisturbed run of the data stages, in this process."""
    folder = tmp_path_factory.mktemp("lock-reference") / "run"
    run_pipeline([str(sample_warc)], folder, RunConfig.load(None, SETTINGS), until="dedup")
    return folder


@pytest.mark.slow  # ~30 s: an undisturbed run and three CLI runs; make test keeps the refusals below
def test_second_run_is_refused_then_a_sigkilled_holder_does_not_block(cli_env, sample_warc, reference, tmp_path):
    """Two real `crawl2gpt run` on one folder: the second exits 2 at once naming the first; the
    first is then SIGKILLed mid-run (with its process group, as the OOM killer or a lost session
    would); the next run takes the folder at once and ends with the undisturbed run's data."""
    folder = tmp_path / "run"
    first = subprocess.Popen(
        run_args(sample_warc, folder, "dedup"),
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_holder(folder, first.pid)
        code, lines, seconds = crawl2gpt(run_args(sample_warc, folder, "dedup"), cli_env)
        print(f"second run refused in {seconds:.2f} s")
        assert code == 2
        assert_refused(lines, seconds, folder, first.pid)
        assert first.poll() is None  # the first run goes on
        deadline = time.monotonic() + 120  # let it finish a stage, then kill it in the next one
        while (
            not (folder / "extract" / "_stage.json").is_file() and time.monotonic() < deadline and first.poll() is None
        ):
            time.sleep(0.05)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert first.returncode == -signal.SIGKILL
    with run_lock(folder):  # free the moment its holder is gone: no stale lock to clear
        pass
    code, lines, seconds = crawl2gpt(run_args(sample_warc, folder, "dedup"), cli_env)
    assert code == 0, lines[-20:]
    assert same_data(folder, reference) == same_data(reference, reference)


def test_refused_commands_change_nothing_in_the_folder(cli_env, sample_warc, tmp_path):
    """While another process holds a finished run folder, `crawl2gpt run` and `crawl2gpt stage`
    into it exit 2 with the message and leave every byte, name and mtime under it as it was
    (no config.yaml, no error log, no lock file rewrite)."""
    folder = tmp_path / "run"
    run_pipeline([str(sample_warc)], folder, RunConfig.load(None, SETTINGS), until="extract")
    holder = subprocess.Popen([sys.executable, "-c", IDLE_HOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = folder_state(folder)
        code, lines, seconds = crawl2gpt(run_args(sample_warc, folder, "filter"), cli_env)
        assert code == 2
        assert_refused(lines, seconds, folder, holder.pid)
        stage = [
            str(CLI),
            "stage",
            "filter",
            "--input",
            str(folder / "extract"),
            "--output",
            str(folder / "filter"),
            "--force",
        ]
        code, lines, seconds = crawl2gpt(stage, cli_env)
        assert code == 2
        assert_refused(lines, seconds, folder, holder.pid)
        assert folder_state(folder) == before
    finally:
        holder.kill()
        holder.wait()


def test_runs_in_different_folders_do_not_wait_for_each_other(tmp_path):
    """The lock is per folder (issue 19's load test runs 20 folders at once); within one process it
    is re-entrant (the CLI takes it, then the DAG loop inside the flow), across processes exclusive."""
    holder = subprocess.Popen(
        [sys.executable, "-c", IDLE_HOLDER, str(tmp_path / "a")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with run_lock(tmp_path / "b"), run_lock(tmp_path / "b"):
            pass
        with pytest.raises(RunLockedError, match=rf"pid {holder.pid} on .*a lock left by a dead process is released"):
            with run_lock(tmp_path / "a"):
                pass
    finally:
        holder.kill()
        holder.wait()
    with run_lock(tmp_path / "a"):
        pass


def test_a_symlink_in_place_of_the_lock_file_is_refused_not_followed(tmp_path):
    """Someone who can write a run folder must not make a run truncate another file through it."""
    folder, target = tmp_path / "run", tmp_path / "precious.txt"
    folder.mkdir()
    target.write_text("keep me")
    (folder / LOCK_FILE).symlink_to(target)
    with pytest.raises(InputError, match="is a symbolic link"):
        with run_lock(folder):
            pass
    assert target.read_text() == "keep me"


def test_a_stage_flow_started_alone_respects_the_lock(prefect_api, sample_warc, tmp_path):
    """The UI's per-stage deployments run the stage flows alone: they lock the run folder too."""
    from flows.stages import extract_flow

    folder = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", IDLE_HOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=rf"pid {holder.pid} on "):
            extract_flow([str(sample_warc)], str(folder / "extract"))
        assert not (folder / "extract").exists() and not list(folder.glob(".extract.*"))
    finally:
        holder.kill()
        holder.wait()
