"""The filter stage on the bundled sample: every document is either kept or in rejects/, counts
add up, signals in the columns are the rules' values, German survives the demo config, PII is
masked, language partitions mirror the kept parts."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from crawl2gpt.config import RunConfig
from pipeline.documents import DOCUMENT_SCHEMA, write_parquet
from pipeline.errors import ConfigError, InputError
from pipeline.filter import gopher_quality, gopher_repetition
from pipeline.filter.stage import FILTER, evaluate, signal_names
from pipeline.stage import PartResult, Stage, StageStats, run_stage, stage_parts

DEMO = ["filter.language.languages=[en, de]", "workers=1"]


class _Docs(Stage):
    """A stand-in upstream stage that writes given rows (so PII cases need no crawl)."""

    name = "extract"
    config_sections = ("extract",)

    def __init__(self, rows):
        self.rows = rows

    def plan(self, inputs, cfg):
        return [0]

    def run_part(self, part, workdir, cfg):
        import pyarrow as pa

        write_parquet(pa.Table.from_pylist(self.rows, schema=DOCUMENT_SCHEMA), Path(workdir) / "part-00000.parquet")
        return PartResult(part="0", outputs=["part-00000.parquet"], counts={"docs_out": len(self.rows)})

    def finish(self, workdir, results, cfg):
        return StageStats(stage="extract", docs_out=len(self.rows))


def _row(i: int, text: str) -> dict:
    return {
        "doc_id": f"d{i}",
        "url": f"https://example.org/{i}",
        "domain": "example.org",
        "warc_date": "",
        "title": "",
        "date": "",
        "source": "test",
        "offset": i,
        "text": text,
    }


@pytest.fixture(scope="module")
def extracted(tmp_path_factory, sample_warc) -> Path:
    from pipeline.extract.stage import EXTRACT

    out = tmp_path_factory.mktemp("filter") / "extract"
    run_stage(EXTRACT, [str(sample_warc)], out, RunConfig().with_overrides(["workers=1"]))
    return out


@pytest.fixture(scope="module")
def filtered(extracted) -> tuple[Path, StageStats]:
    out = extracted.parent / "filter"
    cfg = RunConfig().with_overrides(DEMO + ["filter.language.partition_by_language=true"])
    return out, run_stage(FILTER, [str(extracted)], out, cfg)


def test_every_document_is_kept_or_rejected(extracted, filtered):
    out, stats = filtered
    docs_in = sum(pq.read_metadata(p).num_rows for p in stage_parts(extracted))
    kept = pq.read_table(out / "part-00000.parquet")
    rejects = pq.read_table(out / "rejects" / "part-00000.parquet")
    assert stats.docs_in == docs_in == kept.num_rows + rejects.num_rows
    assert stats.docs_out == kept.num_rows > 0
    assert sum(stats.drops.values()) == rejects.num_rows
    assert set(kept["doc_id"].to_pylist()).isdisjoint(rejects["doc_id"].to_pylist())
    assert stage_parts(out) == [out / "part-00000.parquet"]  # rejects/ and by_language/ are not data


def test_rejects_name_first_and_all_failing_rules(filtered):
    out, stats = filtered
    rejects = pq.read_table(out / "rejects" / "part-00000.parquet").to_pylist()
    for row in rejects:
        assert row["failing_rules"] and row["first_failing_rule"] == row["failing_rules"][0]
        assert row["first_failing_rule"].split(".")[0] in (
            "language",
            "gopher_repetition",
            "gopher_quality",
            "c4",
            "fineweb",
        )
    firsts = {}
    for row in rejects:
        firsts[row["first_failing_rule"]] = firsts.get(row["first_failing_rule"], 0) + 1
    assert firsts == stats.drops
    alls = {}
    for row in rejects:
        for rule in row["failing_rules"]:
            alls[rule] = alls.get(rule, 0) + 1
    assert alls.items() <= stats.extra["fails"].items()


def test_stored_signals_are_the_rules_values(filtered):
    out, _ = filtered
    cfg = RunConfig().with_overrides(DEMO).filter
    rejects = pq.read_table(out / "rejects" / "part-00000.parquet").to_pylist()
    assert set(signal_names(cfg)) <= set(rejects[0])
    for row in rejects[:10]:  # rejects keep their original text, so signals can be recomputed
        expect = {
            **gopher_repetition.signals(row["text"], cfg.gopher_repetition),
            **gopher_quality.signals(row["text"], cfg.gopher_quality, row["language"]),
        }
        assert {k: row[k] for k in expect} == pytest.approx(expect)


def test_demo_languages_are_kept_with_their_scores(filtered):
    out, stats = filtered
    kept = pq.read_table(out / "part-00000.parquet", columns=["language", "language_score"]).to_pylist()
    langs = [r["language"] for r in kept]
    assert {"de", "en"} <= set(langs) <= {"de", "en"}
    assert min(r["language_score"] for r in kept) >= 0.65
    assert stats.extra["languages"]["de"] >= langs.count("de")
    for lang in ("de", "en"):
        part = out / "by_language" / lang / "part-00000.parquet"
        assert pq.read_metadata(part).num_rows == langs.count(lang)


def test_pii_is_masked_in_kept_text_and_counted(tmp_path, filtered):
    out, _ = filtered
    english = next(r["text"] for r in pq.read_table(out / "part-00000.parquet").to_pylist() if r["language"] == "en")
    text = (
        english
        + "\nQuestions can be sent to the editor at jane.doe@example.org, or posted to our server at 8.8.4.4 today."
    )
    rows = [_row(0, text), _row(1, ""), _row(2, "😀" * 100), _row(3, None)]
    cfg = RunConfig().with_overrides(DEMO)
    run_stage(_Docs(rows), ["docs"], tmp_path / "extract", cfg)
    stats = run_stage(FILTER, [str(tmp_path / "extract")], tmp_path / "filter", cfg)
    kept = pq.read_table(tmp_path / "filter" / "part-00000.parquet").to_pylist()
    assert [r["doc_id"] for r in kept] == ["d0"]
    assert "jane.doe@example.org" not in kept[0]["text"] and "8.8.4.4" not in kept[0]["text"]
    assert cfg.filter.pii.email_replacement in kept[0]["text"]
    assert stats.extra["pii"] == {"emails": 1, "ips": 1}
    assert stats.drops == {"language.not_kept_language": 3}  # empty, emoji-only and null text: "und"


def test_bad_settings_and_inputs_fail_before_work(tmp_path, extracted):
    with pytest.raises(ConfigError, match="badwords_file"):
        run_stage(FILTER, [str(extracted)], tmp_path / "f1", RunConfig().with_overrides(["filter.c4.badwords=true"]))
    with pytest.raises(ConfigError, match="cannot name"):
        run_stage(
            FILTER,
            [str(extracted)],
            tmp_path / "f2",
            RunConfig().with_overrides(["filter.language.languages=[english]"]),
        )
    (tmp_path / "half").mkdir()
    with pytest.raises(Exception, match="_stage.json"):
        run_stage(FILTER, [str(tmp_path / "half")], tmp_path / "f3", RunConfig())
    with pytest.raises(InputError):
        run_stage(FILTER, [str(tmp_path / "missing")], tmp_path / "f4", RunConfig())


def test_disabled_rules_neither_measure_nor_drop():
    cfg = RunConfig().with_overrides(["filter.c4.enabled=false", "filter.fineweb.enabled=false"]).filter
    assert not any(n.startswith(("c4_", "fw_")) for n in signal_names(cfg))
    decision = evaluate("too short", ("en", 0.99), cfg)
    assert decision.failing == ["gopher_repetition.top_2gram_char_frac", "gopher_quality.min_doc_words"]
    assert "c4_sentences" in evaluate("too short", ("en", 0.99), RunConfig().filter).signals


def test_refiltering_a_filter_output_replaces_its_columns(tmp_path, filtered):
    out, stats = filtered
    again = run_stage(FILTER, [str(out)], tmp_path / "again", RunConfig().with_overrides(DEMO))
    assert again.docs_in == stats.docs_out
    names = pq.read_schema(tmp_path / "again" / "part-00000.parquet").names
    assert len(names) == len(set(names))
