"""A write that found no room, told as the user's to fix: where, how much was free, what to do.

A full disk (ENOSPC), a quota (EDQUOT) or a file-size limit (EFBIG) is no fault of a stage:
retrying fails again and a traceback helps nobody. `as_disk_full` turns such an error into a
DiskFullError naming the stage folder and the fix; `explaining_full_disks` does so inside each
task, so a flow's task neither retries it nor logs a traceback.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from pipeline.atomic import OUT_OF_ROOM, free_bytes, out_of_room
from pipeline.errors import Crawl2GPTError, DiskFullError

# How a stage's parts are run (pipeline/stage.py MapParts), spelled here so this module needs no stage import.
Mapper = Callable[[Callable[[Any], Any], list[Any]], list[Any]]


def explaining_full_disks(mapper: Mapper, stage: str, output: Path, atomic: bool) -> Mapper:
    """`mapper`, with a write that finds no room turned into DiskFullError inside the task itself:
    a full disk is the user's to fix, so a flow's task neither retries it nor logs a traceback."""

    def run(fn: Callable[[Any], Any], parts: list[Any]) -> list[Any]:
        return mapper(partial(_explain_full_disk, fn, stage, output, atomic), parts)

    return run


def _explain_full_disk(fn: Callable[[Any], Any], stage: str, output: Path, atomic: bool, part: Any) -> Any:
    try:
        return fn(part)
    except Exception as err:
        if (full := as_disk_full(err, stage, output, atomic)) is not None:
            raise full from err
        raise


def as_disk_full(err: Exception, stage: str, output: Path, atomic: bool) -> DiskFullError | None:
    """A DiskFullError saying where and what to do, when `err` is a write that found no room
    (ENOSPC, EDQUOT, EFBIG; pipeline/atomic.py out_of_room); None for any other error."""
    full = None if isinstance(err, Crawl2GPTError) else out_of_room(err)
    if full is None:
        return None
    # The stage folder the user knows (not its temporary sibling), and the file when the error
    # names one: pyarrow's write errors do not.
    where = f"{output} ({Path(full.filename).name})" if full.filename else str(output)
    free = free_bytes(output)
    room = f" ({free / 2**20:,.1f} MiB free on that file system when it failed)" if free is not None else ""
    fix = "Raise that limit" if full.errno == errno.EFBIG else "Free space there"
    kept = "finished stages are kept" + (
        ", and this stage resumes from what it completed" if not atomic else ", this one left nothing behind"
    )
    return DiskFullError(
        f"{OUT_OF_ROOM[full.errno]} while the {stage} stage wrote {where}{room}. "
        f"{fix} and rerun the same command: {kept}"
    )
