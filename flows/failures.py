"""How the CLI ends when one of our own errors stops it: one short message, exit code 2.

Our errors (`pipeline.errors.Crawl2GPTError`) say what is wrong and how to fix it, so the user
sees that and nothing after it: the Python traceback goes to RUN/crawl2gpt-error.log (printed too
with --verbose), and the temporary Prefect server is stopped before the message, not after it.

Nothing here imports Prefect at module level: the CLI calls `prepare_environment` before
Prefect is imported, since Prefect reads its settings and logging config at import time.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

from pipeline.atomic import atomic_write_text
from pipeline.errors import PrefectServerLostError

ERROR_LOG = "crawl2gpt-error.log"
TELEMETRY = "PREFECT_SERVER_ANALYTICS_ENABLED"
CONSOLE_HANDLER = "PREFECT_LOGGING_HANDLERS_CONSOLE_CLASS"


def prepare_environment(verbose: bool) -> None:
    """Settings a user did not choose: no telemetry (often no route out, and the temporary
    server's failed sends print errors), and no tracebacks of our own errors on the console."""
    os.environ.setdefault(TELEMETRY, "false")
    if not verbose:
        os.environ.setdefault(CONSOLE_HANDLER, "flows.console.OwnErrorsConsoleHandler")


def exit_cleanly_on_sigterm() -> None:
    """A SIGTERM (`kill`, a scheduler stopping the job) ends the command the way Ctrl-C does:
    Python unwinds, so the temporary Prefect server is stopped at exit (exit code 143). Under the
    default handler the process died at once (Prefect's own handler marks the flow runs Crashed,
    then re-sends the signal to the handler it found) and left the server's uvicorn process
    running with no parent, holding its port and memory, one more per killed run. Only the main
    thread may set a handler: main() called from another thread (an embedding program) leaves the
    signal to its host."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _exit_on_sigterm)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def stop_temporary_server() -> None:
    """Stop the temporary Prefect server now; at exit it would log its "Stopping" line after our
    message. A no-op when none runs (Prefect not imported, or PREFECT_API_URL set: a real
    server, or a test harness's, which must outlive this command)."""
    if "prefect.server.api.server" not in sys.modules:
        return
    from prefect.logging.handlers import APILogHandler
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return
    APILogHandler().flush()  # the flow runs' last log lines reach the server while it is up
    SubprocessASGIServer().stop()  # the one get_client() starts when no API URL is set (port None)


# The loggers of Prefect's background services: the events worker's service loop and its websocket client.
SERVICE_LOGGERS = ("prefect._internal", "prefect.events")


def quiet_prefect_services() -> None:
    """After the server is gone, Prefect's background services still hold what they queued (the
    events worker: task and flow run events) and try to send it as the process exits, logging
    "Service 'EventsWorker' failed to process item" with the whole event, or "Unable to connect
    to 'ws://…/api/events/in'", after our message (CI saw both). The message already says the
    server stopped answering, so those sends fail unheard. Their loggers are disabled, not raised
    in level: Prefect makes `prefect._internal` and its children SafeLoggers, which ignore logger
    levels (only PREFECT_LOGGING_INTERNAL_LEVEL counts), while every logger's `handle` checks
    `disabled`. The services run from the first flow on, so their loggers exist by now."""
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and any((name + ".").startswith(p + ".") for p in SERVICE_LOGGERS):
            logger.disabled = True


def write_error_log(err: BaseException, folder: Path | None, argv: list[str]) -> Path | None:
    """The full traceback in FOLDER/crawl2gpt-error.log; None when the folder does not exist
    (a preflight error must not create a run folder) or cannot be written."""
    if folder is None or not folder.is_dir():
        return None
    path = folder / ERROR_LOG
    header = f"{time.strftime('%Y-%m-%d %H:%M:%S')}  crawl2gpt {' '.join(argv)}\n"
    try:
        atomic_write_text(path, header + "".join(traceback.format_exception(err)))
    except OSError:
        return None
    return path


def report_error(err: BaseException, folder: Path | None, verbose: bool, argv: list[str]) -> int:
    """Print the short form of one of our errors (traceback only with --verbose); return 2."""
    stop_temporary_server()
    if isinstance(err, PrefectServerLostError):
        quiet_prefect_services()
    sys.stdout.flush()  # whatever the command printed comes before the message
    log = write_error_log(err, folder, argv)
    if verbose:
        traceback.print_exception(err)
    where = f"full traceback in {log}" if log else "rerun with --verbose for the traceback"
    print(f"crawl2gpt: {type(err).__name__} ({where})", file=sys.stderr)
    print(f"crawl2gpt: error: {err}", file=sys.stderr)
    return 2
