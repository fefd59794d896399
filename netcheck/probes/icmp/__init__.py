"""ICMP echo ("ping"), with or without Don't-Fragment, the unprivileged way when possible.

Three ways, tried in this order once per run:
1. an unprivileged ICMP datagram socket, where ``net.ipv4.ping_group_range`` admits our group;
2. a raw socket, with root or CAP_NET_RAW;
3. the system ``ping`` (iputils), which may carry its own capability.
If none works the probe says so (``state="unavailable"``) and the checks skip; it never
pretends a silence it could not measure.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import struct
import time
from dataclasses import dataclass, field
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


# -- bursts: loss and jitter, counted -------------------------------------------------

BURST_COUNT = 30  # tens of probes: one lost packet moves the loss by 3 %, not 100 %
BURST_INTERVAL = 0.01  # seconds between probes: the whole burst leaves in 0.3 s at most
# A request answered sooner lets the next one leave then, as ``ping -f`` paces itself, but
# never sooner than this after it (iputils' shortest interval for a user): a fast path is
# counted in tens of milliseconds, a lost request still holds the next one ``interval``.
BURST_MIN_GAP = 0.002


@dataclass
class BurstResult:
    """What a burst of echo requests to one address met: counted, like ``ping -c N``."""

    address: str
    state: str = "done"  # done | unavailable | send_error
    method: Optional[str] = None
    sent: int = 0
    rtts_ms: list[float] = field(default_factory=list)  # one per reply, in arrival order
    size: int = 56
    df: bool = False
    icmp_errors: int = 0  # ICMP errors that quote one of our requests
    icmp_type: Optional[int] = None  # the first such error
    icmp_code: Optional[int] = None
    icmp_from: Optional[str] = None
    mtu: Optional[int] = None  # from "fragmentation needed" / "packet too big" or EMSGSIZE
    error: Optional[str] = None
    duration_ms: float = 0.0

    @property
    def received(self) -> int:
        return len(self.rtts_ms)

    @property
    def measured(self) -> bool:
        """Probes went out: the counts mean something."""
        return self.state == "done" and self.sent > 0

    @property
    def icmp_name(self) -> Optional[str]:
        return icmp_name(self.address, self.icmp_type, self.icmp_code)

    def stats(self) -> dict[str, object]:
        """``ping``'s summary: sent, received, loss %, RTT min/avg/max/mdev (ms)."""
        return burst_stats(self.sent, self.rtts_ms)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"address": self.address, "state": self.state,
                                  "method": self.method, "size": self.size, **self.stats()}
        if self.df:
            out["df"] = True
        if self.icmp_errors:
            out.update(icmp_errors=self.icmp_errors, icmp=self.icmp_name,
                       icmp_from=self.icmp_from)
        if self.mtu:
            out["mtu"] = self.mtu
        if self.error:
            out["error"] = self.error
        out["duration_ms"] = round(self.duration_ms, 1)
        return {k: v for k, v in out.items() if v is not None}


def burst_stats(sent: int, rtts_ms: list[float]) -> dict[str, object]:
    """sent, received, loss_pct and RTT min/avg/max/mdev the way iputils ``ping`` prints them,
    plus the median round trip and the median change between consecutive ones (jitter).

    mdev is ping's: the standard deviation of the round trips, sqrt(mean(x²) − mean(x)²).
    """
    received = len(rtts_ms)
    out: dict[str, object] = {"sent": sent, "received": received,
                              "loss_pct": round(100.0 * (sent - received) / sent, 1) if sent
                              else None}
    if rtts_ms:
        avg = sum(rtts_ms) / received
        var = max(0.0, sum(x * x for x in rtts_ms) / received - avg * avg)
        out.update(rtt_min_ms=round(min(rtts_ms), 3), rtt_avg_ms=round(avg, 3),
                   rtt_max_ms=round(max(rtts_ms), 3), rtt_mdev_ms=round(var ** 0.5, 3),
                   rtt_median_ms=round(_median(rtts_ms), 3))
        if received >= 3:
            # The typical change from one round trip to the next: a path whose queues swing
            # moves every sample, while this host's own scheduling hiccups (a busy CPU) move a
            # few, which avg and mdev would take for the path's.
            out["jitter_ms"] = round(_median([abs(b - a) for a, b in zip(rtts_ms, rtts_ms[1:])]),
                                     3)
    return out


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


async def burst(address: str, timeout: float, count: int = BURST_COUNT,
                interval: float = BURST_INTERVAL, size: int = 56,
                df: bool = False) -> BurstResult:
    """Send ``count`` echo requests ``interval`` seconds apart and count what comes back.

    One socket for the whole burst, so replies are matched by sequence number and a late
    reply still counts. A request answered before ``interval`` is up lets the next one leave
    (:data:`BURST_MIN_GAP` after it at the soonest), like ``ping -f``. After the last request
    it waits for the stragglers: a few times the slowest round trip seen (the whole
    ``timeout`` when nothing came back at all).
    """
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    method = available_method(family)
    result = BurstResult(address, method=method, size=size, df=df)
    if method is None:
        result.state, result.error = "unavailable", "no ICMP socket allowed and no ping binary"
        return result
    start = time.monotonic()
    try:
        if method == "ping":
            await _burst_binary(result, timeout, count, interval, size, df)
        else:
            await _burst_socket(result, family, method, timeout, count, interval, size, df)
    finally:
        result.duration_ms = (time.monotonic() - start) * 1000
    return result


async def _burst_socket(result: BurstResult, family: int, method: str, timeout: float,
                        count: int, interval: float, size: int, df: bool) -> None:
    loop = asyncio.get_running_loop()
    try:
        sock, ident = _echo_socket(family, method, df, int.from_bytes(os.urandom(2), "big"))
    except OSError as exc:
        result.state, result.error = "unavailable", str(exc)
        return
    base = int.from_bytes(os.urandom(2), "big")
    sent_at: dict[int, float] = {}
    answered: set[int] = set()
    to = (result.address.split("%")[0], 0)
    latest: list[int] = []  # the sequence number of the request sent last
    answered_latest = asyncio.Event()

    async def pace(since: float) -> None:
        """Until the next request may leave: ``interval``, or its answer (not before
        BURST_MIN_GAP)."""
        try:
            await asyncio.wait_for(answered_latest.wait(), interval)
        except asyncio.TimeoutError:
            return
        rest = since + BURST_MIN_GAP - time.monotonic()
        if rest > 0:
            await asyncio.sleep(rest)

    async def send_all() -> None:
        for i in range(count):
            seq = (base + i) & 0xFFFF
            try:
                sock.sendto(_echo_packet(family, ident, seq, size), to)
            except OSError as exc:
                result.error = errno.errorcode.get(exc.errno or 0, str(exc))
                if exc.errno == errno.EMSGSIZE:
                    result.mtu = _local_mtu_hint(sock, family)
                if not sent_at:
                    result.state = "send_error"
                    return
                if i + 1 < count:
                    await asyncio.sleep(interval)
                continue
            sent_at[seq] = time.monotonic()
            result.sent += 1
            latest[:] = [seq]
            answered_latest.clear()
            if i + 1 < count:
                await pace(sent_at[seq])

    def note_error(kind: int, code: int, sender: Optional[str], mtu: Optional[int]) -> None:
        result.icmp_errors += 1
        if result.icmp_type is None:
            result.icmp_type, result.icmp_code, result.icmp_from = kind, code, sender
        if mtu and _is_too_big(family, kind, code):
            result.mtu = mtu

    try:
        sender = asyncio.ensure_future(send_all())
        while True:
            now = time.monotonic()
            if sender.done():
                if result.state == "send_error" or len(answered) + result.icmp_errors >= len(
                        sent_at):
                    break
                last = max(sent_at.values())
                wait = (min(timeout, max(0.2, 4 * max(result.rtts_ms) / 1000))
                        if result.rtts_ms else timeout)
                left = last + wait - now
            else:
                left = interval * 2 + 0.05  # wake up to look at the sender again
            if left <= 0:
                break
            if not await wait_readable(loop, sock, left):
                continue
            err = read_errqueue(sock)
            if err is not None:
                note_error(err[0], err[1], err[2], err[3])
                continue
            try:
                data, peer = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as exc:
                result.error = errno.errorcode.get(exc.errno or 0, str(exc))
                continue
            parsed = _parse(family, method, data)
            if parsed is None:
                continue
            kind, code, got_id, seq, mtu = parsed
            if seq not in sent_at or seq in answered or (method == "raw" and got_id != ident):
                continue
            if kind in (0, 129):
                answered.add(seq)
                result.rtts_ms.append((time.monotonic() - sent_at[seq]) * 1000)
                if latest == [seq]:
                    answered_latest.set()
            else:
                note_error(kind, code, peer[0], mtu)
        sender.cancel()
    finally:
        sock.close()


_PING_SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")
_PING_RTTS = re.compile(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms")


async def _burst_binary(result: BurstResult, timeout: float, count: int, interval: float,
                        size: int, df: bool) -> None:
    """The system ``ping`` as a burst; an interval too short for a user is widened."""
    for gap in (interval, 0.2):
        argv = ["ping", "-n", "-q", "-c", str(count), "-i", f"{gap:g}",
                "-w", str(max(1, round(timeout + count * gap + 0.49))), "-s", str(size)]
        if ":" in result.address:
            argv.insert(1, "-6")
        if df:
            argv += ["-M", "do"]
        argv.append(result.address)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                env={"LC_ALL": "C", "PATH": os.environ.get("PATH", "/usr/bin:/bin")})
            out, _ = await asyncio.wait_for(proc.communicate(), timeout + count * gap + 2)
        except (OSError, asyncio.TimeoutError) as exc:
            result.state, result.error = "unavailable", str(exc) or "ping did not finish"
            return
        text = out.decode(errors="replace")[:4000]
        if "interval" in text and gap != 0.2:
            count = min(count, 10)  # "minimal interval allowed for user is 200ms": slower
            continue
        summary = _PING_SUMMARY.search(text)
        if summary is None:
            result.state, result.error = "unavailable", text.strip()[:200] or "no ping summary"
            return
        result.sent = int(summary.group(1))
        received = int(summary.group(2))
        rtts = _PING_RTTS.search(text)
        if received and rtts:
            # ping -q prints only the summary: rebuild `received` round trips that have its
            # min, avg and max (mdev is then approximate).
            lo, avg, hi = (float(rtts.group(i)) for i in (1, 2, 3))
            rest = [avg] * max(0, received - 2)
            result.rtts_ms = ([lo, hi] + rest)[:received] if received > 1 else [avg]
        return
