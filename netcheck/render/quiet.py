"""``netcheck -q``: one line a script can split and a monitor can compare run after run.

::

    VERDICT CODE Lx TARGET: text
    BROKEN GATEWAY_UNREACHABLE L3 tcp://198.18.2.10:22: gateway 198.18.1.99 answers neither ...
    OK - - https://www.lab.test:443/: all checks passed

The first four fields are never translated and never hold a blank: the verdict as an
upper-case English word (OK, DEGRADED, BROKEN, UNKNOWN), the root cause's code (``-`` when
there is none), its layer (``L3``, or ``-``) and the target written the one canonical way
(:func:`netcheck.render.canonical_target`). Only the text after ``": "`` follows ``--lang``.
The text holds no number that changes from one run to the next (round-trip times, durations,
loss counts and shares, byte and nft packet counters): two runs that find the same fault
print the same line, so a change of line is a change of diagnosis.
"""

from __future__ import annotations

import re

from netcheck.i18n import _
from netcheck.model import Report, Status, Verdict
from netcheck.redact import shown
from netcheck.render import canonical_target

ELIDED = "…"

# What a measurement looks like in a summary, in any of the three languages. Each rule keeps
# the words around the number, so the line still reads: "in … ms", "… of 20 lost (… %)".
_VOLATILE = (
    # nft's own counters inside a quoted rule: "counter packets 3 bytes 180 drop"
    (re.compile(r"\bcounter packets \d+ bytes \d+"), "counter"),
    # iptables-save -c style counters: "[3:180]"
    (re.compile(r"\[\d+:\d+\]"), "[" + ELIDED + "]"),
    # RTT statistics: "0.1/0.2/0.4/0.1 ms"
    (re.compile(r"(?<![\w./])\d+(?:\.\d+)?(?:/\d+(?:\.\d+)?)+(?= ?ms\b)"), ELIDED),
    # times: "in 4.1 ms", "(3 ms)", "after 1.5 s"
    (re.compile(r"(?<![\w./:-])\d+(?:[.,]\d+)?(?= ?(?:ms|s)\b)"), ELIDED),
    # shares: "(65 %)", "about 30 % each way"
    (re.compile(r"(?<![\w./:-])\d+(?:[.,]\d+)?(?= ?%)"), ELIDED),
    # byte counts: "RX 552B", "9.00kB", "1.2 MiB"
    (re.compile(r"(?<![\w./:-])\d+(?:[.,]\d+)?(?= ?(?:[kMG]i?)?B\b)"), ELIDED),
    # how many of the probes came back or were lost: "13 of 20", "13 de 20"
    (re.compile(r"(?<![\w./:-])\d+(?= (?:of|de) \d+\b)"), ELIDED),
)


def steady(text: str) -> str:
    """``text`` with every measured number replaced by an ellipsis (see the module doc)."""
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    return text


def _field(text: str) -> str:
    """One whitespace-free field: outside text shown safely, blanks percent-encoded."""
    text = shown(text) or "-"
    return "".join(ch if not ch.isspace() else "%20" for ch in text)


def quiet_target(report: Report) -> str:
    """The TARGET field: the canonical target, or for server mode ``server:PORT[/udp]``."""
    target = report.target or {}
    if report.mode == "server":
        port = target.get("port")
        proto = "/udp" if "--proto udp" in str(target.get("input") or "") else ""
        return f"server:{port}{proto}" if port else "server"
    return _field(canonical_target(target))


def quiet_text(report: Report) -> str:
    """The part after the colon, in the reader's language."""
    if report.error is not None:
        return str(report.error)
    root = report.root_cause
    if root is not None:
        return root.result.summary
    if report.verdict is Verdict.OK:
        return _("all checks passed")
    errored = next((c for c in report.checks if c.status is Status.ERROR), None)
    if errored is not None:
        return f"{errored.id}: {errored.result.summary}"
    return _("no conclusion")


def quiet_line(report: Report) -> str:
    """``VERDICT CODE Lx TARGET: text`` (no newline)."""
    root = report.root_cause
    code = (root.result.code or root.status.value.upper()) if root is not None else "-"
    layer = f"L{int(root.layer)}" if root is not None else "-"
    text = " ".join(steady(shown(quiet_text(report))).split())
    return f"{report.verdict.value.upper()} {_field(code)} {layer} {quiet_target(report)}: {text}"
