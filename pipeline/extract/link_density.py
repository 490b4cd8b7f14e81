"""Link density of a page's elements, and extracted lines that are mostly link text.

Navigation, "related articles" lists, tag clouds and share bars are made of links; body text
rarely is. trafilatura already prunes link-heavy blocks before it picks the main content, but
lines of such blocks still come through (a list of teasers under an article, a breadcrumb).
This rule looks each extracted line up among the page's elements (same text, whitespace
collapsed) and drops it when at least `link_density` of that element's text is link text
(jusText's link-density feature, Pomikálek 2011, applied after extraction). A line that no
element matches is kept. Chosen by 5-fold cross-validation grouped by site
(benchmarks/extraction_quality.py, docs/benchmarks-ingest.md).
"""

from __future__ import annotations

MAX_ELEMENT_CHARS = 2000  # longer elements are containers of body text, never one extracted line


def squash(text: str) -> str:
    return " ".join(text.split())  # str.split is several times faster than a regex here


def text_of(element) -> str:
    """element.text_content(), without its XPath evaluation where the element has no children (most
    links): its own text is then all of it."""
    return (element.text or "") if not len(element) else element.text_content()


def element_link_density(tree, lines: str | None = None) -> dict[str, float]:
    """Collapsed text -> share of link text, for the elements of up to MAX_ELEMENT_CHARS characters
    that hold a link (an element without one has density 0 and never drops a line).

    Walks up from every <a> to its first ancestor with longer text, so the cost follows the
    links of the page, not its size. With `lines` (the extracted lines that could be dropped,
    joined), only links whose text occurs in them are followed: an element that is one of those
    lines holds only such links, so its density comes out the same, at a fraction of the cost.
    Two elements with the same text: the higher density wins (an <li> around one <a> reads as
    link text either way).
    """
    texts: dict = {}  # element -> collapsed text, or None when longer than MAX_ELEMENT_CHARS
    linked: dict = {}  # element -> characters of link text inside it
    for anchor in tree.iter("a"):
        anchor_text = squash(text_of(anchor))
        if not anchor_text or (lines is not None and anchor_text not in lines):
            continue
        element, n_linked = anchor, len(anchor_text)
        while element is not None:
            if element not in texts:
                text = squash(text_of(element))
                texts[element] = text if len(text) <= MAX_ELEMENT_CHARS else None
            if texts[element] is None:
                break  # its ancestors are longer still
            linked[element] = linked.get(element, 0) + n_linked
            element = element.getparent()
    densities: dict[str, float] = {}
    for element, text in texts.items():
        if text:
            density = min(linked[element] / len(text), 1.0)
            densities[text] = max(density, densities.get(text, 0.0))
    return densities


def is_link_line(line: str, densities: dict[str, float], min_density: float, max_words: int) -> bool:
    if len(line.split()) > max_words:
        return False
    return densities.get(squash(line), 0.0) >= min_density


def drop_link_lines(text: str, tree, min_density: float, max_words: int) -> str:
    """The extracted text without its lines that are mostly link text (see the module docstring)."""
    lines = text.split("\n")
    candidates = "\n".join(squash(line) for line in lines if 0 < len(line.split()) <= max_words)
    if not candidates:
        return text
    densities = element_link_density(tree, candidates)
    return "\n".join(line for line in lines if not is_link_line(line, densities, min_density, max_words))
