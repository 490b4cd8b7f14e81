"""Programs from outside the virtualenv that some tests start (redis-server, chromium, mount, ...).

Every test module that starts one finds it here, never with `shutil.which` or a fixed path, so
that on a machine without it the test skips with the same message everywhere, naming what to
install:

    REDIS_SERVER = require_program("redis-server", debian="redis-server")   # the path, or a skip
    MOUNT = find_program("mount")                                           # the path, or None

`require_program` is for tests that cannot run without the program; `find_program` for tests
that have another way to do the same thing without it (the disk-full fault uses a file-size
limit where it cannot mount a tmpfs). Programs of the virtualenv itself (`prefect server start`,
`dask scheduler`, `torchrun`) are installed with the project and are not outside programs.

To see the skips on a machine where the programs are installed, name them in
CRAWL2GPT_TEST_HIDE (comma-separated), and they are treated as missing:

    CRAWL2GPT_TEST_HIDE=redis-server,chromium make test

`tests/test_outside_programs.py` checks that no test module starts a program of KNOWN without
going through this file.
"""

from __future__ import annotations

import os
import shutil

import pytest

# What each outside program is called on Debian/Ubuntu, to say what to install. A program with
# several names (Debian's `chromium`, Ubuntu's `chromium-browser`) is found under any of them.
KNOWN = {
    "redis-server": "redis-server",
    "chromium": "chromium",
    "chromedriver": "chromium-driver",
    "mount": "mount",
    "umount": "mount",
    "ip": "iproute2",
    "unshare": "util-linux",
}
ALIASES = {"chromium": ("chromium", "chromium-browser")}
HIDE_VARIABLE = "CRAWL2GPT_TEST_HIDE"


def hidden() -> set[str]:
    """The programs CRAWL2GPT_TEST_HIDE asks the tests to treat as missing."""
    return {name.strip() for name in os.environ.get(HIDE_VARIABLE, "").split(",") if name.strip()}


def find_program(name: str) -> str | None:
    """The program's path on PATH, or None when it is missing or hidden."""
    if name in hidden():
        return None
    for candidate in ALIASES.get(name, (name,)):
        path = shutil.which(candidate)
        if path is not None:
            return path
    return None


def skip_message(name: str, debian: str) -> str:
    return f"needs {name}: apt-get install {debian}"


def require_program(name: str, debian: str | None = None) -> str:
    """The program's path; skips the calling test (or, at import, its module) when it is missing."""
    __tracebackhide__ = True  # the skip is reported at the caller's line, in the test module
    path = find_program(name)
    if path is None:
        pytest.skip(skip_message(name, debian or KNOWN.get(name, name)), allow_module_level=True)
    return path
