"""The demo DAG end to end on the bundled sample WARC, under a real (temporary) Prefect API.

One module-scoped run is shared by the assertions; the rerun tests reuse its folder. Every data
stage runs with the demo's settings; training runs a smaller GPT than the demo's for 30 steps (the
demo's 4 x 128 model took three quarters of this module's time, and the stage is the same code).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from crawl2gpt.stages import STAGES
from pipeline.stage import MANIFEST, read_manifest, stage_parts

ROOT = Path(__file__).resolve().parents[1]
FAST_TRAIN = [
    "train.n_layer=2",
    "train.n_head=2",
    "train.n_embd=64",
    "train.block_size=64",
    "train.batch_size=8",
    "train.max_steps=30",
    "train.eval_interval=15",
    "train.checkpoint_interval=15",
    "train.eval_batches=2",
]


@pytest.fixture(scope="module")
def demo_run(prefect_api, sample_warc, tmp_path_factory):
    from flows.dag import pipeline_flow

    workdir = tmp_path_factory.mktemp("run") / "demo"
    results = pipeline_flow(
        inputs=[str(sample_warc)],
        workdir=str(workdir),
        config_path=str(ROOT / "configs" / "demo.yaml"),
        overrides=FAST_TRAIN,
    )
    return workdir, results


def test_every_stage_ran_and_wrote_its_folder(demo_run):
    workdir, results = demo_run
    assert list(results) == list(STAGES)
    for name in STAGES:
        manifest = read_manifest(workdir / name)
        assert manifest["stage"] == name and not results[name]["skipped"]
    assert (workdir / "config.yaml").is_file()


def test_documents_flow_through_the_stages(demo_run):
    workdir, results = demo_run
    assert results["extract"]["docs_out"] >= 50
    assert 0 < results["filter"]["docs_out"] < results["extract"]["docs_out"]
    assert results["dedup"]["docs_out"] <= results["filter"]["docs_out"]
    for name in ("extract", "filter", "dedup"):
        columns = pq.read_schema(stage_parts(workdir / name)[0]).names
        assert {"doc_id", "url", "text"} <= set(columns)
    kept = pq.read_table(stage_parts(workdir / "dedup")[0], columns=["doc_id"]).column("doc_id").to_pylist()
    assert len(kept) == len(set(kept))


def test_shards_and_training_outputs(demo_run):
    workdir, results = demo_run
    manifest = json.loads((workdir / "shards" / "manifest.json").read_text())
    assert {s["split"] for s in manifest["shards"]} == {"train", "val"}
    assert sum(s["tokens"] for s in manifest["shards"]) > 10_000
    assert (workdir / "shards" / "report.html").is_file()
    metrics = [json.loads(line) for line in (workdir / "train" / "metrics.jsonl").read_text().splitlines()]
    losses = [m["loss"] for m in metrics if "loss" in m]
    assert losses[-1] < losses[0], "the tiny GPT learns something in 30 steps"
    assert results["train"]["extra"]["sample"]


def test_second_run_skips_every_stage(demo_run):
    from flows.dag import pipeline_flow

    workdir, _ = demo_run
    again = pipeline_flow(
        inputs=[str(ROOT / "data/sample/CC-SAMPLE-A-00002.warc.gz")],
        workdir=str(workdir),
        config_path=str(ROOT / "configs" / "demo.yaml"),
        overrides=FAST_TRAIN,
    )
    assert all(again[name]["skipped"] for name in STAGES)


# slow: ~11 s of shards and training again; make test keeps --force's stage choice in
# test_stage_contract and the demo's skip-everything rerun above
@pytest.mark.slow
def test_force_reruns_that_stage_and_the_ones_after(demo_run):
    from flows.dag import pipeline_flow

    workdir, _ = demo_run
    before = {name: read_manifest(workdir / name)["finished_at"] for name in STAGES}
    again = pipeline_flow(
        inputs=[str(ROOT / "data/sample/CC-SAMPLE-A-00002.warc.gz")],
        workdir=str(workdir),
        config_path=str(ROOT / "configs" / "demo.yaml"),
        overrides=FAST_TRAIN,
        force="shards",
    )
    for name in ("extract", "filter", "dedup", "tokenizer"):
        assert again[name]["skipped"]
    for name in ("shards", "train"):
        assert not again[name]["skipped"]
        assert read_manifest(workdir / name)["finished_at"] > before[name]


def test_changing_a_filter_threshold_reruns_filter_not_extract(demo_run, tmp_path):
    from flows.dag import pipeline_flow

    workdir, _ = demo_run
    copy = tmp_path / "copy"
    shutil.copytree(workdir, copy)
    again = pipeline_flow(
        inputs=[str(ROOT / "data/sample/CC-SAMPLE-A-00002.warc.gz")],
        workdir=str(copy),
        config_path=str(ROOT / "configs" / "demo.yaml"),
        overrides=[*FAST_TRAIN, "filter.gopher_quality.min_doc_words=80"],
        until="filter",
    )
    assert again["extract"]["skipped"] and not again["filter"]["skipped"]
    assert again["filter"]["docs_out"] <= read_manifest(workdir / "filter")["stats"]["docs_out"]


def test_one_stage_from_the_cli_on_an_existing_folder(demo_run, tmp_path, capsys):
    from flows.cli import main

    workdir, _ = demo_run
    out = tmp_path / "filter-again"
    assert (
        main(
            [
                "stage",
                "filter",
                "--input",
                str(workdir / "extract"),
                "--output",
                str(out),
                "--config",
                str(ROOT / "configs" / "demo.yaml"),
            ]
        )
        == 0
    )
    assert (out / MANIFEST).is_file()
    ours = sorted(pq.read_table(stage_parts(out)[0], columns=["doc_id"]).column("doc_id").to_pylist())
    theirs = sorted(pq.read_table(stage_parts(workdir / "filter")[0], columns=["doc_id"]).column("doc_id").to_pylist())
    assert ours == theirs
    assert "documents out" in capsys.readouterr().out


def test_stage_refuses_an_unfinished_input_folder(prefect_api, tmp_path, capsys):
    from flows.cli import main

    (tmp_path / "extract").mkdir()
    code = main(["stage", "filter", "--input", str(tmp_path / "extract"), "--output", str(tmp_path / "filter")])
    assert code == 2
    assert "did not finish" in capsys.readouterr().err
    assert not (tmp_path / "filter").exists()
