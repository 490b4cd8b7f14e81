"""Crash-safe writes: write beside the target, fsync, then rename over it.

A reader therefore sees either the old file or the complete new one, never half of one.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

# Writes that fail for lack of room, and how to say so: the fix is the user's (free space, raise a limit).
OUT_OF_ROOM = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large (past the file-size limit of this process, `ulimit -f`, or of the file system)",
}


def fsync_dir(path: Path) -> None:
    """Persist a rename: the directory entry itself must reach the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path(target: Path, tag: str | None = None) -> Path:
    """Where a crash-safe write of `target` (a file or a folder) goes first: `.NAME.tmp-TAG` beside
    it, so the final rename stays on one file system, a crash leaves a hidden file that
    `clean_stale` removes and `target_of` maps back to NAME. TAG is random unless given."""
    return _sibling(Path(target), "tmp", tag)


def _sibling(target: Path, kind: str, tag: str | None = None) -> Path:
    return target.with_name(f".{target.name}.{kind}-{tag or uuid.uuid4().hex[:8]}")


def atomic_write_with(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Crash-safe write of what `write(fh)` puts into a binary file: for a library that writes to a
    file object itself (matplotlib's savefig, gzip). A write that fails (a full disk, a bad
    value) removes its temporary file before the error goes on: only a crash leaves one."""

    def fill(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            write(fh)

    atomic_write_file(path, fill)


def atomic_write_file(path: Path, write: Callable[[Path], object]) -> None:
    """Crash-safe write by a library that takes a file name, not a file object (safetensors,
    fastText's save_model): `write(tmp)` fills the temporary name, which is fsynced and renamed
    over `path`. A failed write removes its temporary file: only a crash leaves one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write_with(path, lambda fh: fh.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def replace_dir(new: Path, target: Path) -> None:
    """Move a finished folder into place, replacing any older version of it.

    The old folder is first renamed aside (one atomic rename), then the new one is renamed
    in (another), then the old one is deleted. A crash in between leaves either the old
    folder, or no folder plus a `.old-*` that `clean_stale` removes: never a mix of both.
    """
    new, target = Path(new), Path(target)
    old = None
    if target.exists():
        old = _sibling(target, "old")
        os.rename(target, old)
    os.rename(new, target)
    fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def out_of_room(err: BaseException) -> OSError | None:
    """The OSError in `err` or its causes that says a write found no room (OUT_OF_ROOM), if any.

    pyarrow and Python's own writes raise OSError with errno set (pyarrow without a file name).
    Writers built on Rust's std::io (safetensors: SafetensorError) put the errno only in their
    message, as "... (os error 28)"; that is read back into an OSError.
    """
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in OUT_OF_ROOM:
            return err
        if not isinstance(err, OSError) and (code := _rust_os_error(str(err))) in OUT_OF_ROOM:
            return OSError(code, os.strerror(code))
        err = err.__cause__ or err.__context__
    return None


def _rust_os_error(message: str) -> int | None:
    found = re.search(r"\(os error (\d+)\)", message)
    return int(found.group(1)) if found else None


def free_bytes(path: Path) -> int | None:
    """Free space on the file system holding `path` (or its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def target_of(path: Path) -> Path:
    """What a temporary sibling `.NAME.tmp-*` is being written for (`NAME` beside it); `path` itself otherwise."""
    path = Path(path)
    name, dot_tmp, _ = path.name.rpartition(".tmp-")
    if dot_tmp and name.startswith(".") and len(name) > 1:
        return path.with_name(name[1:])
    return path


def clean_stale(target: Path) -> list[Path]:
    """Remove leftovers (`.NAME.tmp-*`, `.NAME.old-*`) of interrupted writes of `target`."""
    target = Path(target)
    removed = []
    if not target.parent.exists():
        return removed
    for leftover in target.parent.glob(f".{target.name}.*-*"):
        if leftover.name.startswith((f".{target.name}.tmp-", f".{target.name}.old-")):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
            removed.append(leftover)
    return removed
