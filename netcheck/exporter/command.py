"""``netcheck serve``: start the exporter and serve until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import ipaddress
import os
from typing import IO, TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from netcheck.exporter.config import Config
    from netcheck.exporter.server import Exporter, Server

DEFAULT_LISTEN = "127.0.0.1:9115"
FD_WANTED = 65536  # the soft descriptor limit is raised towards this (never past the hard one)


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """The options of ``netcheck serve``."""
    parser.description = ("Prometheus exporter: GET /probe?target=T[&module=M][&format=json] "
                          "probes one target — first the exchange alone, as blackbox_exporter "
                          "does, and the whole diagnosis when it fails or warns (a module's "
                          "ladder = \"always\", or format=json, always diagnose); /metrics "
                          "shows the exporter's own metrics. Probes only what --allow or the "
                          "config names.")
    parser.add_argument("--listen", metavar="ADDR:PORT", default=DEFAULT_LISTEN,
                        help=f"address and port to listen on (default {DEFAULT_LISTEN})")
    parser.add_argument("--config", metavar="FILE", help="TOML config: modules, targets, allow")
    parser.add_argument("--allow", metavar="CIDR|HOST", action="append", default=[],
                        help="a network, address, host name or *.domain that may be probed "
                             "(repeatable; added to the config's allow-list)")
    parser.add_argument("--concurrency", metavar="N",
                        help="diagnosis ladders at once (default 8); exchanges are bounded "
                             "by the descriptor limit instead")
    parser.add_argument("--deadline", metavar="S",
                        help="bound on one probe in seconds (default 10; never past the "
                             "scrape timeout Prometheus sends)")
    parser.add_argument("--max-connections", metavar="N",
                        help="HTTP connections open at once (default: what the descriptor "
                             "limit leaves after the probes' share, at most 512)")
    parser.add_argument("--expose-local-details", action="store_true",
                        help="let format=json show this host's socket table and process "
                             "names (left out by default)")
    parser.add_argument("--lang", choices=("en", "es", "ca"), help="language of texts")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    parser.add_argument("--sysroot", default=os.environ.get("NETCHECK_SYSROOT", "/"),
                        help=argparse.SUPPRESS)


def parse_listen(text: str) -> tuple[str, int]:
    """``127.0.0.1:9115``, ``[::1]:9115`` or ``localhost:9115`` -> (address, port)."""
    from netcheck.cli import UsageError

    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise UsageError(f"--listen {text[:60]!r}: write [IPv6]:PORT")
    else:
        host, sep, port = text.rpartition(":")
        if not sep or not host:
            raise UsageError(f"--listen {text[:60]!r}: write ADDRESS:PORT, e.g. {DEFAULT_LISTEN}")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        raise UsageError(f"--listen {text[:60]!r}: {host[:40]!r} is not an IP address") from None
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--listen {text[:60]!r}: the port must be a number from 0 to 65535")
    return host, int(port)


def run(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """Serve until stopped; exit 0 on SIGTERM/SIGINT, 3 on bad input."""
    import signal
    import threading

    from netcheck.cli import UsageError
    from netcheck.exporter.server import Server

    host, port = parse_listen(args.listen)
    config = _config(args)
    max_connections = _max_connections(args)
    from netcheck.batch.command import raise_fd_limit

    # The exchanges are bounded by descriptors (exporter.server.exchange_limit): have them.
    raise_fd_limit(FD_WANTED)
    exporter = _exporter(args, config, err)
    try:
        server = Server((host, port), exporter, verbose=args.verbose,
                        max_connections=max_connections)
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.listen}: {exc.strerror or exc}") from None

    def stop(signum: int, frame: object) -> None:
        # shutdown() waits for serve_forever to return: never call it from its own thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    _say_listening(config, exporter, server, err)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    err.write("netcheck serve: stopped\n")
    return 0


def _config(args: argparse.Namespace) -> Config:
    """The config file with the command line's --allow, --concurrency and --deadline."""
    from netcheck.cli import UsageError
    from netcheck.exporter import config as configs

    try:
        config = configs.load(args.config)
        for entry in args.allow:
            config.allow.add(entry)
    except (configs.ConfigError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    if args.concurrency is not None:
        if not str(args.concurrency).isdigit() or not 1 <= int(args.concurrency) <= 1024:
            raise UsageError("--concurrency must be a number from 1 to 1024")
        config.concurrency = int(args.concurrency)
    if args.deadline is not None:
        try:
            deadline = float(args.deadline)
        except ValueError:
            raise UsageError(f"--deadline {args.deadline[:20]!r} is not a number") from None
        if not 0 < deadline <= 3600:
            raise UsageError("--deadline must be between 0 and 3600 seconds")
        config.deadline = deadline
    return config


def _max_connections(args: argparse.Namespace) -> Optional[int]:
    from netcheck.cli import UsageError

    if args.max_connections is None:
        return None
    text = str(args.max_connections)
    if not text.isdigit() or not 1 <= int(text) <= 65536:
        raise UsageError("--max-connections must be a number from 1 to 65536")
    return int(text)


def _exporter(args: argparse.Namespace, config: Config, err: IO[str]) -> Exporter:
    """The Exporter over the diagnose checks (a broken plugin is a warning, not the end)."""
    from netcheck import registry
    from netcheck.cli import UsageError
    from netcheck.exporter import config as configs
    from netcheck.exporter.server import Exporter

    reg = registry.load()
    for warning in reg.warnings:
        registry.warn(warning)
    try:
        return Exporter(config, reg.for_mode("diagnose"), lang=args.lang or "en",
                        sysroot=args.sysroot, log=err,
                        expose_local_details=args.expose_local_details)
    except configs.ConfigError as exc:
        raise UsageError(str(exc)) from None


def _say_listening(config: Config, exporter: Exporter, server: Server, err: IO[str]) -> None:
    if not config.allow and not config.targets:
        err.write("netcheck serve: warning: no --allow and no [targets] in a config: every "
                  "/probe will be refused (400)\n")
    err.write(f"netcheck serve: listening on {server.url} (modules: "
              f"{', '.join(sorted(config.modules))}; allow: {config.allow.describe()}; "
              f"{len(config.targets)} named targets; {exporter.exchanges} exchanges and "
              f"{config.concurrency} diagnoses at once; deadline {config.deadline:g} s; at "
              f"most {server.max_connections} connections)\n")
    err.flush()
