"""What one repair session is and shows: its record (:class:`Session`, the netcheck-fix/1
document), the text and prompts for the person (:class:`Output`, the plan as a checklist,
:func:`ask` on the terminal), and the exit statuses.
"""

from __future__ import annotations

import json
import os
import select
import sys
import time
from dataclasses import dataclass, field
from typing import IO, Any, Optional

from netcheck.fix.plan import Advice, Plan
from netcheck.i18n import _
from netcheck.redact import mask_value, shown

SCHEMA = "netcheck-fix/1"
EXIT_KEPT, EXIT_NOTHING, EXIT_ROLLED_BACK, EXIT_BAD = 0, 1, 2, 3


class Refused(Exception):
    """Bad input or not allowed: one line, exit 3."""


# -- the session's record ----------------------------------------------------------------------

@dataclass
class Session:
    """Everything one repair did, for the text and the JSON document."""

    before: Optional[dict[str, Any]] = None
    after: Optional[dict[str, Any]] = None
    plans: list[Plan] = field(default_factory=list)
    advice: Optional[Advice] = None
    applied: bool = False
    kept: bool = False
    rolled_back: bool = False
    outcome: str = "nothing_to_repair"
    journal: Optional[str] = None
    error: Optional[str] = None
    undone: list[dict[str, Any]] = field(default_factory=list)
    confirmed_by: Optional[str] = None

    def document(self) -> dict[str, Any]:
        """The netcheck-fix/1 document."""
        steps = [s.to_json() for p in self.plans for s in p.steps]
        doc = {"schema": SCHEMA, "before": self.before, "plan": steps, "applied": self.applied,
               "kept": self.kept, "after": self.after, "outcome": self.outcome,
               "rolled_back": self.rolled_back, "repairs": [
                   {"code": p.code, "check": p.check, "layer": p.layer, "steps": len(p.steps),
                    "proofs": p.proofs} for p in self.plans],
               "advice": self.advice.to_json() if self.advice else None,
               "journal": self.journal, "undone": self.undone, "error": self.error}
        return mask_value(doc)  # type: ignore[no-any-return]


# -- output --------------------------------------------------------------------------------------

class Output:
    """Text for a person (stdout), prompts on stderr; in JSON mode only the final document."""

    def __init__(self, fmt: str, out: IO[str], err: IO[str]) -> None:
        self.fmt, self.out, self.err = fmt, out, err

    def line(self, text: str = "") -> None:
        if self.fmt == "text":
            self.out.write(shown(text) + "\n")
            self.out.flush()

    def note(self, text: str) -> None:
        """Progress that matters in every format: stderr in JSON mode."""
        stream = self.out if self.fmt == "text" else self.err
        stream.write(shown(text) + "\n")
        stream.flush()


def summary_line(doc: dict[str, Any]) -> str:
    """``BROKEN: GATEWAY_UNREACHABLE (L3 network.gateway) gateway ... answers neither ...``"""
    words = {"ok": _("OK"), "degraded": _("DEGRADED"), "broken": _("BROKEN"),
             "unknown": _("UNKNOWN")}
    line = words.get(str(doc.get("verdict")), str(doc.get("verdict")))
    rc = doc.get("root_cause")
    if rc:
        line += f": {rc.get('code')} (L{rc.get('layer')} {rc.get('check')}) {rc.get('summary')}"
    elif doc.get("error"):
        line += f": {doc.get('error')}"
    return line


def show_plan(o: Output, p: Plan, done: int = 0, start: int = 1) -> None:
    """The plan as a checklist."""
    o.line(_("Repair plan for {code} ({check}), {n} step(s):").format(
        code=p.code, check=p.check, n=len(p.steps)))
    for n, step in enumerate(p.steps, start):
        mark = "[x]" if n - start < done else "[ ]"
        o.line(f"  {mark} {n}. {'; '.join(a.text() for a in step.do)}")
        o.line("        " + _("why:  {text}").format(text=step.why))
        o.line("        " + _("undo: {text}").format(text="; ".join(a.text() for a in step.undo)))
        if step.note:
            o.line("        " + _("note: {text}").format(text=step.note))


def show_advice(o: Output, a: Advice) -> None:
    o.line(_("No repair on this host: {reason}").format(reason=a.reason))
    if a.whom:
        o.line(_("Ask: {whom}").format(whom=a.whom))
    if a.ticket:
        o.line(_("For the ticket:"))
        o.line("  " + a.ticket)


# -- asking ----------------------------------------------------------------------------------------

def ask(question: str, timeout: Optional[float], err: IO[str],
        stdin: Optional[IO[str]] = None) -> Optional[bool]:
    """Ask on the terminal; True/False, or None when no answer came within ``timeout``."""
    stream = stdin or sys.stdin
    err.write(question + " ")
    err.flush()
    fd = stream.fileno()
    deadline = None if timeout is None else time.monotonic() + timeout
    typed = b""
    while True:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, _w, _x = select.select([fd], [], [], left)
        if not ready:
            err.write("\n")
            return None
        chunk = os.read(fd, 256)
        if not chunk:
            return False
        typed += chunk
        if b"\n" in typed or b"\r" in typed:
            answer = typed.decode("utf-8", "replace").strip().lower()
            # y/yes, and sí/si/s in Spanish and Catalan
            return answer[:1] in ("y", "s") or answer.startswith("sí")


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _finish(session: Session, o: Output, code: int) -> int:
    if o.fmt == "json":
        o.out.write(json.dumps(session.document(), indent=2, ensure_ascii=False) + "\n")
        o.out.flush()
    return code
