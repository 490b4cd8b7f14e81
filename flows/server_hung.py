"""When the Prefect server hangs mid-run: carry on if it wakes within a bound, else one message and exit 2.

A hung server (its process stopped by SIGSTOP or a debugger, a frozen VM, a network that drops
packets) is not a stopped one: the kernel still accepts connections on its port, so Prefect's
requests do not fail, they wait. What Prefect 3.8 does alone (prefect/client/base.py `send`,
prefect/client/orchestration/__init__.py): each request waits PREFECT_API_REQUEST_TIMEOUT (60 s)
for an answer, and httpx.ReadTimeout is retried PREFECT_CLIENT_MAX_RETRIES times (5) with backoff
2, 4, ... 32 s: 6 x 60 + 62 = 422 s per request before it fails, and a failing run then makes
more requests to the same server, each its own wait, as it unwinds. If the server wakes meanwhile
(SIGCONT), the request that was waiting gets its answer and the run goes on as if nothing happened.
So: no data is at risk, but a run whose server stays hung ends only after many minutes of silence.

Here the CLI owns a watchdog thread (while run, stage, train or finetune runs against a server
named by PREFECT_API_URL) that asks the server's /health every PROBE_EVERY_S, each answer awaited
PROBE_TIMEOUT_S:
  - the server answers again within the window: nothing happens; the run carries on, Prefect's
    requests in flight get their answers (tests/faults/test_prefect_hung.py, SIGCONT after 5 s).
  - no answer for the whole window: the watchdog ends the process. The window is the one a
    stopped server gets (flows/server_lost.py): Prefect's client retry window 2^(N+1) - 2 s for
    N = PREFECT_CLIENT_MAX_RETRIES, 62 s by default. The first probe after the server stops
    starts within PROBE_EVERY_S and the check follows each probe (PROBE_EVERY_S + PROBE_TIMEOUT_S
    apart), so the run ends between window and window + 2 x PROBE_EVERY_S + PROBE_TIMEOUT_S
    (+ 4 s) after the server stopped answering, wherever the run was.
  - a refused connection (the server stopped, not hung) is flows/server_lost.py's business; the
    watchdog's clock only runs while probes time out.

Why end the process from the watchdog rather than make the waiting request fail: a thread blocked
in a socket read cannot be interrupted from another Python thread, the connections are private
to Prefect's clients, and the engine, unwinding an error, would call the hung server again (a
timeout each). Ending the process is safe by the stage contract (tests/chaos/ kill runs at any
point): finished stages are complete on disk, the stage that was running left only a temporary
folder that the rerun removes, and the rerun marks the flow runs that could not report Crashed
(flows/interrupted.py). Before the message the watchdog kills this process's children (part
workers, a Dask cluster), so nothing writes after it; the run folder's lock goes with the process.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from collections.abc import Callable

import httpx

PROBE_EVERY_S = 1.0
PROBE_TIMEOUT_S = 2.0


def probe(api_url: str) -> str:
    """'answered' (any HTTP answer), 'refused' (nothing listens, or the connection was cut: a
    stopped server) or 'silent' (connected or connecting, but no answer in PROBE_TIMEOUT_S)."""
    try:
        httpx.get(f"{api_url}/health", timeout=PROBE_TIMEOUT_S)
    except httpx.TimeoutException:
        return "silent"
    except httpx.TransportError:
        return "refused"
    return "answered"


class HungServerWatchdog:
    """Calls `on_hung(seconds_silent)` once the server at `api_url` has answered nothing for
    `window_s` while accepting connections; then stops watching."""

    def __init__(self, api_url: str, window_s: float, on_hung: Callable[[float], None]):
        self.api_url, self.window_s, self.on_hung = api_url.rstrip("/"), window_s, on_hung
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="prefect-server-watchdog", daemon=True)

    def start(self) -> HungServerWatchdog:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()

    def _watch(self) -> None:
        silent_since = None
        while not self._stopped.wait(PROBE_EVERY_S):
            asked = time.monotonic()
            if probe(self.api_url) != "silent":
                silent_since = None
                continue
            silent_since = silent_since or asked
            if time.monotonic() - silent_since >= self.window_s and not self._stopped.is_set():
                self.on_hung(time.monotonic() - silent_since)
                return


class NotWatching:
    """What the CLI stops when no server is watched."""

    def stop(self) -> None:
        pass


def watch_prefect_server(report: Callable[[BaseException], int], stage: Callable[[], str | None]):
    """Start the watchdog when a server is named by PREFECT_API_URL; without one, start the
    temporary server and tie it to this process (flows/reaper.py: it is this command's child,
    not watched). `report` prints an error the CLI's way and returns the exit code; `stage` names
    the stage running now, if known. Returns what to stop."""
    from prefect.settings import PREFECT_API_URL

    from flows.server_lost import retry_window_s

    url = PREFECT_API_URL.value()
    if not url:
        from flows.reaper import tie_temporary_server

        return tie_temporary_server()
    main = threading.main_thread()
    return HungServerWatchdog(url, retry_window_s(), lambda silent_s: end_run(report, stage(), silent_s, main)).start()


def end_run(report: Callable[[BaseException], int], stage: str | None, silent_s: float, main: threading.Thread) -> None:
    """Kill this process's children, print the one message (its log holds where the run was
    waiting), and leave with the CLI's exit code."""
    from flows.server_lost import server_name
    from pipeline.errors import PrefectServerLostError

    stop_children()
    during = f"the {stage} stage" if stage else "the run"
    err = PrefectServerLostError(
        f"{server_name()} accepted connections but answered nothing for {silent_s:.0f} s during {during} (its process "
        "is stopped or hung); finished stages are kept. Restart the server (or resume its process: kill -CONT) and "
        "rerun the same command: up-to-date stages are skipped."
    )
    waiting = sys._current_frames().get(main.ident)
    if waiting is not None:
        err.add_note("where the run was waiting:\n" + "".join(traceback.format_stack(waiting)))
    code = report(err)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def stop_children() -> None:
    """SIGKILL every process this one started, and theirs."""
    import psutil

    for child in psutil.Process().children(recursive=True):
        try:
            child.kill()
        except psutil.Error:  # gone already
            pass
