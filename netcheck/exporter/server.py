"""The exporter's HTTP side: ``/probe`` runs one diagnosis, ``/metrics`` shows the exporter.

As in blackbox_exporter's prober/handler.go, the handler owns everything around the probe:
it checks the request and the allow-list before anything is sent, takes a slot (bounded
concurrency), sets the deadline (the module's, shortened to Prometheus' scrape timeout),
times the probe, and counts the outcome. The diagnosis itself is the same one
``netcheck diagnose`` runs, in its own event loop on a worker thread; the handler waits
for it at most until the deadline, so a probe never holds a scrape longer than that. Every
HTTP hop the diagnosis requests — redirects included — passes the same allow-list first
(:meth:`Config.hop_refusal`).

Connections (a cap, a total deadline per request, bodies, one request per connection) are
:mod:`netcheck.exporter.connections`' business; a request reaches :class:`Handler` whole.
What comes from a request is logged and echoed only decoded and masked (:func:`outside_text`),
and ``format=json`` leaves this host's socket table and process names out unless
``--expose-local-details`` allows them.
"""

from __future__ import annotations

import io
import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import IO, TYPE_CHECKING, Any, Optional
from urllib.parse import parse_qs, parse_qsl, quote, unquote, urlsplit

from netcheck import __version__
from netcheck.exporter.config import DEFAULT_MODULE, Config, Module
from netcheck.exporter.connections import (
    DROP_REASONS,
    REQUEST_READ_TIMEOUT,
    ConnectionServer,
    connection_cap,
)
from netcheck.redact import mask_secrets, shown
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
PARAMETERS = ("target", "module", "format")
JSON_TYPE = "application/json; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"

# SocketInfo.describe() ends with the owner, "(python3, pid 4242)": left out unless allowed.
_OWNER = re.compile(r" \(.*, pid \d+\)")
# Evidence keys that describe this host rather than the target: its other connections and
# the processes behind them. The exporter's JSON leaves them out unless
# --expose-local-details allows them.
LOCAL_DETAIL_KEYS = frozenset({"sockets", "pid", "process", "processes", "owners"})
EXTRA_HANDLERS = 8  # handler threads beyond two per probe slot: /metrics, refusals


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


class Exporter:
    """The probing logic and the exporter's own metrics, apart from any HTTP plumbing."""

    def __init__(self, config: Config, checks: list[Any], *, lang: str = "en",
                 sysroot: str = "/", log: Optional[IO[str]] = None,
                 expose_local_details: bool = False) -> None:
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
        self.expose_local_details = expose_local_details
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
        self.redirects_refused = Counter(
            "netcheck_exporter_redirects_refused",
            "Probes whose redirect led outside the allow-list (the hop was not requested)",
            registry=self.registry)
        self.in_flight = Gauge("netcheck_exporter_probes_in_flight", "Probes running now",
                               registry=self.registry)
        self.connections = Gauge("netcheck_exporter_connections",
                                 "HTTP connections open now", registry=self.registry)
        self.dropped = Counter("netcheck_exporter_connections_dropped",
                               "HTTP connections closed without a probe answer, by reason",
                               ["reason"], registry=self.registry)
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
        for reason in DROP_REASONS:
            self.dropped.labels(reason)
        for module in config.modules:
            for result in ("success", "failure"):
                self.probes.labels(module, result)

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
            message = (f"internal error: {type(exc).__name__}: {shown(str(exc), 300)}"
                       if exc is not None else f"no result within the deadline ({left:g} s)")
            report = error_report(target.input, message)
        seconds = time.monotonic() - start
        from netcheck.model import Verdict

        ok = report.verdict in (Verdict.OK, Verdict.DEGRADED)
        self.probes.labels(module.name, "success" if ok else "failure").inc()
        self.duration.labels(module.name).observe(seconds)
        self._note_refused_redirect(report)
        return report

    def _note_refused_redirect(self, report: Report) -> None:
        """Count and log a redirect the allow-list stopped (the report says it too)."""
        for outcome in report.checks:
            if outcome.id == "http.response" and \
                    outcome.result.evidence.get("outcome") == "not_allowed":
                self.redirects_refused.inc()
                self._log(f"probe {shown(report.target.get('input') or '', 200)}: "
                          f"{shown(str(outcome.result.evidence.get('detail')), 300)}")

    def _diagnose(self, target: Target, module: Module, deadline: float) -> Report:
        import asyncio

        from netcheck.batch.run import apply_expectation
        from netcheck.render.json import error_report
        from netcheck.runner import Options, diagnose

        opts = module.options
        # hop_refusal: every HTTP hop of the run, redirects included, passes the allow-list
        # before any packet goes to it.
        options = Options(timeout=min(float(opts.get("timeout", 2.0)), deadline),
                          deadline=deadline, family=opts.get("family"), lang=self.lang,
                          sysroot=self.sysroot, cafile=opts.get("cafile"),
                          cert=opts.get("cert"), key=opts.get("key"),
                          hop_refusal=self.config.hop_refusal)

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

        try:
            target, module, fmt = self.check_request(query)
            report = self.probe(target, module, self.deadline_for(module, scrape_timeout))
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
        if fmt == "json":
            doc = report.to_json()
            if not self.expose_local_details:
                doc = without_local_details(doc)
            body = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
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

class _Writer(io.RawIOBase):
    """The answer goes straight to the socket (blocking, ``WRITE_TIMEOUT`` in total)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.sock.sendall(data)
        return len(data)


class Handler(BaseHTTPRequestHandler):
    """One request, read whole by the server beforehand; GET only, everything else 405."""

    server_version = f"netcheck/{__version__}"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def __init__(self, sock: socket.socket, head: bytes, client: Any, server: Server) -> None:
        self._head = head
        super().__init__(sock, client, server)  # type: ignore[arg-type]

    def setup(self) -> None:
        self.connection = self.request
        self.rfile = io.BytesIO(self._head)  # type: ignore[assignment]
        self.wfile = _Writer(self.request)  # type: ignore[assignment]

    def finish(self) -> None:
        pass  # the server closes the connection

    def handle_expect_100(self) -> bool:
        return True  # the server already said 100 Continue when it read the body

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
            # One request per connection: nothing after it (a body, a pipelined request)
            # is ever read as another request.
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            pass  # the scraper gave up (reset, closed, write timeout): nothing to tell it

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
    each request answered by :class:`Handler` with the exporter's answers."""

    def __init__(self, address: tuple[str, int], exporter: Exporter, verbose: bool = False,
                 *, max_connections: Optional[int] = None,
                 read_timeout: float = REQUEST_READ_TIMEOUT) -> None:
        concurrency = exporter.config.concurrency
        super().__init__(address, self._answer, handlers=2 * concurrency + EXTRA_HANDLERS,
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

    def _answer(self, sock: socket.socket, head: bytes, client: Any) -> None:
        Handler(sock, head, client, self)


def start(exporter: Exporter, host: str = "127.0.0.1", port: int = 0, verbose: bool = False,
          **limits: Any) -> tuple[Server, threading.Thread]:
    """Serve in a background thread (tests, embedding); ``server.shutdown()`` stops it."""
    server = Server((host, port), exporter, verbose, **limits)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                              daemon=True, name="netcheck-serve")
    thread.start()
    return server, thread
