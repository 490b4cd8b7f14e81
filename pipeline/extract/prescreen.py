"""Language pre-screen: skip full extraction for pages that no kept language can pass.

Most pages of a crawl are extracted in full (trafilatura and our rules, ~25 ms a page) only for
the filter's language rule to drop them. The pre-screen reads the page's visible text outside
links straight from the HTML string with regular expressions (no parse: a page it skips
costs about 1 ms of regex and 1 ms of fastText), asks fastText lid.176 about it window by
window, and skips the page only when every sign says no kept language is there:

- no declared language (<html lang>, Content-Language, <meta http-equiv=content-language>,
  og:locale) names a kept language;
- fastText is sure of itself somewhere on the page (a window with a top score >= LOST): where it
  is lost everywhere, the filter's lingua second opinion considers every language, so anything
  could pass (Yoruba and Somali pages were lost without this; tests/test_language.py);
- in every WINDOW-character window the kept languages, with their look-alikes (the filter's
  lingua may pick Bokmål where fastText said Danish), get less than `threshold` fastText
  probability. Windows, not the whole text: an English article inside a page of foreign
  menus is still a run of English windows, where fastText on the whole page says the foreign
  language.

Window size, threshold and length were chosen on the shared sample WARCs and a built set of
1,356 pages (benchmarks/prescreen_agreement.py, docs/benchmarks-ingest.md): 600-character windows
side by side read each character once (half the fastText work of 1000-character windows
overlapping by half) and lost no page there; the lowest kept-language score of a page the
filter keeps was 0.40, four times the threshold of 0.1. The first 8,000 characters are read:
on the built set the first kept-language window of a kept page began at character 1,800 at the
latest, and pages with 4,000 and 7,000 characters of foreign text before their content lost
none either. A skipped page is counted and written to extract's rejects as
`language.prescreen`, with the language fastText guessed and its score.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from html import unescape

from pipeline.config import PipelineConfig
from pipeline.filter import language

WINDOW = 600  # characters fastText judges at a time: a paragraph or two; windows do not overlap
BATCH = 4  # windows per fastText call; a kept-language window ends the page's screening
MAX_CHARS = 8_000  # text read per page: bounds the cost (a kept page's first kept window began by 1,800)
PIECE_CHARS = 8_192  # page characters (hidden elements removed) turned into text at a time
# Elements whose text is not the page's prose: code, and (below) links, forms and the head.
# Raw-text elements end at their first closing tag whatever comes between (HTML's parsing rule:
# a script may hold "<script" in a string); one left open runs to the end, as in a browser.
RAW_TEXT = ("script", "style", "noscript", "iframe", "textarea", "title")
# The others end at their closing tag, and the search gives up at the next opening of the same
# element: real pages leave <a> and <option> unclosed, and a search to the end of the page for
# each of them took 33 s on 200 KB of such links (tests/test_language.py).
NESTING = ("a", "template", "svg", "head", "select", "option", "button", "form")
# Every pattern stops at the next "<" or runs to a match, so each scan is linear in the page
# ("unrolled loops": no backtracking within a match).
_COMMENT = r"<!--[^-]*(?:-(?!->)[^-]*)*(?:-->|\Z)"  # an unclosed comment runs to the end, as in a browser
_HIDDEN_RE = re.compile(
    rf"<({'|'.join(RAW_TEXT)})\b[^<>]*>[^<]*(?:<(?!/\1\s*>)[^<]*)*(?:</\1\s*>|\Z)"
    + rf"|<({'|'.join(NESTING)})\b[^<>]*>[^<]*(?:<(?!/?\2\b)[^<]*)*</\2\s*>"
    + "|"
    + _COMMENT,
    re.I,
)
_TAG_RE = re.compile(r"<[^<>]*>")
_BODY_RE = re.compile(r"<body\b", re.I)
_COMMENT_RE = re.compile(_COMMENT)  # IE's conditional comments hold <html lang> tags of their own
_HTML_TAG_RE = re.compile(r"<html\b[^<>]*>", re.I)
_META_RE = re.compile(r"<meta\b[^<>]*>", re.I)
_ATTR_RE = re.compile(r"""([a-zA-Z:_-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""")


@dataclass(frozen=True)
class Verdict:
    """Why a page was skipped: the language fastText saw most and its mean window probability,
    the most any window gave the kept languages, and the text that was judged."""

    language: str
    score: float
    kept_score: float
    text: str


def prescreen_languages(cfg: PipelineConfig) -> frozenset[str]:
    """What the pre-screen screens for: the filter's kept languages, when the language filter keeps
    only some and the pre-screen is on; empty (no pre-screen) otherwise."""
    lang = cfg.filter.language
    if not (cfg.extract.language_prescreen and lang.enabled and lang.languages):
        return frozenset()
    return frozenset(lang.languages)


def check_config(cfg: PipelineConfig) -> None:
    """While the pre-screen runs, the kept languages must be codes fastText can answer: with one
    it never gives, every page it is sure about would be skipped as foreign. The plan calls this,
    and so does `crawl2gpt run` before its first stage (pipeline/preflight.py)."""
    if prescreen_languages(cfg):
        language.check_languages(cfg.filter.language)


def find_body(html: str) -> int | None:
    """Where <body> opens, or None: the head ends and the text starts there. The screen searches
    once per page (a case-blind scan through the head, often tens of KB of inline script)."""
    body = _BODY_RE.search(html)
    return body.start() if body else None


def _tags_to_spaces(shown: str) -> str:
    """Tags -> spaces and entities decoded, in a piece of the page whose hidden elements are spaces."""
    text = _TAG_RE.sub(" ", shown)
    return unescape(text) if "&" in text else text


def visible_text(html: str, max_chars: int = MAX_CHARS, start: int | None = None) -> str:
    """The page's text outside links, scripts, forms and the head, entities decoded, whitespace
    collapsed. Regular expressions, not a parse: an unclosed <a> or <option> is read as text (the
    search for its end gives up at the next one), a little more than a parser would show, which
    only makes a skip less likely; an unclosed script or comment hides the rest, as in a browser.
    `start`: where the body opens (find_body), when the caller has it.

    Read in pieces, and only as far as the first max_chars characters of text need (the shared
    pages average 170 KB of HTML for 8,000 characters read): a piece ends before a "<", which no
    tag or entity match crosses, so its tags and entities come out as in the whole page; and
    collapsing a piece's whitespace alone never gives more characters than in the whole text."""
    if start is None:
        start = find_body(html) or 0
    pieces: list[str] = []  # tags -> spaces, entities decoded, up to a "<" of the page
    shown: list[str] = []  # the page after the last piece, hidden elements as spaces
    shown_chars = text_chars = 0
    pos = start
    for hidden in _HIDDEN_RE.finditer(html, start):
        shown += (html[pos : hidden.start()], " ")
        shown_chars += hidden.start() - pos + 1
        pos = hidden.end()
        if shown_chars < PIECE_CHARS:
            continue
        rest = "".join(shown)
        cut = rest.rfind("<")
        if cut > 0:
            pieces.append(_tags_to_spaces(rest[:cut]))
            text_chars += len(" ".join(pieces[-1].split()))
            shown, shown_chars = [rest[cut:]], len(rest) - cut
            if text_chars >= max_chars:
                break
    else:
        shown.append(html[pos:])
        pieces.append(_tags_to_spaces("".join(shown)))
    return " ".join("".join(pieces).split())[:max_chars]


def attributes(tag: str) -> dict[str, str]:
    """Attributes of one start tag, names lower-cased."""
    return {m.group(1).lower(): next(v for v in m.groups()[1:] if v is not None) for m in _ATTR_RE.finditer(tag)}


def primary_subtag(tag: str) -> str:
    """'en-US' -> 'en', 'de_DE' -> 'de' (BCP 47 and POSIX locales)."""
    code = tag.strip().lower().replace("_", "-").split("-")[0]
    return language.ALIASES.get(code, code)


def declared_languages(html: str, content_language: str | None) -> set[str]:
    """Languages the page names for itself: <html lang> / xml:lang, the HTTP Content-Language,
    <meta http-equiv=content-language> and og:locale in the head."""
    body = find_body(html)
    return head_languages(html[:body] if body is not None else html, content_language)


def head_languages(head: str, content_language: str | None) -> set[str]:
    """declared_languages of the page's head (all of it before <body>)."""
    head = _COMMENT_RE.sub(" ", head)
    tags = (content_language or "").split(",")
    root = _HTML_TAG_RE.search(head)
    if root:
        attrs = attributes(root.group(0))
        tags += [attrs.get("lang", ""), attrs.get("xml:lang", "")]
    for meta in _META_RE.finditer(head):
        lowered = meta.group(0).lower()
        if "content-language" not in lowered and "og:locale" not in lowered:
            continue  # declares no language: skip the attribute parse (heads hold dozens of meta tags)
        attrs = attributes(meta.group(0))
        if attrs.get("http-equiv", "").lower() == "content-language" or attrs.get("property") == "og:locale":
            tags += attrs.get("content", "").split(",")
    return {primary_subtag(t) for t in tags if t.strip()}


def with_look_alikes(codes: set[str]) -> set[str]:
    wide = set(codes)
    for group in language.LOOK_ALIKES:
        if wide & group:
            wide |= group
    return wide


def split_windows(text: str) -> list[str]:
    """WINDOW-character windows side by side; the last one ends at the text's end (overlapping
    its neighbour), so every window is full size and no character goes unread."""
    starts = list(range(0, max(len(text) - WINDOW, 0) + 1, WINDOW))
    if starts[-1] + WINDOW < len(text):
        starts.append(len(text) - WINDOW)
    return [text[i : i + WINDOW] for i in starts]


def screen(html: str, content_language: str | None, kept: frozenset[str], threshold: float) -> Verdict | None:
    """A Verdict when no kept language can pass the language filter on this page, else None."""
    if not kept:
        return None
    body = find_body(html)
    if head_languages(html[:body] if body is not None else html, content_language) & kept:
        return None
    text = visible_text(html, start=body or 0)
    if not any(ch.isalpha() for ch in text):
        return None  # nothing to judge; the full path decides
    windows = split_windows(text)
    wanted = with_look_alikes(set(kept))
    # Labels past the top k have probability <= 1/(k+1) each; with k >= len(wanted)/threshold the
    # wanted ones among them cannot reach the threshold together, so the decision is exact.
    k = min(176, math.ceil(len(wanted) / threshold)) if threshold > 0 else -1
    kept_score, sure, totals = 0.0, False, {}
    for start in range(0, len(windows), BATCH):  # a page with a kept-language window stops early
        labels, probabilities = language.fasttext_model().predict(windows[start : start + BATCH], k=k)
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
