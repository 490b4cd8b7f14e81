"""flows/reaper.py without Prefect: a reaper stops its server when the process that started it
dies (SIGKILL included), and never otherwise. The whole CLI under kill -9 is
tests/faults/test_sigterm.py (slow tier)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows import reaper

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
REAPER = Path(reaper.__file__)


def sleeper() -> subprocess.Popen:
    """A stand-in for the uvicorn server: a process that runs until it is stopped."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])


def test_a_sigkilled_parent_takes_its_server_with_it():
    server = sleeper()
    # the parent starts the reaper as the CLI does, waits until it runs, then dies by SIGKILL
    parent_code = f"""
import os, subprocess, sys, time
subprocess.Popen([sys.executable, "-I", {str(REAPER)!r}, str(os.getpid()), "{server.pid}"])
time.sleep(1.5)
os.kill(os.getpid(), 9)
"""
    parent = subprocess.Popen([sys.executable, "-c", parent_code])
    assert parent.wait(timeout=30) == -signal.SIGKILL
    try:
        assert server.wait(timeout=10) == -signal.SIGTERM  # stopped the way uvicorn shuts down
    finally:
        server.kill()


def test_a_reaper_ended_normally_leaves_the_server_to_its_owner():
    server = sleeper()
    try:
        tie = reaper.ServerReaper(
            subprocess.Popen([sys.executable, "-I", str(REAPER), str(os.getpid()), str(server.pid)])
        )
        time.sleep(1.0)
        tie.stop()  # what the CLI does on a normal exit, before Prefect stops its server
        assert tie.process.returncode == -signal.SIGTERM
        time.sleep(0.5)
        assert server.poll() is None
    finally:
        server.kill()
        server.wait()


def test_a_pid_given_to_a_later_process_is_not_stopped():
    server = sleeper()
    try:
        started = reaper.start_time(server.pid)
        assert started is not None
        reaper.stop_server(server.pid, str(int(started) - 1))  # the pid's first owner, long gone
        time.sleep(0.3)
        assert server.poll() is None
        reaper.stop_server(server.pid, started)
        assert server.wait(timeout=10) == -signal.SIGTERM
    finally:
        server.kill()
    assert reaper.start_time(server.pid) is None
