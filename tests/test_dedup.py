"""The dedup stage: shingles, signatures, S-curve, union-find, and the stage end to end on real text."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from crawl2gpt.config import RunConfig
from helpers.dedup import filter_folder, read_folder, sample_texts, serial
from pipeline.dedup.lsh import lsh_threshold, s_curve
from pipeline.dedup.minhash import estimated_jaccard, lean_minhashes, signature_bytes, signature_matrix
from pipeline.dedup.shingles import shingle_hashes, simplify_text, text_hash
from pipeline.dedup.stage import DEDUP
from pipeline.dedup.union_find import UnionFind
from pipeline.errors import ConfigError, InputError
from pipeline.stage import run_stage, stage_parts


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return sample_texts(limit=24)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    return len(np.intersect1d(a, b)) / len(np.union1d(a, b))


def with_chrome(text: str) -> str:
    """The planted 'near' kind: same article, a banner before and a footer after."""
    return (
        "Subscribe now and read every article for free this month!\n"
        + text
        + "\nCopyright 2024 Syndicated Example Media. All rights reserved. Contact us for licensing."
    )


# ------------------------------------------------------------------ shingles and signatures


def test_normalize_folds_case_punctuation_digits_and_accents():
    assert simplify_text("Héllo,  WORLD! It's 2024-05-01...") == "hello world it s 0 0 0"
    assert simplify_text(" \n\t ") == ""
    assert text_hash(simplify_text("A  b.")) == text_hash(simplify_text("a b"))
    assert text_hash("a b") != text_hash("a c")


def test_shingles_respect_word_order_and_short_text_rule():
    five = shingle_hashes("a b c d e", 5)
    assert len(five) == 1 and five[0] != shingle_hashes("e d c b a", 5)[0]
    assert len(shingle_hashes("a b c d e f g", 5)) == 3
    assert len(shingle_hashes("two words", 5)) == 1  # shorter than one shingle: the text is one shingle
    assert len(shingle_hashes("", 5)) == 0
    assert shingle_hashes("a b c d e f", 5).dtype == np.uint32


def test_signature_estimates_true_jaccard(texts):
    pairs = [(texts[i], texts[i][: len(texts[i]) * 2 // 3] + " " + texts[i + 1][:400]) for i in range(8)]
    errors = []
    for a, b in pairs:
        sa, sb = shingle_hashes(simplify_text(a), 5), shingle_hashes(simplify_text(b), 5)
        ma, mb = lean_minhashes([sa, sb], num_perm=112, seed=1)
        errors.append(abs(estimated_jaccard(ma.hashvalues, mb.hashvalues) - jaccard(sa, sb)))
        assert ma.jaccard(mb) == pytest.approx(estimated_jaccard(ma.hashvalues, mb.hashvalues))
    assert np.mean(errors) < 0.06  # std of the estimate at 112 permutations is <= 0.047


def test_signature_bytes_round_trip(texts):
    sketches = lean_minhashes([shingle_hashes(simplify_text(t), 5) for t in texts[:3]], 112, 1)
    matrix = signature_matrix([signature_bytes(s) for s in sketches], 112)
    assert matrix.shape == (3, 112)
    assert all((matrix[i] == s.hashvalues).all() for i, s in enumerate(sketches))


def test_s_curve_for_fineweb_bands():
    assert lsh_threshold(14, 8) == pytest.approx(0.7192, abs=1e-3)
    probs = s_curve(np.array([0.5, 0.7, 0.8, 0.9]), 14, 8)
    assert np.all(np.diff(probs) > 0)
    assert probs[0] < 0.06 and probs[2] == pytest.approx(0.924, abs=1e-3) and probs[3] > 0.999


def test_union_find_root_is_lowest_index():
    uf = UnionFind(8)
    uf.union(5, 3), uf.union(7, 5), uf.union(6, 2), uf.union(2, 7)
    assert uf.roots().tolist() == [0, 1, 2, 2, 4, 2, 2, 2]
    assert uf.union(3, 6) is False and uf.find(7) == 2


# ------------------------------------------------------------------ the stage


def planted_parts(texts: list[str]) -> list[list[dict]]:
    """Two parts: uniques, an exact copy across parts, a near copy, empty and short documents."""
    part0 = [{"doc_id": f"a{i}", "text": t} for i, t in enumerate(texts[:10])]
    part0.append({"doc_id": "empty0", "text": "  ... !! "})
    part0.append({"doc_id": "short0", "text": "Hello world"})
    part1 = [{"doc_id": f"b{i}", "text": t} for i, t in enumerate(texts[10:16])]
    part1 += [
        {"doc_id": "copy_a1", "text": texts[1].upper().replace(".", " .")},  # exact after normalization
        {"doc_id": "near_a2", "text": with_chrome(texts[2])},
        {"doc_id": "near_near_a2", "text": with_chrome(texts[2]) + " One more line."},
        {"doc_id": "short1", "text": "hello, WORLD"},
        {"doc_id": "empty1", "text": None},
    ]
    return [part0, part1]


@pytest.fixture(scope="module")
def deduped(texts, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dedup")
    source = filter_folder(tmp, planted_parts(texts))
    stats = run_stage(DEDUP, [str(source)], tmp / "dedup", RunConfig(), map_parts=serial)
    return source, tmp / "dedup", stats


def test_stage_keeps_earliest_of_each_cluster(deduped):
    _, out, stats = deduped
    kept = read_folder(out).column("doc_id").to_pylist()
    assert kept == [f"a{i}" for i in range(10)] + ["short0"] + [f"b{i}" for i in range(6)]
    assert stats.docs_in == 23 and stats.docs_out == 17
    assert stats.drops == {"exact_duplicate": 2, "near_duplicate": 2, "empty": 2}


def test_rejects_name_cluster_kept_doc_and_reason(deduped):
    _, out, _ = deduped
    rejects = read_folder(out, "rejects").to_pylist()
    got = {r["doc_id"]: (r["kept_doc_id"], r["reason"], r["cluster_id"]) for r in rejects}
    assert got == {
        "empty0": (None, "empty", -1),
        "copy_a1": ("a1", "exact", 1),
        "near_a2": ("a2", "near", 2),
        "near_near_a2": ("a2", "near", 2),
        "short1": ("short0", "exact", 11),
        "empty1": (None, "empty", -1),
    }


def test_columns_preserved_and_minhash_beside_data(deduped):
    source, out, stats = deduped
    assert pq.read_schema(out / "part-00000.parquet").names == pq.read_schema(source / "part-00000.parquet").names
    assert [p.name for p in stage_parts(out)] == ["part-00000.parquet", "part-00001.parquet"]
    minhash = pq.read_table(out / "minhash" / "part-00001.parquet")
    assert minhash.column_names == ["doc_id", "text_hash", "n_shingles", "signature", "shingles"]
    assert len(minhash.column("shingles")[0]) == minhash.column("n_shingles")[0].as_py()
    assert minhash.column("signature")[0].as_py().__len__() == 112 * 4
    assert minhash.column("signature")[10].as_py() is None  # the empty document has no signature
    assert not (out / ".dedup-scratch").exists()
    assert stats.extra["clusters"] == 3 and stats.extra["largest_cluster"] == 3
    assert stats.extra["pairs_merged"] == 2 and stats.extra["verify"] == "exact"
    assert stats.extra["short_docs"] == 2 and stats.extra["lsh_threshold"] == pytest.approx(0.7192, abs=1e-3)


@pytest.mark.parametrize("verify", ["signature", "none"])
def test_process_pool_and_other_verifications_give_same_clusters(deduped, tmp_path, verify):
    source, out, _ = deduped
    cfg = RunConfig().with_overrides(["workers=2" if verify == "none" else "workers=1", f"dedup.verify={verify}"])
    stats = run_stage(DEDUP, [str(source)], tmp_path / "dedup", cfg)
    assert read_folder(tmp_path / "dedup").equals(read_folder(out))
    assert read_folder(tmp_path / "dedup", "rejects").equals(read_folder(out, "rejects"))
    assert stats.extra["verify"] == verify


def test_verification_rejects_weak_band_collisions(texts, tmp_path):
    """A pair near the S-curve's knee can collide in a band; a high verify threshold refuses it."""
    base = texts[3]
    words = base.split()
    half = " ".join(words[: len(words) // 2]) + " " + texts[4]  # Jaccard far below 0.95
    source = filter_folder(
        tmp_path,
        [[{"doc_id": "x", "text": base}, {"doc_id": "y", "text": half}, {"doc_id": "z", "text": with_chrome(base)}]],
    )
    cfg = RunConfig().with_overrides(["dedup.verify_threshold=0.95", "dedup.bands=28", "dedup.rows=1"])
    for verify in ("exact", "signature"):
        stats = run_stage(
            DEDUP, [str(source)], tmp_path / verify, cfg.with_overrides([f"dedup.verify={verify}"]), map_parts=serial
        )
        assert read_folder(tmp_path / verify).column("doc_id").to_pylist() == ["x", "y"]
        assert stats.drops["near_duplicate"] == 1
    loose = run_stage(
        DEDUP, [str(source)], tmp_path / "loose", cfg.with_overrides(["dedup.verify=none"]), map_parts=serial
    )  # 28 bands of 1 row: any shared min-hash merges
    assert loose.docs_out == 1


def test_exact_only_and_near_only(deduped, tmp_path):
    source, _, _ = deduped
    exact = run_stage(
        DEDUP, [str(source)], tmp_path / "e", RunConfig().with_overrides(["dedup.near=false"]), map_parts=serial
    )
    assert exact.drops == {"exact_duplicate": 2, "near_duplicate": 0, "empty": 2}
    near = run_stage(
        DEDUP, [str(source)], tmp_path / "n", RunConfig().with_overrides(["dedup.exact=false"]), map_parts=serial
    )
    # identical normalized texts still collide in every band; their reason stays 'exact'
    assert near.drops == {"exact_duplicate": 2, "near_duplicate": 2, "empty": 2}


def test_bad_inputs_give_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="at least 2 bands"):
        DEDUP.plan([], RunConfig().with_overrides(["dedup.bands=1"]))
    with pytest.raises(InputError, match="does not exist"):
        DEDUP.plan([str(tmp_path / "nope")], RunConfig())
    source = filter_folder(tmp_path, [[]])
    stats = run_stage(DEDUP, [str(source)], tmp_path / "d", RunConfig(), map_parts=serial)
    assert stats.docs_in == 0 and stats.docs_out == 0
    redis_cfg = RunConfig().with_overrides(["dedup.backend=redis", "dedup.redis_port=1"])
    with pytest.raises(ConfigError, match="no Redis answers"):
        run_stage(DEDUP, [str(source)], tmp_path / "r", redis_cfg, map_parts=serial, force=True)
