"""The temporary Prefect server ends with the command that started it, even a SIGKILLed one.

Without PREFECT_API_URL, Prefect starts a temporary server (uvicorn) as a child process and
stops it from an atexit handler, or from our SIGTERM handler (flows/failures.py). A SIGKILL
(`kill -9`, the kernel's OOM killer) runs neither, and the server lived on with no parent,
holding its port and a few hundred MB: one more for every killed run of a job that a scheduler
restarts. A process learns of its parent's death only if it asks the kernel (Linux's
PR_SET_PDEATHSIG), and uvicorn does not ask. So the CLI starts the server itself, before its
first flow, and beside it this small reaper, which asks for SIGUSR1 when the command dies and
then stops the server. On a normal exit the command ends the reaper first (SIGTERM).

The reaper runs as a script (`python -I flows/reaper.py PARENT SERVER`), not as `-m
flows.reaper`: importing the flows package imports Prefect, seconds and ~100 MB for a process
that only waits. Linux only; elsewhere the server is left to Prefect as before.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
GRACE_S = 5.0  # uvicorn's own shutdown, as Prefect's stop() allows it


class ServerReaper:
    """The reaper process of one command; `stop()` ends it (the command is exiting normally)."""

    def __init__(self, process: subprocess.Popen | None):
        self.process = process

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=GRACE_S)


def tie_temporary_server() -> ServerReaper:
    """Start Prefect's temporary server now (the instance its clients would start on first use:
    they find it running) and a reaper that stops it if this process dies. Call from the main
    thread: the kernel signals the reaper when the thread that started it ends."""
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_ENABLED

    if not sys.platform.startswith("linux") or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return ServerReaper(None)  # elsewhere, or no temporary server allowed: Prefect as before
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start()
    command = [sys.executable, "-I", __file__, str(os.getpid()), str(server.server_process.pid)]
    # a session of its own: the terminal's Ctrl-C and hang-up reach the command, not the reaper
    return ServerReaper(subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True))


# --------------------------------------------------------------------------- the reaper process


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), None
    when it has ended (a zombie too): a pid together with it names one process, never a later
    one given its pid."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()  # the fields after the command name: 3, 4, ...
    except OSError:
        return None
    return None if fields[0] == "Z" else fields[19]


def stop_server(pid: int, started: str | None) -> None:
    """SIGTERM (uvicorn shuts down, the database closes), SIGKILL after GRACE_S."""
    if started is None or start_time(pid) != started:
        return  # already gone
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_S
        while start_time(pid) == started and time.monotonic() < deadline:
            time.sleep(0.05)
        if start_time(pid) == started:
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # it ended between the check and the signal


def reap(parent: int, server: int) -> None:
    started = start_time(server)
    signal.signal(signal.SIGUSR1, lambda signum, frame: (stop_server(server, started), os._exit(0)))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGUSR1) != 0:  # a sandbox that forbids it: the server as before
        error = os.strerror(ctypes.get_errno())
        print(
            f"crawl2gpt: warning: the temporary Prefect server is not tied to this run ({error}); ",
            end="",
            file=sys.stderr,
        )
        print("if the run is killed with SIGKILL, stop the server's uvicorn process yourself", file=sys.stderr)
        return
    if os.getppid() != parent:  # the command died before the kernel was asked
        stop_server(server, started)
        return
    while True:
        signal.pause()


if __name__ == "__main__":
    reap(int(sys.argv[1]), int(sys.argv[2]))
