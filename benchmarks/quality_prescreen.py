"""The quality pre-screen's margin, chosen by site-grouped CV, and what it skips and loses per set.

For every HTML page: the full path's text (trafilatura + our rules, pre-screens off) and the
filter's verdict on it (every rule; kept languages: all, and the default English), and the cheap
text's counts (pipeline/extract/quality_prescreen.py: resiliparse's visible text, Gopher's word
count, C4's sentence count). A page's ratio is min(cheap words / Gopher's floor, cheap C4
sentences / C4's floor); the screen skips it when the ratio is below the margin.

Choosing the margin (shared WARCs, the 5 site folds of benchmarks/extraction_scoring.py): for each
fold, the margin is the largest multiple of 0.05 at most half the lowest ratio among the pages the
full path keeps in the other four folds (all languages kept: the most pages); the fold's own pages
then count what it skips and loses. The default is the smallest of the five. A page is lost when
the full path keeps it and the screen skips it. The same is counted at the default margin on
every set: the shared WARCs, the built set of benchmarks/prescreen_agreement.py (each page with
foreign-language text around its content), and with --volume N issue 13's crawl-volume corpus of
N HTML responses (benchmarks/crawl_volume.py's builder). `main_content` repeats the count with
resiliparse's main-content text as the cheap text (what did not win: it misses whole articles).

    python -m benchmarks.quality_prescreen [--volume 5000]

Prints one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import math

from benchmarks.crawl_volume import WORK, build_warc, source_pages
from benchmarks.extraction_scoring import FOLDS, fold_of
from benchmarks.harness import SAMPLE_WARCS, SENTENCES, print_result, timed
from benchmarks.prescreen_agreement import foreign_text, full_path_text, html_pages, load_sentences, with_chrome
from pipeline.extract.config import ExtractConfig
from pipeline.extract.quality_prescreen import cheap_text, line_rules_only, sentence_count, word_count
from pipeline.extract.resiliparse_text import main_content_text, parse
from pipeline.filter import language
from pipeline.filter.config import FilterConfig
from pipeline.filter.stage import evaluate

STEP = 0.05
SAFETY = 2.0  # the lowest kept page's ratio is at least SAFETY x the margin
KEPT = {"all": [], "en": ["en"]}


def filter_configs() -> dict[str, FilterConfig]:
    configs = {}
    for name, languages in KEPT.items():
        cfg = FilterConfig()
        cfg.language.languages = languages
        configs[name] = cfg
    return configs


def ratio(text: str, cfg: FilterConfig) -> float:
    words = word_count(text) / cfg.gopher_quality.min_doc_words
    sentences = sentence_count(text, line_rules_only(cfg.c4)) / cfg.c4.min_num_sentences
    return min(words, sentences)


def measure(pages: list[tuple[str, str]]) -> list[dict]:
    """Per page: its url, whether the full path keeps it (per kept-language setting), and its ratios."""
    configs = filter_configs()
    texts = [full_path_text(html) for _, html in pages]
    detected = language.detect(texts, configs["all"].language)
    rows = []
    for (url, html), text, lang in zip(pages, texts, detected):
        rows.append(
            {
                "url": url,
                "kept": {name: not evaluate(text, lang, cfg).failing for name, cfg in configs.items()},
                "ratio": ratio(cheap_text(html), configs["all"]),
                "main_ratio": ratio(main_content_text(parse(html)), configs["all"]),
            }
        )
    return rows


def counts(rows: list[dict], margin: float, key: str = "ratio") -> dict:
    skipped = [r for r in rows if r[key] < margin]
    return {
        "pages": len(rows),
        "skipped": len(skipped),
        **{f"kept_{n}": sum(r["kept"][n] for r in rows) for n in KEPT},
        **{f"lost_{n}": sum(r["kept"][n] for r in skipped) for n in KEPT},
    }


def margin_from(rows: list[dict], key: str = "ratio") -> float:
    lowest = min((r[key] for r in rows if r["kept"]["all"]), default=0.0)
    return math.floor(lowest / SAFETY / STEP + 1e-9) * STEP


def cross_validate(rows: list[dict], key: str) -> dict:
    folds = []
    for k in range(FOLDS):
        margin = margin_from([r for r in rows if fold_of(r["url"]) != k], key)
        held_out = [r for r in rows if fold_of(r["url"]) == k]
        folds.append({"margin": round(margin, 2), **counts(held_out, margin, key)})
    total = {n: sum(f[n] for f in folds) for n in folds[0] if n != "margin"}
    return {
        "folds": folds,
        "held_out": total,
        "margin": min(f["margin"] for f in folds),
        "lowest_kept_ratio": round(min(r[key] for r in rows if r["kept"]["all"]), 3),
    }


def built_pages(pages: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Each page once more with 1,500 characters of foreign-language text before and after its content."""
    sentences = load_sentences(SENTENCES)
    built = []
    for url, html in pages:
        before = foreign_text(sentences, set(), url + "#before", 1500)[1]
        after = foreign_text(sentences, set(), url + "#after", 1500)[1]
        built.append((url, with_chrome(html, before, after)))
    return built


def volume_pages(responses: int) -> list[tuple[str, str]]:
    warc = WORK / f"CC-VOLUME-{responses}.warc.gz"
    WORK.mkdir(parents=True, exist_ok=True)
    build_warc(source_pages(SAMPLE_WARCS), responses, warc)
    return [(url, html) for url, html, _ in html_pages([warc])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--volume", type=int, default=0, help="also count on the crawl-volume corpus of N responses")
    args = parser.parse_args()
    shared = [(url, html) for url, html, _ in html_pages(SAMPLE_WARCS)]
    rows = measure(shared)
    cv = cross_validate(rows, "ratio")
    margin = cv["margin"]
    default = ExtractConfig().quality_prescreen_margin
    result = {
        "benchmark": "quality_prescreen",
        "safety": SAFETY,
        "cv": cv,
        "default_margin": default,
        "main_content_cv": cross_validate(rows, "main_ratio"),
        "sets": {"shared": counts(rows, default), "shared_main_content": counts(rows, default, "main_ratio")},
    }
    result["sets"]["built"] = counts(measure(built_pages(shared)), default)
    if args.volume:
        with timed() as clock:
            volume = measure(volume_pages(args.volume))
        result["sets"][f"crawl_volume_{args.volume}"] = {**counts(volume, default), "seconds": round(clock.cpu_s)}
    result["chosen_by_cv"] = margin
    print_result(result)


if __name__ == "__main__":
    main()
