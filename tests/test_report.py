"""Shard quality report: figures checked against an independent pandas read of the shards."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crawl2gpt.config import RunConfig
from pipeline.errors import InputError, ShardChecksumError
from pipeline.report import REPORT_HTML, REPORT_JSON, build_report, report_tables
from pipeline.shards import load_manifest
from pipeline.stage import process_map
from pipeline.tokenizer import load
from shards_corpus import build_run, extract_warc

CFG = RunConfig().with_overrides([
    "tokenizer.vocab_size=500", "tokenizer.character_coverage=0.98", "tokenizer.threads=2",
    "shards.target_shard_tokens=100000", "shards.val_fraction=0.1",
])
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return build_run(tmp_path_factory.mktemp("run"), CFG, process_map(1))


@pytest.fixture(scope="module")
def report(run) -> dict:
    return json.loads((run / "shards" / REPORT_JSON).read_text())


@pytest.fixture(scope="module")
def rows(run) -> pd.DataFrame:
    shards = run / "shards"
    return pd.concat([pd.read_parquet(shards / e["path"]) for e in load_manifest(shards)["shards"]], ignore_index=True)


def test_totals_match_the_shards(report, rows, run):
    assert report["total"]["documents"] == len(rows) == len(extract_warc())
    assert report["total"]["tokens"] == rows["n_tokens"].sum()
    assert [s["shard"] for s in report["shards"]] == [e["path"] for e in load_manifest(run / "shards")["shards"]]
    assert sum(s["tokens"] for s in report["shards"]) == report["total"]["tokens"]
    hist = report["tokens_per_doc_histogram"]
    assert sum(hist["counts"]) == len(rows)  # no document outside the bins


def test_byte_fallback_share_counts_byte_pieces(report, rows, run):
    sp = load(run / "shards")
    ids = np.concatenate(rows["tokens"].to_list())
    is_byte = np.array([sp.IsByte(i) for i in range(sp.GetPieceSize())])
    assert report["total"]["byte_fallback_tokens"] == is_byte[ids].sum() > 0
    assert report["total"]["byte_fallback_share"] == pytest.approx(is_byte[ids].mean(), abs=1e-6)


def test_language_domain_and_signal_figures(report, rows):
    by_lang = rows.groupby("language").size().sort_values(ascending=False)
    assert {r["name"]: r["documents"] for r in report["languages"]} == by_lang.head(15).to_dict()
    top = report["top_domains"][0]
    assert top["documents"] == rows.groupby("domain").size().max()
    assert top["tokens"] == rows.loc[rows["domain"] == top["name"], "n_tokens"].sum()
    assert report["distinct_domains"] == rows["domain"].nunique()
    assert report["quality_signals"]["avg_word_length"] == pytest.approx(rows["avg_word_length"].mean(), rel=1e-5)
    assert report["quality_signals"]["language_score"] == pytest.approx(rows["language_score"].mean(), rel=1e-5)


def test_upstream_removals_come_from_stage_manifests(report):
    assert report["upstream"]["filter"]["drops"] == {"gopher_min_words": 7, "c4_lorem_ipsum": 2}
    assert report["upstream"]["dedup"]["drops"] == {"near_duplicate": 4, "exact_duplicate": 3}


def test_samples_are_decoded_document_openings(report):
    texts = {r["doc_id"]: r["text"] for r in extract_warc()}
    assert len(report["samples"]) == 3
    for sample in report["samples"]:
        assert texts[sample["doc_id"]].startswith(sample["text"][:200].rstrip("\ufffd"))


def test_html_is_standalone_with_png_plots(run, report):
    shards = run / "shards"
    page = (shards / REPORT_HTML).read_text()
    assert report["plots"] and all((shards / p).read_bytes().startswith(PNG_MAGIC) for p in report["plots"])
    assert page.count("data:image/png;base64,") == len(report["plots"])
    assert not re.search(r'src="(?!data:)', page) and "<link" not in page  # nothing fetched from elsewhere
    assert "gopher_min_words" in page and "Language mix" in page


def test_build_report_for_run_dir(run):
    text, path = build_report(run)
    assert path == run / "shards" / REPORT_HTML
    assert "byte-fallback tokens" in text and "filter:" in text and "gopher_min_words 7" in text
    assert build_report(run / "shards")[1] == path


def test_refresh_rewrites_a_missing_report(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    for name in (REPORT_JSON, REPORT_HTML):
        (copy / "shards" / name).unlink()
    text, path = build_report(copy)
    assert path.is_file() and json.loads((copy / "shards" / REPORT_JSON).read_text())["upstream"]["dedup"]
    original = json.loads((run / "shards" / REPORT_JSON).read_text())
    rebuilt = json.loads((copy / "shards" / REPORT_JSON).read_text())
    assert rebuilt["total"] == original["total"] and rebuilt["languages"] == original["languages"]


def test_refresh_refuses_a_corrupt_shard(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    shard = copy / "shards" / "train-00000.parquet"
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(ShardChecksumError, match="train-00000.parquet"):
        build_report(copy, refresh=True)


def test_report_tables_for_artifacts(run, report):
    rows, markdown = report_tables(run)
    assert len(rows) == len(report["shards"]) + 1 and rows[-1]["shard"] == "total"
    assert rows[-1]["tokens"] == report["total"]["tokens"]
    assert "| split |" in markdown and "## Documents removed upstream" in markdown and "gopher_min_words" in markdown
    assert report_tables(report)[1] == markdown


def test_not_a_shards_folder(tmp_path):
    with pytest.raises(InputError, match="run the shards stage"):
        build_report(tmp_path)
