"""The stage contract on its own: temp folder + rename, manifest last, skip when unchanged,
rerun when inputs, config or --force change, nothing readable after an interruption."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from crawl2gpt.config import RunConfig
from pipeline.documents import write_parquet
from pipeline.errors import InputError, StageIncompleteError
from pipeline.stage import MANIFEST, PartResult, Stage, StageStats, merge_counts, process_map, run_stage, stage_parts


class LineCountStage(Stage):
    """A tiny real stage: one Parquet part per input text file, one row per line.

    Its output depends on the `extract` config section; `crash_after` simulates a kill in the
    middle of the stage (after some parts are written).
    """

    name = "line_count"
    config_sections = ("extract",)

    def __init__(self, crash_after: int | None = None):
        self.crash_after = crash_after
        self.calls = 0

    def plan(self, inputs, cfg):
        return [(i, p) for i, p in enumerate(inputs)]

    def run_part(self, part, workdir, cfg):
        index, path = part
        self.calls += 1
        if self.crash_after is not None and index >= self.crash_after:
            raise KeyboardInterrupt("simulated kill")
        lines = Path(path).read_text().splitlines()
        write_parquet(
            pa.table({"doc_id": [f"{index}-{i}" for i in range(len(lines))], "text": lines}),
            workdir / f"part-{index:05d}.parquet",
        )
        return PartResult(
            part=path, outputs=[f"part-{index:05d}.parquet"], counts={"docs_in": len(lines), "docs_out": len(lines)}
        )

    def finish(self, workdir, results, cfg):
        counts = merge_counts(results)
        return StageStats(stage=self.name, docs_in=counts["docs_in"], docs_out=counts["docs_out"])


@pytest.fixture
def inputs(tmp_path):
    paths = []
    for i in range(3):
        p = tmp_path / f"in{i}.txt"
        p.write_text("\n".join(f"line {j} of file {i}" for j in range(i + 2)))
        paths.append(str(p))
    return paths


def run(stage, inputs, out, cfg=None, **kw):
    return run_stage(stage, inputs, out, cfg or RunConfig(), map_parts=process_map(1), **kw)


def test_writes_parts_and_manifest_last(inputs, tmp_path):
    out = tmp_path / "out"
    stats = run(LineCountStage(), inputs, out)
    assert stats.docs_out == 2 + 3 + 4
    manifest = json.loads((out / MANIFEST).read_text())
    assert set(manifest["files"]) == {f"part-{i:05d}.parquet" for i in range(3)}
    assert manifest["stats"]["docs_out"] == 9
    assert len(stage_parts(out)) == 3
    assert not list(tmp_path.glob(".out.*")), "no temp folder left behind"


def test_second_run_skips_and_force_reruns(inputs, tmp_path):
    out = tmp_path / "out"
    run(LineCountStage(), inputs, out)
    stage = LineCountStage()
    assert run(stage, inputs, out).skipped and stage.calls == 0
    assert not run(stage, inputs, out, force=True).skipped and stage.calls == 3


def test_changed_input_or_config_reruns(inputs, tmp_path):
    out = tmp_path / "out"
    run(LineCountStage(), inputs, out)
    Path(inputs[0]).write_text("one\ntwo\nthree\nfour\nfive")
    assert not run(LineCountStage(), inputs, out).skipped
    assert run(LineCountStage(), inputs, out).skipped
    changed = RunConfig().with_overrides(["extract.max_page_bytes=1000"])
    assert not run(LineCountStage(), inputs, out, cfg=changed).skipped
    # A config value of another stage does not invalidate this one.
    other = changed.with_overrides(["train.n_layer=2"])
    assert run(LineCountStage(), inputs, out, cfg=other).skipped


def test_interrupted_stage_leaves_nothing_readable(inputs, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run(LineCountStage(crash_after=2), inputs, out)
    assert not out.exists()
    with pytest.raises(InputError):
        stage_parts(out)
    # The rerun cleans the leftover temp folder and completes.
    stats = run(LineCountStage(), inputs, out)
    assert stats.docs_out == 9 and not list(tmp_path.glob(".out.*"))


def test_interrupted_rerun_keeps_previous_complete_output(inputs, tmp_path):
    out = tmp_path / "out"
    run(LineCountStage(), inputs, out)
    before = (out / MANIFEST).read_text()
    with pytest.raises(KeyboardInterrupt):
        run(LineCountStage(crash_after=1), inputs, out, force=True)
    assert (out / MANIFEST).read_text() == before, "the old, complete output is untouched"
    assert len(stage_parts(out)) == 3


def test_failing_stage_removes_its_temp_folder(inputs, tmp_path):
    with pytest.raises(FileNotFoundError):
        run(LineCountStage(), [*inputs, str(tmp_path / "missing.txt")], tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))


def test_folder_without_manifest_is_refused(tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "part-00000.parquet").write_bytes(b"PAR1")
    with pytest.raises(StageIncompleteError, match="did not finish"):
        stage_parts(tmp_path / "half")


def test_manifest_paths_cannot_escape_the_folder(inputs, tmp_path):
    out = tmp_path / "out"
    run(LineCountStage(), inputs, out)
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["files"]["../../etc/passwd"] = {"bytes": 1, "sha256": "x"}
    (out / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="outside the folder"):
        stage_parts(out)


def test_process_pool_gives_same_output_as_inline(inputs, tmp_path):
    a = run_stage(LineCountStage(), inputs, tmp_path / "a", RunConfig(), map_parts=process_map(1))
    b = run_stage(LineCountStage(), inputs, tmp_path / "b", RunConfig(), map_parts=process_map(2))
    files_a = json.loads((tmp_path / "a" / MANIFEST).read_text())["files"]
    files_b = json.loads((tmp_path / "b" / MANIFEST).read_text())["files"]
    assert files_a == files_b and a.docs_out == b.docs_out
