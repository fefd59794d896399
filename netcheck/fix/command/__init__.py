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

The package, by concern: ``session`` (the session's record and document, the text and
prompts for the person, the exit statuses), ``applying`` (steps applied with their undo
journaled first, the watchdog, undoing), ``repairing`` (the session, round by round:
:func:`repair`), ``rolling_back`` (``--rollback``). Here: the command's arguments and entry
points (:func:`run`, :func:`run_server`), and every name importable from
``netcheck.fix.command`` as before the split.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import IO, Any, Callable

from netcheck.fix.command.applying import apply_plan, start_watchdog, undo_all
from netcheck.fix.command.repairing import MAX_ROUNDS, repair
from netcheck.fix.command.rolling_back import rollback
from netcheck.fix.command.session import (
    EXIT_BAD,
    EXIT_KEPT,
    EXIT_NOTHING,
    EXIT_ROLLED_BACK,
    SCHEMA,
    Output,
    Refused,
    Session,
    ask,
    show_advice,
    show_plan,
    summary_line,
)
from netcheck.fix.journal import JournalError
from netcheck.i18n import _
from netcheck.redact import shown

# Every public name the module had before it became a package.
__all__ = [
    "EXIT_BAD", "EXIT_KEPT", "EXIT_NOTHING", "EXIT_ROLLED_BACK", "FORMATS", "MAX_ROUNDS", "Output",
    "Refused", "SCHEMA", "Session", "add_arguments", "apply_plan", "ask", "repair", "rollback",
    "run", "run_server", "show_advice", "show_plan", "start_watchdog", "summary_line", "undo_all",
]


FORMATS = ("text", "json")


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
