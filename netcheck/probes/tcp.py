"""TCP connect, with what the far end did told exactly.

``IP_RECVERR`` makes the kernel queue the ICMP error that aborted a SYN (with its type,
code and the router that sent it), so an RST (nothing listening), an ICMP "administratively
prohibited" from a firewall and a silent drop are told apart without root. ``TCP_INFO``
counts the SYNs a silent port let go unanswered.

A completed handshake is not the end of what the port can say: a TCP-wrappers or
fail2ban-style block accepts the connection and resets it at once, before any byte. So the
connection is watched for a few round trips after the handshake (never sending anything):
the server speaks first, closes, resets, or waits for the client.
"""

from __future__ import annotations

import errno
import socket
import struct
import time
from dataclasses import dataclass
from typing import Optional

from netcheck.lazy import asyncio
from netcheck.probes.icmp import (
    ICMP6_NAMES,
    ICMP_NAMES,
    IP_RECVERR,
    IPV6_RECVERR,
    read_errqueue,
    wait_ready,
)

# How long an open connection is watched: a few handshake round trips, within bounds. A
# reset from the server's accept() comes back one round trip after the handshake ends.
WATCH_RTTS = 4
WATCH_MIN_S = 0.015
WATCH_MAX_S = 0.25
# Errors of a connect whose handshake completed and that the peer then reset (Linux: RST
# received in ESTABLISHED gives ECONNRESET, in CLOSE_WAIT EPIPE; in SYN_SENT ECONNREFUSED).
_RESET_ERRNOS = (errno.ECONNRESET, errno.EPIPE)


@dataclass
class TcpResult:
    """What one connect() to address:port met."""

    address: str
    port: int
    # open | reset (handshake, then RST before any byte) | refused (RST to the SYN) |
    # timeout (no answer to the SYN) | icmp | local (this host's firewall) | noroute | error
    state: str
    rtt_ms: Optional[float] = None
    errno: Optional[str] = None
    icmp_type: Optional[int] = None
    icmp_code: Optional[int] = None
    icmp_from: Optional[str] = None
    local: Optional[str] = None
    # After the handshake, within ``watched_ms``: the server "spoke" first, "closed" (FIN
    # without a word), "reset", or stayed "quiet" (waits for the client). None: not watched.
    after: Optional[str] = None
    watched_ms: Optional[float] = None
    syns: Optional[int] = None  # SYNs sent, for a connect nobody answered

    @property
    def icmp_name(self) -> Optional[str]:
        if self.icmp_type is None:
            return None
        table = ICMP6_NAMES if ":" in self.address else ICMP_NAMES
        return table.get((self.icmp_type, self.icmp_code or 0),
                         f"type {self.icmp_type} code {self.icmp_code}")

    @property
    def answered(self) -> bool:
        """The target's side said something (SYN-ACK or RST)."""
        return self.state in ("open", "reset", "refused")

    @property
    def handshake(self) -> bool:
        """The three-way handshake completed (the SYN was answered with a SYN-ACK)."""
        return self.state in ("open", "reset")

    def to_json(self) -> dict[str, object]:
        out = {k: v for k, v in vars(self).items() if v is not None}
        if self.rtt_ms is not None:
            out["rtt_ms"] = round(self.rtt_ms, 3)
        if self.watched_ms is not None:
            out["watched_ms"] = round(self.watched_ms, 1)
        if self.icmp_type is not None:
            out["icmp"] = self.icmp_name
        return out


def watch_window(rtt_ms: float, timeout: float, floor: float = WATCH_MIN_S) -> float:
    """Seconds to watch a fresh connection: a few round trips, within bounds and the timeout."""
    return max(0.0, min(max(floor, WATCH_RTTS * rtt_ms / 1000), WATCH_MAX_S, timeout))


async def connect(address: str, port: int, timeout: float,
                  watch: Optional[float] = None, watch_floor: float = WATCH_MIN_S) -> TcpResult:
    """Open a TCP connection, watch what the server does on its own, close; classify it all.

    ``watch``: seconds to watch an open connection; None: a few handshake round trips
    (:func:`watch_window`), at least ``watch_floor`` seconds; 0: not at all.
    """
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    result = TcpResult(address, port, "timeout")
    loop = asyncio.get_running_loop()
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        return TcpResult(address, port, "error", errno=errno.errorcode.get(exc.errno or 0))
    start = time.monotonic()
    try:
        sock.setblocking(False)
        if family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
        rc = sock.connect_ex(_sockaddr(address, port))
        if rc not in (0, errno.EINPROGRESS):
            # Refused before a packet left: a route or this host's own firewall said no.
            result.rtt_ms = (time.monotonic() - start) * 1000
            result.errno = errno.errorcode.get(rc, str(rc))
            result.state = "local" if rc in (errno.EPERM, errno.EACCES) else "noroute"
            return result
        if rc == errno.EINPROGRESS:
            if not await wait_ready(loop, sock, timeout, writable=True):
                result.syns = syns_sent(sock)
                return result
            rc = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if rc != 0:
            result.rtt_ms = (time.monotonic() - start) * 1000
            result.errno = errno.errorcode.get(rc, str(rc))
            _classify_error(sock, rc, result)
            return result
        result.state = "open"
        result.rtt_ms = (time.monotonic() - start) * 1000
        try:
            result.local = sock.getsockname()[0]
        except OSError:
            pass
        left = timeout - (time.monotonic() - start)
        # The kernel's own handshake RTT where it has one: a busy event loop's stopwatch
        # (many probes at once) would stretch the four round trips with its own delays.
        from netcheck.server.handshake import kernel_rtt_ms

        kernel = kernel_rtt_ms(sock)
        rtt = min(result.rtt_ms, kernel) if kernel else result.rtt_ms
        window = watch_window(rtt, left, watch_floor) if watch is None else min(watch, left)
        if window > 0:
            await _watch(loop, sock, window, result)
        return result
    finally:
        sock.close()


def _classify_error(sock: socket.socket, rc: int, result: TcpResult) -> None:
    """The state of a connect that ended with error ``rc``."""
    icmp = read_errqueue(sock)
    if icmp is not None:
        result.state = "icmp"
        result.icmp_type, result.icmp_code, result.icmp_from, _ = icmp
    elif rc == errno.ECONNREFUSED:
        result.state = "refused"
    elif rc in _RESET_ERRNOS:
        # The RST came after the handshake, before connect() was looked at again: the
        # connection had its local address, as when the reset is read after the handshake.
        result.state, result.after, result.watched_ms = "reset", "reset", 0.0
        try:
            result.local = sock.getsockname()[0]
        except OSError:
            pass
    elif rc in (errno.EPERM, errno.EACCES):
        result.state = "local"
    elif rc in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        result.state = "icmp"  # the error's ICMP was not queued, but it came from afar
    else:
        result.state = "error"


async def _watch(loop: asyncio.AbstractEventLoop, sock: socket.socket, window: float,
                 result: TcpResult) -> None:
    """What the server does on its own right after the handshake (nothing is sent to it)."""
    t0 = time.monotonic()
    readable = await wait_ready(loop, sock, window, writable=False)
    result.watched_ms = (time.monotonic() - t0) * 1000
    if not readable:
        result.after = "quiet"
        return
    read_after(sock, result)


def read_after(sock: socket.socket, result: TcpResult) -> None:
    """What a watched connection that became readable says (``after``), without taking it:
    the server spoke, closed, reset (``state`` too), or an error."""
    try:
        data = sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        result.after = "quiet"
    except OSError as exc:
        if exc.errno in _RESET_ERRNOS:
            result.state = result.after = "reset"
            result.errno = errno.errorcode.get(exc.errno or 0)
        else:
            result.after = "error"
            result.errno = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    else:
        result.after = "spoke" if data else "closed"


# struct tcp_info: u8 state, ca_state, retransmits (for a SYN_SENT socket: SYNs resent).
_TCP_INFO_HEAD = struct.Struct("=BBB")


def syns_sent(sock: socket.socket) -> Optional[int]:
    """How many SYNs a connect that is still waiting has sent (1 + the kernel's retries)."""
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_HEAD.size)
    except OSError:
        return None
    if len(raw) < _TCP_INFO_HEAD.size:
        return None
    return 1 + _TCP_INFO_HEAD.unpack(raw[:_TCP_INFO_HEAD.size])[2]


def _sockaddr(address: str, port: int) -> tuple[object, ...]:
    if ":" in address:
        host, _, zone = address.partition("%")
        scope = socket.if_nametoindex(zone) if zone else 0
        return (host, port, 0, scope)
    return (address, port)
