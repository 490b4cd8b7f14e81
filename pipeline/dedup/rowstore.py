"""Per-document uint32 arrays on disk (shingle sets, signatures), read back one document at a time.

The disk backend's verification needs the shingles (or signatures) of candidate documents only.
A part writes them as it computes them: `part-i.u4` holds every document's values back to back,
`part-i.offsets.npy` where each document starts (rows + 1 int64). A reader fetches one document
with a single `os.pread`, so its memory is one document, not a part, and nothing is mapped into
the process (a memory map would count every page it touched as resident).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pipeline.atomic import temp_path

VALUE = np.dtype("<u4")


def values_path(folder: Path, index: int) -> Path:
    return folder / f"part-{index:05d}.u4"


def offsets_path(folder: Path, index: int) -> Path:
    return folder / f"part-{index:05d}.offsets.npy"


def save_npy(path: Path, array: np.ndarray) -> None:
    """np.save beside the target, then rename: a task killed mid-write leaves no torn array."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    with open(tmp, "wb") as fh:
        np.save(fh, array)
    os.replace(tmp, path)


class RowWriter:
    """Appends documents' arrays for one part; `close()` publishes the part (values, then offsets)."""

    def __init__(self, folder: Path, index: int):
        self.folder, self.index = folder, index
        folder.mkdir(parents=True, exist_ok=True)
        self.tmp = temp_path(values_path(folder, index))
        self.fh = open(self.tmp, "wb")
        self.lengths: list[np.ndarray] = []

    def append(self, arrays: list[np.ndarray]) -> None:
        if arrays:
            self.fh.write(np.concatenate(arrays).astype(VALUE, copy=False).tobytes())
        self.lengths.append(np.array([len(a) for a in arrays], dtype=np.int64))

    def close(self) -> None:
        self.fh.close()
        offsets = np.concatenate([[0], np.cumsum(np.concatenate(self.lengths or [np.zeros(0, np.int64)]))])
        os.replace(self.tmp, values_path(self.folder, self.index))
        save_npy(offsets_path(self.folder, self.index), offsets.astype(np.int64))  # written last: marks complete


class RowReader:
    """Reads document `key` (a global index) of any part; `starts` are the parts' first indices."""

    def __init__(self, folder: Path, starts: list[int]):
        self.starts = np.asarray(starts, dtype=np.int64)
        self.offsets = [np.load(offsets_path(folder, i), mmap_mode="r") for i in range(len(starts))]
        self.fds = [os.open(values_path(folder, i), os.O_RDONLY) for i in range(len(starts))]

    def __getitem__(self, key: int) -> np.ndarray:
        part = int(np.searchsorted(self.starts, key, side="right")) - 1
        row = key - int(self.starts[part])
        begin, end = int(self.offsets[part][row]), int(self.offsets[part][row + 1])
        data = os.pread(self.fds[part], (end - begin) * VALUE.itemsize, begin * VALUE.itemsize)
        return np.frombuffer(data, dtype=VALUE)

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []
