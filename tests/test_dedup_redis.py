"""The same dedup through a real Redis server (datasketch's redis storage) gives identical results."""

from __future__ import annotations

import pytest

from crawl2gpt.config import RunConfig
from helpers.dedup import filter_folder, read_folder, sample_texts, serial
from helpers.redis_server import RedisServer
from pipeline.dedup.stage import DEDUP
from pipeline.stage import run_stage


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"), persistent=False).start()
    try:
        yield server.port
    finally:
        server.stop()


def test_redis_backend_matches_memory(redis_port, tmp_path):
    import redis

    texts = sample_texts(limit=14)
    rows = [{"doc_id": f"d{i}", "text": t} for i, t in enumerate(texts)]
    rows += [
        {"doc_id": "copy", "text": texts[0]},
        {"doc_id": "near", "text": "Breaking news banner. " + texts[5]},
        {"doc_id": "short", "text": "ok"},
        {"doc_id": "empty", "text": ""},
    ]
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
    index and its owner record; the next attempt on the same output folder deletes them first,
    and never touches the keys of a run writing another folder."""
    import redis

    from pipeline.dedup.lsh import BandIndex
    from pipeline.dedup.stage import signature_batch

    client = redis.Redis(port=redis_port)
    texts = sample_texts(limit=6)
    source = filter_folder(tmp_path, [[{"doc_id": f"d{i}", "text": t} for i, t in enumerate(texts)]])
    cfg = RunConfig().with_overrides(["dedup.backend=redis", f"dedup.redis_port={redis_port}"])
    signatures = signature_batch(cfg.dedup, texts)[0]["signature"].to_pylist()
    output = tmp_path / "dedup"
    dead = BandIndex(cfg.dedup, output.with_name(".dedup.tmp-deadbeef"))  # never closed: what a killed run leaves
    dead.insert(list(range(6)), signatures)
    other = BandIndex(cfg.dedup, tmp_path / ".dedup-b.tmp-12345678")  # another folder's run, still going
    other.insert(list(range(3)), signatures[:3])
    others_keys = {key: client.dump(key) for key in client.scan_iter() if key.startswith(other.basename)}
    assert dead.basename.rsplit(b":", 1)[0] != other.basename.rsplit(b":", 1)[0]
    try:
        run_stage(DEDUP, [str(source)], output, cfg, map_parts=serial)
        left = set(client.scan_iter())
        assert not any(key.startswith(dead.basename) for key in left)
        assert {key: client.dump(key) for key in left if key.startswith(other.basename)} == others_keys
        assert set(client.hkeys(b"crawl2gpt:attempts")) == {other.basename}
    finally:
        other.close()
    assert client.dbsize() == 0
