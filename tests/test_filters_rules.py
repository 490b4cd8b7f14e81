"""Every rule family: hand-computed signal values, the first failing threshold, and property
tests that odd text (empty, whitespace, one enormous line, emoji only, mixed scripts) always
gets a decision and never an exception."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.gopher_reference import reference_dup_chars, reference_top_chars
from pipeline.filter import c4, fineweb, gopher_quality, gopher_repetition, pii
from pipeline.filter.config import (
    C4Config,
    FilterConfig,
    FineWebConfig,
    GopherQualityConfig,
    GopherRepetitionConfig,
    PIIConfig,
)
from pipeline.filter.text import count_sentences, split_words

ENGLISH = (
    "The committee met on Tuesday to discuss the budget for the coming year. Members agreed that the "
    "library should have longer opening hours, and that funding for the youth programme ought to be "
    "doubled. A final vote will take place next month, after residents have had time to comment on the "
    "proposal. Everyone who wishes to speak should register with the clerk before the meeting begins. "
    "The minutes of the session are available at the town hall and on the council website."
)
ODD_TEXTS = [
    "",
    " \n\t \r\n ",
    "x" * 200_000,
    "word " * 50_000,
    "😀" * 500,
    "😀 🎉 🚀\n" * 50,
    "Hello мир 世界 مرحبا नमस्ते שלום " * 20,
    "\n" * 1000,
    "{" * 10 + "lorem ipsum",
    "... ... …\n- - -\n# # #",
    "\x00\x01\x02 control \u200b zero-width",
]
RULES = [
    (gopher_quality, GopherQualityConfig()),
    (gopher_repetition, GopherRepetitionConfig()),
    (c4, C4Config()),
    (fineweb, FineWebConfig()),
]


# --------------------------------------------------------------------------- shared splitting


def test_words_keep_punctuation_as_tokens_and_numbers_whole():
    assert list(split_words("Don't stop... 3.5 well-known #tag.")) == [
        "Don't",
        "stop",
        "...",
        "3.5",
        "well",
        "-",
        "known",
        "#",
        "tag",
        ".",
    ]


def test_sentences_end_at_terminal_punctuation_followed_by_space():
    assert count_sentences("It costs 3.5 euros. Really? Yes! and a tail") == 4
    assert count_sentences("One sentence only.") == 1
    assert count_sentences("   ") == 0


# --------------------------------------------------------------------------- Gopher quality


def test_gopher_quality_passes_plain_english():
    sig = gopher_quality.signals(ENGLISH, GopherQualityConfig())
    assert sig["gopher_word_count"] == len([w for w in split_words(ENGLISH) if w.isalnum() or "'" in w])
    assert gopher_quality.check(sig, GopherQualityConfig()) is None


def test_gopher_quality_names_the_first_failing_threshold():
    cfg = GopherQualityConfig()
    assert gopher_quality.check(gopher_quality.signals("the and of", cfg), cfg) == "min_doc_words"
    hashes = ENGLISH + " #tag" * 40
    assert gopher_quality.check(gopher_quality.signals(hashes, cfg), cfg) == "max_hash_word_ratio"
    bullets = "\n".join(f"- item number {i} of the list and the rest" for i in range(30))
    assert gopher_quality.check(gopher_quality.signals(bullets, cfg), cfg) == "max_bullet_lines_ratio"
    numbers = " ".join(str(i) for i in range(200)) + " " + ENGLISH
    assert gopher_quality.check(gopher_quality.signals(numbers, cfg), cfg) == "min_alpha_words_ratio"
    no_stop = " ".join(["Committee members discussed budgets carefully"] * 20)
    assert gopher_quality.check(gopher_quality.signals(no_stop, cfg), cfg) == "min_stop_words"


def test_stop_word_rule_applies_per_language():
    cfg = GopherQualityConfig()
    german = " ".join(["Der Ausschuss hat heute über den Haushalt für das kommende Jahr beraten."] * 8)
    assert gopher_quality.signals(german, cfg, "en")["gopher_stop_words"] == 0
    assert gopher_quality.check(gopher_quality.signals(german, cfg, "en"), cfg) == "min_stop_words"
    skipped = gopher_quality.signals(german, cfg, "de")
    assert skipped["gopher_stop_words"] == -1 and gopher_quality.check(skipped, cfg) is None
    with_list = cfg.model_copy(update={"stop_words_by_language": {"de": ["der", "die", "das", "und"]}})
    assert gopher_quality.signals(german, with_list, "de")["gopher_stop_words"] == 1  # "das"; "Der" is capitalised


# --------------------------------------------------------------------------- Gopher repetition


def test_repetition_hand_computed_values():
    cfg = GopherRepetitionConfig()
    text = "aa bb aa bb aa bb"
    sig = gopher_repetition.signals(text, cfg)
    assert sig["rep_top_2gram_char_frac"] == pytest.approx(len("aa bb") * 3 / len(text))
    lines = "first line\nsecond line\nfirst line\nfirst line"
    sig = gopher_repetition.signals(lines, cfg)
    assert sig["rep_dup_line_frac"] == pytest.approx(2 / 4)
    assert sig["rep_dup_line_char_frac"] == pytest.approx(2 * len("first line") / len(lines))
    assert gopher_repetition.check(sig, cfg) == "dup_line_frac"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["a", "bb", "ccc", "the", "of", "x"]), min_size=0, max_size=80), st.integers(2, 10))
def test_vectorized_ngrams_equal_the_plain_definition(words, n):
    ids = {w: i for i, w in enumerate(dict.fromkeys(words))}
    arr = np.array([ids[w] for w in words], dtype=np.uint64)
    if len(words) < n:
        return
    ends = np.concatenate(([0], np.cumsum([len(w) for w in words])))
    hashes = gopher_repetition.ngram_hashes(arr, n)[n]
    repeats, firsts = gopher_repetition.repeated_ngrams(hashes)
    assert gopher_repetition.duplicated_ngram_chars(repeats, firsts, ends[n:] - ends[:-n], n) == reference_dup_chars(
        words, n
    )
    assert gopher_repetition.top_ngram_chars(repeats, firsts, ends[n:] - ends[:-n] + n - 1) == reference_top_chars(
        words, n
    )


# --------------------------------------------------------------------------- C4


def test_c4_line_rules_and_page_rules():
    cfg = C4Config()
    page = "\n".join(
        [
            "Menu",  # no terminal punctuation
            "Please enable JavaScript to view this page.",
            "This site uses cookies to improve your experience.",
            "Too short.",
            "The river rose two metres overnight. Residents were moved to safety. Roads stayed closed.",
            "Officials said the water would fall by Friday. Schools reopen next week.",
        ]
    )
    assert c4.clean_text(page, cfg).splitlines() == page.splitlines()[4:]
    sig = c4.signals(page, cfg)
    assert (sig["c4_lines"], sig["c4_kept_lines"], sig["c4_sentences"]) == (6, 2, 5)
    assert c4.check(sig, cfg) is None
    assert c4.check(c4.signals(page + "\nLorem ipsum dolor sit amet.", cfg), cfg) == "lorem_ipsum"
    assert c4.check(c4.signals(page + "\nfunction f() { return 1; } is code.", cfg), cfg) == "curly_bracket"
    assert c4.check(c4.signals(page.rsplit("\n", 1)[0], cfg), cfg) == "min_num_sentences"


def test_c4_badwords_list_from_file(tmp_path):
    words = tmp_path / "bad.txt"
    words.write_text("badword\n")
    cfg = C4Config(badwords=True, badwords_file=str(words))
    assert c4.signals("A page with a badword in it.", cfg)["c4_badwords"] == 1
    assert c4.signals("A page with badwords2 only.", cfg)["c4_badwords"] == 0


# --------------------------------------------------------------------------- FineWeb


def test_fineweb_ratios():
    cfg = FineWebConfig()
    text = "A line that ends well and is long enough.\nshort\nAnother proper line of text that is long!\nshort"
    sig = fineweb.signals(text, cfg)
    assert sig["fw_line_punct_ratio"] == pytest.approx(2 / 4)
    assert sig["fw_short_line_ratio"] == pytest.approx(2 / 4)
    assert sig["fw_char_dup_ratio"] == pytest.approx(len("short") / (len(text) - 3))
    assert fineweb.check(sig, cfg) == "char_dup_ratio"
    assert fineweb.check(fineweb.signals(" \n \n", cfg), cfg) == "empty"
    assert fineweb.check(fineweb.signals("no punctuation\nat all in here\n" * 3, cfg), cfg) == "line_punct_ratio"


# --------------------------------------------------------------------------- PII


def test_pii_masks_emails_and_public_ips_only():
    cfg = PIIConfig()
    text = "Write to jane.doe@example.org or ops@mail.example.co.uk; server 8.8.8.8, router 192.168.0.1, v1.2.3.4.5."
    masked, emails, ips = pii.mask(text, cfg)
    assert (emails, ips) == (2, 1)
    assert "jane.doe" not in masked and "8.8.8.8" not in masked
    assert "192.168.0.1" in masked and "1.2.3.4.5" in masked
    assert pii.mask(text, cfg.model_copy(update={"enabled": False})) == (text, 0, 0)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("text", ODD_TEXTS, ids=range(len(ODD_TEXTS)))
def test_odd_text_gets_a_decision(text):
    from pipeline.filter.stage import evaluate

    for rule, cfg in RULES:
        sig = rule.signals(text, cfg)
        assert all(isinstance(v, float) and not math.isnan(v) for v in sig.values())
        assert rule.check(sig, cfg) is None or isinstance(rule.check(sig, cfg), str)
    decision = evaluate(text, ("und", 0.0), FilterConfig())
    assert decision.failing, "odd text is not a good document"
    assert pii.mask(text, PIIConfig())[0] is not None


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=400))
def test_any_text_gets_a_decision(text):
    for rule, cfg in RULES:
        sig = rule.signals(text, cfg)
        assert set(sig) == set(rule.signals("", cfg))
        assert all(not math.isnan(v) for v in sig.values())
        reason = rule.check(sig, cfg)
        assert reason is None or isinstance(reason, str)
    masked, emails, ips = pii.mask(text, PIIConfig())
    # Masking is a fixed point (the replacements are not PII themselves), and text with nothing
    # masked comes back unchanged, character for character.
    assert pii.mask(masked, PIIConfig())[0] == masked
    if emails == ips == 0:
        assert masked == text


# Pieces of a generated document, each with what masking must turn it into.
WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzäöüéß", min_size=1, max_size=12).map(lambda w: (w, w))
OCTET = st.integers(0, 255).map(str)
PUBLIC_IPS = st.tuples(st.sampled_from([n for n in range(1, 100) if n != 10]), OCTET, OCTET, OCTET).map(
    lambda o: (".".join(map(str, o)), "0.0.0.0")
)  # 1-99 except 10 are globally routable
PRIVATE_IPS = st.one_of(
    st.tuples(OCTET, OCTET, OCTET).map(lambda o: "10." + ".".join(o)),
    st.tuples(OCTET, OCTET).map(lambda o: "192.168." + ".".join(o)),
    OCTET.map(lambda o: "127.0.0." + o),
).map(lambda ip: (ip, ip))
EMAILS = st.tuples(  # a local part starts with a letter: FineWeb's pattern anchors on a word boundary
    st.tuples(st.sampled_from("abxyz"), st.text(alphabet="abcxyz019_+-.", max_size=10))
    .map("".join)
    .filter(lambda local: ".." not in local and not local.endswith(".")),
    st.lists(st.text(alphabet="abcxyz019", min_size=1, max_size=8), min_size=1, max_size=3),
    st.sampled_from(["org", "com", "de", "co.uk"]),
).map(lambda p: (f"{p[0]}@{'.'.join(p[1])}.{p[2]}", "email@example.com"))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(WORDS, WORDS, PUBLIC_IPS, PRIVATE_IPS, EMAILS),
            st.sampled_from([" ", "\n", ", ", "; ", " (", ") "]),
        ),
        max_size=40,
    )
)
def test_masking_a_generated_document_gives_exactly_the_expected_text(pieces):
    text = "".join(original + sep for (original, _), sep in pieces)
    expected = "".join(masked + sep for (_, masked), sep in pieces)
    n_emails = sum(original != masked and "@" in original for (original, masked), _ in pieces)
    n_ips = sum(original != masked and "@" not in original for (original, masked), _ in pieces)
    assert pii.mask(text, PIIConfig()) == (expected, n_emails, n_ips)
