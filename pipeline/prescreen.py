"""Language pre-screen: skip full extraction for pages that no kept language can pass.

Most pages of a crawl are extracted in full (trafilatura and our rules, ~25 ms a page) only for
the filter's language rule to drop them. The pre-screen reads the page's visible text outside
links straight from the parsed tree (menus are links), asks fastText lid.176 about it window by
window (~4 ms a page in all), and skips the page only when every sign says no kept language is
there:

- no declared language (<html lang>, Content-Language, <meta http-equiv=content-language>,
  og:locale) names a kept language;
- fastText is sure of itself somewhere on the page (a window with a top score >= LOST): where it
  is lost everywhere, the filter's lingua second opinion considers every language, so anything
  could pass (Yoruba and Somali pages were lost without this; tests/test_language.py);
- in every WINDOW-character window the kept languages, with their look-alikes (the filter's
  lingua may pick Bokmål where fastText said Danish), get less than `threshold` fastText
  probability. Windows, not the whole text: an English article inside a page of foreign
  menus is still one window of English, where fastText on the whole page says the foreign
  language.

Chosen on the shared sample WARCs and the language samples (docs/benchmarks-ingest.md): the
lowest kept-language probability of a page the filter keeps was 0.52 there, ten times the
threshold of 0.05. The page is then counted and written to extract's rejects as
`language.prescreen`, with the language fastText guessed and its score.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from lxml import etree

from pipeline.filters import language

WINDOW = 1000  # characters fastText judges at a time: an article paragraph or two
STRIDE = 500  # windows overlap by half, so a block of 1.5 windows fills one whole window
BATCH = 8  # windows per fastText call; a kept-language window ends the page's screening
MAX_CHARS = 15_000  # text read per page: bounds the cost (fastText reads each character twice)
HIDDEN = {"a", "script", "style", "noscript", "template", "svg", "head", "select", "option", "button", "form", "iframe"}
_DECLARED_XPATH = etree.XPath(
    "//meta[translate(@http-equiv, 'CONTENTLAGU', 'contentlagu')='content-language']/@content"
    " | //meta[@property='og:locale']/@content"
)


@dataclass(frozen=True)
class Verdict:
    """Why a page was skipped: the language fastText saw most and its mean window probability,
    the most any window gave the kept languages, and the text that was judged."""

    language: str
    score: float
    kept_score: float
    text: str


def visible_text(tree, max_chars: int = MAX_CHARS) -> str:
    """The page's text outside links, scripts, forms and the head, whitespace collapsed."""
    body = tree.find("body")
    root = body if body is not None else tree
    pieces, hidden_depth, length = [], 0, 0
    for event, element in etree.iterwalk(root, events=("start", "end")):
        hidden = not isinstance(element.tag, str) or element.tag in HIDDEN  # comments: not text
        if event == "start":
            if hidden:
                hidden_depth += 1
            elif not hidden_depth and element.text:
                pieces.append(element.text)
                length += len(element.text)
        else:
            if hidden:
                hidden_depth -= 1
            if not hidden_depth and element.tail and element is not root:
                pieces.append(element.tail)
                length += len(element.tail)
        if length > 2 * max_chars:  # collapsed whitespace still leaves more than max_chars
            break
    return " ".join(" ".join(pieces).split())[:max_chars]


def primary_subtag(tag: str) -> str:
    """'en-US' -> 'en', 'de_DE' -> 'de' (BCP 47 and POSIX locales)."""
    code = tag.strip().lower().replace("_", "-").split("-")[0]
    return language.ALIASES.get(code, code)


def declared_languages(tree, content_language: str | None) -> set[str]:
    tags = [tree.get("lang") or "", tree.get("{http://www.w3.org/XML/1998/namespace}lang") or ""]
    tags += (content_language or "").split(",")
    for value in _DECLARED_XPATH(tree):
        tags += str(value).split(",")
    return {primary_subtag(t) for t in tags if t.strip()}


def with_look_alikes(codes: set[str]) -> set[str]:
    wide = set(codes)
    for group in language.LOOK_ALIKES:
        if wide & group:
            wide |= group
    return wide


def screen(tree, content_language: str | None, kept: frozenset[str], threshold: float) -> Verdict | None:
    """A Verdict when no kept language can pass the language filter on this page, else None."""
    if not kept or declared_languages(tree, content_language) & kept:
        return None
    text = visible_text(tree)
    if not any(ch.isalpha() for ch in text):
        return None  # nothing to judge; the full path decides
    windows = [text[i:i + WINDOW] for i in range(0, max(len(text) - WINDOW, 0) + 1, STRIDE)]
    wanted = with_look_alikes(set(kept))
    # Labels past the top k have probability <= 1/(k+1) each; with k >= len(wanted)/threshold the
    # wanted ones among them cannot reach the threshold together, so the decision is exact.
    k = min(176, math.ceil(len(wanted) / threshold)) if threshold > 0 else -1
    kept_score, sure, totals = 0.0, False, {}
    for start in range(0, len(windows), BATCH):  # a page with a kept-language window stops early
        labels, probabilities = language.fasttext_model().predict(windows[start:start + BATCH], k=k)
        for window_labels, window_probs in zip(labels, probabilities):
            kept_here = 0.0
            for label, p in zip(window_labels, window_probs):
                code = language.ALIASES.get(label[9:], label[9:])
                totals[code] = totals.get(code, 0.0) + float(p)
                if code in wanted:
                    kept_here += float(p)
            kept_score = max(kept_score, kept_here)
            sure = sure or float(window_probs[0]) >= language.LOST
        if kept_score >= threshold:
            return None
    if not sure:
        return None
    guess = max(sorted(totals), key=totals.get)  # sorted: ties break the same way on every run
    return Verdict(guess, round(min(totals[guess] / len(windows), 1.0), 6), round(kept_score, 6), text)
