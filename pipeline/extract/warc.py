"""Stream WARC records out of a (gzipped) WARC file, surviving damage.

Why not warcio: it stops at the first bad gzip member, and a Common Crawl file is a chain
of ~40,000 independent gzip members (one per record, WARC 1.1 annex D.2). This reader
decompresses member by member, so a corrupt member costs only its own record: the reader
resynchronises on the next gzip header (or, in a plain .warc, on the next `WARC/1.x` line),
counts the damage and goes on. It also never holds more than one record block in memory,
and lets the caller skip a block without copying it (early skipping of non-HTML payloads).

    for record in iter_warc_records(fh, source="file.warc.gz", counts=counts, errors=errors):
        record.rec_type, record.headers["warc-target-uri"], record.offset
        block = record.read_block(limit)   # or leave it: the next iteration skips it

Counts written into `counts`: `records`, `corrupt_record` (bad gzip member, bad header,
garbage between records), `truncated_file` (the file ends inside a record), `corrupt_file`
(no WARC record at all). `errors` gets one line per problem, with the file name and offset.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from pipeline.errors import CorruptWarcError

GZIP_MAGIC = b"\x1f\x8b\x08"
WARC_MAGIC = b"WARC/"
READ_CHUNK = 1 << 16
MAX_HEADER_LINE = 64 * 1024  # a header line longer than this is garbage, not a header
MAX_HEADER_LINES = 512
MAX_ERRORS_LISTED = 50  # per file: past this, problems are only counted


class _BadMember(Exception):
    """Raised inside the reader when a gzip member cannot be decompressed."""


class _Inflater:
    """The decompressed byte stream of a multi-member gzip file (or a plain file), resumable.

    `member_offset(pos)` answers which compressed offset the byte at decompressed position
    `pos` came from, so a record can be traced back to its gzip member (what Common Crawl's
    index stores as `offset`). After a bad member, `resync()` skips to the next gzip header.
    """

    def __init__(self, raw: BinaryIO, gzipped: bool, member_cap: int):
        self.raw, self.gzipped, self.member_cap = raw, gzipped, member_cap
        self.pending = b""  # raw bytes read but not yet fed to the decompressor
        self.raw_pos = 0  # raw offset of pending[0]
        self.buf = bytearray()  # decompressed, not yet consumed
        self.pos = 0  # decompressed position of buf[0] (absolute, across members)
        self.eof = False
        self.dec: zlib._Decompress | None = None
        self.member_out = 0
        self.marks: list[tuple[int, int]] = []  # (decompressed pos, raw offset) member starts

    # -- raw side ----------------------------------------------------------------------

    def _raw_more(self) -> bool:
        chunk = self.raw.read(READ_CHUNK)
        if not chunk:
            return False
        self.pending += chunk
        return True

    def _take_pending(self, n: int) -> bytes:
        data, self.pending = self.pending[:n], self.pending[n:]
        self.raw_pos += len(data)
        return data

    def _start_member(self) -> bool:
        """Position at a gzip header; False at the end of the file."""
        while len(self.pending) < 3 and self._raw_more():
            pass
        if not self.pending:
            return False
        if not self.pending.startswith(GZIP_MAGIC[: len(self.pending)]) or len(self.pending) < 3:
            raise _BadMember(f"no gzip header at offset {self.raw_pos}")
        self.dec = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.member_out = 0
        self.marks.append((self.pos + len(self.buf), self.raw_pos))
        return True

    # -- decompressed side ---------------------------------------------------------------

    def fill(self) -> bool:
        """Append more decompressed bytes to `buf`; False at the end of the stream."""
        if self.eof:
            return False
        if not self.gzipped:
            if not self.marks:
                self.marks.append((0, 0))
            chunk = self.raw.read(READ_CHUNK)
            if not chunk:
                self.eof = True
                return False
            self.buf += chunk
            self.raw_pos += len(chunk)
            return True
        while True:
            if self.dec is None and not self._start_member():
                self.eof = True
                return False
            if not self.pending and not self._raw_more():
                start = self.marks[-1][1]
                self.dec, self.eof = None, True
                raise _BadMember(f"gzip member at offset {start} is cut short (file truncated)")
            data = self._take_pending(len(self.pending))
            try:
                out = self.dec.decompress(data, READ_CHUNK * 4)
            except zlib.error as err:
                # Put the bytes back: the next member may start inside them.
                self.pending, self.raw_pos, self.dec = data + self.pending, self.raw_pos - len(data), None
                raise _BadMember(f"bad gzip member at offset {self.marks[-1][1]}: {err}") from None
            # Bytes not consumed (output cap or member end) go back in front of pending. At the
            # member end only unused_data counts: CPython may leave a stale copy in the tail.
            rest = self.dec.unused_data if self.dec.eof else self.dec.unconsumed_tail
            self.pending = rest + self.pending
            self.raw_pos -= len(rest)
            self.member_out += len(out)
            if self.member_out > self.member_cap:
                self.dec = None
                self.buf.clear()
                raise _BadMember(
                    f"gzip member at offset {self.marks[-1][1]} inflates past {self.member_cap} bytes (bomb guard)"
                )
            if self.dec.eof:
                self.dec = None
            if out:
                self.buf += out
                return True

    def resync(self) -> None:
        """Drop what is buffered and move to the next gzip header after the bad member."""
        self.pos += len(self.buf)
        self.buf.clear()
        self.dec = None
        if not self.gzipped:
            return
        self.eof = False
        skip_from = 1 if self.pending.startswith(GZIP_MAGIC) else 0
        while True:
            at = self.pending.find(GZIP_MAGIC, skip_from)
            if at >= 0:
                self._take_pending(at)
                return
            keep = min(len(self.pending), 2)  # a header may straddle two reads
            self._take_pending(len(self.pending) - keep)
            skip_from = 0
            if not self._raw_more():
                self._take_pending(len(self.pending))
                self.eof = True
                return

    def member_offset(self, pos: int) -> int:
        if not self.gzipped:
            return pos
        offset = 0
        for start, raw in self.marks:
            if start > pos:
                break
            offset = raw
        # Forget marks before the current one: memory stays flat over a long file.
        while len(self.marks) > 1 and self.marks[1][0] <= pos:
            self.marks.pop(0)
        return offset

    # -- reading -------------------------------------------------------------------------

    def readline(self, limit: int = MAX_HEADER_LINE) -> bytes:
        while True:
            nl = self.buf.find(b"\n", 0, limit)
            if nl >= 0:
                return self._consume(nl + 1)
            if len(self.buf) >= limit or not self.fill():
                return self._consume(min(len(self.buf), limit))

    def read(self, n: int) -> bytes:
        while len(self.buf) < n and self.fill():
            pass
        return self._consume(min(n, len(self.buf)))

    def skip(self, n: int) -> int:
        skipped = 0
        while skipped < n:
            if not self.buf and not self.fill():
                break
            step = min(n - skipped, len(self.buf))
            self._consume(step)
            skipped += step
        return skipped

    def _consume(self, n: int) -> bytes:
        data = bytes(self.buf[:n])
        del self.buf[:n]
        self.pos += n
        return data


@dataclass
class WarcRecord:
    """One WARC record: its headers (names lower-cased) and a lazily read block."""

    rec_type: str
    headers: dict[str, str]
    offset: int  # raw offset of the gzip member holding the record (or of the record)
    length: int  # Content-Length of the block
    _reader: _Inflater = field(repr=False)
    _left: int = field(repr=False, default=0)
    damaged: str = ""  # set when the block could not be read whole; the reader counts it

    def read_block(self, limit: int | None = None) -> bytes:
        """Read up to `limit` bytes of the block (all of it by default); the rest is skipped later.

        On damage, returns what could be read and sets `damaged`: check it before using the bytes.
        """
        n = self._left if limit is None else min(limit, self._left)
        try:
            data = self._reader.read(n)
        except _BadMember as err:
            self.damaged = str(err)
            return b""
        self._left -= len(data)
        if len(data) < n:
            self.damaged = f"record at offset {self.offset} is cut short (file truncated)"
        return data


def _parse_headers(reader: _Inflater) -> dict[str, str] | None:
    headers: dict[str, str] = {}
    last = None
    for _ in range(MAX_HEADER_LINES):
        line = reader.readline()
        if not line:
            return None
        if line in (b"\r\n", b"\n"):
            return headers
        if line[:1] in (b" ", b"\t") and last:  # folded continuation line (RFC 2616 2.2)
            headers[last] += " " + line.strip().decode("utf-8", "replace")
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            return None
        last = name.strip().decode("latin-1").lower()
        headers[last] = value.strip().decode("utf-8", "replace")
    return None


def _sniff_gzip(raw: BinaryIO) -> tuple[bool, bytes]:
    head = raw.read(3)
    return head.startswith(b"\x1f\x8b"), head


class _Prefixed:
    """A raw stream with bytes already read put back in front."""

    def __init__(self, head: bytes, raw: BinaryIO):
        self.head, self.raw = head, raw

    def read(self, n: int) -> bytes:
        if self.head:
            data, self.head = self.head[:n], self.head[n:]
            return data
        return self.raw.read(n)


def iter_warc_records(
    raw: BinaryIO,
    source: str,
    counts: dict[str, int],
    errors: list[str],
    member_cap: int = 64_000_000,
) -> Iterator[WarcRecord]:
    """Yield every readable record of a WARC stream; count and report what cannot be read.

    Never raises for bad bytes (see `check_warc` for a raising variant). Unread block bytes
    are skipped before the next record.
    """
    gzipped, head = _sniff_gzip(raw)
    reader = _Inflater(_Prefixed(head, raw), gzipped, member_cap)
    found = 0

    def problem(kind: str, message: str) -> None:
        counts[kind] = counts.get(kind, 0) + 1
        if len(errors) < MAX_ERRORS_LISTED:
            errors.append(f"{source}: {message}")

    in_garbage = False
    while True:
        try:
            line = reader.readline()
            if not line:
                break
            if line in (b"\r\n", b"\n"):  # the two CRLFs that end every record
                continue
            start = 0
            if not line.startswith(WARC_MAGIC):
                # Garbage with no newline at its end runs straight into the next record's
                # `WARC/1.x` line (the next gzip member): find it inside the line.
                start = line.find(WARC_MAGIC + b"1.") if in_garbage else -1
                if start <= 0:
                    if not in_garbage:
                        problem(
                            "corrupt_record",
                            f"unexpected bytes at offset {reader.member_offset(reader.pos)}, "
                            "skipping to the next record",
                        )
                        in_garbage = True
                    continue
            in_garbage = False
            offset = reader.member_offset(reader.pos - len(line) + start)
            headers = _parse_headers(reader)
            length = _content_length(headers)
            if headers is None or length is None:
                problem("corrupt_record", f"record at offset {offset} has an unreadable header")
                in_garbage = True
                continue
            counts["records"] = counts.get("records", 0) + 1
            found += 1
            record = WarcRecord(headers.get("warc-type", "unknown").lower(), headers, offset, length, reader, length)
            yield record
            if record.damaged:
                raise _BadMember(record.damaged)
            if record._left and reader.skip(record._left) < record._left:
                raise _BadMember(f"record at offset {offset} is cut short (file truncated)")
        except _BadMember as err:
            truncated = "cut short" in str(err)
            problem("truncated_file" if truncated else "corrupt_record", str(err))
            in_garbage = False
            reader.resync()
    if not found:
        problem("corrupt_file", "no WARC record found (not a WARC file, or damaged from the start)")


def _content_length(headers: dict[str, str] | None) -> int | None:
    if headers is None:
        return None
    try:
        length = int(headers.get("content-length", ""))
    except ValueError:
        return None
    return length if length >= 0 else None


def check_warc(raw: BinaryIO, source: str) -> int:
    """Count the records of a WARC stream; raise CorruptWarcError listing the damage if any."""
    counts: dict[str, int] = {}
    errors: list[str] = []
    for _ in iter_warc_records(raw, source, counts, errors):
        pass
    if errors:
        raise CorruptWarcError(f"{source} is damaged: " + "; ".join(errors[:5]))
    return counts.get("records", 0)
