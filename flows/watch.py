"""When the CLI starts watching the Prefect server (flows/server_hung.py): once a command's
up-front checks have passed, not before.

Reading Prefect's settings to learn whether PREFECT_API_URL names a server imports most of
Prefect, 1-2 s on a 2-core machine; a typo in a setting must be reported before that (issue 24:
a bad setting fails in under 3 s). Every command that runs flows calls `checks_passed(args)`
where its checks end; `main` stops whatever was started.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

WATCHED_COMMANDS = ("run", "stage", "train", "finetune", "ablate")


class ServerWatch:
    """The hung-server watchdog of one CLI command (or, without a named server, the reaper of its
    temporary one: flows/reaper.py), started at most once."""

    def __init__(self, start: Callable[[], object]):
        self._start, self._watchdog = start, None

    def start(self) -> None:
        if self._watchdog is None:
            self._watchdog = self._start()

    def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.stop()


def checks_passed(args: argparse.Namespace) -> None:
    """From here on an error's traceback goes to the output folder, and a hung server is watched."""
    args.checked = True
    watch = getattr(args, "server_watch", None)  # absent when a command's function is called directly (tests)
    if watch is not None:
        watch.start()
