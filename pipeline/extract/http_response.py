"""The HTTP part of a WARC `response` record's block: status, headers and body.

Bytes in, never an exception out: a block that is not HTTP gives None, a body whose
`Transfer-Encoding: chunked` header lies (Common Crawl keeps the header but stores most payloads
already de-chunked) is kept as it is.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class HttpResponse:
    """The HTTP part of a `response` record's block."""

    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes


def parse_http_response(block: bytes) -> HttpResponse | None:
    """Split a response block into status, headers and body; None if it is not HTTP."""
    if not block.startswith(b"HTTP/"):
        return None
    end = block.find(b"\r\n\r\n")
    sep = 4
    if end < 0:
        end, sep = block.find(b"\n\n"), 2
    if end < 0:
        end, sep = len(block), 0
    head = block[:end].decode("latin-1").splitlines()
    try:
        status = int(head[0].split(None, 2)[1])
    except (IndexError, ValueError):
        return None
    headers: dict[str, str] = {}
    for line in head[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    body = block[end + sep :]
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _dechunk(body)
    return HttpResponse(status, headers, body)


def _dechunk(body: bytes) -> bytes:
    """Undo HTTP chunked transfer coding; leave the body as is if it is not really chunked
    (Common Crawl keeps the header but stores most payloads already de-chunked)."""
    out, pos = bytearray(), 0
    while True:
        nl = body.find(b"\r\n", pos)
        if nl < 0:
            return body
        try:
            size = int(body[pos:nl].split(b";")[0].strip(), 16)
        except ValueError:
            return body
        if size == 0:
            return bytes(out)
        out += body[nl + 2 : nl + 2 + size]
        pos = nl + 2 + size + 2
        if pos > len(body):
            return bytes(out)
