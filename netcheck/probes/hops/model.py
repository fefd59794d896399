"""What a trace is made of: the methods, a probe and what it met, a hop counted like a line
of mtr, a trace and what it could not do (:class:`Limit`)."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from netcheck.probes import icmp

# The methods: what one probe is. The flow's own protocol and port, or an echo request.
TCP, UDP_DNS, UDP, ICMP, ICMP_DF = "tcp-syn", "udp-dns", "udp", "icmp-echo", "icmp-echo-df"
METHODS = (TCP, UDP_DNS, UDP, ICMP, ICMP_DF)
# Classic traceroute's first UDP port: nothing listens there, so the target answers
# "port unreachable" (the distance to a target that drops ping).
UDP_BASE_PORT = 33434

# What a trace could not do (Trace.limits): reason codes; the words are where a trace is shown
# (netcheck.render.hops.limit_text).
ECHO_NEEDS_PRIVILEGE = "echo_needs_privilege"  # no ICMP datagram socket and no raw socket
RESET_TTL_NEEDS_ROOT = "reset_ttl_needs_root"  # a reset's arrival TTL takes a raw socket
SEND_FAILED = "send_failed"  # some probes could not be sent (detail: the errno name)



@dataclass(frozen=True)
class Limit:
    """One thing a trace could not do, and why (a code; ``detail``: what the kernel said)."""

    code: str
    detail: Optional[str] = None


@dataclass
class Probe:
    """What one TTL-limited probe met."""

    ttl: int
    # hop: a router said "time exceeded" | reached: the target answered | unreachable: an
    # ICMP error other than time exceeded (from a router, or the target) | timeout | error
    state: str = "timeout"
    address: Optional[str] = None  # who answered
    rtt_ms: Optional[float] = None
    answer: Optional[str] = None  # syn-ack | rst | echo-reply | dns | udp | the ICMP error's name
    icmp_type: Optional[int] = None
    icmp_code: Optional[int] = None
    reply_ttl: Optional[int] = None  # the TTL the target's answer arrived with (root only)
    error: Optional[str] = None
    local_port: Optional[int] = None

    @property
    def answered(self) -> bool:
        """Something came back for this probe."""
        return self.state in ("hop", "reached", "unreachable")


@dataclass
class Hop:
    """Every probe sent with one TTL, counted like a line of mtr."""

    ttl: int
    probes: list[Probe] = field(default_factory=list)
    rate_limited: bool = False  # answers missing while a later hop answers every time

    @property
    def sent(self) -> int:
        return len(self.probes)

    @property
    def received(self) -> int:
        return sum(1 for p in self.probes if p.answered)

    @property
    def addresses(self) -> list[str]:
        """Who answered at this hop, first answer first (several: load balancing)."""
        return list(dict.fromkeys(p.address for p in self.probes if p.address))

    @property
    def rtts_ms(self) -> list[float]:
        return [p.rtt_ms for p in self.probes if p.answered and p.rtt_ms is not None]

    def to_json(self) -> dict[str, Any]:
        stats = icmp.burst_stats(self.sent, self.rtts_ms)
        out: dict[str, Any] = {"hop": self.ttl, "addresses": self.addresses, **stats}
        answers = sorted({p.answer for p in self.probes if p.answer})
        if answers:
            out["answers"] = answers
        if self.rate_limited:
            out["rate_limited"] = True
        ttls = sorted({p.reply_ttl for p in self.probes if p.reply_ttl is not None})
        if ttls:
            out["reply_ttl"] = ttls
        return out


@dataclass
class Trace:
    """The probes of one method to one address, hop by hop."""

    address: str
    method: str
    port: Optional[int] = None
    hops: list[Hop] = field(default_factory=list)
    limits: list[Limit] = field(default_factory=list)  # what could not be done, and why
    duration_ms: float = 0.0
    complete: bool = True  # False: the budget ended before every round was sent
    wait_ms: float = 0.0  # how long each probe waited for its answer

    def hop(self, ttl: int) -> Optional[Hop]:
        return next((h for h in self.hops if h.ttl == ttl), None)

    @property
    def reached(self) -> Optional[Probe]:
        """The target's first answer at the lowest TTL (None: it never answered)."""
        found = [p for h in self.hops for p in h.probes if p.state == "reached"]
        return min(found, key=lambda p: (p.ttl, p.rtt_ms or 0.0)) if found else None

    @property
    def stopped_by(self) -> Optional[Probe]:
        """An ICMP error other than "time exceeded" from a router (not the target)."""
        found = [p for h in self.hops for p in h.probes if p.state == "unreachable"]
        return min(found, key=lambda p: p.ttl) if found else None

    @property
    def last_answering(self) -> Optional[Hop]:
        """The farthest hop a router answered from (time exceeded)."""
        found = [h for h in self.hops if any(p.state == "hop" for p in h.probes)]
        return max(found, key=lambda h: h.ttl) if found else None

    @property
    def measured(self) -> bool:
        """Probes went out and were waited for."""
        return any(h.probes for h in self.hops)

    def to_json(self, limit_text: Callable[[Limit], str] = lambda limit: limit.code
                ) -> dict[str, Any]:
        """The trace as JSON; ``limit_text`` says each limit (its code unless given)."""
        reached = self.reached
        out: dict[str, Any] = {"address": self.address, "method": self.method,
                               "hops": [h.to_json() for h in self.hops if h.probes],
                               "reached": None, "duration_ms": round(self.duration_ms, 1),
                               "wait_ms": round(self.wait_ms, 1)}
        if self.port is not None:
            out["port"] = self.port
        if reached is not None:
            out["reached"] = {"hop": reached.ttl, "answer": reached.answer,
                              "address": reached.address}
            if reached.reply_ttl is not None:
                out["reached"]["reply_ttl"] = reached.reply_ttl
        if self.limits:
            out["limits"] = [limit_text(limit) for limit in self.limits]
        if not self.complete:
            out["complete"] = False
        return out


def family_of(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET
