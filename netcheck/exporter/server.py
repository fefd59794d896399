"""The exporter's HTTP side: ``/probe`` runs one diagnosis, ``/metrics`` shows the exporter.

As in blackbox_exporter's prober/handler.go, the handler owns everything around the probe:
it checks the request and the allow-list before anything is sent, takes a slot (bounded
concurrency), sets the deadline (the module's, shortened to Prometheus' scrape timeout),
times the probe, and counts the outcome. The diagnosis itself is the same one
``netcheck diagnose`` runs, in its own event loop on a worker thread; the handler waits
for it at most until the deadline, so a probe never holds a scrape longer than that.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO, TYPE_CHECKING, Any, Optional
from urllib.parse import parse_qs, urlsplit

from netcheck import __version__
from netcheck.exporter.config import DEFAULT_MODULE, Config, Module
from netcheck.target import Target, TargetError

if TYPE_CHECKING:
    from netcheck.model import Report

# Prometheus sends its scrape timeout; blackbox keeps this much back for the answer itself.
SCRAPE_TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"
TIMEOUT_OFFSET = 0.5
MIN_DEADLINE = 0.5
# After the deadline, the handler waits this much more for the runner's own partial report.
GRACE = 0.3
MAX_QUERY_FIELDS = 16
JSON_TYPE = "application/json; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"


class Rejected(Exception):
    """A request that must not be probed: the HTTP status and the reason."""

    def __init__(self, status: int, reason: str, kind: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.kind = kind  # bad_request | not_allowed | busy: the rejection counter's label


class Exporter:
    """The probing logic and the exporter's own metrics, apart from any HTTP plumbing."""

    def __init__(self, config: Config, checks: list[Any], *, lang: str = "en",
                 sysroot: str = "/", log: Optional[IO[str]] = None) -> None:
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

        self.config = config
        resolve_checks(config, checks)
        self.lang = lang
        self.sysroot = sysroot
        self.log = log
        self.slots = threading.BoundedSemaphore(config.concurrency)
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
        self.in_flight = Gauge("netcheck_exporter_probes_in_flight", "Probes running now",
                               registry=self.registry)
        self.duration = Histogram("netcheck_exporter_probe_duration_seconds",
                                  "How long probes took, by module", ["module"],
                                  buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60),
                                  registry=self.registry)
        Gauge("netcheck_exporter_concurrency_limit", "Probes allowed at once",
              registry=self.registry).set(config.concurrency)
        Gauge("netcheck_exporter_allowed_entries", "Entries of the allow-list plus named targets",
              registry=self.registry).set(len(config.allow.networks) + len(config.allow.names)
                                          + len(config.allow.suffixes) + len(config.targets))
        for reason in ("bad_request", "not_allowed", "busy"):
            self.rejections.labels(reason)
        for module in config.modules:
            for result in ("success", "failure"):
                self.probes.labels(module, result)

    # -- /probe -----------------------------------------------------------------------------

    def check_request(self, query: str) -> tuple[Target, Module, str]:
        """The target, module and format a /probe query asks for; Rejected if it may not run.

        Nothing is sent before this returns: the allow-list is judged on the target as written.
        """
        try:
            params = parse_qs(query, keep_blank_values=True, strict_parsing=False,
                              max_num_fields=MAX_QUERY_FIELDS)
        except ValueError:
            raise Rejected(400, "too many query parameters", "bad_request") from None
        for key, values in params.items():
            if len(values) > 1:
                raise Rejected(400, f"parameter {key[:20]!r} given more than once", "bad_request")
        text = params.get("target", [""])[0]
        if not text:
            raise Rejected(400, "target parameter is missing (/probe?target=...)", "bad_request")
        name = params.get("module", [DEFAULT_MODULE])[0] or DEFAULT_MODULE
        module = self.config.modules.get(name)
        if module is None:
            raise Rejected(400, f"unknown module {name[:40]!r} (known: "
                           f"{', '.join(sorted(self.config.modules))})", "bad_request")
        fmt = params.get("format", ["prometheus"])[0] or "prometheus"
        if fmt not in ("prometheus", "json"):
            raise Rejected(400, f"unknown format {fmt[:20]!r} (prometheus or json)", "bad_request")
        try:
            target = self.config.target_for(text, module)
        except TargetError as exc:
            raise Rejected(400, f"bad target: {exc}", "bad_request") from None
        reason = self.config.why_refused(target)
        if reason is not None:
            raise Rejected(400, reason, "not_allowed")
        return target, module, fmt

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

    def probe(self, target: Target, module: Module, deadline: float) -> Report:
        """Run the diagnosis within ``deadline`` seconds; the report, whatever happened.

        Raises Rejected(503) when no slot frees up before the deadline.
        """
        from netcheck.render.json import error_report

        start = time.monotonic()
        if not self.slots.acquire(timeout=deadline):
            raise Rejected(503, f"{self.config.concurrency} probes already running; none "
                           f"finished within the deadline ({deadline:g} s)", "busy")
        left = max(MIN_DEADLINE, deadline - (time.monotonic() - start))
        box: dict[str, Any] = {}
        finished = threading.Event()

        def work() -> None:
            # The slot is released by the worker, not the handler: a probe that outlives its
            # answer still counts against the bound until it really ends.
            self.in_flight.inc()
            try:
                box["report"] = self._diagnose(target, module, left)
            except BaseException as exc:  # handed to the handler as an error report
                box["error"] = exc
            finally:
                self.in_flight.dec()
                self.slots.release()
                finished.set()

        threading.Thread(target=work, daemon=True, name="probe").start()
        finished.wait(left + GRACE)
        report = box.get("report")
        if report is None:
            exc = box.get("error")
            message = (f"internal error: {type(exc).__name__}: {exc}" if exc is not None
                       else f"no result within the deadline ({left:g} s)")
            report = error_report(target.input, message)
        seconds = time.monotonic() - start
        from netcheck.model import Verdict

        ok = report.verdict in (Verdict.OK, Verdict.DEGRADED)
        self.probes.labels(module.name, "success" if ok else "failure").inc()
        self.duration.labels(module.name).observe(seconds)
        return report

    def _diagnose(self, target: Target, module: Module, deadline: float) -> Report:
        import asyncio

        from netcheck.batch.run import apply_expectation
        from netcheck.render.json import error_report
        from netcheck.runner import Options, diagnose

        opts = module.options
        options = Options(timeout=min(float(opts.get("timeout", 2.0)), deadline),
                          deadline=deadline, family=opts.get("family"), lang=self.lang,
                          sysroot=self.sysroot, cafile=opts.get("cafile"),
                          cert=opts.get("cert"), key=opts.get("key"))

        async def bounded() -> Report:
            try:
                return await asyncio.wait_for(diagnose(target, options, module.checks or []),
                                              deadline)
            except asyncio.TimeoutError:
                return error_report(target.input, f"no result within the deadline "
                                                  f"({deadline:g} s)")

        return apply_expectation(asyncio.run(bounded()), module.expect)

    # -- answers ------------------------------------------------------------------------------

    def answer_probe(self, query: str, scrape_timeout: Optional[str]) -> tuple[int, str, bytes]:
        """(status, content type, body) for ``/probe?query``."""
        from netcheck.render.prometheus import content_type, render_prometheus

        wants_json = "format=json" in query
        try:
            target, module, fmt = self.check_request(query)
            report = self.probe(target, module, self.deadline_for(module, scrape_timeout))
        except Rejected as exc:
            self.rejections.labels(exc.kind).inc()
            self._log(f"refused /probe?{query[:200]}: {exc.reason}")
            if wants_json:
                from netcheck.render.json import error_document

                doc = error_document(_target_param(query), exc.reason)
                return exc.status, JSON_TYPE, (json.dumps(doc, indent=2) + "\n").encode()
            return exc.status, TEXT_TYPE, (exc.reason + "\n").encode()
        if fmt == "json":
            body = json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n"
            return 200, JSON_TYPE, body.encode("utf-8")
        return 200, content_type(), render_prometheus(report).encode("utf-8")

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


def _target_param(query: str) -> str:
    try:
        return parse_qs(query, max_num_fields=MAX_QUERY_FIELDS).get("target", [""])[0][:200]
    except ValueError:
        return ""


class Handler(BaseHTTPRequestHandler):
    """GET only; everything else is 405. The exporter is the server's ``exporter``."""

    server_version = f"netcheck/{__version__}"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = 30  # a client that opens a connection and sends nothing is cut off

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        exporter: Exporter = self.server.exporter  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        if url.path == "/probe":
            answer = exporter.answer_probe(url.query, self.headers.get(SCRAPE_TIMEOUT_HEADER))
        elif url.path == "/metrics":
            answer = exporter.answer_metrics()
        elif url.path in ("/", ""):
            answer = exporter.answer_index()
        else:
            answer = (404, TEXT_TYPE, b"not found: /probe, /metrics\n")
        self._send(*answer)

    def _refuse_method(self) -> None:
        self._send(405, TEXT_TYPE, b"only GET\n", allow=True)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _refuse_method  # noqa: N815

    def _send(self, status: int, ctype: str, body: bytes, allow: bool = False) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            if allow:
                self.send_header("Allow", "GET")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the scraper gave up: nothing to tell it

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        exporter: Exporter = self.server.exporter  # type: ignore[attr-defined]
        if getattr(self.server, "verbose", False):
            exporter._log(f"{self.address_string()} {format % args}")


class Server(ThreadingHTTPServer):
    """A threading HTTP server for one exporter; IPv6 when the address says so."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], exporter: Exporter,
                 verbose: bool = False) -> None:
        import socket

        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.exporter = exporter
        self.verbose = verbose
        super().__init__(address, Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else str(host)
        return f"http://{shown}:{port}"


def start(exporter: Exporter, host: str = "127.0.0.1", port: int = 0,
          verbose: bool = False) -> tuple[Server, threading.Thread]:
    """Serve in a background thread (tests, embedding); ``server.shutdown()`` stops it."""
    server = Server((host, port), exporter, verbose)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                              daemon=True, name="netcheck-serve")
    thread.start()
    return server, thread
