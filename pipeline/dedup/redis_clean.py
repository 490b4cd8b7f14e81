"""`crawl2gpt dedup-clean`: delete the Redis keys of dedup attempts nobody will finish.

A dedup with dedup.backend=redis whose process or Redis died leaves its index in Redis; the next
attempt on the same folder deletes it, but a folder that is never rerun (given up, moved,
deleted) keeps it until its lease runs out (dedup.redis_ttl_h) and some later dedup sweeps it.
This deletes it now, found through the attempts' owner records (redis_owners.py): no scan of the
keyspace, nothing outside those attempts' own keys.

A run still writing a folder is never cleaned under it: the run folder's lock (pipeline/run_lock.py)
is held while deleting, so a run on this machine makes this RunLockedError with nothing deleted;
an attempt on another machine whose lease is still running is refused unless forced.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from pipeline.dedup.config import DedupConfig
from pipeline.dedup.redis_keys import client
from pipeline.dedup.redis_owners import OwnerRecord, delete_records, expired, read_records, redis_clock
from pipeline.errors import ConfigError, RedisIndexError
from pipeline.run_lock import run_lock


@dataclass
class Cleaned:
    attempts: list[OwnerRecord]
    keys: int


@contextmanager
def _redis(cfg: DedupConfig) -> Iterator:
    """A client; a Redis that does not answer is one RedisIndexError naming where it was looked for."""
    import redis

    try:
        yield client(cfg)
    except redis.RedisError as err:
        raise RedisIndexError(
            f"Redis at {cfg.redis_host}:{cfg.redis_port} did not answer ({err}). Start it, or point at the one the "
            "run used (--set dedup.redis_host=... --set dedup.redis_port=..., or --config RUN/config.yaml), and rerun"
        ) from err


def list_attempts(cfg: DedupConfig) -> list[tuple[OwnerRecord, int, float]]:
    """Every attempt with keys under the prefix: (record, how many keys, seconds left on its lease)."""
    with _redis(cfg) as redis_client:
        now = redis_clock(redis_client)
        return [
            (record, _count_keys(redis_client, record), record.expires - now)
            for record in read_records(redis_client, cfg.redis_prefix)
        ]


def _count_keys(redis_client, record: OwnerRecord) -> int:
    """Its tables and the keys they name (one HLEN per table)."""
    return sum(redis_client.hlen(table) + redis_client.exists(table) for table in record.tables)


def clean_expired(cfg: DedupConfig) -> Cleaned:
    """Delete every attempt whose lease has run out, whatever its folder."""
    with _redis(cfg) as redis_client:
        stale = expired(redis_client, read_records(redis_client, cfg.redis_prefix))
        return Cleaned(stale, delete_records(redis_client, cfg.redis_prefix, stale))


def clean_folders(cfg: DedupConfig, folders: list[Path], force: bool = False) -> Cleaned:
    """Delete every attempt that wrote one of `folders` or a folder below one, holding the run lock
    of each (RunLockedError, nothing deleted, while a run writes there). An attempt of another
    host whose lease still runs is refused (ConfigError) unless `force`: its run may be alive."""
    with _redis(cfg) as redis_client:
        records = [r for r in read_records(redis_client, cfg.redis_prefix) if any(r.inside(f) for f in folders)]
        if not force:
            _refuse_live_elsewhere(records, redis_clock(redis_client))
        with ExitStack() as locks:
            for run_folder in sorted({Path(r.folder).parent for r in records}):
                if run_folder.is_dir():  # the lock's folder; a folder that is gone holds no run
                    locks.enter_context(run_lock(run_folder))
            return Cleaned(records, delete_records(redis_client, cfg.redis_prefix, records))


def _refuse_live_elsewhere(records: list[OwnerRecord], now: float) -> None:
    here = socket.gethostname()
    live = [r for r in records if r.host != here and r.expires > now]
    if live:
        described = "; ".join(
            f"{r.folder} by pid {r.pid} on {r.host}, last alive {(now - r.renewed) / 60:.0f} min ago" for r in live
        )
        raise ConfigError(
            f"dedup keys of a run on another machine whose lease (dedup.redis_ttl_h) has not run out: {described}. "
            "That run may still be indexing, and this machine cannot check its lock. If it is gone, rerun with --force"
        )
