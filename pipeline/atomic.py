"""Crash-safe writes: write beside the target, fsync, then rename over it.

A reader therefore sees either the old file or the complete new one, never half of one.
"""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Persist a rename: the directory entry itself must reach the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


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
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(target, old)
    os.rename(new, target)
    fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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
