"""Quality pre-screen: skip trafilatura for a page whose cheap text already fails the filter's floors.

Most of a curation pass is trafilatura (~22 ms a page); pages the filter then drops for being too
short pay it for nothing. Before trafilatura, resiliparse renders every visible line of the page
(noscript text included) in about a millisecond. That text holds more than trafilatura's main text
(menus, footers, teasers), so counts taken on it are upper bounds, and the filter's *floors* can
be applied to it safely with a margin: the page is skipped when its cheap text has fewer than
margin x Gopher's minimum words (`filter.gopher_quality.min_doc_words`) or fewer than margin x
C4's minimum sentences (`filter.c4.min_num_sentences`, counted on the lines C4's line rules keep);
a floor set above the published one (Gopher's 50 words, C4's 5 sentences) is screened at the
published one.
Ratio rules (symbol ratios, repetition, stop words, FineWeb's line rules) and C4's page-level
rules (a curly bracket, lorem ipsum, bad words: page furniture and scripts hold them where the
main text need not) are not screened: more text can move them either way.

The margin was chosen by site-grouped cross-validation on the shared pages
(`python -m benchmarks.quality_prescreen`, docs/benchmarks-ingest.md): the lowest ratio of cheap
count to floor among pages the full path keeps is twice the margin. A skipped page is a drop
`quality.prescreen` in extract's rejects, with its cheap word and sentence counts. Only the
trafilatura engine is screened: the other engines cost about what the screen does.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.config import PipelineConfig
from pipeline.extract.resiliparse_text import parse, whole_page_text
from pipeline.filter import c4
from pipeline.filter.config import C4Config, GopherQualityConfig
from pipeline.filter.text import is_symbol, split_words

RULE = "quality.prescreen"
PREFIX_CHARS = 2_000
PUBLISHED_WORDS = GopherQualityConfig.model_fields["min_doc_words"].default  # Gopher's 50
PUBLISHED_SENTENCES = C4Config.model_fields["min_num_sentences"].default  # C4's 5


@dataclass(frozen=True)
class Floors:
    """The filter floors the screen applies, each None when its rule is off; `c4`: C4's line rules."""

    min_words: int | None
    min_sentences: int | None
    c4: C4Config
    margin: float


@dataclass(frozen=True)
class QualityVerdict:
    """Why a page was skipped: its cheap text's counts, and that text."""

    words: int
    sentences: int
    text: str


def quality_floors(cfg: PipelineConfig) -> Floors | None:
    """The floors to screen with, or None when the screen is off (setting, engine, or no floor rule on)."""
    extract, filters = cfg.extract, cfg.filter
    if not extract.quality_prescreen or extract.engine != "trafilatura":
        return None
    # The margin was chosen at the published floors; a higher floor never makes the screen bolder (a
    # page's cheap text can miss an article held in a data attribute: 68 cheap words, 741 extracted).
    min_words = min(filters.gopher_quality.min_doc_words, PUBLISHED_WORDS) if filters.gopher_quality.enabled else None
    min_sentences = min(filters.c4.min_num_sentences, PUBLISHED_SENTENCES) if filters.c4.enabled else None
    if min_words is None and min_sentences is None:
        return None
    return Floors(min_words, min_sentences, line_rules_only(filters.c4), extract.quality_prescreen_margin)


def cheap_text(html: str) -> str:
    """Every visible line of the page, by resiliparse (noscript text too: pages that render their
    article from a script often repeat it there, and trafilatura reads it)."""
    return whole_page_text(parse(html), noscript=True)


def word_count(text: str) -> int:
    """Words as Gopher's rule counts them (tokens that are not punctuation or symbols)."""
    return sum(1 for word in split_words(text) if not is_symbol(word))


def line_rules_only(cfg: C4Config) -> C4Config:
    """C4's settings without its page-level rules: they stop counting sentences at a curly bracket
    (in a menu's script text, say) where the main text has none."""
    return cfg.model_copy(update={"filter_lorem_ipsum": False, "filter_curly_bracket": False, "badwords": False})


def sentence_count(text: str, line_rules: C4Config) -> int:
    """C4's sentence count over the lines its line rules keep (`line_rules`: line_rules_only's)."""
    return int(c4.signals(text, line_rules)["c4_sentences"])


def counts(text: str, floors: Floors) -> tuple[int, int]:
    """(words, sentences) of a cheap text; 0 for a floor whose rule is off."""
    words = word_count(text) if floors.min_words is not None else 0
    sentences = sentence_count(text, floors.c4) if floors.min_sentences is not None else 0
    return words, sentences


def _plain_words(text: str) -> int:
    """Space-separated chunks of letters or digits only: each is one of Gopher's words, so this
    never counts more than word_count, at a tenth of its cost."""
    return sum(1 for chunk in text.split() if chunk.isalnum())


def _enough_words(text: str, need: float) -> bool:
    return _plain_words(text[:PREFIX_CHARS]) >= need or word_count(text) >= need


def _enough_sentences(text: str, need: float, line_rules: C4Config) -> bool:
    # a prefix never holds more sentences than the whole text (a cut line only loses its end)
    if sentence_count(text[:PREFIX_CHARS], line_rules) >= need:
        return True
    return len(text) > PREFIX_CHARS and sentence_count(text, line_rules) >= need


def screen_quality(html: str, floors: Floors) -> QualityVerdict | None:
    """A verdict when the page's cheap text fails a floor by the margin; None to extract it. The
    opening characters decide most pages, the whole text the rest."""
    text = cheap_text(html)
    words_ok = floors.min_words is None or _enough_words(text, floors.margin * floors.min_words)
    if words_ok and (
        floors.min_sentences is None or _enough_sentences(text, floors.margin * floors.min_sentences, floors.c4)
    ):
        return None
    return QualityVerdict(*counts(text, floors), text)
