"""The light sweep's driver: its entries run from callbacks, not a task each.

A target of the sweep is a connect, a route lookup and a report (:mod:`netcheck.batch.sweep`).
Through a task of its own, as a worker runs an entry, it would also pay for a coroutine chain
and three futures: more CPU than its connect and its judgement together, on a sweep of ten
thousand addresses that is CPU-bound. :class:`Driver` keeps the batch's bounds (concurrency,
the output window) and hands every other entry to the check itself.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterator, Optional

from netcheck.batch.sweep import Connects, Routes, Sweep, utc_now
from netcheck.runner import DEADLINE_MARGIN

if TYPE_CHECKING:
    from netcheck.batch.profile import Entry
    from netcheck.facts import RouteLookup
    from netcheck.model import Report
    from netcheck.probes.tcp import TcpResult


class Driver:
    """The sweep's entries run from callbacks, not a task each.

    A target of the sweep is a connect, a route lookup and a report: through a task of its
    own it would also pay for a coroutine chain and three futures, more CPU than its connect
    and judgement together. So the driver starts up to ``limit`` connects (:meth:`Connects.
    start`), asks the route rounds from their callbacks (:meth:`Routes.ask`), and hands each
    report to ``finish``; an entry the sweep does not take (a name, a problem line, a
    connect that did not complete) goes to ``fallback``, a task that runs the check itself,
    within the same ``limit``. ``admitted(index)``: whether an entry may start yet (the
    batch's window for outputs that print in order); ``begin(entry)``: a runnable entry
    starts. :meth:`run` returns once every entry is finished; an exception raised by a
    callback ends it with that exception.
    """

    def __init__(self, sweep: Sweep, entries: Iterator[tuple[int, Entry]], limit: int,
                 options_for: Callable[[Entry], Any],
                 fallback: Callable[[Entry, float], Awaitable[Report]],
                 admitted: Callable[[int], bool], finish: Callable[[int, Entry, Report], None],
                 begin: Optional[Callable[[Entry], None]] = None) -> None:
        self.sweep = sweep
        self.entries = entries
        self.limit = max(1, limit)
        self.options_for = options_for
        self.fallback = fallback
        self.admitted = admitted
        self.finish = finish
        self.begin = begin
        self.in_flight = 0
        self.held: Optional[tuple[int, Entry]] = None
        self.exhausted = False
        self.tasks: set[asyncio.Task[Report]] = set()
        self.ended: Optional[asyncio.Future[None]] = None
        self.facts: Any = None

    async def run(self) -> None:
        """Every entry, each finished once; returns when the last one is."""
        self.facts = await self.sweep.host_facts()
        self.sweep.routes = self.sweep.routes or Routes(
            {lk.index: lk.name for lk in self.facts.links})
        self.sweep.connects = self.sweep.connects or Connects()
        self.ended = asyncio.get_running_loop().create_future()
        self._pump()
        try:
            await self.ended
        finally:
            for task in list(self.tasks):
                task.cancel()

    @property
    def over(self) -> bool:
        return self.ended is None or self.ended.done()

    def _pump(self) -> None:
        """Start entries while there is room; end the run when the last one finished."""
        assert self.ended is not None
        try:
            while self.in_flight < self.limit and not self.over:
                item = self.held or next(self.entries, None)
                self.held = None
                if item is None:
                    self.exhausted = True
                    break
                if not self.admitted(item[0]):
                    self.held = item  # started when an earlier entry finishes
                    break
                self.in_flight += 1
                self._start(*item)
            if self.exhausted and self.in_flight == 0 and not self.over:
                self.ended.set_result(None)
        except Exception as exc:  # handed to run()'s caller
            self._fail(exc)

    def _start(self, index: int, entry: Entry) -> None:
        t0 = time.monotonic()
        if entry.runnable and self.begin is not None:
            self.begin(entry)
        if not entry.runnable or entry.target is None:
            self._fall_back(index, entry, t0)  # a problem line: its unknown report
            return
        options = self.options_for(entry)
        address = self.sweep.address(entry, options.family)
        if address is None:
            self._fall_back(index, entry, t0)
            return
        timeout = max(0.05, min(options.timeout, options.deadline - DEADLINE_MARGIN))
        assert self.sweep.connects is not None
        self.sweep.connects.start(address, entry.target.port, timeout, functools.partial(
            self._connected, index, entry, options, address, utc_now(), t0))

    def _connected(self, index: int, entry: Entry, options: Any, address: str, started: str,
                   t0: float, result: Optional[TcpResult]) -> None:
        if self.over:
            return
        if result is None:
            self._fall_back(index, entry, t0)
            return
        assert self.sweep.routes is not None
        self.sweep.routes.ask(address, functools.partial(
            self._routed, index, entry, options, result, started, t0))

    def _routed(self, index: int, entry: Entry, options: Any, result: TcpResult,
                started: str, t0: float, lookup: Optional[RouteLookup]) -> None:
        if self.over:
            return
        try:
            report = self.sweep.judged(entry, options, result, self.facts, lookup, started, t0)
        except Exception as exc:  # handed to run()'s caller
            self._fail(exc)
            return
        self._complete(index, entry, report)

    def _fall_back(self, index: int, entry: Entry, t0: float) -> None:
        task = asyncio.ensure_future(self.fallback(entry, t0))
        self.tasks.add(task)
        task.add_done_callback(functools.partial(self._fell_back, index, entry))

    def _fell_back(self, index: int, entry: Entry, task: asyncio.Task[Report]) -> None:
        self.tasks.discard(task)
        if self.over or task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._fail(exc)
            return
        self._complete(index, entry, task.result())

    def _complete(self, index: int, entry: Entry, report: Report) -> None:
        self.in_flight -= 1
        try:
            self.finish(index, entry, report)
        except Exception as exc:  # an output that fails (a closed pipe) ends the batch
            self._fail(exc)
            return
        self._pump()

    def _fail(self, exc: BaseException) -> None:
        if self.ended is not None and not self.ended.done():
            self.ended.set_exception(exc)
