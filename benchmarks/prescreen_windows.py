"""How little kept-language text the language pre-screen still sees, and the pages fastText is lost on.

Two built sets from the labelled sentences of ../shared/data (no HTML corpus needed):

  content   a page of FOREIGN characters of sentences in one other language (chosen by hash),
            then an <article> with N characters of sentences in the kept language, then FOREIGN
            more; for N in --lengths. Per N: the pages whose article alone passes the filter's
            language rule, those whose full-path text (trafilatura + our rules, then the language
            rule) passes, the pages the pre-screen skips, and the lost ones (full path passes,
            pre-screen skips).
  lost      pseudo-pages of 1-8 sentences of one language, for every language the samples have,
            screened with that language kept alone: pages the filter's language rule passes and
            the pre-screen skips are losses (the guard against pages fastText is lost on).

    python -m benchmarks.prescreen_windows [SENTENCES_TSV] [--lengths 150 300 600 1000 1500]
        [--foreign 4000] [--pages 60]

Prints one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import hashlib
import html as html_lib
import sys
from collections import defaultdict
from pathlib import Path

from benchmarks.harness import SENTENCES, print_result
from benchmarks.prescreen_agreement import full_path_text, load_sentences
from pipeline.extract.config import ExtractConfig
from pipeline.extract.prescreen import MAX_CHARS, WINDOW, screen
from pipeline.filter import language
from pipeline.filter.config import LanguageConfig

KEPT = ("en", "de")
THRESHOLD = ExtractConfig().prescreen_threshold  # the default


def pick(seed: str, n: int) -> int:
    return int(hashlib.sha1(seed.encode()).hexdigest(), 16) % n


def text_of(sentences: list[str], chars: int, seed: str) -> str:
    """About `chars` characters of consecutive sentences from a start chosen by `seed`."""
    out, i = [], pick(seed, len(sentences))
    while sum(len(s) + 1 for s in out) < chars:
        out.append(sentences[i % len(sentences)])
        i += 1
    return " ".join(out)[: max(chars, 1)]


def page(before: str, article: str, after: str) -> str:
    esc = html_lib.escape
    return (
        f"<html><head><title>t</title></head><body><div class=side><p>{esc(before)}</p></div>"
        f"<article><p>{esc(article)}</p></article><footer><p>{esc(after)}</p></footer></body></html>"
    )


def passes(text: str, kept: str) -> bool:
    label, score = language.detect([text])[0]
    return bool(text) and language.check(label, score, LanguageConfig(languages=[kept])) is None


def content_set(sentences: dict[str, list[str]], lengths: list[int], foreign: int, pages: int) -> dict:
    others = sorted(lang for lang in sentences if lang not in KEPT)
    result = {}
    for kept in KEPT:
        per_length = {}
        for length in lengths:
            counts = {"pages": pages, "article_passes_alone": 0, "full_path_passes": 0, "prescreen_skips": 0, "lost": 0}
            for i in range(pages):
                seed = f"{kept}/{length}/{i}"
                other = others[pick(seed, len(others))]
                article = text_of(sentences[kept], length, seed)
                html = page(
                    text_of(sentences[other], foreign, seed + "a"),
                    article,
                    text_of(sentences[other], foreign, seed + "b"),
                )
                full = passes(article, kept), passes(full_path_text(html), kept)
                skipped = screen(html, None, frozenset({kept}), THRESHOLD) is not None
                counts["article_passes_alone"] += full[0]
                counts["full_path_passes"] += full[1]
                counts["prescreen_skips"] += skipped
                counts["lost"] += full[1] and skipped
            per_length[length] = counts
        result[kept] = per_length
        print(kept, per_length, file=sys.stderr)
    return result


def lost_set(sentences: dict[str, list[str]]) -> dict:
    known = language.fasttext_labels()
    pages = passes = lost = 0
    lost_by_language: dict[str, int] = defaultdict(int)
    for lang in sorted(sentences):
        if lang not in known:
            continue
        for n in range(1, 9):
            for i in range(3):
                text = " ".join(sentences[lang][(i * 8 + k) % len(sentences[lang])] for k in range(n))
                label, score = language.detect([text])[0]
                passed = language.check(label, score, LanguageConfig(languages=[lang])) is None
                skipped = screen(page("", text, ""), None, frozenset({lang}), THRESHOLD) is not None
                pages += 1
                passes += passed
                if passed and skipped:
                    lost += 1
                    lost_by_language[lang] += 1
    return {"pages": pages, "filter_passes": passes, "lost": lost, "lost_by_language": dict(lost_by_language)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sentences", nargs="?", type=Path, default=SENTENCES)
    parser.add_argument("--lengths", nargs="+", type=int, default=[150, 300, 600, 1000, 1500])
    parser.add_argument("--foreign", type=int, default=4000, help="characters of foreign text on each side")
    parser.add_argument("--pages", type=int, default=60, help="pages per kept language and length")
    args = parser.parse_args()
    if not args.sentences.is_file():
        sys.exit(f"missing {args.sentences}")
    sentences = load_sentences(args.sentences)
    result = {
        "benchmark": "prescreen_windows",
        "window": WINDOW,
        "max_chars": MAX_CHARS,
        "threshold": THRESHOLD,
        "foreign_chars": args.foreign,
        "content": content_set(sentences, args.lengths, args.foreign, args.pages),
        "lost_guard": lost_set(sentences),
    }
    print_result(result)


if __name__ == "__main__":
    main()
