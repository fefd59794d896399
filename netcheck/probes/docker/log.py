"""A container's log as ``docker logs --since`` reads it, searched for a request id or a
client: the json-file driver's file read from its end (bounded in bytes and time), the journald
driver through ``journalctl CONTAINER_ID_FULL=ID``.
"""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from netcheck.probes.docker.containers import MAX_SHOWN, Container, parse_time

MAX_LOG_BYTES = 16 << 20
MAX_MATCHES = 20


@dataclass
class LogScan:
    """``docker logs --since`` of one container, searched for a request id or a client."""

    container: str
    source: str = ""
    lines: int = 0  # in the window
    matched: int = 0
    matches: list[str] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    matched_5xx: int = 0
    last_lines: list[str] = field(default_factory=list)
    stopped: str = ""
    error: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"container": self.container, "source": self.source,
                               "lines": self.lines, "matched": self.matched,
                               "matching_lines": list(self.matches)}
        if self.statuses:
            out["statuses"] = dict(self.statuses)
        if self.stopped:
            out["stopped"] = self.stopped
        if self.error:
            out["error"] = self.error
        return out


def _client_pattern(client: Optional[str]) -> Optional[re.Pattern[str]]:
    if not client:
        return None
    from netcheck.probes.logs import normal_address

    # 198.18.1.2 alone, or as an IPv4-mapped IPv6 address ([::ffff:198.18.1.2]:41234, as
    # busybox httpd writes it), never inside 198.18.1.20 or 10.198.18.1.2.
    return re.compile(rf"(?:(?<![0-9A-Za-z.:])|(?<=::ffff:))"
                      rf"{re.escape(normal_address(client))}(?![0-9A-Za-z]|\.[0-9])")


def _judge_line(scan: LogScan, text: str, request_id: Optional[str],
                client: Optional[re.Pattern[str]], kept: collections.deque[str],
                tail: collections.deque[str]) -> None:
    from netcheck.probes.logs import parse_access
    from netcheck.redact import shown

    scan.lines += 1
    line = shown(text.rstrip("\r\n"), MAX_SHOWN)
    tail.append(line)
    status = parse_access(text.encode("utf-8", "replace")).status
    if status is not None:
        key = f"{status // 100}xx"
        scan.statuses[key] = scan.statuses.get(key, 0) + 1
    if not (request_id or client):
        return
    if request_id and request_id not in text:
        return
    if client is not None and not client.search(text):
        return
    scan.matched += 1
    if status is not None and status >= 500:
        scan.matched_5xx += 1
    kept.append(line)


def scan_json_file(path: str, container: str, since: float, request_id: Optional[str],
                   client: Optional[str], max_bytes: int = MAX_LOG_BYTES,
                   deadline: Optional[float] = None) -> LogScan:
    """The json-file driver's log (one JSON object a line: ``log``, ``stream``, ``time``),
    read from its end: at most ``max_bytes``, lines older than ``since`` left out."""
    scan = LogScan(container, source=path)
    kept: collections.deque[str] = collections.deque(maxlen=MAX_MATCHES)
    tail: collections.deque[str] = collections.deque(maxlen=5)
    pattern = _client_pattern(client)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            start = max(0, size - max_bytes)
            fh.seek(start)
            if start:
                fh.readline()  # a cut line
                scan.stopped = f"read the last {max_bytes >> 20} MiB of {size >> 20} MiB"
            for n, raw in enumerate(fh):
                if deadline is not None and n % 4096 == 0 and time.monotonic() > deadline:
                    scan.stopped = "stopped at its time bound"
                    break
                try:
                    entry = json.loads(raw[:1 << 20])
                except ValueError:
                    continue
                if not isinstance(entry, dict):
                    continue
                when = parse_time(entry.get("time"))
                if when is not None and when < since:
                    continue
                _judge_line(scan, str(entry.get("log") or ""), request_id, pattern, kept, tail)
    except OSError as exc:
        scan.error = f"{path}: {exc.strerror or exc}"
    scan.matches, scan.last_lines = list(kept), list(tail)
    return scan


def scan_journald(container_id: str, container: str, since: float, request_id: Optional[str],
                  client: Optional[str], timeout: float = 2.0,
                  max_lines: int = 20000) -> LogScan:
    """The journald driver: ``journalctl CONTAINER_ID_FULL=ID --since ... -o cat``."""
    from netcheck.probes.logs import journal_since_text

    scan = LogScan(container, source=f"journalctl CONTAINER_ID_FULL={container_id[:12]}...")
    argv = ["journalctl", "--no-pager", "-q", "-o", "cat", "-n", str(max_lines),
            "--since", journal_since_text(since), f"CONTAINER_ID_FULL={container_id}"]
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        scan.error = f"journalctl: {exc}"
        return scan
    if proc.returncode != 0:
        scan.error = f"journalctl: {proc.stderr.decode(errors='replace').strip()[:200]}"
        return scan
    kept: collections.deque[str] = collections.deque(maxlen=MAX_MATCHES)
    tail: collections.deque[str] = collections.deque(maxlen=5)
    pattern = _client_pattern(client)
    for raw in proc.stdout[:MAX_LOG_BYTES].splitlines():
        _judge_line(scan, raw.decode("utf-8", "replace"), request_id, pattern, kept, tail)
    scan.matches, scan.last_lines = list(kept), list(tail)
    return scan


def scan_log(c: Container, since: float, request_id: Optional[str], client: Optional[str],
             deadline: float) -> LogScan:
    """The container's log as ``docker logs --since`` reads it, by its log driver."""
    if c.log_driver in ("json-file", "") and c.log_path:
        return scan_json_file(c.log_path, c.label, since, request_id, client,
                              deadline=deadline)
    if c.log_driver == "journald":
        return scan_journald(c.id, c.label, since, request_id, client,
                             timeout=max(0.5, deadline - time.monotonic()))
    scan = LogScan(c.label, source=c.log_driver)
    scan.error = (f"the {c.log_driver or 'unknown'} log driver is not read directly "
                  "(json-file and journald are)")
    return scan


def since_flag(seconds: float) -> str:
    """``--since`` as docker logs takes it (``10m``, ``2h``)."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    return f"{max(1, int(round(seconds / 60)))}m"
