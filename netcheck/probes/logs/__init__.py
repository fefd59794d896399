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

The package, by concern: ``lines`` (a log line parsed: LogLine, parse_access), ``files``
(reading a file within bounds: gzip, rotation, bisection, blocks), ``errors`` (error logs),
``locate`` (where the logs are), ``journal`` (a unit's journal). Here: the search of the access
logs (:func:`scan_access`), and every name importable from ``netcheck.probes.logs`` as before
the split.
"""

from __future__ import annotations

import collections
import re
import time
import zlib
from dataclasses import dataclass, field
from typing import IO, Any, Optional, Union

from netcheck.probes.logs.errors import (
    APACHE_ERROR,
    CLIENT_CAUSED,
    ERROR_LEVELS,
    MAX_ERROR_LOG_BYTES,
    NGINX_ERROR,
    ErrorScan,
    parse_error,
    scan_errors,
)
from netcheck.probes.logs.files import (
    BLOCK,
    MAX_ROTATED,
    ORDER_SLACK_S,
    PROBE,
    SNIFF_BYTES,
    FileRead,
    _blocks,
    _first_time,
    _lines_around,
    _open,
    find_window_start,
    is_gzip,
    rotated_siblings,
    sniff_binary,
)
from netcheck.probes.logs.journal import (
    JOURNAL_STATUS,
    JournalScan,
    journal_since_text,
    scan_journal,
)
from netcheck.probes.logs.lines import (
    ACCESS_LINE,
    MAX_LINE,
    MAX_MATCHES,
    MAX_SHOWN_CHARS,
    LogLine,
    access_time,
    normal_address,
    parse_access,
)
from netcheck.probes.logs.locate import DEFAULT_LOGS, classify, default_logs, open_log_files

# Every public name the module had before it became a package. The access scan (_Scanner,
# below) looks up _open here, at call time, so replacing it on this package (as a test does)
# replaces it for scan_access.
__all__ = [
    "ACCESS_LINE", "APACHE_ERROR", "AccessScan", "BLOCK", "CLIENT_CAUSED", "DEFAULT_LOGS",
    "ERROR_LEVELS", "ErrorScan", "FileRead", "JOURNAL_STATUS", "JournalScan", "LogLine",
    "MAX_ACCESS_LOGS", "MAX_ERROR_LOG_BYTES", "MAX_LINE", "MAX_MATCHES", "MAX_ROTATED",
    "MAX_SCAN_BYTES", "MAX_SHOWN_CHARS", "NGINX_ERROR", "ORDER_SLACK_S", "PROBE", "SNIFF_BYTES",
    "STATUS", "access_time", "classify", "default_logs", "find_window_start", "is_gzip",
    "journal_since_text", "normal_address", "open_log_files", "parse_access", "parse_error",
    "rotated_siblings", "scan_access", "scan_errors", "scan_journal", "sniff_binary",
    # private: a test replaces _open here (see above)
    "_open",
]


MAX_SCAN_BYTES = 256 << 20
MAX_ACCESS_LOGS = 6  # virtual hosts with a log each: searched together
# `"GET / HTTP/1.1" 503 197`: the status after the request's closing quote.
STATUS = re.compile(rb'" ([1-5]\d\d) (?:\d+|-)')


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
