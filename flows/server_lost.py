"""When the Prefect server stops answering mid-run: ride out a restart, else one message and exit 2.

What Prefect 3.8 does alone (prefect/client/base.py; PrefectHQ/prefect#20276): a client retries a
failed request PREFECT_CLIENT_MAX_RETRIES times (default 5) with backoff 2, 4, 8, ... s (+-20%
jitter), about 62 s, but a refused connection only once that client object has reached the
server before: a fresh client fails at once, "fast failure on a wrong URL". Clients are made
fresh all the time (each subflow's start fetches a CSRF token with a new one), so a run either
rode out a restart or died of it at once, depending on which call met it. A run that died left
~300 lines of httpx tracebacks, exit code 1 after ~5 minutes (one retry window per flow level
it unwound through, each recording a failure nobody would receive), and its flow runs Running
in the UI for ever.

Here:
- a stage subflow that fails because the server stopped answering is run again once the server
  answers, if it does within one retry window of the client's setting (2^(N+1) - 2 s: 62 s by
  default; PREFECT_CLIENT_MAX_RETRIES=6 gives 126 s). The stage contract makes that safe: a stage
  that finished is skipped (its manifest matches), one that did not left only its temporary
  folder and starts again. The dead subflow is marked Crashed (flows/interrupted.py).
- otherwise the run stops with PrefectServerLostError naming the server and the stage, which
  the CLI prints as one message with exit 2 (flows/failures.py). From the first failure on, the
  process stops retrying and sending logs (each further window would only delay the message);
  both resume if the server comes back in time. Finished stages are complete on disk, so
  rerunning the same command once the server is back skips what is up to date.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import httpx

from pipeline.errors import PrefectServerLostError

T = TypeVar("T")
# What a proxy in front of the server answers while the server is down.
GATEWAY_CODES = {502, 503, 504}
_paused: dict = {}  # the settings stop_retrying changed, with their values before
_running: list[str] = []  # the stage whose subflow runs now, for flows/server_hung.py's message


def stage_running() -> str | None:
    return _running[-1] if _running else None


def _means_no_server(err: BaseException) -> bool:
    """An error of Prefect's API client (not, say, an http:// WARC download) that says no server answered."""
    if isinstance(err, httpx.TransportError):  # refused, reset, timed out, protocol cut short
        no_answer = True
    else:  # httpx.HTTPStatusError and Prefect's subclass: a proxy answering for a server that is down
        response = getattr(err, "response", None)
        no_answer = (
            isinstance(err, httpx.HTTPStatusError) and response is not None and response.status_code in GATEWAY_CODES
        )
    return no_answer and _raised_in_prefect_client(err)


def _raised_in_prefect_client(err: BaseException) -> bool:
    import prefect.client

    client_dir = str(Path(prefect.client.__file__).parent)
    tb = err.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.startswith(client_dir):
            return True
        tb = tb.tb_next
    return False


def _chain(err: BaseException) -> list[BaseException]:
    """The exception and every one linked to it: what caused it (`raise ... from`) and what was
    being handled when it was raised; both, since an httpx error's cause is httpcore's error
    while the error it interrupted (ours) is its context."""
    found: list[BaseException] = []
    todo = [err]
    while todo:
        link = todo.pop(0)
        if link is None or any(link is seen for seen in found):
            continue
        found.append(link)
        todo += [link.__cause__, link.__context__]
    return found


def server_name() -> str:
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    return f"the Prefect server at {url}" if url else "the temporary Prefect server this command started"


def stop_retrying() -> None:
    """No more retry windows in this process: the engine's own calls (recording the failed
    state of each flow it unwinds) now fail at once instead of a window each, and log lines stay
    on the console instead of queueing for a server that is gone. Both settings are read on
    every use from the process's settings object, which flows and task threads share. The lines
    queued before cannot be sent either: Prefect's log worker would print "--- Error logging to
    API ---" for each batch, after our message too, unless stdlib logging's error reports are off."""
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if not _paused:
        _paused.update(
            retries=settings.client.max_retries,
            to_api=settings.logging.to_api.enabled,
            raise_exceptions=logging.raiseExceptions,
        )
    settings.client.max_retries = 0
    settings.logging.to_api.enabled = False
    logging.raiseExceptions = False


def resume_retrying() -> None:
    """Undo stop_retrying: the server answers again."""
    from prefect.settings import get_current_settings

    if _paused:
        settings = get_current_settings()
        settings.client.max_retries = _paused["retries"]
        settings.logging.to_api.enabled = _paused["to_api"]
        logging.raiseExceptions = _paused["raise_exceptions"]
        _paused.clear()


def retry_window_s() -> float:
    """How long Prefect's client waits for a server before giving up: the sum of its backoff."""
    from prefect.settings import PREFECT_CLIENT_MAX_RETRIES

    retries = _paused.get("retries", PREFECT_CLIENT_MAX_RETRIES.value())
    return float(2 ** (retries + 1) - 2)


def wait_for_server(seconds: float) -> bool:
    """True once the server's /health answers, False if it has not within `seconds`."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        return False  # a temporary server that died is not coming back
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(1)


def server_lost(err: BaseException, stage: str | None) -> PrefectServerLostError | None:
    """PrefectServerLostError for an error that comes from a Prefect server that stopped
    answering, None for any other error. The first one raised (the innermost: a stage) keeps
    its wording when the engine's own failed calls are raised over it further out."""
    chain = _chain(err)
    for link in chain:
        if isinstance(link, PrefectServerLostError):
            first = PrefectServerLostError(*link.args)
            first.__cause__ = link.__cause__  # the request that met the stopped server, for the error log
            return first
    if not any(_means_no_server(link) for link in chain):
        return None
    stop_retrying()
    during = f"the {stage} stage" if stage else "the run"
    return PrefectServerLostError(
        f"{server_name()} stopped answering during {during}; finished stages are kept. "
        "Start the server and rerun the same command: up-to-date stages are skipped."
    )


@contextmanager
def reported_as_server_lost(stage: str | None = None):
    """Inside: an error that means the server is gone leaves as PrefectServerLostError."""
    try:
        yield
    except PrefectServerLostError:
        raise
    except Exception as err:
        lost = server_lost(err, stage)
        if lost is None:
            raise
        raise lost from (lost.__cause__ or err)


def through_restarts(stage: str, run_stage_flow: Callable[[], T], on_back: Callable[[], None]) -> T:
    """`run_stage_flow()` (a stage subflow), run again if it failed because the server stopped
    answering and the server answers again within one retry window; `on_back` runs first (it
    marks the dead subflow Crashed). PrefectServerLostError if the server stays away."""
    from prefect import get_run_logger

    _running[:] = [stage]
    while True:
        try:
            with reported_as_server_lost(stage):
                return run_stage_flow()
        except PrefectServerLostError:
            if not wait_for_server(retry_window_s()):
                raise
            resume_retrying()
            get_run_logger().warning("%s answers again: running the %s stage again", server_name(), stage)
            with reported_as_server_lost(stage):  # it may go again at once
                on_back()
