"""Where a dedup run's LSH tables live in Redis (dedup.backend=redis), and what happens when Redis fails.

datasketch names every key of an index after its storage `basename`: one hash per band table
(`<basename>_bucket_<band>`), one set per bucket (that name + the bucket's hash), and
`<basename>_keys` with one list per document. Ours is

    <dedup.redis_prefix>:<output folder digest>:<attempt>

so each attempt of the stage writes a namespace of its own: a rerun never reads entries of a
run that died (from a Redis restarted with its append-only file, say), which would make its
documents look like near-duplicates of documents that are not there any more. Before its first
key the attempt writes an owner record (redis_owners.py) that lists its tables, and so leads to
every one of its keys; the attempt deletes them when it ends. A run that cannot (Redis died, or
the stage process was killed) leaves them with their record; the next attempt on the same output
folder deletes them before it starts, any dedup deletes them once their lease has expired
(dedup.redis_ttl_h), and `crawl2gpt dedup-clean FOLDER` deletes them on demand. Deleting the
same folder's earlier attempts is safe because one output folder has one writer at a time:
run_stage already removes other attempts' temporary folders of it on start (pipeline/atomic.py
clean_stale), and the CLI holds the run folder's lock.

Redis failing mid-stage (killed, restarted, out of memory) surfaces as one RedisIndexError that
names the server and what to do, with the redis-py exception as its __cause__.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.atomic import target_of
from pipeline.dedup.config import DedupConfig
from pipeline.dedup.redis_owners import OwnerRecord, delete_attempt, delete_records, expired, read_records, write_record
from pipeline.errors import RedisIndexError

log = logging.getLogger("crawl2gpt.dedup")
HOURS = 3600.0


def folder_namespace(prefix: str, output: Path | None) -> str:
    """`prefix:<digest>` for the stage folder `output` (a random digest when there is none)."""
    if output is None:
        return f"{prefix}:{uuid.uuid4().hex[:12]}"
    digest = hashlib.blake2b(str(Path(output).resolve()).encode(), digest_size=6).hexdigest()
    return f"{prefix}:{digest}"


def attempt_basename(cfg: DedupConfig, workdir: Path | None) -> tuple[bytes, str]:
    """(this attempt's datasketch basename, the output folder it writes, resolved; "" for none)."""
    target = target_of(workdir).resolve() if workdir is not None else None
    return f"{folder_namespace(cfg.redis_prefix, target)}:{uuid.uuid4().hex[:12]}".encode(), str(target or "")


def client(cfg: DedupConfig):
    import redis

    return redis.Redis(**connection(cfg))


def connection(cfg: DedupConfig) -> dict:
    """redis.Redis arguments: where, and how long to wait (no timeout would wait for ever on a hung server)."""
    return {
        "host": cfg.redis_host,
        "port": cfg.redis_port,
        "socket_timeout": cfg.redis_timeout_s,
        "socket_connect_timeout": cfg.redis_timeout_s,
    }


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


def remove_dead_attempts(cfg: DedupConfig, folder: str) -> None:
    """Before indexing: delete the keys of earlier attempts on this output folder, and of every
    attempt (any folder) whose owner record's lease has expired."""
    with redis_calls(cfg):
        redis_client = client(cfg)
        records = read_records(redis_client, cfg.redis_prefix)
        same_folder = [r for r in records if folder and r.folder == folder]
        abandoned = [r for r in expired(redis_client, records) if r not in same_folder]
        deleted_same = delete_records(redis_client, cfg.redis_prefix, same_folder)
        deleted_abandoned = delete_records(redis_client, cfg.redis_prefix, abandoned)
    where = f"{cfg.redis_host}:{cfg.redis_port}"
    if deleted_same:
        log.warning("deleted %d Redis keys an interrupted dedup of the same folder left at %s", deleted_same, where)
    if abandoned:
        folders = sorted({r.folder or r.basename.decode(errors="replace") for r in abandoned})
        log.warning(
            "deleted %d Redis keys at %s of %d dedup attempt(s) whose lease ran out (silent for longer than "
            "the dedup.redis_ttl_h they ran with): %s",
            deleted_abandoned,
            where,
            len(abandoned),
            ", ".join(folders),
        )


def register_attempt(cfg: DedupConfig, basename: bytes, folder: str, tables: list[bytes]) -> OwnerRecord:
    """Write this attempt's owner record (before its first key) with a lease of dedup.redis_ttl_h."""
    record = OwnerRecord(basename=basename, folder=folder, tables=tables, expires=0.0)
    write_record(client(cfg), cfg.redis_prefix, record, cfg.redis_ttl_h * HOURS)
    return record


def renew_attempt(cfg: DedupConfig, record: OwnerRecord) -> None:
    """A sign of life: push the lease on by dedup.redis_ttl_h from now."""
    write_record(client(cfg), cfg.redis_prefix, record, cfg.redis_ttl_h * HOURS)


def remove_attempt(cfg: DedupConfig, record: OwnerRecord) -> None:
    """After the stage, whatever its outcome: delete this attempt's keys and record. When Redis
    is gone this only warns, so the error that ended the stage (if any) is the one the user
    sees; the next attempt on the folder, an expired lease or `crawl2gpt dedup-clean` deletes them."""
    import redis

    try:
        delete_attempt(client(cfg), cfg.redis_prefix, record)
    except redis.RedisError as err:
        log.warning(
            "could not delete this dedup run's keys in Redis at %s:%s (%s); the next run on the same "
            "folder or `crawl2gpt dedup-clean %s` deletes them",
            cfg.redis_host,
            cfg.redis_port,
            err,
            record.folder or "FOLDER",
        )
