"""The Prefect UI shows what a run did: a real server, the demo flow run against it, and
headless Chromium reading the pages (flow run, stage subflows, artifacts), the quality report's
plots inside the UI (both UIs, v1 and v2) and report.html itself.

Screenshots are saved to test-artifacts/ (git-ignored): prefect-ui-*.png and report-html.png.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from helpers.prefect_server import PrefectServer
from helpers.prefect_server import api_call as _api
from helpers.programs import require_program

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = require_program("chromium")  # skips this module where it is missing (.ci/run installs it)
# A server of its own, the demo DAG and headless Chromium on every page: make test-slow.
pytestmark = pytest.mark.slow
STAGE_FLOWS = ["extract", "filter", "dedup", "tokenizer", "shards", "train"]
REPORT_SECTIONS = ["filter", "signals", "dedup", "examples", "shards", "samples"]
SHOTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    with PrefectServer(tmp_path_factory.mktemp("prefect-home")) as server:
        yield server.api, server.env


@pytest.fixture(scope="module")
def demo_flow_run(prefect_server, sample_warc, tmp_path_factory):
    api, env = prefect_server
    workdir = tmp_path_factory.mktemp("ui-run") / "uidemo"
    cmd = [
        str(Path(sys.executable).with_name("crawl2gpt")),
        "run",
        "--input",
        str(sample_warc),
        "--workdir",
        str(workdir),
        "--config",
        str(ROOT / "configs" / "demo.yaml"),
        "--set",
        "train.max_steps=10",
        "--set",
        "train.eval_interval=5",
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs = _api(api, "/flow_runs/filter", {"limit": 50})
    return workdir, {run["name"]: run for run in runs}


def _chromium(url: str, user_data: Path, *extra: str, size: str = "1400,1000") -> str:
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={user_data}",
        "--virtual-time-budget=20000",
        f"--window-size={size}",
        *extra,
        url,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return done.stdout


def _page_text(url: str, user_data: Path, expect: tuple[str, ...] = (), tries: int = 4) -> str:
    """The page's visible text once it shows everything in `expect` (the UI fills lists in
    after its first render, later on a loaded machine), or the last attempt's text."""
    for _ in range(tries):
        dom = _chromium(url, user_data, "--dump-dom")
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))
        if all(needle in text for needle in expect):
            break
    return text


def test_flow_run_and_stage_subflows_are_visible(prefect_server, demo_flow_run, tmp_path):
    api, _ = prefect_server
    _, runs = demo_flow_run
    ui = api.removesuffix("/api")
    assert "pipeline-uidemo" in runs and all(f"{stage}-uidemo" in runs for stage in STAGE_FLOWS)
    assert all(run["state_type"] == "COMPLETED" for run in runs.values())

    listing = _page_text(f"{ui}/runs", tmp_path / "chrome", expect=("7 runs", "crawl2gpt-pipeline", *STAGE_FLOWS))
    assert "7 runs" in listing
    for flow_name in ["crawl2gpt-pipeline", *STAGE_FLOWS]:
        assert flow_name in listing

    pipeline_page = _page_text(
        f"{ui}/runs/flow-run/{runs['pipeline-uidemo']['id']}",
        tmp_path / "chrome",
        expect=("pipeline-uidemo", "Completed"),
    )
    assert "pipeline-uidemo" in pipeline_page and "Completed" in pipeline_page
    subflow_page = _page_text(
        f"{ui}/runs/flow-run/{runs['filter-uidemo']['id']}",
        tmp_path / "chrome",
        expect=("Parent Run", "pipeline-uidemo"),
    )
    assert "Parent Run" in subflow_page and "pipeline-uidemo" in subflow_page

    SHOTS.mkdir(exist_ok=True)
    _chromium(f"{ui}/runs", tmp_path / "chrome", f"--screenshot={SHOTS / 'prefect-ui-runs.png'}")
    assert (SHOTS / "prefect-ui-runs.png").stat().st_size > 10_000


def test_stage_artifacts_are_visible(prefect_server, demo_flow_run, tmp_path):
    api, _ = prefect_server
    # Keyed by the run folder (uidemo), not the config's name (demo): runs of one config keep their own.
    keys = [f"uidemo-{stage}-{kind}" for stage in STAGE_FLOWS for kind in ("counts", "summary")]
    report_keys = [f"uidemo-report-{section}" for section in REPORT_SECTIONS]
    page = _page_text(f"{api.removesuffix('/api')}/artifacts", tmp_path / "chrome", expect=tuple(keys + report_keys))
    for key in keys + report_keys + ["uidemo-shards-quality", "uidemo-train-summary"]:
        assert key in page
    assert _api(api, "/artifacts/filter", {"artifacts": {"key": {"any_": ["demo-filter-counts"]}}}) == []
    SHOTS.mkdir(exist_ok=True)
    _chromium(
        f"{api.removesuffix('/api')}/artifacts",
        tmp_path / "chrome",
        f"--screenshot={SHOTS / 'prefect-ui-artifacts.png'}",
    )


def _artifact_id(api: str, key: str) -> str:
    found = _api(api, "/artifacts/filter", {"artifacts": {"key": {"any_": [key]}}, "limit": 1})
    assert found, f"no artifact {key}"
    return found[0]["id"]


def _painted(png: Path, rgb: tuple[int, int, int], tolerance: int = 8) -> int:
    """Pixels of a screenshot within `tolerance` of a colour: an image that did not decode paints none."""
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(png).convert("RGB"), dtype=np.int16)
    return int(np.all(np.abs(pixels - np.array(rgb, dtype=np.int16)) <= tolerance, axis=-1).sum())


def _hex(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))


@pytest.mark.parametrize("ui", ["", "/v2"])
def test_report_plots_render_inside_the_ui(prefect_server, demo_flow_run, tmp_path, ui):
    """The signal histograms are markdown images with data: URIs; the UI must paint them."""
    from pipeline.report.plots import DROPPED, KEPT

    api, _ = prefect_server
    workdir, _ = demo_flow_run
    report = json.loads((workdir / "shards" / "report.json").read_text())
    url = f"{api.removesuffix('/api')}{ui}/artifacts/artifact/{_artifact_id(api, 'uidemo-report-signals')}"
    dom = ""
    for _ in range(4):  # the UI fills the artifact in after its first render
        dom = _chromium(url, tmp_path / "chrome", "--dump-dom")
        if dom.count('src="data:image/png;base64,') >= len(report["filter"]["signals"]):
            break
    assert dom.count('src="data:image/png;base64,') == len(report["filter"]["signals"]) > 20
    SHOTS.mkdir(exist_ok=True)
    name = "prefect-ui" + ui.replace("/", "-")  # prefect-ui-... (v1) and prefect-ui-v2-...
    shot = SHOTS / f"{name}-report-signals.png"
    _chromium(url, tmp_path / "chrome", f"--screenshot={shot}", size="1400,2400")
    assert _painted(shot, _hex(KEPT)) > 5000 and _painted(shot, _hex(DROPPED)) > 500  # bars drawn, both sides

    filter_url = f"{api.removesuffix('/api')}{ui}/artifacts/artifact/{_artifact_id(api, 'uidemo-report-filter')}"
    text = _page_text(filter_url, tmp_path / "chrome", expect=("only_this_rule", "min_alpha_words_ratio"))
    assert "only_this_rule" in text and "gopher_quality.min_alpha_words_ratio" in text
    _chromium(filter_url, tmp_path / "chrome", f"--screenshot={SHOTS / f'{name}-report-filter.png'}", size="1400,2400")


def test_report_html_renders_in_chromium(demo_flow_run, tmp_path):
    from pipeline.report.build import plot_files
    from pipeline.report.plots import DROPPED, KEPT

    workdir, _ = demo_flow_run
    page = workdir / "shards" / "report.html"
    report = json.loads((workdir / "shards" / "report.json").read_text())
    dom = _chromium(page.as_uri(), tmp_path / "chrome", "--dump-dom")
    assert dom.count('src="data:image/png;base64,') == len(plot_files(report))
    for heading in (
        "Filter: what each threshold does",
        "Examples nearest each threshold",
        "Dedup: the largest clusters",
    ):
        assert heading in dom
    SHOTS.mkdir(exist_ok=True)
    shot = SHOTS / "report-html.png"
    _chromium(page.as_uri(), tmp_path / "chrome", f"--screenshot={shot}", size="1300,6000")
    assert _painted(shot, _hex(KEPT)) > 5000 and _painted(shot, _hex(DROPPED)) > 500


def test_rerun_one_stage_from_a_served_deployment(prefect_server, demo_flow_run):
    """What the UI's Run button does: `crawl2gpt serve` registers the deployments, a flow run of
    the `filter` deployment is created through the API, and the served process executes it."""
    from pipeline.stage import read_manifest

    api, env = prefect_server
    workdir, _ = demo_flow_run
    before = read_manifest(workdir / "filter")["finished_at"]
    serve = subprocess.Popen(
        [str(Path(sys.executable).with_name("crawl2gpt")), "serve", "--workdir", str(workdir), "--cron", ""],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        expected = {"pipeline", *STAGE_FLOWS, "sft", "classify"}
        for _ in range(120):
            deployments = {d["name"]: d for d in _api(api, "/deployments/filter", {})}
            if expected <= set(deployments):
                break
            time.sleep(1)
        else:
            pytest.fail(f"crawl2gpt serve registered {sorted(deployments)}, not all of {sorted(expected)}")
        run = _api(
            api, f"/deployments/{deployments['filter']['id']}/create_flow_run", {"idempotency_key": uuid.uuid4().hex}
        )  # a retried 503 cannot start it twice
        for _ in range(300):
            state = _api(api, f"/flow_runs/{run['id']}")["state_type"]
            if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                break
            time.sleep(1)
        assert state == "COMPLETED", state
        assert read_manifest(workdir / "filter")["finished_at"] > before  # the deployment forces a rerun
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(timeout=30)
