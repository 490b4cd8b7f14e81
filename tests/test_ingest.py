"""The extract stage end to end: counts by skip reason, document rows, bad inputs, stage contract."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from crawl2gpt.config import RunConfig
from pipeline.documents import DOCUMENT_SCHEMA
from pipeline.errors import InputError
from pipeline.extract.config import ExtractConfig
from pipeline.extract.stage import EXTRACT, WarcPart, doc_id, domain_of, extract_file
from pipeline.extract.warc import iter_warc_records
from pipeline.stage import run_stage, stage_parts


def first_members(path: Path, n: int) -> bytes:
    """The first n gzip members (records) of a .warc.gz, as bytes."""
    data = path.read_bytes()
    offsets = [r.offset for r in iter_warc_records(io.BytesIO(data), "x", {}, [])] + [len(data)]
    return data[: offsets[n]]


@pytest.fixture(scope="module")
def sample_result(sample_warc, tmp_path_factory):
    out = tmp_path_factory.mktemp("extract") / "part-00000.parquet"
    return extract_file(str(sample_warc), out, ExtractConfig()), out


def test_every_record_kind_is_counted(sample_result):
    result, _ = sample_result
    c = result.counts
    assert c["records"] == 380 and c["docs_in"] == 126
    for reason in (
        "skip_request",
        "skip_metadata",
        "skip_warcinfo",
        "skip_revisit",
        "skip_redirect",
        "skip_status",
        "skip_not_html",
        "skip_empty_body",
        "skip_truncated",
    ):
        assert c.get(reason, 0) >= 1, reason
    non_response = c["skip_request"] + c["skip_metadata"] + c["skip_warcinfo"] + c["skip_revisit"]
    assert non_response + c["docs_in"] == c["records"]
    response_skips = sum(
        v
        for k, v in c.items()
        if k.startswith("skip_") and k not in ("skip_request", "skip_metadata", "skip_warcinfo", "skip_revisit")
    )
    assert c["docs_out"] + response_skips == c["docs_in"]
    assert c["docs_out"] >= 95 and result.errors == []


def test_document_rows(sample_result, sample_warc):
    _, out = sample_result
    table = pq.read_table(out)
    assert table.schema.equals(DOCUMENT_SCHEMA)
    rows = table.to_pylist()
    assert len({r["doc_id"] for r in rows}) == len(rows)
    for row in rows:
        assert len(row["doc_id"]) == 20 and row["text"].strip() and row["url"].startswith("http")
        assert row["domain"] and row["domain"] in row["url"] and row["source"] == str(sample_warc)
        assert row["warc_date"].startswith("20")
    assert sum(1 for r in rows if r["title"]) > len(rows) * 0.8
    # the offset leads back to the record
    row = rows[3]
    data = sample_warc.read_bytes()[row["offset"] :]
    record = next(iter_warc_records(io.BytesIO(data), "x", {}, []))
    assert doc_id(record.headers["warc-record-id"]) == row["doc_id"]


def test_truncated_payloads_can_be_kept(sample_warc, tmp_path):
    data = sample_warc.read_bytes()
    records = [(r.offset, r.headers.get("warc-truncated")) for r in iter_warc_records(io.BytesIO(data), "x", {}, [])]
    at = next(i for i, (_, truncated) in enumerate(records) if truncated)
    (tmp_path / "t.warc.gz").write_bytes(data[records[at][0] : records[at + 1][0]])
    skip = extract_file(str(tmp_path / "t.warc.gz"), tmp_path / "a.parquet", ExtractConfig())
    keep = extract_file(str(tmp_path / "t.warc.gz"), tmp_path / "b.parquet", ExtractConfig(keep_truncated=True))
    assert skip.counts["skip_truncated"] == 1 and skip.counts["docs_out"] == 0
    assert "skip_truncated" not in keep.counts and keep.counts["docs_out"] == 1


def test_size_cap(sample_warc, tmp_path):
    small = first_members(sample_warc, 40)
    (tmp_path / "s.warc.gz").write_bytes(small)
    result = extract_file(str(tmp_path / "s.warc.gz"), tmp_path / "p.parquet", ExtractConfig(max_page_bytes=20_000))
    assert result.counts.get("skip_too_large", 0) >= 1


def test_damaged_file_keeps_what_was_read(sample_warc, tmp_path):
    whole = first_members(sample_warc, 60)
    cut = whole[: len(whole) - 300]
    (tmp_path / "cut.warc.gz").write_bytes(cut + b"\x00\x01garbage")
    result = extract_file(str(tmp_path / "cut.warc.gz"), tmp_path / "p.parquet", ExtractConfig())
    assert result.counts["docs_out"] >= 10
    assert result.errors and all("cut.warc.gz" in e for e in result.errors)
    assert pq.read_table(tmp_path / "p.parquet").num_rows == result.counts["docs_out"]


def test_unreadable_inputs(tmp_path):
    (tmp_path / "junk.warc.gz").write_bytes(b"this is not a warc file\n" * 10)
    junk = extract_file(str(tmp_path / "junk.warc.gz"), tmp_path / "a.parquet", ExtractConfig())
    assert junk.counts["corrupt_file"] == 1 and junk.counts["docs_out"] == 0
    missing = extract_file(str(tmp_path / "gone.warc.gz"), tmp_path / "b.parquet", ExtractConfig())
    assert missing.counts["unreadable_input"] == 1 and "gone.warc.gz" in missing.errors[0]
    assert pq.read_table(tmp_path / "b.parquet").num_rows == 0


def test_stage_contract_with_a_missing_input(sample_warc, tmp_path):
    small = tmp_path / "in" / "small.warc.gz"
    small.parent.mkdir()
    small.write_bytes(first_members(sample_warc, 25))
    missing = str(tmp_path / "in" / "missing.warc.gz")
    stats = run_stage(EXTRACT, [str(small), missing], tmp_path / "extract", RunConfig(workers=1))
    assert [p.name for p in stage_parts(tmp_path / "extract")] == ["part-00000.parquet", "part-00001.parquet"]
    # the default config keeps English: the German pages go to rejects/ as language.prescreen
    assert stats.docs_out >= 1 and stats.docs_out + stats.drops["language.prescreen"] >= 3
    assert stats.extra["unreadable_input"] == 1 and stats.extra["files_with_errors"] == 1
    assert "skip_redirect" in stats.drops and "records" not in stats.drops
    assert "skip_request" not in stats.drops and stats.extra["skip_request"] >= 1  # not a document: reported aside
    assert any("missing.warc.gz" in e for e in stats.errors)
    with pytest.raises(InputError, match="no input could be read"):
        run_stage(EXTRACT, [missing], tmp_path / "extract2", RunConfig(workers=1))


def test_plan_resolves_folders(sample_warc, tmp_path):
    shutil.copy(sample_warc, tmp_path / "a.warc.gz")
    assert EXTRACT.plan([str(tmp_path)], RunConfig()) == [WarcPart(0, str((tmp_path / "a.warc.gz").resolve()))]


def test_domain_of():
    assert domain_of("https://WWW.Example.org:8080/x?y") == "example.org"
    assert domain_of("not a url") == ""


def test_shared_whirlwind_over_http(shared_data, tmp_path):
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(shared_data / "warc"))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/whirlwind.warc.gz"
        result = extract_file(url, tmp_path / "w.parquet", ExtractConfig())
    finally:
        server.shutdown()
        server.server_close()
    row = pq.read_table(tmp_path / "w.parquet").to_pylist()[0]
    assert result.counts["docs_out"] == 1 and row["domain"] == "an.wikipedia.org" and row["source"] == url
    assert row["title"] and "Escopete" in row["title"]


def filter_keeps(rows: list[dict], languages: list[str]) -> set[str]:
    """doc_ids the filter stage's rules keep (language ID batched as the stage does)."""
    from pipeline.filter import language
    from pipeline.filter.config import FilterConfig
    from pipeline.filter.stage import evaluate

    cfg = FilterConfig()
    cfg.language.languages = languages
    langs = language.detect([r["text"] for r in rows], cfg.language)
    return {r["doc_id"] for r, lang in zip(rows, langs) if not evaluate(r["text"], lang, cfg).failing}


def test_prescreen_skips_only_pages_the_filter_would_drop(sample_result, tmp_path):
    """The fast path (pre-screen) keeps every document the full path keeps; skipped pages are rejects."""
    _, full_part = sample_result
    full_rows = pq.read_table(full_part).to_pylist()
    out = tmp_path / "part-00000.parquet"
    fast = extract_file(str(sample_result[0].part), out, ExtractConfig(), frozenset({"en", "de"}))
    fast_rows = pq.read_table(out).to_pylist()
    rejects = pq.read_table(tmp_path / "rejects" / "part-00000.parquet").to_pylist()
    assert fast.outputs == ["part-00000.parquet", "rejects/part-00000.parquet"]
    assert fast.counts["language.prescreen"] == len(rejects) >= 5
    assert len(fast_rows) + len(rejects) == len(full_rows) == sample_result[0].counts["docs_out"]
    assert {r["doc_id"] for r in fast_rows} | {r["doc_id"] for r in rejects} == {r["doc_id"] for r in full_rows}
    for row in rejects:
        assert row["first_failing_rule"] == "language.prescreen" and row["failing_rules"] == ["language.prescreen"]
        assert row["language"] not in ("en", "de") and row["language_score"] > 0.5
        assert row["prescreen_kept_score"] < ExtractConfig().prescreen_threshold and row["text"]
    assert sum(v for k, v in fast.counts.items() if k.startswith("prescreen_lang_")) == len(rejects)
    # kept documents are byte-identical to the full path's, and the filter keeps the same ones
    by_id = {r["doc_id"]: r for r in full_rows}
    assert all(by_id[r["doc_id"]] == r for r in fast_rows)
    assert filter_keeps(fast_rows, ["en", "de"]) == filter_keeps(full_rows, ["en", "de"])


def test_prescreen_is_in_extracts_key_only_while_it_runs():
    def key(*overrides):
        return EXTRACT.config_slice(RunConfig().with_overrides(list(overrides)))

    assert key()["filter.language.languages"] == ["en"]  # default: English kept, pre-screen on
    assert key("filter.language.languages=[en, de]") != key()
    assert key("extract.prescreen_threshold=0.01") != key()
    assert key("filter.language.min_score=0.5") == key()  # the pre-screen does not read it
    off = key("extract.language_prescreen=false")
    assert "filter.language.languages" not in off and "prescreen_threshold" not in off["extract"]
    assert off == key("extract.language_prescreen=false", "filter.language.languages=[en, de]")
    everything = key("filter.language.languages=[]")  # all languages kept: nothing to screen
    assert everything == key("filter.language.languages=[]", "extract.prescreen_threshold=0.01")
