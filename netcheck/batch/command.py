"""``netcheck batch FILE|-``: the CLI glue for many targets.

Values are checked here rather than by argparse, so that bad input still gives one
document of the format asked for (a netcheck-batch/1 JSON, a JUnit error, a Nagios
UNKNOWN line...) and exit status 3.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from types import FrameType, TracebackType
from typing import IO, Any, Coroutine, Optional, TypeVar

from netcheck import defaults as option_defaults
from netcheck.batch.profile import OPTION_KEYS, Entry, Profile
from netcheck.batch.run import (
    DEFAULT_CONCURRENCY,
    LADDER_CONCURRENCY,
    LADDERS,
    MAX_CONCURRENCY,
    Done,
    Settings,
    Summary,
)

FORMATS = ("text", "json", "ndjson", "junit", "nagios", "prometheus")
MAX_PROBLEMS_SHOWN = 50
T = TypeVar("T")


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """The options of ``netcheck batch``."""
    parser.description = ("Diagnose many targets: a TOML profile of named groups of targets "
                          "(see docs/monitoring.md), or - for one target a line on stdin.")
    parser.add_argument("profile", metavar="FILE|-", help="TOML profile, or - for stdin")
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format")
    parser.add_argument("--json", dest="format", action="store_const", const="json",
                        help="same as --format json")
    parser.add_argument("--concurrency", metavar="N", default=str(DEFAULT_CONCURRENCY),
                        help=f"targets diagnosed at once (default {DEFAULT_CONCURRENCY})")
    parser.add_argument("--only", metavar="CHECKS", action="append", default=[],
                        help="run only these checks: a layer (4, transport), an id "
                             "(transport.tcp) or an id prefix (dns); repeatable, or comma-"
                             "separated. --only transport.tcp is a plain connect sweep")
    parser.add_argument("--ladder", choices=LADDERS, default="always",
                        help="always (the default): every target gets the whole diagnosis; "
                             "on-failure: first the exchange alone (name, connect, TLS, "
                             "request) as blackbox_exporter does it, and the diagnosis only "
                             "for targets where it fails or warns (tcp, http and https "
                             f"targets; at most {LADDER_CONCURRENCY} diagnoses at once)")
    parser.add_argument("--timeout", metavar="S",
                        help=f"per-probe timeout (default {option_defaults.TIMEOUT:g})")
    parser.add_argument("--deadline", metavar="S",
                        help=f"bound on each target (default {option_defaults.DEADLINE:g})")
    fam = parser.add_mutually_exclusive_group()
    fam.add_argument("-4", dest="family", action="store_const", const=4, help="IPv4 only")
    fam.add_argument("-6", dest="family", action="store_const", const=6, help="IPv6 only")
    parser.add_argument("--port", metavar="N", help="port for targets that name none")
    parser.add_argument("--scheme", metavar="S", help="scheme for targets written without one")
    parser.add_argument("--expect", choices=option_defaults.EXPECTS,
                        help="expectation for targets that set none")
    parser.add_argument("--cafile", metavar="PATH", help="extra CA bundle for TLS")
    parser.add_argument("--scan", action="store_true", help="identify services with nmap -sV")
    parser.add_argument("--lang", choices=("en", "es", "ca"), help="language of texts")
    parser.add_argument("--no-color", action="store_true", help="no colours")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="only the targets that are not ok, and no progress bar")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="the hint of every target that is not ok")
    parser.add_argument("--sysroot", default=os.environ.get("NETCHECK_SYSROOT", "/"),
                        help=argparse.SUPPRESS)


class _Bad(Exception):
    """Bad input: one line, exit 3, and a document of the format asked for."""


def _float(name: str, text: Optional[str]) -> Optional[float]:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise _Bad(f"--{name} {text[:20]!r} is not a number") from None
    if not 0 < value <= 3600:
        raise _Bad(f"--{name} {text[:20]!r} must be between 0 and 3600 seconds")
    return value


def _settings(args: argparse.Namespace) -> tuple[Settings, dict[str, Any]]:
    """Batch settings, and the option defaults the command line gives every target."""
    from netcheck.batch.profile import check_option

    text = str(args.concurrency)
    if not text.isdigit() or not 1 <= int(text) <= MAX_CONCURRENCY:
        raise _Bad(f"--concurrency {text[:20]!r} must be a number from 1 to {MAX_CONCURRENCY}")
    settings = Settings(concurrency=int(text), family=args.family, lang=args.lang or "en",
                        sysroot=args.sysroot, only=tuple(args.only), scan=args.scan,
                        ladder=args.ladder)
    defaults: dict[str, Any] = {}
    for name in ("timeout", "deadline"):
        value = _float(name, getattr(args, name))
        if value is not None:
            defaults[name] = value
    if args.family is not None:
        defaults["family"] = args.family
    if args.port is not None:
        if not str(args.port).isdigit():
            raise _Bad(f"--port {args.port[:20]!r} is not a number from 1 to 65535")
        defaults["port"] = int(args.port)
    for name in ("port", "scheme", "expect", "cafile"):
        value = defaults.get(name, getattr(args, name))
        if value is None:
            continue
        try:
            defaults[name] = check_option(name, value, os.getcwd())
        except ValueError as exc:
            raise _Bad(f"--{name}: {exc}") from None
    assert set(defaults) <= set(OPTION_KEYS)
    return settings, defaults


def _output(args: argparse.Namespace, out: IO[str], err: IO[str]) -> Any:
    from netcheck.batch.outputs import OUTPUTS

    return OUTPUTS[args.format](out, err, progress=not args.quiet, quiet=args.quiet,
                                verbose=args.verbose, no_color=args.no_color)


def _fail(args: argparse.Namespace, message: str, out: IO[str], err: IO[str]) -> int:
    """Bad input: the error on stderr, and for machine formats one document holding it."""
    from netcheck.redact import shown
    from netcheck.render.json import error_report

    message = shown(" ".join(message.split()), 300)
    err.write(f"netcheck batch: error: {message}\n")
    if args.format == "text":
        return 3
    source = shown(str(args.profile), 200)
    entry = Entry(source, "", 0, source, problem=message)
    output = _output(args, out, err)
    summary = Summary()
    output.begin(Profile(source, [entry]), None)
    report = error_report(source, message)
    summary.add(report.verdict)
    output.done(Done(0, entry, report))
    output.finish(summary)
    return 3


def raise_fd_limit(want: int) -> None:
    """Raise the soft descriptor limit to ``want`` (never past the hard limit), so that the
    sockets of many probes at once do not cut a run short."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < want:
            new = want if hard == resource.RLIM_INFINITY else min(want, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    except (ImportError, ValueError, OSError):
        pass


class _Termination:
    """SIGTERM handled like Ctrl-C: the run stops, and the document is closed and valid.

    Installed for the whole run, since the document is begun before the event loop starts
    and closed after it ends: a SIGTERM before the loop makes it stop as soon as it starts,
    one after it changes nothing, and one during it cancels the main task the way asyncio's
    own SIGINT handler does, so the output is never cut inside a write.
    """

    def __init__(self) -> None:
        self.received = False
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.task: Optional[asyncio.Task[Any]] = None
        self.previous: Any = None
        self.installed = False

    def __enter__(self) -> _Termination:
        try:
            self.previous = signal.signal(signal.SIGTERM, self._on_signal)
            self.installed = True
        except ValueError:  # not the main thread (an embedding caller): leave SIGTERM alone
            pass
        return self

    def __exit__(self, kind: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        if self.installed:
            signal.signal(signal.SIGTERM, self.previous)

    def _on_signal(self, signum: int, frame: Optional[FrameType]) -> None:
        self.received = True
        if self.loop is not None and self.task is not None:
            self.loop.call_soon_threadsafe(self.task.cancel)

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` as the main task; a SIGTERM cancels it (CancelledError)."""
        self.loop = asyncio.get_running_loop()
        self.task = asyncio.current_task()
        try:
            if self.received and self.task is not None:
                self.task.cancel()  # it came before the loop did
            return await coro
        finally:
            self.loop = self.task = None


def run(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """Load the profile, diagnose its targets, print the format asked for; the worst exit."""
    with _Termination() as termination:
        return _run(args, out, err, termination)


def _run(args: argparse.Namespace, out: IO[str], err: IO[str],
         termination: _Termination) -> int:
    import sys

    from netcheck.batch import profile as profiles
    from netcheck.batch.run import checks_for, run_profile

    try:
        settings, defaults = _settings(args)
        try:
            stdin = sys.stdin if args.profile == "-" else None
            profile = profiles.load(args.profile, stdin=stdin, defaults=defaults)
        except profiles.ProfileError as exc:
            raise _Bad(str(exc)) from None
        if not profile.entries:
            raise _Bad(f"{profile.source}: no targets in it")
        try:
            checks = checks_for(settings)
        except ValueError as exc:
            raise _Bad(str(exc)) from None
    except _Bad as exc:
        return _fail(args, str(exc), out, err)

    problems = list(profile.problem_lines())
    for line in problems[:MAX_PROBLEMS_SHOWN]:
        err.write(f"netcheck batch: {line}\n")
    if len(problems) > MAX_PROBLEMS_SHOWN:
        err.write(f"netcheck batch: ... and {len(problems) - MAX_PROBLEMS_SHOWN} more problems "
                  "(each is an unknown result)\n")
    raise_fd_limit(settings.concurrency * 16 + 64)  # a few sockets per diagnosis
    output = _output(args, out, err)
    output.begin(profile, settings)
    window = max(256, settings.concurrency * 8) if output.ordered else None
    summary = Summary()
    try:
        asyncio.run(termination.run(run_profile(profile, settings, checks, output.done,
                                                output.started, window=window,
                                                summary=summary)))
    except (KeyboardInterrupt, asyncio.CancelledError):
        summary.interrupted = True
        why = "terminated (SIGTERM)" if termination.received else "interrupted"
        err.write(f"netcheck batch: {why}: the results so far follow\n")
    output.finish(summary)
    return summary.exit_code
