"""Input resolution: files, globs, folders, HTTP URLs and a Common Crawl crawl id (local server)."""

from __future__ import annotations

import functools
import gzip
import http.server
import shutil
import threading
from pathlib import Path

import pytest

from pipeline.errors import InputError
from pipeline.extract.sources import crawl_paths, open_input, resolve_inputs


@pytest.fixture()
def warc_folder(tmp_path, sample_warc) -> Path:
    (tmp_path / "sub").mkdir()
    for name in ("b.warc.gz", "a.warc.gz", "sub/c.warc", "old.arc.gz", "notes.txt"):
        shutil.copy(sample_warc, tmp_path / name)
    return tmp_path


def test_folder_glob_and_literal(warc_folder):
    folder = resolve_inputs([str(warc_folder)])
    assert [Path(p).name for p in folder] == ["a.warc.gz", "b.warc.gz", "c.warc"]  # ARC is not read
    assert [Path(p).name for p in resolve_inputs([str(warc_folder / "*.warc.gz")])] == ["a.warc.gz", "b.warc.gz"]
    # duplicates collapse, order is kept, max_files caps the list
    both = resolve_inputs([str(warc_folder / "b.warc.gz"), str(warc_folder / "*.warc.gz")], max_files=2)
    assert [Path(p).name for p in both] == ["b.warc.gz", "a.warc.gz"]


def test_nothing_matches_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="matches no file"):
        resolve_inputs([str(tmp_path / "*.warc.gz")])
    with pytest.raises(InputError, match="holds no"):
        resolve_inputs([str(tmp_path)])
    with pytest.raises(InputError, match="no WARC input"):
        resolve_inputs([])


def test_missing_literal_file_is_kept_for_a_counted_error(tmp_path):
    missing = str(tmp_path / "gone.warc.gz")
    assert resolve_inputs([missing]) == [missing]
    with pytest.raises(FileNotFoundError):
        open_input(missing)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # noqa: D102 - keep test output clean
        pass


@pytest.fixture()
def http_root(tmp_path):
    """Serve tmp_path on 127.0.0.1 (a stand-in for data.commoncrawl.org)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_http_url_streams_and_404_is_file_not_found(http_root, sample_warc):
    root, base = http_root
    shutil.copy(sample_warc, root / "x.warc.gz")
    with open_input(base + "x.warc.gz") as fh:
        assert fh.read() == sample_warc.read_bytes()
    assert resolve_inputs([base + "x.warc.gz"]) == [base + "x.warc.gz"]
    with pytest.raises(OSError):
        open_input(base + "missing.warc.gz")


def test_crawl_id_reads_the_path_listing(http_root, shared_data):
    root, base = http_root
    listing = root / "crawl-data" / "CC-MAIN-2024-22" / "warc.paths.gz"
    listing.parent.mkdir(parents=True)
    shutil.copy(shared_data / "warc" / "CC-MAIN-2024-22.warc.paths.gz", listing)
    first = gzip.decompress(listing.read_bytes()).decode().split()
    urls = resolve_inputs([], crawl="CC-MAIN-2024-22", max_files=3, base_url=base.rstrip("/"))
    assert urls == [base + p for p in first[:3]]
    assert len(crawl_paths("CC-MAIN-2024-22", None, base)) == len(first)
    with pytest.raises(InputError, match="CC-MAIN-1999-01"):
        resolve_inputs([], crawl="CC-MAIN-1999-01", max_files=1, base_url=base)
