"""resiliparse's parse of a page: its main-content text, all its visible text, its title and date.

resiliparse is a C++ HTML5 parser with its own text renderer (the one DCLM's pipeline uses):
about 0.4 ms to parse and 1 ms to render a page on the shared WARCs, against trafilatura's
~22 ms. Its main-content guess keeps more than trafilatura's (recall 0.95, precision 0.75 on
the shared pages' snippets), so it serves three uses:
  - `extract.engine=resiliparse`: its main-content text as the page's text (fast, lower quality);
  - the `fast` engine's input (pipeline/extract/line_filter.py filters its lines);
  - the quality pre-screen's cheap text (pipeline/extract/quality_prescreen.py).
The title comes from the same tree (<title>, else og:title); the date from the HTML string, as
YYYY-MM-DD: the most specific of the usual meta fields, else JSON-LD's datePublished, else the
first <time datetime>.
"""

from __future__ import annotations

import re

from resiliparse.extract.html2text import extract_plain_text
from resiliparse.parse.html import HTMLTree

from pipeline.extract.nesting_limit import check_html

# Rendering settings shared by every use: paragraphs and list items on lines of their own, no
# image alt texts (trafilatura keeps none either), reader comments out of the main content.
TEXT_OPTIONS = {"preserve_formatting": True, "alt_texts": False}
MAIN_OPTIONS = {**TEXT_OPTIONS, "main_content": True, "comments": False}
# Meta fields that name a publication date, most specific first (htmldate's header list, shortened).
DATE_META = (
    "article:published_time",
    "datepublished",
    "og:published_time",
    "publication_date",
    "date",
    "dc.date",
    "dc.date.issued",
    "dcterms.date",
    "sailthru.date",
    "pubdate",
    "publishdate",
    "article.published",
    "parsely-pub-date",
    "citation_publication_date",
    "article:modified_time",
    "datemodified",
)
_DATE_RANK = {name: rank for rank, name in enumerate(DATE_META)}
_ISO_DATE_RE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
_JSONLD_DATE_RE = re.compile(r'"datePublished"\s*:\s*"([^"]{0,64})"')
_TIME_RE = re.compile(r"""<time\b[^<>]*\bdatetime\s*=\s*["']?([^"'\s<>]{0,64})""", re.I)
_BODY_RE = re.compile(r"<body\b", re.I)
_META_TAG_RE = re.compile(r"<meta\b[^<>]*>", re.I)
_ATTR_RE = re.compile(r"""([a-zA-Z:_-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""")


def parse(html: str) -> HTMLTree:
    return HTMLTree.parse(html)


def main_content_text(tree: HTMLTree) -> str:
    return extract_plain_text(tree, **MAIN_OPTIONS)


def whole_page_text(tree: HTMLTree, noscript: bool = False) -> str:
    """resiliparse's text of the whole page, boilerplate included (the cheap text). Not
    prescreen.visible_text, the language pre-screen's regex reading of the HTML string."""
    return extract_plain_text(tree, noscript=noscript, **TEXT_OPTIONS)


def title_of(tree: HTMLTree) -> str | None:
    title = (tree.title or "").strip()
    if not title and tree.head is not None:
        og = tree.head.query_selector('meta[property="og:title"]')
        title = (og.getattr("content") or "").strip() if og is not None else ""
    return title or None


def iso_date(value: str | None) -> str | None:
    """The first YYYY-MM-DD in value, when it is a plausible date."""
    match = _ISO_DATE_RE.search(value or "")
    if not match:
        return None
    year, month, day = (int(g) for g in match.groups())
    if not (1990 <= year <= 2100 and 1 <= month <= 12 and 1 <= day <= 31):
        return None
    return f"{year:04d}-{month:02d}-{day:02d}"


def date_of(html: str) -> str | None:
    """The page's publication date from its meta fields, JSON-LD or a <time datetime>, read from the
    HTML string by regex: resiliparse's attribute access cost 1.7 ms a page for the meta tags."""
    head = html[: m.start()] if (m := _BODY_RE.search(html)) else html
    best: tuple[int, str] | None = None
    for tag in _META_TAG_RE.findall(head):
        lowered = tag.lower()
        if "date" not in lowered and "published" not in lowered and "modified" not in lowered:
            continue
        attrs = {name.lower(): double or single or bare for name, double, single, bare in _ATTR_RE.findall(tag)}
        rank = _DATE_RANK.get((attrs.get("property") or attrs.get("name") or attrs.get("itemprop") or "").lower())
        if rank is not None and (best is None or rank < best[0]) and (date := iso_date(attrs.get("content"))):
            best = (rank, date)
    if best:
        return best[1]
    for pattern, needle in ((_JSONLD_DATE_RE, '"datePublished"'), (_TIME_RE, "")):
        # a substring search first: the regex's scan of a page without its literal cost 0.05 ms
        match = pattern.search(html) if needle in html else None
        if match and (date := iso_date(match.group(1))):
            return date
    return None


def resiliparse_extract(html: str) -> tuple[str, str | None, str | None]:
    """(main text, title, date) of a page with `extract.engine=resiliparse`: one parse for both
    texts. Raises PageTooDeep (pipeline/extract/nesting_limit.py) where the main-content pass would
    run for minutes."""
    check_html(html)
    tree = parse(html)
    return main_content_text(tree), title_of(tree), date_of(html)
