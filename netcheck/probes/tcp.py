"""TCP connect, with the reason it failed told exactly.

``IP_RECVERR`` makes the kernel queue the ICMP error that aborted a SYN (with its type,
code and the router that sent it), so an RST (nothing listening), an ICMP "administratively
prohibited" from a firewall and a silent drop are told apart without root.
"""

from __future__ import annotations

import errno
import socket
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


@dataclass
class TcpResult:
    """What one connect() to address:port met."""

    address: str
    port: int
    state: str  # open | refused | timeout | icmp | local (firewall) | noroute | error
    rtt_ms: Optional[float] = None
    errno: Optional[str] = None
    icmp_type: Optional[int] = None
    icmp_code: Optional[int] = None
    icmp_from: Optional[str] = None
    local: Optional[str] = None

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
        return self.state in ("open", "refused")

    def to_json(self) -> dict[str, object]:
        out = {k: v for k, v in vars(self).items() if v is not None}
        if self.rtt_ms is not None:
            out["rtt_ms"] = round(self.rtt_ms, 3)
        if self.icmp_type is not None:
            out["icmp"] = self.icmp_name
        return out


async def connect(address: str, port: int, timeout: float) -> TcpResult:
    """Open (and close at once) a TCP connection; classify how it went."""
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
                return result
            rc = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if rc != 0:
            result.rtt_ms = (time.monotonic() - start) * 1000
            result.errno = errno.errorcode.get(rc, str(rc))
            icmp = read_errqueue(sock)
            if icmp is not None:
                result.state = "icmp"
                result.icmp_type, result.icmp_code, result.icmp_from, _ = icmp
            elif rc == errno.ECONNREFUSED:
                result.state = "refused"
            elif rc in (errno.EPERM, errno.EACCES):
                result.state = "local"
            elif rc in (errno.EHOSTUNREACH, errno.ENETUNREACH):
                result.state = "icmp"  # the error's ICMP was not queued, but it came from afar
            else:
                result.state = "error"
            return result
        result.state = "open"
        result.rtt_ms = (time.monotonic() - start) * 1000
        try:
            result.local = sock.getsockname()[0]
        except OSError:
            pass
        return result
    finally:
        sock.close()


def _sockaddr(address: str, port: int) -> tuple[object, ...]:
    if ":" in address:
        host, _, zone = address.partition("%")
        scope = socket.if_nametoindex(zone) if zone else 0
        return (host, port, 0, scope)
    return (address, port)

