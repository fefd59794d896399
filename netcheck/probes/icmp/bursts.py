"""Bursts of echo requests: loss and jitter, counted like ``ping -c N``."""

from __future__ import annotations

import errno
import os
import re
import socket
import time
from dataclasses import dataclass, field
from typing import Optional

from netcheck.lazy import asyncio
from netcheck.probes.icmp.echo import (
    _echo_packet,
    _echo_socket,
    _is_too_big,
    _local_mtu_hint,
    _parse,
    available_method,
)
from netcheck.probes.icmp.errqueue import icmp_name, read_errqueue, wait_readable

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
    try:
        sock, ident = _echo_socket(family, method, df, int.from_bytes(os.urandom(2), "big"))
    except OSError as exc:
        result.state, result.error = "unavailable", str(exc)
        return
    try:
        await _SocketBurst(result, sock, family, method, ident, count, interval, size).run(
            timeout)
    finally:
        sock.close()


class _SocketBurst:
    """One burst on one echo socket: the requests go out paced (:meth:`send_all`) while the
    replies and ICMP errors are read and matched by sequence number (:meth:`receive_one`)."""

    def __init__(self, result: BurstResult, sock: socket.socket, family: int, method: str,
                 ident: int, count: int, interval: float, size: int) -> None:
        self.result, self.sock, self.family, self.method = result, sock, family, method
        self.ident, self.count, self.interval, self.size = ident, count, interval, size
        self.base = int.from_bytes(os.urandom(2), "big")
        self.sent_at: dict[int, float] = {}
        self.answered: set[int] = set()
        self.to = (result.address.split("%")[0], 0)
        self.latest: Optional[int] = None  # the sequence number of the request sent last
        self.answered_latest = asyncio.Event()

    async def run(self, timeout: float) -> None:
        """Send the burst and read what comes back until every request is accounted for or
        the stragglers' wait is over."""
        loop = asyncio.get_running_loop()
        sender = asyncio.ensure_future(self.send_all())
        while True:
            left = self.time_left(sender, timeout)
            if left <= 0:
                break
            if not await wait_readable(loop, self.sock, left):
                continue
            self.receive_one()
        sender.cancel()

    def time_left(self, sender: asyncio.Future[None], timeout: float) -> float:
        """How long to wait for the next datagram (0: the burst is over)."""
        now = time.monotonic()
        result = self.result
        if not sender.done():
            return self.interval * 2 + 0.05  # wake up to look at the sender again
        if result.state == "send_error" or len(self.answered) + result.icmp_errors >= len(
                self.sent_at):
            return 0.0
        last = max(self.sent_at.values())
        wait = (min(timeout, max(0.2, 4 * max(result.rtts_ms) / 1000))
                if result.rtts_ms else timeout)
        return last + wait - now

    async def pace(self, since: float) -> None:
        """Until the next request may leave: ``interval``, or its answer (not before
        BURST_MIN_GAP)."""
        try:
            await asyncio.wait_for(self.answered_latest.wait(), self.interval)
        except asyncio.TimeoutError:
            return
        rest = since + BURST_MIN_GAP - time.monotonic()
        if rest > 0:
            await asyncio.sleep(rest)

    async def send_all(self) -> None:
        result, sock, family = self.result, self.sock, self.family
        for i in range(self.count):
            seq = (self.base + i) & 0xFFFF
            try:
                sock.sendto(_echo_packet(family, self.ident, seq, self.size), self.to)
            except OSError as exc:
                result.error = errno.errorcode.get(exc.errno or 0, str(exc))
                if exc.errno == errno.EMSGSIZE:
                    result.mtu = _local_mtu_hint(sock, family)
                if not self.sent_at:
                    result.state = "send_error"
                    return
                if i + 1 < self.count:
                    await asyncio.sleep(self.interval)
                continue
            self.sent_at[seq] = time.monotonic()
            result.sent += 1
            self.latest = seq
            self.answered_latest.clear()
            if i + 1 < self.count:
                await self.pace(self.sent_at[seq])

    def note_error(self, kind: int, code: int, sender: Optional[str],
                   mtu: Optional[int]) -> None:
        result = self.result
        result.icmp_errors += 1
        if result.icmp_type is None:
            result.icmp_type, result.icmp_code, result.icmp_from = kind, code, sender
        if mtu and _is_too_big(self.family, kind, code):
            result.mtu = mtu

    def receive_one(self) -> None:
        """Read what made the socket readable: a queued ICMP error, or a datagram (a reply
        to one of our requests, or an ICMP error quoting one)."""
        err = read_errqueue(self.sock)
        if err is not None:
            self.note_error(err[0], err[1], err[2], err[3])
            return
        try:
            data, peer = self.sock.recvfrom(65535)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.result.error = errno.errorcode.get(exc.errno or 0, str(exc))
            return
        parsed = _parse(self.family, self.method, data)
        if parsed is None:
            return
        kind, code, got_id, seq, mtu = parsed
        if seq not in self.sent_at or seq in self.answered or (
                self.method == "raw" and got_id != self.ident):
            return
        if kind in (0, 129):
            self.answered.add(seq)
            self.result.rtts_ms.append((time.monotonic() - self.sent_at[seq]) * 1000)
            if self.latest == seq:
                self.answered_latest.set()
        else:
            self.note_error(kind, code, peer[0], mtu)


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
