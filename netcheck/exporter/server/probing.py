"""The probing logic and the exporter's own metrics (:class:`Exporter`): a ``/probe`` request
checked against the allow-list, its deadline, the two phases (the exchange, then the ladder when
it fails, warns or is slow) within their bounds, the answers, the counters.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import IO, TYPE_CHECKING, Any, Optional

from netcheck import __version__, defaults
from netcheck.exporter.config import DEFAULT_MODULE, Config, Module
from netcheck.exporter.connections import connection_cap
from netcheck.exporter.server.answers import (
    JSON_TYPE,
    TEXT_TYPE,
    ladder_exposition,
    without_local_details,
)
from netcheck.exporter.server.loop import ProbeLoop, exchange_limit
from netcheck.exporter.server.metrics import ExporterMetrics
from netcheck.exporter.server.query import (
    Rejected,
    _decoded,
    _space_encoded,
    _target_param,
    _wants_json,
    outside_text,
    query_parameters,
)
from netcheck.redact import mask_secrets, shown
from netcheck.target import Target, TargetError

if TYPE_CHECKING:
    from netcheck.fastprobe import Exchange
    from netcheck.model import Report

# Prometheus sends its scrape timeout; blackbox keeps this much back for the answer itself.
TIMEOUT_OFFSET = 0.5
MIN_DEADLINE = 0.5
# After the deadline, the handler waits this much more for the runner's own partial report.
GRACE = 0.3
# An exchange still running halfway through the deadline (at least HEDGE_MIN seconds in)
# starts the ladder beside it, when a ladder slot is free at that moment: the ladder keeps
# half the time to explain a target that goes silent, and a slow but healthy target still
# has the whole deadline to answer.
HEDGE_FRACTION = 0.5
HEDGE_MIN = 0.5
# Ladders waiting for a slot beyond this many per slot are told 503 at once: they would only
# wait out their deadline.
QUEUE_PER_SLOT = 4
MAX_REMEMBERED_REQUESTS = 10_000


class Exporter(ExporterMetrics):
    """The probing logic and the exporter's own metrics, apart from any HTTP plumbing.

    ``answer_*`` return ``(status, content type, body)``; :meth:`answer_probe_async` and
    :meth:`probe` run on the exporter's event loop (:attr:`loop`, started on first use),
    :meth:`answer_probe` is the same from any other thread.
    """

    def __init__(self, config: Config, checks: list[Any], *, lang: str = "en",
                 sysroot: str = "/", log: Optional[IO[str]] = None,
                 expose_local_details: bool = False,
                 exchanges: Optional[int] = None) -> None:
        from netcheck.exporter.config import resolve_checks
        from netcheck.hoststate import HostState

        self.config = config
        resolve_checks(config, checks)
        self.checks = list(checks)
        self.lang = lang
        self.sysroot = sysroot
        self.log = log
        self.expose_local_details = expose_local_details
        self.exchanges = exchanges or exchange_limit(config.concurrency,
                                                     connection_cap(config.concurrency))
        self.state = HostState(sysroot)
        self._loop: Optional[ProbeLoop] = None
        self._loop_lock = threading.Lock()
        self._ladder_slots: Optional[asyncio.Semaphore] = None
        self._exchanging = 0
        # Queries already checked, and what they ask for: a scrape sends the same one every
        # interval, and the allow-list and the config do not change while serving.
        self._requests: dict[str, tuple[Target, Module, str]] = {}
        self._laddering = 0
        self._queued = 0
        self._probing = 0
        self._register_metrics(config)

    @property
    def loop(self) -> ProbeLoop:
        """The probes' event loop (started on first use)."""
        with self._loop_lock:
            if self._loop is None:
                self._loop = ProbeLoop()
            return self._loop

    def close(self) -> None:
        """Stop the probes' event loop."""
        with self._loop_lock:
            if self._loop is not None:
                self._loop.stop()
                self._loop = None

    # -- /probe -----------------------------------------------------------------------------

    def check_request(self, query: str) -> tuple[Target, Module, str]:
        """The target, module and format a /probe query asks for; Rejected if it may not run.

        Nothing is sent before this returns: the allow-list is judged on the target as written.
        """
        params = query_parameters(query)
        text = params.get("target", "")
        if not text:
            raise Rejected(400, "target parameter is missing (/probe?target=...)", "bad_request")
        name = params.get("module") or DEFAULT_MODULE
        module = self.config.modules.get(name)
        if module is None:
            raise Rejected(400, f"unknown module {name[:40]!r} (known: "
                           f"{', '.join(sorted(self.config.modules))})", "bad_request")
        fmt = params.get("format") or "prometheus"
        if fmt not in ("prometheus", "json"):
            raise Rejected(400, f"unknown format {fmt[:20]!r} (prometheus or json)", "bad_request")
        try:
            target = self.config.target_for(text, module)
        except TargetError as exc:
            raise Rejected(400, "bad target: " + self._target_problem(text, module, exc),
                           "bad_request") from None
        reason = self.config.why_refused(target)
        if reason is not None:
            raise Rejected(400, reason, "not_allowed")
        return target, module, fmt

    def _target_problem(self, text: str, module: Module, exc: TargetError) -> str:
        """What is wrong with a target, in words that never repeat a secret it holds.

        The parser quotes the text it was given; when the text holds a password (or hides one
        under a second percent-encoding) the message comes from parsing the masked text.
        """
        decoded = _space_encoded(_decoded(text))
        if decoded == _space_encoded(text) and mask_secrets(decoded) == decoded:
            return str(exc)  # no secret in it, none hidden: the parser's words are safe
        masked = mask_secrets(decoded)
        try:
            self.config.target_for(masked, module)
        except TargetError as again:
            return str(again)
        return f"{shown(masked, 200)} is not a valid target as sent"

    def deadline_for(self, module: Module, scrape_timeout: Optional[str]) -> float:
        """The module's deadline (else the exporter's), never past Prometheus' scrape timeout."""
        deadline = float(module.options.get("deadline", self.config.deadline))
        if scrape_timeout:
            try:
                limit = float(scrape_timeout) - TIMEOUT_OFFSET
            except ValueError:
                limit = deadline
            if limit == limit:  # not NaN
                deadline = min(deadline, limit)
        return max(MIN_DEADLINE, deadline)

    # -- the two phases -----------------------------------------------------------------------

    async def probe(self, target: Target, module: Module, deadline: float,
                    since: Optional[float] = None, fmt: str = "prometheus"
                    ) -> tuple[Optional[Report], Optional[Exchange]]:
        """One probe within ``deadline`` seconds of ``since`` (default: now), on the loop.

        ``(report, None)`` when the ladder ran, ``(None, exchange)`` when the exchange alone
        answered. Raises Rejected(503) when the answer cannot be had: too many exchanges under
        way, or no ladder slot frees up within the deadline.
        """
        from netcheck import fastprobe

        start = time.monotonic() if since is None else since
        until = start + deadline
        why = ("format=json shows the whole diagnosis" if fmt == "json" else
               fastprobe.why_no_exchange(target, module.expect, module.only, module.ladder))
        self._probing += 1
        try:
            if why is not None:
                reason = "json" if fmt == "json" else "module"
                laddered = await self._ladder_when_free(target, module, start, until, reason)
                return self._counted(laddered, None, module, start)
            report, ex = await self._two_phases(target, module, start, until)
            return self._counted(report, ex, module, start)
        finally:
            self._probing -= 1

    async def _two_phases(self, target: Target, module: Module, start: float,
                          until: float) -> tuple[Optional[Report], Optional[Exchange]]:
        from netcheck import fastprobe

        if self._exchanging >= self.exchanges:
            raise Rejected(503, f"{self.exchanges} exchanges already under way: overloaded",
                           "busy")
        self._exchanging += 1
        loop = asyncio.get_running_loop()
        end = max(time.monotonic() + 0.05, until - GRACE)
        exchange = loop.create_task(self._exchange(target, module, end))
        ladder: list[Optional[asyncio.Task[Report]]] = [None]
        timed_out = [False]

        def hedge() -> None:  # slow: the ladder beside it, if a slot is free right now
            if not exchange.done():
                ladder[0] = self._ladder_now(target, module, start, until, "slow")

        def stop() -> None:
            timed_out[0] = True
            exchange.cancel()

        # Timers rather than wait_for(): no task and no future more per probe (the loop.time()
        # clock is time.monotonic()).
        timers = [loop.call_at(start + max(HEDGE_MIN, HEDGE_FRACTION * (until - start)), hedge),
                  loop.call_at(end, stop)]
        try:
            ex: Optional[Exchange] = None
            try:
                ex = await exchange
            except asyncio.CancelledError:
                if not timed_out[0]:
                    raise
            if ex is not None and fastprobe.healthy(ex).ok:
                self._exchange_healthy.inc()
                return None, ex
            self._exchange_laddered.inc()
            running = ladder[0]
            if running is None:
                return await self._ladder_when_free(target, module, start, until,
                                                    "exchange"), None
            return await running, None
        finally:
            self._exchanging -= 1
            for timer in timers:
                timer.cancel()
            if not exchange.done():
                exchange.cancel()
            running = ladder[0]
            if running is not None and not running.done():
                running.cancel()  # the exchange answered: the ladder is not needed

    async def _exchange(self, target: Target, module: Module, end: float) -> Exchange:
        from netcheck import fastprobe

        opts = module.options
        left = max(0.05, end - time.monotonic())
        timeout = float(opts.get("timeout", defaults.TIMEOUT))
        return await fastprobe.exchange(
            target, self.state, timeout=min(timeout, left),
            deadline=left, family=opts.get("family"), cafile=opts.get("cafile"),
            cert=opts.get("cert"), key=opts.get("key"), hop_refusal=self.config.hop_refusal)

    def _slots(self) -> asyncio.Semaphore:
        if self._ladder_slots is None:
            self._ladder_slots = asyncio.Semaphore(self.config.concurrency)
        return self._ladder_slots

    def _ladder_now(self, target: Target, module: Module, start: float, until: float,
                    reason: str) -> Optional[asyncio.Task[Report]]:
        """The ladder started at once when a slot is free, else None."""
        slots = self._slots()
        if slots.locked():
            return None
        return asyncio.ensure_future(self._ladder_in_slot(target, module, start, until,
                                                          reason, acquired=False))

    async def _ladder_when_free(self, target: Target, module: Module, start: float,
                                until: float, reason: str) -> Report:
        """The ladder, once a slot frees up within the deadline; else Rejected(503)."""
        slots = self._slots()
        if slots.locked() and self._queued >= QUEUE_PER_SLOT * self.config.concurrency:
            raise Rejected(503, f"{self.config.concurrency} probes already running and "
                           f"{self._queued} waiting: overloaded", "busy")
        self._queued += 1
        try:
            await asyncio.wait_for(slots.acquire(), max(0.0, until - time.monotonic()))
        except asyncio.TimeoutError:
            raise Rejected(503, f"{self.config.concurrency} probes already running; none "
                           f"finished within the deadline ({until - start:g} s)",
                           "busy") from None
        finally:
            self._queued -= 1
        return await self._ladder_in_slot(target, module, start, until, reason, acquired=True)

    async def _ladder_in_slot(self, target: Target, module: Module, start: float,
                              until: float, reason: str, acquired: bool) -> Report:
        slots = self._slots()
        if not acquired:
            await slots.acquire()
        self._laddering += 1
        self.ladders.labels(reason).inc()
        try:
            return await self._diagnose(target, module, start, until)
        finally:
            self._laddering -= 1
            slots.release()

    async def _diagnose(self, target: Target, module: Module, start: float,
                        until: float) -> Report:
        from netcheck.cliutil import build_options
        from netcheck.render.json import error_report
        from netcheck.runner import diagnose

        deadline = until - start  # the runner counts it from ``started``: waiting included
        # Each probe of the ladder waits at most half of what is left (a ladder started late,
        # beside a slow exchange, still has time to judge what its probes met).
        timeout = min(float(module.options.get("timeout", defaults.TIMEOUT)),
                      max(0.2, (until - time.monotonic()) / 2))
        # The module's options (family, TLS files) through the one builder; hop_refusal:
        # every HTTP hop of the run, redirects included, passes the allow-list before any
        # packet goes to it; the expectation is judged by the transport check.
        options = build_options(module.options, timeout=timeout, deadline=deadline,
                                lang=self.lang, sysroot=self.sysroot, started=start,
                                hop_refusal=self.config.hop_refusal, expect=module.expect)
        try:
            facts = await asyncio.wait_for(self.state.facts(),
                                           max(0.05, until - time.monotonic()))
            report = await asyncio.wait_for(
                diagnose(target, options, module.checks or [], facts=facts, shared=self.state),
                max(0.05, until - time.monotonic() + GRACE))
        except asyncio.TimeoutError:
            return error_report(target.input, f"no result within the deadline "
                                              f"({deadline:g} s)")
        except Exception as exc:  # one probe's crash is its own answer, not the exporter's
            return error_report(target.input, f"internal error: {type(exc).__name__}: "
                                              f"{shown(str(exc), 300)}")
        return report

    def _counted(self, report: Optional[Report], ex: Optional[Exchange], module: Module,
                 start: float) -> tuple[Optional[Report], Optional[Exchange]]:
        from netcheck.model import Verdict

        ok = report is None or report.verdict in (Verdict.OK, Verdict.DEGRADED)
        self._outcome[module.name, ok].inc()
        self._duration[module.name].observe(time.monotonic() - start)
        if report is not None:
            self._note_refused_redirect(report)
        return report, ex

    def _note_refused_redirect(self, report: Report) -> None:
        """Count and log a redirect the allow-list stopped (the report says it too)."""
        for outcome in report.checks:
            if outcome.id == "http.response" and \
                    outcome.result.evidence.get("outcome") == "not_allowed":
                self.redirects_refused.inc()
                self._log(f"probe {shown(report.target.get('input') or '', 200)}: "
                          f"{shown(str(outcome.result.evidence.get('detail')), 300)}")

    # -- answers ------------------------------------------------------------------------------

    def answer_probe(self, query: str, scrape_timeout: Optional[str]) -> tuple[int, str, bytes]:
        """(status, content type, body) for ``/probe?query``, from any thread but the loop's."""
        return self.loop.submit(self.answer_probe_async(query, scrape_timeout)).result()

    async def answer_probe_async(self, query: str, scrape_timeout: Optional[str],
                                 since: Optional[float] = None) -> tuple[int, str, bytes]:
        """(status, content type, body) for ``/probe?query``; ``since``: when the request
        came in (its deadline counts from then)."""
        from netcheck.render.prometheus import content_type

        try:
            request = self._requests.get(query)
            if request is None:
                request = self.check_request(query)
                if len(self._requests) >= MAX_REMEMBERED_REQUESTS:
                    self._requests.clear()
                self._requests[query] = request
            target, module, fmt = request
            report, ex = await self.probe(target, module,
                                          self.deadline_for(module, scrape_timeout), since, fmt)
        except Rejected as exc:
            self.rejections.labels(exc.kind).inc()
            reason = shown(exc.reason, 400)
            shown_target = outside_text(_target_param(query))
            self._log(f"refused /probe target={shown_target or '(none)'}: {reason}")
            if _wants_json(query):
                from netcheck.render.json import error_document

                doc = error_document(shown_target, reason)
                return exc.status, JSON_TYPE, (json.dumps(doc, indent=2) + "\n").encode()
            return exc.status, TEXT_TYPE, (reason + "\n").encode()
        if ex is not None:
            from netcheck import fastprobe

            return 200, content_type(), fastprobe.exposition(ex).encode("utf-8")
        assert report is not None
        if fmt == "json":
            doc = report.to_json()
            if not self.expose_local_details:
                doc = without_local_details(doc)
            body = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
            return 200, JSON_TYPE, body.encode("utf-8")
        return 200, content_type(), ladder_exposition(report).encode("utf-8")

    def answer_index(self) -> tuple[int, str, bytes]:
        modules = ", ".join(sorted(self.config.modules))
        text = (f"netcheck {__version__} exporter\n\n"
                "/probe?target=TARGET[&module=NAME][&format=json]  one diagnosis as metrics\n"
                "/metrics                                          the exporter's own metrics\n\n"
                f"modules: {modules}\nallowed: {self.config.allow.describe()}"
                f" (+{len(self.config.targets)} targets named in the config)\n")
        return 200, TEXT_TYPE, text.encode()

    def _log(self, message: str) -> None:
        if self.log is not None:
            try:
                self.log.write(f"netcheck serve: {message}\n")
                self.log.flush()
            except (OSError, ValueError):
                pass
