"""Command line: parse arguments, run, render. Nothing else lives here.

Heavy modules (rich, pyroute2, dnspython, psutil) are imported only by the command that
needs them, so ``netcheck --version`` and ``netcheck checks`` start fast.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import IO, NoReturn, Optional, Sequence

from netcheck import __version__, i18n
from netcheck.cliutil import (
    EXIT_UNKNOWN,
    FORMATS,
    SIGTERM,
    SigtermGuard,
    Terminated,
    UsageError,
    add_common_options,
    bounded,
    build_options,
    early_probes,
    known_options,
    port,
    positive,
    readable_file,
    render,
    usable_tls_files,
    usable_urls,
    valid_ifname,
    valued_options,
    write_error,
)
from netcheck.redact import mask_secrets, shown

# Re-exported: commands and tests name them as netcheck.cli's.
__all__ = ["EXIT_UNKNOWN", "FORMATS", "SigtermGuard", "Terminated", "UsageError", "build_parser",
           "main", "run"]

# The deadline bounds the whole run as the user sees it: for the console command that
# includes the interpreter's start-up (main() passes this); an in-process run() starts its
# clock when it is called.
STARTED = time.monotonic()

# Commands that live in their own modules, imported only when chosen (pip's pattern):
# each module has add_arguments(parser, command) and run(args, out, err) -> exit code.
EXTERNAL_COMMANDS: dict[str, tuple[str, str]] = {
    "pcap": ("netcheck.pcap.command", "explain the TCP/TLS/DNS sessions in a capture file"),
    "trace": ("netcheck.pcap.command", "capture one connection to TARGET and explain it"),
    "lab": ("netcheck.lab.command", "break-and-fix lab networks for teaching (needs root)"),
    "batch": ("netcheck.batch.command", "diagnose many targets from a TOML profile or stdin"),
    "serve": ("netcheck.exporter.command", "Prometheus exporter: /probe?target=... and /metrics"),
    "server": ("netcheck.server.command", "server side: is the service on this host reachable?"),
    "fix": ("netcheck.fix.command", "diagnose, then repair what this host can (plan, confirm, "
            "apply, verify, roll back)"),
    "path": ("netcheck.path_command", "where packets to TARGET stop, hop by hop (as mtr)"),
}
COMMANDS = ("diagnose", "checks", *EXTERNAL_COMMANDS)
WATCH_DEFAULT = 5.0  # seconds between the rounds of --watch


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


# argparse's own messages (argparse calls its module's ``_``), in the reader's language: a
# usage error reads like the rest of netcheck. Anything else argparse says stays as it is.
_ARGPARSE_TEXTS = frozenset((
    i18n.N_("the following arguments are required: %s"),
    i18n.N_("argument %(argument_name)s: %(message)s"),
    i18n.N_("unrecognized arguments: %s"),
    i18n.N_("invalid choice: %(value)r (choose from %(choices)s)"),
    i18n.N_("expected one argument"),
    i18n.N_("expected at least one argument"),
    i18n.N_("expected at most one argument"),
    i18n.N_("not allowed with argument %s"),
    i18n.N_("invalid %(type)s value: %(value)r"),
    i18n.N_("one of the arguments %s is required"),
    i18n.N_("ambiguous option: %(option)s could match %(matches)s"),
    i18n.N_("ignored explicit argument %r"),
))


def _argparse_text(message: str) -> str:
    return i18n._(message) if message in _ARGPARSE_TEXTS else message


argparse._ = _argparse_text  # type: ignore[attr-defined]


def build_parser(command: Optional[str] = None) -> argparse.ArgumentParser:
    """The argument parser (``netcheck TARGET`` is rewritten to ``netcheck diagnose TARGET``).

    An external command's own arguments are added only when it is the one chosen.
    """
    parser = _Parser(prog="netcheck", description="Why can't this host reach that server? "
                     "OSI layer by layer, bottom up, on the path the packets really take.")
    parser.add_argument("--version", action="version", version=f"netcheck {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    diag = sub.add_parser("diagnose", help="walk L1 -> L7 towards TARGET")
    diag.add_argument("target", help="host, host:port, address, [v6]:port or scheme://host[:port]")
    diag.add_argument("--port", type=port, help="override the port")
    diag.add_argument("--watch", nargs="?", type=positive, const=WATCH_DEFAULT,
                      metavar="SECONDS", help="diagnose again and again, every SECONDS "
                      f"(default {WATCH_DEFAULT:g}); a line per round, a block per change")
    via = diag.add_mutually_exclusive_group()
    via.add_argument("--proxy", metavar="URL", help="HTTP(S) proxy to use, http[s]://[user:pw@]"
                     "host[:port] (default: http_proxy, https_proxy, all_proxy as curl reads them)")
    via.add_argument("--no-proxy", action="store_true",
                     help="ignore the proxy configured in the environment")
    diag.add_argument("--portal-url", metavar="URL", help="connectivity-check URL for captive "
                      "portal detection (default: the network manager's, when it has one)")
    add_common_options(diag)
    lst = sub.add_parser("checks", help="list the registered checks, by layer")
    add_common_options(lst)
    for name, (_module, text) in EXTERNAL_COMMANDS.items():
        ext = sub.add_parser(name, help=text)
        if name == command:
            _external(name).add_arguments(ext, name)
    return parser


def _external(name: str):  # type: ignore[no-untyped-def]
    import importlib

    module, _help = EXTERNAL_COMMANDS[name]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            raise UsageError(i18n._("netcheck {command} is not available in this version "
                                    "yet").format(command=name)) from None
        raise


def _valued(argv: Sequence[str]) -> set[str]:
    """The options that take a value, read from the parsers (``--timeout 5``: skip the 5).

    The base parser (diagnose, checks, the common options) is built at once; the external
    commands' parsers, which import their modules, only when an option the base parser does
    not know comes before the first positional word (``netcheck --scheme https batch``).
    """
    base = build_parser()
    known, valued = known_options(base), valued_options(base)
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif not arg.startswith("-") or arg == "-":
            return valued  # the command word, or the target: nothing unknown before it
        elif arg.split("=", 1)[0] not in known:
            break
        else:
            skip = arg in valued
    else:
        return valued
    sub = next(a for a in base._actions if isinstance(a, argparse._SubParsersAction))
    for name in EXTERNAL_COMMANDS:
        try:
            _external(name).add_arguments(sub.choices[name], name)
        except Exception:  # noqa: BLE001 - a command that cannot load takes no options here;
            continue  # running it says why, in its own words
    # An option the base parser knows keeps its meaning there (``--json`` is a flag; only
    # ``lab campaign --json FILE``, after its command word, takes a value).
    return valued | (valued_options(base) - known)


def _normalise(argv: list[str]) -> list[str]:
    """Put the command first; no command means ``diagnose`` (``netcheck TARGET``)."""
    if any(a in ("-h", "--help", "--version") for a in argv[:1]):
        return argv
    skip = False
    valued = _valued(argv)
    for i, arg in enumerate(argv):  # the first positional word (not an option's value)
        if skip:
            skip = False
        elif arg in valued:
            skip = True
        elif not arg.startswith("-") or arg == "-":
            if arg in COMMANDS:
                return [arg, *argv[:i], *argv[i + 1:]]
            break
    if not argv or all(a in ("-h", "--help", "--version") for a in argv):
        return argv
    return ["diagnose", *argv]


def _format_of(argv: Sequence[str]) -> str:
    """The output format asked for, read from raw arguments (even ones the parser refused)."""
    chosen = "text"
    for i, arg in enumerate(argv):
        if arg == "--json":
            chosen = "json"
        elif arg == "--format" and i + 1 < len(argv):
            chosen = argv[i + 1]
        elif arg.startswith("--format="):
            chosen = arg.split("=", 1)[1]
    return chosen if chosen in FORMATS else "text"


def _lang_of(argv: Sequence[str]) -> Optional[str]:
    """``--lang`` among raw arguments (even ones the parser refuses), or None."""
    for i, arg in enumerate(argv):
        if arg == "--lang" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--lang="):
            return arg.split("=", 1)[1]
    return None


def _target_text(argv: Sequence[str]) -> str:
    """The TARGET among the arguments (skipping option values), secrets masked."""
    skip = False
    valued = _valued(argv)
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in valued:
            skip = True
        elif not arg.startswith("-") and arg not in COMMANDS:
            return mask_secrets(_mask(arg))
    return ""


def _mask(text: str) -> str:
    """Hide a password in a URL-looking argument, even one the parser rejected.

    An argument is one word even with a blank in it (``http://ann:pass word@host/``): its
    authority runs to the first '/', which free-text masking cannot assume.
    """
    scheme, sep, rest = text.partition("://")
    authority = rest.split("/")[0]
    if sep and "@" in authority:
        cred, _at, _host = authority.rpartition("@")
        if ":" in cred:
            return f"{scheme}://{cred.split(':')[0]}:***@{rest[len(cred) + 1:]}"
    return text


def _fail(argv: Sequence[str], message: str, out: IO[str], err: IO[str]) -> int:
    """Say why netcheck cannot run: one line on stderr, or for a machine format one document
    of that format on stdout (verdict unknown), as scripts and monitoring read it."""
    fmt = _format_of(argv)
    if fmt != "text" and _normalise(list(argv))[:1] in (["pcap"], ["trace"]):
        from netcheck.pcap.command import error_document  # their own schema

        with SIGTERM.writing():
            out.write(error_document(" ".join(message.split())[:300]))
        return EXIT_UNKNOWN
    return write_error(message, fmt, _target_text(argv), out, err)


def run(argv: Optional[Sequence[str]] = None, out: IO[str] = sys.stdout,
        err: IO[str] = sys.stderr, started: Optional[float] = None) -> int:
    """Run netcheck with these arguments; return the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["--version"]:
        out.write(f"netcheck {__version__}\n")
        return 0
    # The language is the process's while netcheck runs; a caller that runs netcheck
    # in-process (the tests, a script) gets its own back afterwards.
    before = i18n.process_language()
    try:
        return _run(args_list, out, err, started if started is not None else time.monotonic())
    finally:
        i18n.set_language(before)


def _run(args_list: list[str], out: IO[str], err: IO[str], started: float) -> int:
    try:
        import contextlib

        # The language of usage errors, before the parser has read --lang.
        i18n.set_language(i18n.choose(_lang_of(args_list)))
        try:
            with contextlib.redirect_stdout(out):  # -h prints through argparse
                argv_n = _normalise(args_list)
                chosen = argv_n[0] if argv_n and argv_n[0] in EXTERNAL_COMMANDS else None
                args = build_parser(chosen).parse_args(argv_n)
        except SystemExit as exc:  # only -h/--help gets here: errors raise UsageError
            return exc.code if isinstance(exc.code, int) else 0
        if args.command is None:
            raise UsageError(i18n._("give a TARGET (e.g. netcheck www.example.org) or a "
                                    "command; see netcheck --help"))
        _choose_language(args, err)
        args.started = started  # the deadline's clock, for every command
        if args.command == "checks":
            return _list_checks(out)
        if args.command in EXTERNAL_COMMANDS:
            return int(_external(args.command).run(args, out, err))
        # SIGTERM (a monitoring system's timeout, systemd, kill) ends a diagnosis as Ctrl-C
        # does: with the one document the format promises, never half of it.
        SIGTERM.install()
        return _diagnose(args, out, err)
    except UsageError as exc:
        return _fail(args_list, str(exc), out, err)
    except Terminated:
        return _fail(args_list, i18n._("terminated (SIGTERM)"), out, err)
    except KeyboardInterrupt:
        return _fail(args_list, i18n._("interrupted"), out, err)
    except BrokenPipeError:  # `netcheck ... | head`: the reader left, nothing to say
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        except OSError:
            pass
        return 0
    except Exception as exc:  # the contract: one clear line (or one JSON), never a traceback
        return _fail(args_list, f"internal error: {type(exc).__name__}: {exc}", out, err)
    finally:
        SIGTERM.uninstall()


def _choose_language(args: argparse.Namespace, err: IO[str]) -> None:
    """Set the process's language once: ``--lang``, else the locale (LC_ALL, LC_MESSAGES,
    LANG), else English. A command's own ``--lang`` left unset is filled in the same way,
    so batch, serve and pcap follow the locale too."""
    lang = i18n.set_language(i18n.choose(getattr(args, "lang", None)))
    if hasattr(args, "lang") and args.lang is None:
        args.lang = lang
    if lang != i18n.DEFAULT:
        i18n.translations(lang)  # read now, so a broken catalog is said once, up front
        if lang in i18n.load_errors:
            err.write(f"netcheck: warning: cannot use the {lang} texts "
                      f"({i18n.load_errors[lang]}); they stay in English\n")


def _diagnose(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from netcheck.target import TargetError, parse_target

    try:
        target = parse_target(args.target, args.port)
    except TargetError as exc:
        raise UsageError(str(exc)) from None
    if args.interface is not None and not valid_ifname(args.interface):
        raise UsageError(i18n._("--interface {value} is not a valid interface name").format(
            value=repr(args.interface[:20])))
    for flag in ("cafile", "cert", "key"):
        readable_file(flag, getattr(args, flag))
    if bool(args.cert) != bool(args.key) and args.cert is None:
        raise UsageError(i18n._("--key needs --cert"))
    usable_tls_files(args.cafile, args.cert, args.key)
    usable_urls(args.proxy, args.portal_url)
    # The ARP probes' wait (0.3 s) overlaps what follows: imports, the snapshot.
    early = early_probes(target, args)
    import asyncio

    from netcheck import registry
    from netcheck.runner import diagnose

    # Only the console diagnosis locates a silent flow's stop (a batch sweep must not).
    options = build_options(args, locate=True, early=early)
    reg = registry.load()
    for warning in reg.warnings:
        registry.warn(warning)
    if args.watch is not None:
        from netcheck.watch import watch

        return watch(target, options, reg.for_mode("diagnose"), args, out, err, SIGTERM)
    budget = options.deadline - (time.monotonic() - args.started)
    live = _live_status(args, out)
    try:
        report = asyncio.run(bounded(
            diagnose(target, options, reg.for_mode("diagnose"),
                     on_progress=live.update if live else None),
            max(0.1, budget - 0.05)))
    finally:
        if live:
            live.stop()
    render(report, args, out)
    return report.verdict.exit_code


class _LiveLadder:
    """While checks run on a terminal, one status line names the rung being checked."""

    def __init__(self, out: IO[str]) -> None:
        from rich.console import Console

        self.running: dict[str, str] = {}
        self.status = Console(file=out, stderr=False).status("netcheck: " + i18n._("starting"))
        self.status.start()

    def update(self, chk, outcome) -> None:  # type: ignore[no-untyped-def]
        from netcheck.i18n import _
        from netcheck.render.text import layer_name, title_of

        if chk.runs_last:  # it waits for the others: naming it would hide the real work
            return
        if outcome is None:
            self.running[chk.id] = (f"L{int(chk.layer)} {layer_name(chk.layer)}: "
                                    f"{title_of(chk.title)}")
        else:
            self.running.pop(chk.id, None)
        if self.running:
            lowest = min(self.running.values())
            line = _("checking {rung}").format(rung=lowest)
            if len(self.running) > 1:
                line += " " + _("(+{n} more)").format(n=len(self.running) - 1)
            self.status.update(line)

    def stop(self) -> None:
        self.status.stop()


def _live_status(args: argparse.Namespace, out: IO[str]) -> Optional[_LiveLadder]:
    from netcheck.render import wants_color

    # The spinner is escape sequences too: only where colour would be.
    if args.format != "text" or args.quiet or not wants_color(out, args.no_color):
        return None
    return _LiveLadder(out)


def _list_checks(out: IO[str]) -> int:
    import textwrap

    from netcheck import registry
    from netcheck.model import Layer
    from netcheck.render import columns
    from netcheck.render.text import layer_name, title_of

    reg = registry.load()
    for warning in reg.warnings:
        registry.warn(warning)
    width = columns(out)
    for layer in Layer:
        mine = [c for c in reg.checks if c.layer == layer]
        if not mine:
            continue
        out.write(f"L{int(layer)} {layer_name(layer)}\n")
        for c in mine:  # a third-party plugin's id and title are outside text
            codes = f"  [{shown(', '.join(c.codes))}]" if c.codes else ""
            line = f"  {shown(c.id):<22} {shown(title_of(c.title))}{codes}"
            # Wrapped under the title, at spaces only: a code is never cut in two.
            out.write("\n".join(textwrap.wrap(line, width, subsequent_indent=" " * 25,
                                               break_long_words=False,
                                               break_on_hyphens=False)) + "\n")
    return 0


def main() -> NoReturn:
    """Console entry point."""
    code = run(started=STARTED)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        pass
    # A probe thread stuck in a system call must not hold the process past the deadline.
    os._exit(code)
