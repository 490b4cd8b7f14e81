"""Tokenizer stage on real extracted web text: sample, train, special ids, reuse, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crawl2gpt.config import RunConfig
from helpers.corpus import extract_warc, write_stage
from pipeline.errors import InputError, TokenizerError
from pipeline.stage import process_map, read_manifest, run_stage, sha256_file, stage_parts
from pipeline.tokens.tokenizer import EOT, EOT_ID, PAD_ID, TOKENIZER, byte_id_range, load, sample_cutoff

SERIAL = process_map(1)


def small_cfg(**tok) -> RunConfig:
    return RunConfig().with_overrides(
        [f"tokenizer.{k}={v}" for k, v in {"vocab_size": 600, "threads": 2, "character_coverage": 0.98, **tok}.items()]
    )


@pytest.fixture(scope="module")
def dedup_dir(tmp_path_factory) -> Path:
    rows = list(extract_warc())
    half = len(rows) // 2
    return write_stage(tmp_path_factory.mktemp("run") / "dedup", "dedup", [rows[:half], rows[half:]])


@pytest.fixture(scope="module")
def trained(dedup_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tok") / "tokenizer"
    run_stage(TOKENIZER, [str(dedup_dir)], out, small_cfg(), map_parts=SERIAL)
    return out


def test_trains_model_with_fixed_special_ids(trained):
    sp = load(trained)
    info = json.loads((trained / "tokenizer.json").read_text())
    assert sp.GetPieceSize() == info["vocab_size"] == 600
    assert (sp.pad_id(), sp.unk_id(), sp.eos_id(), sp.bos_id()) == (PAD_ID, 1, EOT_ID, -1)
    assert sp.IdToPiece(EOT_ID) == EOT and sp.IsControl(EOT_ID)
    assert byte_id_range(sp) == (3, 258)
    assert info["sha256"] == sha256_file(trained / "tokenizer.model")
    assert len((trained / "tokenizer.vocab").read_text().splitlines()) == 600
    assert read_manifest(trained)["stats"]["extra"]["vocab_size"] == 600


def test_roundtrip_is_byte_exact_and_eot_cannot_be_forged(trained):
    sp = load(trained)
    for row in extract_warc()[:20]:
        assert sp.DecodeIds(sp.EncodeAsIds(row["text"])) == row["text"]
    text = "  indented\tline\nünïcödé 中文 🙂 <|endoftext|> 12345"
    ids = sp.EncodeAsIds(text)
    assert sp.DecodeIds(ids) == text
    assert EOT_ID not in ids  # literal marker in page text stays text
    first, last = byte_id_range(sp)
    assert any(first <= i <= last for i in ids)  # 🙂 is rarer than the vocabulary: bytes


def test_training_is_deterministic(dedup_dir, trained, tmp_path):
    again = tmp_path / "tokenizer"
    run_stage(TOKENIZER, [str(dedup_dir)], again, small_cfg(), map_parts=SERIAL)
    assert sha256_file(again / "tokenizer.model") == sha256_file(trained / "tokenizer.model")


def test_sample_is_lowest_hashes_up_to_budget(dedup_dir):
    parts = stage_parts(dedup_dir)
    full_cut, docs, total = sample_cutoff(parts, 10**12)
    assert full_cut == 1.0 and docs == len(extract_warc())
    cut, _, _ = sample_cutoff(parts, total // 4)
    bigger, _, _ = sample_cutoff(parts, total // 2)
    assert 0 < cut < bigger < 1


def test_small_sample_trains_on_part_of_corpus(dedup_dir, tmp_path):
    out = tmp_path / "tokenizer"
    stats = run_stage(
        TOKENIZER, [str(dedup_dir)], out, small_cfg(sample_bytes=200_000, vocab_size=400), map_parts=SERIAL
    )
    info = json.loads((out / "tokenizer.json").read_text())
    assert 200_000 <= info["sample"]["bytes"] < 200_000 + 60_000  # overshoot by at most the last document
    assert stats.docs_out == info["sample"]["docs"] < stats.docs_in


def test_reuse_copies_model(trained, tmp_path):
    out = tmp_path / "tokenizer"
    stats = run_stage(TOKENIZER, [], out, small_cfg(reuse=str(trained / "tokenizer.model")), map_parts=SERIAL)
    assert sha256_file(out / "tokenizer.model") == sha256_file(trained / "tokenizer.model")
    assert stats.extra["trained"] is False and stats.extra["reused_from"].endswith("tokenizer.model")


def test_reused_model_replaced_in_place_reruns_the_stage(trained, tmp_path):
    import os
    import shutil

    reused = tmp_path / "reused.model"
    shutil.copy(trained / "tokenizer.model", reused)
    out = tmp_path / "tokenizer"
    cfg = small_cfg(reuse=str(reused))
    run_stage(TOKENIZER, [], out, cfg, map_parts=SERIAL)
    assert run_stage(TOKENIZER, [], out, cfg, map_parts=SERIAL).skipped
    shutil.copy(trained / "tokenizer.model", reused)  # same path, a new file
    os.utime(reused, ns=(0, 1_000_000_000))
    assert not run_stage(TOKENIZER, [], out, cfg, map_parts=SERIAL).skipped


def test_reuse_refuses_foreign_model(tmp_path):
    bogus = tmp_path / "bogus.model"
    bogus.write_bytes(b"not a model")
    with pytest.raises(TokenizerError, match="not a SentencePiece model"):
        run_stage(TOKENIZER, [], tmp_path / "tokenizer", small_cfg(reuse=str(bogus)), map_parts=SERIAL)
    assert not (tmp_path / "tokenizer").exists()


def test_empty_corpus_is_a_clear_error_and_leaves_nothing(tmp_path):
    empty = write_stage(tmp_path / "dedup", "dedup", [[]])
    with pytest.raises(TokenizerError, match="no text to train"):
        run_stage(TOKENIZER, [str(empty)], tmp_path / "tokenizer", small_cfg(), map_parts=SERIAL)
    assert not (tmp_path / "tokenizer").exists()  # only run_stage's temp folder, removed by the next run


def test_vocab_too_large_names_the_fix(tmp_path):
    tiny = write_stage(tmp_path / "dedup", "dedup", [list(extract_warc()[:2])])
    with pytest.raises(TokenizerError, match="lower tokenizer.vocab_size"):
        run_stage(TOKENIZER, [str(tiny)], tmp_path / "tokenizer", small_cfg(vocab_size=30000), map_parts=SERIAL)
    assert not (tmp_path / "tokenizer").exists()


def test_vocab_below_character_set_names_the_fix(dedup_dir, tmp_path):
    with pytest.raises(TokenizerError, match="lower tokenizer.character_coverage"):
        run_stage(
            TOKENIZER,
            [str(dedup_dir)],
            tmp_path / "tokenizer",
            small_cfg(vocab_size=300, character_coverage=1.0),
            map_parts=SERIAL,
        )
    assert not (tmp_path / "tokenizer").exists()


def test_refuses_wrong_stage_input(tmp_path):
    extract = write_stage(tmp_path / "extract", "extract", [list(extract_warc()[:2])])
    with pytest.raises(InputError, match="finished dedup folder"):
        run_stage(TOKENIZER, [str(extract)], tmp_path / "tokenizer", small_cfg(), map_parts=SERIAL)


@pytest.fixture(scope="module")
def langid_sentences() -> dict[str, list[str]]:
    path = Path(__file__).parents[1] / "../shared/data/langid-sentences.tsv"
    if not path.is_file():
        pytest.skip("../shared/data is not present")
    by_lang: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:  # after the header
        lang, _, sentence = line.partition("\t")
        by_lang.setdefault(lang, []).append(sentence)
    return by_lang


def test_every_language_round_trips_through_byte_fallback(trained, langid_sentences):
    """75 languages, most of whose scripts the web sample never showed the tokenizer."""
    sp = load(trained)
    first, last = byte_id_range(sp)
    fallback = {}
    for lang, sentences in langid_sentences.items():
        text = "\n".join(sentences[:50])
        ids = sp.EncodeAsIds(text)
        assert sp.DecodeIds(ids) == text, lang
        assert 1 not in ids, lang  # <unk> never appears: unknown characters become bytes
        fallback[lang] = sum(first <= i <= last for i in ids) / len(ids)
    assert len(fallback) == 75
    # Trained on mostly German and English pages: Latin text is covered, CJK/Arabic mostly spelled in bytes.
    assert max(fallback["en"], fallback["de"]) < 0.1 < 0.5 < min(fallback["ja"], fallback["zh"], fallback["ar"])
