"""One question to one server, directly (``dig @server``), sent again until answered.

A connected UDP socket sees the ICMP error that tells a rejected query from one lost on
the way; a truncated answer is asked again over TCP.
"""

from __future__ import annotations

import errno
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Optional, Union

from netcheck.lazy import asyncio

# netcheck's own retries: a query is sent again every RETRY_INTERVAL seconds (never more
# often than MIN_INTERVAL) until it is answered or its time is up, so one lost datagram
# costs a fraction of a second instead of a false "unreachable".
RETRY_INTERVAL = 0.2
MIN_INTERVAL = 0.1


@dataclass
class DnsAnswer:
    """One server's answer to one question."""

    server: str
    qname: str
    rdtype: str
    rcode: Optional[str] = None  # NOERROR, NXDOMAIN, SERVFAIL, REFUSED, ... or None
    addresses: list[str] = field(default_factory=list)
    cnames: list[list[str]] = field(default_factory=list)  # [[alias, canonical], ...]
    rtt_ms: Optional[float] = None
    error: Optional[str] = None  # timeout | unreachable | rejected | network | malformed
    sent: int = 1  # datagrams sent for this question (netcheck's retries)
    attempt: Optional[int] = None  # which of them was answered (1 = the first)
    # How long the answer may be cached (RFC 1035 TTL; for an answer without the type asked,
    # RFC 2308's negative TTL from the SOA); None: the answer says nothing about it.
    ttl: Optional[int] = None

    @property
    def answered(self) -> bool:
        return self.rcode is not None

    @property
    def retried(self) -> bool:
        """The answer came only after earlier datagrams went unanswered."""
        return (self.attempt or 1) > 1

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"server": self.server, "qname": self.qname, "type": self.rdtype}
        if self.rcode is not None:
            out["rcode"] = self.rcode
            out["answers"] = self.addresses
        if self.cnames:
            out["cname_chain"] = self.cnames
        if self.rtt_ms is not None:
            out["rtt_ms"] = round(self.rtt_ms, 2)
        if self.error:
            out["error"] = self.error
        if self.sent > 1:
            out["sent"] = self.sent
        if self.attempt and self.attempt > 1:
            out["answered_attempt"] = self.attempt
        return out


async def query(server: str, qname: str, rdtype: str, timeout: float,
                interval: Optional[float] = None, same_id: bool = False) -> DnsAnswer:
    """Ask one server one question, directly (like ``dig @server qname rdtype``).

    With ``interval`` the question is sent again every ``interval`` seconds (each time with
    a new id) until an answer comes or ``timeout`` is up, like ``dig +tries``: an answer to
    any of the datagrams counts, and its round trip is measured from the one it answers.
    With ``same_id`` (for a stub on this host) the resends keep the id, as the system
    resolver's do: a stub (dnsmasq) takes a new id for another client asking the same
    question and waits for its one forwarded query, but forwards a retry again — one lost
    upstream datagram must not leave it silent until netcheck gives up. The round trip is
    then measured from the first send (what a client waits).
    """
    import dns.asyncquery
    import dns.exception
    import dns.flags
    import dns.message

    answer = DnsAnswer(server, qname, rdtype)
    msg = dns.message.make_query(qname, rdtype)
    msg.flags |= dns.flags.RD
    start = time.monotonic()
    exchange = _UdpExchange(server, msg, timeout, interval, same_id)
    try:
        wire, answer.rtt_ms = await exchange.run()
        response = dns.message.from_wire(wire)
        if response.flags & dns.flags.TC:  # truncated: ask again over TCP, as resolvers do
            left = max(0.05, timeout - (time.monotonic() - start))
            msg.id = response.id
            response = await dns.asyncquery.tcp(msg, server.split("%")[0], timeout=left)
    except (dns.exception.Timeout, asyncio.TimeoutError):
        answer.error = "timeout"
        return exchange.counted(answer)
    except (IcmpError, OSError) as exc:
        answer.error = _network_error(exc)
        answer.rtt_ms = (time.monotonic() - start) * 1000
        return exchange.counted(answer)
    except (dns.exception.DNSException, ValueError, EOFError) as exc:
        answer.error = f"malformed: {type(exc).__name__}"
        return exchange.counted(answer)
    exchange.counted(answer)
    _read_response(answer, response)
    return answer


def _network_error(exc: Union[IcmpError, OSError]) -> str:
    """What the network said instead of an answer: an ICMP error, or the socket's errno."""
    if isinstance(exc, IcmpError):
        return exc.describe()
    return {errno.ENETUNREACH: "network unreachable", errno.EHOSTUNREACH: "host unreachable",
            errno.EPERM: "blocked locally", errno.EACCES: "blocked locally",
            }.get(exc.errno or 0, f"error: {exc.strerror or exc}")


def _read_response(answer: DnsAnswer, response: object) -> None:
    """The rcode, the TTL, the CNAME chain and the records of the type asked."""
    import dns.rcode
    import dns.rdatatype

    answer.rcode = dns.rcode.to_text(response.rcode())  # type: ignore[attr-defined]
    want = dns.rdatatype.from_text(answer.rdtype)
    answer.ttl = _ttl(response)
    for rrset in response.answer:  # type: ignore[attr-defined]
        if rrset.rdtype == dns.rdatatype.CNAME:
            for rr in rrset:
                answer.cnames.append([rrset.name.to_text().rstrip("."),
                                      rr.target.to_text().rstrip(".")])
        elif rrset.rdtype == want:
            answer.addresses.extend(rr.to_text() for rr in rrset)


def _ttl(response: object) -> Optional[int]:
    """The smallest TTL of the answer section; with no answer, the SOA's negative TTL
    (RFC 2308: the smaller of the SOA record's own TTL and its MINIMUM field)."""
    import dns.rdatatype

    ttls = [rrset.ttl for rrset in response.answer]  # type: ignore[attr-defined]
    if ttls:
        return min(ttls)
    for rrset in response.authority:  # type: ignore[attr-defined]
        if rrset.rdtype == dns.rdatatype.SOA:
            return min([rrset.ttl, *(rr.minimum for rr in rrset)])
    return None


class IcmpError(Exception):
    """An ICMP error came back instead of an answer."""

    def __init__(self, kind: int, code: int, sender: Optional[str], v6: bool) -> None:
        super().__init__(kind, code, sender)
        self.kind, self.code, self.sender, self.v6 = kind, code, sender, v6

    def describe(self) -> str:
        from netcheck.probes.icmp import ICMP6_NAMES, ICMP_NAMES

        table = ICMP6_NAMES if self.v6 else ICMP_NAMES
        name = table.get((self.kind, self.code), f"ICMP type {self.kind} code {self.code}")
        if name == "port unreachable":
            name = "rejected (port unreachable: nothing listens on 53)"
        return f"{name} from {self.sender}" if self.sender else name


class _UdpExchange:
    """One question over UDP on a connected socket, sent again until answered.

    A connected socket with ``IP_RECVERR`` sees the ICMP error that tells a rejected query
    (port unreachable) from one lost on the way (host unreachable from a router); an ICMP
    error is raised as :class:`IcmpError`.
    """

    def __init__(self, server: str, msg: object, timeout: float,
                 interval: Optional[float], same_id: bool = False) -> None:
        self.server, self.msg, self.timeout = server, msg, timeout
        self.same_id = same_id  # resends are retries of one query (the round trip: from the first)
        self.interval = max(MIN_INTERVAL, interval) if interval else None
        self.sent_at: dict[int, float] = {}  # message id -> when it was sent
        self.order: list[int] = []
        self.answered_id: Optional[int] = None

    def counted(self, answer: DnsAnswer) -> DnsAnswer:
        answer.sent = max(1, len(self.order))
        if self.answered_id is not None:
            answer.attempt = self.order.index(self.answered_id) + 1
        return answer

    def _send(self, sock: socket.socket) -> None:
        msg = self.msg
        if self.order and not self.same_id:
            msg.id = int.from_bytes(os.urandom(2), "big")  # type: ignore[attr-defined]
        self.sent_at.setdefault(msg.id, time.monotonic())  # type: ignore[attr-defined]
        self.order.append(msg.id)  # type: ignore[attr-defined]
        sock.send(msg.to_wire())  # type: ignore[attr-defined]

    async def run(self) -> tuple[bytes, float]:
        """The first answer to any of the datagrams, and its round trip in ms."""
        from netcheck.probes.icmp import IP_RECVERR, IPV6_RECVERR, read_errqueue, wait_readable

        host, _, zone = self.server.partition("%")
        v6 = ":" in host
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            if v6:
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
                sock.connect((host, 53, 0, socket.if_nametoindex(zone) if zone else 0))
            else:
                sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
                sock.connect((host, 53))
            start = time.monotonic()
            deadline = start + self.timeout
            self._send(sock)
            next_send = start + self.interval if self.interval else deadline
            while True:
                now = time.monotonic()
                if now >= deadline:
                    raise asyncio.TimeoutError
                if now >= next_send:
                    try:
                        self._send(sock)
                    except OSError:
                        pass  # a send error now is the ICMP error of an earlier datagram
                    next_send = now + (self.interval or self.timeout)
                    continue
                if not await wait_readable(loop, sock, min(deadline, next_send) - now):
                    continue
                icmp = read_errqueue(sock)
                if icmp is not None:
                    raise IcmpError(icmp[0], icmp[1], icmp[2], v6)
                try:
                    data = sock.recv(65535)
                except (BlockingIOError, InterruptedError):
                    continue
                msg_id = int.from_bytes(data[:2], "big") if len(data) >= 2 else -1
                if msg_id in self.sent_at:
                    self.answered_id = msg_id
                    return data, (time.monotonic() - self.sent_at[msg_id]) * 1000
