"""When the Prefect server stops answering mid-run: ride out a restart, else one message and exit 2.

Prefect's client retries a failed request PREFECT_CLIENT_MAX_RETRIES times with exponential
backoff (2, 4, 8, ... s, +-20% jitter), and once it has reached the server it also retries a
refused connection, so a server restarted within that window costs the run nothing
(Prefect 3.8, prefect/client/base.py; PrefectHQ/prefect#20276). Past the window the request
raises an httpx error from wherever the run was: a progress artifact in a stage, a subflow
start, a state change. Left alone, the engine then retries once more for each flow it unwinds
through (the stage's subflow, the pipeline) to record the failure, about 5 minutes before the
user sees ~300 lines of httpx tracebacks and exit code 1, and the UI shows the runs as Running
for ever.

Here: the first error that means "no server" becomes PrefectServerLostError naming the server
and the stage, and the client's retries drop to zero for the rest of the process (we know the
server is gone; each further window would only delay the message). The CLI prints it as one
message with exit 2 (flows/failures.py). Finished stages are complete on disk, the stage that
was running left only its temporary folder (the stage contract), so rerunning the same command
once the server is back skips what is up to date.
"""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path

import httpx

from pipeline.errors import PrefectServerLostError

MAX_RETRIES = "PREFECT_CLIENT_MAX_RETRIES"
# 6 retries wait 2+4+...+64 = 126 s (at least ~100 s with jitter): a server restart, an upgrade
# with its database migration, or a proxy reload fits; Prefect's default (5: 62 s, ~50 s with
# jitter) leaves little room once the machine is busy. A server that is gone for good is
# reported after that one window, not one per flow level (see stop_retrying).
DEFAULT_MAX_RETRIES = "6"
# What a proxy in front of the server answers while the server is down.
GATEWAY_CODES = {502, 503, 504}


def set_client_defaults() -> None:
    """Our retry budget, unless the user chose one. Called before Prefect is imported."""
    os.environ.setdefault(MAX_RETRIES, DEFAULT_MAX_RETRIES)


def _means_no_server(err: BaseException) -> bool:
    """An error of Prefect's API client (not, say, an http:// WARC download) that says no server answered."""
    if isinstance(err, httpx.TransportError):  # refused, reset, timed out, protocol cut short
        no_answer = True
    else:  # httpx.HTTPStatusError and Prefect's subclass: a proxy answering for a server that is down
        response = getattr(err, "response", None)
        no_answer = isinstance(err, httpx.HTTPStatusError) and response is not None and response.status_code in GATEWAY_CODES
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
    settings.client.max_retries = 0
    settings.logging.to_api.enabled = False
    logging.raiseExceptions = False


def server_lost(err: BaseException, stage: str | None) -> PrefectServerLostError | None:
    """PrefectServerLostError for an error that comes from a Prefect server that stopped
    answering, None for any other error. The first one raised (the innermost: a stage) keeps
    its wording when the engine's own failed calls are raised over it further out."""
    chain = _chain(err)
    for link in chain:
        if isinstance(link, PrefectServerLostError):
            return PrefectServerLostError(*link.args)
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
        raise lost from err
