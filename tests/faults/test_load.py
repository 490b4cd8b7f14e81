"""Fault 6 of issue 19 (nightly): 20 flow runs of the `pipeline` deployment created at once
against one Prefect server (SQLite), executed by `crawl2gpt serve --limit 2` on a 2-core machine.

Each run has its own run folder (the `workdir` parameter: runs on one folder would refuse, the
run-folder lock) and the same small inputs and settings: the bundled sample, a tiny model,
20 training steps, workers=1 (the limit, not each run, uses the two cores).

Promise checked (docs/reliability.md):
  - all 20 runs reach Completed within 30 minutes, none lost and none run twice: one pipeline
    flow run per folder, six stage subflows each, every one Completed;
  - every run folder holds the data of a reference run of the same deployment made alone
    before the burst (stage files by sha256, shards included; training losses and weights).
Figures (wall time, each run's time and queue wait, peak memory of the server and of serve's
process tree) are printed and written to test-artifacts/faults-load.json.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from uuid import UUID

import pytest

from crawl2gpt.stages import STAGES
from helpers.fault_runs import SAMPLE_RUN_SETTINGS
from helpers.prefect_server import FINAL_STATES, PrefectServer
from helpers.run_data import run_data

pytestmark = [pytest.mark.faults, pytest.mark.nightly]
ROOT = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).with_name("crawl2gpt")
RUNS = 20
LIMIT = 2  # flow runs at once: the machine's two cores
DEADLINE_S = 30 * 60
SETTINGS = [*SAMPLE_RUN_SETTINGS, "train.checkpoint_interval=10", "workers=1"]
FIGURES = ROOT / "test-artifacts" / "faults-load.json"


class TreeMemory:
    """Peak summed RSS of process trees, sampled every second in a thread (psutil)."""

    def __init__(self, **roots: int):
        import psutil

        self.psutil, self.roots = psutil, {name: psutil.Process(pid) for name, pid in roots.items()}
        self.peak_mb = {name: 0.0 for name in roots}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.done.wait(1.0):
            for name, root in self.roots.items():
                total = 0
                try:
                    for proc in [root, *root.children(recursive=True)]:
                        try:
                            total += proc.memory_info().rss
                        except self.psutil.NoSuchProcess:
                            pass
                except self.psutil.NoSuchProcess:
                    continue
                self.peak_mb[name] = max(self.peak_mb[name], round(total / 2**20, 1))

    def stop(self) -> dict[str, float]:
        self.done.set()
        self.thread.join()
        return self.peak_mb


def _time(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _parameters(sample: Path, workdir: Path) -> dict:
    return {"inputs": [str(sample)], "workdir": str(workdir), "config_path": None, "overrides": SETTINGS}


def _create_at_once(api: str, deployment_id: str, sample: Path, folders: list[Path]) -> list[str]:
    """One flow run per folder, all requests in flight together, through Prefect's own client as
    the UI, `prefect deployment run` or an automation would: a busy SQLite server answers 503,
    which that client retries (the idempotency key keeps a retried request from adding a run)."""
    from prefect.client.orchestration import SyncPrefectClient

    def create(folder: Path) -> str:
        with SyncPrefectClient(api) as client:
            run = client.create_flow_run_from_deployment(
                UUID(deployment_id), parameters=_parameters(sample, folder), idempotency_key=folder.name
            )
            return str(run.id)

    with ThreadPoolExecutor(len(folders)) as pool:
        return list(pool.map(create, folders))


def _wait_all_final(server: PrefectServer, ids: list[str], deadline: float) -> dict[str, dict]:
    while True:
        runs = {r["id"]: r for r in server.flow_runs(flow_runs={"id": {"any_": ids}})}
        if len(runs) == len(ids) and all(r["state_type"] in FINAL_STATES for r in runs.values()):
            return runs
        if time.time() > deadline:
            return runs
        time.sleep(5)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def test_twenty_runs_at_once_all_complete_with_the_reference_data(sample_warc, tmp_path):
    pytest.importorskip("psutil")
    server = PrefectServer(tmp_path / "prefect-home").start()
    serve_log = open(tmp_path / "serve.log", "w")
    serve = subprocess.Popen(
        [str(CLI), "serve", "--workdir", str(tmp_path / "default"), "--cron", "", "--limit", str(LIMIT)],
        cwd=ROOT,
        env=server.env,
        stdout=serve_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        for _ in range(180):
            deployments = {d["name"]: d["id"] for d in server.call("/deployments/filter", {})}
            if "pipeline" in deployments:
                break
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(1)

        reference_dir = tmp_path / "reference"
        started = time.time()
        (alone,) = _create_at_once(server.api, deployments["pipeline"], sample_warc, [reference_dir])
        assert server.wait_final(alone, timeout=900) == "COMPLETED", (tmp_path / "serve.log").read_text()[-3000:]
        alone_s = round(time.time() - started, 1)
        reference = run_data(reference_dir)

        memory = TreeMemory(server=server.process.pid, serve=serve.pid)
        folders = [tmp_path / f"load-{i:02d}" for i in range(RUNS)]
        started = time.time()
        ids = _create_at_once(server.api, deployments["pipeline"], sample_warc, folders)
        created_s = round(time.time() - started, 2)
        runs = _wait_all_final(server, ids, started + DEADLINE_S)
        wall_s = round(time.time() - started, 1)
        peak_mb = memory.stop()

        states = {runs[i]["parameters"]["workdir"]: runs[i]["state_type"] for i in ids if i in runs}
        durations = [r["total_run_time"] for r in runs.values() if r["state_type"] == "COMPLETED"]
        waits = [_time(r["start_time"]) - _time(r["created"]) for r in runs.values() if r["start_time"]]
        figures = {
            "runs": RUNS,
            "limit": LIMIT,
            "created_in_s": created_s,
            "wall_s": wall_s,
            "one_run_alone_s": alone_s,
            "completed": sum(s == "COMPLETED" for s in states.values()),
            "not_completed": {Path(w).name: s for w, s in states.items() if s != "COMPLETED"},
            "run_s": {
                "min": _pct(durations, 0),
                "median": round(statistics.median(durations), 1) if durations else None,
                "p90": _pct(durations, 0.9),
                "max": _pct(durations, 1.0),
            }
            if durations
            else {},
            "queue_wait_s": {"median": round(statistics.median(waits), 1), "max": _pct(waits, 1.0)} if waits else {},
            "peak_rss_mb": peak_mb,
            "cpus": os.cpu_count(),
            "load_avg_1m_end": round(os.getloadavg()[0], 2),
        }
        FIGURES.parent.mkdir(exist_ok=True)
        FIGURES.write_text(json.dumps(figures, indent=1) + "\n")
        print(json.dumps(figures))

        assert wall_s < DEADLINE_S and len(runs) == RUNS, figures
        assert figures["completed"] == RUNS, figures
        # none lost and none run twice: one subflow per stage per folder, each Completed
        subflows = [
            r
            for r in server.flow_runs(flow_runs={"parent_task_run_id": {"is_null_": False}})
            if r["name"].startswith(tuple(f"{s}-load-" for s in STAGES))
        ]
        per_folder = {
            f.name: sorted(r["name"].split("-")[0] for r in subflows if r["name"].endswith(f.name)) for f in folders
        }
        assert all(names == sorted(STAGES) for names in per_folder.values()), per_folder
        assert all(r["state_type"] == "COMPLETED" for r in subflows)
        for folder in folders:
            assert run_data(folder) == reference, folder.name
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        try:
            serve.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
        serve_log.close()
        server.stop()
