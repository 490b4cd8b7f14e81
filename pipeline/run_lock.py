"""One process at a time in a run folder: an exclusive flock on RUN/.crawl2gpt.lock.

The DAG loop (crawl2gpt/runner.py `run_dag`, under `crawl2gpt run` and the Prefect pipeline flow)
and `crawl2gpt stage NAME --output RUN/NAME` take it before they write anything. A second process
on the same folder gets RunLockedError at once, having written nothing, naming the holder: its
pid, host, start time and command, which the holder writes into the lock file. Different run
folders have different locks, so any number of runs proceed side by side.

Why flock: the kernel drops the lock when the holder's file descriptor closes, and that includes
the process dying by SIGKILL or the OOM killer, so there is never a stale lock to clean up and no
pid to test for life. The file itself stays: deleting it would let the next two processes lock
two different files. Its text names the last holder; only the flock says whether one holds it now.

The lock is re-entrant within one process (the CLI takes it before Prefect starts, the DAG loop
takes it again inside the flow), and its descriptor is not inherited by the processes a stage
starts (os.open's descriptors are close-on-exec and the part pools spawn, not fork), so a worker
that outlives its run never holds it.

Limits:
- It is advisory: only crawl2gpt takes it; `rm` or another program is not stopped.
- Across machines it holds only where the filesystem sends flock to its server: NFS does on Linux (flock becomes
  an NFS byte-range lock) unless mounted with local_lock=flock or local_lock=all; Lustre only when
  mounted with `flock` (with `localflock` the lock is per machine, under `noflock` flock fails);
  FUSE filesystems that do not implement flock (s3fs, gcsfuse, ...) keep it on the machine that took it.
  Where it is per machine, two runs on two machines can both enter one folder: give each machine its own run folder.
  Where flock fails outright, the run goes on unlocked and logs a warning saying so.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import shlex
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.errors import InputError, RunLockedError

LOCK_FILE = ".crawl2gpt.lock"
log = logging.getLogger("crawl2gpt.lock")

_held: dict[Path, list[int]] = {}  # run folder -> [descriptor, depth] of the locks this process holds
_held_guard = threading.Lock()


def current_command() -> str:
    """This process's command line as a user typed it (`crawl2gpt run --workdir ...`)."""
    return shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else "python"


@contextmanager
def run_lock(folder: str | Path, command: str | None = None) -> Iterator[Path]:
    """Hold the run folder's lock for the block (creating the folder); RunLockedError if another
    process holds it. `command` is what the lock file names (default: this process's argv)."""
    folder = Path(folder).resolve()  # a relative path or a symlink names the same lock
    with _held_guard:
        held = _held.get(folder)
        if held is not None:
            held[1] += 1
        else:
            _held[folder] = [_acquire(folder, command or current_command()), 1]
    try:
        yield folder / LOCK_FILE
    finally:
        with _held_guard:
            held = _held[folder]
            held[1] -= 1
            if held[1] == 0:
                del _held[folder]
                os.close(held[0])  # releases the flock


def _acquire(folder: Path, command: str) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    try:  # O_NOFOLLOW: a planted symlink must not make us truncate the file it points at
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as err:
        if err.errno != errno.ELOOP:
            raise
        raise InputError(f"{path} is a symbolic link, not the lock file crawl2gpt writes; remove it") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        raise RunLockedError(locked_message(folder, holder)) from None
    except OSError as err:  # a filesystem without flock (Lustre mounted noflock): run, but say so
        log.warning("cannot lock %s (%s): nothing stops a second run in this folder", path, err)
        return fd
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "command": command}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
    return fd


def _read_holder(fd: int) -> dict | None:
    try:
        return json.loads(os.pread(fd, 1 << 16, 0))
    except (OSError, ValueError):  # the holder took the lock a moment ago and has not written yet
        return None


def locked_message(folder: Path, holder: dict | None) -> str:
    retry = "wait for it to finish or stop it; a lock left by a dead process is released automatically"
    if not holder:
        return f"{folder} is in use by another crawl2gpt process that is just starting ({folder / LOCK_FILE}); {retry}"
    command = holder.get("command", "crawl2gpt")
    if len(command) > 160:
        command = command[:157] + "..."
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    where = holder.get("host", "?")
    if where != socket.gethostname():
        retry = f"wait for it to finish or stop it on {where}; a lock left by a dead process is released automatically"
    return f"{folder} is in use by {command} (pid {holder.get('pid', '?')} on {where}, since {since}); {retry}"
