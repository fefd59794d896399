"""HTTP/1.1 framing (RFC 9112), bytes only: the status line and header block parsed,
whether a prefix can still become HTTP, how a body ends and its chunked decoding, the request
bytes sent, and an error page's <title>. No sockets here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from netcheck import __version__
from netcheck.probes.banner import first_line
from netcheck.probes.http.url import UrlParts

MAX_HEADER_BYTES = 64 * 1024  # curl allows 100 KiB, nginx 8 KiB per line: 64 KiB is plenty
REDIRECT_STATUSES = (301, 302, 303, 307, 308)

_STATUS_LINE = re.compile(rb"^HTTP/(\d(?:\.\d)?) +(\d{3})(?: +(.*?))?\s*$")
# A status line still arriving: "HTTP/1.1 20" may become one, "HTTP/x" never will.
_STATUS_PREFIX = re.compile(rb"^HTTP/(\d(\.\d?)?)?( +(\d{1,3}( .*)?)?)?\r?$", re.DOTALL)
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_TOKEN = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


class ProtocolError(ValueError):
    """The bytes received are not HTTP/1.x as RFC 9112 frames it."""


class Headers:
    """Response header fields in order; lookups are case-insensitive."""

    def __init__(self, items: Optional[list[tuple[str, str]]] = None) -> None:
        self.items: list[tuple[str, str]] = list(items or [])

    def get_all(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self.items if key.lower() == wanted]

    def get(self, name: str, default: Optional[str] = None) -> Optional[str]:
        found = self.get_all(name)
        return found[-1] if found else default

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(self.get_all(name))

    def __len__(self) -> int:
        return len(self.items)


@dataclass
class Head:
    """A parsed status line and header block."""

    version: str
    status: int
    reason: str
    status_line: str
    headers: Headers


def parse_status_line(line: bytes) -> tuple[str, int, str]:
    """``HTTP/1.1 200 OK`` -> ("1.1", 200, "OK"); :class:`ProtocolError` otherwise."""
    match = _STATUS_LINE.match(line.rstrip(b"\r"))
    if not match:
        raise ProtocolError("not an HTTP status line")
    status = int(match.group(2))
    if not 100 <= status <= 599:
        raise ProtocolError(f"status {status} is out of range")
    reason = (match.group(3) or b"").decode("latin-1")
    return match.group(1).decode("ascii"), status, reason


def parse_head(block: bytes) -> Head:
    """Parse a status line and its header fields (the bytes before the empty line).

    Obsolete line folding is joined; lines that are not ``name: value`` are dropped, as
    lenient clients do, but a bad status line is a :class:`ProtocolError`.
    """
    lines = re.split(rb"\r?\n", block.lstrip(b"\r\n"))
    version, status, reason = parse_status_line(lines[0])
    items: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line.strip():
            continue
        if line[:1] in (b" ", b"\t"):
            if items:
                name, value = items[-1]
                items[-1] = (name, f"{value} {line.strip().decode('latin-1')}")
            continue
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.match(name):
            continue
        items.append((name.decode("ascii"), value.strip().decode("latin-1")))
    status_line = lines[0].rstrip(b"\r").decode("latin-1")
    return Head(version, status, reason, status_line, Headers(items))


def could_be_http(prefix: bytes) -> bool:
    """Could a response that starts with these bytes still be HTTP/1.x?"""
    data = prefix.lstrip(b"\r\n")
    if not data:
        return True
    if len(data) < 5:
        return b"HTTP/".startswith(data)
    if not data.startswith(b"HTTP/"):
        return False
    end = data.find(b"\n")
    if end < 0:
        return len(data) < 256 and bool(_STATUS_PREFIX.match(data))
    return bool(_STATUS_LINE.match(data[:end].rstrip(b"\r")))


def body_framing(status: int, headers: Headers, method: str = "GET") -> tuple[str, Optional[int]]:
    """How the body ends (RFC 9112 6.3): ("none" | "chunked" | "length" | "close", length)."""
    if method == "HEAD" or 100 <= status < 200 or status in (204, 304):
        return "none", 0
    encodings = [e.strip().lower() for v in headers.get_all("Transfer-Encoding")
                 for e in v.split(",") if e.strip()]
    if encodings:
        if encodings[-1] == "chunked":
            return "chunked", None
        return "close", None  # an encoding without chunked: the body ends at close
    lengths = {v.strip() for value in headers.get_all("Content-Length") for v in value.split(",")}
    if lengths:
        if len(lengths) != 1 or not next(iter(lengths)).isdigit():
            raise ProtocolError(f"bad Content-Length {sorted(lengths)[:3]}")
        return "length", int(next(iter(lengths)))
    return "close", None


class ChunkedDecoder:
    """Incremental ``Transfer-Encoding: chunked`` decoder that never holds more than a line.

    ``feed(data)`` returns the body pieces found in ``data``; ``done`` turns True after the
    last chunk and its trailer, and ``leftover`` then holds whatever followed the body.
    """

    MAX_LINE = 4096

    def __init__(self, max_trailer: int = MAX_HEADER_BYTES) -> None:
        self.state = "size"
        self.remaining = 0
        self.line = b""
        self.done = False
        self.leftover = b""
        self.max_trailer = max_trailer
        self.trailer_bytes = 0

    def _take_line(self, data: bytes, pos: int) -> tuple[Optional[bytes], int]:
        end = data.find(b"\n", pos)
        if end < 0:
            self.line += data[pos:]
            if len(self.line) > self.MAX_LINE:
                raise ProtocolError("chunk framing line too long")
            return None, len(data)
        line = (self.line + data[pos:end]).rstrip(b"\r")
        self.line = b""
        if len(line) > self.MAX_LINE:
            raise ProtocolError("chunk framing line too long")
        return line, end + 1

    def feed(self, data: bytes) -> list[bytes]:
        pieces: list[bytes] = []
        pos = 0
        while pos < len(data) and not self.done:
            if self.state == "data":
                take = min(self.remaining, len(data) - pos)
                pieces.append(data[pos:pos + take])
                pos += take
                self.remaining -= take
                if self.remaining == 0:
                    self.state = "crlf"
                continue
            line, pos = self._take_line(data, pos)
            if line is None:
                break
            if self.state == "size":
                size_text = line.split(b";", 1)[0].strip()
                if not size_text or len(size_text) > 16 or not re.fullmatch(
                        rb"[0-9A-Fa-f]+", size_text):
                    raise ProtocolError(f"bad chunk size {size_text[:20]!r}")
                size = int(size_text, 16)
                self.state, self.remaining = ("trailer", 0) if size == 0 else ("data", size)
            elif self.state == "crlf":
                if line:
                    raise ProtocolError("chunk not followed by CRLF")
                self.state = "size"
            else:  # trailer fields, until an empty line
                self.trailer_bytes += len(line)
                if self.trailer_bytes > self.max_trailer:
                    raise ProtocolError("chunked trailer too large")
                if not line:
                    self.done = True
        if self.done:
            self.leftover = data[pos:]
        return pieces


def build_request(parts: UrlParts, user_agent: str, *, absolute: bool = False,
                  proxy_authorization: Optional[str] = None) -> bytes:
    """The GET request bytes: origin-form, or absolute-form for a proxy."""
    target = parts.url if absolute else parts.path
    lines = [f"GET {target} HTTP/1.1", f"Host: {parts.authority}",
             f"User-Agent: {user_agent}", "Accept: */*",
             # identity: the byte counts are the bytes the server sent, no decoding
             "Accept-Encoding: identity"]
    if proxy_authorization:
        lines.append(f"Proxy-Authorization: {proxy_authorization}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def user_agent_for(request_id: Optional[str]) -> str:
    """``netcheck/VERSION (+REQUEST_ID)``: the server's log finds this run by its id."""
    return f"netcheck/{__version__} (+{request_id})" if request_id else f"netcheck/{__version__}"


def page_title(sample: bytes) -> Optional[str]:
    """The <title> of an HTML page sample (an error page says what it is), printable."""
    match = _TITLE.search(sample.decode("latin-1"))
    if not match:
        return None
    text = " ".join(match.group(1).split())
    return first_line(text.encode("latin-1", "replace"), 120) if text else None
