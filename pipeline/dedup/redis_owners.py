"""Owner records: which dedup attempt wrote which keys into Redis, and until when it counts as alive.

A dedup attempt with dedup.backend=redis writes thousands of keys (datasketch's band tables and
buckets, redis_keys.py names them). It deletes them when it ends; an attempt whose process or
Redis died cannot, and if its folder is never rerun nothing would ever delete them. So every
attempt first writes an owner record into one hash per prefix, `<dedup.redis_prefix>:attempts`:

    field  the attempt's datasketch basename (`prefix:<folder digest>:<attempt>`)
    value  JSON: the output folder, the names of its tables, host, pid, when it started, when it
           last renewed the record and `expires`: Redis's own clock + dedup.redis_ttl_h, pushed
           on after every part it indexes and every band it reads back (a live attempt's lease)

From the record alone every key of the attempt is found without looking at any other key:
datasketch's tables are Redis hashes whose values are the names of their bucket keys (it
writes a bucket and its table entry in one MULTI/EXEC), so deleting HSCANs those few hashes,
UNLINKs the keys they name, then the hashes, then the record. No SCAN of the keyspace and no
KEYS: the cost is the attempt's own keys, however many others a shared Redis holds.

Who deletes what (delete_attempt):
  - the attempt itself, when it ends (lsh.BandIndex.close);
  - the next attempt on the same output folder, first thing (one writer per folder: the run lock);
  - any dedup on the same Redis and prefix, first thing: the attempts whose lease expired
    (no sign of life for dedup.redis_ttl_h hours, 72 by default);
  - `crawl2gpt dedup-clean FOLDER` (a folder that will not be rerun) and `--expired`.
Keys written before owner records existed (crawl2gpt before issue 24) have none and are not
found: delete them once, while no dedup uses that Redis, with
`redis-cli --scan --pattern 'crawl2gpt:*' | xargs redis-cli unlink`.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger("crawl2gpt.dedup")
BATCH = 10_000  # keys per HSCAN page and per UNLINK


def registry_key(prefix: str) -> bytes:
    """The hash holding every owner record of this prefix."""
    return f"{prefix}:attempts".encode()


def redis_clock(redis_client) -> float:
    """Redis's own time in seconds: one clock for every host that shares the server."""
    seconds, micros = redis_client.time()
    return seconds + micros / 1e6


@dataclass
class OwnerRecord:
    """One attempt's keys: its basename, the tables that name all its other keys, and its lease."""

    basename: bytes
    folder: str  # the stage output folder the attempt writes (resolved), or "" when it had none
    tables: list[bytes]
    expires: float  # Redis clock; past it the attempt counts as abandoned
    started: float = 0.0
    renewed: float = 0.0  # its last sign of life (Redis clock)
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)

    def to_json(self) -> bytes:
        record = asdict(self)
        del record["basename"]  # the field's name
        record["tables"] = [t.hex() for t in self.tables]  # datasketch's table names end in raw bytes
        return json.dumps(record, sort_keys=True).encode()

    @classmethod
    def from_json(cls, basename: bytes, value: bytes) -> OwnerRecord:
        record = json.loads(value)
        record["tables"] = [bytes.fromhex(t) for t in record["tables"]]
        return cls(basename=basename, **record)

    def inside(self, folder: Path) -> bool:
        """Whether the attempt wrote `folder` or a folder below it."""
        top = str(Path(folder).resolve())
        return bool(self.folder) and (self.folder == top or self.folder.startswith(top.rstrip(os.sep) + os.sep))


def write_record(redis_client, prefix: str, record: OwnerRecord, ttl_s: float) -> None:
    """Write (or renew) the record, its lease ending ttl_s from now on Redis's clock."""
    now = redis_clock(redis_client)
    record.started = record.started or now
    record.renewed, record.expires = now, now + ttl_s
    redis_client.hset(registry_key(prefix), record.basename, record.to_json())


def read_records(redis_client, prefix: str) -> list[OwnerRecord]:
    """Every owner record of the prefix (HSCAN of the one registry hash). A record that cannot
    be parsed is skipped with a warning, not deleted: it is not ours to judge."""
    records = []
    for basename, value in redis_client.hscan_iter(registry_key(prefix), count=BATCH):
        try:
            records.append(OwnerRecord.from_json(basename, value))
        except (ValueError, TypeError, KeyError) as err:
            log.warning(
                "unreadable dedup owner record %r in %s (%s): left alone", basename, registry_key(prefix).decode(), err
            )
    return records


def delete_attempt(redis_client, prefix: str, record: OwnerRecord) -> int:
    """Delete every key of the attempt, then its record; returns how many keys (tables included).
    Safe to repeat and to run twice at once: deleting a missing key is a no-op."""
    deleted = 0
    for table in record.tables:
        batch: list[bytes] = []
        for _bucket, key in redis_client.hscan_iter(table, count=BATCH):
            batch.append(key)
            if len(batch) >= BATCH:
                deleted += redis_client.unlink(*batch)
                batch.clear()
        if batch:
            deleted += redis_client.unlink(*batch)
        deleted += redis_client.unlink(table)
    redis_client.hdel(registry_key(prefix), record.basename)  # last: until here the keys stay findable
    return deleted


def delete_records(redis_client, prefix: str, records: list[OwnerRecord]) -> int:
    return sum(delete_attempt(redis_client, prefix, record) for record in records)


def expired(redis_client, records: list[OwnerRecord]) -> list[OwnerRecord]:
    now = redis_clock(redis_client)
    return [record for record in records if record.expires < now]
