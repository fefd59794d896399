"""One echo request (``ping``): the way this process may send one, the packet, the
socket, the answer matched to it, or the system ``ping`` when no socket is allowed.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import struct
import time
from dataclasses import dataclass
from typing import Optional

from netcheck.lazy import asyncio
from netcheck.probes.icmp.errqueue import (
    IP_MTU_DISCOVER,
    IP_PMTUDISC_PROBE,
    IP_RECVERR,
    IPV6_DONTFRAG,
    IPV6_MTU_DISCOVER,
    IPV6_PMTUDISC_PROBE,
    IPV6_RECVERR,
    icmp_name,
    read_errqueue,
    wait_readable,
)


@dataclass
class PingResult:
    """What one echo request met."""

    address: str
    state: str  # reply | timeout | icmp_error | send_error | unavailable
    method: Optional[str] = None  # dgram | raw | ping
    rtt_ms: Optional[float] = None
    size: int = 0  # ICMP payload bytes
    icmp_type: Optional[int] = None
    icmp_code: Optional[int] = None
    icmp_from: Optional[str] = None
    mtu: Optional[int] = None  # from "fragmentation needed" / "packet too big" or EMSGSIZE
    error: Optional[str] = None

    @property
    def icmp_name(self) -> Optional[str]:
        return icmp_name(self.address, self.icmp_type, self.icmp_code)

    def to_json(self) -> dict[str, object]:
        out = {k: v for k, v in vars(self).items() if v is not None}
        if self.rtt_ms is not None:
            out["rtt_ms"] = round(self.rtt_ms, 3)
        if self.icmp_type is not None:
            out["icmp"] = self.icmp_name
        return out


_method_cache: dict[int, Optional[str]] = {}


def available_method(family: int) -> Optional[str]:
    """The way this process can send echo requests for a family, or None."""
    if family in _method_cache:
        return _method_cache[family]
    proto = socket.IPPROTO_ICMP if family == socket.AF_INET else socket.IPPROTO_ICMPV6
    method: Optional[str] = None
    for kind, name in ((socket.SOCK_DGRAM, "dgram"), (socket.SOCK_RAW, "raw")):
        try:
            socket.socket(family, kind, proto).close()
            method = name
            break
        except OSError:
            continue
    if method is None and shutil.which("ping"):
        method = "ping"
    _method_cache[family] = method
    return method


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _echo_packet(family: int, ident: int, seq: int, size: int) -> bytes:
    kind = 8 if family == socket.AF_INET else 128
    payload = (b"netcheck" * (size // 8 + 1))[:size]
    header = struct.pack("!BBHHH", kind, 0, 0, ident, seq)
    if family == socket.AF_INET:  # the kernel computes ICMPv6 checksums itself
        header = struct.pack("!BBHHH", kind, 0, _checksum(header + payload), ident, seq)
    return header + payload


async def ping(address: str, timeout: float, size: int = 56, df: bool = False) -> PingResult:
    """Send one echo request of ``size`` payload bytes and wait for what comes back."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    method = available_method(family)
    if method is None:
        return PingResult(address, "unavailable", error="no ICMP socket allowed and no ping binary")
    if method == "ping":
        return await _ping_binary(address, timeout, size, df)
    return await _ping_socket(address, family, method, timeout, size, df)


async def _ping_socket(address: str, family: int, method: str, timeout: float, size: int,
                       df: bool) -> PingResult:
    result = PingResult(address, "timeout", method=method, size=size)
    ident = int.from_bytes(os.urandom(2), "big")
    seq = int.from_bytes(os.urandom(2), "big")
    loop = asyncio.get_running_loop()
    try:
        sock, ident = _echo_socket(family, method, df, ident)
    except OSError as exc:
        return PingResult(address, "unavailable", method=method, error=str(exc))
    try:
        packet = _echo_packet(family, ident, seq, size)
        start = time.monotonic()
        try:
            sock.sendto(packet, (result.address.split("%")[0], 0))
        except OSError as exc:
            result.state = "send_error"
            result.error = errno.errorcode.get(exc.errno or 0, str(exc))
            if exc.errno == errno.EMSGSIZE:
                result.mtu = _local_mtu_hint(sock, family)
            return result
        deadline = start + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return result
            got = await wait_readable(loop, sock, left)
            if not got:
                return result
            err = read_errqueue(sock)
            if err is not None:
                result.state = "icmp_error"
                result.icmp_type, result.icmp_code, result.icmp_from, info = err
                if _is_too_big(family, result.icmp_type, result.icmp_code):
                    result.mtu = info
                result.rtt_ms = (time.monotonic() - start) * 1000
                return result
            try:
                data, peer = sock.recvfrom(65535)
            except BlockingIOError:
                continue
            except OSError as exc:
                result.state = "send_error"
                result.error = errno.errorcode.get(exc.errno or 0, str(exc))
                return result
            matched = _match(family, method, data, ident, seq)
            if matched is None:
                continue
            result.rtt_ms = (time.monotonic() - start) * 1000
            kind_seen, code, mtu = matched
            if kind_seen in (0, 129):
                result.state = "reply"
            else:
                result.state = "icmp_error"
                result.icmp_type, result.icmp_code, result.icmp_from = kind_seen, code, peer[0]
                result.mtu = mtu
            return result
    finally:
        sock.close()


def _echo_socket(family: int, method: str, df: bool, ident: int) -> tuple[socket.socket, int]:
    """A non-blocking ICMP socket that queues ICMP errors, and the echo id it will carry."""
    proto = socket.IPPROTO_ICMP if family == socket.AF_INET else socket.IPPROTO_ICMPV6
    kind = socket.SOCK_DGRAM if method == "dgram" else socket.SOCK_RAW
    sock = socket.socket(family, kind, proto)
    try:
        sock.setblocking(False)
        if family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
            if df:
                sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE)
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
            if df:
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE)
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_DONTFRAG, 1)
        if method == "dgram":
            sock.bind(("", 0) if family == socket.AF_INET else ("::", 0))
            ident = sock.getsockname()[1]  # the kernel rewrites the id to the socket's "port"
    except OSError:
        sock.close()
        raise
    return sock, ident


def _is_too_big(family: int, kind: Optional[int], code: Optional[int]) -> bool:
    return (family == socket.AF_INET and kind == 3 and code == 4) or (
        family == socket.AF_INET6 and kind == 2)


def _local_mtu_hint(sock: socket.socket, family: int) -> Optional[int]:
    try:
        if family == socket.AF_INET:
            return sock.getsockopt(socket.IPPROTO_IP, 14)  # IP_MTU
        return sock.getsockopt(socket.IPPROTO_IPV6, 24)  # IPV6_MTU
    except OSError:
        return None



def _match(family: int, method: str, data: bytes, ident: int,
           seq: int) -> Optional[tuple[int, int, Optional[int]]]:
    """Is this datagram the answer to our echo? -> (type, code, mtu) or None."""
    parsed = _parse(family, method, data)
    if parsed is None:
        return None
    kind, code, got_id, got_seq, mtu = parsed
    # A datagram ICMP socket only ever sees its own replies; the id is rewritten.
    if got_seq != seq or (got_id != ident and (method != "dgram" or kind not in (0, 129))):
        return None
    return kind, code, mtu


def _parse(family: int, method: str,
           data: bytes) -> Optional[tuple[int, int, int, int, Optional[int]]]:
    """An echo reply, or an ICMP error quoting one of our echo requests:
    (type, code, echo id, echo sequence, mtu) or None for anything else."""
    if family == socket.AF_INET and method == "raw":
        if len(data) < 20:
            return None
        data = data[(data[0] & 0x0F) * 4:]  # raw IPv4 sockets see the IP header
    if len(data) < 8:
        return None
    kind, code = data[0], data[1]
    if kind in (0, 129):
        got_id, got_seq = struct.unpack("!HH", data[4:8])
        return kind, code, got_id, got_seq, None
    if family == socket.AF_INET and kind in (3, 11, 12):
        inner = data[8:]
        if len(inner) < 28 or inner[9] != 1:
            return None
        inner_icmp = inner[(inner[0] & 0x0F) * 4:]
        if len(inner_icmp) < 8:
            return None
        got_id, got_seq = struct.unpack("!HH", inner_icmp[4:8])
        mtu = struct.unpack("!H", data[6:8])[0] if kind == 3 and code == 4 else None
        return kind, code, got_id, got_seq, mtu
    if family == socket.AF_INET6 and kind in (1, 2, 3, 4):
        inner = data[8:]
        if len(inner) < 48 or inner[6] != 58:
            return None
        got_id, got_seq = struct.unpack("!HH", inner[44:48])
        mtu = struct.unpack("!I", data[4:8])[0] if kind == 2 else None
        return kind, code, got_id, got_seq, mtu
    return None


_PING_RTT = re.compile(r"time[=<]([\d.]+) ?ms")
_PING_MTU = re.compile(r"mtu ?= ?(\d+)", re.I)


async def _ping_binary(address: str, timeout: float, size: int, df: bool) -> PingResult:
    argv = ["ping", "-n", "-c", "1", "-W", str(max(1, round(timeout + 0.49))), "-s", str(size)]
    if ":" in address:
        argv.insert(1, "-6")
    if df:
        argv += ["-M", "do"]
    argv.append(address)
    result = PingResult(address, "timeout", method="ping", size=size)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={"LC_ALL": "C", "PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    except OSError as exc:
        return PingResult(address, "unavailable", method="ping", error=str(exc))
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout + 1)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        return result
    text = out.decode(errors="replace")[:4000]
    rtt = _PING_RTT.search(text)
    if proc.returncode == 0 and rtt:
        result.state, result.rtt_ms = "reply", float(rtt.group(1))
    elif "Operation not permitted" in text or "permission denied" in text.lower():
        return PingResult(address, "unavailable", method="ping", error="ping not permitted")
    elif "too long" in text or "Frag needed" in text or "Packet too big" in text:
        mtu = _PING_MTU.search(text)
        result.state = "icmp_error" if "Frag needed" in text or "too big" in text else "send_error"
        result.mtu = int(mtu.group(1)) if mtu else None
        if result.state == "icmp_error":
            result.icmp_type, result.icmp_code = ((2, 0) if ":" in address else (3, 4))
    elif "Unreachable" in text or "Prohibited" in text:
        result.state = "icmp_error"
        result.icmp_type, result.icmp_code = (1, 0) if ":" in address else (3, 1)
        m = re.search(r"From ([0-9a-fA-F:.]+)", text)
        result.icmp_from = m.group(1) if m else None
        result.error = text.strip().splitlines()[1][:200] if len(text.splitlines()) > 1 else None
    return result
