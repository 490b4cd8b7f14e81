"""The disk backend (bucket files, one task per hash range) gives the in-memory backend's answer, file for file."""

from __future__ import annotations

import random

import numpy as np
import pytest

from crawl2gpt.config import RunConfig
from helpers.dedup import filter_folder, read_folder, sample_texts, serial
from pipeline.dedup.buckets import band_hashes, buckets, candidate_pairs, merge_slices, range_slice, sorted_records
from pipeline.dedup.lsh import ALL_PAIRS_UP_TO, bucket_pairs
from pipeline.dedup.stage import DEDUP, resolve_backend
from pipeline.dedup.union_find import UnionFind, components
from pipeline.stage import process_map, read_manifest, run_stage


def _words(i: int) -> str:
    """A distinct letters-only word per i (digits would fold to 0 in normalization)."""
    return "".join("abcdefghij"[int(c)] for c in str(i)) + "x"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Three parts of real page texts with every case the backends must agree on."""
    texts = sample_texts(limit=30)
    rng = random.Random(5)
    rows = [{"doc_id": f"u{i}", "text": t} for i, t in enumerate(texts[:20])]
    rows += [
        {"doc_id": "copy_u3", "text": texts[3].upper()},  # exact after normalization
        {"doc_id": "near_u4", "text": "Breaking news banner. " + texts[4] + " Share this page."},
        {
            "doc_id": "near_copy_u4",
            "text": "Breaking news banner. " + texts[4] + " Share this page.",
        },  # exact copy of a near copy
        {"doc_id": "empty", "text": " ... "},
        {"doc_id": "short_a", "text": "hello world"},
        {"doc_id": "short_b", "text": "Hello, World!"},
    ]
    base = texts[21]
    # a crowd sharing most bands: more than ALL_PAIRS_UP_TO members, so both backends take the star rule
    rows += [{"doc_id": f"crowd{i}", "text": base + " " + _words(i)} for i in range(ALL_PAIRS_UP_TO + 40)]
    words = texts[22].split()
    for i in range(12):  # near copies at several edit rates, some below the verify threshold
        edited = [w if rng.random() > 0.02 * (i % 6) else _words(rng.randrange(10_000)) for w in words]
        rows.append({"doc_id": f"edit{i}", "text": " ".join(edited)})
    rows.append({"doc_id": "copy_u0_late", "text": texts[0]})
    rng.shuffle(rows)
    tmp = tmp_path_factory.mktemp("disk")
    third = len(rows) // 3
    return filter_folder(tmp, [rows[:third], rows[third : 2 * third], rows[2 * third :]])


def _same_stage_output(a, b) -> None:
    files_a, files_b = read_manifest(a)["files"], read_manifest(b)["files"]
    assert files_a == files_b  # every data part, reject and minhash file byte for byte


@pytest.mark.parametrize(
    "settings",
    [
        [],
        ["dedup.verify=signature"],
        ["dedup.verify=none"],
        ["dedup.exact=false"],
        ["dedup.near=false"],
        ["dedup.bucket_docs=40"],  # several hash ranges per band and for the exact hashes
    ],
)
def test_disk_backend_equals_memory_backend(corpus, tmp_path, settings):
    memory = run_stage(
        DEDUP,
        [str(corpus)],
        tmp_path / "memory",
        RunConfig().with_overrides(settings + ["dedup.backend=memory"]),
        map_parts=serial,
    )
    disk = run_stage(
        DEDUP,
        [str(corpus)],
        tmp_path / "disk",
        RunConfig().with_overrides(settings + ["dedup.backend=disk"]),
        map_parts=serial,
    )
    assert disk.extra["backend"] == "disk" and memory.extra["backend"] == "memory"
    assert disk.drops == memory.drops and disk.docs_out == memory.docs_out
    for key in ("clusters", "largest_cluster", "docs_in_clusters", "candidate_pairs", "pairs_merged"):
        if key in memory.extra:  # the memory backend counts pairs for verify=exact only
            assert disk.extra[key] == memory.extra[key], key
    _same_stage_output(tmp_path / "disk", tmp_path / "memory")
    if not settings:
        assert memory.drops["near_duplicate"] > ALL_PAIRS_UP_TO and memory.drops["exact_duplicate"] >= 3


# ~30 s of spawned workers: make test-slow. make test runs the disk backend inline (above) and a stage's parts
# in spawned workers (tests/test_stage_contract.py).
@pytest.mark.slow
def test_disk_backend_in_a_process_pool_and_auto_choice(corpus, tmp_path):
    """Real spawned workers (every task must pickle); auto picks disk above disk_above_docs."""
    cfg = RunConfig().with_overrides(["dedup.disk_above_docs=10", "dedup.bucket_docs=100"])
    stats = run_stage(DEDUP, [str(corpus)], tmp_path / "pool", cfg, map_parts=process_map(2))
    reference = run_stage(DEDUP, [str(corpus)], tmp_path / "ref", RunConfig(), map_parts=serial)
    assert stats.extra["backend"] == "disk" and reference.extra["backend"] == "memory"
    assert stats.extra["hash_ranges"] == 4  # ceil(~340 documents / 100)
    _same_stage_output(tmp_path / "pool", tmp_path / "ref")
    assert not any(p.name.startswith(".") for p in (tmp_path / "pool").rglob("*"))  # no scratch or temp file left
    kept = read_folder(tmp_path / "pool").column("doc_id").to_pylist()
    assert len({"copy_u3", "u3"} & set(kept)) == 1 and len({"short_a", "short_b"} & set(kept)) == 1
    assert "empty" not in kept and len(kept) == stats.docs_out


def test_backend_choice():
    d = RunConfig().dedup
    assert resolve_backend(d, d.disk_above_docs) == "memory" and resolve_backend(d, d.disk_above_docs + 1) == "disk"
    assert resolve_backend(RunConfig().with_overrides(["dedup.backend=redis"]).dedup, 10**9) == "redis"


# ------------------------------------------------------------------ the pieces, against their in-memory twins


def test_band_hashes_equal_exactly_when_bands_equal():
    rng = np.random.default_rng(0)
    sigs = rng.integers(0, 2**32, size=(500, 112), dtype=np.uint64).astype(np.uint32)
    sigs[250:] = sigs[:250]
    sigs[260, :8] += 1  # band 0 of 260 now differs from its twin 10
    h = band_hashes(sigs, 14, 8)
    assert h.shape == (500, 14) and h.dtype == np.uint64
    assert (h[250:259] == h[:9]).all() and h[260, 0] != h[10, 0] and (h[260, 1:] == h[10, 1:]).all()
    assert len(np.unique(h[:250])) == 250 * 14  # no chance collisions among distinct bands


def test_buckets_give_bucket_pairs_of_every_bucket():
    rng = np.random.default_rng(1)
    sizes = [1, 2, 3, 5, 2, ALL_PAIRS_UP_TO, ALL_PAIRS_UP_TO + 3, 1, 4]
    keys = rng.permutation(sum(sizes)).astype(np.uint64)
    distinct = np.arange(1, len(sizes) + 1, dtype=np.uint64) * np.uint64(
        0x9E3779B97F4A7C15
    )  # wraps: distinct, unordered
    hashes = np.repeat(distinct, sizes)
    records = sorted_records(hashes[np.argsort(keys)], np.sort(keys))  # keys arrive ascending, as in a part
    want = set()
    for h in np.unique(hashes):
        members = sorted(records[records[:, 0] == h, 1].tolist())
        if len(members) > 1:
            want.update(bucket_pairs(members))
    got = candidate_pairs(*buckets(records))
    assert {tuple(p) for p in got.tolist()} == want and len(got) == len(want)


def test_range_slices_partition_the_records():
    rng = np.random.default_rng(2)
    records = sorted_records(rng.integers(0, 2**64, size=1000, dtype=np.uint64), np.arange(1000, dtype=np.uint64))
    slices = [range_slice(records, k, 7) for k in range(7)]
    assert sum(len(s) for s in slices) == 1000
    assert np.array_equal(merge_slices(slices), records)


def test_components_match_union_find():
    rng = np.random.default_rng(3)
    exact = rng.integers(0, 300, size=(80, 2))
    near = rng.integers(0, 300, size=(120, 2))
    nodes, roots, merged = components(exact, near)
    uf = UnionFind(300)
    for a, b in exact.tolist():
        uf.union(a, b)
    want_merged = sum(uf.union(a, b) for a, b in near.tolist())
    assert np.array_equal(roots, uf.roots()[nodes]) and merged == want_merged
