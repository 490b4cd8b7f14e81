"""s3:// inputs against a real S3 API: moto's server on 127.0.0.1, reached through s3fs.

The same code path reads Common Crawl's own bucket or any S3-compatible store (MinIO, R2):
credentials from the usual AWS variables or profile, the endpoint from AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

pytest.importorskip("s3fs", reason="s3:// inputs need s3fs (pip install s3fs)")
moto_server = pytest.importorskip("moto.server", reason="the S3 test server needs moto[server]")

from crawl2gpt.config import RunConfig  # noqa: E402
from crawl2gpt.runner import run_pipeline  # noqa: E402
from pipeline.extract.sources import open_input, resolve_inputs  # noqa: E402


@pytest.fixture()
def s3_bucket(monkeypatch, sample_warc):
    """A bucket `crawl` holding the sample WARC at segments/a/ and segments/b/ (two keys, one listing)."""
    import boto3
    import s3fs

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for key, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
    }.items():
        monkeypatch.setenv(key, value)  # child processes of the stage's pool inherit these
    s3fs.S3FileSystem.clear_instance_cache()  # an earlier test's filesystem would keep its endpoint
    client = boto3.client("s3")
    client.create_bucket(Bucket="crawl")
    for folder in ("a", "b"):
        client.upload_file(str(sample_warc), "crawl", f"segments/{folder}/CC-SAMPLE-A-00002.warc.gz")
    client.put_object(Bucket="crawl", Key="segments/a/notes.txt", Body=b"not a warc")
    yield "s3://crawl"
    s3fs.S3FileSystem.clear_instance_cache()
    server.stop()


def test_s3_glob_lists_and_streams_the_same_bytes(s3_bucket, sample_warc):
    urls = resolve_inputs([f"{s3_bucket}/segments/*/*.warc.gz"])
    assert urls == [
        f"{s3_bucket}/segments/a/CC-SAMPLE-A-00002.warc.gz",
        f"{s3_bucket}/segments/b/CC-SAMPLE-A-00002.warc.gz",
    ]
    with open_input(urls[0]) as fh:
        assert fh.read() == sample_warc.read_bytes()
    with pytest.raises(FileNotFoundError):
        open_input(f"{s3_bucket}/segments/missing.warc.gz")


def test_extract_from_s3_equals_extract_from_the_local_file(s3_bucket, sample_warc, tmp_path):
    url = f"{s3_bucket}/segments/a/CC-SAMPLE-A-00002.warc.gz"
    remote = run_pipeline([url], tmp_path / "s3", RunConfig(), until="extract")["extract"]
    local = run_pipeline([str(sample_warc)], tmp_path / "local", RunConfig(), until="extract")["extract"]
    assert remote.docs_out == local.docs_out > 0

    def documents(folder):
        rows = [
            r
            for part in sorted(folder.glob("*.parquet"))
            for r in pq.read_table(part, columns=["doc_id", "text"]).to_pylist()
        ]
        return sorted((r["doc_id"], r["text"]) for r in rows)

    assert documents(tmp_path / "s3" / "extract") == documents(tmp_path / "local" / "extract")
    manifest = json.loads((tmp_path / "s3" / "extract" / "_stage.json").read_text())
    assert manifest["inputs"] == [{"input": url, "kind": "url"}]
