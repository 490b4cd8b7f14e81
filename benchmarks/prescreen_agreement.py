"""Does the language pre-screen lose pages the full path keeps? Counted on a set built to be hard.

The shared WARCs' pages (each as it is), and each again with foreign-language text around its
content: before and after the body's own text, CHROME characters of sentences in another
language (the language samples of ../shared/data, a different language per page and side,
chosen by hash), as a sidebar and a footer would put them, outside links. The full path
extracts the page (trafilatura + our rules) and asks the filter's language rule (fastText +
lingua) about the main text; the pre-screen sees the whole page. A page is lost when the full
path's language rule passes it and the pre-screen would have skipped it.

    python -m benchmarks.prescreen_agreement [WARC ...] [--copies 3] [--chrome 1500]

Prints one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import hashlib
import html as html_lib
import sys
from collections import defaultdict
from pathlib import Path

from benchmarks.harness import SENTENCES, add_warcs_argument, print_result
from pipeline.extract.config import ExtractConfig
from pipeline.extract.http_response import parse_http_response
from pipeline.extract.main_text import decode_html, extract_main_text, is_html
from pipeline.extract.normalize import normalize_text
from pipeline.extract.prescreen import screen
from pipeline.extract.warc import iter_warc_records
from pipeline.filter import language
from pipeline.filter.config import LanguageConfig

KEPT = {"en": frozenset({"en"}), "en_de": frozenset({"en", "de"})}


def html_pages(warcs: list[Path]):
    """(url, decoded html, Content-Language) of every HTML 200 response."""
    for warc in warcs:
        with open(warc, "rb") as fh:
            for record in iter_warc_records(fh, str(warc), {}, []):
                if record.rec_type != "response" or record.headers.get("warc-truncated"):
                    continue
                http = parse_http_response(record.read_block())
                if http is None or http.status != 200 or not http.body.strip():
                    continue
                if not is_html(
                    http.headers.get("content-type"), record.headers.get("warc-identified-payload-type"), http.body
                ):
                    continue
                yield (
                    record.headers.get("warc-target-uri", ""),
                    decode_html(http.body, http.headers.get("content-type"))[0],
                    http.headers.get("content-language"),
                )


def load_sentences(path: Path) -> dict[str, list[str]]:
    """The labelled sentences of ../shared/data (a `lang<TAB>sentence` file with a header line), by language."""
    sentences: dict[str, list[str]] = defaultdict(list)
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        lang, _, sentence = line.partition("\t")
        sentences[lang].append(sentence.strip())
    return sentences


def full_path_text(html: str) -> str:
    """What the full path hands the filter: trafilatura and our rules, then normalization."""
    cfg = ExtractConfig(language_prescreen=False)
    extracted = extract_main_text(html, None, cfg)
    return normalize_text(extracted.text, cfg) if extracted else ""


def foreign_text(sentences: dict[str, list[str]], avoid: set[str], seed: str, chars: int) -> tuple[str, str]:
    """About `chars` characters of sentences in one language not in `avoid`, chosen by `seed`."""
    langs = sorted(lang for lang in sentences if lang not in avoid and len(sentences[lang]) >= 50)
    pick = int(hashlib.sha1(seed.encode()).hexdigest(), 16)
    lang = langs[pick % len(langs)]
    out, i = [], pick
    while sum(len(s) + 1 for s in out) < chars:
        out.append(sentences[lang][i % len(sentences[lang])])
        i = i * 31 + 7
    return lang, " ".join(out)


def with_chrome(page: str, before: str, after: str) -> str:
    """The page with a sidebar before and a footer after the body's content (plain text, no links)."""
    lower = page.lower()
    start, end = lower.find("<body"), lower.rfind("</body")
    if start < 0 or end < 0 or end < start:
        return f"<div>{html_lib.escape(before)}</div>{page}<div>{html_lib.escape(after)}</div>"
    open_end = page.find(">", start) + 1
    return (
        page[:open_end]
        + f'<aside class="sidebar"><p>{html_lib.escape(before)}</p></aside>'
        + page[open_end:end]
        + f"<footer><p>{html_lib.escape(after)}</p></footer>"
        + page[end:]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_warcs_argument(parser)
    parser.add_argument("--copies", type=int, default=3, help="versions with foreign chrome per page")
    parser.add_argument("--chrome", type=int, default=1500, help="characters of foreign text on each side")
    args = parser.parse_args()
    sentences = load_sentences(SENTENCES)
    cases = []  # (name, html, content-language)
    for url, page, content_language in html_pages([w.resolve() for w in args.warcs]):
        cases.append(("original", page, content_language))
        for copy in range(args.copies):
            lang_a, before = foreign_text(sentences, {"en", "de"}, f"{url}#{copy}a", args.chrome)
            lang_b, after = foreign_text(sentences, {"en", "de"}, f"{url}#{copy}b", args.chrome)
            cases.append(("with_chrome", with_chrome(page, before, after), content_language))
    texts = [full_path_text(page) for _, page, _ in cases]
    full_langs = language.detect(texts, LanguageConfig())
    result = {
        "benchmark": "prescreen_agreement",
        "pages": len(cases),
        "copies": args.copies,
        "chrome_chars": args.chrome,
    }
    for name, kept in KEPT.items():
        counts = {"full_passes": 0, "prescreen_skips": 0, "lost": 0}
        by_kind = defaultdict(lambda: {"full_passes": 0, "lost": 0})
        for (kind, page, content_language), text, (label, score) in zip(cases, texts, full_langs):
            passes = bool(text) and language.check(label, score, LanguageConfig(languages=sorted(kept))) is None
            skipped = screen(page, content_language, kept, ExtractConfig().prescreen_threshold) is not None
            counts["full_passes"] += passes
            counts["prescreen_skips"] += skipped
            counts["lost"] += passes and skipped
            by_kind[kind]["full_passes"] += passes
            by_kind[kind]["lost"] += passes and skipped
        result[name] = {**counts, "by_kind": dict(by_kind)}
        print(name, result[name], file=sys.stderr)
    print_result(result)


if __name__ == "__main__":
    main()
