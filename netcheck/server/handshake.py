"""A local TCP handshake, as ``nping --tcp-connect -p PORT localhost`` makes it, with its RTT.

On one host a handshake takes tens of microseconds, less than the time a busy event loop or
a thread switch adds to a stopwatch around ``connect()``. So the RTT reported is the kernel's
own measurement of the handshake (``TCP_INFO``'s ``tcpi_rtt``, taken from the SYN / SYN-ACK
exchange), and the wall time is kept beside it. Blocking, for ``ctx.blocking``.
"""

from __future__ import annotations

import errno
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any, Optional

TCPI_RTT_OFFSET = 68  # struct tcp_info: u8 x8, u32 rto..., tcpi_rtt (microseconds)


@dataclass
class Handshake:
    """How one local connect went."""

    address: str
    port: int
    state: str  # open | refused | timeout | unreachable | local (EPERM) | error
    rtt_ms: Optional[float] = None  # the kernel's handshake RTT (open) or the wall time
    wall_ms: Optional[float] = None
    errno: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"address": self.address, "port": self.port, "state": self.state}
        if self.rtt_ms is not None:
            out["rtt_ms"] = round(self.rtt_ms, 3)
        if self.wall_ms is not None:
            out["wall_ms"] = round(self.wall_ms, 3)
        if self.errno:
            out["errno"] = self.errno
        return out


def kernel_rtt_ms(sock: socket.socket) -> Optional[float]:
    """The connection's smoothed RTT as the kernel measured it, in ms (None if unknown)."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    except (OSError, AttributeError):
        return None
    if len(info) < TCPI_RTT_OFFSET + 4:
        return None
    return struct.unpack_from("=I", info, TCPI_RTT_OFFSET)[0] / 1000.0


def handshake(address: str, port: int, timeout: float) -> Handshake:
    """Connect to address:port from this host and close again; never raises."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    result = Handshake(address, port, "timeout")
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        return Handshake(address, port, "error", errno=errno.errorcode.get(exc.errno or 0))
    try:
        sock.settimeout(timeout)
        start = time.perf_counter()
        try:
            sock.connect((address, port))
        except socket.timeout:
            result.wall_ms = (time.perf_counter() - start) * 1000
            return result
        except OSError as exc:
            result.wall_ms = (time.perf_counter() - start) * 1000
            code = exc.errno or 0
            result.errno = errno.errorcode.get(code, str(code))
            result.state = {errno.ECONNREFUSED: "refused", errno.EPERM: "local",
                            errno.EACCES: "local", errno.EHOSTUNREACH: "unreachable",
                            errno.ENETUNREACH: "unreachable"}.get(code, "error")
            result.rtt_ms = result.wall_ms if result.state == "refused" else None
            return result
        result.wall_ms = (time.perf_counter() - start) * 1000
        result.state = "open"
        kernel = kernel_rtt_ms(sock)
        result.rtt_ms = kernel if kernel is not None else result.wall_ms
        return result
    finally:
        sock.close()
