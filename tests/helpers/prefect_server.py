"""A real Prefect server for tests: `prefect server start` on a free loopback port, its own
PREFECT_HOME (so its own SQLite database), stoppable and restartable on the same port and DB.

Used by the UI test (a server the browser reads) and the fault tests (a server stopped while a
flow runs against it, a server many runs share).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

FINAL_STATES = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api_call(api: str, path: str, body: dict | None = None, timeout: float = 10, tries: int = 6):
    """GET (no body) or POST (a JSON body) to the REST API; the decoded JSON answer.

    A busy SQLite server answers 503 (its database locked by another writer), which Prefect's own
    client retries; so does this, with backoff (a POST that creates something should carry an
    idempotency key, so a retry cannot create it twice)."""
    data = json.dumps(body).encode() if body is not None else None
    for attempt in range(tries):
        request = urllib.request.Request(api + path, data=data, headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            if err.code not in (429, 503) or attempt == tries - 1:
                raise
            time.sleep(0.5 * 2**attempt)


class PrefectServer:
    """`start()` and `stop()` as often as needed: the port and the database stay the same."""

    def __init__(self, home: Path, port: int | None = None):
        self.home = Path(home)
        self.port = port or free_port()
        self.api = f"http://127.0.0.1:{self.port}/api"
        self.env = {
            **os.environ,
            "PREFECT_HOME": str(self.home),
            "PREFECT_API_URL": self.api,
            "PREFECT_UI_API_URL": self.api,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
        self.log = self.home / "server.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 180) -> PrefectServer:
        return self.launch().wait_ready(timeout)

    def launch(self) -> PrefectServer:
        """Start the server process without waiting for it (other set-up can run meanwhile)."""
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.log, "a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def wait_ready(self, timeout: float = 180) -> PrefectServer:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.healthy():
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"Prefect server did not start on port {self.port}: {self.log.read_text()[-2000:]}")

    def healthy(self) -> bool:
        try:
            return api_call(self.api, "/health", timeout=2) is True
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server and its children (uvicorn and the services run in its process group)."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self.process = None

    def pause(self) -> None:
        """SIGSTOP the server's processes: a hung server, whose port still accepts connections."""
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.process.pid, signal.SIGCONT)

    def call(self, path: str, body: dict | None = None):
        return api_call(self.api, path, body)

    def flow_runs(self, **filters) -> list[dict]:
        return self.call("/flow_runs/filter", {"limit": 200, **filters})

    def wait_final(self, flow_run_id: str, timeout: float) -> str:
        """The flow run's state type once it is final, or the last one seen at the timeout."""
        deadline = time.time() + timeout
        state = None
        while time.time() < deadline:
            state = self.call(f"/flow_runs/{flow_run_id}")["state_type"]
            if state in FINAL_STATES:
                break
            time.sleep(1)
        return state

    def __enter__(self) -> PrefectServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
