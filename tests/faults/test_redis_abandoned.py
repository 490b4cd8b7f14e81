"""Item 4 of issue 24: Redis keys of a dedup attempt on a folder that is never rerun.

Each attempt below is the real dedup stage (dedup.backend=redis) in a process of its own that holds
its run folder's lock as `crawl2gpt stage` does, reaching a real redis-server through a relay that
freezes at the first index write of its second input part (helpers/redis_server.py): the first
part's index is in Redis, and the process is alive and mid-index until the test SIGKILLs it.

Promise checked (docs/reliability.md, pipeline/dedup/redis_owners.py):
  - `crawl2gpt dedup-clean RUN` deletes every key of the killed attempt on RUN and its owner
    record, and nothing of another run still indexing (its keys byte-identical, by DUMP); Redis
    ran HSCAN on the attempt's own tables and never SCAN or KEYS (INFO commandstats);
  - the same command on the live run's folder is refused (its lock), deleting nothing;
  - an attempt silent past its lease (dedup.redis_ttl_h) is deleted by the next dedup on any
    folder, and one whose lease still runs is left alone and listed by `crawl2gpt dedup-clean`.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crawl2gpt.config import RunConfig
from helpers.dedup import filter_folder, sample_texts, serial
from helpers.redis_server import FreezingRelay, RedisServer
from pipeline.dedup.stage import DEDUP
from pipeline.stage import run_stage

pytestmark = pytest.mark.faults
ROOT = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).with_name("crawl2gpt")
REGISTRY = b"crawl2gpt:attempts"
# The dedup stage in a process of its own, locked like `crawl2gpt stage dedup --output RUN/dedup`.
STAGE_PROCESS = """
import sys
from pathlib import Path
from crawl2gpt.config import RunConfig
from pipeline.dedup.stage import DEDUP
from pipeline.run_lock import run_lock
from pipeline.stage import run_stage

source, output, settings = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
with run_lock(output.parent):
    run_stage(DEDUP, [source], output, RunConfig().with_overrides(["dedup.backend=redis", "workers=1", *settings]))
"""


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A filter-shaped folder of two parts: the index is written in two rounds."""
    rows = [{"doc_id": f"d{i}", "text": text} for i, text in enumerate(sample_texts(limit=12))]
    return filter_folder(tmp_path_factory.mktemp("filter"), [rows[:6], rows[6:]])


@pytest.fixture
def server(tmp_path):
    redis_server = RedisServer(tmp_path / "redis", persistent=False).start()
    yield redis_server
    redis_server.stop()


class Attempt:
    """One dedup attempt frozen mid-index: alive until kill()."""

    def __init__(self, source: Path, run_dir: Path, server: RedisServer, settings: tuple[str, ...] = ()):
        self.run_dir = run_dir
        self.relay = FreezingRelay(server.port, first_write_of_second_part())
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                STAGE_PROCESS,
                str(source),
                str(run_dir / "dedup"),
                f"dedup.redis_port={self.relay.port}",
                *settings,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def wait_frozen(self) -> Attempt:
        deadline = time.monotonic() + 120
        while not self.relay.frozen.wait(0.2):
            ended = self.process.poll() is not None
            assert not ended, f"the attempt ended before its second part:\n{self.process.stdout.read()}"
            assert time.monotonic() < deadline, "the attempt never reached its second part"
        return self

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self.relay.close()


def first_write_of_second_part() -> int:
    """datasketch commits each table's buffer with its own MULTI/EXEC: bands + 1 for the first part."""
    return RunConfig().dedup.bands + 1 + 1


def snapshot(client) -> dict[bytes, bytes]:
    """Every key of the test's own Redis and its serialized value (the test may scan: it owns the server)."""
    return {key: client.dump(key) for key in client.scan_iter()}


def owned_by(keys: dict[bytes, bytes], basename: bytes) -> dict[bytes, bytes]:
    return {key: value for key, value in keys.items() if key.startswith(basename)}


def basename_of(client, run_dir: Path) -> bytes:
    """The basename of the attempt whose owner record names RUN/dedup."""
    import json

    wanted = str((run_dir / "dedup").resolve())
    found = [name for name, value in client.hgetall(REGISTRY).items() if json.loads(value)["folder"] == wanted]
    assert len(found) == 1, client.hgetall(REGISTRY)
    return found[0]


def wait_until_expired(client, name: bytes) -> None:
    """Until Redis's clock passes the owner record's `expires`."""
    import json

    seconds, micros = client.time()
    time.sleep(max(0.0, json.loads(client.hget(REGISTRY, name))["expires"] - (seconds + micros / 1e6)) + 0.1)


def dedup_clean(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLI), "dedup-clean", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_dedup_clean_deletes_a_killed_runs_keys_and_nothing_of_a_live_run(source, server, tmp_path):
    client = server.client()
    abandoned = Attempt(source, tmp_path / "given-up", server)
    live = Attempt(source, tmp_path / "still-going", server)
    try:
        abandoned.wait_frozen().kill()  # mid-index: its first part's index and its owner record stay in Redis
        live.wait_frozen()
        before = snapshot(client)
        dead_keys = owned_by(before, basename_of(client, abandoned.run_dir))
        live_name = basename_of(client, live.run_dir)
        live_keys, live_record = owned_by(before, live_name), client.hget(REGISTRY, live_name)
        assert len(dead_keys) > 2 * RunConfig().dedup.bands and live_keys  # tables and their buckets

        client.config_resetstat()
        started = time.monotonic()
        cleaned = dedup_clean(str(abandoned.run_dir), "--set", f"dedup.redis_port={server.port}")
        clean_s = time.monotonic() - started
        assert cleaned.returncode == 0, cleaned.stderr
        assert cleaned.stdout.strip() == (
            f"deleted {len(dead_keys)} keys of 1 dedup attempt(s) in Redis at 127.0.0.1:{server.port} "
            f"(prefix crawl2gpt): {(abandoned.run_dir / 'dedup').resolve()}"
        )
        commands = client.info("commandstats")
        assert "cmdstat_scan" not in commands and "cmdstat_keys" not in commands, sorted(commands)
        assert commands["cmdstat_hscan"]["calls"] >= RunConfig().dedup.bands + 1  # the attempt's own tables

        after = snapshot(client)
        assert owned_by(after, live_name) == live_keys  # the live run's index, byte for byte
        assert client.hgetall(REGISTRY) == {live_name: live_record}
        assert set(after) == set(live_keys) | {REGISTRY}  # nothing of the killed attempt is left

        refused = dedup_clean(str(live.run_dir), "--set", f"dedup.redis_port={server.port}")
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "RunLockedError" in refused.stderr and f"pid {live.process.pid}" in refused.stderr, refused.stderr
        assert snapshot(client) == after
        print(
            f"\ndedup-clean: {len(dead_keys)} keys of the killed attempt deleted in {clean_s:.1f} s (CLI start "
            f"included), {len(live_keys)} keys of the live run untouched; Redis ran "
            f"{commands['cmdstat_hscan']['calls']} HSCAN, no SCAN, no KEYS"
        )
    finally:
        abandoned.kill()
        live.kill()


def test_an_attempt_silent_past_its_lease_is_deleted_by_the_next_dedup_on_any_folder(source, server, tmp_path, caplog):
    client = server.client()
    short_lease = Attempt(source, tmp_path / "short-lease", server, ("dedup.redis_ttl_h=0.0005",))  # 1.8 s
    default_lease = Attempt(source, tmp_path / "default-lease", server)
    try:
        short_lease.wait_frozen().kill()
        default_lease.wait_frozen().kill()
        kept_name = basename_of(client, default_lease.run_dir)
        expired_name = basename_of(client, short_lease.run_dir)
        kept = owned_by(snapshot(client), kept_name)
        wait_until_expired(client, expired_name)

        listed = dedup_clean("--set", f"dedup.redis_port={server.port}")
        assert listed.returncode == 0, listed.stderr
        assert f"{(default_lease.run_dir / 'dedup').resolve()}  {len(kept)} keys" in listed.stdout, listed.stdout
        assert "lease runs out in 72.0 h" in listed.stdout and "lease ran out" in listed.stdout, listed.stdout

        cfg = RunConfig().with_overrides(["dedup.backend=redis", f"dedup.redis_port={server.port}"])
        with caplog.at_level("WARNING", logger="crawl2gpt.dedup"):
            run_stage(DEDUP, [str(source)], tmp_path / "another-run" / "dedup", cfg, map_parts=serial)

        assert owned_by(snapshot(client), expired_name) == {}
        assert owned_by(snapshot(client), kept_name) == kept
        assert set(client.hkeys(REGISTRY)) == {kept_name}
        assert (
            f"whose lease ran out (silent for longer than the dedup.redis_ttl_h they ran with): "
            f"{(short_lease.run_dir / 'dedup').resolve()}" in caplog.text
        ), caplog.text
    finally:
        short_lease.kill()
        default_lease.kill()
