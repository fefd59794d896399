"""The exporter over HTTP: :class:`Handler` (one request, read whole beforehand, parsed with no
socket), :class:`Server` (the connection limits, each request answered on the exporter's event
loop), the plain scrape's fast path (read without http.server's parser) and :func:`start`.
"""

from __future__ import annotations

import io
import re
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import parse_qsl, urlsplit

from netcheck import __version__
from netcheck.exporter.connections import (
    REQUEST_READ_TIMEOUT,
    ConnectionServer,
    connection_cap,
)
from netcheck.exporter.server.answers import TEXT_TYPE
from netcheck.exporter.server.query import outside_text
from netcheck.redact import shown

if TYPE_CHECKING:
    from netcheck.exporter.server.probing import Exporter

# Prometheus sends its scrape timeout in this header (the deadline keeps TIMEOUT_OFFSET back).
SCRAPE_TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"
EXTRA_ANSWERS = 8  # answers under way beyond the probes': /metrics, refusals


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
