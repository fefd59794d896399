"""The repair session: diagnose, plan, ask, apply, diagnose again (three rounds at most),
then keep the change or undo every step, last first, whatever interrupts it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import sys
from dataclasses import dataclass
from typing import IO, Any, Callable, Optional

from netcheck.fix import plan as planning
from netcheck.fix.command.applying import _open_journal, apply_plan, undo_all
from netcheck.fix.command.session import (
    EXIT_KEPT,
    EXIT_NOTHING,
    EXIT_ROLLED_BACK,
    Output,
    Refused,
    Session,
    _finish,
    _is_terminal,
    ask,
    show_advice,
    show_plan,
    summary_line,
)
from netcheck.fix.journal import Journal, left_behind
from netcheck.fix.plan import Advice, Plan
from netcheck.i18n import _

MAX_ROUNDS = 3


# -- the session ---------------------------------------------------------------------------------

class _Interrupted(Exception):
    pass


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise _Interrupted()


def repair(args: argparse.Namespace, diagnose: Callable[[], Any], out: IO[str], err: IO[str],
           server: Optional[dict[str, Any]] = None) -> int:
    """The whole session, around a ``diagnose()`` that returns a Report."""
    from netcheck.render.json import report_document

    o = Output(args.format, out, err)
    session = Session()
    _refuse_to_start(args)
    before = report_document(diagnose())
    session.before = before
    o.line(_("Diagnosis: {line}").format(line=summary_line(before)))
    state = _Applying()
    previous_term = signal.getsignal(signal.SIGTERM)
    try:
        ended, current = _rounds(args, diagnose, before, state, session, o, err, server)
        if ended is not None:
            return ended
        session.after = current
        journal = state.journal
        assert journal is not None
        return _keep_or_undo(args, before, current, journal, session, o, err)
    except (_Interrupted, KeyboardInterrupt):
        journal = state.journal
        if journal is not None and journal.state not in ("kept", "rolled_back"):
            o.note(_("Interrupted: undoing everything, last step first."))
            session.error = _("interrupted")
            return _give_up(session, journal, o)
        raise
    except Exception as exc:  # whatever went wrong, nothing half-done is left behind
        journal = state.journal
        if journal is not None and journal.state not in ("kept", "rolled_back"):
            o.note(_("Internal error ({error}): undoing everything, last step first.").format(
                error=f"{type(exc).__name__}: {exc}"))
            session.error = f"internal error: {type(exc).__name__}: {exc}"
            return _give_up(session, journal, o)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        if state.journal is not None:
            state.journal.unlock()


def _refuse_to_start(args: argparse.Namespace) -> None:
    """Refused without root (but for --plan), or while an earlier repair's journal is still
    running or was neither kept nor undone."""
    if os.geteuid() != 0 and not args.plan:
        raise Refused(_("netcheck fix changes this host's network and needs root (sudo "
                        "netcheck fix ...); --plan shows the plan without it"))
    if os.geteuid() == 0:
        for stale in left_behind():
            if not stale.lock():
                raise Refused(_("the repair of journal {path} is still running (pid {pid})"
                                ).format(path=stale.path, pid=stale.start.get("pid")))
            stale.unlock()
            raise Refused(_("a repair of {time} was neither kept nor undone (journal {path}): "
                            "run netcheck fix --rollback first").format(
                                time=stale.start.get("time"), path=stale.path))


def _rounds(args: argparse.Namespace, diagnose: Callable[[], Any], before: dict[str, Any],
            state: _Applying, session: Session, o: Output, err: IO[str],
            server: Optional[dict[str, Any]]) -> tuple[Optional[int], dict[str, Any]]:
    """Plan, ask, apply and diagnose again, up to MAX_ROUNDS times while each round helps.

    Returns the exit code where the session ends here (nothing to repair, --plan, declined,
    a step failed), else None: steps were applied and the change is to be kept or undone;
    with the last diagnosis.
    """
    from netcheck.render.json import report_document

    current = before
    for round_no in range(1, MAX_ROUNDS + 1):
        host, proofs = asyncio.run(_gather(current, f"netcheck-fix-{secrets.token_hex(3)}",
                                           server))
        made = planning.build(current, host, proofs)
        if isinstance(made, Advice):
            if round_no == 1:
                return _nothing_to_repair(made, session, o), current
            o.line(_("No repair for it here: {reason}").format(reason=made.reason))
            break
        show_plan(o, made, start=state.next_step)
        session.plans.append(made)
        if args.plan:
            session.outcome = "planned"
            return _finish(session, o, EXIT_NOTHING), current
        if not _agreed(args, made, o, err):
            if state.journal is None:
                session.outcome = "declined"
                return _finish(session, o, EXIT_NOTHING), current
            session.plans.pop()
            break
        if state.journal is None:
            state.journal = _start_journal(before, made, session, o)
        first = state.next_step
        if not _apply_round(made, state.journal, state, session, o):
            return _finish(session, o, EXIT_ROLLED_BACK), current
        o.line(_("Diagnosing again..."))
        after = report_document(diagnose())
        o.line(_("Diagnosis: {line}").format(line=summary_line(after)))
        if not planning.improved(current, after, made.code):
            if round_no > 1:  # this round did not help: only its own steps go
                o.line(_("That did not help: undoing its steps."))
                undo_all(state.journal, session, o, first)
                session.plans.pop()
                session.rolled_back = False
            else:
                current = after
            break
        current = after
        if current.get("verdict") == "ok":
            break
    return None, current


def _nothing_to_repair(made: Advice, session: Session, o: Output) -> int:
    """The first round found no plan: nothing wrong, or advice instead of a repair."""
    session.advice = made
    session.outcome = "nothing_to_repair" if made.code is None else "no_plan"
    if made.code is None:
        o.line(made.reason)
    else:
        show_advice(o, made)
    return _finish(session, o, EXIT_NOTHING)


def _start_journal(before: dict[str, Any], made: Plan, session: Session, o: Output) -> Journal:
    """The journal opens before the first step; from then on SIGTERM undoes everything."""
    journal = _open_journal(before, made, o)
    session.journal = str(journal.path)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    return journal


def _apply_round(made: Plan, journal: Journal, state: _Applying, session: Session,
                 o: Output) -> bool:
    """Apply one round's steps, numbered on from the last round's; False when a step failed
    and everything was undone."""
    session.applied = True
    ok, started = apply_plan(made, journal, state.next_step, o)
    state.next_step += started
    if not ok:
        session.error = _("a step failed")
        o.line(_("A step failed: undoing everything, last step first."))
        session.outcome = "failed"
        undo_all(journal, session, o)
    return ok


def _keep_or_undo(args: argparse.Namespace, before: dict[str, Any], current: dict[str, Any],
                  journal: Journal, session: Session, o: Output, err: IO[str]) -> int:
    """Keep the change when the verdict improved and someone confirms it (--yes, or a yes
    on the terminal in time); else undo everything, last step first."""
    journal.add({"type": "state", "state": "applied"})
    if not planning.improved(before, current, session.plans[0].code):
        o.line(_("The verdict did not improve: undoing everything, last step first."))
        return _give_up(session, journal, o)
    if args.yes:
        session.confirmed_by = "--yes"
    elif _is_terminal(sys.stdin):
        answer = ask(_("The verdict improved. Keep the change? [y/N] (undone in {s} s "
                       "otherwise)").format(s=f"{args.confirm_timeout:g}"),
                     args.confirm_timeout, err)
        if not answer:
            o.line(_("Not confirmed: undoing everything, last step first."))
            return _give_up(session, journal, o)
        session.confirmed_by = "terminal"
    else:
        o.line(_("Nobody can confirm (no terminal, no --yes): undoing everything."))
        return _give_up(session, journal, o)
    journal.add({"type": "state", "state": "kept"})
    session.kept = True
    session.outcome = "repaired"
    o.line(_("Kept. The journal of this repair is {path}.").format(path=journal.path))
    return _finish(session, o, EXIT_KEPT)


@dataclass
class _Applying:
    journal: Optional[Journal] = None
    next_step: int = 1


def _agreed(args: argparse.Namespace, made: Plan, o: Output, err: IO[str]) -> bool:
    """--yes, or a yes typed on the terminal; with neither there is nobody to ask."""
    if args.yes:
        return True
    if not _is_terminal(sys.stdin):
        o.note(_("not applied: no terminal to ask and no --yes"))
        return False
    return bool(ask(_("Apply these {n} step(s)? [y/N]").format(n=len(made.steps)), None, err))


def _give_up(session: Session, journal: Journal, o: Output) -> int:
    session.outcome = "rolled_back"
    ok = undo_all(journal, session, o)
    if not ok:
        session.outcome = "failed"
        session.error = _("some steps could not be undone: see the journal")
    return _finish(session, o, EXIT_ROLLED_BACK)


async def _gather(doc: dict[str, Any], tag: str, server: Optional[dict[str, Any]]
                  ) -> tuple[Any, Any]:
    from netcheck.fix.gather import gather

    return await gather(doc, tag, server)
