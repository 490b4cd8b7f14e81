"""Bad input: decompression bombs, enormous lines, deep HTML, invalid config values and paths.

Each case goes through the real extract path (`extract_file`) or the real run entry point
(`run_pipeline`): the run must survive, count the bad record under a named reason, keep the
good records around it, and stay within time and memory bounds; a bad setting or path must
fail with a clear error before any stage folder is written.
"""

from __future__ import annotations

import gzip
import io
import time
import tracemalloc
import zlib
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from crawl2gpt.config import RunConfig
from crawl2gpt.runner import run_pipeline
from pipeline.errors import ConfigError, InputError
from pipeline.extract.config import ExtractConfig
from pipeline.extract.normalize import normalize_text
from pipeline.extract.stage import extract_file
from pipeline.extract.warc import iter_warc_records
from pipeline.filter.config import FilterConfig
from pipeline.filter.stage import evaluate

HTML = (
    b"<html><head><title>Fine page</title></head><body><article>"
    + b"<p>A sentence about a garden, and the plants in it.</p>" * 20
    + b"</article></body></html>"
)


def warc_record(
    rec_type: str, body: bytes, rid: str, url: str = "http://example.org/", length: int | None = None
) -> bytes:
    head = (
        f"WARC/1.0\r\nWARC-Type: {rec_type}\r\nWARC-Record-ID: <urn:uuid:{rid}>\r\nWARC-Target-URI: {url}\r\n"
        f"WARC-Date: 2024-05-01T00:00:00Z\r\nContent-Length: {len(body) if length is None else length}\r\n\r\n"
    )
    return head.encode() + body + b"\r\n\r\n"


def response(html: bytes, rid: str, content_type: str = "text/html; charset=utf-8", extra: str = "") -> bytes:
    http = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n{extra}\r\n".encode() + html
    return warc_record("response", http, rid, url=f"http://example.org/{rid}")


def gz(*records: bytes) -> bytes:
    return b"".join(gzip.compress(r, 1) for r in records)


def ingest(tmp_path: Path, data: bytes, **cfg) -> tuple[list[dict], dict, list[str], float]:
    src = tmp_path / "in.warc.gz"
    src.write_bytes(data)
    started = time.time()
    result = extract_file(str(src), tmp_path / "part.parquet", ExtractConfig(**cfg))
    seconds = time.time() - started
    return pq.read_table(tmp_path / "part.parquet").to_pylist(), result.counts, result.errors, seconds


# --------------------------------------------------------------------------- decompression bombs


@pytest.fixture(scope="module")
def bomb_member() -> bytes:
    """One gzip member (~300 KB) that inflates to 300 MB: a response claiming a small page."""
    enc = zlib.compressobj(9, zlib.DEFLATED, 31)
    head = b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:bomb>\r\nContent-Length: 300000000\r\n\r\n"
    parts = [enc.compress(head + b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html><body>")]
    zeros = b"\0" * (1 << 20)
    parts += [enc.compress(zeros) for _ in range(300)]
    parts.append(enc.flush())
    return b"".join(parts)


def test_gzip_bomb_is_capped_counted_and_the_next_records_survive(tmp_path, bomb_member):
    data = gz(response(HTML, "a")) + bomb_member + gz(response(HTML.replace(b"garden", b"meadow"), "b"))
    ingest(tmp_path, gz(response(HTML, "warm")))  # imports (trafilatura, lxml) are not the bomb's memory
    tracemalloc.start()
    rows, counts, errors, seconds = ingest(tmp_path, data, max_gzip_member_bytes=16_000_000)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert [r["url"] for r in rows] == ["http://example.org/a", "http://example.org/b"]
    assert counts["corrupt_record"] == 1 and any("bomb guard" in e for e in errors)
    assert peak < 8_000_000, f"inflating a bomb held {peak} bytes at once"  # streamed, never the whole member
    assert seconds < 20


def test_gzip_bomb_with_the_default_cap(bomb_member):
    counts: dict[str, int] = {}
    errors: list[str] = []
    records = list(
        iter_warc_records(
            io.BytesIO(bomb_member), "bomb.warc.gz", counts, errors, ExtractConfig().max_gzip_member_bytes
        )
    )
    assert len(records) == 1 and counts["corrupt_record"] == 1
    assert "inflates past 64000000 bytes" in errors[0]


def test_http_gzip_body_is_never_inflated(tmp_path):
    """Content-Encoding gzip payloads are not decompressed by us (Common Crawl stores them
    decoded): a compressed HTML bomb in a body is just bytes, skipped with a reason."""
    body = gzip.compress(b"<html><body>" + b"A" * 50_000_000 + b"</body></html>", 9)
    rows, counts, errors, seconds = ingest(
        tmp_path, gz(response(body, "z", extra="Content-Encoding: gzip\r\n"), response(HTML, "ok"))
    )
    assert [r["url"] for r in rows] == ["http://example.org/ok"]
    assert counts["docs_in"] == 2 and sum(v for k, v in counts.items() if k.startswith("skip_")) == 1
    assert seconds < 20


# --------------------------------------------------------------------------- enormous lines and values


def test_enormous_header_line_is_garbage_not_a_hang(tmp_path):
    monster = b"WARC/1.0\r\nWARC-Type: response\r\nX-Junk: " + b"j" * 20_000_000  # 20 MB, no newline
    rows, counts, errors, seconds = ingest(tmp_path, gz(response(HTML, "a"), monster, response(HTML, "b")))
    assert [r["url"] for r in rows] == ["http://example.org/a", "http://example.org/b"]
    assert counts["corrupt_record"] >= 1 and seconds < 20


@pytest.mark.parametrize("length", ["-5", "12abc", "99999999999999999999999999"])
def test_lying_content_length_is_counted(tmp_path, length):
    bad = warc_record("response", b"HTTP/1.1 200 OK\r\n\r\nshort", "bad", length=0).replace(
        b"Content-Length: 0", f"Content-Length: {length}".encode()
    )
    rows, counts, errors, seconds = ingest(tmp_path, gz(response(HTML, "a"), bad, response(HTML, "b")))
    assert rows[0]["url"] == "http://example.org/a"
    damage = counts.get("corrupt_record", 0) + counts.get("truncated_file", 0)
    assert damage >= 1, counts
    if not length.startswith("9"):  # an unreadable length costs only its own record
        assert [r["url"] for r in rows] == ["http://example.org/a", "http://example.org/b"]


ENGINES = ("trafilatura", "resiliparse", "fast")


@pytest.mark.parametrize("engine", ENGINES)
def test_page_of_one_enormous_line_is_extracted_in_bounded_time(tmp_path, engine):
    line = b" ".join(b"word%d" % (i % 5000) for i in range(300_000))  # ~2 MB, a single line
    page = b"<html><body><p>" + line + b"</p></body></html>"
    rows, counts, errors, seconds = ingest(
        tmp_path, gz(response(page, "big"), response(HTML, "b")), max_page_bytes=3_000_000, engine=engine
    )
    if engine == "fast" and len(rows) == 1:  # its line filter may judge 2 MB without punctuation no prose
        assert rows[0]["url"].endswith("/b") and counts["skip_extraction_empty"] == 1, counts
    else:
        assert len(rows) == 2 and len(rows[0]["text"]) > 1_000_000 and "\n" not in rows[0]["text"]
    assert seconds < 30


@pytest.mark.parametrize("unit", ["a\n", "#...\n", "word " * 3 + "\n", "x"])
def test_text_rules_grow_linearly_on_degenerate_text(unit):
    """normalize + every filter rule on 50 KB vs 200 KB of degenerate text: linear is a
    ratio of ~4, a quadratic rule would show ~16."""
    cfg, ecfg = FilterConfig(), ExtractConfig()

    def cost(size: int) -> float:
        text = unit * (size // len(unit))
        started = time.perf_counter()
        evaluate(normalize_text(text, ecfg), ("en", 0.9), cfg)
        return time.perf_counter() - started

    cost(10_000)  # warm caches and lazy imports
    small, large = min(cost(50_000) for _ in range(2)), min(cost(200_000) for _ in range(2))
    assert large / max(small, 1e-3) < 9, f"{unit!r}: {small:.3f}s -> {large:.3f}s"


# --------------------------------------------------------------------------- hostile HTML


@pytest.mark.parametrize("engine", ENGINES)
def test_deeply_nested_html_is_counted_not_a_crash(tmp_path, engine):
    deep = (
        b"<html><body>"
        + b"<div><span>" * 100_000
        + b"<p>Buried text.</p>"
        + b"</span></div>" * 100_000
        + b"</body></html>"
    )
    rows, counts, errors, seconds = ingest(
        tmp_path, gz(response(deep, "deep"), response(HTML, "b")), max_page_bytes=3_000_000, engine=engine
    )
    assert counts["docs_in"] == 2 and "http://example.org/b" in [r["url"] for r in rows]
    reasons = {k for k in counts if k.startswith("skip_extraction")}
    if engine == "trafilatura":  # lxml gives up on the depth: empty, error or timeout, one of them named
        assert [r["url"] for r in rows] == ["http://example.org/b"] and reasons, counts
    else:  # resiliparse's main-content pass would run for minutes: its nesting guard names the skip
        assert [r["url"] for r in rows] == ["http://example.org/b"] and counts.get("skip_too_deep") == 1, counts
    assert seconds < 30


def test_slow_page_hits_the_per_document_time_limit(tmp_path):
    huge = b"<html><body>" + b"<table><tr><td>cell text, more words</td></tr></table>" * 40_000 + b"</body></html>"
    rows, counts, errors, seconds = ingest(
        tmp_path, gz(response(huge, "slow"), response(HTML, "b")), max_page_bytes=5_000_000, extraction_timeout_s=0.05
    )
    assert counts.get("skip_extraction_timeout") == 1, counts
    assert [r["url"] for r in rows] == ["http://example.org/b"]


# --------------------------------------------------------------------------- invalid config and paths


@pytest.mark.parametrize(
    "override",
    [
        "train.eval_interval=0",
        "train.checkpoint_interval=0",
        "train.n_layer=0",
        "train.block_size=1",
        "train.dropout=1.5",
        "train.beta2=1",
        "train.eval_batches=0",
        "train.max_steps=0",
        "train.batch_size=0",
        "train.precision=fp8",
        "extract.max_page_bytes=0",
        "extract.extraction_timeout_s=0",
        "dedup.bands=0",
        "tokenizer.vocab_size=10",
        "shards.val_fraction=1",
        "workers=-1",
        "filter.language.min_score=1.5",
        "train.n_layer=two",
        "dedup.backend=mongodb",
    ],
)
def test_invalid_value_is_a_config_error(override):
    with pytest.raises(ConfigError, match=override.split("=")[0].split(".")[-1]):
        RunConfig().with_overrides([override])


@pytest.mark.parametrize(
    "override, message",
    [
        (["filter.c4.badwords=true"], "badwords_file is not set"),
        (["filter.c4.badwords=true", "filter.c4.badwords_file=/nonexistent/words.txt"], "does not exist"),
        (["tokenizer.reuse=/nonexistent/tokenizer.model"], "tokenizer.reuse"),
        (["train.learning_rate=0.001", "train.min_lr=0.01"], "min_lr"),
    ],
)
def test_bad_paths_and_settings_fail_before_any_stage(tmp_path, sample_warc, override, message):
    started = time.time()
    with pytest.raises(ConfigError, match=message):
        run_pipeline([str(sample_warc)], tmp_path / "run", RunConfig().with_overrides(override))
    assert time.time() - started < 5 and not (tmp_path / "run").exists()


def test_bad_run_folder_and_stage_name(tmp_path, sample_warc):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(InputError, match="is a file"):
        run_pipeline([str(sample_warc)], tmp_path / "file", RunConfig())
    with pytest.raises(ConfigError, match="not a stage"):
        run_pipeline([str(sample_warc)], tmp_path / "run", RunConfig(), until="tokenise")
    with pytest.raises(InputError, match="no input"):
        run_pipeline([], tmp_path / "run", RunConfig())
    assert not (tmp_path / "run").exists()


def test_missing_input_is_a_clear_error_in_a_second(tmp_path):
    started = time.time()
    with pytest.raises(InputError, match="nonexistent"):
        run_pipeline(["/nonexistent/CC-X.warc.gz"], tmp_path / "run", RunConfig(), until="extract")
    assert time.time() - started < 5 and not (tmp_path / "run" / "extract").exists()
    with pytest.raises(InputError, match="matches no file"):
        run_pipeline([str(tmp_path / "*.warc.gz")], tmp_path / "run2", RunConfig(), until="extract")
