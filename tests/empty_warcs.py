"""Real WARC files for the "nothing survives" cases, cut from the bundled sample with warcio.

ALL_DROPPED holds two real English pages of the sample that the Gopher rules drop with the
default config (found in a filter run's rejects/): a police blotter (gopher_repetition's
duplicate 5-gram share) and a news page whose words are too often not alphabetic
(gopher_quality.min_alpha_words_ratio). No mock: the bytes are the crawl's own records.
"""

from __future__ import annotations

from pathlib import Path

from warcio.archiveiterator import ArchiveIterator
from warcio.warcwriter import WARCWriter

GOPHER_DROPPED_URLS = (
    "https://www.caymancompass.com/2022/05/04/prison-official-anyone-could-escape-from-northward/",
    "https://www.heartlandnewsfeed.com/2023/10/27/christian-county-police-blotters/",
)


def write_sample_subset(sample_warc: Path, urls: tuple[str, ...], out: Path) -> Path:
    """A gzipped WARC of the sample's response records for `urls` (each found exactly once)."""
    found = []
    with open(sample_warc, "rb") as src, open(out, "wb") as dst:
        writer = WARCWriter(dst, gzip=True)
        for record in ArchiveIterator(src):
            if record.rec_type == "response" and record.rec_headers.get_header("WARC-Target-URI") in urls:
                writer.write_record(record)
                found.append(record.rec_headers.get_header("WARC-Target-URI"))
    assert sorted(found) == sorted(urls), f"the sample no longer holds {set(urls) - set(found)}"
    return out


def write_not_a_warc(out: Path) -> Path:
    """A file named like a WARC that is plain text (a mislabelled download)."""
    out.write_text("<html>this was saved from a browser, it is not a WARC file</html>\n")
    return out
