"""Where packets stop: the flow itself, sent again with growing TTL (tracepath and mtr for one
flow), and who answers at each hop.

A traceroute made of ICMP or of UDP to high ports proves little about a web server whose port
is silent: firewalls treat those packets differently. So the probes here are the flow's own —
a TCP SYN to the real port, a DNS query to the resolver's port 53, an echo request (full-size
with Don't-Fragment for a path-MTU black hole) — each with the TTL (hop limit) of one hop.
A router where the TTL runs out answers ICMP "time exceeded"; the target answers as it
answers the flow (SYN-ACK, RST, a DNS answer, an echo reply); silence is silence.

Nothing here needs root, as tracepath shows: every probe has its own socket with
``IP_RECVERR`` (``IPV6_RECVERR``), so the kernel queues the ICMP error the probe met, with the
router that sent it. For TCP that is a non-blocking connect() with ``IP_TTL`` set; the error
aborts the connect in SYN-SENT and is read from the error queue. ICMP echo uses the
unprivileged ICMP datagram socket where ``ping_group_range`` allows it, a raw socket with
root. With root only, a raw TCP socket also reads the TTL a reset arrives with, which tells
how far away its sender is (a reset a firewall forges 1 hop away arrives with a TTL the
server's own packets never have).

A router that rate-limits its ICMP errors answers some probes and not others: every hop gets
a probe per round, rounds are spaced out so that limits refill, and a hop whose answers are
missing while later hops answer is never where the packets stop. Probes measure: what the
traces mean, in words, is :func:`netcheck.locate.judge`'s.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from netcheck.lazy import asyncio
from netcheck.probes import icmp
from netcheck.probes.icmp import IP_RECVERR, IPV6_RECVERR, read_errqueue, wait_ready

# The methods: what one probe is. The flow's own protocol and port, or an echo request.
TCP, UDP_DNS, UDP, ICMP, ICMP_DF = "tcp-syn", "udp-dns", "udp", "icmp-echo", "icmp-echo-df"
METHODS = (TCP, UDP_DNS, UDP, ICMP, ICMP_DF)
# Classic traceroute's first UDP port: nothing listens there, so the target answers
# "port unreachable" (the distance to a target that drops ping).
UDP_BASE_PORT = 33434
TIME_EXCEEDED = {socket.AF_INET: (11,), socket.AF_INET6: (3,)}
# Seconds between two probes of the first round (to the next TTL): the target's answer stops
# the round before probes that would only reach it again are sent.
STAGGER = 0.004
# A silent hop this many TTLs past the last one that answered still gets probes each round:
# a router that limits its ICMP errors may answer the next round.
TAIL = 2
# A probe is sent only if it can be waited for at least this long before the budget ends.
MIN_WAIT = 0.15
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
                               "reached": None, "duration_ms": round(self.duration_ms, 1)}
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


class _ReplyTtls:
    """With root: the TTL each TCP answer from address:port arrives with, by our local port.

    A raw TCP socket sees a copy of every TCP segment the host receives; only the answers of
    the probed flow are kept. IPv4 carries the TTL in the header a raw socket reads; IPv6
    hands the hop limit over as ancillary data (IPV6_RECVHOPLIMIT).
    """

    def __init__(self, address: str, port: int) -> None:
        self.address = address.split("%")[0]
        self.port = port
        self.family = family_of(address)
        self.seen: dict[int, int] = {}
        self.sock: Optional[socket.socket] = None

    def start(self, loop: asyncio.AbstractEventLoop) -> bool:
        try:
            sock = socket.socket(self.family, socket.SOCK_RAW, socket.IPPROTO_TCP)
        except OSError:
            return False
        sock.setblocking(False)
        if self.family == socket.AF_INET6:
            try:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
            except OSError:
                sock.close()
                return False
        self.sock = sock
        loop.add_reader(sock.fileno(), self._read)
        return True

    def _read(self) -> None:
        assert self.sock is not None
        for _attempt in range(64):
            try:
                data, anc, _flags, peer = self.sock.recvmsg(128, 64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if peer[0].split("%")[0] != self.address:
                continue
            ttl: Optional[int] = None
            if self.family == socket.AF_INET:
                if len(data) < 20:
                    continue
                ttl = data[8]
                data = data[(data[0] & 0x0F) * 4:]
            else:
                for level, kind, value in anc:
                    if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_HOPLIMIT:
                        ttl = struct.unpack("=i", value[:4])[0]
            if ttl is None or len(data) < 14:
                continue
            sport, dport = struct.unpack("!HH", data[:4])
            if sport == self.port:
                self.seen.setdefault(dport, ttl)

    def stop(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.sock is not None:
            loop.remove_reader(self.sock.fileno())
            self._read()
            self.sock.close()
            self.sock = None


def hops_away(reply_ttl: int) -> int:
    """How many hops away a packet's sender is, from the TTL it arrived with (the usual
    initial TTLs are 64, 128 and 255; a sender on this host's link is 1 hop away)."""
    initial = next((x for x in (32, 64, 128, 255) if reply_ttl <= x), 255)
    return initial - reply_ttl + 1


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
    result = Trace(address, method, port)
    if method in (ICMP, ICMP_DF) and icmp.available_method(family) not in ("dgram", "raw"):
        result.limits.append(Limit(ECHO_NEEDS_PRIVILEGE))
        return result
    payload = dns_query(qname) if method == UDP_DNS else b"netcheck"
    dport = port if port is not None else (53 if method == UDP_DNS else UDP_BASE_PORT)
    replies: Optional[_ReplyTtls] = None
    if method == TCP and privileged:
        replies = _ReplyTtls(address, dport)
        if not replies.start(loop):
            replies = None
    if method == TCP and replies is None:
        result.limits.append(Limit(RESET_TTL_NEEDS_ROOT))
    tasks: list[asyncio.Task[Probe]] = []
    by_ttl: dict[int, list[asyncio.Task[Probe]]] = {}

    def send(ttl: int) -> bool:
        left = end - time.monotonic()
        if left < MIN_WAIT:
            return False
        w = min(wait, left)
        if method == TCP:
            coro = tcp_probe(address, dport, ttl, w)
        elif method in (UDP, UDP_DNS):
            coro = udp_probe(address, dport, ttl, w, payload)
        else:
            coro = icmp_probe(address, ttl, w, size, df=method == ICMP_DF)
        task = asyncio.ensure_future(coro)
        tasks.append(task)
        by_ttl.setdefault(ttl, []).append(task)
        return True

    def done_probes() -> list[Probe]:
        return [t.result() for t in tasks if t.done() and not t.cancelled()]

    def reached_ttl() -> Optional[int]:
        ttls = [p.ttl for p in done_probes() if p.state == "reached"]
        return min(ttls) if ttls else None

    def horizon() -> int:
        got = reached_ttl()
        if got is not None:
            return got
        answered = [p.ttl for p in done_probes() if p.answered]
        return min(max_hops, (max(answered) if answered else 0) + TAIL)

    def settled_below(limit: int) -> bool:
        return all(any(t.done() for t in by_ttl.get(ttl, [])) for ttl in range(1, limit))

    try:
        # Round 1: one TTL after the other, until the target answers.
        for ttl in range(1, max_hops + 1):
            got = reached_ttl()
            if got is not None and ttl > got:
                break
            if not send(ttl):
                result.complete = False
                break
            await asyncio.sleep(STAGGER)
        for _round in range(1, rounds):
            next_round = time.monotonic() + interval
            while time.monotonic() < next_round:
                got = reached_ttl()
                if early and got is not None and settled_below(got):
                    break
                await asyncio.sleep(min(0.02, max(0.0, next_round - time.monotonic())))
            got = reached_ttl()
            if early and got is not None and settled_below(got):
                break
            sent_all = True
            for ttl in range(1, horizon() + 1):
                sent_all = send(ttl) and sent_all
            if not sent_all:
                result.complete = False
                break
        # Wait for the probes in flight (each one ends by itself within its wait).
        while tasks and not all(t.done() for t in tasks):
            got = reached_ttl()
            if early and got is not None and settled_below(got) and all(
                    t.done() for ttl, ts in by_ttl.items() if ttl <= got for t in ts):
                break
            await asyncio.wait([t for t in tasks if not t.done()], timeout=0.02)
    finally:
        for t in tasks:
            if not t.done():
                t.cancel()
        if replies is not None:
            replies.stop(loop)
        result.duration_ms = (time.monotonic() - start) * 1000
    finished = [t.result() for t in tasks if t.done() and not t.cancelled()]
    if replies is not None:
        for p in finished:
            if p.state == "reached" and p.local_port in replies.seen:
                p.reply_ttl = replies.seen[p.local_port]
    top = max((p.ttl for p in finished), default=0)
    got = reached_ttl()
    if got is not None:
        top = got
    result.hops = [Hop(ttl, [p for p in finished if p.ttl == ttl]) for ttl in range(1, top + 1)]
    for p in finished:
        if p.state == "error" and p.error:
            note = Limit(SEND_FAILED, p.error)
            if note not in result.limits:
                result.limits.append(note)
    mark_rate_limited(result)
    return result


def mark_rate_limited(result: Trace) -> None:
    """Hops that lost answers while a later hop answered more: they limit their ICMP errors
    (or ignore TTL-expired probes), which is no loss of the flow (mtr's classic trap)."""
    hops = [h for h in result.hops if h.probes]
    for i, hop in enumerate(hops):
        later = [h for h in hops[i + 1:] if h.received]
        if hop.received < hop.sent and later and any(
                h.received / h.sent > hop.received / hop.sent for h in later):
            hop.rate_limited = True
