"""`kill PID` (SIGTERM: a scheduler stopping the job, a user's `kill`) of `crawl2gpt run` that
uses a temporary Prefect server (no PREFECT_API_URL).

Before flows/failures.py's exit_cleanly_on_sigterm: Prefect's own handler marked the flow runs
Crashed and re-sent the signal to Python's default handler, so the process died without its
exit handlers and the temporary server's uvicorn process ran on with no parent, one more for
every killed run. Now the command unwinds as on Ctrl-C: exit 143, every process it started
gone, and the same command afterwards finishes and skips what was finished.
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


def test_sigterm_ends_the_run_with_its_temporary_server_and_a_rerun_finishes(sample_warc, tmp_path):
    run_dir = tmp_path / "run"
    cli = Cli(run_dir, sample_warc, environment_without_a_server())
    cli.wait_for_line(*FIRST_FILTER_PART_DONE)
    started = descendants(cli.process.pid)
    servers = [p for p in started if "uvicorn" in " ".join(p.cmdline())]
    assert servers, f"no temporary Prefect server below the run: {[p.cmdline() for p in started]}"

    os.kill(cli.process.pid, signal.SIGTERM)
    code, console = cli.wait(timeout=60)
    assert code == 128 + signal.SIGTERM, console[-3000:]
    deadline = time.time() + 10
    while alive(started) and time.time() < deadline:
        time.sleep(0.2)
    assert alive(started) == [], [p.cmdline() for p in started if p.is_running()]
    extract_finished = read_manifest(run_dir / "extract")["finished_at"]

    code, console = Cli(run_dir, sample_warc, environment_without_a_server()).wait(timeout=300)
    assert code == 0, console[-3000:]
    assert read_manifest(run_dir / "extract")["finished_at"] == extract_finished  # skipped, not redone
    assert (run_dir / UNTIL / "_stage.json").is_file() and leftovers(run_dir) == []


def test_sigkill_leaves_no_temporary_server_and_a_rerun_finishes(sample_warc, tmp_path):
    """SIGKILL runs no handler of the command: its reaper (flows/reaper.py) stops the server."""
    run_dir = tmp_path / "run"
    cli = Cli(run_dir, sample_warc, environment_without_a_server())
    cli.wait_for_line(*FIRST_FILTER_PART_DONE)
    started = descendants(cli.process.pid)
    servers = [p for p in started if "uvicorn" in " ".join(p.cmdline())]
    reapers = [p for p in started if "flows/reaper.py" in " ".join(p.cmdline())]
    assert len(servers) == 1 and len(reapers) == 1, [p.cmdline() for p in started]

    os.kill(cli.process.pid, signal.SIGKILL)
    code, _ = cli.wait(timeout=60)
    assert code == -signal.SIGKILL
    deadline = time.time() + 15
    while alive(started) and time.time() < deadline:
        time.sleep(0.2)
    assert alive(started) == [], [p.cmdline() for p in started if p.is_running()]

    code, console = Cli(run_dir, sample_warc, environment_without_a_server()).wait(timeout=300)
    assert code == 0, console[-3000:]
    assert (run_dir / UNTIL / "_stage.json").is_file() and leftovers(run_dir) == []
