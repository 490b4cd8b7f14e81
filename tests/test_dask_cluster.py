"""A real Dask cluster: `dask scheduler` and two `dask worker` processes on 127.0.0.1.

The curation DAG (extract -> shards) and then the dedup stage alone (disk backend: its bucket
tasks run on the workers too) through `dask_address` write the same files as a local run. Then
one worker is killed with SIGKILL in the middle of the dedup stage: the stage still completes
with the same data, and the output that was there before is never torn.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from helpers.dedup import filter_folder, sample_texts
from pipeline.stage import read_manifest, sha256_file

ROOT = Path(__file__).resolve().parents[1]
# A scheduler and two worker processes, the whole DAG twice and a kill (~2 min on 2 cores): make test-slow.
# make test runs the Dask task runner on a local cluster (tests/test_flows_runners.py).
pytestmark = pytest.mark.slow
DASK = Path(sys.executable).with_name("dask")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    """The distributed package's own programs, each a separate process (workers without a nanny,
    so SIGKILL kills the worker itself and nothing restarts it)."""

    def __init__(self, tmp: Path, env: dict[str, str]):
        self.address = f"tcp://127.0.0.1:{_free_port()}"
        self.env, self.tmp, self.workers = env, tmp, []
        self.logs = []
        self.scheduler = self._spawn(
            "scheduler",
            [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", self.address.rsplit(":", 1)[1], "--no-dashboard"],
        )

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "wb")
        self.logs.append(log)
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT)

    def add_worker(self) -> subprocess.Popen:
        name = f"worker-{len(self.workers)}"
        worker = self._spawn(
            name,
            [
                str(DASK),
                "worker",
                self.address,
                "--nthreads",
                "1",
                "--no-nanny",
                "--host",
                "127.0.0.1",
                "--no-dashboard",
                "--name",
                name,
                "--local-directory",
                str(self.tmp / name),
            ],
        )
        self.workers.append(worker)
        return worker

    def wait_for_workers(self, n: int) -> None:
        from distributed import Client

        with Client(self.address, timeout=60) as client:
            client.wait_for_workers(n, timeout=120)

    def live_workers(self) -> int:
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            return len(client.scheduler_info()["workers"])

    def close(self) -> None:
        for proc in [*self.workers, self.scheduler]:
            if proc.poll() is None:
                proc.terminate()
        for proc in [*self.workers, self.scheduler]:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        for log in self.logs:
            log.close()


@pytest.fixture(scope="module")
def cluster(prefect_api, tmp_path_factory):
    if not DASK.is_file():
        pytest.fail(f"{DASK} is missing: the distributed package installs it (prefect-dask depends on it)")
    from prefect.settings import PREFECT_API_URL

    # workers run the Prefect tasks, so they report to the same (test) API as the flow
    env = {
        **os.environ,
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    cluster = Cluster(tmp_path_factory.mktemp("dask"), env)
    try:
        cluster.add_worker(), cluster.add_worker()
        cluster.wait_for_workers(2)
        yield cluster
    finally:
        cluster.close()


def _without_timings(value):
    """A manifest with every timing left out (started_at, seconds, *_s, at any depth)."""
    if isinstance(value, dict):
        return {
            k: _without_timings(v)
            for k, v in value.items()
            if k not in ("started_at", "finished_at") and not k.endswith(("_s", "seconds"))
        }
    return value


def _assert_same_stage(a: Path, b: Path) -> None:
    """Same files byte for byte (so the same Parquet contents and kept ids), same manifest but timings."""
    left, right = _without_timings(read_manifest(a)), _without_timings(read_manifest(b))
    assert left == right, [(k, left.get(k), right.get(k)) for k in left if left.get(k) != right.get(k)]
    for rel, entry in read_manifest(a)["files"].items():
        assert sha256_file(b / rel) == entry["sha256"], rel


def _assert_intact(folder: Path) -> None:
    """Every file a manifest lists is there and whole; no leftover temp folder beside it."""
    for rel, entry in read_manifest(folder)["files"].items():
        assert sha256_file(folder / rel) == entry["sha256"], rel
    assert not list(folder.parent.glob(f".{folder.name}.tmp-*"))


def test_dag_and_dedup_on_a_dask_cluster_equal_local(cluster, sample_warc, tmp_path):
    from flows.dag import pipeline_flow
    from flows.stages import dedup_flow

    config = str(ROOT / "configs" / "demo.yaml")
    run = tmp_path / "run"
    pipeline_flow(inputs=[str(sample_warc)], workdir=str(run), config_path=config, until="shards")
    run.rename(tmp_path / "local")
    on_dask = ["task_runner=dask", f"dask_address={cluster.address}"]
    pipeline_flow(inputs=[str(sample_warc)], workdir=str(run), config_path=config, overrides=on_dask, until="shards")
    for stage in ("extract", "filter", "dedup", "tokenizer", "shards"):
        _assert_same_stage(run / stage, tmp_path / "local" / stage)

    # the dedup stage alone with the disk backend: its bucket tasks run on the workers as well
    local = dedup_flow(
        inputs=[str(run / "filter")],
        output=str(tmp_path / "dedup-local"),
        config_path=config,
        overrides=["dedup.backend=disk"],
    )
    remote = dedup_flow(
        inputs=[str(run / "filter")],
        output=str(tmp_path / "dedup-dask"),
        config_path=config,
        overrides=["dedup.backend=disk", *on_dask],
    )
    assert remote["extra"]["backend"] == local["extra"]["backend"] == "disk"
    assert read_manifest(tmp_path / "dedup-dask")["files"] == read_manifest(tmp_path / "dedup-local")["files"]
    assert read_manifest(tmp_path / "dedup-dask")["files"] == read_manifest(run / "dedup")["files"]  # = memory backend


def _corpus(tmp: Path, parts: int = 6, per_part: int = 700) -> Path:
    """Real paragraphs recombined into documents, a fifth of them copied with small edits."""
    paragraphs = [p for t in sample_texts(limit=60) for p in t.split("\n") if len(p.split()) >= 12]
    rng = random.Random(7)
    docs = []
    for i in range(parts * per_part):
        if docs and rng.random() < 0.2:
            words = rng.choice(docs)["text"].split()
            docs.append({"doc_id": f"d{i}", "text": " ".join(w for w in words if rng.random() > 0.02)})
        else:
            docs.append({"doc_id": f"d{i}", "text": "\n".join(rng.sample(paragraphs, rng.randint(3, 8)))})
    return filter_folder(tmp, [docs[p::parts] for p in range(parts)])


def test_worker_killed_mid_stage(cluster, tmp_path):
    from flows.stages import dedup_flow

    source = _corpus(tmp_path)
    disk = ["dedup.backend=disk", "dedup.bucket_docs=1000"]  # several bucket tasks per band
    dedup_flow(inputs=[str(source)], output=str(tmp_path / "local"), overrides=disk)
    out = tmp_path / "dedup"
    dedup_flow(inputs=[str(source)], output=str(out), overrides=disk)  # a finished output, to be replaced
    before = read_manifest(out)["files"]

    victim = cluster.workers[0]
    killed = threading.Event()

    def kill_when_a_part_is_done():
        deadline = time.time() + 300
        while time.time() < deadline and not killed.is_set():
            if list(tmp_path.glob(".dedup.tmp-*/minhash/part-*.parquet")):  # the stage is under way
                victim.send_signal(signal.SIGKILL)
                killed.set()
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_when_a_part_is_done, daemon=True)
    watcher.start()
    on_dask = ["task_runner=dask", f"dask_address={cluster.address}", *disk]
    try:
        stats = dedup_flow(inputs=[str(source)], output=str(out), overrides=on_dask, force=True)
    finally:
        killed.set()
        watcher.join()
    assert victim.wait(timeout=30) == -signal.SIGKILL  # it really died mid-stage
    assert cluster.live_workers() == 1
    assert stats["docs_in"] == 6 * 700 and stats["extra"]["backend"] == "disk"
    _assert_intact(out)
    assert read_manifest(out)["files"] == read_manifest(tmp_path / "local")["files"] == before
    _assert_intact(source)  # the input, written before, untouched
    shutil.rmtree(tmp_path / "local")
