"""Fuzz the WARC reader *and* extraction with mutated real WARC bytes (hypothesis).

tests/test_warc.py fuzzes the reader alone; here every mutated file goes through the real
extract path (`extract_file`: reader, HTTP parsing, charset, trafilatura under its time limit,
normalization, Parquet), on a slice of the bundled sample with every kind of record in it
(warcinfo, request, metadata, revisit, 200 HTML pages, a redirect, a 404, PNG, PDF, a tiny page).

Two mutation targets: the gzip bytes (damage the reader must notice: CRC, bad members, cuts),
and the decompressed WARC (damage inside headers and HTML, which no checksum can notice,
fed plain). Properties, for every case:
  - no exception, and the case ends within the deadline (per-page time limit on extraction);
  - every response record is accounted for: kept, skipped under a named reason, or lost to
    damage that the reader counted (`corrupt_record` / `truncated_file`);
  - gzip input: no silent corruption. Every document that comes out is byte-identical to one
    of the unmutated file, or the file's damage was counted.
Every extract.engine goes through it (trafilatura, resiliparse, fast). CI runs 200 + 100 cases
for trafilatura and 50 + 25 for each other engine; the nightly marker runs 8,000 + 2,000.
"""

from __future__ import annotations

import gzip
import io
import tempfile
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.extract.config import ExtractConfig
from pipeline.extract.stage import NON_RESPONSE_SKIPS, extract_file
from pipeline.extract.warc import iter_warc_records

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample" / "CC-SAMPLE-A-00002.warc.gz"
# Members of the sample (see the module docstring): 3 HTML pages plus every other record kind.
SLICE = [0, 1, 2, 3, 7, 8, 9, 13, 14, 15, *range(19, 34), 55]
ENGINES = ("trafilatura", "resiliparse", "fast")
CI_CASES = {"trafilatura": (200, 100), "resiliparse": (50, 25), "fast": (50, 25)}  # (gzip, plain) cases per engine
DAMAGE = ("corrupt_record", "truncated_file", "corrupt_file")


def _members(data: bytes) -> list[bytes]:
    offsets = [r.offset for r in iter_warc_records(io.BytesIO(data), "sample", {}, [])] + [len(data)]
    return [data[a:b] for a, b in zip(offsets, offsets[1:])]


MEMBERS = _members(SAMPLE.read_bytes())
SLICE_GZ = b"".join(MEMBERS[i] for i in SLICE)
SLICE_PLAIN = gzip.decompress(SLICE_GZ)


def ingest(data: bytes, name: str, engine: str = "trafilatura") -> tuple[list[tuple], dict[str, int], list[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / name
        src.write_bytes(data)
        cfg = ExtractConfig(extraction_timeout_s=2.0, engine=engine)
        result = extract_file(str(src), Path(tmp) / "part.parquet", cfg)
        rows = pq.read_table(Path(tmp) / "part.parquet", columns=["doc_id", "url", "text"]).to_pylist()
    return [(r["doc_id"], r["url"], r["text"]) for r in rows], result.counts, result.errors


ORIGINALS = {engine: ingest(SLICE_GZ, "slice.warc.gz", engine) for engine in ENGINES}


def mutate(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    out = bytearray(data)
    for kind, pos, payload in edits:
        pos %= max(len(out), 1)
        if kind == 0:
            out[pos : pos + len(payload)] = payload  # overwrite
        elif kind == 1:
            out[pos:pos] = payload  # insert
        elif kind == 2:
            del out[pos : pos + len(payload) * 37]  # delete a run
        else:
            out[pos:pos] = out[pos : pos + len(payload) * 101]  # duplicate a run (a repeated chunk)
    return bytes(out)


EDITS = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 10**7), st.binary(min_size=1, max_size=24)), min_size=1, max_size=5
)
CUT = st.none() | st.integers(0, 10**7)


def check_case(data: bytes, name: str, gzipped: bool, engine: str = "trafilatura") -> Counter:
    """The properties of one case; its figures (damage counted, documents changed) for the run's totals."""
    rows, counts, errors = ingest(data, name, engine)
    damage = sum(counts.get(k, 0) for k in DAMAGE)
    skips = sum(v for k, v in counts.items() if k.startswith("skip_") and k not in NON_RESPONSE_SKIPS)
    lost = counts["docs_in"] - counts["docs_out"] - skips
    assert counts["docs_out"] == len(rows)
    assert 0 <= lost <= counts.get("corrupt_record", 0) + counts.get("truncated_file", 0), counts
    if damage:
        assert errors, "damage counted without a message naming the file and offset"
        assert all(name in e for e in errors)
    changed = not set(rows) <= set(ORIGINALS[engine][0])
    if gzipped and not damage:
        assert not changed, "a mutated gzip file gave a changed document and no damage was counted"
    return Counter(cases=1, damaged_cases=damage > 0, bad_records_counted=damage, changed_documents=changed)


@pytest.mark.parametrize("engine", ENGINES)
def test_unmutated_slice_is_clean(engine):
    rows, counts, errors = ORIGINALS[engine]
    assert len(rows) == 3 and not errors  # the 100-byte page extracts to nothing
    assert {"skip_redirect", "skip_status", "skip_not_html"} <= set(counts)


FAST = settings(max_examples=200, deadline=20_000, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
NIGHTLY = settings(max_examples=8_000, deadline=20_000, suppress_health_check=[HealthCheck.too_slow])


def _gz_case(edits, cut, engine) -> Counter:
    data = mutate(SLICE_GZ, edits)
    return check_case(data if cut is None else data[: cut % (len(data) + 1)], "fuzz.warc.gz", True, engine)


def _plain_case(edits, cut, engine) -> Counter:
    data = mutate(SLICE_PLAIN, edits)
    return check_case(data if cut is None else data[: cut % (len(data) + 1)], "fuzz.warc", False, engine)


def fuzz(case, run_settings, engine: str = "trafilatura") -> Counter:
    """`case` on every example hypothesis draws under `run_settings`; the cases' figures summed
    (printed for docs/reliability.md's table)."""
    figures: Counter = Counter()

    @run_settings
    @given(edits=EDITS, cut=CUT)
    def one(edits, cut):
        figures.update(case(edits, cut, engine))

    one()
    print(f"\nfuzz figures ({case.__name__}, {engine}): {dict(figures)}")
    return figures


def assert_gzip_damage_is_reached(figures: Counter, cases: int) -> None:
    # Every case ran, and nearly all of them damaged the gzip stream (a CRC, a member, a cut):
    # the mutations reach the reader's damage paths, and the reader counted what it met.
    assert figures["cases"] == cases and figures["damaged_cases"] >= 0.9 * cases, figures
    assert figures["bad_records_counted"] >= figures["damaged_cases"], figures


def assert_plain_damage_is_reached(figures: Counter, cases: int) -> None:
    # No checksum guards a plain WARC: damaged headers are counted, and damaged HTML reaches
    # extraction as changed documents (which the per-case properties then hold to account).
    assert figures["cases"] == cases and figures["damaged_cases"] >= 0.5 * cases, figures
    assert figures["changed_documents"] >= 1, figures  # a count that varies with the drawn mutations (4-8 in 100)


@pytest.mark.parametrize("engine", ENGINES)
def test_mutated_gzip_bytes_through_extraction(engine):
    cases = CI_CASES[engine][0]
    assert_gzip_damage_is_reached(fuzz(_gz_case, settings(FAST, max_examples=cases), engine), cases)


@pytest.mark.parametrize("engine", ENGINES)
def test_mutated_plain_warc_through_extraction(engine):
    cases = CI_CASES[engine][1]
    assert_plain_damage_is_reached(fuzz(_plain_case, settings(FAST, max_examples=cases), engine), cases)


@pytest.mark.nightly
def test_mutated_gzip_bytes_through_extraction_nightly():
    assert_gzip_damage_is_reached(fuzz(_gz_case, NIGHTLY), 8_000)


@pytest.mark.nightly
def test_mutated_plain_warc_through_extraction_nightly():
    assert_plain_damage_is_reached(fuzz(_plain_case, settings(NIGHTLY, max_examples=2_000)), 2_000)
