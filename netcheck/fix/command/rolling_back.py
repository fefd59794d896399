"""``netcheck fix --rollback``: undo what a dead repair left behind in this namespace."""

from __future__ import annotations

import argparse
import os
from typing import IO

from netcheck.fix.actions import Outcome
from netcheck.fix.command.session import (
    EXIT_KEPT,
    EXIT_NOTHING,
    EXIT_ROLLED_BACK,
    Output,
    Refused,
    Session,
    _finish,
)
from netcheck.fix.journal import Journal, JournalError, left_behind, roll_back
from netcheck.i18n import _

# -- rollback --------------------------------------------------------------------------------------

def rollback(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """``netcheck fix --rollback``: undo what a dead repair left behind in this namespace."""
    o = Output(args.format, out, err)
    session = Session(outcome="nothing_to_roll_back")
    if os.geteuid() != 0:
        raise Refused(_("netcheck fix --rollback changes this host's network and needs root"))
    try:
        found = left_behind()
    except JournalError as exc:
        raise Refused(str(exc.strerror)) from None
    if not found:
        o.line(_("Nothing to roll back: no repair was left behind in this network namespace."))
        return _finish(session, o, EXIT_NOTHING)
    all_ok = True
    for journal in found:
        if not journal.lock():
            raise Refused(_("the repair of journal {path} is still running (pid {pid})").format(
                path=journal.path, pid=journal.start.get("pid")))
        try:
            journal = _reread(journal)
            if not journal.pending:
                continue
            may, runtime, _why = journal.belongs_here()
            if not may:
                continue
            session.journal = str(journal.path)
            o.line(_("Rolling back the repair of {time} ({code}, {target}):").format(
                time=journal.start.get("time"), code=journal.start.get("code"),
                target=journal.start.get("target")))

            def said(step: int, text: str, outcome: Outcome) -> None:
                session.undone.append({"step": step, "do": text, **outcome.to_json()})
                mark = "[-]" if outcome.ok else "[!]"
                o.line(f"  {mark} {step}. " + _("undone: {text}").format(text=text)
                       + ("" if outcome.ok else f" ({outcome.message})"))

            all_ok = roll_back(journal, said, runtime=runtime) and all_ok
            session.rolled_back = True
        finally:
            journal.unlock()
    session.outcome = "rolled_back" if all_ok else "failed"
    return _finish(session, o, EXIT_KEPT if all_ok else EXIT_ROLLED_BACK)


def _reread(journal: Journal) -> Journal:
    fresh = Journal.open(journal.path)
    fresh.lock_fd = journal.lock_fd
    journal.lock_fd = None
    return fresh
