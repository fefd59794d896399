"""A trace: probes at every TTL from 1, round after round within a budget, spaced out so that
rate-limited routers refill, stopping once the target answered and every hop before it was heard
from; then the probes counted hop by hop."""

from __future__ import annotations

import time
from typing import Optional

from netcheck.lazy import asyncio
from netcheck.probes import icmp
from netcheck.probes.hops.model import (
    ECHO_NEEDS_PRIVILEGE,
    ICMP,
    ICMP_DF,
    RESET_TTL_NEEDS_ROOT,
    SEND_FAILED,
    TCP,
    UDP,
    UDP_BASE_PORT,
    UDP_DNS,
    Hop,
    Limit,
    Probe,
    Trace,
    family_of,
)
from netcheck.probes.hops.probe import dns_query, icmp_probe, tcp_probe, udp_probe
from netcheck.probes.hops.replyttl import _ReplyTtls

# Seconds between two probes of the first round (to the next TTL): the target's answer stops
# the round before probes that would only reach it again are sent.
STAGGER = 0.004
# A silent hop this many TTLs past the last one that answered still gets probes each round:
# a router that limits its ICMP errors may answer the next round.
TAIL = 2
# A probe is sent only if it can be waited for at least this long before the budget ends.
MIN_WAIT = 0.15


async def trace(address: str, method: str, *, port: Optional[int] = None, max_hops: int = 30,
                rounds: int = 3, interval: float = 0.3, wait: float = 1.0, budget: float = 5.0,
                size: int = 56, qname: str = "", privileged: bool = False,
                early: bool = True) -> Trace:
    """Probe ``address`` with ``method`` at every TTL from 1, ``rounds`` times, within ``budget``.

    The first round goes out one TTL every few milliseconds and stops at the TTL the target
    answers from; each later round (``interval`` seconds apart) probes every TTL up to the
    target, or up to two past the last hop that answered. Each probe waits ``wait`` seconds
    for its answer. ``early``: stop once the target answered and every hop before it was
    heard from at least once (what locating needs), not after ``rounds``.
    """
    family = family_of(address)
    loop = asyncio.get_running_loop()
    start = time.monotonic()
    end = start + max(0.0, budget)
    result = Trace(address, method, port, wait_ms=wait * 1000)
    if method in (ICMP, ICMP_DF) and icmp.available_method(family) not in ("dgram", "raw"):
        result.limits.append(Limit(ECHO_NEEDS_PRIVILEGE))
        return result
    payload = dns_query(qname) if method == UDP_DNS else b"netcheck"
    dport = port if port is not None else (53 if method == UDP_DNS else UDP_BASE_PORT)
    replies = _watch_reply_ttls(result, loop, dport, privileged)
    rounds_of = _Rounds(address, method, dport, payload, size, wait, end, max_hops, early)
    try:
        await rounds_of.run(result, rounds, interval)
    finally:
        rounds_of.cancel_pending()
        if replies is not None:
            replies.stop(loop)
        result.duration_ms = (time.monotonic() - start) * 1000
    rounds_of.count(result, replies)
    return result


def _watch_reply_ttls(result: Trace, loop: asyncio.AbstractEventLoop, dport: int,
                      privileged: bool) -> Optional[_ReplyTtls]:
    """For a TCP trace with root: the TTLs its answers arrive with, watched from now on;
    otherwise None (a TCP trace says it could not)."""
    replies: Optional[_ReplyTtls] = None
    if result.method == TCP and privileged:
        replies = _ReplyTtls(result.address, dport)
        if not replies.start(loop):
            replies = None
    if result.method == TCP and replies is None:
        result.limits.append(Limit(RESET_TTL_NEEDS_ROOT))
    return replies


class _Rounds:
    """The probes of one trace in flight, by TTL: sent round by round within the budget's
    ``end``, and what they found so far."""

    def __init__(self, address: str, method: str, dport: int, payload: bytes, size: int,
                 wait: float, end: float, max_hops: int, early: bool) -> None:
        self.address, self.method, self.dport, self.payload = address, method, dport, payload
        self.size, self.wait, self.end, self.max_hops = size, wait, end, max_hops
        self.early = early
        self.tasks: list[asyncio.Task[Probe]] = []
        self.by_ttl: dict[int, list[asyncio.Task[Probe]]] = {}

    def send(self, ttl: int) -> bool:
        """One probe with this TTL (False: too little of the budget is left to wait for it)."""
        left = self.end - time.monotonic()
        if left < MIN_WAIT:
            return False
        w = min(self.wait, left)
        if self.method == TCP:
            coro = tcp_probe(self.address, self.dport, ttl, w)
        elif self.method in (UDP, UDP_DNS):
            coro = udp_probe(self.address, self.dport, ttl, w, self.payload)
        else:
            coro = icmp_probe(self.address, ttl, w, self.size, df=self.method == ICMP_DF)
        task = asyncio.ensure_future(coro)
        self.tasks.append(task)
        self.by_ttl.setdefault(ttl, []).append(task)
        return True

    def done_probes(self) -> list[Probe]:
        return [t.result() for t in self.tasks if t.done() and not t.cancelled()]

    def reached_ttl(self) -> Optional[int]:
        ttls = [p.ttl for p in self.done_probes() if p.state == "reached"]
        return min(ttls) if ttls else None

    def horizon(self) -> int:
        """The last TTL a round probes: the target's, or a little past the last answer."""
        got = self.reached_ttl()
        if got is not None:
            return got
        answered = [p.ttl for p in self.done_probes() if p.answered]
        return min(self.max_hops, (max(answered) if answered else 0) + TAIL)

    def settled_below(self, limit: int) -> bool:
        return all(any(t.done() for t in self.by_ttl.get(ttl, [])) for ttl in range(1, limit))

    def located(self) -> bool:
        """``early`` and enough is known: the target answered, every hop before it settled."""
        got = self.reached_ttl()
        return self.early and got is not None and self.settled_below(got)

    async def run(self, result: Trace, rounds: int, interval: float) -> None:
        """Every round, then the probes in flight; ``result.complete`` False when the budget
        ended a round."""
        # Round 1: one TTL after the other, until the target answers.
        for ttl in range(1, self.max_hops + 1):
            got = self.reached_ttl()
            if got is not None and ttl > got:
                break
            if not self.send(ttl):
                result.complete = False
                break
            await asyncio.sleep(STAGGER)
        for _round in range(1, rounds):
            next_round = time.monotonic() + interval
            while time.monotonic() < next_round:
                if self.located():
                    break
                await asyncio.sleep(min(0.02, max(0.0, next_round - time.monotonic())))
            if self.located():
                break
            sent_all = True
            for ttl in range(1, self.horizon() + 1):
                sent_all = self.send(ttl) and sent_all
            if not sent_all:
                result.complete = False
                break
        await self.wait_in_flight()

    async def wait_in_flight(self) -> None:
        """Wait for the probes in flight (each one ends by itself within its wait), or only
        for those up to the target once it is located."""
        while self.tasks and not all(t.done() for t in self.tasks):
            got = self.reached_ttl()
            if self.located() and got is not None and all(
                    t.done() for ttl, ts in self.by_ttl.items() if ttl <= got for t in ts):
                break
            await asyncio.wait([t for t in self.tasks if not t.done()], timeout=0.02)

    def cancel_pending(self) -> None:
        for t in self.tasks:
            if not t.done():
                t.cancel()

    def count(self, result: Trace, replies: Optional[_ReplyTtls]) -> None:
        """The finished probes into ``result``: hop by hop up to the target, the TTLs answers
        arrived with, the send errors as limits, and the hops that limit their ICMP errors."""
        finished = self.done_probes()
        if replies is not None:
            for p in finished:
                if p.state == "reached" and p.local_port in replies.seen:
                    p.reply_ttl = replies.seen[p.local_port]
        top = max((p.ttl for p in finished), default=0)
        got = self.reached_ttl()
        if got is not None:
            top = got
        result.hops = [Hop(ttl, [p for p in finished if p.ttl == ttl])
                       for ttl in range(1, top + 1)]
        for p in finished:
            if p.state == "error" and p.error:
                note = Limit(SEND_FAILED, p.error)
                if note not in result.limits:
                    result.limits.append(note)
        mark_rate_limited(result)


def mark_rate_limited(result: Trace) -> None:
    """Hops that lost answers while a later hop answered more: they limit their ICMP errors
    (or ignore TTL-expired probes), which is no loss of the flow (mtr's classic trap)."""
    hops = [h for h in result.hops if h.probes]
    for i, hop in enumerate(hops):
        later = [h for h in hops[i + 1:] if h.received]
        if hop.received < hop.sent and later and any(
                h.received / h.sent > hop.received / hop.sent for h in later):
            hop.rate_limited = True
