"""The exporter's HTTP side: ``/probe`` answers one probe, ``/metrics`` shows the exporter.

As in blackbox_exporter's prober/handler.go, the handler owns everything around the probe:
it checks the request and the allow-list before anything is sent, sets the deadline (the
module's, shortened to Prometheus' scrape timeout, counted from when the request came in, so
time spent waiting is part of it), times the probe and counts the outcome.

A probe has two phases (:meth:`Exporter.probe`). First the exchange alone, as blackbox does
it (:mod:`netcheck.fastprobe`: name, connect, TLS, request): when it works with nothing
worth a warning, the answer is blackbox's metrics with ``probe_success 1`` at once. When it
fails or warns — or the module asks for ``ladder = "always"``, or the request for
``format=json`` — the diagnosis ladder runs (the same one ``netcheck diagnose`` runs) and its
root cause and hint are the answer. Both phases are coroutines on one event loop, with no
thread per request or per probe: exchanges are bounded by the descriptors they may use, the
ladder by ``concurrency`` (a few), so a flood of failing targets queues for the ladder while
healthy ones keep their answers. An exchange still running halfway through the deadline
starts the ladder beside it when a slot is free, so a silent target still gets its whole
diagnosis within the scrape. A request that cannot be answered in time is told 503.
What does not depend on the target (the netlink snapshot, firewall rules, socket tables, the
network manager, name resolutions) is read once for every probe of a few seconds
(:class:`netcheck.hoststate.HostState`). Every HTTP hop either phase requests — redirects
included — passes the same allow-list first (:meth:`Config.hop_refusal`).

Connections (a cap, a total deadline per request, bodies, one request per connection) are
:mod:`netcheck.exporter.connections`' business; a request reaches :class:`Handler` whole.
What comes from a request is logged and echoed only decoded and masked (:func:`outside_text`),
and ``format=json`` leaves this host's socket table and process names out unless
``--expose-local-details`` allows them.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import threading
import time
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler
from typing import IO, TYPE_CHECKING, Any, Coroutine, Optional, TypeVar
from urllib.parse import parse_qs, parse_qsl, quote, unquote, urlsplit

from netcheck import __version__, defaults
from netcheck.exporter.config import DEFAULT_MODULE, Config, Module
from netcheck.exporter.connections import (
    DROP_REASONS,
    FD_RESERVE,
    FDS_PER_PROBE,
    REQUEST_READ_TIMEOUT,
    ConnectionServer,
    connection_cap,
)
from netcheck.redact import mask_secrets, shown
from netcheck.target import Target, TargetError

if TYPE_CHECKING:
    from netcheck.fastprobe import Exchange
    from netcheck.model import Report

T = TypeVar("T")
# Prometheus sends its scrape timeout; blackbox keeps this much back for the answer itself.
SCRAPE_TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"
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
# Exchanges at once: the descriptors left after the connections, the ladder and a reserve,
# FDS_PER_EXCHANGE each (a connect per address, the request, a DNS socket), within bounds.
FDS_PER_EXCHANGE = 4
MIN_EXCHANGES = 16
MAX_EXCHANGES = 4096
MAX_QUERY_FIELDS = 16
MAX_REMEMBERED_REQUESTS = 10_000
PARAMETERS = ("target", "module", "format")
JSON_TYPE = "application/json; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"

_OWNER = re.compile(r" \(.*, pid \d+\)")
# Evidence keys that describe this host rather than the target: its other connections and
# the processes behind them. The exporter's JSON leaves them out unless
# --expose-local-details allows them.
LOCAL_DETAIL_KEYS = frozenset({"sockets", "pid", "process", "processes", "owners"})
EXTRA_ANSWERS = 8  # answers under way beyond the probes': /metrics, refusals


class Rejected(Exception):
    """A request that must not be probed: the HTTP status and the reason."""

    def __init__(self, status: int, reason: str, kind: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.kind = kind  # bad_request | not_allowed | busy: the rejection counter's label


def outside_text(text: str, limit: int = 200) -> str:
    """Text from a request as it may be logged or echoed back.

    Percent-encoding is undone (a second layer must not hide a password from the mask),
    white space is encoded again (it would end the URL the mask looks at), then secrets are
    masked, control characters escaped and the length cut.
    """
    return shown(_space_encoded(_decoded(text)), limit)


def _decoded(text: str, rounds: int = 3) -> str:
    for _ in range(rounds):
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    return text


def _space_encoded(text: str) -> str:
    return re.sub(r"\s", lambda m: quote(m.group(0)), text)


def without_local_details(doc: dict[str, Any]) -> dict[str, Any]:
    """The report document with this host's socket table and process names left out."""
    for check in doc.get("checks") or []:
        evidence = check.get("evidence")
        if not isinstance(evidence, dict):
            continue
        names = _owner_names(evidence)
        kept = _strip_local(evidence)
        if kept != evidence:
            kept["hidden"] = "local details (netcheck serve --expose-local-details)"
            check["evidence"] = kept
        summary = check.get("summary")
        if isinstance(summary, str):
            summary = _OWNER.sub("", summary)
            if any(name in summary for name in names):
                summary = "details of this host's connections hidden"
            check["summary"] = summary
    return doc


def _owner_names(value: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("process", "name") and isinstance(item, str) and len(item) > 2:
                found.add(item)
            found |= _owner_names(item)
    elif isinstance(value, list):
        for item in value:
            found |= _owner_names(item)
    return found


def _strip_local(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_local(v) for k, v in value.items() if k not in LOCAL_DETAIL_KEYS}
    if isinstance(value, list):
        return [_strip_local(v) for v in value]
    return value


def exchange_limit(concurrency: int, max_connections: int) -> int:
    """Exchanges at once: what the descriptor limit leaves after the connections, the
    ladder's share and a reserve, ``FDS_PER_EXCHANGE`` each."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_EXCHANGES
    free = soft - FD_RESERVE - FDS_PER_PROBE * concurrency - max_connections
    return max(MIN_EXCHANGES, min(MAX_EXCHANGES, free // FDS_PER_EXCHANGE))


class ProbeLoop:
    """The event loop every probe runs on, in a daemon thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True, name="netcheck-probes")
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
            tasks = asyncio.all_tasks(self.loop)
            for task in tasks:
                task.cancel()
            if tasks:
                self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        finally:
            self.loop.close()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Run ``coro`` on the loop; its concurrent future."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        """End the loop (the probes still running are cancelled) and wait for it a moment."""
        if self.loop.is_closed():
            return
        try:
            self.loop.call_soon_threadsafe(self.loop.stop)
        except RuntimeError:
            return
        self._thread.join(timeout=2)


class Exporter:
    """The probing logic and the exporter's own metrics, apart from any HTTP plumbing.

    ``answer_*`` return ``(status, content type, body)``; :meth:`answer_probe_async` and
    :meth:`probe` run on the exporter's event loop (:attr:`loop`, started on first use),
    :meth:`answer_probe` is the same from any other thread.
    """

    def __init__(self, config: Config, checks: list[Any], *, lang: str = "en",
                 sysroot: str = "/", log: Optional[IO[str]] = None,
                 expose_local_details: bool = False,
                 exchanges: Optional[int] = None) -> None:
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
            gc_collector,
            platform_collector,
            process_collector,
        )

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
        self.registry = CollectorRegistry()
        process_collector.ProcessCollector(registry=self.registry)
        platform_collector.PlatformCollector(registry=self.registry)
        gc_collector.GCCollector(registry=self.registry)
        Gauge("netcheck_exporter_build_info", "netcheck version", ["version"],
              registry=self.registry).labels(__version__).set(1)
        self.probes = Counter("netcheck_exporter_probes", "Probes run, by module and result",
                              ["module", "result"], registry=self.registry)
        self.rejections = Counter("netcheck_exporter_rejections",
                                  "Probe requests refused before anything was sent, by reason",
                                  ["reason"], registry=self.registry)
        self.redirects_refused = Counter(
            "netcheck_exporter_redirects_refused",
            "Probes whose redirect led outside the allow-list (the hop was not requested)",
            registry=self.registry)
        self._probing = 0
        Gauge("netcheck_exporter_probes_in_flight", "Probes running now",
              registry=self.registry).set_function(lambda: self._probing)
        self.ladders = Counter("netcheck_exporter_ladders",
                               "Diagnosis ladders run, by why: the exchange failed or warned "
                               "(exchange), it was slow (slow), the module asks for it "
                               "(module), format=json (json)", ["reason"],
                               registry=self.registry)
        self.exchange_results = Counter("netcheck_exporter_exchanges",
                                        "Exchanges (the first phase), by result",
                                        ["result"], registry=self.registry)
        Gauge("netcheck_exporter_ladders_in_flight", "Diagnosis ladders running now",
              registry=self.registry).set_function(lambda: self._laddering)
        Gauge("netcheck_exporter_exchanges_in_flight", "Exchanges running now",
              registry=self.registry).set_function(lambda: self._exchanging)
        Gauge("netcheck_exporter_exchange_limit", "Exchanges allowed at once (from the "
              "descriptor limit)", registry=self.registry).set(self.exchanges)
        Gauge("netcheck_exporter_host_snapshots", "Netlink snapshots of this host taken so far "
              "(shared by the probes of a few seconds)",
              registry=self.registry).set_function(lambda: self.state.facts_reads)
        self.connections = Gauge("netcheck_exporter_connections",
                                 "HTTP connections open now", registry=self.registry)
        self.dropped = Counter("netcheck_exporter_connections_dropped",
                               "HTTP connections closed without a probe answer, by reason",
                               ["reason"], registry=self.registry)
        self.duration = Histogram("netcheck_exporter_probe_duration_seconds",
                                  "How long probes took, by module", ["module"],
                                  buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5,
                                           10, 15, 30, 60),
                                  registry=self.registry)
        Gauge("netcheck_exporter_concurrency_limit", "Diagnosis ladders allowed at once",
              registry=self.registry).set(config.concurrency)
        Gauge("netcheck_exporter_allowed_entries", "Entries of the allow-list plus named targets",
              registry=self.registry).set(len(config.allow.networks) + len(config.allow.names)
                                          + len(config.allow.suffixes) + len(config.targets))
        for reason in ("bad_request", "not_allowed", "busy"):
            self.rejections.labels(reason)
        for reason in DROP_REASONS:
            self.dropped.labels(reason)
        for reason in ("exchange", "slow", "module", "json"):
            self.ladders.labels(reason)
        self._exchange_healthy = self.exchange_results.labels("healthy")
        self._exchange_laddered = self.exchange_results.labels("ladder")
        # The children looked up once (labels() takes a lock and hashes every time).
        self._outcome = {(module, ok): self.probes.labels(module, "success" if ok else "failure")
                         for module in config.modules for ok in (True, False)}
        self._duration = {module: self.duration.labels(module) for module in config.modules}

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
                report = await self._ladder_when_free(target, module, start, until, reason)
                return self._counted(report, None, module, start)
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

    def answer_metrics(self) -> tuple[int, str, bytes]:
        from prometheus_client import generate_latest

        from netcheck.render.prometheus import content_type

        return 200, content_type(), generate_latest(self.registry)

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

def ladder_exposition(report: Report) -> str:
    """The ladder's report as the exporter answers it: every netcheck metric of the report,
    blackbox's HTTP phases and redirects when the HTTP rung ran, and ``netcheck_ladder 1``."""
    from netcheck import fastprobe
    from netcheck.render import prometheus

    http = next((c.result.evidence for c in report.checks if c.id == "http.response"), None)
    timings = http.get("timings") if isinstance(http, dict) else None
    redirects = http.get("redirects") if isinstance(http, dict) else None
    metrics = prometheus.families([({}, prometheus.probe_values(report))])
    metrics += fastprobe.extra_families(
        timings if isinstance(timings, dict) else None, ladder=True,
        redirects=redirects if isinstance(redirects, int) else None)
    return prometheus.exposition(metrics)


def query_parameters(query: str) -> dict[str, str]:
    """``target``, ``module`` and ``format`` of a /probe query, each at most once.

    Rejected (400) for anything else: an unknown or repeated parameter, a field without
    ``=``, too many fields. Values are percent-decoded once, as any URL parser does.
    """
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query),
                          max_num_fields=MAX_QUERY_FIELDS)
    except ValueError as exc:
        what = "too many query parameters" if "fields" in str(exc) else "bad query string"
        raise Rejected(400, what, "bad_request") from None
    params: dict[str, str] = {}
    for key, value in pairs:
        if key not in PARAMETERS:
            raise Rejected(400, f"unknown parameter {key[:20]!r} (known: "
                           f"{', '.join(PARAMETERS)})", "bad_request")
        if key in params:
            raise Rejected(400, f"parameter {key!r} given more than once", "bad_request")
        params[key] = value
    return params


def _wants_json(query: str) -> bool:
    """Whether an error answer should be a JSON document: ``format=json``, parsed, not
    searched for (``xformat=json`` is no such thing)."""
    try:
        return parse_qs(query, max_num_fields=MAX_QUERY_FIELDS).get("format") == ["json"]
    except ValueError:
        return False


def _target_param(query: str) -> str:
    try:
        return parse_qs(query, max_num_fields=MAX_QUERY_FIELDS).get("target", [""])[0][:1000]
    except ValueError:
        return ""


# -- HTTP ---------------------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    """One request, read whole beforehand, parsed with no socket: the answer goes to a
    buffer the server then sends. GET only, everything else 405. A ``/probe`` is left in
    :attr:`deferred` for the event loop (:meth:`Server._answer_request`)."""

    server_version = f"netcheck/{__version__}"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def __init__(self, head: bytes, client: Any, server: Server) -> None:
        self._head = head
        self.deferred: Optional[tuple[str, Optional[str]]] = None
        super().__init__(None, client, server)  # type: ignore[arg-type]

    def setup(self) -> None:
        self.rfile = io.BytesIO(self._head)  # type: ignore[assignment]
        self.wfile = io.BytesIO()  # type: ignore[assignment]

    def finish(self) -> None:
        pass  # the server sends the buffer and closes the connection

    def handle_expect_100(self) -> bool:
        return True  # the server already said 100 Continue when it read the body

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        exporter: Exporter = self.server.exporter  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        if url.path == "/probe":
            self.deferred = (url.query, self.headers.get(SCRAPE_TIMEOUT_HEADER))
            return
        if url.path == "/metrics":
            answer = exporter.answer_metrics()
        elif url.path in ("/", ""):
            answer = exporter.answer_index()
        else:
            answer = (404, TEXT_TYPE, b"not found: /probe, /metrics\n")
        self.send(*answer)

    def _refuse_method(self) -> None:
        self.send(405, TEXT_TYPE, b"only GET\n", allow=True)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _refuse_method  # noqa: N815

    def send(self, status: int, ctype: str, body: bytes, allow: bool = False) -> None:
        """Write the whole answer to the buffer."""
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if allow:
            self.send_header("Allow", "GET")
        # One request per connection: nothing after it (a body, a pipelined request)
        # is ever read as another request.
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def answer(self) -> bytes:
        """What was written so far."""
        return self.wfile.getvalue()  # type: ignore[attr-defined,no-any-return]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        if not getattr(self.server, "verbose", False):
            return
        text = format % args
        # The request line holds the query: logged decoded and masked, never raw.
        line = getattr(self, "requestline", "")
        if line:
            text = text.replace(repr(line), repr(shown_request(line)))
            text = text.replace(line, shown_request(line))
        exporter: Exporter = self.server.exporter  # type: ignore[attr-defined]
        exporter._log(f"{self.address_string()} {shown(text, 600)}")


def shown_request(line: str) -> str:
    """A request line as it may be logged: every query value decoded, masked and escaped."""
    parts = line.split(" ")
    if len(parts) < 2:
        return outside_text(line, 300)
    path, sep, query = parts[1].partition("?")
    pairs = parse_qsl(query, keep_blank_values=True)
    shown_query = "&".join(f"{outside_text(k, 40)}={outside_text(v, 200)}" for k, v in pairs)
    return " ".join([shown(parts[0], 20), outside_text(path, 200) + sep + shown_query,
                     *(shown(p, 20) for p in parts[2:3])])


class Server(ConnectionServer):
    """The exporter served over HTTP: the connection limits of :class:`ConnectionServer`,
    each request answered on the exporter's event loop with the exporter's answers."""

    def __init__(self, address: tuple[str, int], exporter: Exporter, verbose: bool = False,
                 *, max_connections: Optional[int] = None,
                 read_timeout: float = REQUEST_READ_TIMEOUT) -> None:
        concurrency = exporter.config.concurrency
        super().__init__(address, self._answer_request, loop=exporter.loop.loop,
                         handlers=exporter.exchanges + concurrency + EXTRA_ANSWERS,
                         max_connections=max_connections or connection_cap(concurrency),
                         read_timeout=read_timeout, log=exporter._log,
                         dropped=lambda reason: exporter.dropped.labels(reason).inc())
        self.exporter = exporter
        self.verbose = verbose
        exporter.connections.set_function(self.open_connections)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown_host = f"[{host}]" if ":" in str(host) else str(host)
        return f"http://{shown_host}:{port}"

    async def _answer_request(self, head: bytes, client: Any, since: float) -> bytes:
        fast = None if self.verbose else _plain_probe(head)
        if fast is not None:
            # The common scrape, read without http.server's parser (a third of a healthy
            # probe's cost); anything else — another method or path, an odd request line, a
            # fragment, too many headers, -v logging — goes through Handler.
            answer = await self.exporter.answer_probe_async(*fast, since)
            return _response(*answer)
        handler = Handler(head, client, self)
        if handler.deferred is not None:
            query, scrape_timeout = handler.deferred
            answer = await self.exporter.answer_probe_async(query, scrape_timeout, since)
            handler.send(*answer)
        return handler.answer()

    def server_close(self) -> None:
        """Close the listening socket and stop the exporter's event loop."""
        super().server_close()
        self.exporter.close()


# ``GET /probe?QUERY HTTP/1.x``: printable ASCII, no fragment, nothing http.server would refuse.
_PLAIN_PROBE = re.compile(rb"GET /probe\?([!\"$-~]*) HTTP/1\.[01]\r?\n")
_SCRAPE_TIMEOUT = re.compile(rb"\nX-Prometheus-Scrape-Timeout-Seconds:[ \t]*([!-~]*)", re.I)
MAX_PLAIN_HEADERS = 64  # http.server allows 100; a scrape sends a handful
_dates: list[Any] = [0, ""]  # second, its HTTP date: one formatdate() a second


def _plain_probe(head: bytes) -> Optional[tuple[str, Optional[str]]]:
    """(query, scrape timeout) of a plain ``GET /probe?...`` request, or None."""
    match = _PLAIN_PROBE.match(head)
    if match is None or head.count(b"\n") > MAX_PLAIN_HEADERS + 2:
        return None
    timeout = _SCRAPE_TIMEOUT.search(head)
    return (match.group(1).decode("ascii"),
            timeout.group(1).decode("ascii") if timeout is not None else None)


def _response(status: int, ctype: str, body: bytes) -> bytes:
    """A whole answer, as :meth:`Handler.send` writes it."""
    from email.utils import formatdate
    from http import HTTPStatus

    now = int(time.time())
    if _dates[0] != now:
        _dates[:] = [now, formatdate(now, usegmt=True)]
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    return (f"HTTP/1.1 {status} {reason}\r\nServer: {Handler.server_version}\r\n"
            f"Date: {_dates[1]}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode("latin-1") + body


def start(exporter: Exporter, host: str = "127.0.0.1", port: int = 0, verbose: bool = False,
          **limits: Any) -> tuple[Server, threading.Thread]:
    """Serve in a background thread (tests, embedding); ``server.shutdown()`` stops it."""
    server = Server((host, port), exporter, verbose, **limits)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                              daemon=True, name="netcheck-serve")
    thread.start()
    return server, thread
