"""Applying a plan's steps, each undo journaled before its step (a file's text kept beside
the journal first), the watchdog that rolls back if this process dies, and undoing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any, Optional

from netcheck.fix.actions import Outcome, execute, read_text
from netcheck.fix.command.session import Output, Session
from netcheck.fix.journal import Journal, roll_back
from netcheck.fix.plan import Plan
from netcheck.i18n import _

# -- applying --------------------------------------------------------------------------------------

def _backup(journal: Journal, step: int, path: str) -> None:
    """Keep a file's text beside the journal before a step rewrites it."""
    from netcheck.safefile import open_for_write

    text = read_text(path)
    if text is None:
        return
    name = f"{journal.id}.step{step}.{os.path.basename(path)}.orig"
    with open_for_write(journal.path.parent / name, 0o600) as fh:
        fh.write(text.encode("utf-8", "surrogateescape"))


def apply_plan(p: Plan, journal: Journal, first: int, o: Output) -> tuple[bool, int]:
    """Apply the steps, each undo journaled first; (all went well, steps started)."""
    started = 0
    for n, step in enumerate(p.steps, first):
        journal.add({"type": "undo", "step": n, "actions": [a.to_json() for a in step.undo],
                     "runtime": step.runtime, "text": "; ".join(a.text() for a in step.do)})
        started += 1
        for action in step.do:
            if action.kind == "write" and action.path:
                _backup(journal, n, action.path)
            outcome = execute(action)
            if not outcome.ok:
                journal.add({"type": "done", "step": n, **outcome.to_json()})
                o.line(f"  [!] {n}. {action.text()}: {outcome.message}")
                return False, started
        journal.add({"type": "done", "step": n, "ok": True})
        o.line(f"  [x] {n}. {'; '.join(a.text() for a in step.do)}")
    return True, started


def start_watchdog(journal: Journal) -> Optional[int]:
    """The process that rolls back if this one dies (see :mod:`netcheck.fix.watchdog`)."""
    try:
        proc = subprocess.Popen([sys.executable, "-I", "-m", "netcheck.fix.watchdog",
                                 str(journal.path)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True, close_fds=True)
    except OSError:
        return None
    proc.returncode = 0  # never waited for here: it outlives this process on purpose
    return proc.pid


def undo_all(journal: Journal, session: Session, o: Output, from_step: int = 1) -> bool:
    """Roll back the journal's steps from ``from_step`` on, last step first."""
    def said(step: int, text: str, outcome: Outcome) -> None:
        session.undone.append({"step": step, "do": text, **outcome.to_json()})
        mark = "[-]" if outcome.ok else "[!]"
        o.line(f"  {mark} {step}. " + _("undone: {text}").format(text=text)
               + ("" if outcome.ok else f" ({outcome.message})"))

    ok = roll_back(journal, said, from_step=from_step)
    session.rolled_back = True
    return ok


def _open_journal(before: dict[str, Any], made: Plan, o: Output) -> Journal:
    journal = Journal.create({"target": (before.get("target") or {}).get("input"),
                              "mode": before.get("mode"), "code": made.code})
    watchdog = start_watchdog(journal)
    journal.add({"type": "watchdog", "pid": watchdog})
    o.note(_("journal: {path} (watchdog pid {pid})").format(path=journal.path, pid=watchdog))
    return journal
