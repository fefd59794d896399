"""One Nagios/monitoring-plugins line: ``NETCHECK STATE - text | perfdata``.

The exit status (0 ok, 1 warning, 2 critical, 3 unknown) comes from the verdict; this
module only writes the line that goes with it. Only the text follows the language: the
service name, the state word and the perfdata labels are what monitoring systems parse.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from netcheck.i18n import _
from netcheck.model import Report, Status, Verdict
from netcheck.redact import nagios_text, printable
from netcheck.render import canonical_target

_STATE = {
    Verdict.OK: "OK",
    Verdict.DEGRADED: "WARNING",
    Verdict.BROKEN: "CRITICAL",
    Verdict.UNKNOWN: "UNKNOWN",
}


def _plain(text: str) -> str:
    """Outside text fit for the status line: masked, no control character, no '|' (it starts
    the perfdata), no newline (it starts the long output), runs of blanks as one."""
    return " ".join(nagios_text(text).split())


def _number(value: float) -> str:
    # No exponent notation: monitoring-plugins parse plain decimals only.
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def perf_label(label: str) -> str:
    """Quote a perfdata label the way the monitoring-plugins guidelines ask.

    A label made from outside text (a check id from a plugin, a batch name) loses its control
    characters and any '|', which would end the perfdata for the parser.
    """
    label = printable(label).replace("|", "/")
    if any(ch in label for ch in " ='"):
        return "'" + label.replace("'", "''") + "'"
    return label


def _perf(label: str, value: float, uom: str = "") -> str:
    return f"{perf_label(label)}={_number(value)}{uom};;;0"


def _rtt(evidence: dict[str, Any]) -> Optional[float]:
    value = evidence.get("rtt_ms")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def _text(report: Report) -> str:
    if report.error is not None:
        return report.error
    target = canonical_target(report.target) or report.target.get("host") or _("target")
    if report.verdict is Verdict.OK:
        return f"{target}: " + _("all checks passed")
    root = report.root_cause
    if root is not None:
        code = root.result.code or root.status.value.upper()
        return f"{code}: {root.result.summary}"
    errored = [c for c in report.checks if c.status is Status.ERROR]
    if errored:
        return f"{errored[0].id}: {errored[0].result.summary}"
    return f"{target}: " + _("no conclusion")


def render_nagios(report: Report) -> str:
    """Return the single plugin output line, with perfdata for timing, counts and RTTs."""
    counts = {status: 0 for status in Status}
    for check in report.checks:
        counts[check.status] += 1
    perf = [
        _perf("time", report.duration_ms / 1000, "s"),
        _perf("checks", len(report.checks)),
        _perf("failed", counts[Status.FAIL]),
        _perf("warned", counts[Status.WARN]),
        _perf("skipped", counts[Status.SKIP]),
    ]
    for check in report.checks:
        rtt = _rtt(check.result.evidence)
        if rtt is not None:
            perf.append(_perf(check.id.replace(".", "_") + "_rtt", rtt, "ms"))
    return f"NETCHECK {_STATE[report.verdict]} - {_plain(_text(report))} | {' '.join(perf)}"
