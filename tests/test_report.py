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
from helpers.corpus import build_run, extract_warc
from pipeline.errors import InputError, ShardChecksumError
from pipeline.report.build import REPORT_HTML, REPORT_JSON, build_report, plot_files, report_tables
from pipeline.shard_format import load_manifest
from pipeline.stage import process_map
from pipeline.tokens.tokenizer import load

CFG = RunConfig().with_overrides(
    [
        "tokenizer.vocab_size=500",
        "tokenizer.character_coverage=0.98",
        "tokenizer.threads=2",
        "shards.target_shard_tokens=100000",
        "shards.val_fraction=0.1",
    ]
)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ROOT = Path(__file__).resolve().parents[1]


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
    assert report["plots"] and all((shards / p).read_bytes().startswith(PNG_MAGIC) for p in plot_files(report))
    assert page.count("data:image/png;base64,") == len(plot_files(report))
    assert sorted(p.name for p in shards.glob("report-*.png")) == sorted(plot_files(report))
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
    assert "| split |" in markdown and "### Documents removed upstream" in markdown and "gopher_min_words" in markdown
    assert report_tables(report)[1] == markdown


def test_not_a_shards_folder(tmp_path):
    with pytest.raises(InputError, match="run the shards stage"):
        build_report(tmp_path)


# --------------------------------------------------------------------------- report v2 on real stage outputs
# The bundled sample through the real extract, filter and dedup stages (demo config: en + de kept),
# and a second run that differs by one threshold: what a user tuning the filter does.

THRESHOLD, RAISED = "filter.gopher_quality.min_doc_words", 200


@pytest.fixture(scope="module")
def runs(tmp_path_factory, sample_warc) -> tuple[Path, Path]:
    from crawl2gpt.runner import run_pipeline

    root = tmp_path_factory.mktemp("runs")
    demo = ROOT / "configs" / "demo.yaml"
    cfg_a = RunConfig.load(demo, ["tokenizer.vocab_size=500", "tokenizer.threads=2"])
    run_pipeline([str(sample_warc)], root / "a", cfg_a, until="shards", map_parts=process_map(1))
    shutil.copytree(root / "a" / "extract", root / "b" / "extract")  # same documents, one threshold changed
    cfg_b = RunConfig.load(demo, [f"{THRESHOLD}={RAISED}"])
    run_pipeline([str(sample_warc)], root / "b", cfg_b, until="dedup", map_parts=process_map(1))
    return root / "a", root / "b"


def outcome_frame(folder: Path) -> pd.DataFrame:
    """Every document a filter or dedup stage saw, kept parts then rejects, with `dropped`."""
    from pipeline.outcomes import outcome_files

    return pd.concat(
        [pd.read_parquet(p).assign(dropped=d) for p, d in outcome_files(folder, folder.name)], ignore_index=True
    )


@pytest.fixture(scope="module")
def filtered(runs) -> pd.DataFrame:
    return outcome_frame(runs[0] / "filter")


@pytest.fixture(scope="module")
def report_v2(runs) -> dict:
    return json.loads((runs[0] / "shards" / REPORT_JSON).read_text())


def first_failing(rules, row) -> dict[str, str]:
    """{family: its first failing threshold} for one stored row, from the threshold table."""
    found: dict[str, str] = {}
    for t in rules:
        if t.family not in found and t.fails(np.array([row[t.signal]]))[0]:
            found[t.family] = t.rule
    return found


def test_threshold_table_names_what_the_filters_name_on_real_documents(runs, filtered):
    rules = stored_rules(runs[0] / "filter")
    assert filtered["dropped"].any() and not filtered["dropped"].all()
    for _, row in filtered.iterrows():
        stored = list(row["failing_rules"]) if row["dropped"] else []
        assert list(first_failing(rules, row).values()) == stored, row["doc_id"]


def test_threshold_table_matches_each_check_at_the_boundaries(filtered):
    """Every threshold's value, just below and just above it, through the family's own check()."""
    from pipeline.filter import c4, fineweb, gopher_quality, gopher_repetition, language
    from pipeline.filter.config import FilterConfig
    from pipeline.report.thresholds import thresholds

    cfg = FilterConfig.model_validate(
        {"fineweb": {"line_punct_exclude_zero": True}, "language": {"languages": ["en", "de"]}}
    )
    checks = {
        "gopher_quality": lambda sig: gopher_quality.check(sig, cfg.gopher_quality),
        "gopher_repetition": lambda sig: gopher_repetition.check(sig, cfg.gopher_repetition),
        "c4": lambda sig: c4.check(sig, cfg.c4),
        "fineweb": lambda sig: fineweb.check(sig, cfg.fineweb),
        "language": lambda sig: language.check(sig["language"], sig["language_score"], cfg.language),
    }
    rules = thresholds(cfg)
    kept = filtered[~filtered["dropped"]].iloc[0].to_dict()
    for t in rules:
        probes = (
            ["fr", "en"] if not t.numeric else [v for x in (t.value, 0.0, -1.0, 1.0) for v in (x - 1e-9, x, x + 1e-9)]
        )
        for probe in probes:
            row = {**kept, t.signal: probe}
            expected = checks[t.family](row)
            got = first_failing([r for r in rules if r.family == t.family], row).get(t.family)
            assert got == (f"{t.family}.{expected}" if expected else None), (t.rule, probe)


def test_rule_counts_recheck_the_stored_signals(report_v2, filtered):
    f = report_v2["filter"]
    by_rule = {r["rule"]: r for r in f["rules"]}
    assert (f["documents"], f["dropped"]) == (len(filtered), filtered["dropped"].sum())
    assert f["recheck_mismatches"] == 0 and not any(r["kept_but_failing"] for r in f["rules"])
    # dropped first: the stored reason column, counted by pandas
    stored = filtered.loc[filtered["dropped"], "first_failing_rule"].value_counts().to_dict()
    assert {k: v["dropped_first"] for k, v in by_rule.items() if v["dropped_first"]} == stored
    # the two rules that drop most on this sample, written out by hand
    alpha = filtered["gopher_alpha_words_ratio"] < 0.8
    foreign = ~filtered["language"].isin(["en", "de"])
    assert by_rule["gopher_quality.min_alpha_words_ratio"]["fails"] == alpha.sum() > 0
    assert by_rule["language.not_kept_language"]["fails"] == foreign.sum() > 0
    # only this rule: failing it and no other threshold of any family
    for name, failing in (("gopher_quality.min_alpha_words_ratio", alpha), ("language.not_kept_language", foreign)):
        others = [t for t in stored_rules(Path(f["folder"])) if t.rule != name]
        fails_another = np.any([t.fails(filtered[t.signal].to_numpy()) for t in others], axis=0)
        assert by_rule[name]["only_this_rule"] == (failing & ~fails_another).sum() > 0
    # a document only one threshold drops has one failing family in the stage's own list
    families = filtered["failing_rules"].map(lambda r: len(r) if isinstance(r, (list, np.ndarray)) else 0)
    assert sum(r["only_this_rule"] for r in f["rules"]) <= (filtered["dropped"] & (families == 1)).sum()


def stored_rules(filter_folder: Path):
    from pipeline.report.filter import filter_config
    from pipeline.report.thresholds import thresholds
    from pipeline.stage import read_manifest

    return thresholds(filter_config(read_manifest(filter_folder)))


def test_histograms_split_kept_and_dropped(report_v2, filtered):
    for s in report_v2["filter"]["signals"]:
        for side, dropped in (("kept", False), ("dropped", True)):
            values = filtered.loc[filtered["dropped"] == dropped, s["signal"]].dropna()
            assert s[side] == np.histogram(values, bins=s["edges"])[0].tolist(), (s["signal"], side)
        assert (
            s["edges"][0]
            <= min(line["value"] for line in s["lines"])
            <= max(line["value"] for line in s["lines"])
            <= s["edges"][-1]
        )
    words = next(s for s in report_v2["filter"]["signals"] if s["signal"] == "gopher_word_count")
    assert words["log_x"] and [line["rule"] for line in words["lines"]] == [
        "gopher_quality.min_doc_words",
        "gopher_quality.max_doc_words",
    ]


def test_examples_are_the_nearest_documents_on_each_side(report_v2, filtered):
    examples = report_v2["filter"]["examples"]["gopher_quality.min_alpha_words_ratio"]
    distance = (filtered["gopher_alpha_words_ratio"] - 0.8).abs()
    for side, mask in (
        ("fails", filtered["gopher_alpha_words_ratio"] < 0.8),
        ("passes", filtered["gopher_alpha_words_ratio"] >= 0.8),
    ):
        shown = examples[side]
        assert len(shown) == 5
        assert sorted(distance[mask].nsmallest(5).round(12)) == sorted(round(abs(e["value"] - 0.8), 12) for e in shown)
        texts = filtered.set_index("doc_id")["text"]
        for e in shown:
            assert " ".join(texts[e["doc_id"]].split()).startswith(e["excerpt"].rstrip("…"))
            assert e["url"] == filtered.set_index("doc_id").loc[e["doc_id"], "url"]


def test_drops_by_language_and_domain(report_v2, filtered):
    f = report_v2["filter"]
    by_lang = filtered.groupby("language")["dropped"].agg(["size", "sum"])
    assert {r["language"]: (r["documents"], r["dropped"]) for r in f["languages"]} == {
        k: (int(v["size"]), int(v["sum"])) for k, v in by_lang.iterrows()
    }
    top = filtered.groupby("domain")["dropped"].sum().max()
    assert f["domains"][0]["dropped"] == top and f["domains_exact"]


def test_largest_dedup_clusters_name_the_kept_document(runs, report_v2):
    dedup = outcome_frame(runs[0] / "dedup")
    removed = dedup[dedup["dropped"] & (dedup["cluster_id"] >= 0)]
    sizes = removed.groupby("cluster_id").size()
    d = report_v2["dedup"]
    assert d["largest"] and d["largest"][0]["documents"] == sizes.max() + 1
    assert sorted(c["removed"] for c in d["largest"]) == sorted(sizes.nlargest(len(d["largest"])))
    texts = dedup.set_index("doc_id")["text"]
    for c in d["largest"]:
        member = removed[removed["cluster_id"] == c["cluster_id"]]
        assert c["kept"]["doc_id"] == member["kept_doc_id"].iloc[0] and c["removed_example"]["doc_id"] in set(
            member["doc_id"]
        )
        for doc in (c["kept"], c["removed_example"]):
            assert " ".join(texts[doc["doc_id"]].split()).startswith(doc["excerpt"].rstrip("…"))


def test_page_and_markdown_hold_every_section(runs, report_v2):
    from pipeline.report.build import report_markdown

    shards = runs[0] / "shards"
    page = (shards / REPORT_HTML).read_text()
    for heading in (
        "Filter: what each threshold does",
        "Signals:",
        "Examples nearest each threshold",
        "Dedup: the largest clusters",
        "Drops by language",
        "Top domains by drops",
    ):
        assert heading in page
    assert page.count("data:image/png;base64,") == len(plot_files(report_v2))
    assert len(report_v2["filter"]["plots"]["signals"]) == len(report_v2["filter"]["signals"]) > 20
    sections = report_markdown(runs[0])
    assert list(sections) == ["filter", "signals", "dedup", "examples", "shards", "samples"]
    assert sections["signals"].count("](data:image/png;base64,") == len(report_v2["filter"]["signals"])
    assert "only_this_rule" in sections["filter"] and "min_alpha_words_ratio" in sections["filter"]
    text, _ = build_report(runs[0])
    assert "filter rules (dropped first / only this rule): gopher_quality.min_alpha_words_ratio" in text


# --------------------------------------------------------------------------- --compare


def expected_moves(run_a: Path) -> set[str]:
    """Computed here from run A's stored signals alone: raising min_doc_words to RAISED drops the
    kept documents with fewer words (every other rule is unchanged, so nothing else moves)."""
    a = outcome_frame(run_a / "filter")
    return set(a.loc[~a["dropped"] & (a["gopher_word_count"] < RAISED), "doc_id"])


@pytest.mark.parametrize("rows_per_bucket", [1_000_000, 7])  # one bucket; many buckets on disk
def test_compare_lists_exactly_the_moved_documents(runs, tmp_path, rows_per_bucket):
    from pipeline.report.compare import compare_runs

    summary, page = compare_runs(*runs, output=tmp_path / "cmp", rows_per_bucket=rows_per_bucket)
    stage = {s["stage"]: s for s in summary["stages"]}
    moved = pd.read_parquet(tmp_path / "cmp" / "moved-filter.parquet")
    expected = expected_moves(runs[0])
    assert expected and set(moved["doc_id"]) == expected and len(moved) == len(expected)
    assert set(moved["run_a"]) == {"kept"} and set(moved["run_b"]) == {"dropped: gopher_quality.min_doc_words"}
    assert stage["filter"]["kept_a_dropped_b"] == len(expected) and stage["filter"]["dropped_a_kept_b"] == 0
    assert stage["filter"]["config_changes"] == [{"setting": THRESHOLD, "run_a": 50, "run_b": RAISED}]
    assert stage["extract"]["kept_a_dropped_b"] == stage["extract"]["dropped_a_kept_b"] == 0  # the same extract
    assert {r["doc_id"] for r in stage["filter"]["shown"]} == expected
    html_page = page.read_text()
    assert all(doc_id in html_page for doc_id in expected) and THRESHOLD in html_page


def test_compare_dedup_stage_against_a_pandas_join(runs, tmp_path):
    from pipeline.report.compare import compare_runs

    summary, _ = compare_runs(*runs, output=tmp_path / "cmp")
    a, b = outcome_frame(runs[0] / "dedup"), outcome_frame(runs[1] / "dedup")
    both = a[["doc_id", "dropped"]].merge(b[["doc_id", "dropped"]], on="doc_id", suffixes=("_a", "_b"))
    expected = set(both.loc[both["dropped_a"] != both["dropped_b"], "doc_id"])
    moved = pd.read_parquet(tmp_path / "cmp" / "moved-dedup.parquet")
    assert set(moved["doc_id"]) == expected
    stage = next(s for s in summary["stages"] if s["stage"] == "dedup")
    assert stage["only_in_a"] == len(set(a["doc_id"]) - set(b["doc_id"])) == len(expected_moves(runs[0]))


def test_compare_from_the_command_line(runs, tmp_path, capsys):
    from flows.cli import main

    assert main(["report", "--compare", str(runs[0]), str(runs[1]), "--output", str(tmp_path / "cmp")]) == 0
    out = capsys.readouterr().out
    assert f"filter: {len(expected_moves(runs[0]))} kept in A and dropped in B" in out
    assert (tmp_path / "cmp" / "compare.html").is_file()


# --------------------------------------------------------------------------- bounded tallies


def test_nearest_keeps_the_same_items_whatever_the_batches():
    from pipeline.bounded import Nearest

    rng = np.random.default_rng(0)
    distance, hashes = rng.integers(0, 5, 1000).astype(float), rng.random(1000)  # many ties in distance
    expected = sorted(range(1000), key=lambda i: (distance[i], hashes[i]))[:7]
    for order in (np.arange(1000), rng.permutation(1000)):
        near = Nearest(7)
        for batch in np.array_split(order, 13):
            near.offer(distance[batch], hashes[batch], np.ones(len(batch), bool), lambda i, batch=batch: int(batch[i]))
        assert near.items() == expected


def test_bounded_counter_keeps_the_heavy_keys_and_says_it_is_approximate():
    from pipeline.bounded import BoundedCounter

    exact = BoundedCounter(1, capacity=10_000)
    capped = BoundedCounter(1, capacity=50)
    heavy = {f"big{i}": 100 * (i + 1) for i in range(5)}
    keys = [k for k, n in heavy.items() for _ in range(n)] + [f"tail{i}" for i in range(3000)]
    np.random.default_rng(1).shuffle(keys)
    for chunk in np.array_split(np.array(keys), 40):
        for counter in (exact, capped):
            counter.add(chunk.tolist(), [1] * len(chunk))
    assert exact.exact and not capped.exact
    assert [k for k, _ in capped.top(5)] == [k for k, _ in exact.top(5)] == sorted(heavy, key=heavy.get, reverse=True)
    assert len(capped.counts) <= 50
