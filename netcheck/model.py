"""The data netcheck passes around: layers, statuses, results, hints and the report.

Everything here is plain dataclasses with a ``to_json`` that yields JSON-native values,
so renderers never compute anything and the JSON document follows CONTRACT.md exactly.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Optional

SCHEMA = "netcheck/1"


class Layer(enum.IntEnum):
    """OSI layer numbers, as the slides' ladder counts them."""

    PHYSICAL = 1
    LINK = 2
    NETWORK = 3
    TRANSPORT = 4
    SESSION = 5
    PRESENTATION = 6
    APPLICATION = 7

    @property
    def label(self) -> str:
        return self.name.capitalize()


class Status(str, enum.Enum):
    """Outcome of one check."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"
    ERROR = "error"


class Verdict(str, enum.Enum):
    """Outcome of a whole run; the exit code follows the monitoring-plugins convention."""

    OK = "ok"
    DEGRADED = "degraded"
    BROKEN = "broken"
    UNKNOWN = "unknown"

    @property
    def exit_code(self) -> int:
        return {"ok": 0, "degraded": 1, "broken": 2, "unknown": 3}[self.value]


@dataclass
class Hint:
    """What a person should do, with the exact commands for this host."""

    text: str
    commands: list[str] = field(default_factory=list)
    docs: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "commands": list(self.commands), "docs": self.docs}


def split_comment(command: str) -> tuple[str, str]:
    """A hint command as the shell reads it: ``(line, comment)``.

    Commands are data: each is one shell line a person pastes, optionally followed by a
    comment (``ss -tlnp   # on the server``), or only a comment (``# make it permanent``).
    The comment starts at an unquoted ``#`` that begins a word, as bash reads it; a ``#``
    inside quotes or inside a word (``'#'``, ``$#``, ``a#b``) belongs to the command.
    """
    quote = ""
    escaped = False
    for i, ch in enumerate(command):
        if escaped:
            escaped = False
        elif quote:
            if ch == quote:
                quote = ""
            elif ch == "\\" and quote == '"':
                escaped = True
        elif ch == "\\":
            escaped = True
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or command[i - 1] in " \t;|&()<>"):
            return command[:i].rstrip(), command[i + 1:].strip()
    return command.strip(), ""


@dataclass
class Result:
    """What a check returns: a judgement plus the evidence behind it."""

    status: Status
    summary: str
    code: Optional[str] = None
    evidence: dict[str, Any] = field(default_factory=dict)
    hint: Optional[Hint] = None
    blocked_by: Optional[str] = None
    # The addresses whose silence (or missing route) the failure rests on. When a lower rung
    # of the path those packets take failed, the failure follows from it and the runner
    # turns it into a skip (runner.follow_ons). Not in the JSON: the evidence says it.
    unanswered: tuple[str, ...] = ()
    # When an expectation turned the judgement around (Options.expect = "closed": a refused
    # connect passes, an accepted one fails), what the check measured. The runner treats the
    # checks above it by what was measured: a port shut as expected leaves them nothing to
    # look at (runner: skipped, ``settled_by`` naming it), an open one that should be shut
    # lets them run and still proves the flow (runner.top_down). Not in the JSON.
    measured: Optional[Status] = None
    # For such a skip: the check whose expected failure made this one pointless (blocked_by
    # names failures only). Not in the JSON.
    settled_by: Optional[str] = None


def passed(summary: str, **evidence: Any) -> Result:
    """A passing result."""
    return Result(Status.PASS, summary, evidence=evidence)


def failed(code: str, summary: str, hint: Optional[Hint] = None, **evidence: Any) -> Result:
    """A failing result carrying a problem code."""
    return Result(Status.FAIL, summary, code=code, evidence=evidence, hint=hint)


def warned(code: str, summary: str, hint: Optional[Hint] = None, **evidence: Any) -> Result:
    """A warning carrying a problem code."""
    return Result(Status.WARN, summary, code=code, evidence=evidence, hint=hint)


def skipped(summary: str, **evidence: Any) -> Result:
    """A check that could not or need not run; the summary says why."""
    return Result(Status.SKIP, summary, evidence=evidence)


@dataclass
class CheckOutcome:
    """A check's result as the report carries it: the declaration plus the result."""

    id: str
    layer: Layer
    title: str
    result: Result
    duration_ms: float = 0.0

    @property
    def status(self) -> Status:
        return self.result.status

    def to_json(self) -> dict[str, Any]:
        r = self.result
        return {
            "id": self.id,
            "layer": int(self.layer),
            "title": self.title,
            "status": r.status.value,
            "code": r.code,
            "summary": r.summary,
            "evidence": r.evidence,
            "hint": r.hint.to_json() if r.hint else None,
            "blocked_by": r.blocked_by,
            "duration_ms": round(self.duration_ms, 1),
        }


@dataclass
class Location:
    """Where a failing flow's packets stop on the path (``root_cause.location``).

    ``last_hop``: the farthest hop that answered (0: not even the first one; None: not
    known); ``address``: who answered there; ``method``: what was sent (``tcp-syn``,
    ``udp-dns``, ``icmp-echo``...); ``middlebox``: the answer (a reset, an ICMP error) came
    from fewer hops away than the target is (not in the JSON: the text says so).
    """

    text: str
    method: str
    last_hop: Optional[int] = None
    address: Optional[str] = None
    middlebox: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"last_hop": self.last_hop, "address": self.address, "method": self.method,
                "text": self.text}


@dataclass
class Report:
    """One run of netcheck, ready for any renderer."""

    mode: str
    target: dict[str, Any]
    host: dict[str, Any]
    verdict: Verdict
    root_cause: Optional[CheckOutcome]
    checks: list[CheckOutcome]
    started_at: str
    duration_ms: float
    version: str
    error: Optional[str] = None
    # Sent in requests' User-Agent; shown in the text report, and in the JSON evidence of
    # the checks that sent it (not a top-level key: the netcheck/1 document is fixed).
    request_id: Optional[str] = None
    # Where the root cause's packets stop (root_cause.location); None: not measured.
    location: Optional[Location] = None

    def to_json(self) -> dict[str, Any]:
        root = None
        if self.root_cause is not None:
            rc = self.root_cause
            root = {
                "check": rc.id,
                "layer": int(rc.layer),
                "code": rc.result.code,
                "summary": rc.result.summary,
                "hint": rc.result.hint.to_json() if rc.result.hint else None,
            }
            if self.location is not None:
                root["location"] = self.location.to_json()
        doc: dict[str, Any] = {
            "schema": SCHEMA,
            "tool": {"name": "netcheck", "version": self.version},
            "mode": self.mode,
            "target": self.target,
            "host": self.host,
            "verdict": self.verdict.value,
            "root_cause": root,
            "checks": [c.to_json() for c in self.checks],
            "started_at": self.started_at,
            "duration_ms": round(self.duration_ms, 1),
        }
        if self.error is not None:
            doc["error"] = self.error
        return doc
