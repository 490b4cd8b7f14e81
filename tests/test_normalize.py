"""Normalization: NFC, mojibake, controls, whitespace, calls to action; content is never cut."""

from __future__ import annotations

import re
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.extract.config import ExtractConfig
from pipeline.extract.normalize import is_boilerplate_line, normalize_text


def test_nfc_controls_and_whitespace():
    text = "Cafe\u0301\u00a0au\tlait\u200b\x07\r\n\r\n\r\n\r\n  second   line  \u2028third"
    assert normalize_text(text) == "Café au lait\n\nsecond line\nthird"


def test_mojibake_is_repaired():
    assert normalize_text("SchÃ¶ne GrÃ¼ÃŸe aus MÃ¼nchen") == "Schöne Grüße aus München"
    clean = "Schöne Grüße aus München"
    assert normalize_text(clean) == clean
    assert normalize_text("SchÃ¶ne", ExtractConfig(fix_mojibake=False)) == "SchÃ¶ne"


def test_calls_to_action_go_content_stays():
    page = "\n".join(
        [
            "The council approved the new budget on Tuesday after a long debate.",
            "Follow us on Facebook, Twitter and Instagram",
            "Subscribe to our newsletter for the week's best stories.",
            "We use cookies to improve your experience.",
            "Many residents said the cookies at the bake sale were the best part of the day.",
            # navigation labels, credits and date stamps are no longer removed by phrase (they did not
            # win under cross-validation); link-heavy lines go by pipeline/extract/link_density.py
            "Foto: dpa / Max Mustermann",
            "Aktualisiert am 19.02.2020",
        ]
    )
    out = normalize_text(page).split("\n")
    assert out == [
        "The council approved the new budget on Tuesday after a long debate.",
        "Many residents said the cookies at the bake sale were the best part of the day.",
        "Foto: dpa / Max Mustermann",
        "Aktualisiert am 19.02.2020",
    ]
    assert normalize_text(page, ExtractConfig(remove_boilerplate_lines=False)).count("\n") == 6


def test_long_lines_are_never_boilerplate():
    long_line = "Subscribe " + "word " * 40
    assert not is_boilerplate_line(long_line.strip())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80), max_size=12))
def test_never_truncates_content_words(lines):
    cfg = ExtractConfig(remove_boilerplate_lines=False, fix_mojibake=False)
    text = "\n".join(lines)
    out = normalize_text(text, cfg)
    # every letter and digit of the input (after NFC) is still there, in order
    chars_in = [c for c in unicodedata.normalize("NFC", text) if c.isalnum()]
    assert [c for c in out if c.isalnum()] == chars_in
    assert normalize_text(out, cfg) == out  # idempotent


_WHITESPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2005\u200a\u2028\u2029\u202f\u205f\u3000"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(_WHITESPACE + "ab.\u200b\x07"), max_size=40))
def test_whitespace_passes_match_the_line_by_line_definition(text):
    """The space and line-break substitutions run on the whole text, and only when something would
    change: the same as substituting every line (the definition), for any mix of whitespace."""
    from pipeline.extract import normalize

    lines = normalize._LINEBREAK_RE.sub("\n", unicodedata.normalize("NFC", text))
    runs = re.compile(f"[ {normalize._ODD_SPACES}]+")  # every run of spaces becomes one " "
    lines = [runs.sub(" ", line).strip() for line in normalize._CONTROL_RE.sub("", lines).split("\n")]
    expected = normalize._BLANKS_RE.sub("\n\n", "\n".join(lines)).strip()
    assert normalize_text(text, ExtractConfig(remove_boilerplate_lines=False, fix_mojibake=False)) == expected


# Calls to action in the case forms re.IGNORECASE matches (dotless i, long s, İ, Kelvin sign) and
# their near misses, so the shortcut that skips _PROMPT_RE (normalize.may_hold_prompt) is tested
# against the regex itself.
_PROMPT_PIECES = [
    "Subscribe now",
    "SUBSCRİBER",
    "\u017fubscription",
    "newsletter",
    "Abonnieren Sie",
    "abonnez",
    "Suscríbete",
    "suscribirse",
    "\u0131scriviti",
    "Assine",
    "affiliate",
    "Partnerlink",
    "Werbelink",
    "Follow us on",
    "follow  the\tblog on",
    "Folgen Sie uns",
    "Suivez-nous",
    "Síguenos",
    "seguici",
    "We use cookies",
    "uses cookies",
    "verwendet Cookies",
    "nutzt cookies",
    "utilise des cookies",
    "utiliza cookies",
    "usa i cookie",
    "Accept all cookies",
    "acceptez cookies",
    "cookie settings",
    "Cookie-Richtlinie",
    "\u212aookie",
    "follow",
    "cookies",
    "sub",
    "word",
]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from([*_PROMPT_PIECES, " ", "\n", ". ", "x"]), max_size=30))
def test_calls_to_action_match_the_line_by_line_definition(pieces):
    """Lines are tested against _PROMPT_RE only where the text holds one of its words: the same lines
    go as when every line is tested (the definition)."""
    text = "".join(pieces)
    plain = ExtractConfig(remove_boilerplate_lines=False, fix_mojibake=False)
    lines = [line for line in normalize_text(text, plain).split("\n") if not (line and is_boilerplate_line(line))]
    expected = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    assert normalize_text(text, ExtractConfig(fix_mojibake=False)) == expected
