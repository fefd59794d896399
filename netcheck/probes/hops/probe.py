"""One probe with the TTL (hop limit) of one hop, on its own socket with ``IP_RECVERR``: a TCP
SYN, a datagram (a DNS query to port 53), or an echo request; and what it met, from the error
queue or the answer."""

from __future__ import annotations

import errno
import os
import socket
import struct
import time
from typing import Any, Optional

from netcheck.lazy import asyncio
from netcheck.probes import icmp
from netcheck.probes.hops.model import Probe, family_of
from netcheck.probes.icmp import IP_RECVERR, IPV6_RECVERR, read_errqueue, wait_ready

# The ICMP types of "time exceeded" (the TTL ran out at a router), by address family.
TIME_EXCEEDED: dict[int, tuple[int, ...]] = {socket.AF_INET: (11,),
                                              socket.AF_INET6: (3,)}


def _set_ttl(sock: socket.socket, family: int, ttl: int) -> None:
    if family == socket.AF_INET:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
        sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    else:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)


def _sockaddr(address: str, port: int) -> tuple[Any, ...]:
    host, _sep, zone = address.partition("%")
    if ":" in host:
        return (host, port, 0, socket.if_nametoindex(zone) if zone else 0)
    return (host, port)


def _icmp_answer(probe: Probe, family: int, target: str,
                 err: tuple[int, int, Optional[str], int]) -> None:
    """Classify an ICMP error a probe met: a router's "time exceeded" or an unreachable."""
    kind, code, sender, _info = err
    probe.icmp_type, probe.icmp_code, probe.address = kind, code, sender
    probe.answer = icmp.icmp_name(target, kind, code)
    if kind in TIME_EXCEEDED[family]:
        probe.state = "hop"
    elif sender is not None and sender.split("%")[0] == target.split("%")[0]:
        probe.state = "reached"  # the target itself rejects (port unreachable, prohibited)
    else:
        probe.state = "unreachable"


def _open(address: str, kind: int, ttl: int) -> tuple[Probe, Optional[socket.socket]]:
    """A fresh probe and its own non-blocking socket with this TTL (None: it could not be
    made, the probe says why)."""
    probe = Probe(ttl)
    try:
        sock = socket.socket(family_of(address), kind)
    except OSError as exc:
        probe.state, probe.error = "error", errno.errorcode.get(exc.errno or 0, str(exc))
        return probe, None
    try:
        sock.setblocking(False)
        _set_ttl(sock, family_of(address), ttl)
    except OSError as exc:
        sock.close()
        probe.state, probe.error = "error", errno.errorcode.get(exc.errno or 0, str(exc))
        return probe, None
    return probe, sock


async def tcp_probe(address: str, port: int, ttl: int, wait: float) -> Probe:
    """One SYN to address:port with this TTL: a non-blocking connect() that is never kept.

    A completed handshake is closed at once with a reset (SO_LINGER 0): the server is left
    no half-open connection to time out.
    """
    family = family_of(address)
    probe, sock = _open(address, socket.SOCK_STREAM, ttl)
    if sock is None:
        return probe
    loop = asyncio.get_running_loop()
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        start = time.monotonic()
        rc = sock.connect_ex(_sockaddr(address, port))
        try:
            probe.local_port = sock.getsockname()[1]
        except OSError:
            pass
        if rc not in (0, errno.EINPROGRESS):
            probe.state, probe.error = "error", errno.errorcode.get(rc, str(rc))
            return probe
        if rc == errno.EINPROGRESS and not await wait_ready(loop, sock, wait, writable=True):
            return probe
        rc = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        probe.rtt_ms = (time.monotonic() - start) * 1000
        err = read_errqueue(sock)
        if err is not None:
            _icmp_answer(probe, family, address, err)
        elif rc == 0:
            probe.state, probe.answer, probe.address = "reached", "syn-ack", address
        elif rc == errno.ECONNREFUSED:
            probe.state, probe.answer, probe.address = "reached", "rst", address
        elif rc in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            probe.state, probe.answer = "unreachable", errno.errorcode.get(rc)
        else:
            probe.state, probe.error = "error", errno.errorcode.get(rc, str(rc))
        return probe
    finally:
        sock.close()


async def udp_probe(address: str, port: int, ttl: int, wait: float, payload: bytes) -> Probe:
    """One datagram to address:port with this TTL (a DNS query for port 53)."""
    probe, sock = _open(address, socket.SOCK_DGRAM, ttl)
    if sock is None:
        return probe
    try:
        start = time.monotonic()
        try:
            sock.connect(_sockaddr(address, port))
            probe.local_port = sock.getsockname()[1]
            sock.send(payload)
        except OSError as exc:
            probe.state, probe.error = "error", errno.errorcode.get(exc.errno or 0, str(exc))
            return probe

        def datagram() -> bool:
            try:
                data = sock.recv(4096)
            except OSError:  # the error's own report; the queued ICMP is read next time round
                return False
            probe.state, probe.address = "reached", address
            probe.answer = "dns" if _is_dns_answer(data, payload) else "udp"
            return True

        return await _await_answer(sock, probe, address, start + wait, start, datagram)
    finally:
        sock.close()


async def _await_answer(sock: socket.socket, probe: Probe, address: str, deadline: float,
                        start: float, read: Any, errqueue: bool = True) -> Probe:
    """Wait until ``deadline`` for what comes back to ``sock``: an ICMP error from its error
    queue (``errqueue``), or a datagram that ``read()`` recognises (True: the probe is
    settled). Nothing by the deadline: the probe stays a timeout."""
    loop = asyncio.get_running_loop()
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not await wait_ready(loop, sock, left, writable=False):
            return probe
        err = read_errqueue(sock)  # read even when ignored: a queued error keeps it readable
        if err is not None and errqueue:
            probe.rtt_ms = (time.monotonic() - start) * 1000
            _icmp_answer(probe, family_of(address), address, err)
            return probe
        if read():
            probe.rtt_ms = (time.monotonic() - start) * 1000
            return probe


def _is_dns_answer(data: bytes, query: bytes) -> bool:
    """An answer (QR set) to our query (same id): what a name server sends back."""
    return len(query) >= 12 and len(data) >= 12 and data[:2] == query[:2] and bool(
        data[2] & 0x80)


async def icmp_probe(address: str, ttl: int, wait: float, size: int = 56,
                     df: bool = False) -> Probe:
    """One echo request with this TTL (full-size with Don't-Fragment for ``icmp-echo-df``)."""
    family = family_of(address)
    probe = Probe(ttl)
    method = icmp.available_method(family)
    if method not in ("dgram", "raw"):
        probe.state, probe.error = "error", "no ICMP socket"
        return probe
    ident = int.from_bytes(os.urandom(2), "big")
    seq = int.from_bytes(os.urandom(2), "big")
    try:
        sock, ident = icmp._echo_socket(family, method, df, ident)
    except OSError as exc:
        probe.state, probe.error = "error", errno.errorcode.get(exc.errno or 0, str(exc))
        return probe
    try:
        _set_ttl(sock, family, ttl)
        start = time.monotonic()
        try:
            sock.sendto(icmp._echo_packet(family, ident, seq, size),
                        (address.split("%")[0], 0))
        except OSError as exc:
            probe.state, probe.error = "error", errno.errorcode.get(exc.errno or 0, str(exc))
            return probe

        def datagram() -> bool:
            try:
                data, peer = sock.recvfrom(65535)
            except OSError:
                return False
            parsed = icmp._parse(family, method, data)
            if parsed is None:
                return False
            kind, code, got_id, got_seq, _mtu = parsed
            if got_seq != seq or (got_id != ident and (method == "raw" or kind not in (0, 129))):
                return False
            if kind in (0, 129):
                probe.state, probe.answer, probe.address = "reached", "echo-reply", peer[0]
            else:
                _icmp_answer(probe, family, address, (kind, code, peer[0], 0))
            return True

        # A raw socket's error queue holds every ICMP socket's errors: only datagrams count.
        return await _await_answer(sock, probe, address, start + wait, start, datagram,
                                   errqueue=method == "dgram")
    finally:
        sock.close()


def dns_query(name: str) -> bytes:
    """A DNS query (recursion desired) for the A record of ``name``; the root's NS without one."""
    labels = [part for part in name.rstrip(".").split(".") if part] if name else []
    try:
        qname = b"".join(bytes([len(p)]) + p.encode("idna") for p in labels) + b"\0"
        qtype = 1
    except (UnicodeError, ValueError):
        qname, qtype = b"\0", 2
    if not labels or len(qname) > 255 or any(len(p) > 63 for p in labels):
        qname, qtype = b"\0", 2
    header = os.urandom(2) + struct.pack("!HHHHH", 0x0100, 1, 0, 0, 0)
    return header + qname + struct.pack("!HH", qtype, 1)
