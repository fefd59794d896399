"""Error logs (nginx and Apache): their lines parsed, and one file searched for the errors of
a time window (and of one client), the client's own mistakes told apart from faults.
"""

from __future__ import annotations

import collections
import io
import re
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Optional

from netcheck.probes.logs.files import _blocks, _open
from netcheck.probes.logs.lines import MAX_LINE, LogLine, _printable, normal_address

MAX_ERROR_LOG_BYTES = 16 << 20
# nginx: `2025/10/10 13:55:36 [error] 812#812: *5 message, client: 198.18.1.2, ...`
NGINX_ERROR = re.compile(rb"^(\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}) \[(\w+)\] (.*)$")
# Apache 2.4: `[Fri Oct 10 13:55:36.123456 2025] [core:error] [pid 1:tid 2] [client a:p] ...`
APACHE_ERROR = re.compile(rb"^\[(\w{3} (\w{3}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2})(?:\.\d+)? "
                          rb"(\d{4}))\] \[(?:[\w-]+:)?(\w+)\] (.*)$")
_NGINX_CLIENT = re.compile(rb"client: ([0-9A-Fa-f:.]+)")
_APACHE_CLIENT = re.compile(rb"\[client ([^\]]+)\]")
ERROR_LEVELS = ("error", "crit", "alert", "emerg")
# Error-log lines that only accompany the client's own mistakes (answered 4xx), not a fault:
# a file that is not there (nginx's `open() "..." failed (2: ...)`, Apache's AH00128), a
# forbidden directory, a request too large. nginx's *upstream* `connect() to unix:...php-fpm
# .sock failed (2: No such file or directory)` is a fault, so "No such file" alone is not.
CLIENT_CAUSED = re.compile(
    rb'open\(\) "[^"]*" failed \(2: No such file or directory\)|is forbidden|'
    rb'directory index of|client intended to send too large|client sent invalid|'
    rb'AH00128|AH01276|AH01630|File does not exist')


def _local_epoch(text: str, fmt: str) -> Optional[float]:
    try:
        return datetime.strptime(text, fmt).timestamp()  # naive: the server's local time
    except ValueError:
        return None


def parse_error(raw: bytes, file: str = "") -> Optional[LogLine]:
    """An nginx or Apache error-log line (time, level, client), or None if it is neither."""
    raw = raw.rstrip(b"\r\n")[:MAX_LINE]
    m = NGINX_ERROR.match(raw)
    if m:
        line = LogLine(file, _printable(raw), level=m.group(2).decode().lower(),
                       time=_local_epoch(m.group(1).decode(), "%Y/%m/%d %H:%M:%S"))
        c = _NGINX_CLIENT.search(m.group(3))
        if c:
            line.client = normal_address(c.group(1).decode())
        return line
    m = APACHE_ERROR.match(raw)
    if m:
        stamp = f"{m.group(2).decode()} {int(m.group(3))} {m.group(4).decode()}:" \
                f"{m.group(5).decode()}:{m.group(6).decode()} {m.group(7).decode()}"
        line = LogLine(file, _printable(raw), level=m.group(8).decode().lower(),
                       time=_local_epoch(stamp, "%b %d %H:%M:%S %Y"))
        c = _APACHE_CLIENT.search(m.group(9))
        if c:
            host = c.group(1).decode()
            # `[client 198.18.1.2:50412]`, `[client 2001:db8::2:50412]`: Apache 2.4 adds
            # the port; 2.2 wrote the address alone.
            head, _, tail = host.rpartition(":")
            if head and tail.isdigit() and ("." in host or host.count(":") > 1):
                host = head
            line.client = normal_address(host)
        return line
    return None


@dataclass
class ErrorScan:
    """Errors of the window in an error log (``error`` level and worse)."""

    path: str
    lines: list[LogLine] = field(default_factory=list)  # the last few
    count: int = 0
    client_caused: int = 0  # errors that only accompany a client's 4xx (not counted)
    bytes_read: int = 0
    error: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "errors": self.count,
                               "lines": [ln.to_json() for ln in self.lines]}
        if self.client_caused:
            out["client_caused"] = self.client_caused
        if self.error:
            out["error"] = self.error
        return out


def scan_errors(path: str, since: float, client: Optional[str] = None,
                max_bytes: int = MAX_ERROR_LOG_BYTES, deadline: Optional[float] = None
                ) -> ErrorScan:
    """Errors (level error, crit, alert, emerg) since ``since`` in the tail of an error log,
    for ``client`` when given. Errors that only say the client asked for something missing
    or forbidden are counted apart: they go with 4xx answers, not with a fault."""
    result = ErrorScan(path)
    want = normal_address(client) if client else None
    deadline = deadline if deadline is not None else time.monotonic() + 2.0
    kept: collections.deque[LogLine] = collections.deque(maxlen=10)
    try:
        fh, gz, size = _open(path)
    except OSError as exc:
        result.error = exc.strerror or str(exc)
        return result
    try:
        if not gz and size is not None and size > max_bytes:
            fh.seek(size - max_bytes)
            fh.readline()  # a partial line
        for data in _blocks(fh, max_bytes):
            result.bytes_read += len(data)
            for raw in io.BytesIO(data):
                if not any(level.encode() in raw[:120] for level in ERROR_LEVELS):
                    continue
                line = parse_error(raw, path)
                if line is None or line.level not in ERROR_LEVELS:
                    continue
                if line.time is not None and line.time < since:
                    continue
                if want and line.client != want:
                    continue
                if CLIENT_CAUSED.search(raw):
                    result.client_caused += 1
                    continue
                result.count += 1
                kept.append(line)
            if time.monotonic() > deadline:
                break
    except (OSError, EOFError, zlib.error) as exc:
        result.error = str(exc)
    finally:
        fh.close()
    result.lines = list(kept)
    return result
