"""Extracted text -> clean text: mojibake repair, NFC, control characters, whitespace, calls to action.

Never shortens content lines: only whitespace, invisible characters and whole lines that ask
the reader to do something other than read (subscribe to a newsletter, follow us on ..., accept
cookies; C4's line rules, Raffel et al. 2020 section 2.2, drop cookie and terms lines for the same
reason) are removed, and only when they are at most MAX_PROMPT_WORDS long, so a real sentence
that mentions a newsletter survives. This rule won in 5 of 5 site-grouped folds
(benchmarks/extraction_quality.py); the phrase lists for navigation labels, teasers, captions and
date stamps that used to sit here each won in at most 3, were fitted to the 300 sample pages, and
were removed (docs/benchmarks-ingest.md); link-heavy lines go by pipeline/extract/link_density.py instead.
"""

from __future__ import annotations

import re
import unicodedata

from pipeline.extract.config import ExtractConfig

# C0/C1 controls except whitespace ones (tab, newline, separators 1C-1F become spaces), plus zero-width
# and bidi marks that carry no text.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\u200b-\u200d\u2060\ufeff\u202a-\u202e\u2066-\u2069]")
# Spaces other than " ", and line breaks other than "\n". Each substitution below runs only when the
# text holds something it would change (a substring search per character is ~20x cheaper than the
# regex's scan): a single " " is already what _SPACE_RE makes of it.
_ODD_SPACES = "\t\x1c\x1d\x1e\x1f\u00a0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u202f\u205f\u3000"
# Runs of two or more, and single odd spaces: a lone " " is already what the run becomes, and
# matching each one (most characters between words) cost 0.16 ms a page.
_SPACE_RE = re.compile(f"[ {_ODD_SPACES}]{{2,}}|[{_ODD_SPACES}]")
_LINEBREAKS = "\r\u2028\u2029\x85\x0b\x0c"
_LINEBREAK_RE = re.compile(r"\r\n?|[\u2028\u2029\x85\x0b\x0c]")
_BLANKS_RE = re.compile(r"\n{3,}")
_MOJIBAKE_HINT_RE = re.compile(
    "[\u00c2\u00c3\u00c5\u00e2\u00ef\u00d0\u00d1][\u0080-\u00bf\u2018-\u203a\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u02c6\u02dc\u20ac\u2122]"
)
MAX_PROMPT_WORDS = 30  # calls to subscribe / follow run longer than navigation labels

# Calls to action: subscribe / newsletter / follow us / affiliate notices / cookies.
_PROMPT_RE = re.compile(
    r"""\b(?:newsletter|subscribe|subscriber|subscription|abonnieren|abonnez|suscríbete|suscribirse|iscriviti|assine
    |affiliate|partnerlink|werbelink
    |follow\s+(?:us|the\s+\w+)\s+on|folgen\s+sie\s+uns|suivez[- ]nous|s[ií]guenos|seguici
    |we\s+use\s+cookies|uses\s+cookies|verwendet\s+cookies|nutzt\s+cookies|utilise\s+des\s+cookies
    |utiliza\s+cookies|usa\s+(?:i\s+)?cookie|accept(?:ez)?\s+(?:all\s+)?cookies
    |cookie[- ](?:settings|policy|einstellungen|richtlinie))""",
    re.I | re.X,
)
# Every match of _PROMPT_RE holds one of these once lower-cased; the characters beside them are the
# ones re.I matches to a letter of these words that str.lower() does not give (dotless i, long s, İ).
PROMPT_WORDS = ("newsletter", "subscri", "abonn", "suscr", "iscriviti", "assine", "affiliate", "partnerlink")
PROMPT_WORDS += ("werbelink", "follow", "folgen", "suivez", "guenos", "seguici", "cookie")
_FOLDS_BEYOND_LOWER = "\u0131\u017f\u0130"


def fix_encoding(text: str) -> str:
    """Repair mojibake (UTF-8 read as Latin-1/cp1252) with ftfy, only where it is likely.

    ftfy's full pass costs about as much as extraction; the hint regex finds the byte pairs
    that UTF-8-as-cp1252 mojibake produces, and clean text skips ftfy entirely.
    """
    if not _MOJIBAKE_HINT_RE.search(text):
        return text
    import ftfy

    return ftfy.fix_text(text, normalization="NFC")


def is_boilerplate_line(line: str) -> bool:
    """True for a line that is a call to action (subscribe, follow us, accept cookies) rather than content."""
    return len(line.split()) <= MAX_PROMPT_WORDS and bool(_PROMPT_RE.search(line))


def may_hold_prompt(text: str) -> bool:
    """False when no line of text can be a call to action: a substring search per word over the
    lower-cased text is ~20x cheaper than _PROMPT_RE's scan, and most texts hold none of the words."""
    if _holds_any(text, _FOLDS_BEYOND_LOWER):
        return True
    lowered = text.lower()
    return any(word in lowered for word in PROMPT_WORDS)


def _holds_any(text: str, chars: str) -> bool:
    return any(ch in text for ch in chars)


def normalize_text(text: str, cfg: ExtractConfig | None = None) -> str:
    """Clean extracted text; see the module docstring for what is and is not changed."""
    cfg = cfg or ExtractConfig()
    if cfg.fix_mojibake:
        text = fix_encoding(text)
    text = unicodedata.normalize("NFC", text)
    if _holds_any(text, _LINEBREAKS):
        text = _LINEBREAK_RE.sub("\n", text)
    text = _CONTROL_RE.sub("", text)
    if "  " in text or _holds_any(text, _ODD_SPACES):
        text = _SPACE_RE.sub(" ", text)  # no newline among them: the same as line by line
    prompts = cfg.remove_boilerplate_lines and may_hold_prompt(text)
    lines = []
    for line in text.split("\n"):
        line = line.strip()
        if line and prompts and may_hold_prompt(line) and is_boilerplate_line(line):
            continue
        lines.append(line)
    return _BLANKS_RE.sub("\n\n", "\n".join(lines)).strip()
