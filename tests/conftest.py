"""Shared fixtures: paths to the bundled sample and the shared data, and a Prefect API."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_WARC = ROOT / "data" / "sample" / "CC-SAMPLE-A-00002.warc.gz"
SHARED_DATA = (ROOT / ".." / "shared" / "data").resolve()

# Without a GPU, Triton kernels (model/fused_loss.py) run in Triton's interpreter, so their
# arithmetic is still tested. Set before any test module imports them.
if "TRITON_INTERPRET" not in os.environ:
    import torch

    if not torch.cuda.is_available():
        os.environ["TRITON_INTERPRET"] = "1"


@pytest.fixture(scope="session")
def sample_warc() -> Path:
    assert SAMPLE_WARC.is_file(), "the bundled sample WARC is part of the repo"
    return SAMPLE_WARC


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present on this machine")
    return SHARED_DATA


@pytest.fixture(scope="session")
def prefect_api():
    """A temporary Prefect server (SQLite) for flow tests, torn down after the session."""
    from prefect.testing.utilities import prefect_test_harness

    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models on a shared 2-core machine run far faster on one intra-op thread than on two
    that compete with other processes. Use per module: pytestmark = usefixtures("one_torch_thread")."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
