"""Where WARC files come from: local paths, globs, folders, URLs, or a Common Crawl crawl id.

`resolve_inputs` turns what a user typed into a sorted list of concrete inputs (one task each);
`open_input` opens one of them as a streaming binary file, local or remote alike.
"""

from __future__ import annotations

import glob
import gzip
import time
from pathlib import Path
from typing import BinaryIO

from pipeline.errors import InputError

# WARC only: ARC (Common Crawl before 2013) has another record layout this reader does not
# parse; `warcio recompress old.arc.gz new.warc.gz` converts such a file first.
WARC_SUFFIXES = (".warc", ".warc.gz")
CC_BASE_URL = "https://data.commoncrawl.org/"
REMOTE_SCHEMES = ("http://", "https://", "s3://", "gs://", "gcs://", "az://", "abfs://")
OPEN_ATTEMPTS = 3  # transient network errors: retry opening a URL before counting it failed


def is_remote(spec: str) -> bool:
    return spec.startswith(REMOTE_SCHEMES)


def is_warc_name(name: str) -> bool:
    return name.lower().endswith(WARC_SUFFIXES)


def resolve_inputs(
    specs: list[str],
    crawl: str | None = None,
    max_files: int | None = None,
    base_url: str = CC_BASE_URL,
) -> list[str]:
    """Expand files, globs, folders, URLs and a crawl id into the list of WARC inputs.

    A literal path or URL is kept even if it does not exist yet: opening it fails later as a
    counted, per-file error (so one missing file does not stop a run). A glob or folder that
    matches no WARC file, or an empty result, is an `InputError`.
    """
    resolved: list[str] = []
    for spec in specs:
        spec = str(spec)
        if is_remote(spec):
            resolved.extend(_expand_remote(spec))
        else:
            resolved.extend(_expand_local(spec))
    if crawl:
        resolved.extend(crawl_paths(crawl, max_files, base_url))
    elif max_files is not None:
        resolved = resolved[:max_files]
    unique = list(dict.fromkeys(resolved))
    if not unique:
        raise InputError(
            f"no WARC input found in {specs!r}"
            + (f" (crawl {crawl})" if crawl else "")
            + "; give .warc/.warc.gz files, a folder holding them, a glob, a URL or --crawl ID"
        )
    return unique


def _expand_local(spec: str) -> list[str]:
    path = Path(spec).expanduser()
    if glob.has_magic(spec):
        matches = sorted(p for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        if not matches:
            raise InputError(f"the pattern {spec!r} matches no file")
        return [str(Path(p).resolve()) for p in matches]
    if path.is_dir():
        matches = sorted(p for p in path.rglob("*") if p.is_file() and is_warc_name(p.name))
        if not matches:
            raise InputError(f"the folder {spec} holds no .warc or .warc.gz file")
        return [str(p.resolve()) for p in matches]
    return [str(path.resolve())]


def _expand_remote(spec: str) -> list[str]:
    if not glob.has_magic(spec.split("://", 1)[1]):
        return [spec]
    import fsspec

    try:
        fs, _, paths = fsspec.get_fs_token_paths(spec)
    except (ImportError, ValueError) as err:
        raise InputError(f"cannot list {spec}: {err}") from None
    if not paths:
        raise InputError(f"the pattern {spec!r} matches no file")
    return sorted(fs.unstrip_protocol(p) for p in paths)


def crawl_paths(crawl: str, max_files: int | None, base_url: str = CC_BASE_URL) -> list[str]:
    """The first `max_files` WARC URLs of a Common Crawl crawl, from its warc.paths.gz listing."""
    base = base_url if base_url.endswith("/") else base_url + "/"
    listing = f"{base}crawl-data/{crawl}/warc.paths.gz"
    urls = []
    try:
        with open_input(listing) as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    urls.append(base + line.strip().lstrip("/"))
                if max_files is not None and len(urls) >= max_files:
                    break
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read the path listing of crawl {crawl} at {listing}: {err}") from None
    if not urls:
        raise InputError(f"the path listing {listing} of crawl {crawl} is empty")
    return urls


def open_input(spec: str) -> BinaryIO:
    """Open a local file or URL for streaming reads (never downloads it whole first).

    Raises OSError (FileNotFoundError for a missing file or a 404) when it cannot be opened.
    """
    if not is_remote(spec):
        return open(spec, "rb", buffering=1 << 20)
    import fsspec

    last: Exception | None = None
    for attempt in range(OPEN_ATTEMPTS):
        try:
            # block_size=0: a plain streaming GET, no range requests, no whole-file cache.
            kwargs = {"block_size": 0} if spec.startswith(("http://", "https://")) else {}
            handle = fsspec.open(spec, "rb", **kwargs).open()
            return handle  # type: ignore[return-value]
        except FileNotFoundError:
            raise
        except ImportError as err:
            raise OSError(
                f"cannot open {spec}: {err} (install the fsspec backend for this scheme, e.g. s3fs)"
            ) from None
        except Exception as err:  # aiohttp and cloud errors do not share a base class
            last = err
            time.sleep(0.5 * 2**attempt)
    raise OSError(f"cannot open {spec} after {OPEN_ATTEMPTS} attempts: {last}")
