"""Command line: parse arguments, run, render. Nothing else lives here.

Heavy modules (rich, pyroute2, dnspython, psutil) are imported only by the command that
needs them, so ``netcheck --version`` and ``netcheck checks`` start fast.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from typing import IO, Any, Iterator, NoReturn, Optional, Sequence

from netcheck import __version__, i18n
from netcheck.redact import mask_secrets, shown

# The deadline bounds the whole run as the user sees it: for the console command that
# includes the interpreter's start-up (main() passes this); an in-process run() starts its
# clock when it is called.
STARTED = time.monotonic()

EXIT_UNKNOWN = 3
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
FORMATS = ("text", "json", "ndjson", "nagios", "junit", "prometheus")
WATCH_DEFAULT = 5.0  # seconds between the rounds of --watch


class UsageError(Exception):
    """Bad command-line input: one line for the user, exit code 3."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so the run ends the same way.

    A KeyboardInterrupt subclass on purpose: asyncio lets it through at once instead of
    storing it in whichever task happened to run.
    """


class SigtermGuard:
    """SIGTERM as an interrupt that never cuts a document in half.

    While installed, the first SIGTERM raises :class:`Terminated` in the main thread, unless
    output is being written (:meth:`writing`): then it waits until the document is complete.
    After the first one, or while the error document is written, further SIGTERMs wait too.
    Installed only from the main thread (elsewhere signals cannot be handled) and put back
    as it was afterwards, so an in-process caller keeps its own handler.
    """

    def __init__(self) -> None:
        self.raised = False
        self.pending = False
        self._writing = 0
        self._previous: Any = None
        self._installed = False

    def _handle(self, signum: int, frame: Any) -> None:
        if self.raised or self._writing:
            self.pending = True
            return
        self.raised = True
        raise Terminated()

    def install(self) -> None:
        """Handle SIGTERM from now on (a no-op outside the main thread)."""
        if self._installed or threading.current_thread() is not threading.main_thread():
            return
        self._previous = signal.signal(signal.SIGTERM, self._handle)
        self._installed = True

    def uninstall(self) -> None:
        """Give SIGTERM back to whoever had it."""
        if self._installed:
            signal.signal(signal.SIGTERM, self._previous)
            self._installed = False
        self.raised = self.pending = False  # the next in-process run starts afresh

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """A block during which a SIGTERM waits: the document being written gets finished."""
        self._writing += 1
        try:
            yield
        finally:
            self._writing -= 1


_SIGTERM = SigtermGuard()


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


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(i18n._("{value} is not a number").format(
            value=repr(text))) from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(i18n._(
            "{value} must be between 0 and 3600 seconds").format(value=repr(text)))
    return value


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(i18n._(
            "port {value} is not a number from 1 to 65535").format(value=repr(text[:20])))
    return int(text)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=FORMATS, default="text", help="output format")
    p.add_argument("--json", dest="format", action="store_const", const="json",
                   help="same as --format json")
    p.add_argument("--timeout", type=_positive, default=2.0, help="per-probe timeout (s)")
    p.add_argument("--deadline", type=_positive, default=15.0, help="bound on the whole run (s)")
    fam = p.add_mutually_exclusive_group()
    fam.add_argument("-4", dest="family", action="store_const", const=4, help="IPv4 only")
    fam.add_argument("-6", dest="family", action="store_const", const=6, help="IPv6 only")
    p.add_argument("--interface", metavar="IF", help="diagnose this egress interface")
    p.add_argument("--cafile", metavar="PATH", help="extra CA bundle for TLS")
    p.add_argument("--cert", metavar="PATH", help="client certificate for mutual TLS")
    p.add_argument("--key", metavar="PATH", help="client key for mutual TLS")
    p.add_argument("--scan", action="store_true",
                   help="identify the service with nmap (-sV) when nmap is installed")
    p.add_argument("--lang", choices=("en", "es", "ca"), help="language of texts")
    p.add_argument("--no-color", action="store_true", help="no colours")
    p.add_argument("-q", "--quiet", action="store_true", help="only the diagnosis")
    p.add_argument("-v", "--verbose", action="store_true", help="show the evidence")
    p.add_argument("--sysroot", default=os.environ.get("NETCHECK_SYSROOT", "/"),
                   help=argparse.SUPPRESS)


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
    diag.add_argument("--port", type=_port, help="override the port")
    diag.add_argument("--watch", nargs="?", type=_positive, const=WATCH_DEFAULT,
                      metavar="SECONDS", help="diagnose again and again, every SECONDS "
                      f"(default {WATCH_DEFAULT:g}); a line per round, a block per change")
    via = diag.add_mutually_exclusive_group()
    via.add_argument("--proxy", metavar="URL", help="HTTP(S) proxy to use, http[s]://[user:pw@]"
                     "host[:port] (default: http_proxy, https_proxy, all_proxy as curl reads them)")
    via.add_argument("--no-proxy", action="store_true",
                     help="ignore the proxy configured in the environment")
    diag.add_argument("--portal-url", metavar="URL", help="connectivity-check URL for captive "
                      "portal detection (default: the network manager's, when it has one)")
    _common(diag)
    lst = sub.add_parser("checks", help="list the registered checks, by layer")
    _common(lst)
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


_VALUED = {"--format", "--timeout", "--deadline", "--interface", "--cafile", "--cert", "--key",
           "--lang", "--port", "--sysroot", "--filter", "--session", "--max-sessions",
           "--capture", "-w", "--write", "--concurrency", "--listen", "--config", "--allow",
           "--only", "--proto", "--service", "--process", "--log", "--client", "--request-id",
           "--confirm-timeout", "--since", "--count", "--max-hops", "--proxy", "--portal-url"}

def _normalise(argv: list[str]) -> list[str]:
    """Put the command first; no command means ``diagnose`` (``netcheck TARGET``)."""
    if any(a in ("-h", "--help", "--version") for a in argv[:1]):
        return argv
    skip = False
    for i, arg in enumerate(argv):  # the first positional word (not an option's value)
        if skip:
            skip = False
        elif arg in _VALUED:
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
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in _VALUED:
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
    message = " ".join(message.split())[:300]
    fmt = _format_of(argv)
    with _SIGTERM.writing():
        if fmt == "text":
            err.write(f"netcheck: error: {shown(message)}\n")
        elif _normalise(list(argv))[:1] in (["pcap"], ["trace"]):
            from netcheck.pcap.command import error_document  # their own schema

            out.write(error_document(message))
        else:
            from netcheck.render.json import error_report

            out.write(_document(error_report(_target_text(argv), message), fmt))
    return EXIT_UNKNOWN


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
        _SIGTERM.install()
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
        _SIGTERM.uninstall()


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
    import asyncio

    from netcheck import registry
    from netcheck.runner import Options, diagnose
    from netcheck.target import TargetError, parse_target

    try:
        target = parse_target(args.target, args.port)
    except TargetError as exc:
        raise UsageError(str(exc)) from None
    if args.interface is not None and not _valid_ifname(args.interface):
        raise UsageError(i18n._("--interface {value} is not a valid interface name").format(
            value=repr(args.interface[:20])))
    for flag in ("cafile", "cert", "key"):
        _readable_file(flag, getattr(args, flag))
    if bool(args.cert) != bool(args.key) and args.cert is None:
        raise UsageError(i18n._("--key needs --cert"))
    _usable_tls_files(args.cafile, args.cert, args.key)
    _usable_urls(args.proxy, args.portal_url)
    options = Options(timeout=args.timeout, deadline=args.deadline, family=args.family,
                      interface=args.interface, lang=args.lang, verbose=args.verbose,
                      sysroot=args.sysroot, cafile=args.cafile, cert=args.cert, key=args.key,
                      scan=args.scan, started=args.started, locate=True, proxy=args.proxy,
                      no_proxy=args.no_proxy, portal_url=args.portal_url)
    reg = registry.load()
    for warning in reg.warnings:
        registry.warn(warning)
    if args.watch is not None:
        from netcheck.watch import watch

        return watch(target, options, reg.for_mode("diagnose"), args, out, err, _SIGTERM)
    budget = options.deadline - (time.monotonic() - args.started)
    live = _live_status(args, out)
    try:
        report = asyncio.run(_bounded(
            diagnose(target, options, reg.for_mode("diagnose"),
                     on_progress=live.update if live else None),
            max(0.1, budget - 0.05)))
    finally:
        if live:
            live.stop()
    _render(report, args, out)
    return report.verdict.exit_code


async def _bounded(coro, deadline: float):  # type: ignore[no-untyped-def]
    """The runner keeps its own deadline; this is the backstop if the snapshot hangs."""
    import asyncio

    try:
        return await asyncio.wait_for(coro, deadline)
    except asyncio.TimeoutError:
        raise UsageError(i18n._("no result within the deadline ({seconds} s)").format(
            seconds=f"{deadline:g}")) from None


def _readable_file(flag: str, path: Optional[str]) -> None:
    """A path option must name a readable regular file; its contents are never shown."""
    if path is None:
        return
    cut = path if len(path) <= 80 else path[:77] + "..."
    if not os.path.isfile(path):
        raise UsageError(i18n._("{option} {value}: no such file").format(
            option=f"--{flag}", value=repr(cut)))
    if not os.access(path, os.R_OK):
        raise UsageError(i18n._("{option} {value}: not readable").format(
            option=f"--{flag}", value=repr(cut)))


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


def _usable_tls_files(cafile: Optional[str], cert: Optional[str], key: Optional[str]) -> None:
    """Load the CA bundle and the client pair once, so a bad file is a clear usage error
    rather than a TLS check that cannot start. Nothing of their contents is shown."""
    if not (cafile or cert):
        return
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        try:
            ctx.load_verify_locations(cafile=cafile)
        except (ssl.SSLError, OSError, ValueError):
            raise UsageError(i18n._("--cafile {value}: not a PEM certificate bundle").format(
                value=repr(cafile[:80]))) from None
    if cert:
        try:
            ctx.load_cert_chain(cert, key)
        except (ssl.SSLError, OSError, ValueError):
            raise UsageError(i18n._("--cert {value}: not a PEM certificate with its key (or "
                                    "--key does not match it)").format(
                value=repr(cert[:80]))) from None


def _usable_urls(proxy: Optional[str], portal_url: Optional[str]) -> None:
    """--proxy and --portal-url must be URLs netcheck can use (said without any password)."""
    from netcheck.probes.http import UrlError, parse_proxy, split_url

    if proxy is not None:
        try:
            parse_proxy(proxy, "--proxy")  # the message names --proxy, never the password
        except UrlError as exc:
            raise UsageError(str(exc)) from None
    if portal_url is not None:
        try:
            scheme = split_url(portal_url).scheme
        except UrlError as exc:
            raise UsageError(f"--portal-url: {exc}") from None
        if scheme != "http":
            raise UsageError("--portal-url must be an http:// URL: a portal intercepts plain "
                             "HTTP (https would only show a certificate error)")


def _valid_ifname(name: str) -> bool:
    return 0 < len(name) < 16 and all(c.isalnum() or c in "-_.@:" for c in name)


def _document(report, fmt: str) -> str:  # type: ignore[no-untyped-def]
    """One report in a machine format (json, ndjson, nagios, junit, prometheus), whole.

    junit and prometheus are the batch's renderers with one target: a testsuite with one
    testcase named by the target, and the probe metrics labelled ``target``.
    """
    if fmt in ("json", "ndjson"):
        from netcheck.render.json import render_json

        return render_json(report, indent=2 if fmt == "json" else None) + "\n"
    if fmt == "nagios":
        from netcheck.render.nagios import render_nagios

        return render_nagios(report) + "\n"
    from netcheck.render import canonical_target

    target = canonical_target(report.target) or str(report.target.get("host") or "")
    if fmt == "junit":
        from netcheck.render.junit import render_junit

        return render_junit([("netcheck", target or report.mode, report)])
    if fmt == "prometheus":
        from netcheck.render.prometheus import exposition, families, probe_values

        return exposition(families([({"target": target}, probe_values(report))], ("target",)))
    raise ValueError(f"not a machine format: {fmt}")


def _render(report, args: argparse.Namespace, out: IO[str]) -> None:  # type: ignore[no-untyped-def]
    """Write the report in the format asked for; a SIGTERM meanwhile waits until it is whole."""
    with _SIGTERM.writing():
        if args.format != "text":
            out.write(_document(report, args.format))
        elif args.quiet:
            from netcheck.render.quiet import quiet_line

            out.write(quiet_line(report) + "\n")
        else:
            from rich.console import Console

            from netcheck.render import columns, wants_color
            from netcheck.render.text import render_text

            color = wants_color(out, args.no_color)
            console = Console(file=out, no_color=not color, highlight=False,
                              width=columns(out), color_system="auto" if color else None)
            render_text(report, verbose=args.verbose, color=color, console=console)


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
