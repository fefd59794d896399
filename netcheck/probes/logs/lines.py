"""A line of a log: the access-log format parsed (``combined``, ``vhost_combined``) into a
:class:`LogLine`, its time, an address in one spelling, and text made printable and bounded.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Optional

MAX_LINE = 64 << 10
MAX_MATCHES = 20
MAX_SHOWN_CHARS = 400

_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
_ACCESS_TIME = re.compile(rb"\[(\d{2})/([A-Z][a-z]{2})/(\d{4}):(\d{2}):(\d{2}):(\d{2}) "
                          rb"([+-])(\d{2})(\d{2})\]")
ACCESS_LINE = re.compile(
    rb'^(?:(?P<vhost>[^\s\[]+:\d+) )?(?P<client>[^\s\[]+) (?P<ident>\S+) (?P<user>\S+) '
    rb'\[(?P<time>[^\]]+)\] "(?P<request>(?:[^"\\]|\\.)*)" (?P<status>\d{3}|-) '
    rb'(?P<bytes>\d+|-)(?P<rest>.*)$')
_QUOTED = re.compile(rb'"((?:[^"\\]|\\.)*)"')


def _epoch(day: int, month: int, year: int, hh: int, mm: int, ss: int, sign: bytes,
           oh: int, om: int) -> float:
    offset = (oh * 3600 + om * 60) * (1 if sign == b"+" else -1)
    return float(calendar.timegm((year, month, day, hh, mm, ss, 0, 0, 0)) - offset)


def access_time(line: bytes) -> Optional[float]:
    """The epoch time of an access-log line (``[10/Oct/2025:13:55:36 +0000]``), or None."""
    m = _ACCESS_TIME.search(line, 0, 400)
    if m is None:
        return None
    month = _MONTHS.get(m.group(2).decode())
    if month is None:
        return None
    try:
        return _epoch(int(m.group(1)), month, int(m.group(3)), int(m.group(4)),
                      int(m.group(5)), int(m.group(6)), m.group(7), int(m.group(8)),
                      int(m.group(9)))
    except (ValueError, OverflowError):
        return None


def _printable(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace").rstrip("\r\n")
    text = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
    return text if len(text) <= MAX_SHOWN_CHARS else text[:MAX_SHOWN_CHARS - 3] + "..."


def _iso(epoch: Optional[float]) -> Optional[str]:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")


def normal_address(text: str) -> str:
    """An address as a log writes it, in one spelling (IPv4-mapped IPv6 as IPv4)."""
    import ipaddress

    try:
        ip = ipaddress.ip_address(text.strip("[]").split("%")[0])
    except ValueError:
        return text
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped if mapped is not None else ip)


@dataclass
class LogLine:
    """One line of a log that matters, parsed as far as its format allows."""

    file: str
    text: str
    time: Optional[float] = None
    client: Optional[str] = None
    status: Optional[int] = None
    request: Optional[str] = None
    agent: Optional[str] = None
    level: Optional[str] = None  # error logs

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"file": self.file, "line": self.text}
        for key in ("client", "status", "request", "agent", "level"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.time is not None:
            out["time"] = _iso(self.time)
        return out


def parse_access(raw: bytes, file: str = "") -> LogLine:
    """An access-log line: client, time, request, status and User-Agent when it parses."""
    line = LogLine(file, _printable(raw))
    m = ACCESS_LINE.match(raw.rstrip(b"\r\n")[:MAX_LINE])
    if m is None:
        return line
    line.client = normal_address(m.group("client").decode("ascii", "replace"))
    line.time = access_time(raw)
    status = m.group("status")
    line.status = int(status) if status.isdigit() else None
    line.request = _printable(m.group("request"))
    quoted = _QUOTED.findall(m.group("rest"))
    if len(quoted) >= 2:
        line.agent = _printable(quoted[1])
    elif quoted:
        line.agent = _printable(quoted[-1])
    return line
