"""Where a dedup run's LSH tables live in Redis (dedup.backend=redis), and what happens when Redis fails.

datasketch names every key of an index after its storage `basename`: one hash per band table
(`<basename>_bucket_<band>`), one list or set per bucket (that name + the bucket's hash) and
`<basename>_keys`. Ours is

    <dedup.redis_prefix>:<output folder digest>:<attempt>

so each attempt of the stage writes a namespace of its own: a rerun never reads entries of a
run that died (from a Redis restarted with its append-only file, say), which would make its
documents look like near-duplicates of documents that are not there any more. The attempt
deletes its keys when it ends. A run that cannot (Redis died, or the stage process was killed)
leaves them; the next attempt on the same output folder deletes them before it starts. That
is safe because one output folder has one writer at a time: run_stage already removes other
attempts' temporary folders of it on start (pipeline/atomic.py clean_stale).

Redis failing mid-stage (killed, restarted, out of memory) surfaces as one RedisIndexError that
names the server and what to do, with the redis-py exception as its __cause__.
"""
from __future__ import annotations

import hashlib
import logging
import re
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from pipeline.atomic import target_of
from pipeline.config import DedupConfig
from pipeline.errors import RedisIndexError

log = logging.getLogger("crawl2gpt.dedup")
DELETE_BATCH = 10_000


def folder_namespace(prefix: str, output: Path | None) -> str:
    """`prefix:<digest>` for the stage folder `output` (a random digest when there is none)."""
    if output is None:
        return f"{prefix}:{uuid.uuid4().hex[:12]}"
    digest = hashlib.blake2b(str(Path(output).resolve()).encode(), digest_size=6).hexdigest()
    return f"{prefix}:{digest}"


def attempt_basename(cfg: DedupConfig, workdir: Path | None) -> tuple[bytes, bytes]:
    """(this attempt's datasketch basename, the key pattern of every attempt on the same output folder)."""
    folder = folder_namespace(cfg.redis_prefix, target_of(workdir) if workdir is not None else None)
    pattern = re.sub(r"([\\*?\[\]])", r"\\\1", folder) + ":*"  # the prefix is a setting: escape glob characters
    return f"{folder}:{uuid.uuid4().hex[:12]}".encode(), pattern.encode()


def client(cfg: DedupConfig):
    import redis

    return redis.Redis(**connection(cfg))


def connection(cfg: DedupConfig) -> dict:
    """redis.Redis arguments: where, and how long to wait (no timeout would wait for ever on a hung server)."""
    return {"host": cfg.redis_host, "port": cfg.redis_port, "socket_timeout": cfg.redis_timeout_s,
            "socket_connect_timeout": cfg.redis_timeout_s}


@contextmanager
def redis_calls(cfg: DedupConfig) -> Iterator[None]:
    """Turn a failed Redis call into RedisIndexError, the redis-py exception kept as its cause."""
    import redis

    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as err:
        raise RedisIndexError(
            f"Redis at {cfg.redis_host}:{cfg.redis_port} stopped answering during dedup ({err}). "
            "Start it and rerun the same command: finished stages are kept, dedup starts over "
            "and first deletes the keys this run left in Redis"
        ) from err
    except redis.RedisError as err:  # answered, but refused: out of memory (maxmemory), read-only replica, ...
        raise RedisIndexError(
            f"Redis at {cfg.redis_host}:{cfg.redis_port} refused a command during dedup ({err}). "
            "Fix the server (e.g. raise its maxmemory) or set dedup.backend=disk, then rerun: finished stages are kept"
        ) from err


def delete_keys(cfg: DedupConfig, pattern: bytes) -> int:
    """Delete every key matching `pattern` (SCAN, then UNLINK in batches); returns how many."""
    redis_client, batch, deleted = client(cfg), [], 0
    for key in redis_client.scan_iter(match=pattern, count=DELETE_BATCH):
        batch.append(key)
        if len(batch) >= DELETE_BATCH:
            deleted += redis_client.unlink(*batch)
            batch.clear()
    if batch:
        deleted += redis_client.unlink(*batch)
    return deleted


def remove_dead_attempts(cfg: DedupConfig, folder_pattern: bytes) -> None:
    """Before indexing: delete the keys earlier attempts on this output folder left behind."""
    with redis_calls(cfg):
        deleted = delete_keys(cfg, folder_pattern)
    if deleted:
        log.warning("deleted %d Redis keys an interrupted dedup of the same folder left at %s:%s",
                    deleted, cfg.redis_host, cfg.redis_port)


def remove_attempt(cfg: DedupConfig, basename: bytes) -> None:
    """After the stage, whatever its outcome: delete this attempt's keys. When Redis is gone this
    only warns, so the error that ended the stage (if any) is the one the user sees; the next
    attempt on the folder deletes the keys (remove_dead_attempts)."""
    import redis

    pattern = re.sub(rb"([\\*?\[\]])", rb"\\\1", basename) + b"*"
    try:
        delete_keys(cfg, pattern)
    except redis.RedisError as err:
        log.warning("could not delete this dedup run's keys in Redis at %s:%s (%s); the next run on the same "
                    "folder deletes them", cfg.redis_host, cfg.redis_port, err)
