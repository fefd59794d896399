"""The light sweep: ``netcheck batch --only transport.tcp`` over many addresses, batched.

``--only transport.tcp`` is a connect sweep, nmap -sT's job. Through the ladder each target
pays for a whole diagnosis' setup to send one SYN: a Context, a route lookup in a thread of
its own, the transport check's view of the layers below it. Here, for a target written as an
address, the transport check's connect probe runs batched (:class:`Connects`: the probe's
steps and classification, every socket of the sweep in one epoll set that the batch's event
loop watches as one reader; :class:`~netcheck.batch.driver.Driver` starts them from callbacks,
within the batch's concurrency and output window, no task a target), and the route
lookups that name each target's egress interface go to the kernel in rounds, one netlink
socket a round, asked from the event loop itself (:class:`Routes`: a thread would cost more
than the lookups, the loop and it taking turns at the interpreter lock).

A completed handshake is judged as the transport check judges it, by its own functions:
:func:`~netcheck.checks.transport.judge_connects`, then
:func:`~netcheck.checks.transport.judge_expectation`, with the same evidence. For one address
nothing else the check reads can change that judgement: its filters of the addresses (the
families judged below, those this host uses) keep the one address whatever they find, and a
local block is looked for only when the handshake failed. tests/unit/test_batch_sweep.py
holds the two side by side.

Anything else — a connect refused, rejected, stopped by this host, or unanswered for the
quarter second after which the check's own probe would try again — needs what the check
reads around it (pings, this host's firewall rules and addresses): that target gets the
check itself, as without the sweep, and its connect is made again. So do names, and a target
of a family ``-4``/``-6`` leaves out.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import heapq
import select
import socket
import time
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from netcheck import __version__, i18n
from netcheck.checks.transport import judge_connects, judge_expectation
from netcheck.model import CheckOutcome, Report, passed
from netcheck.probes import shared, tcp
from netcheck.runner import DEADLINE_MARGIN, choose_root_cause, verdict_of
from netcheck.server.handshake import kernel_rtt_ms
from netcheck.target import is_ipv4

if TYPE_CHECKING:
    from netcheck.batch.profile import Entry
    from netcheck.facts import RouteLookup
    from netcheck.probes.tcp import TcpResult
    from netcheck.registry import Check
    from netcheck.target import Target

CHECK_ID = "transport.tcp"
# Route lookups asked for in one netlink round (about 15 us each, the loop waits for them:
# half a millisecond per 32 connects finished): the connects finish
# together, so a batch holds about as many as run at once.
ROUTE_BATCH = 512


def applies(checks: Sequence[Check]) -> Optional[Check]:
    """The transport check when it is all that runs (``--only transport.tcp``), else None."""
    if len(checks) == 1 and checks[0].id == CHECK_ID:
        return checks[0]
    return None


class Routes:
    """Route lookups gathered from the workers and asked for in batches.

    ``lookup(address)`` returns a future; the first one of a round schedules the round at
    the loop's next turn, so every connect that finished on this turn shares it.
    """

    def __init__(self, names: dict[int, str]) -> None:
        self.names = names
        self.pending: dict[str, list[Callable[[Optional[RouteLookup]], None]]] = {}
        self.scheduled = False

    def ask(self, address: str, answer: Callable[[Optional[RouteLookup]], None]) -> None:
        """``answer(lookup)`` once the round that asks for ``address`` is back (None: no
        egress interface to name)."""
        self.pending.setdefault(address, []).append(answer)
        if not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_soon(self._round)

    def lookup(self, address: str) -> asyncio.Future[Optional[RouteLookup]]:
        """The lookup for ``address`` as a future (one target at a time: :meth:`Sweep.report`)."""
        future: asyncio.Future[Optional[RouteLookup]] = \
            asyncio.get_running_loop().create_future()
        self.ask(address, functools.partial(_settle, future))
        return future

    def _round(self) -> None:
        self.scheduled = False
        while self.pending:
            batch = dict(list(self.pending.items())[:ROUTE_BATCH])
            for address in batch:
                del self.pending[address]
            self._ask(batch)

    def _ask(self, batch: dict[str, list[Callable[[Optional[RouteLookup]], None]]]) -> None:
        from netcheck.facts import route_get

        try:
            found: list[Any] = route_get(list(batch), None, self.names)
        except Exception:  # no egress interface to name: the report says null
            found = []
        by_address = {lk.destination: lk for lk in found}
        for address, answers in batch.items():
            for answer in answers:
                answer(by_address.get(address))


class Sweep:
    """What the sweep's targets share: the check, the host's facts, the route rounds."""

    def __init__(self, check: Check, state: Any, facts: Any = None) -> None:
        self.check = check
        self.state = state  # netcheck.hoststate.HostState
        self.facts = facts
        self.routes: Optional[Routes] = None
        self.connects: Optional[Connects] = None

    async def host_facts(self) -> Any:
        return self.facts if self.facts is not None else await self.state.facts()

    def close(self) -> None:
        """Ends the connects still waiting (an interrupted run) and frees the epoll set."""
        if self.connects is not None:
            self.connects.close()
            self.connects = None

    def address(self, entry: Entry, family: Optional[int]) -> Optional[str]:
        """The address the sweep connects to, or None when the target needs the check."""
        target = entry.target
        if target is None or not target.port:
            return None
        if is_ipv4(target.host):  # the common case, without parsing the address again
            return target.host if family in (None, 4) else None
        ip = target.ip
        if ip is None or (family is not None and ip.version != family):
            return None
        return target.host

    async def report(self, entry: Entry, address: str, options: Any) -> Optional[Report]:
        """One entry's report when its connect completed the handshake, else None (the
        check must run: see the module's docstring). A batch goes through
        :class:`~netcheck.batch.driver.Driver`, which does the same from callbacks; this is
        the one-target form the tests hold beside the check's own report."""
        assert entry.target is not None
        started = utc_now()
        t0 = time.monotonic()
        timeout = max(0.05, min(options.timeout, options.deadline - DEADLINE_MARGIN))
        if self.connects is None:
            self.connects = Connects()
        result = await self.connects.connect(address, entry.target.port, timeout)
        if result is None:
            return None
        facts = await self.host_facts()
        if self.routes is None:
            self.routes = Routes({lk.index: lk.name for lk in facts.links})
        lookup = await self.routes.lookup(address)
        return self.judged(entry, options, result, facts, lookup, started, t0)

    def judged(self, entry: Entry, options: Any, result: TcpResult, facts: Any,
               lookup: Optional[RouteLookup], started: str, t0: float) -> Report:
        """The report of a completed handshake, judged by the check's own functions."""
        assert entry.target is not None
        with i18n.language(options.lang):
            outcome = connect_outcome(self.check, entry.target, result, options.expect,
                                      (time.monotonic() - t0) * 1000)
        return build_report(entry.target, outcome, facts, lookup, started, t0,
                            options.request_id)


class Connects:
    """The transport check's connect probe (:func:`netcheck.probes.tcp.connect`), batched:
    every socket of the sweep in one epoll set, which the event loop watches as one reader,
    and one timer for the earliest of their deadlines, instead of a task, two futures and
    two timers per connect.

    Each connect goes as the probe's does: ``IP_RECVERR`` set, the handshake timed, then the
    new connection watched for a few round trips (``watch_window`` of the kernel's RTT, at
    least ``WATCH_MIN_S``) and told apart as the probe tells it: the server spoke, closed,
    reset, or stayed quiet. :meth:`connect`'s answer is the probe's TcpResult for a completed
    handshake, and None for anything else — an error, an answer other than a SYN-ACK, or no
    answer within the quarter second after which the check's own probe would start another
    connect (``shared.TCP_STAGGER``): all of that the check judges with its own probe.
    """

    def __init__(self) -> None:
        self.epoll = select.epoll()
        self.pending: dict[int, _Connect] = {}
        self.deadlines: list[tuple[float, int, int]] = []  # (when, sequence, fd)
        self.sequence = 0
        self.timer: Optional[asyncio.TimerHandle] = None
        self.timer_at = float("inf")
        self.loop: Optional[asyncio.AbstractEventLoop] = None

    def connect(self, address: str, port: int, timeout: float
                ) -> asyncio.Future[Optional[TcpResult]]:
        """The connect's answer as a future (see :meth:`start`)."""
        future: asyncio.Future[Optional[TcpResult]] = \
            asyncio.get_running_loop().create_future()
        self.start(address, port, timeout, functools.partial(_settle, future))
        return future

    def start(self, address: str, port: int, timeout: float,
              done: Callable[[Optional[TcpResult]], None]) -> None:
        """Start a connect; ``done(result)`` gets the class's answer (called at once when
        the connect cannot even start)."""
        loop = asyncio.get_running_loop()
        if self.loop is None:
            self.loop = loop
            loop.add_reader(self.epoll.fileno(), self._events)
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            done(None)
            return
        start = time.monotonic()
        try:
            sock.setblocking(False)
            if family == socket.AF_INET:
                sock.setsockopt(socket.IPPROTO_IP, tcp.IP_RECVERR, 1)
            else:
                sock.setsockopt(socket.IPPROTO_IPV6, tcp.IPV6_RECVERR, 1)
            rc = sock.connect_ex(tcp._sockaddr(address, port))
        except OSError:
            rc = -1
        if rc not in (0, errno.EINPROGRESS):  # refused before a packet left: the check's
            sock.close()
            done(None)
            return
        fd = sock.fileno()
        self.pending[fd] = _Connect(sock, done, tcp.TcpResult(address, port, "timeout"),
                                    start, timeout)
        self.epoll.register(fd, select.EPOLLOUT)
        self._at(start + min(timeout, shared.TCP_STAGGER), fd)

    def _at(self, when: float, fd: int) -> None:
        self.sequence += 1
        heapq.heappush(self.deadlines, (when, self.sequence, fd))
        self.pending[fd].until = when
        if when < self.timer_at - 0.001 and self.loop is not None:
            if self.timer is not None:
                self.timer.cancel()
            self.timer_at = when
            delay = when - time.monotonic()
            self.timer = self.loop.call_later(max(0.0, delay), self._expire)

    def _events(self) -> None:
        for fd, _mask in self.epoll.poll(0):
            c = self.pending.get(fd)
            if c is not None:
                self._ready(fd, c)

    def _ready(self, fd: int, c: _Connect) -> None:
        sock, result = c.sock, c.result
        if not c.open:
            rc = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            now = time.monotonic()
            if rc != 0:
                result.rtt_ms = (now - c.start) * 1000
                result.errno = errno.errorcode.get(rc, str(rc))
                tcp._classify_error(sock, rc, result)  # a reset after the handshake stays
                self._finish(fd, c, result if result.handshake else None)
                return
            c.open = True
            result.state = "open"
            result.rtt_ms = (now - c.start) * 1000
            try:
                result.local = sock.getsockname()[0]
            except OSError:
                pass
            kernel = kernel_rtt_ms(sock)
            rtt = min(result.rtt_ms, kernel) if kernel else result.rtt_ms
            window = tcp.watch_window(rtt, c.timeout - (now - c.start))
            if window <= 0:
                self._finish(fd, c, result)
                return
            c.watch_start = now
            self.epoll.modify(fd, select.EPOLLIN)
            self._at(now + window, fd)
            return
        result.watched_ms = (time.monotonic() - c.watch_start) * 1000
        tcp.read_after(sock, result)
        self._finish(fd, c, result)

    def _expire(self) -> None:
        self.timer, self.timer_at = None, float("inf")
        now = time.monotonic()
        while self.deadlines and self.deadlines[0][0] <= now:
            when, _seq, fd = heapq.heappop(self.deadlines)
            c = self.pending.get(fd)
            if c is None or c.until != when:
                continue  # finished, or a later deadline replaced this one
            if c.open:  # the watch ended with nothing to read
                c.result.watched_ms = (now - c.watch_start) * 1000
                c.result.after = "quiet"
                self._finish(fd, c, c.result)
            else:  # no answer yet: the check's probe would start another connect
                self._finish(fd, c, None)
        if self.deadlines:  # the earliest left (one finished since may still be there)
            self._rearm(self.deadlines[0][0])

    def _rearm(self, when: float) -> None:
        if self.loop is None:
            return
        self.timer_at = when
        self.timer = self.loop.call_later(max(0.0, when - time.monotonic()), self._expire)

    def _finish(self, fd: int, c: _Connect, result: Optional[TcpResult]) -> None:
        del self.pending[fd]
        try:
            self.epoll.unregister(fd)
        except OSError:
            pass
        c.sock.close()
        c.done(result)

    def close(self) -> None:
        if self.loop is not None:
            self.loop.remove_reader(self.epoll.fileno())
        if self.timer is not None:
            self.timer.cancel()
        for fd, c in list(self.pending.items()):
            self._finish(fd, c, None)
        self.epoll.close()


class _Connect:
    __slots__ = ("sock", "done", "result", "start", "timeout", "open", "watch_start",
                 "until")

    def __init__(self, sock: socket.socket, done: Callable[[Optional[TcpResult]], None],
                 result: TcpResult, start: float, timeout: float) -> None:
        self.sock = sock
        self.done = done
        self.result = result
        self.start = start
        self.timeout = timeout
        self.open = False
        self.watch_start = 0.0
        self.until = 0.0


def connect_outcome(check: Check, target: Target, result: TcpResult, expect: str,
                    ms: float) -> CheckOutcome:
    """The transport check's outcome for one address whose handshake completed, in its
    words and with its evidence (its judgement: judge_connects, then judge_expectation)."""
    assert result.handshake
    verdict = judge_connects([result], {result.address: None})
    evidence: dict[str, Any] = {
        "port": target.port, "connects": [result.to_json()], "working": [result.address],
        "failing": []}
    evidence["rtt_ms"] = round(result.rtt_ms or 0, 3)
    judged = judge_expectation(passed(verdict.summary, **evidence), expect, target)
    return CheckOutcome(check.id, check.layer, check.title, judged, ms)


def build_report(target: Target, outcome: CheckOutcome, facts: Any,
                 lookup: Optional[RouteLookup], started: str, t0: float,
                 request_id: Optional[str] = None) -> Report:
    """The netcheck/1 report of a ladder of one check, as the runner builds it."""
    outcomes = [outcome]
    egress = lookup.ifname if lookup is not None and lookup.oif is not None else None
    return Report(
        mode="diagnose", target=target.to_json([target.host]),
        host={"hostname": facts.hostname, "privileged": facts.privileged,
              "egress_interface": egress},
        verdict=verdict_of(outcomes), root_cause=choose_root_cause(outcomes), checks=outcomes,
        started_at=started,
        duration_ms=(time.monotonic() - t0) * 1000, version=__version__,
        request_id=request_id if target.scheme in ("http", "https") else None)


_clock: list[Any] = [None, ""]  # the last second asked for, and its timestamp


def utc_now() -> str:
    """The report's ``started_at`` (the runner's format), written once a second."""
    now = int(time.time())
    if _clock[0] != now:
        _clock[0] = now
        _clock[1] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    return str(_clock[1])


def _settle(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)
