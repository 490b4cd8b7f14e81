"""The filters' fast paths equal plain-Python readings of the rules, value for value, on real
pages and on crafted text: Gopher repetition (rolling hashes, numpy sorts, a scan over repeats
only), the word splitting every rule starts from (chunk by chunk between spaces), Gopher
quality's per-distinct-word counts, C4's single pass and PII's pre-check for IP addresses. The
optimisations may change the speed, never a signal or a decision."""

from __future__ import annotations

import random

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.gopher_reference import reference_dup_chars, reference_top_chars
from pipeline.extract.config import ExtractConfig
from pipeline.filter import c4, gopher_quality, gopher_repetition, pii
from pipeline.filter.config import C4Config, GopherQualityConfig, GopherRepetitionConfig, PIIConfig
from pipeline.filter.text import LINE_RE, PARAGRAPH_RE, WORD_RE, has_alpha, is_symbol, ratio, split_words

CFG = GopherRepetitionConfig()


def reference_signals(text: str) -> dict[str, float]:
    n_chars = len(text) or 1
    paragraphs, lines = PARAGRAPH_RE.split(text.strip()), LINE_RE.split(text)
    sig = {}
    for name, items in (("para", paragraphs), ("line", lines)):
        dups = [x for i, x in enumerate(items) if x in items[:i]]
        sig[f"rep_dup_{name}_frac"] = len(dups) / len(items)
        sig[f"rep_dup_{name}_char_frac"] = sum(map(len, dups)) / n_chars
    words = list(split_words(text))
    for n, _ in CFG.top_n_grams:
        sig[f"rep_top_{n}gram_char_frac"] = reference_top_chars(words, n) / n_chars if len(words) >= n else 0.0
    for n, _ in CFG.dup_n_grams:
        sig[f"rep_dup_{n}gram_char_frac"] = reference_dup_chars(words, n) / n_chars if len(words) >= n else 0.0
    return sig


def crafted_texts(seed: int = 0) -> list[str]:
    """Periodic text (every period from 1 to 12 words), pasted-in copies of phrases, overlapping
    repeats whose first occurrence lies inside a skipped stretch, and repeated lines."""
    rnd = random.Random(seed)
    base = "the quick brown fox jumps over a lazy dog while seven small birds sing in the old oak tree".split()
    texts = [" ".join((base[:period] * 40)[: rnd.randint(20, 200)]) for period in range(1, 13)]
    for _ in range(60):
        words = rnd.sample(base, len(base)) * rnd.randint(1, 3)
        for _ in range(rnd.randint(1, 6)):
            start, length, at = rnd.randrange(len(words)), rnd.randint(1, 14), rnd.randrange(len(words) + 1)
            words[at:at] = words[start : start + length] * rnd.randint(1, 3)
        texts.append(" ".join(words))
    texts.append("a a a a a a b a a a a a a a b " * 7)
    texts.append("Home | News | Sport\n" * 12 + "One line of real text follows the menu.\n\n" * 3)
    texts += ["", "word", "two words", " \n\n "]
    return texts


@pytest.fixture(scope="module")
def sample_pages(sample_warc, tmp_path_factory) -> list[str]:
    """The bundled sample WARC's pages as our extract stage writes them."""
    from pipeline.extract.stage import extract_file

    part = tmp_path_factory.mktemp("pages") / "part.parquet"
    extract_file(str(sample_warc), part, ExtractConfig())
    return [t for t in pq.read_table(part, columns=["text"]).column("text").to_pylist() if t]


def test_signals_equal_the_reference_on_sample_pages(sample_pages):
    assert len(sample_pages) >= 20
    differ = [
        i for i, text in enumerate(sample_pages) if gopher_repetition.signals(text, CFG) != reference_signals(text)
    ]
    assert differ == []
    # the pages exercise the scan: some repeat 5-grams, some do not
    dup5 = [gopher_repetition.signals(t, CFG)["rep_dup_5gram_char_frac"] for t in sample_pages]
    assert any(v > 0 for v in dup5) and any(v == 0 for v in dup5)


def test_signals_equal_the_reference_on_crafted_repetitive_text():
    texts = crafted_texts()
    for text in texts:
        assert gopher_repetition.signals(text, CFG) == reference_signals(text), text[:80]
    assert sum(gopher_repetition.signals(t, CFG)["rep_dup_10gram_char_frac"] > 0 for t in texts) > 30


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["a", "bb", "ccc", "d"]), min_size=0, max_size=300), st.integers(1, 12))
def test_ngram_rules_equal_their_plain_readings(words, n):
    """Few distinct words: long runs of repeats, where skips often cover a first occurrence.
    The repeats over all positions and those narrowed by every shorter n-gram's repeats agree,
    and both n-gram rules computed from them equal their plain readings."""
    if len(words) < n:
        return
    ids = {w: i for i, w in enumerate(dict.fromkeys(words))}
    hashes = gopher_repetition.ngram_hashes(np.array([ids[w] for w in words], dtype=np.uint64), n)
    gram_chars = np.array([sum(map(len, words[i : i + n])) for i in range(len(words) - n + 1)])
    candidates = None
    for k in range(1, n):
        candidates = np.union1d(*gopher_repetition.repeated_ngrams(hashes[k], candidates))
    narrowed = gopher_repetition.repeated_ngrams(hashes[n], candidates)
    plain = gopher_repetition.repeated_ngrams(hashes[n])
    assert all(np.array_equal(x, y) for x, y in zip(narrowed, plain))
    assert gopher_repetition.duplicated_ngram_chars(*narrowed, gram_chars, n) == reference_dup_chars(words, n)
    assert gopher_repetition.top_ngram_chars(*narrowed, gram_chars + n - 1) == reference_top_chars(words, n)


def test_repeated_ngrams():
    hashes = np.array([7, 3, 7, 9, 3, 7], dtype=np.uint64)
    repeats, firsts = gopher_repetition.repeated_ngrams(hashes)
    assert (repeats.tolist(), firsts.tolist()) == ([2, 4, 5], [0, 1, 0])
    repeats, firsts = gopher_repetition.repeated_ngrams(hashes, np.array([1, 3, 4]))
    assert (repeats.tolist(), firsts.tolist()) == ([4], [1])


# --------------------------------------------------------------------------- word splitting

# Characters where the tokenizer's rules meet: spaces of several kinds (\x1c and \x85 are spaces
# to both re and str.split), joiners, URL and e-mail parts, digits, punctuation, "_", emoji,
# a combining mark, CJK.
ALPHABET = list("ab Z9 0:,.'’/_-+@#()[]\"<>!?…") + [
    "\n",
    "\t",
    "\xa0",
    "\u3000",
    "\x1c",
    "\x85",
    "\x00",
    "😀",
    "\u0301",
    "世",
    "é",
    "http://",
    "www.",
    "https://x.org/a?b=1",
    "word",
    "42",
    "www",
    "http",
    " ",
    " ",
]
# Chunks next to the shortcuts: a word then "_", a word then a mark, a URL or e-mail cut short.
EDGES = "snake_ www. http: https://x.org. mail@ a@b.co, (word dogs' end... 10:21, 3.5. x\x00 é\u0301. 世界。"


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(ALPHABET), max_size=60).map("".join))
def test_split_words_equals_the_regex_over_the_whole_text(text):
    assert split_words(text) == tuple(WORD_RE.findall(text))


def test_split_words_equals_the_regex_on_sample_pages(sample_pages):
    assert all(split_words(text) == tuple(WORD_RE.findall(text)) for text in sample_pages + [EDGES])


# --------------------------------------------------------------------------- Gopher quality, C4


def reference_quality_counts(text: str) -> dict[str, float]:
    """The word-level Gopher quality signals as one pass over every word."""
    words = split_words(text)
    lengths = [len(w) for w in words if not is_symbol(w)]
    stop = GopherQualityConfig().stop_words
    return {
        "gopher_word_count": float(len(lengths)),
        "gopher_mean_word_length": sum(lengths) / len(lengths) if lengths else 0.0,
        "gopher_alpha_words_ratio": ratio(sum(map(has_alpha, words)), len(words)),
        "gopher_stop_words": float(len(set(stop) & set(words))),
    }


def test_gopher_quality_word_counts_equal_the_reference(sample_pages):
    for text in sample_pages + crafted_texts() + ["... # ! 3.5 don't", "x" * 2000]:
        sig = gopher_quality.signals(text, GopherQualityConfig(), "en")
        assert {k: sig[k] for k in reference_quality_counts(text)} == reference_quality_counts(text)


def test_c4_one_pass_equals_signals_and_clean_text(sample_pages):
    cfg = C4Config()
    long_word = "A line with one " + "w" * 1001 + " word in it, too long for C4."
    cited = "Rivers flood in spring.[1] Towns build walls.[citation needed] They hold.[edit]"
    for text in sample_pages + [long_word + "\n" + cited * 3, cited + "\n" + "x " * 600 + "end."]:
        assert c4.signals_and_clean_text(text, cfg) == (c4.signals(text, cfg), c4.clean_text(text, cfg))
    assert c4.signals(long_word, cfg)["c4_kept_lines"] == 0
    assert c4.clean_text("x " * 600 + "end.", cfg).endswith("x end.")  # a long line of short words stays
    assert c4.clean_text(cited, cfg) == "Rivers flood in spring. Towns build walls. They hold."


# --------------------------------------------------------------------------- PII


def reference_mask(text: str) -> tuple[str, int, int]:
    """E-mails, then every IPV4_RE match that parses as a public address (no pre-check)."""
    text, emails = pii.EMAIL_RE.subn("email@example.com", text)
    found = [m for m in pii.IPV4_RE.findall(text) if pii.is_public_ip(m)]
    return (
        pii.IPV4_RE.sub(lambda m: "0.0.0.0" if pii.is_public_ip(m.group(0)) else m.group(0), text),
        emails,
        len(found),
    )


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.sampled_from(list("0123456789.. ..a") + ["255", "8.8.8.8", "192.168.1.1", "x@y.org"]), max_size=40).map(
        "".join
    )
)
def test_ip_masking_equals_the_unconditional_scan(text):
    assert pii.mask(text, PIIConfig()) == reference_mask(text)


def test_ip_masking_equals_the_unconditional_scan_on_sample_pages(sample_pages):
    pages = sample_pages + ["Servers 8.8.8.8 and 1.1.1.1, not 10.0.0.1 nor 1.2.3.4.5; version 3.10.4.1 is public."]
    assert [pii.mask(t, PIIConfig()) for t in pages] == [reference_mask(t) for t in pages]
    assert pii.mask(pages[-1], PIIConfig())[2] == 3  # 8.8.8.8, 1.1.1.1, 3.10.4.1
