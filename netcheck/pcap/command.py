"""``netcheck pcap FILE`` and ``netcheck trace TARGET``: arguments, run, output.

The CLI imports this module only when one of the two commands is chosen and calls
:func:`add_arguments` then :func:`run`. Errors are one line: with ``--format json`` a
``{"schema": "netcheck-pcap/1", "error": "..."}`` document on stdout, otherwise
``netcheck: error: ...`` on stderr through :class:`netcheck.cli.UsageError`; exit code 3.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import IO, Any, Optional

from netcheck.pcap import SCHEMA

EXIT_OK = 0
EXIT_FAILED = 2
EXIT_UNKNOWN = 3


def _session_number(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 10**9:
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a session number (1, 2, ...)")
    return int(text)


MAX_LISTED = 100_000  # --max-sessions: each listed session is kept to the end (~1 KB)


def _count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_LISTED:
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a number from 1 to {MAX_LISTED}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a number") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text[:20]!r} must be between 0 and 3600 seconds")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"port {text[:20]!r} is not a number from 1 to 65535")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """The options of ``netcheck pcap`` or ``netcheck trace`` (``command``)."""
    if command == "pcap":
        parser.add_argument("file", metavar="FILE",
                            help="capture file (pcap or pcapng, as tcpdump/tshark/Wireshark "
                                 "write them; .gz too; - reads standard input)")
        parser.add_argument("--max-sessions", type=_count, default=None, metavar="N",
                            help="list at most N sessions one by one (default 10000, at most "
                                 f"{MAX_LISTED}); the rest are counted together")
    else:
        parser.add_argument("target", metavar="TARGET",
                            help="http://host/path, https://host, host:port, tcp://host:port")
        parser.add_argument("--port", type=_port, help="override the port")
        fam = parser.add_mutually_exclusive_group()
        fam.add_argument("-4", dest="family", action="store_const", const=4, help="IPv4 only")
        fam.add_argument("-6", dest="family", action="store_const", const=6, help="IPv6 only")
        parser.add_argument("--timeout", type=_seconds, default=3.0,
                            help="connect and read timeout (s)")
        parser.add_argument("--deadline", type=_seconds, default=15.0,
                            help="bound on the whole trace (s)")
        parser.add_argument("--capture", choices=("auto", "af_packet", "tcpdump"),
                            default="auto", help="how to capture (default: AF_PACKET with "
                            "CAP_NET_RAW, else tcpdump)")
        parser.add_argument("-w", "--write", metavar="FILE",
                            help="also save the captured packets as a pcap file")
        parser.add_argument("--cafile", metavar="PATH", help="extra CA bundle for https")
        parser.add_argument("--insecure", action="store_true",
                            help="https: do not verify the certificate")
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="output format")
    parser.add_argument("--json", dest="format", action="store_const", const="json",
                        help="same as --format json")
    parser.add_argument("--filter", metavar="EXPR",
                        help='only these packets: "host A", "port N", "net A/len", src/dst, '
                             "tcp/udp/icmp, and/or/not")
    parser.add_argument("--session", type=_session_number, metavar="N",
                        help="the packet-by-packet detail of session N")
    parser.add_argument("--lang", choices=("en", "es", "ca"), help="language of the notes")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="every row (no cut at 200 sessions)")
    parser.add_argument("--no-color", action="store_true", help="no colours")


class PcapError(Exception):
    """Bad input for pcap/trace: one line, exit 3."""


def error_document(message: str) -> str:
    """The one netcheck-pcap/1 document of a run that could not explain anything."""
    from netcheck.redact import printable

    # A file name or a --filter word can hold anything: escaped, on one line.
    text = printable(" ".join(str(message).split())[:300])
    return json.dumps({"schema": SCHEMA, "error": text}, ensure_ascii=False) + "\n"


def run(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """Run the chosen command; return the exit code.

    With ``--format json`` every failure is one netcheck-pcap/1 ``{"schema", "error"}``
    document (bad input, an interrupted run, a bug), never the diagnosis' netcheck/1 one.
    """
    lang = args.lang or "en"
    try:
        if args.command == "pcap":
            doc, code = explain_file(args, lang)
        else:
            from netcheck.pcap.trace import run_trace

            doc, code = run_trace(args, lang)
        _output(doc, args, out, lang)
    except PcapError as exc:
        if args.format == "json":
            out.write(error_document(str(exc)))
            return EXIT_UNKNOWN
        from netcheck.cli import UsageError
        from netcheck.redact import printable

        raise UsageError(printable(" ".join(str(exc).split())[:300])) from None
    except BrokenPipeError:
        raise  # the reader left: nothing more to say to it
    except (KeyboardInterrupt, Exception) as exc:
        if args.format != "json":
            raise  # the CLI says it in one line (text), as for every command
        why = "interrupted" if isinstance(exc, KeyboardInterrupt) else \
            f"internal error: {type(exc).__name__}: {exc}"
        out.write(error_document(why))
        return EXIT_UNKNOWN
    return code


def _output(doc: dict[str, Any], args: argparse.Namespace, out: IO[str], lang: str) -> None:
    if args.format == "json":
        out.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        return
    from netcheck.pcap.render import render_text

    color = (not args.no_color and "NO_COLOR" not in os.environ and hasattr(out, "isatty")
             and out.isatty())
    render_text(doc, out, lang=lang, verbose=args.verbose, color=color)


def make_filter(text: Optional[str]):  # type: ignore[no-untyped-def]
    """The compiled --filter, or None; PcapError if it does not parse."""
    if not text:
        return None
    from netcheck.pcap.filters import Filter

    try:
        return Filter(text)
    except ValueError as exc:
        raise PcapError(f"--filter {text[:60]!r}: {exc}") from None


def explain_file(args: argparse.Namespace, lang: str) -> tuple[dict[str, Any], int]:
    """Read and explain one capture file."""
    from netcheck.pcap.reader import Capture, CaptureError
    from netcheck.pcap.sessions import MAX_SESSIONS, Analyzer, build_document

    packet_filter = make_filter(args.filter)
    try:
        if args.file == "-":  # tcpdump -w - | netcheck pcap -
            import sys

            capture = Capture("stdin", fileobj=sys.stdin.buffer)
        else:
            capture = Capture(args.file)
    except CaptureError as exc:
        raise PcapError(str(exc)) from None
    # The session asked for is kept even beyond the cap: raising the cap to its number would
    # keep every session before it (--session 999999999 on a SYN flood: unbounded memory).
    analyzer = Analyzer(want_session=args.session,
                        max_sessions=args.max_sessions or MAX_SESSIONS,
                        packet_filter=packet_filter)
    with capture:
        analyzer.feed(capture.packets())
    warnings = file_warnings(capture)
    if args.session and analyzer.session(args.session) is None:
        total = analyzer.total_sessions()
        has = f"it has {total}, numbered 1 to {total}" if total else "it has no TCP session"
        raise PcapError(f"there is no TCP session {args.session} in the capture: {has}")
    name = "stdin" if args.file == "-" else os.path.basename(args.file)
    doc = build_document(analyzer, name, capture.truncated, warnings, lang, args.session)
    return doc, EXIT_OK


def file_warnings(capture: Any) -> list[str]:
    """What the reader noticed about the file itself."""
    warnings = []
    if capture.problem:
        warnings.append(capture.problem)
    if capture.cut_packets:
        warnings.append(f"{capture.cut_packets} packet(s) were cut by the snap length (fewer "
                        "bytes captured than sent): their payloads are partial")
    links = sorted({link for link, _ in capture.interfaces})
    from netcheck.pcap.reader import LINKTYPE_NAMES

    unknown = [str(link) for link in links if link not in LINKTYPE_NAMES]
    if unknown:
        warnings.append(f"link type(s) {', '.join(unknown)} cannot be decoded: their packets "
                        "are counted as undecoded")
    return warnings
