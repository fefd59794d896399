"""``netcheck fix TARGET`` (and ``netcheck server --port N --fix``): plan, confirm, apply,
verify, keep or roll back.

1. Diagnose, as ``netcheck diagnose`` does.
2. Plan the repair of the root cause (:mod:`netcheck.fix.plan`), with the proofs it needs;
   no plan: say whom to ask and what to tell them (exit 1).
3. ``--plan``: show it and stop. Otherwise ask (a terminal; ``--yes`` answers for it; with
   neither there is nobody to ask and nothing is changed).
4. Apply step by step, each undo journaled *before* its step (:mod:`netcheck.fix.journal`),
   with a watchdog that rolls back if this process dies.
5. Diagnose again. When the next root cause has a plan too, offer it (three rounds at most).
6. Keep the change only if the verdict improved *and* it is confirmed within
   ``--confirm-timeout`` seconds (``--yes`` confirms an improvement); otherwise undo every
   step, last first.

Exit status: 0 repaired and kept, 1 nothing to repair (or no plan, or not applied), 2 the
repair failed or was rolled back, 3 bad input or not allowed (not root).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import IO, Any, Callable, Optional

from netcheck.fix import plan as planning
from netcheck.fix.actions import Outcome, execute, read_text
from netcheck.fix.journal import Journal, JournalError, left_behind, roll_back
from netcheck.fix.plan import Advice, Plan
from netcheck.i18n import _
from netcheck.redact import mask_value, shown

SCHEMA = "netcheck-fix/1"
FORMATS = ("text", "json")
MAX_ROUNDS = 3
EXIT_KEPT, EXIT_NOTHING, EXIT_ROLLED_BACK, EXIT_BAD = 0, 1, 2, 3


class Refused(Exception):
    """Bad input or not allowed: one line, exit 3."""


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """``netcheck fix`` takes the options of ``netcheck diagnose`` and the repair's own."""
    from netcheck.cliutil import add_common_options, port
    from netcheck.fix.options import add_repair_options

    parser.description = (
        "Diagnose TARGET; when the root cause is on this host and its repair can be proved, "
        "show the plan (each command with its undo and the evidence behind it), ask, apply "
        "it, diagnose again, and keep it only if the verdict improved and you confirm in "
        "time; otherwise every step is undone, last first. Needs root.")
    parser.add_argument("target", nargs="?",
                        help="host, host:port, address, [v6]:port or scheme://host[:port]")
    parser.add_argument("--port", type=port, help="override the port")
    add_common_options(parser)
    add_repair_options(parser)


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
    before = current = report_document(diagnose())
    session.before = before
    o.line(_("Diagnosis: {line}").format(line=summary_line(before)))
    state = _Applying()
    previous_term = signal.getsignal(signal.SIGTERM)
    try:
        for round_no in range(1, MAX_ROUNDS + 1):
            host, proofs = asyncio.run(_gather(current, f"netcheck-fix-{secrets.token_hex(3)}",
                                               server))
            made = planning.build(current, host, proofs)
            if isinstance(made, Advice):
                if round_no == 1:
                    session.advice = made
                    session.outcome = "nothing_to_repair" if made.code is None else "no_plan"
                    if made.code is None:
                        o.line(made.reason)
                    else:
                        show_advice(o, made)
                    return _finish(session, o, EXIT_NOTHING)
                o.line(_("No repair for it here: {reason}").format(reason=made.reason))
                break
            show_plan(o, made, start=state.next_step)
            session.plans.append(made)
            if args.plan:
                session.outcome = "planned"
                return _finish(session, o, EXIT_NOTHING)
            if not _agreed(args, made, o, err):
                if state.journal is None:
                    session.outcome = "declined"
                    return _finish(session, o, EXIT_NOTHING)
                session.plans.pop()
                break
            if state.journal is None:
                state.journal = _open_journal(before, made, o)
                session.journal = str(state.journal.path)
                signal.signal(signal.SIGTERM, _raise_interrupt)
            session.applied = True
            first = state.next_step
            ok, started = apply_plan(made, state.journal, first, o)
            state.next_step += started
            if not ok:
                session.error = _("a step failed")
                o.line(_("A step failed: undoing everything, last step first."))
                session.outcome = "failed"
                undo_all(state.journal, session, o)
                return _finish(session, o, EXIT_ROLLED_BACK)
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
        session.after = current
        journal = state.journal
        assert journal is not None
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


def _open_journal(before: dict[str, Any], made: Plan, o: Output) -> Journal:
    journal = Journal.create({"target": (before.get("target") or {}).get("input"),
                              "mode": before.get("mode"), "code": made.code})
    watchdog = start_watchdog(journal)
    journal.add({"type": "watchdog", "pid": watchdog})
    o.note(_("journal: {path} (watchdog pid {pid})").format(path=journal.path, pid=watchdog))
    return journal


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


def _finish(session: Session, o: Output, code: int) -> int:
    if o.fmt == "json":
        o.out.write(json.dumps(session.document(), indent=2, ensure_ascii=False) + "\n")
        o.out.flush()
    return code


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


# -- entry points ----------------------------------------------------------------------------------

def _fail(args: argparse.Namespace, message: str, out: IO[str], err: IO[str]) -> int:
    message = " ".join(message.split())[:300]
    if getattr(args, "format", "text") == "json":
        session = Session(outcome="refused", error=message)
        out.write(json.dumps(session.document(), indent=2, ensure_ascii=False) + "\n")
    else:
        err.write(f"netcheck: error: {shown(message)}\n")
    return EXIT_BAD


def _client_diagnosis(args: argparse.Namespace) -> Callable[[], Any]:
    """Validate the arguments once; a function that diagnoses the target again and again."""
    from netcheck import registry
    from netcheck.cliutil import (
        bounded,
        build_options,
        readable_file,
        usable_tls_files,
        valid_ifname,
    )
    from netcheck.runner import diagnose
    from netcheck.target import TargetError, parse_target

    try:
        target = parse_target(args.target, args.port)
    except TargetError as exc:
        raise Refused(str(exc)) from None
    if args.interface is not None and not valid_ifname(args.interface):
        raise Refused(f"--interface {args.interface[:20]!r} is not a valid interface name")
    for flag in ("cafile", "cert", "key"):
        readable_file(flag, getattr(args, flag))
    usable_tls_files(args.cafile, args.cert, args.key)
    reg = registry.load()
    for warning in reg.warnings:
        registry.warn(warning)
    checks = reg.for_mode("diagnose")

    def once() -> Any:
        # Each round's deadline counts from its own start.
        options = build_options(args, started=time.monotonic())
        return asyncio.run(bounded(diagnose(target, options, checks),
                                    max(0.1, args.deadline - 0.05)))

    return once


def run(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """``netcheck fix``; returns the exit status (see the module's docstring)."""
    from netcheck.cliutil import UsageError

    if args.format not in FORMATS:
        return _fail(args, f"--format {args.format} is not available for netcheck fix "
                           "(text or json)", out, err)
    try:
        if args.rollback:
            if args.target is not None:
                raise Refused(_("--rollback takes no TARGET"))
            return rollback(args, out, err)
        if args.target is None:
            raise Refused(_("give a TARGET (netcheck fix www.example.org), or --rollback"))
        return repair(args, _client_diagnosis(args), out, err)
    except (Refused, UsageError, JournalError) as exc:
        return _fail(args, str(exc.strerror if isinstance(exc, OSError) else exc), out, err)


def run_server(args: argparse.Namespace, opts: Any, out: IO[str], err: IO[str]) -> int:
    """``netcheck server --port N --fix``: the same session around server mode's diagnosis."""
    import dataclasses

    from netcheck.server.command import server_report

    if args.format not in FORMATS:
        return _fail(args, f"--format {args.format} is not available with --fix", out, err)

    def once() -> Any:
        return server_report(args, dataclasses.replace(opts, started=time.monotonic()))

    server = {"port": opts.port, "proto": opts.proto, "client": opts.client}
    try:
        if args.rollback:
            return rollback(args, out, err)
        return repair(args, once, out, err, server)
    except (Refused, JournalError) as exc:
        return _fail(args, str(exc.strerror if isinstance(exc, OSError) else exc), out, err)

