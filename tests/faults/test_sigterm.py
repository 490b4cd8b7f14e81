"""`kill PID` (SIGTERM: a scheduler stopping the job, a user's `kill`) of `crawl2gpt run` that
uses a temporary Prefect server (no PREFECT_API_URL).

Before flows/failures.py's exit_cleanly_on_sigterm: Prefect's own handler marked the flow runs
Crashed and re-sent the signal to Python's default handler, so the process died without its
exit handlers and the temporary server's uvicorn process ran on with no parent, one more for
every killed run. Now the command unwinds as on Ctrl-C: exit 143, every process it started
gone, and the same command afterwards finishes and skips what was finished. `kill -9` runs no
handler at all: the server's reaper (flows/reaper.py) stops it.
"""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from helpers.prefect_cli import UNTIL, Cli
from helpers.run_data import leftovers
from pipeline.stage import read_manifest

# slow: a temporary server started twice and two runs (~1 min); `pytest -m faults` runs it
pytestmark = [pytest.mark.faults, pytest.mark.slow]
FIRST_FILTER_PART_DONE = ("Task run 'filter:", "Finished in state Completed()")


def environment_without_a_server() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    return {**env, "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}  # a loaded 2-core box


def descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def alive(processes: list[psutil.Process]) -> list[int]:
    return [p.pid for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def killed_mid_filter(sample_warc, run_dir, signum: int) -> tuple[int, str]:
    """`crawl2gpt run` sent `signum` as its first filter part is reported finished: (exit code,
    console). Every process it started (its temporary server and that server's reaper, one each)
    must be gone within 15 s."""
    cli = Cli(run_dir, sample_warc, environment_without_a_server())
    cli.wait_for_line(*FIRST_FILTER_PART_DONE)
    started = descendants(cli.process.pid)
    servers = [p for p in started if "uvicorn" in " ".join(p.cmdline())]
    reapers = [p for p in started if "flows/reaper.py" in " ".join(p.cmdline())]
    assert len(servers) == 1 and len(reapers) == 1, [p.cmdline() for p in started]

    os.kill(cli.process.pid, signum)
    code, console = cli.wait(timeout=60)
    deadline = time.time() + 15
    while alive(started) and time.time() < deadline:
        time.sleep(0.2)
    assert alive(started) == [], [p.cmdline() for p in started if p.is_running()]
    return code, console


def assert_rerun_finishes(sample_warc, run_dir) -> None:
    extract_finished = read_manifest(run_dir / "extract")["finished_at"]
    code, console = Cli(run_dir, sample_warc, environment_without_a_server()).wait(timeout=300)
    assert code == 0, console[-3000:]
    assert read_manifest(run_dir / "extract")["finished_at"] == extract_finished  # skipped, not redone
    assert (run_dir / UNTIL / "_stage.json").is_file() and leftovers(run_dir) == []


def test_sigterm_ends_the_run_with_its_temporary_server_and_a_rerun_finishes(sample_warc, tmp_path):
    code, console = killed_mid_filter(sample_warc, tmp_path / "run", signal.SIGTERM)
    assert code == 128 + signal.SIGTERM, console[-3000:]
    assert_rerun_finishes(sample_warc, tmp_path / "run")


def test_sigkill_leaves_no_temporary_server_and_a_rerun_finishes(sample_warc, tmp_path):
    """SIGKILL runs no handler of the command: its reaper (flows/reaper.py) stops the server."""
    code, _ = killed_mid_filter(sample_warc, tmp_path / "run", signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert_rerun_finishes(sample_warc, tmp_path / "run")
