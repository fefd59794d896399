"""The client's request in the server's logs: "check the log against the client's".

Access logs in the nginx/Apache ``combined`` format (and Apache's ``vhost_combined``, with
``host:port`` first, as in the slides), nginx and Apache error logs, and a unit's journal.
A request is found by the request id ``netcheck diagnose`` sends in its User-Agent
(``netcheck/VERSION (+ID)``) and/or by the client's address, within a time window.

Bounded whatever the file holds (a log of many GB, a binary file, a line with no end):

- the start of the window is found by bisecting the file on its timestamps (a few dozen
  reads of 64 KiB), never by reading from the top; at most ``max_bytes`` are read after it,
  in 1 MiB blocks, newest file first, and a time budget stops the reading (the result then
  says how far it got);
- a block is searched with ``bytes.find`` for the id or the address, so only the lines that
  contain them are parsed; status codes are counted with one regular expression per block;
- lines longer than 64 KiB are cut, at most 20 matching lines are kept;
- rotated files (``access.log.1``, ``access.log.2.gz``, ``access_log-20251010``) are read
  when the window reaches back before the current file, a ``.gz`` as a stream;
- a file whose first bytes hold NUL characters is not a text log and is not read.
"""

from __future__ import annotations

import calendar
import collections
import glob
import gzip
import io
import os
import re
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, Callable, Iterator, Optional, Union

BLOCK = 1 << 20
PROBE = 64 << 10
MAX_LINE = 64 << 10
MAX_SCAN_BYTES = 256 << 20
MAX_ERROR_LOG_BYTES = 16 << 20
MAX_MATCHES = 20
MAX_SHOWN_CHARS = 400
MAX_ROTATED = 9
MAX_ACCESS_LOGS = 6  # virtual hosts with a log each: searched together
# Log lines are written when a request ends (nginx) or stamped when it began (Apache): a
# file is ordered only roughly, so the bisection stops this far before the window.
ORDER_SLACK_S = 300.0
SNIFF_BYTES = 8192

_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
_ACCESS_TIME = re.compile(rb"\[(\d{2})/([A-Z][a-z]{2})/(\d{4}):(\d{2}):(\d{2}):(\d{2}) "
                          rb"([+-])(\d{2})(\d{2})\]")
ACCESS_LINE = re.compile(
    rb'^(?:(?P<vhost>[^\s\[]+:\d+) )?(?P<client>[^\s\[]+) (?P<ident>\S+) (?P<user>\S+) '
    rb'\[(?P<time>[^\]]+)\] "(?P<request>(?:[^"\\]|\\.)*)" (?P<status>\d{3}|-) '
    rb'(?P<bytes>\d+|-)(?P<rest>.*)$')
_QUOTED = re.compile(rb'"((?:[^"\\]|\\.)*)"')
# `"GET / HTTP/1.1" 503 197`: the status after the request's closing quote.
STATUS = re.compile(rb'" ([1-5]\d\d) (?:\d+|-)')
# A request line in a program's own log (the journal): the status may come without a size.
JOURNAL_STATUS = re.compile(r'" ([1-5]\d\d)(?= |$)')
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
# What a web server writes where, when it does not say (Debian's and RHEL's layouts).
DEFAULT_LOGS: dict[str, tuple[str, ...]] = {
    "nginx": ("/var/log/nginx/access.log", "/var/log/nginx/error.log"),
    "apache2": ("/var/log/apache2/access.log", "/var/log/apache2/other_vhosts_access.log",
                "/var/log/apache2/error.log"),
    "httpd": ("/var/log/httpd/access_log", "/var/log/httpd/error_log"),
    "lighttpd": ("/var/log/lighttpd/access.log", "/var/log/lighttpd/error.log"),
}


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


# -- files ------------------------------------------------------------------------------------

def is_gzip(path: str) -> bool:
    """By its magic bytes (a ``.gz`` name when it cannot be read)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(2) == b"\x1f\x8b"
    except OSError:
        return path.endswith(".gz")


def sniff_binary(path: str) -> Optional[str]:
    """Why ``path`` is not a text log (binary, broken gzip), or None (text, or unreadable:
    the check reports that itself)."""
    try:
        if is_gzip(path):
            with gzip.open(path, "rb") as gz:
                head = gz.read(SNIFF_BYTES)
        else:
            with open(path, "rb") as fh:
                head = fh.read(SNIFF_BYTES)
    except (EOFError, zlib.error, gzip.BadGzipFile):
        return "is not a valid gzip file"
    except OSError:
        return None
    if b"\0" in head:
        return "is not a text log (it holds binary data)"
    return None


def rotated_siblings(path: str) -> list[str]:
    """Older files of a rotated log, newest first: ``P.1``, ``P.2.gz``..., ``P-20251010``."""
    if re.search(r"(\.\d+|\.gz|-\d{8})$", path):
        return []  # already a rotated file: read as given
    found: list[str] = []
    for n in range(1, MAX_ROTATED + 1):
        for candidate in (f"{path}.{n}", f"{path}.{n}.gz"):
            if os.path.isfile(candidate):
                found.append(candidate)
    dated = sorted(glob.glob(glob.escape(path) + "-[0-9]*"), reverse=True)
    found += [p for p in dated if re.search(r"-\d{8}(\.gz)?$", p)]
    return found[:MAX_ROTATED]


def _first_time(fh: IO[bytes], offset: int, parse_time: Callable[[bytes], Optional[float]]
                ) -> Optional[tuple[int, float]]:
    """(offset, time) of the first line at or after ``offset`` whose time parses."""
    fh.seek(offset)
    chunk = fh.read(PROBE)
    start = 0
    if offset > 0:
        nl = chunk.find(b"\n")
        if nl < 0:
            return None
        start = nl + 1
    while start < len(chunk):
        end = chunk.find(b"\n", start)
        if end < 0:
            return None  # cut line at the end of the probe
        t = parse_time(chunk[start:end])
        if t is not None:
            return offset + start, t
        start = end + 1
    return None


def find_window_start(fh: IO[bytes], lo: int, hi: int, since: float,
                      parse_time: Callable[[bytes], Optional[float]] = access_time) -> int:
    """Bisect a time-ordered log for an offset shortly before the first line at ``since``."""
    target = since - ORDER_SLACK_S
    for _ in range(64):
        if hi - lo <= PROBE:
            break
        mid = (lo + hi) // 2
        found = _first_time(fh, mid, parse_time)
        if found is None:
            break  # a region that does not parse: read from lo
        pos, t = found
        if t < target:
            lo = pos
        else:
            hi = mid
    return lo


def _blocks(fh: IO[bytes], limit: int) -> Iterator[bytes]:
    """Complete lines from the current position, a block at a time, at most ``limit`` bytes.

    A line longer than MAX_LINE is cut there; the last line is given even without its end.
    """
    carry = b""
    left = limit
    while left > 0:
        data = fh.read(min(BLOCK, left))
        if not data:
            break
        left -= len(data)
        data = carry + data
        cut = data.rfind(b"\n")
        if cut < 0:
            carry = data if len(data) <= MAX_LINE else data[:MAX_LINE]
            continue
        yield data[:cut + 1]
        carry = data[cut + 1:]
    if carry:
        yield carry + b"\n"


def _lines_around(data: bytes, pos: int) -> tuple[int, int]:
    start = data.rfind(b"\n", 0, pos) + 1
    end = data.find(b"\n", pos)
    return start, (end if end >= 0 else len(data))


@dataclass
class FileRead:
    """How much of one file was read."""

    path: str
    size: Optional[int] = None
    read_from: int = 0
    bytes_read: int = 0
    gzip: bool = False
    first_time: Optional[float] = None
    error: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "bytes_read": self.bytes_read}
        if self.size is not None:
            out["size"] = self.size
        if self.read_from:
            out["read_from"] = self.read_from
        if self.gzip:
            out["gzip"] = True
        if self.error:
            out["error"] = self.error
        return out


@dataclass
class AccessScan:
    """What the access log(s) say about the window, and the lines that matched."""

    files: list[FileRead] = field(default_factory=list)
    matches: list[LogLine] = field(default_factory=list)  # the last MAX_MATCHES, oldest first
    matched: int = 0
    matched_5xx: int = 0
    requests: int = 0  # lines in the window
    statuses: dict[str, int] = field(default_factory=dict)  # "2xx": n ...
    server_errors: list[LogLine] = field(default_factory=list)  # last 5xx lines, any client
    server_error_count: int = 0
    parsed_any: bool = False  # some line had an access-log timestamp
    stopped: Optional[str] = None  # why not all of the window was read
    error: Optional[str] = None  # the main file could not be read at all

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "files": [f.to_json() for f in self.files], "requests": self.requests,
            "statuses": dict(self.statuses), "matched": self.matched,
            "lines": [m.to_json() for m in self.matches],
        }
        if self.server_error_count:
            out["server_errors"] = self.server_error_count
            out["server_error_lines"] = [m.to_json() for m in self.server_errors[-5:]]
        if self.stopped:
            out["stopped"] = self.stopped
        if self.error:
            out["error"] = self.error
        return out


def _open(path: str) -> tuple[IO[bytes], bool, Optional[int]]:
    if is_gzip(path):
        return gzip.open(path, "rb"), True, None  # type: ignore[return-value]
    fh = open(path, "rb")  # noqa: SIM115 - closed by the caller
    return fh, False, os.fstat(fh.fileno()).st_size


class _Scanner:
    """One pass over the access log files of a window (see :func:`scan_access`)."""

    def __init__(self, since: float, request_id: Optional[str], client: Optional[str],
                 deadline: float, max_bytes: int) -> None:
        self.since = since
        self.request_id = request_id
        self.client = normal_address(client) if client else None
        self.deadline = deadline
        self.budget = max_bytes
        self.max_bytes = max_bytes
        self.scan = AccessScan()
        self.found: list[LogLine] = []
        self.errors5: collections.deque[LogLine] = collections.deque(maxlen=MAX_MATCHES)
        if request_id:
            self.needles = [request_id.encode()]
        elif self.client:
            self.needles = [self.client.encode()]
        else:
            self.needles = []

    def wants(self, line: LogLine) -> bool:
        """The line is the client's request (id, address) inside the window."""
        if self.request_id and self.request_id not in line.text:
            return False
        if self.client and line.client != self.client:
            return False
        return line.time is None or line.time >= self.since

    def block(self, data: bytes, path: str) -> None:
        """Count and search one block of complete lines, all of them inside the window."""
        scan = self.scan
        scan.requests += data.count(b"\n")
        for m in STATUS.finditer(data):
            klass = f"{chr(m.group(1)[0])}xx"
            scan.statuses[klass] = scan.statuses.get(klass, 0) + 1
            if klass == "5xx":
                scan.server_error_count += 1
                start, end = _lines_around(data, m.start())
                self.errors5.append(parse_access(data[start:end], path))
        seen: set[int] = set()
        for needle in self.needles:
            pos = data.find(needle)
            while pos >= 0:
                start, end = _lines_around(data, pos)
                if start not in seen:
                    seen.add(start)
                    line = parse_access(data[start:end], path)
                    if self.wants(line):
                        scan.matched += 1
                        if line.status is not None and line.status >= 500:
                            scan.matched_5xx += 1
                        self.found.append(line)
                        if len(self.found) > 4 * MAX_MATCHES:
                            del self.found[:MAX_MATCHES]
                pos = data.find(needle, end)

    def window_part(self, data: bytes) -> Optional[bytes]:
        """The part of a block inside the window (None: all of it is older)."""
        last = data.rstrip(b"\n").rsplit(b"\n", 1)[-1]
        t_last = access_time(last)
        if t_last is not None:
            self.scan.parsed_any = True
            if t_last < self.since - ORDER_SLACK_S:
                return None
        t_first = access_time(data[:data.find(b"\n") + 1])
        if t_first is not None and t_first >= self.since:
            return data
        keep = [ln for ln in data.splitlines(keepends=True)
                if (access_time(ln) or self.since) >= self.since]
        return b"".join(keep)

    def file(self, path: str, newest: bool) -> Optional[float]:
        """Scan one file; return the time of its first line (to decide on older files)."""
        info = FileRead(path)
        self.scan.files.append(info)
        try:
            fh, info.gzip, info.size = _open(path)
        except OSError as exc:
            info.error = exc.strerror or str(exc)
            if newest:
                self.scan.error = f"cannot read {path}: {info.error}"
            return None
        try:
            return self._read(fh, info)
        except (OSError, EOFError, zlib.error) as exc:
            info.error = str(exc)
            if newest and not info.bytes_read:
                self.scan.error = f"cannot read {path}: {exc}"
            return None
        finally:
            fh.close()

    def _read(self, fh: IO[bytes], info: FileRead) -> Optional[float]:
        first = None
        if not info.gzip and info.size is not None:
            head = _first_time(fh, 0, access_time)
            first = head[1] if head else None
            lo = max(0, info.size - self.budget)
            start = find_window_start(fh, lo, info.size, self.since)
            if lo > 0 and start == lo:
                self.scan.stopped = (f"{info.path} is {info.size >> 20} MiB: only its last "
                                     f"{self.budget >> 20} MiB were read")
            info.read_from = start
            fh.seek(start)
        for data in _blocks(fh, self.budget):
            info.bytes_read += len(data)
            self.budget -= len(data)
            if first is None and info.gzip:
                first = access_time(data[:data.find(b"\n") + 1])
            part = self.window_part(data)
            if part:
                self.block(part, info.path)
            if time.monotonic() > self.deadline:
                self.scan.stopped = (f"stopped reading {info.path} after "
                                     f"{info.bytes_read >> 10} KiB: time budget spent")
                break
            if self.budget <= 0:
                self.scan.stopped = self.scan.stopped or (
                    f"stopped after {self.max_bytes >> 20} MiB of logs")
                break
        info.first_time = first
        return first

    def result(self) -> AccessScan:
        """The scan, with the last matching lines in time order."""
        ordered = sorted(self.found, key=lambda ln: ln.time or 0.0)
        self.scan.matches = ordered[-MAX_MATCHES:]
        self.scan.server_errors = list(self.errors5)
        return self.scan


def scan_access(paths: Union[str, list[str]], since: float, request_id: Optional[str] = None,
                client: Optional[str] = None, deadline: Optional[float] = None,
                max_bytes: int = MAX_SCAN_BYTES, rotated: bool = True) -> AccessScan:
    """Requests in access logs (and their rotated older files) since ``since`` (epoch).

    ``paths``: one log, or several (one per virtual host), searched under one budget.
    ``request_id`` / ``client``: the lines to find (both given: both must match).
    ``deadline``: a ``time.monotonic()`` value after which reading stops.
    """
    mains = [paths] if isinstance(paths, str) else list(paths)
    scanner = _Scanner(since, request_id, client,
                       deadline if deadline is not None else time.monotonic() + 5.0, max_bytes)
    failures = []
    for path in mains[:MAX_ACCESS_LOGS]:
        scanner.scan.error = None
        first = scanner.file(path, newest=True)
        if scanner.scan.error is not None:
            failures.append(scanner.scan.error)
            continue
        if rotated:
            for older in rotated_siblings(path):
                if first is None or first <= since or scanner.budget <= 0 \
                        or time.monotonic() > scanner.deadline:
                    break
                first = scanner.file(older, newest=False)
        if scanner.budget <= 0 or time.monotonic() > scanner.deadline:
            break
    # One unreadable log among several readable ones is in its FileRead; all unreadable is
    # the scan's error.
    scanner.scan.error = failures[0] if failures and len(failures) == len(
        [f for f in scanner.scan.files if f.path in mains]) else None
    return scanner.result()


# -- error logs -------------------------------------------------------------------------------

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


# -- where the logs are --------------------------------------------------------------------------

def classify(path: str) -> Optional[str]:
    """``access`` or ``error`` by the file's name, or None."""
    name = os.path.basename(path).lower()
    if "error" in name:
        return "error"
    if "access" in name or "other_vhosts" in name:
        return "access"
    return None


def open_log_files(pids: list[int], procfs: str = "/proc", limit: int = 32) -> list[str]:
    """Log files the processes hold open (their fds), as nginx and Apache keep theirs."""
    found: list[str] = []
    for pid in pids[:16]:
        fd_dir = os.path.join(procfs, str(pid), "fd")
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if not target.startswith("/") or target.endswith(" (deleted)"):
                continue
            if target.startswith(("/dev/", "/proc/", "/sys/")):
                continue
            base = os.path.basename(target).lower()
            if not (base.endswith((".log", "_log")) or "/log/" in target) or \
                    classify(target) is None:
                continue
            if target not in found and os.path.isfile(target):
                found.append(target)
            if len(found) >= limit:
                return found
    return found


def default_logs(names: list[str]) -> list[str]:
    """The usual log files of the web servers named (nginx, apache2, httpd...) that exist."""
    found: list[str] = []
    for name in names:
        for path in DEFAULT_LOGS.get(name.split(".")[0].split("@")[0], ()):
            if os.path.isfile(path) and path not in found:
                found.append(path)
    return found


# -- the journal -----------------------------------------------------------------------------------

@dataclass
class JournalScan:
    """A unit's journal in the window: the lines that matched, and its error lines."""

    unit: str
    lines: int = 0
    matches: list[str] = field(default_factory=list)
    matched: int = 0
    matched_5xx: int = 0
    errors: list[str] = field(default_factory=list)
    error: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"unit": self.unit, "lines": self.lines, "matched": self.matched,
                               "matching_lines": list(self.matches),
                               "error_lines": list(self.errors)}
        if self.error:
            out["error"] = self.error
        return out


def journal_since_text(since: float) -> str:
    """A ``--since`` journalctl takes: local time, to the second."""
    return datetime.fromtimestamp(since).strftime("%Y-%m-%d %H:%M:%S")


def scan_journal(unit: str, since: float, request_id: Optional[str], client: Optional[str],
                 timeout: float = 2.0, max_lines: int = 20000) -> JournalScan:
    """``journalctl -u UNIT --since ... -o short-iso``: lines with the id or the client, and
    the unit's error-priority lines (``-p err``) of the window."""
    from netcheck.probes import systemd

    result = JournalScan(unit)
    since_text = journal_since_text(since)
    want = normal_address(client) if client else None
    try:
        lines = systemd.journal(unit, since_text, max_lines, timeout, max_bytes=32 << 20)
        errors = systemd.journal(unit, since_text, 10, timeout, priority="err")
    except systemd.SystemdError as exc:
        result.error = str(exc)
        return result
    result.lines = len(lines)
    kept: collections.deque[str] = collections.deque(maxlen=MAX_MATCHES)
    for text in lines:
        if request_id and request_id not in text:
            continue
        if want and not re.search(rf"(?<![0-9A-Za-z.:]){re.escape(want)}(?![0-9A-Za-z])",
                                  text):
            continue
        if not (request_id or want):
            continue
        result.matched += 1
        status = JOURNAL_STATUS.search(text)
        if status and status.group(1).startswith("5"):
            result.matched_5xx += 1
        kept.append(text[:MAX_SHOWN_CHARS])
    result.matches = list(kept)
    result.errors = [e[:MAX_SHOWN_CHARS] for e in errors]
    return result
