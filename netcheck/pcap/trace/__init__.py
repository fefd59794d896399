"""``netcheck trace TARGET``: make one connection while capturing it, then explain it.

The connection is the one a user (or the diagnosis) would make: for ``http://`` a GET, for
``https://`` a TLS handshake with SNI and a GET (stdlib ``ssl``), for SMTP/POP3/IMAP/SSH the
greeting and a polite goodbye, for anything else a connect and a short read of whatever
banner the server sends. Its packets are captured

1. with an ``AF_PACKET`` socket (needs CAP_NET_RAW) bound to the egress interface, with a
   classic BPF filter on the connection's local port attached in the kernel, kernel
   timestamps (``SO_TIMESTAMPNS``) so the handshake RTT is the wire's, not Python's; else
2. through ``tcpdump`` (argv, no shell, ``-w -`` into a pipe, bounded in time and size) if it
   is installed and allowed to capture; else
3. not at all: exit 3 with "needs root (CAP_NET_RAW) or tcpdump".

The local port is bound before connecting, so the capture filter exists before the SYN
leaves. The packets then go through the same analyzer and explainer as ``netcheck pcap``;
``-w FILE`` also saves them as a pcap (Linux cooked v2) for Wireshark.

The package, by concern: ``capture`` (the AF_PACKET socket and its BPF filter, tcpdump, the
egress interface), ``conversation`` (the connection itself). Here: choosing the capture
(:func:`choose_capture`, which looks up AfPacketCapture here, so a test that replaces it on
this package replaces it for the trace), the whole trace (:func:`run_trace`), and every name
importable from ``netcheck.pcap.trace`` as before the split.
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import time
from typing import Any, Optional

from netcheck.pcap.command import EXIT_FAILED, EXIT_OK, PcapError, make_filter
from netcheck.pcap.trace.capture import (
    AND_K,
    ARPHRD_LOOPBACK,
    ETH_P_ALL,
    JEQ_K,
    LDB_ABS,
    LDH_ABS,
    LDH_IND,
    LDX_MSH,
    LINKTYPE_LINUX_SLL2,
    MAX_BYTES,
    MAX_PACKETS,
    PACKET_OUTGOING,
    RET_K,
    SO_ATTACH_FILTER,
    SO_TIMESTAMPNS,
    AfPacketCapture,
    Packet,
    TcpdumpCapture,
    _interface_of_source,
    bpf_program,
    egress_interface,
    packets_from_pcap,
)
from netcheck.pcap.trace.conversation import READ_LIMIT, USER_AGENT, Conversation, resolve

# Every public name the module had before it became a package.
__all__ = [
    "AND_K", "ARPHRD_LOOPBACK", "AfPacketCapture", "Conversation", "ETH_P_ALL", "JEQ_K", "LDB_ABS",
    "LDH_ABS", "LDH_IND", "LDX_MSH", "LINGER", "LINKTYPE_LINUX_SLL2", "MAX_BYTES", "MAX_PACKETS",
    "PACKET_OUTGOING", "Packet", "READ_LIMIT", "RET_K", "SO_ATTACH_FILTER", "SO_TIMESTAMPNS",
    "TcpdumpCapture", "USER_AGENT", "bpf_program", "choose_capture", "egress_interface",
    "packets_from_pcap", "resolve", "run_trace",
    # private, reached from outside (a test reads _interface_of_source)
    "_interface_of_source",
]


LINGER = 0.25  # after the connection ends: time for the last ACK to be captured


def choose_capture(method: str, family: int, lport: int,
                   iface: Optional[tuple[int, str]]) -> Any:
    """An AF_PACKET capture if allowed, else tcpdump; PcapError saying why neither works."""
    reasons = []
    if method in ("auto", "af_packet"):
        try:
            return AfPacketCapture(family, lport, iface)
        except PermissionError:
            reasons.append("no CAP_NET_RAW for an AF_PACKET socket")
        except OSError as exc:
            reasons.append(f"AF_PACKET: {exc.strerror or exc}")
    if method in ("auto", "tcpdump"):
        tcpdump = shutil.which("tcpdump") or shutil.which("tcpdump", path="/usr/sbin:/sbin")
        if tcpdump:
            return TcpdumpCapture(family, lport, iface, tcpdump)
        reasons.append("tcpdump is not installed")
    raise PcapError("netcheck trace needs root (CAP_NET_RAW) or tcpdump to capture: "
                    + "; ".join(reasons))


def run_trace(args: argparse.Namespace, lang: str) -> tuple[dict[str, Any], int]:
    """The whole trace; returns the netcheck-pcap/1 document and the exit code."""
    from netcheck.target import TargetError, parse_target

    start = time.monotonic()
    deadline = start + args.deadline
    try:
        target = parse_target(args.target, args.port)
    except TargetError as exc:
        raise PcapError(str(exc)) from None
    packet_filter = make_filter(args.filter)
    _check_files(args)
    family, address = resolve(target.host, target.port, args.family)
    iface = egress_interface(address)
    talk = Conversation(target, family, address, args.timeout, deadline, args.cafile,
                        args.insecure)
    capture = _start_capture(args.capture, family, talk, iface)
    try:
        talk.run()
        time.sleep(max(0.0, min(LINGER, deadline - time.monotonic())))
    finally:
        packets = capture.stop()
    mine = [p for p in packets if _ours(p, talk.lport, target.port)]
    doc = _explain(mine, packet_filter, args.write, lang)
    doc["trace"] = {
        "target": target.input, "scheme": target.scheme, "address": address,
        "port": target.port, "local_port": talk.lport, "capture": capture.method,
        "interface": iface[1] if iface else None, **talk.result,
    }
    return doc, EXIT_OK if talk.result["outcome"] == "ok" else EXIT_FAILED


def _check_files(args: argparse.Namespace) -> None:
    """Refuse the files named on the command line before any packet: PcapError says why."""
    if args.write:
        # Refused before any packet (a symlink, a directory, another user's file): the
        # capture runs as root, and -w must not become a way to clobber a file.
        from netcheck.safefile import check_target

        try:
            check_target(args.write)
        except OSError as exc:
            raise PcapError(f"-w {args.write[:60]!r}: {exc.strerror or exc}") from None
    for path in (args.cafile,):
        if path and not os.path.isfile(path):
            raise PcapError(f"--cafile {path[:60]!r}: no such file")


def _start_capture(method: str, family: int, talk: Conversation,
                   iface: Optional[tuple[int, str]]) -> Any:
    """The capture, started on the conversation's local port before it connects (its
    socket is closed if no capture can start)."""
    try:
        capture = choose_capture(method, family, talk.lport, iface)
        try:
            capture.start()
        except (PermissionError, OSError) as exc:
            raise PcapError("netcheck trace needs root (CAP_NET_RAW) or a tcpdump allowed to "
                            f"capture: tcpdump says {exc}") from None
    except BaseException:
        talk.sock.close()
        raise
    return capture


def _explain(mine: list[Packet], packet_filter: Any, write: Optional[str],
             lang: str) -> dict[str, Any]:
    """The connection's packets through the analyzer, as ``netcheck pcap`` reads a file
    (Linux cooked v2 frames), saved too with ``-w``: the netcheck-pcap/1 document."""
    from netcheck.pcap.reader import LINKTYPE_LINUX_SLL2 as SLL2
    from netcheck.pcap.sessions import Analyzer, build_document

    analyzer = Analyzer(want_session=1, packet_filter=packet_filter, record_first=False)
    base = mine[0].ts if mine else 0.0
    frames = [p.sll2() for p in mine]
    analyzer.feed((p.ts - base, SLL2, frame, 0, len(frame), len(frame), i + 1)
                  for i, (p, frame) in enumerate(zip(mine, frames)))
    detail = 1 if analyzer.session(1) is not None else None
    warnings = []
    if not mine:
        warnings.append("no packet of the connection was captured")
    if write:
        _save(write, mine, frames)
    return build_document(analyzer, os.path.basename(write) if write else None, False,
                          warnings, lang, detail)


def _ours(p: Packet, lport: int, rport: int) -> bool:
    """Keep the connection's TCP segments and ICMP messages that quote it."""
    data = p.data
    if not data:
        return False
    version = data[0] >> 4
    if version == 4 and len(data) >= 20:
        ihl = (data[0] & 15) * 4
        proto, l4 = data[9], ihl
    elif version == 6 and len(data) >= 40:
        proto, l4 = data[6], 40
    else:
        return False
    if proto == 6 and len(data) >= l4 + 4:
        sp, dp = struct.unpack_from(">HH", data, l4)
        return (sp == lport and dp == rport) or (sp == rport and dp == lport)
    if proto in (1, 58) and len(data) >= l4 + 8:
        itype = data[l4]
        if (proto == 1 and itype not in (3, 11)) or (proto == 58 and itype not in (1, 2, 3)):
            return False
        inner = data[l4 + 8:]
        if proto == 1 and len(inner) >= 24:
            iihl = (inner[0] & 15) * 4
            return inner[9] == 6 and struct.unpack_from(">H", inner, iihl)[0] == lport
        if proto == 58 and len(inner) >= 44:
            return inner[6] == 6 and struct.unpack_from(">H", inner, 40)[0] == lport
    return False


def _save(path: str, packets: list[Packet], frames: list[bytes]) -> None:
    from netcheck.pcap.writer import PcapWriter
    from netcheck.safefile import open_for_write

    try:
        # As root: never through a symlink planted at ``path`` (netcheck.safefile).
        with open_for_write(path) as fh:
            writer = PcapWriter(fh, linktype=LINKTYPE_LINUX_SLL2, nanosecond=True)
            for p, frame in zip(packets, frames):
                writer.write(p.ts, frame)
    except OSError as exc:
        raise PcapError(f"-w {path[:60]!r}: {exc.strerror or exc}") from None
