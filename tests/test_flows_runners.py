"""Scale-out: the same stage through every task runner gives byte-identical output."""
from __future__ import annotations

import json
import shutil

import pytest

from pipeline.stage import MANIFEST


def _files(folder):
    return json.loads((folder / MANIFEST).read_text())["files"]


@pytest.fixture(scope="module")
def two_warcs(sample_warc, tmp_path_factory):
    folder = tmp_path_factory.mktemp("warcs")
    for name in ("a.warc.gz", "b.warc.gz"):
        shutil.copy(sample_warc, folder / name)
    return [str(folder / "a.warc.gz"), str(folder / "b.warc.gz")]


@pytest.mark.parametrize("runner", ["threads", "dask"])
def test_task_runner_output_equals_sequential_run(prefect_api, two_warcs, tmp_path, runner):
    from flows.stages import extract_flow
    from crawl2gpt.config import RunConfig
    from pipeline.extract.stage import EXTRACT
    from pipeline.stage import process_map, run_stage

    sequential = tmp_path / "sequential"
    run_stage(EXTRACT, two_warcs, sequential, RunConfig(), map_parts=process_map(1))
    out = tmp_path / runner
    stats = extract_flow(inputs=two_warcs, output=str(out), overrides=[f"task_runner={runner}", "workers=2"])
    assert stats["docs_out"] > 0
    assert _files(out) == _files(sequential)
