"""C4 rules, Raffel et al. 2020, section 2.2, with the extra line rules of its reference code
(tensorflow_datasets c4_utils: long words, cookie/policy lines), as datatrove's C4QualityFilter.

Line rules remove lines; page rules drop the page. `clean_text` returns the kept lines (what C4
keeps of a page); `signals` measures the page: how many lines survive, how many sentences they
hold, and the page-level hits.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.filter.config import C4Config
from pipeline.filter.text import count_sentences

NAME = "c4"
CITATION_RE = re.compile(r"\[\d*]|\[edit]|\[citation needed]")  # Wikipedia markers, C4 code
END_PUNCTUATION = (".", "?", "!", '"', "'")  # C4: "terminal punctuation mark (! . " ?)"
POLICY_SUBSTRINGS = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")


@lru_cache(maxsize=4)
def badwords_re(path: str) -> re.Pattern:
    try:
        words = [w.strip().lower() for w in open(Path(path).expanduser(), encoding="utf-8") if w.strip()]
    except FileNotFoundError:
        raise ConfigError(f"filter.c4.badwords_file {path!r} does not exist; point it at a word list") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"filter.c4.badwords_file {path!r} cannot be read ({err}); point it at a UTF-8 word list, one word per line"
        ) from None
    # flanked by non-word characters, as C4's reference code does for space-separated languages
    return re.compile(r"(?:\W|^)(?:{})(?:\W|$)".format("|".join(map(re.escape, words))))


def _scan(text: str, cfg: C4Config) -> tuple[list[str], int, int, int]:
    """(kept lines, lines in, sentences in kept lines, page-level hit: 0 none, 1 lorem, 2 curly)."""
    kept, sentences, lines = [], 0, text.splitlines()
    for line in lines:
        line = line.strip()
        words = line.split()
        # a word longer than the limit needs a line longer than it: most lines skip the word loop
        too_long = cfg.max_word_length != -1 and len(line) > cfg.max_word_length
        if too_long and any(len(w) > cfg.max_word_length for w in words):
            continue
        if cfg.remove_citations and "[" in line:  # every marker starts with "["
            line = CITATION_RE.sub("", line)
        if cfg.filter_no_terminal_punct and (not line.endswith(END_PUNCTUATION) or line.endswith("...")):
            continue
        if len(words) < cfg.min_words_per_line:
            continue
        lower = line.lower()
        if cfg.filter_lorem_ipsum and "lorem ipsum" in lower:
            return kept, len(lines), sentences, 1
        if cfg.filter_javascript and "javascript" in lower:
            continue
        if cfg.filter_curly_bracket and "{" in line:
            return kept, len(lines), sentences, 2
        if cfg.filter_policy and any(p in lower for p in POLICY_SUBSTRINGS):
            continue
        sentences += count_sentences(line)
        kept.append(line)
    return kept, len(lines), sentences, 0


def clean_text(text: str, cfg: C4Config) -> str:
    """The page as C4 keeps it: only the lines that pass the line rules."""
    return _joined(_scan(text, cfg)[0])


def _joined(kept_lines: list[str]) -> str:
    return "\n".join(kept_lines).strip()


def signals(text: str, cfg: C4Config) -> dict[str, float]:
    return _signals(_scan(text, cfg), text, cfg)


def signals_and_clean_text(text: str, cfg: C4Config) -> tuple[dict[str, float], str]:
    """signals() and clean_text() from one pass over the lines (the filter stage needs both)."""
    scan = _scan(text, cfg)
    return _signals(scan, text, cfg), _joined(scan[0])


def _signals(scan: tuple[list[str], int, int, int], text: str, cfg: C4Config) -> dict[str, float]:
    kept, n_lines, sentences, page_hit = scan
    sig = {
        "c4_lines": float(n_lines),
        "c4_kept_lines": float(len(kept)),
        "c4_sentences": float(sentences),
        "c4_lorem_ipsum": float(page_hit == 1),
        "c4_curly_bracket": float(page_hit == 2),
        "c4_badwords": 0.0,
    }
    if cfg.badwords:
        if not cfg.badwords_file:
            raise ConfigError("filter.c4.badwords is on but filter.c4.badwords_file is not set; give a word list path")
        sig["c4_badwords"] = float(badwords_re(cfg.badwords_file).search(text.lower()) is not None)
    return sig


def check(sig: dict[str, float], cfg: C4Config) -> str | None:
    if sig["c4_lorem_ipsum"]:
        return "lorem_ipsum"
    if sig["c4_curly_bracket"]:
        return "curly_bracket"
    if sig["c4_sentences"] < cfg.min_num_sentences:
        return "min_num_sentences"
    if sig["c4_badwords"]:
        return "badwords"
    return None
