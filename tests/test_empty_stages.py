"""Empty is normal: a stage given zero documents writes an empty, valid output with its manifest,
and the first stage that cannot work on nothing names where the documents were lost.

Real WARCs cut from the bundled sample (tests/empty_warcs.py), the plain runner (no Prefect);
the same cases through the `crawl2gpt` CLI are in tests/test_cli_errors.py.
"""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from rich.console import Console

from crawl2gpt.config import RunConfig
from crawl2gpt.runner import run_pipeline
from empty_warcs import GOPHER_DROPPED_URLS, write_not_a_warc, write_sample_subset
from flows import summary
from flows.summary import print_run_summary
from helpers.corpus import extract_warc, write_stage
from pipeline.errors import InputError, TokenizerError
from pipeline.stage import read_manifest, run_stage, stage_parts
from pipeline.tokens.tokenizer import TOKENIZER

FILTER_CAUSE = (
    "filter kept 0 of 2 documents (top reasons: gopher_quality.min_alpha_words_ratio 1, "
    "gopher_repetition.dup_5gram_char_frac 1)"
)


@pytest.fixture(scope="module")
def all_dropped(sample_warc, tmp_path_factory):
    return write_sample_subset(
        sample_warc, GOPHER_DROPPED_URLS, tmp_path_factory.mktemp("warc") / "all-dropped.warc.gz"
    )


@pytest.fixture(scope="module")
def dropped_run(all_dropped, tmp_path_factory):
    run = tmp_path_factory.mktemp("dropped") / "run"
    return run, run_pipeline([str(all_dropped)], run, RunConfig(workers=1), until="dedup")


def test_a_filter_that_keeps_nothing_writes_an_empty_valid_part(dropped_run):
    run, results = dropped_run
    assert (results["extract"].docs_out, results["filter"].docs_in, results["filter"].docs_out) == (2, 2, 0)
    [kept] = stage_parts(run / "filter")
    assert pq.read_table(kept).num_rows == 0
    assert {"doc_id", "text", "language", "language_score"} <= set(pq.read_schema(kept).names)
    assert pq.read_table(run / "filter" / "rejects" / kept.name).num_rows == 2
    # dedup reads that part as 0 documents and writes its own empty output and manifest
    assert (results["dedup"].docs_in, results["dedup"].docs_out) == (0, 0)
    assert read_manifest(run / "dedup")["stats"]["docs_out"] == 0
    assert [pq.read_table(p).num_rows for p in stage_parts(run / "dedup")] == [0]


def test_the_tokenizer_names_the_stage_that_lost_the_documents(dropped_run, tmp_path):
    run, _ = dropped_run
    with pytest.raises(TokenizerError) as err:
        run_stage(TOKENIZER, [str(run / "dedup")], tmp_path / "tokenizer", RunConfig(workers=1))
    assert str(err.value).startswith(FILTER_CAUSE + ": the tokenizer has no text to train on; relax the rules")
    assert not (tmp_path / "tokenizer").exists()


def test_shards_with_a_reused_tokenizer_names_the_cause_too(dropped_run, all_dropped, tmp_path):
    """With tokenizer.reuse no training stops the run, so the shards stage is the first that
    cannot work on nothing."""
    run, _ = dropped_run
    text = write_stage(tmp_path / "text", "dedup", [list(extract_warc(all_dropped))])
    run_stage(
        TOKENIZER, [str(text)], tmp_path / "tok", RunConfig(workers=1).with_overrides(["tokenizer.vocab_size=400"])
    )
    cfg = RunConfig(workers=1).with_overrides([f"tokenizer.reuse={tmp_path / 'tok' / 'tokenizer.model'}"])
    with pytest.raises(InputError) as err:
        run_pipeline([str(all_dropped)], run, cfg, until="shards")
    assert str(err.value).startswith(FILTER_CAUSE + ": there is nothing to shard")
    assert not (run / "shards").exists()


def test_a_file_that_is_not_a_warc_is_named_in_the_summary_and_in_the_cause(all_dropped, tmp_path, capsys, monkeypatch):
    not_warc = write_not_a_warc(tmp_path / "saved-page.warc.gz")
    results = run_pipeline([str(not_warc), str(all_dropped)], tmp_path / "run", RunConfig(workers=1), until="filter")
    monkeypatch.setattr(summary, "console", Console(width=400))  # one table row per line
    print_run_summary(tmp_path / "run", {k: v.to_dict() for k, v in results.items()})
    rows = capsys.readouterr().out.splitlines()
    [error] = [r for r in rows if "saved-page.warc.gz" in r]
    assert "error: saved-page.warc.gz: no WARC record found (not a WARC file" in error
    [filter_row] = [r for r in rows if r.startswith("│ filter")]
    assert "0 (empty output)" in filter_row
    alone = run_pipeline([str(not_warc)], tmp_path / "alone", RunConfig(workers=1), until="dedup")
    assert [s.docs_out for s in alone.values()] == [0, 0, 0]
    with pytest.raises(TokenizerError, match=r"^extract found 0 documents in 1 input file \(first error: .*saved-page"):
        run_stage(TOKENIZER, [str(tmp_path / "alone" / "dedup")], tmp_path / "tok", RunConfig(workers=1))
