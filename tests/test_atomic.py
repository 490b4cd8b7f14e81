"""pipeline/atomic.py: a failed write leaves the old file as it was and no temporary file beside it
(only a crash may leave one, for clean_stale). The disk-full fault of the CLI's error log found
the second half missing: a `.crawl2gpt-error.log.tmp-*` stayed in the run folder."""

from __future__ import annotations

import errno
import subprocess
import sys
import textwrap

import pytest

from pipeline.atomic import atomic_write_bytes, atomic_write_file, atomic_write_with, clean_stale


def test_a_write_that_raises_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "result.json"
    atomic_write_bytes(target, b"old")

    def half_then_fail(fh):
        fh.write(b"half of the new")
        raise ValueError("the writer failed")

    with pytest.raises(ValueError, match="the writer failed"):
        atomic_write_with(target, half_then_fail)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]


def test_a_write_past_the_file_size_limit_fails_with_efbig_and_leaves_no_temporary_file(tmp_path):
    """A real EFBIG from the kernel: a child process with a 64 KiB file-size limit (SIGXFSZ ignored)."""
    target = tmp_path / "big.bin"
    script = textwrap.dedent(f"""
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
        from pipeline.atomic import atomic_write_bytes
        try:
            atomic_write_bytes({str(target)!r}, b"x" * 1_000_000)
        except OSError as err:
            print(err.errno)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == str(errno.EFBIG), done.stderr
    assert list(tmp_path.iterdir()) == []
    assert clean_stale(target) == []


def test_a_library_that_writes_to_a_file_name_gets_the_temporary_name_and_a_failure_keeps_the_old_file(tmp_path):
    """safetensors (and fastText) take a file name: atomic_write_file hands them the temporary one."""
    import torch
    from safetensors.torch import load_file, save_file

    target = tmp_path / "lora.safetensors"
    atomic_write_file(target, lambda tmp: save_file({"w": torch.ones(2)}, str(tmp)))
    assert load_file(str(target))["w"].tolist() == [1.0, 1.0]

    def fails_after_writing(tmp):
        save_file({"w": torch.zeros(2)}, str(tmp))
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError):
        atomic_write_file(target, fails_after_writing)
    assert load_file(str(target))["w"].tolist() == [1.0, 1.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lora.safetensors"]
