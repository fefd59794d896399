"""A unit's journal searched for the request (by id or client) within the window, and the
status codes of the request lines a program logs there.
"""

from __future__ import annotations

import collections
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Optional

from netcheck.probes.logs.lines import MAX_MATCHES, MAX_SHOWN_CHARS, normal_address

# A request line in a program's own log (the journal): the status may come without a size.
JOURNAL_STATUS = re.compile(r'" ([1-5]\d\d)(?= |$)')


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
