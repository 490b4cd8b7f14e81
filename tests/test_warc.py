"""The WARC reader: same records and offsets as warcio, and damage is counted, not fatal."""

from __future__ import annotations

import gzip
import io
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import CorruptWarcError
from pipeline.extract.http_response import parse_http_response
from pipeline.extract.warc import READ_CHUNK, check_warc, iter_warc_records


def read_all(data: bytes, member_cap: int = 64_000_000):
    counts: dict[str, int] = {}
    errors: list[str] = []
    records = []
    for record in iter_warc_records(io.BytesIO(data), "x.warc.gz", counts, errors, member_cap):
        block = record.read_block()
        record_id = record.headers.get("warc-record-id")
        records.append((record.rec_type, record.offset, record_id, len(block), record.damaged))
    return records, counts, errors


def members(data: bytes) -> list[bytes]:
    """Split a .warc.gz into its gzip members (one record each in Common Crawl files)."""
    records, _, _ = read_all(data)
    offsets = [offset for _, offset, *_ in records] + [len(data)]
    return [data[a:b] for a, b in zip(offsets, offsets[1:])]


@pytest.fixture(scope="module")
def sample_bytes(sample_warc) -> bytes:
    return sample_warc.read_bytes()


@pytest.fixture(scope="module")
def small_warc(sample_bytes) -> bytes:
    """The warcinfo record and the first 12 fetches' records of the sample (about 40 records)."""
    return b"".join(members(sample_bytes)[:40])


def test_same_records_and_offsets_as_warcio(sample_bytes):
    from warcio.archiveiterator import ArchiveIterator

    records, counts, errors = read_all(sample_bytes)
    it = ArchiveIterator(io.BytesIO(sample_bytes))
    expected = [(r.rec_type, it.get_record_offset(), r.rec_headers.get_header("WARC-Record-ID")) for r in it]
    assert [(t, o, i) for t, o, i, _, _ in records] == expected
    assert counts == {"records": len(expected)} and errors == []
    kinds = {t for t, *_ in records}
    assert {"warcinfo", "request", "response", "metadata", "revisit"} <= kinds


def test_plain_uncompressed_warc(small_warc):
    plain = gzip.decompress(small_warc)
    gz_records, _, _ = read_all(small_warc)
    records, counts, errors = read_all(plain)
    assert [(t, i, n) for t, _, i, n, _ in records] == [(t, i, n) for t, _, i, n, _ in gz_records]
    assert errors == []
    assert records[1][1] == plain.index(b"WARC/1.0", 1)  # offsets are byte positions


def test_corrupt_member_costs_only_its_record(small_warc):
    parts = members(small_warc)
    bad = bytearray(parts[5])
    bad[len(bad) // 2 : len(bad) // 2 + 8] = b"\x00" * 8
    damaged = b"".join(parts[:5]) + bytes(bad) + b"".join(parts[6:])
    records, counts, errors = read_all(damaged)
    intact = [r for r in records if not r[-1]]
    assert len(intact) == len(parts) - 1  # every other record survives, in order
    assert [r[1] for r in intact] == [r[1] for i, r in enumerate(read_all(small_warc)[0]) if i != 5]
    assert counts["corrupt_record"] == 1
    assert "x.warc.gz" in errors[0] and "offset" in errors[0]


def test_truncated_file_keeps_what_came_before(small_warc):
    parts = members(small_warc)
    cut = b"".join(parts[:10]) + parts[10][: len(parts[10]) // 2]
    records, counts, errors = read_all(cut)
    assert counts["records"] == 10
    assert counts["truncated_file"] == 1
    assert "cut short" in errors[0]


def test_garbage_between_members_is_skipped(small_warc):
    parts = members(small_warc)
    noisy = b"".join(parts[:3]) + b"\x00garbage bytes\xff" * 50 + b"".join(parts[3:])
    records, counts, errors = read_all(noisy)
    assert counts["records"] == len(parts)
    assert counts["corrupt_record"] >= 1


@pytest.mark.parametrize("data", [b"", b"hello world, not a WARC\n" * 100, gzip.compress(b"<html>not a warc</html>")])
def test_non_warc_file_is_a_counted_corrupt_file(data):
    records, counts, errors = read_all(data)
    assert records == []
    assert counts["corrupt_file"] == 1
    assert any("no WARC record" in e for e in errors)
    with pytest.raises(CorruptWarcError, match="x.warc.gz"):
        check_warc(io.BytesIO(data), "x.warc.gz")


def test_bomb_guard_caps_one_member():
    record = b"WARC/1.0\r\nWARC-Type: resource\r\nContent-Length: 5000000\r\n\r\n" + b"a" * 5_000_000 + b"\r\n\r\n"
    small = b"WARC/1.0\r\nWARC-Type: resource\r\nContent-Length: 2\r\n\r\nok\r\n\r\n"
    records, counts, errors = read_all(gzip.compress(record) + gzip.compress(small), member_cap=1_000_000)
    assert counts["corrupt_record"] == 1 and "bomb guard" in errors[0]
    assert [n for *_, n, _ in records][-1:] == [2]


def test_http_response_parsing_and_dechunking():
    block = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    http = parse_http_response(block)
    assert http.status == 200 and http.headers["content-type"] == "text/html" and http.body == b"hello world"
    # Common Crawl keeps the header but stores the body de-chunked: leave it alone.
    plain = parse_http_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n<html>x</html>")
    assert plain.body == b"<html>x</html>"
    assert parse_http_response(b"\x00\x01 not http") is None
    assert parse_http_response(b"HTTP/1.1 abc\r\n\r\n") is None


def mutate(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    out = bytearray(data)
    for kind, pos, payload in edits:
        pos %= max(len(out), 1)
        if kind == 0:
            out[pos : pos + len(payload)] = payload  # overwrite
        elif kind == 1:
            out[pos:pos] = payload  # insert
        else:
            del out[pos : pos + 1 + len(payload) * 50]  # delete a run
    return bytes(out)


EDITS = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 10**7), st.binary(min_size=1, max_size=16)), min_size=1, max_size=6
)
SLOW_OK = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


def _check_mutated(small_warc: bytes, edits, truncate_at: int | None) -> None:
    data = mutate(small_warc, edits)
    if truncate_at is not None:
        data = data[: truncate_at % (len(data) + 1)]
    records, counts, errors = read_all(data)
    # Damage is counted, never silent: either every record survived or a problem was recorded.
    assert counts.get("records", 0) == len(records)
    if len(records) < 40:
        assert errors, "records went missing without a counted error"


@settings(max_examples=150, deadline=2000, suppress_health_check=SLOW_OK)
@given(edits=EDITS, truncate_at=st.none() | st.integers(0, 10**7))
def test_mutated_warc_bytes_never_crash_or_hang(small_warc, edits, truncate_at):
    _check_mutated(small_warc, edits, truncate_at)


@pytest.mark.nightly
@settings(max_examples=5000, deadline=5000, suppress_health_check=SLOW_OK)
@given(edits=EDITS, truncate_at=st.none() | st.integers(0, 10**7))
def test_mutated_warc_bytes_nightly(small_warc, edits, truncate_at):
    _check_mutated(small_warc, edits, truncate_at)


def test_shared_whirlwind_is_genuine_common_crawl(shared_data):
    records, counts, errors = read_all((shared_data / "warc" / "whirlwind.warc.gz").read_bytes())
    assert [t for t, *_ in records] == ["warcinfo", "request", "response", "metadata"]
    assert errors == []


def test_zlib_tail_quirk_regression(sample_bytes):
    """A member that inflates to more than one output chunk (READ_CHUNK * 4 per decompress call)
    ends with zlib's `unconsumed_tail` still holding input it has already used; only `unused_data`
    is the next member. Reading past such members must keep every record and its offset."""
    bodies = [b"small one", b"a" * (READ_CHUNK * 9 + 7), b"small two", bytes(range(256)) * (READ_CHUNK // 16), b"end"]
    blocks = [
        f"WARC/1.0\r\nWARC-Type: resource\r\nWARC-Record-ID: <urn:uuid:{i}>\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
        + b"\r\n\r\n"
        for i, body in enumerate(bodies)
    ]
    members = [gzip.compress(block) for block in blocks]
    starts = [sum(map(len, members[:i])) for i in range(len(members))]
    counts, errors = {}, []
    reader = iter_warc_records(io.BytesIO(b"".join(members)), "x.warc.gz", counts, errors)
    # one record more than there are: a reader that feeds input twice repeats records (without end)
    got = [(r.offset, len(r.read_block()), r.damaged) for r in itertools.islice(reader, len(bodies) + 1)]
    assert [(offset, length) for offset, length, _ in got] == [(s, len(b)) for s, b in zip(starts, bodies)]
    assert counts == {"records": len(bodies)} and errors == [] and not any(damaged for *_, damaged in got)
    records, counts, errors = read_all(sample_bytes)  # and the real sample reads without damage
    assert "corrupt_record" not in counts and all(not damaged for *_, damaged in records)
