"""``netcheck server --port N [...]``: the CLI glue of server mode.

Values are checked here rather than by argparse (as ``netcheck batch`` does), so that bad
input still gives one clear line — or, with ``--format json``, one netcheck/1 document with
``mode: "server"`` — and exit status 3.

The run is the ordinary runner's: the server checks (``checks/server/``, mode ``server``)
plus this host's own layer 1-3 checks of client mode declared with
``modes=registry.RECIPROCAL``, the "reciprocal lower layers". Those
judge the interface and gateway of the way packets take to a target; here the target is the
client (``--client``), so they judge the way back to it — or, without ``--client``, the
default route's. The report's ``target`` describes the service instead:
``{"input": "server --port 443", "scheme": null, "host": null, "port": 443,
"addresses": [the addresses the port is bound to]}``.
"""

from __future__ import annotations

import argparse
from typing import IO, Any, Optional

from netcheck.i18n import _
from netcheck.server.inputs import DEFAULT_SINCE, BadInput

FORMATS = ("text", "json", "ndjson", "nagios")
SERVER_OPTIONS = ("port", "proto", "service", "process", "log", "client", "request_id",
                  "since")


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """The options of ``netcheck server`` (plus those every command takes)."""
    from netcheck.cliutil import add_common_options

    parser.description = (
        "The server side: is the service on this host reachable, and did the client's "
        "request arrive? The port listening and answering a local handshake, this host's "
        "input firewall, the service's unit and process, the client's request in its log, "
        "and this host's own link, address and route back to the client.")
    parser.add_argument("--port", metavar="N", help="the service's port (required)")
    parser.add_argument("--proto", metavar="tcp|udp", default="tcp", help="default tcp")
    parser.add_argument("--service", metavar="UNIT",
                        help="its systemd unit (default: the unit of the listening process)")
    parser.add_argument("--process", metavar="NAME", help="a process that must be running")
    parser.add_argument("--log", metavar="FILE|journal",
                        help="its access log (default: the logs it holds open, or the usual "
                             "place), or 'journal' for the unit's journal")
    parser.add_argument("--client", metavar="IP",
                        help="the client's address: its requests, and the way back to it")
    parser.add_argument("--request-id", metavar="ID", dest="request_id",
                        help="the request id netcheck diagnose printed on the client")
    parser.add_argument("--since", metavar="DURATION", default=DEFAULT_SINCE,
                        help=f"how far back to read the log (default {DEFAULT_SINCE})")
    parser.add_argument("--fix", action="store_true",
                        help="repair what this host can (see netcheck fix --help)")
    add_common_options(parser)
    from netcheck.fix.options import add_repair_options

    add_repair_options(parser)


def input_text(args: argparse.Namespace) -> str:
    """The command as typed, for the report's ``target.input`` (values shortened)."""
    words = ["server"]
    for name in SERVER_OPTIONS:
        value = getattr(args, name, None)
        if value is None or (name == "proto" and value == "tcp") or (
                name == "since" and value == DEFAULT_SINCE):
            continue
        flag = "--" + name.replace("_", "-")
        text = str(value)
        words += [flag, text if len(text) <= 60 else text[:57] + "..."]
    return " ".join(words)


def settings(args: argparse.Namespace) -> Any:
    """Validate every value into :class:`~netcheck.server.options.ServerOptions`
    (:class:`~netcheck.server.inputs.BadInput` for the first wrong one)."""
    from netcheck.cliutil import UsageError, build_options, readable_file, valid_ifname
    from netcheck.server import inputs as o

    if args.port is None:
        raise BadInput(_("--port is required: netcheck server --port N"))
    # Checked before the settings are built: bad input never imports the runner.
    port, proto = o.parse_port(str(args.port)), o.parse_proto(str(args.proto))
    checked = {
        "service": o.parse_service(args.service) if args.service is not None else None,
        "process": o.parse_process(args.process) if args.process is not None else None,
        "client": o.parse_client(args.client) if args.client is not None else None,
        "search_id": (o.parse_request_id(args.request_id) if args.request_id is not None
                      else None),
        "since_s": o.parse_since(str(args.since)),
    }
    from netcheck.server.options import ServerOptions

    # cafile, cert and key are taken by every command but unused here; no nmap scan.
    opts = build_options(args, ServerOptions, scan=False, cafile=None, cert=None, key=None,
                         port=port, proto=proto, since_text=str(args.since), **checked)
    if args.interface is not None and not valid_ifname(args.interface):
        raise BadInput(_("--interface {value} is not a valid interface name").format(
            value=repr(args.interface[:20])))
    if opts.client is not None:
        version = 4 if ":" not in opts.client else 6
        if args.family is not None and args.family != version:
            raise BadInput(_("--client {client} is {family}, but {option} was given").format(
                client=opts.client, family=f"IPv{version}", option=f"-{args.family}"))
    if args.log is not None:
        opts.log = o.parse_log(args.log)
    for flag in ("cafile", "cert", "key"):  # taken by every command, unused here
        try:
            readable_file(flag, getattr(args, flag))
        except UsageError as exc:  # the same one line
            raise BadInput(str(exc)) from None
    return opts


def client_target(opts: Any) -> Optional[Any]:
    """The client as a target, for the lower layers' route lookup (None without --client)."""
    from netcheck.target import Target

    if opts.client is None:
        return None
    return Target(input=opts.client, scheme="tcp", host=opts.client, port=opts.port,
                  display_host=opts.client)


def select_checks(reg: Any) -> list[Any]:
    """Server checks and the reciprocal lower layers (``modes`` holds "server": see
    ``registry.RECIPROCAL``), in ladder order."""
    return sorted(reg.for_mode("server"), key=lambda c: (int(c.layer), c.order))


def _fail(args: argparse.Namespace, message: str, out: IO[str], err: IO[str]) -> int:
    from netcheck.cliutil import write_error

    fmt = getattr(args, "format", "text")
    return write_error(message, fmt if fmt in FORMATS else "text", input_text(args), out, err,
                       mode="server")


def run(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """Run ``netcheck server``; returns the exit status (0 ok ... 3 unknown)."""
    if args.format not in FORMATS:
        return _fail(args, _("--format {format} is not available for netcheck server").format(
            format=args.format), out, err)
    try:
        opts = settings(args)
    except BadInput as exc:
        return _fail(args, str(exc), out, err)
    if getattr(args, "fix", False) or getattr(args, "rollback", False):
        # the repair: imported only when asked for
        from netcheck.fix.command import run_server

        return run_server(args, opts, out, err)
    from netcheck.cliutil import render

    report = server_report(args, opts)
    render(report, args, out)
    return int(report.verdict.exit_code)


def server_report(args: argparse.Namespace, opts: Any) -> Any:
    """One server-mode diagnosis (the Report), within the deadline counted from
    ``opts.started``."""
    import asyncio
    import time

    from netcheck import registry
    from netcheck.cliutil import bounded
    from netcheck.runner import diagnose
    reg = registry.load()
    for warning in reg.warnings:
        registry.warn(warning)
    report_target: dict[str, Any] = {"input": input_text(args), "scheme": None, "host": None,
                                     "port": opts.port, "addresses": []}
    budget = opts.deadline - (time.monotonic() - opts.started)
    report = asyncio.run(bounded(
        diagnose(client_target(opts), opts, select_checks(reg), mode="server",
                 report_target=report_target),
        max(0.1, budget - 0.05)))
    report.target["addresses"] = bound_addresses(report)
    if report.host.get("egress_interface") is None:
        # Without --client the runner has no target path; the lower layers judged the
        # default route's interface: name it.
        link = next((o for o in report.checks if o.id == "link.exists"), None)
        if link is not None and isinstance(link.result.evidence.get("interface"), str):
            report.host["egress_interface"] = link.result.evidence["interface"]
    return report


def bound_addresses(report: Any) -> list[str]:
    """The addresses the port is bound to, from the listening check's evidence."""
    for outcome in report.checks:
        if outcome.id == "transport.listen":
            found = []
            for s in outcome.result.evidence.get("listeners", []):
                address = s.get("address")
                if isinstance(address, str) and address not in found:
                    found.append(address)
            return found
    return []
