"""JUnit XML, the report format CI systems read (Jenkins, GitLab, GitHub Actions, Azure...).

One ``<testcase>`` per target: a broken target is a ``<failure>`` whose message is the root
cause and whose text is its summary, hint and commands; an unknown one (bad profile line,
no result within the deadline) is an ``<error>``; a degraded one passes, its warning in
``<system-out>``. Targets are grouped in one ``<testsuite>`` per profile group. The shape is
the Ant/Jenkins one that ``tests/fixtures/junit/junit-10.xsd`` describes.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterable, Optional, Sequence
from xml.sax.saxutils import escape, quoteattr

from netcheck.model import Report, Status, Verdict
from netcheck.redact import mask_secrets, printable

# Characters XML 1.0 cannot carry at all (not even escaped): a server banner may hold them.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_MAX_TEXT = 8000


def _clean(text: str, limit: int = _MAX_TEXT) -> str:
    # CI pages and `cat report.xml` show this text: masked, controls (C1 and bidi are legal
    # XML) shown as escapes; what XML cannot carry at all is replaced.
    text = _NOT_XML.sub("\ufffd", printable(mask_secrets(text), keep_newlines=True))
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _attr(text: str, limit: int = 1000) -> str:
    return quoteattr(_clean(" ".join(text.split()), limit))


def _seconds(ms: float) -> str:
    return f"{max(ms, 0.0) / 1000:.3f}"


def _details(report: Report) -> str:
    """The failure's body: root cause, hint with its commands, then every failed check."""
    lines: list[str] = []
    rc = report.root_cause
    if report.error is not None:
        lines.append(report.error)
    if rc is not None:
        lines.append(f"root cause: {rc.result.code} at L{int(rc.layer)} {rc.layer.label} ({rc.id})")
        lines.append(rc.result.summary)
        if rc.result.hint is not None:
            lines.append("")
            lines.append(f"hint: {rc.result.hint.text}")
            lines += [f"  $ {cmd}" for cmd in rc.result.hint.commands]
            if rc.result.hint.docs:
                lines.append(f"  see {rc.result.hint.docs}")
    others = [c for c in report.checks
              if c.status in (Status.FAIL, Status.WARN, Status.ERROR) and c is not rc]
    if others:
        lines.append("")
        lines.append("other findings:")
        lines += [f"  {c.status.value} {c.id}: {c.result.code or ''} {c.result.summary}".rstrip()
                  for c in others]
    target = report.target
    lines.append("")
    lines.append(f"target: {target.get('input')} -> "
                 f"{', '.join(target.get('addresses') or []) or 'no address'}")
    return "\n".join(lines)


def testcase(report: Report, name: str, classname: str = "netcheck") -> str:
    """One ``<testcase>`` element for one target's report."""
    head = (f"    <testcase name={_attr(name)} classname={_attr(classname)} "
            f"time=\"{_seconds(report.duration_ms)}\"")
    verdict = report.verdict
    rc = report.root_cause
    if verdict is Verdict.OK:
        return head + "/>\n"
    body = escape(_clean(_details(report)))
    if verdict is Verdict.BROKEN and rc is not None:
        message = f"{rc.result.code} (L{int(rc.layer)}): {rc.result.summary}"
        inner = (f"      <failure message={_attr(message)} type={_attr(rc.result.code or 'FAIL')}>"
                 f"{body}</failure>\n")
    elif verdict is Verdict.DEGRADED:
        inner = f"      <system-out>DEGRADED\n{body}</system-out>\n"
    else:  # unknown (or broken without a root cause, which the runner never makes)
        errored = next((c for c in report.checks if c.status is Status.ERROR), None)
        message = report.error or (f"{errored.id}: {errored.result.summary}" if errored
                                   else "no conclusion")
        inner = f"      <error message={_attr(message)} type=\"UNKNOWN\">{body}</error>\n"
    return f"{head}>\n{inner}    </testcase>\n"


@dataclass
class Suite:
    """One ``<testsuite>``: its name, its testcases (already XML) and their counts."""

    name: str
    cases: list[str] = field(default_factory=list)
    tests: int = 0
    failures: int = 0
    errors: int = 0
    time_ms: float = 0.0

    def add(self, report: Report, name: str, classname: Optional[str] = None) -> None:
        self.cases.append(testcase(report, name, classname or self.classname))
        self.count(report)

    def count(self, report: Report) -> None:
        self.tests += 1
        self.failures += report.verdict is Verdict.BROKEN and report.root_cause is not None
        self.errors += report.verdict is Verdict.UNKNOWN or (
            report.verdict is Verdict.BROKEN and report.root_cause is None)
        self.time_ms += report.duration_ms

    @property
    def classname(self) -> str:
        return f"netcheck.{self.name}" if self.name != "netcheck" else "netcheck"


def document(suites: Sequence[Suite], name: str = "netcheck", duration_ms: Optional[float] = None,
             timestamp: Optional[str] = None, hostname: Optional[str] = None) -> str:
    """The whole ``<testsuites>`` document."""
    if timestamp is None:
        timestamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if hostname is None:
        try:
            hostname = socket.gethostname()
        except OSError:
            hostname = "localhost"
    total = duration_ms if duration_ms is not None else sum(s.time_ms for s in suites)
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n',
           f"<testsuites name={_attr(name)} tests=\"{sum(s.tests for s in suites)}\" "
           f"failures=\"{sum(s.failures for s in suites)}\" "
           f"errors=\"{sum(s.errors for s in suites)}\" time=\"{_seconds(total)}\">\n"]
    for i, suite in enumerate(suites):
        out.append(f"  <testsuite name={_attr(suite.name)} tests=\"{suite.tests}\" "
                   f"failures=\"{suite.failures}\" errors=\"{suite.errors}\" skipped=\"0\" "
                   f"time=\"{_seconds(suite.time_ms)}\" timestamp={_attr(timestamp)} "
                   f"hostname={_attr(hostname)} id=\"{i}\">\n")
        out += suite.cases
        out.append("  </testsuite>\n")
    out.append("</testsuites>\n")
    return "".join(out)


def render_junit(named: Iterable[tuple[str, str, Report]], name: str = "netcheck") -> str:
    """``(group, name, report)`` triples as one document: a testsuite per group, in order."""
    suites: dict[str, Suite] = {}
    for group, case, report in named:
        suite = suites.setdefault(group or "netcheck", Suite(group or "netcheck"))
        suite.add(report, case)
    return document(list(suites.values()), name)
