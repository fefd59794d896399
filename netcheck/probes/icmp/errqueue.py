"""The socket options ICMP probes set, and the socket's error queue: the ICMP errors
a socket queues (IP_RECVERR), read and named as ping names them; waiting until a
socket is ready. The TCP, DNS and hop probes use these too.
"""

from __future__ import annotations

import socket
import struct
from typing import Optional

from netcheck.lazy import asyncio

IP_RECVERR = 11
IPV6_RECVERR = 25
IP_MTU_DISCOVER = 10
IP_PMTUDISC_PROBE = 3
IPV6_MTU_DISCOVER = 23
IPV6_PMTUDISC_PROBE = 3
IPV6_DONTFRAG = 62
MSG_ERRQUEUE = 0x2000
SO_EE_ORIGIN_ICMP = 2
SO_EE_ORIGIN_ICMP6 = 3

ICMP_NAMES = {
    (3, 0): "net unreachable", (3, 1): "host unreachable", (3, 2): "protocol unreachable",
    (3, 3): "port unreachable", (3, 4): "fragmentation needed", (3, 9): "net prohibited",
    (3, 10): "host prohibited", (3, 13): "administratively prohibited",
    (11, 0): "TTL exceeded in transit",
}
ICMP6_NAMES = {
    (1, 0): "no route to destination", (1, 1): "administratively prohibited",
    (1, 3): "address unreachable", (1, 4): "port unreachable",
    (1, 5): "source address failed policy",
    (1, 6): "reject route", (2, 0): "packet too big", (3, 0): "hop limit exceeded",
}


def icmp_name(address: str, kind: Optional[int], code: Optional[int]) -> Optional[str]:
    """The name of an ICMP error (of the family of ``address``), as ping prints it."""
    if kind is None:
        return None
    table = ICMP6_NAMES if ":" in address else ICMP_NAMES
    return table.get((kind, code or 0), f"type {kind} code {code}")



async def wait_readable(loop: asyncio.AbstractEventLoop, sock: socket.socket,
                        timeout: float) -> bool:
    """Wait until the socket has data (or a queued error); False on timeout."""
    return await wait_ready(loop, sock, timeout, writable=False)


async def wait_ready(loop: asyncio.AbstractEventLoop, sock: socket.socket, timeout: float,
                     writable: bool) -> bool:
    """Wait until the socket is readable (or writable); False on timeout."""
    fut: asyncio.Future[bool] = loop.create_future()

    def ready() -> None:
        if not fut.done():
            fut.set_result(True)

    add, remove = ((loop.add_writer, loop.remove_writer) if writable
                   else (loop.add_reader, loop.remove_reader))
    add(sock.fileno(), ready)
    try:
        return await asyncio.wait_for(fut, timeout)
    except asyncio.TimeoutError:
        return False
    finally:
        remove(sock.fileno())


def read_errqueue(sock: socket.socket) -> Optional[tuple[int, int, Optional[str], int]]:
    """One ICMP error from the socket's error queue: (type, code, offender, info)."""
    try:
        _, ancdata, _, _ = sock.recvmsg(512, 512, MSG_ERRQUEUE | socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:
        return None
    for level, ctype, cdata in ancdata:
        if (level, ctype) not in ((socket.IPPROTO_IP, IP_RECVERR),
                                  (socket.IPPROTO_IPV6, IPV6_RECVERR)):
            continue
        if len(cdata) < 16:
            continue
        _errno, origin, kind, code, _pad, info, _data = struct.unpack("=IBBBBII", cdata[:16])
        if origin not in (SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6):
            continue
        offender = _sockaddr_address(cdata[16:])
        return kind, code, offender, info
    return None


def _sockaddr_address(raw: bytes) -> Optional[str]:
    if len(raw) < 2:
        return None
    family = struct.unpack("=H", raw[:2])[0]
    if family == socket.AF_INET and len(raw) >= 8:
        return socket.inet_ntop(socket.AF_INET, raw[4:8])
    if family == socket.AF_INET6 and len(raw) >= 24:
        return socket.inet_ntop(socket.AF_INET6, raw[8:24])
    return None
