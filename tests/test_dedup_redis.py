"""The same dedup through a real Redis server (datasketch's redis storage) gives identical results."""
from __future__ import annotations

import socket
import subprocess
import time

import pytest

from helpers.dedup import filter_folder, read_folder, sample_texts, serial
from helpers.programs import require_program
from crawl2gpt.config import RunConfig
from pipeline.dedup.stage import DEDUP
from pipeline.stage import run_stage


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def redis_port():
    binary = require_program("redis-server")
    redis = pytest.importorskip("redis")
    port = _free_port()
    server = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        else:
            pytest.fail(f"redis-server did not answer on port {port}")
        yield port
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_redis_backend_matches_memory(redis_port, tmp_path):
    import redis

    texts = sample_texts(limit=14)
    rows = [{"doc_id": f"d{i}", "text": t} for i, t in enumerate(texts)]
    rows += [{"doc_id": "copy", "text": texts[0]}, {"doc_id": "near", "text": "Breaking news banner. " + texts[5]},
             {"doc_id": "short", "text": "ok"}, {"doc_id": "empty", "text": ""}]
    source = filter_folder(tmp_path, [rows[:9], rows[9:]])
    memory = run_stage(DEDUP, [str(source)], tmp_path / "memory", RunConfig(), map_parts=serial)
    cfg = RunConfig().with_overrides(["dedup.backend=redis", f"dedup.redis_port={redis_port}"])
    in_redis = run_stage(DEDUP, [str(source)], tmp_path / "redis", cfg, map_parts=serial)

    assert memory.drops == in_redis.drops == {"exact_duplicate": 1, "near_duplicate": 1, "empty": 1}
    assert read_folder(tmp_path / "redis").equals(read_folder(tmp_path / "memory"))
    assert read_folder(tmp_path / "redis", "rejects").equals(read_folder(tmp_path / "memory", "rejects"))
    assert in_redis.extra["backend"] == "redis"
    assert redis.Redis(port=redis_port).dbsize() == 0  # the run's index is deleted afterwards


def test_keys_a_dead_attempt_left_on_the_same_folder_are_deleted_and_no_others(redis_port, tmp_path):
    """A run that died (or whose Redis died and came back from its append-only file) leaves its
    index; the next attempt on the same output folder deletes it first, and never touches the
    keys of a run writing another folder."""
    import redis

    from pipeline.dedup.redis_keys import attempt_basename

    client = redis.Redis(port=redis_port)
    texts = sample_texts(limit=6)
    source = filter_folder(tmp_path, [[{"doc_id": f"d{i}", "text": t} for i, t in enumerate(texts)]])
    cfg = RunConfig().with_overrides(["dedup.backend=redis", f"dedup.redis_port={redis_port}"])
    output = tmp_path / "dedup"
    dead, _ = attempt_basename(cfg.dedup, output.with_name(".dedup.tmp-deadbeef"))
    other, _ = attempt_basename(cfg.dedup, tmp_path / ".dedup-b.tmp-12345678")
    assert dead.rsplit(b":", 1)[0] != other.rsplit(b":", 1)[0]
    client.hset(dead + b"_bucket_\x00\x00", b"band", dead + b"_bucket_\x00\x00band")
    client.sadd(dead + b"_bucket_\x00\x00band", b"stale document")
    client.sadd(other + b"_keys", b"a document of a run writing another folder")
    try:
        run_stage(DEDUP, [str(source)], output, cfg, map_parts=serial)
        assert client.keys("*") == [other + b"_keys"]
    finally:
        client.delete(other + b"_keys")
