"""Scale-out: the same stage through every task runner gives byte-identical output."""

from __future__ import annotations

import json

import pytest

from helpers.fault_runs import split_warc
from pipeline.stage import MANIFEST


def _files(folder):
    return json.loads((folder / MANIFEST).read_text())["files"]


@pytest.fixture(scope="module")
def two_warcs(sample_warc, tmp_path_factory):
    """The sample's records cut in two files: two parts for the runner, the sample's work once."""
    return [str(path) for path in split_warc(sample_warc, tmp_path_factory.mktemp("warcs"), pieces=2)]


@pytest.mark.parametrize("runner", ["threads", "dask"])
def test_task_runner_output_equals_sequential_run(prefect_api, two_warcs, tmp_path, runner):
    from crawl2gpt.config import RunConfig
    from flows.stages import extract_flow
    from pipeline.extract.stage import EXTRACT
    from pipeline.stage import process_map, run_stage

    sequential = tmp_path / "sequential"
    run_stage(EXTRACT, two_warcs, sequential, RunConfig(), map_parts=process_map(1))
    out = tmp_path / runner
    stats = extract_flow(inputs=two_warcs, output=str(out), overrides=[f"task_runner={runner}", "workers=2"])
    assert stats["docs_out"] > 0
    assert _files(out) == _files(sequential)
