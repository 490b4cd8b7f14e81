"""Fault 1 of issue 19: the redis-server holding dedup's LSH index is SIGKILLed mid-index.

The kill lands at a known point: the dedup stage reaches Redis through a small TCP relay that
stops passing bytes at the first index write of the second input part (datasketch commits each
band table's buffer with its own MULTI/EXEC, so the first bands + 1 EXECs are the first part's
index). At that moment the first part's index is committed and the second's is not: a
half-written index, which a Redis with an append-only file brings back after a restart.

Promise checked (docs/reliability.md):
  - the CLI exits 2 with one message naming Redis, its address, the stage and what to do; no traceback;
  - extract and filter (finished before the kill) are unchanged; no dedup folder, no temp folder;
  - after Redis is back (with the dead run's keys from its AOF, or empty), a rerun writes exactly
    the stage folders of an undisturbed run, and Redis holds no key of either run afterwards.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from pathlib import Path

import pytest

from crawl2gpt.config import RunConfig
from crawl2gpt.runner import run_pipeline
from helpers.fault_runs import (
    SAMPLE_SETTINGS,
    cli_env,
    finish_cli,
    leftovers,
    run_cli,
    run_snapshot,
    split_warc,
    stage_snapshot,
    start_cli,
)
from helpers.programs import require_program
from helpers.redis_server import FreezingRelay, RedisServer
from pipeline.dedup.stage import DEDUP
from pipeline.stage import run_stage

pytestmark = pytest.mark.faults
redis = pytest.importorskip("redis")
require_program("redis-server")  # at import: where it is missing, the module skips naming the package
STAGES = ["extract", "filter", "dedup"]


def redis_settings(port: int) -> list[str]:
    return [*SAMPLE_SETTINGS, "dedup.backend=redis", f"dedup.redis_port={port}"]


def first_write_of_second_part(cfg: RunConfig) -> int:
    return cfg.dedup.bands + 1 + 1


@pytest.fixture(scope="module")
def warcs(tmp_path_factory, sample_warc) -> list[Path]:
    """The sample in two WARC files: two parts, so the index is written in two rounds."""
    return split_warc(sample_warc, tmp_path_factory.mktemp("warcs"))


@pytest.fixture(scope="module")
def undisturbed(warcs, tmp_path_factory) -> tuple[Path, dict]:
    """The same run with nothing going wrong (in this process, through a Redis of its own)."""
    base = tmp_path_factory.mktemp("undisturbed")
    server = RedisServer(base / "redis", persistent=False).start()
    try:
        cfg = RunConfig().with_overrides(redis_settings(server.port))
        run_pipeline([str(p) for p in warcs], base / "run", cfg, until="dedup")
        assert server.client().dbsize() == 0
    finally:
        server.stop()
    return base / "run", run_snapshot(base / "run", STAGES)


@pytest.mark.slow  # ~60 s through the CLI; the stage-alone kill runs in make test
def test_cli_redis_killed_mid_index_then_restarted_with_its_aof(prefect_api, warcs, undisturbed, tmp_path):
    from pipeline.errors import RedisIndexError  # noqa: F401  (the type the message comes from)

    server = RedisServer(tmp_path / "redis", persistent=True).start()
    relay = FreezingRelay(server.port, first_write_of_second_part(RunConfig()))
    run = tmp_path / "run"
    args = ["run", "--input", *map(str, warcs), "--workdir", str(run), "--until", "dedup"]
    for item in redis_settings(relay.port):
        args += ["--set", item]
    env = cli_env(tmp_path / "prefect-home")
    try:
        started = time.monotonic()
        proc = start_cli(args, env)
        while not relay.frozen.wait(0.2):
            assert proc.poll() is None, f"the run ended before dedup wrote its index:\n{proc.communicate()[1][-3000:]}"
            assert time.monotonic() - started < 180
        finished = run_snapshot(run, ["extract", "filter"])  # dedup is running: these two are done
        killed = time.monotonic()
        server.kill()
        failed = finish_cli(proc, started)
        detect_s = time.monotonic() - killed

        assert failed.code == 2, failed.stderr[-3000:]
        assert "Traceback" not in failed.stderr
        message = failed.error_lines[-1]
        assert re.match(
            rf"crawl2gpt: error: Redis at 127\.0\.0\.1:{relay.port} stopped answering during dedup", message
        ), failed.stderr[-3000:]
        assert "start it and rerun" in message.lower() and "finished stages are kept" in message
        assert failed.error_lines[0].startswith("crawl2gpt: RedisIndexError")
        assert not (run / "dedup").exists() and leftovers(run) == []
        assert run_snapshot(run, ["extract", "filter"]) == finished

        server.start()  # from its append-only file: the dead run's half-written index is back
        stale = server.client().dbsize()
        assert stale > 0
        relay.disarm()
        rerun = run_cli(args, env)
        assert rerun.code == 0, rerun.stderr[-3000:]
        assert run_snapshot(run, STAGES) == undisturbed[1]
        assert server.client().dbsize() == 0  # neither the dead run's keys nor the rerun's are left
        print(
            f"\n{failed.error_lines}\nredis kill: detected and reported {detect_s:.1f} s after SIGKILL; "
            f"{stale} keys of the dead run "
            f"in Redis after restart, 0 after the rerun; rerun {rerun.seconds} s; "
            f"dedup {undisturbed[1]['dedup']['manifest']['stats']['docs_out']} docs kept as undisturbed"
        )
    finally:
        relay.close()
        server.stop()


def test_redis_killed_mid_index_then_restarted_empty(undisturbed, tmp_path):
    """The stage alone (no CLI): the error type and its cause, then a rerun on an empty Redis."""
    from pipeline.errors import RedisIndexError

    filter_folder = shutil.copytree(undisturbed[0] / "filter", tmp_path / "filter")  # a finished stage of this run
    server = RedisServer(tmp_path / "redis", persistent=False).start()
    relay = FreezingRelay(server.port, first_write_of_second_part(RunConfig()))
    cfg = RunConfig().with_overrides([*redis_settings(relay.port), "workers=1"])
    killed = []
    killer = threading.Thread(
        target=lambda: relay.frozen.wait(120) and (server.kill(), killed.append(time.monotonic())), daemon=True
    )
    killer.start()
    try:
        with pytest.raises(RedisIndexError) as failure:
            run_stage(DEDUP, [str(filter_folder)], tmp_path / "dedup", cfg)
        detect_s = time.monotonic() - killed[0]
        assert isinstance(failure.value.__cause__, redis.ConnectionError)
        assert not (tmp_path / "dedup").exists() and leftovers(tmp_path) == []

        server.start()
        assert server.client().dbsize() == 0
        relay.disarm()
        run_stage(DEDUP, [str(filter_folder)], tmp_path / "dedup", cfg)
        assert stage_snapshot(tmp_path / "dedup") == undisturbed[1]["dedup"]
        assert server.client().dbsize() == 0
        print(
            f"\nredis kill (stage alone): RedisIndexError {detect_s:.1f} s after SIGKILL; rerun on an empty Redis "
            f"equals the undisturbed dedup"
        )
    finally:
        relay.close()
        server.stop()


@pytest.mark.slow  # ~11 s, mostly redis-py's own retries: make test-slow (the fast tier's 5-minute bound)
def test_hung_redis_stops_dedup_within_its_timeout(undisturbed, tmp_path):
    """A Redis that accepts connections but never answers (a hung server, a network partition):
    without a socket timeout dedup waited for ever; with dedup.redis_timeout_s it stops."""
    from pipeline.errors import RedisIndexError

    filter_folder = shutil.copytree(undisturbed[0] / "filter", tmp_path / "filter")
    server = RedisServer(tmp_path / "redis", persistent=False).start()
    relay = FreezingRelay(server.port, first_write_of_second_part(RunConfig()))  # holds every byte from then on
    cfg = RunConfig().with_overrides([*redis_settings(relay.port), "workers=1", "dedup.redis_timeout_s=0.5"])
    try:
        started = time.monotonic()
        with pytest.raises(RedisIndexError, match="stopped answering during dedup") as failure:
            run_stage(DEDUP, [str(filter_folder)], tmp_path / "dedup", cfg)
        hung_s = time.monotonic() - relay_frozen_at(relay, started)
        assert isinstance(failure.value.__cause__, (redis.TimeoutError, redis.ConnectionError))
        assert hung_s < 60, f"dedup waited {hung_s:.0f} s on a hung Redis"
        assert not (tmp_path / "dedup").exists() and leftovers(tmp_path) == []
        print(
            f"\nhung redis: RedisIndexError {hung_s:.1f} s after Redis stopped answering "
            "(timeout 0.5 s, redis-py's retries)"
        )
    finally:
        relay.close()
        server.stop()


def relay_frozen_at(relay: FreezingRelay, started: float) -> float:
    """When the relay froze; its event was set during the run, so the stage start bounds it from below."""
    return relay.frozen_at if getattr(relay, "frozen_at", None) else started
