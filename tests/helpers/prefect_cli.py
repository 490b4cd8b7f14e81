"""`crawl2gpt run` against a real Prefect server while the server is stopped, restarted or hung
(tests/faults/test_prefect_restart.py, test_prefect_hung.py): the run's console read as it comes,
to see where the run is, and what the server recorded of it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from crawl2gpt.config import RunConfig
from crawl2gpt.runner import run_pipeline
from helpers.prefect_server import PrefectServer
from helpers.run_data import run_data

ROOT = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).with_name("crawl2gpt")
UNTIL = "dedup"  # the stages that talk to the server like every other; the later ones add a minute
SETTINGS = ["filter.language.languages=[en, de]", "workers=1"]


def server_and_reference(
    inputs: Path | list[Path], tmp_path_factory, settings: list[str] = SETTINGS
) -> Iterator[tuple[PrefectServer, dict]]:
    """A server, and the same run with no server at all (the plain runner: same stages, byte-
    identical output), computed while the server starts. The body of a module-scoped fixture."""
    server = PrefectServer(tmp_path_factory.mktemp("prefect-home")).launch()
    try:
        run_dir = tmp_path_factory.mktemp("undisturbed") / "run"
        run_pipeline(_paths(inputs), run_dir, RunConfig.load(None, settings), until=UNTIL)
        yield server.wait_ready(), run_data(run_dir, UNTIL)
    finally:
        server.stop()


def _paths(inputs: Path | list[Path]) -> list[str]:
    return [str(p) for p in (inputs if isinstance(inputs, list) else [inputs])]


class Cli:
    """`crawl2gpt run` in a subprocess, its console read as it comes (to see where the run is)."""

    def __init__(self, run_dir: Path, inputs: Path | list[Path], env: dict[str, str], settings: list[str] = SETTINGS):
        self.args = [str(CLI), "run", "--input", *_paths(inputs), "--workdir", str(run_dir), "--until", UNTIL]
        for item in settings:
            self.args += ["--set", item]
        # INFO: the test reads where the run is from Prefect's log lines (another module's prefect_api
        # fixture may have set PREFECT_LOGGING_LEVEL=WARNING in this process's environment)
        self.env = {**env, "PREFECT_LOGGING_LEVEL": "INFO"}
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            self.args, env=self.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_for_line(self, *needles: str, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while not any(all(n in line for n in needles) for line in list(self.lines)):
            assert self.process.poll() is None, "".join(self.lines)[-3000:]
            assert time.time() < deadline, f"no line with {needles}:\n" + "".join(self.lines)[-3000:]
            time.sleep(0.05)

    @contextmanager
    def paused(self):
        """SIGSTOP for the block: whatever the run does next, it does after the block."""
        os.kill(self.process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.process.pid, signal.SIGCONT)

    def wait(self, timeout: float) -> tuple[int, str]:
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail(f"crawl2gpt run still running after {timeout} s:\n" + "".join(self.lines)[-3000:])
        self.reader.join(timeout=10)
        return code, "".join(self.lines)


def subflow_begins(stage: str, run_name: str) -> str:
    return f"Beginning subflow run '{stage}-{run_name}'"


def our_lines(console: str) -> list[str]:
    return [line for line in console.splitlines() if line.startswith("crawl2gpt:")]


def flow_runs_of(server: PrefectServer, run_name: str) -> dict[str, list[str]]:
    """Flow run name -> state types, for the pipeline and stage runs of one run folder."""
    runs: dict[str, list[str]] = {}
    for run in server.flow_runs():
        if run["name"].endswith(f"-{run_name}"):
            runs.setdefault(run["name"], []).append(run["state_type"])
    return runs
