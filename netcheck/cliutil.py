"""What every command's command line shares: the common options, their checks, the one
:class:`~netcheck.runner.Options` builder, rendering a report and the error document.

``netcheck.cli`` and the commands in their own modules (server, fix, path, watch) use these,
and so do ``netcheck batch`` and the exporter (from a profile entry's or a module's options);
none of them builds ``Options`` by hand or keeps its own copy of a default. Light to import
(no runner, no rich): the parsers are built from it at every start.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import threading
from typing import IO, Any, Iterator, Mapping, Optional, Union

from netcheck import defaults, i18n
from netcheck.redact import mask_secrets, shown

EXIT_UNKNOWN = 3
FORMATS = ("text", "json", "ndjson", "nagios", "junit", "prometheus")


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


# The process's one guard: the CLI installs it, every renderer writes inside it.
SIGTERM = SigtermGuard()


# -- option types and the options every command takes -------------------------------------------

def positive(text: str) -> float:
    """argparse type: seconds, more than 0 and at most an hour."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(i18n._("{value} is not a number").format(
            value=repr(text))) from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(i18n._(
            "{value} must be between 0 and 3600 seconds").format(value=repr(text)))
    return value


def port(text: str) -> int:
    """argparse type: a port number, 1 to 65535."""
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(i18n._(
            "port {value} is not a number from 1 to 65535").format(value=repr(text[:20])))
    return int(text)


def add_common_options(p: argparse.ArgumentParser) -> None:
    """The options every command takes (format, timing, family, interface, TLS files...)."""
    p.add_argument("--format", choices=FORMATS, default="text", help="output format")
    p.add_argument("--json", dest="format", action="store_const", const="json",
                   help="same as --format json")
    p.add_argument("--timeout", type=positive, default=defaults.TIMEOUT,
                   help="per-probe timeout (s)")
    p.add_argument("--deadline", type=positive, default=defaults.DEADLINE,
                   help="bound on the whole run (s)")
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


def valued_options(parser: argparse.ArgumentParser) -> set[str]:
    """The option strings of ``parser`` (and of its subcommands) that take a value.

    An option whose value is optional (``--watch [SECONDS]``) does not count: the word after
    it may be a command or the target.
    """
    valued: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                valued |= valued_options(sub)
        elif action.option_strings and action.nargs not in (0, "?", "*"):
            valued.update(action.option_strings)
    return valued


def known_options(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string of ``parser`` and of its subcommands."""
    known: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                known |= known_options(sub)
        known.update(action.option_strings)
    return known


# -- checks of the common options ---------------------------------------------------------------

def valid_ifname(name: str) -> bool:
    """Could ``name`` be a Linux interface name (what ``--interface`` accepts)?"""
    return 0 < len(name) < 16 and all(c.isalnum() or c in "-_.@:" for c in name)


def readable_file(flag: str, path: Optional[str]) -> None:
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


def usable_tls_files(cafile: Optional[str], cert: Optional[str], key: Optional[str]) -> None:
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


def early_probes(target: Any, args: argparse.Namespace) -> Any:
    """Send now the probes that only a wait ends (network.address_conflict's ARP probes, see
    netcheck.probes.conflict), before asyncio and the checks are imported: their wait
    overlaps the start-up. The Early handle (None: not allowed) goes into Options.early."""
    from netcheck.probes import conflict

    # ctx.timeout at the run's start: the per-probe timeout, within the deadline's margin.
    timeout = max(0.05, min(args.timeout, args.deadline - 0.25))
    return conflict.start(target.host, target.ip is not None, args.family, args.interface,
                          timeout)


def usable_urls(proxy: Optional[str], portal_url: Optional[str]) -> None:
    """--proxy and --portal-url must be URLs netcheck can use (said without any password)."""
    if proxy is None and portal_url is None:
        return  # nothing to parse: the HTTP client is not imported for a tcp:// run
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


# -- the run -------------------------------------------------------------------------------------

# The fields of Options the command line sets, each from the parsed option of the same name
# (a command without that option leaves the field at its default).
FROM_ARGS = ("timeout", "deadline", "family", "interface", "lang", "verbose", "sysroot",
             "cafile", "cert", "key", "scan", "started", "proxy", "no_proxy", "portal_url")


def build_options(args: Union[argparse.Namespace, Mapping[str, Any]], cls: Any = None,
                  **overrides: Any) -> Any:
    """The run's :class:`~netcheck.runner.Options` (or ``cls``, a subclass) from parsed args.

    ``args``: the parsed command line, or a mapping of the same names (a batch profile
    entry's options, an exporter module's: their other keys, such as ``port`` or ``only``,
    are not Options fields and are left out). The fields in :data:`FROM_ARGS` come from
    ``args`` when it has them; ``overrides`` set the others (a subclass's own fields,
    ``expect``) or replace a given value. A field neither gives keeps the dataclass's
    default: the defaults live in ``Options`` (``netcheck.defaults``).
    """
    if cls is None:
        from netcheck.runner import Options

        cls = Options
    given = args if isinstance(args, Mapping) else vars(args)
    values = {name: given[name] for name in FROM_ARGS
              if name not in overrides and name in given}
    return cls(**values, **overrides)


async def bounded(coro: Any, deadline: float) -> Any:
    """The runner keeps its own deadline; this is the backstop if the snapshot hangs."""
    import asyncio

    try:
        return await asyncio.wait_for(coro, deadline)
    except asyncio.TimeoutError:
        raise UsageError(i18n._("no result within the deadline ({seconds} s)").format(
            seconds=f"{deadline:g}")) from None


def document(report: Any, fmt: str) -> str:
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


def render(report: Any, args: argparse.Namespace, out: IO[str]) -> None:
    """Write the report in the format asked for; a SIGTERM meanwhile waits until it is whole."""
    with SIGTERM.writing():
        if args.format != "text":
            out.write(document(report, args.format))
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


def write_error(message: str, fmt: str, input_text: str, out: IO[str], err: IO[str],
                mode: str = "diagnose") -> int:
    """Say why the run cannot happen: one line on stderr, or for a machine format one
    document of that format on stdout (verdict unknown), as scripts and monitoring read it.

    ``input_text`` is the target (or the command) as typed; secrets in it are masked.
    Returns the exit status, 3.
    """
    message = " ".join(message.split())[:300]
    with SIGTERM.writing():
        if fmt not in FORMATS or fmt == "text":
            err.write(f"netcheck: error: {shown(message)}\n")
        else:
            from netcheck.render.json import error_report

            out.write(document(error_report(mask_secrets(input_text), message, mode), fmt))
    return EXIT_UNKNOWN
