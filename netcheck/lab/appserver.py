"""Application servers for the lab: a small web server with good and hostile routes, and
mail, SSH and odd-protocol greeters — each one mode per process.

::

    python -m netcheck.lab.appserver --listen ADDR:PORT[,ADDR:PORT...] --mode MODE
                                     [--tls-cert CERT --tls-key KEY] [--name HOST]
                                     [--ready FILE]

Modes:

``http``
    ``/`` 200, ``/old`` 301 to ``/``, ``/to-https`` 301 to ``https://HOST/old``, ``/missing``
    (and any unknown path) 404, ``/broken`` 503, ``/loop`` and ``/loop-again`` redirect to each
    other, ``/big`` a 1 MiB body, ``/chunked`` a small chunked body, ``/elsewhere`` 302 to
    ``http://www.lab.test/``, ``/to-file`` 302 to ``file:///etc/passwd``, and the hostile ones:
    ``/slow`` never answers, ``/hugeheaders`` sends 1 MiB of headers, ``/endless`` a chunked
    body without end, ``/drip`` the whole response one byte a second. Keep-alive as HTTP/1.1
    does, so a redirect to the same server reuses the connection (as in the slides' wget).
``smtp`` / ``smtp-reject``
    ``220`` greeting, EHLO with STARTTLS among the capabilities / a ``554`` greeting.
``pop3`` / ``pop3-reject``, ``imap`` / ``imap-bye``
    ``+OK`` / ``-ERR``, ``* OK`` / ``* BYE`` greetings.
``ssh``
    an OpenSSH version line.
``binary``, ``silent``
    random bytes on connect / accepts and never says anything.
``reset``
    accepts and resets at once (SO_LINGER 0, before any byte, TLS or not): what a TCP-wrappers
    or fail2ban-style block does after the handshake.

With ``--tls-cert`` every listener speaks TLS first (https, pop3s, imaps). Every request is
logged to stderr with the client's User-Agent, as an access log would, so a test (or a student)
can find netcheck's request id in the server's log. Everything is bounded: at most
MAX_CONNECTIONS at once, idle connections closed, hostile routes stop after HOLD_SECONDS.

The client connection is :mod:`netcheck.lab.appconn`, the mail, SSH and odd greeters
:mod:`netcheck.lab.greeters`; here are the web site, the reset and the server itself.
"""

from __future__ import annotations

import argparse
import re
import selectors
import socket
import struct
import sys
import threading
import time
from typing import Any, Callable, Optional

from netcheck.lab.appconn import HOLD_SECONDS, Conn
from netcheck.lab.greeters import SSH_VERSION as SSH_VERSION  # re-exported
from netcheck.lab.greeters import (
    _serve_binary,
    _serve_imap,
    _serve_pop3,
    _serve_silent,
    _serve_smtp,
    _serve_ssh,
)
from netcheck.lab.servers import _log as log
from netcheck.lab.servers import _write_ready as write_ready

MODES = ("http", "smtp", "smtp-reject", "pop3", "pop3-reject", "imap", "imap-bye", "ssh",
         "binary", "silent", "reset")
MAX_CONNECTIONS = 64
IDLE_TIMEOUT = 10.0  # a client that says nothing for this long is dropped
MAX_REQUEST_BYTES = 16 * 1024
MAX_REQUESTS_PER_CONNECTION = 100
BIG_BODY_BYTES = 1 << 20
HUGE_HEADER_BYTES = 1 << 20
SERVER_HEADER = "netcheck-lab-app/1.0"

PAGE = ("<!doctype html>\n<html><head><title>{title}</title></head>\n"
        "<body><h1>{title}</h1><p>{text}</p></body></html>\n")
# What each route answers (for the log line, written before the answer); others are 404.
STATUS_OF: dict[str, object] = {
    "/": 200, "/old": 301, "/to-https": 301, "/loop": 302, "/loop-again": 302,
    "/elsewhere": 302, "/to-file": 302, "/broken": 503, "/big": 200, "/chunked": 200,
    "/slow": "-", "/hugeheaders": 200, "/endless": 200, "/drip": 200}
REASONS = {200: "OK", 301: "Moved Permanently", 302: "Found", 400: "Bad Request",
           404: "Not Found",
           503: "Service Temporarily Unavailable"}


def parse_listen(text: str) -> list[tuple[str, int]]:
    """``198.18.2.30:80,[2001:db8:2::30]:80`` -> [("198.18.2.30", 80), ("2001:db8:2::30", 80)]."""
    found = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([0-9.]+):(\d+)", item)
        if not match:
            raise ValueError(f"bad listen address {item!r} (ADDR:PORT or [V6]:PORT)")
        host = match.group(1) or match.group(3)
        port = int(match.group(2) or match.group(4))
        if not 0 < port < 65536:
            raise ValueError(f"bad port in {item!r}")
        found.append((host, port))
    if not found:
        raise ValueError("no listen address given")
    return found


# -- http ----------------------------------------------------------------------------------

def _response(status: int, body: bytes = b"", headers: Optional[list[tuple[str, str]]] = None,
              keep_alive: bool = True) -> bytes:
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}", f"Server: {SERVER_HEADER}",
             f"Content-Length: {len(body)}",
             f"Connection: {'keep-alive' if keep_alive else 'close'}"]
    lines += [f"{k}: {v}" for k, v in headers or []]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _page(status: int, text: str) -> bytes:
    title = f"{status} {REASONS.get(status, '')}".strip()
    return PAGE.format(title=title, text=text).encode("utf-8")


def _redirect(status: int, location: str, keep_alive: bool) -> bytes:
    return _response(status, _page(status, f"Moved to {location}"),
                     [("Location", location), ("Content-Type", "text/html")], keep_alive)


def _serve_http(conn: Conn, tls: bool, name: str) -> None:
    """Requests on one connection, keep-alive as HTTP/1.1 does, each one logged."""
    for _ in range(MAX_REQUESTS_PER_CONNECTION):
        conn.sock.settimeout(IDLE_TIMEOUT)
        raw = conn.read_until(b"\r\n\r\n", MAX_REQUEST_BYTES)
        if raw is None:
            return
        lines = raw.decode("latin-1").split("\r\n")
        request_line = lines[0]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            key, sep, value = line.partition(":")
            if sep:
                headers[key.strip().lower()] = value.strip()
        parts = request_line.split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            # Not an HTTP/1.x request (a mail client's QUIT, garbage): as nginx does.
            log(f"http{'s' if tls else ''} {conn.peer} \"{request_line[:200]}\" 400")
            conn.send(_response(400, _page(400, "Bad request."), keep_alive=False))
            return
        path = parts[1]
        if "://" in path:
            # Absolute form (RFC 9112 3.2.2), as a client sends it to a proxy: servers must
            # accept it too, and the log line shows a proxy was in the way.
            path = "/" + path.split("://", 1)[1].partition("/")[2]
        keep_alive = "close" not in headers.get("connection", "").lower()
        host = headers.get("host", name)
        # Logged as the request arrives (the hostile routes never finish), with the client's
        # User-Agent: netcheck's request id is found here.
        log(f"http{'s' if tls else ''} {conn.peer} \"{request_line[:200]}\" "
            f"{STATUS_OF.get(path, 404)} host={host[:100]!r} "
            f"\"{headers.get('user-agent', '-')[:200]}\"")
        status = _route(conn, path, host, tls, keep_alive)
        if status < 0 or not keep_alive:
            return


def _route(conn: Conn, path: str, host: str, tls: bool, keep_alive: bool) -> int:
    """Answer one request; the status sent (negative: the connection is done)."""
    bare_host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    page_ok = _page(200, "Served by the netcheck lab application server.")
    if path == "/":
        conn.send(_response(200, page_ok, [("Content-Type", "text/html")], keep_alive))
        return 200
    if path == "/old":
        conn.send(_redirect(301, "/", keep_alive))
        return 301
    if path == "/to-https":
        conn.send(_redirect(301, f"https://{bare_host}/old", keep_alive))
        return 301
    if path == "/loop":
        conn.send(_redirect(302, "/loop-again", keep_alive))
        return 302
    if path == "/loop-again":
        conn.send(_redirect(302, "/loop", keep_alive))
        return 302
    if path == "/elsewhere":
        conn.send(_redirect(302, "http://www.lab.test/", keep_alive))
        return 302
    if path == "/to-file":
        conn.send(_redirect(302, "file:///etc/passwd", keep_alive))
        return 302
    if path == "/broken":
        conn.send(_response(503, _page(503, "The application behind this server is down."),
                            [("Content-Type", "text/html"), ("Retry-After", "120")], keep_alive))
        return 503
    if path == "/big":
        conn.send(_response(200, b"x" * BIG_BODY_BYTES, [("Content-Type", "text/plain")],
                            keep_alive))
        return 200
    if path == "/chunked":
        head = (f"HTTP/1.1 200 OK\r\nServer: {SERVER_HEADER}\r\nTransfer-Encoding: chunked\r\n"
                "Content-Type: text/plain\r\n\r\n").encode("ascii")
        conn.send(head + b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: yes\r\n\r\n")
        return 200
    if path == "/slow":
        conn.hold()
        return -1
    if path == "/hugeheaders":
        _huge_headers(conn)
        return -200
    if path == "/endless":
        _endless(conn)
        return -200
    if path == "/drip":
        _drip(conn, _response(200, page_ok, [("Content-Type", "text/html")], False))
        return -200
    conn.send(_response(404, _page(404, f"Nothing at {path[:100]}."),
                        [("Content-Type", "text/html")], keep_alive))
    return 404


def _huge_headers(conn: Conn) -> None:
    conn.send(f"HTTP/1.1 200 OK\r\nServer: {SERVER_HEADER}\r\n".encode("ascii"))
    line = b"X-Filler: " + b"f" * 1000 + b"\r\n"
    sent = 0
    while sent < HUGE_HEADER_BYTES:
        if not conn.send(line * 16):
            return
        sent += len(line) * 16
    conn.send(b"Content-Length: 0\r\n\r\n")


def _endless(conn: Conn) -> None:
    conn.send(f"HTTP/1.1 200 OK\r\nServer: {SERVER_HEADER}\r\nTransfer-Encoding: chunked\r\n"
              "Content-Type: application/octet-stream\r\n\r\n".encode("ascii"))
    chunk = b"4000\r\n" + b"e" * 0x4000 + b"\r\n"
    end = time.monotonic() + HOLD_SECONDS
    conn.sock.settimeout(5.0)
    while time.monotonic() < end:
        if not conn.send(chunk):
            return


def _drip(conn: Conn, response: bytes) -> None:
    end = time.monotonic() + HOLD_SECONDS
    for i in range(len(response)):
        if time.monotonic() > end or not conn.send(response[i:i + 1]):
            return
        time.sleep(1.0)


# -- reset ---------------------------------------------------------------------------------

def _reset(sock: socket.socket, peer: str) -> None:
    """Close at once with an RST (SO_LINGER 0), before reading or sending a byte."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    log(f"reset {peer} accepted and reset at once")


# -- the server ----------------------------------------------------------------------------

class AppServer:
    """Listeners for one mode; a thread per connection, at most MAX_CONNECTIONS at once."""

    def __init__(self, mode: str, listen: list[tuple[str, int]], name: str = "lab.test",
                 tls_cert: Optional[str] = None, tls_key: Optional[str] = None,
                 starttls: bool = False) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; modes are {', '.join(MODES)}")
        self.mode = mode
        self.listen = listen
        self.name = name
        self.tls_context: Any = None  # TLS from the first byte (https, pop3s, imaps)
        self.starttls_context: Any = None  # TLS after the protocol's STARTTLS
        if tls_cert:
            import ssl

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls_cert, tls_key)
            if starttls:
                self.starttls_context = context
            else:
                context.set_alpn_protocols(["http/1.1"] if mode == "http" else [])
                self.tls_context = context
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.sockets: list[socket.socket] = []

    def bind(self) -> list[tuple[str, int]]:
        """Bind and listen on every address; the (address, port) pairs actually bound."""
        bound = []
        for host, port in self.listen:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((host, port))
            sock.listen(128)
            self.sockets.append(sock)
            bound.append((host, sock.getsockname()[1]))
        return bound

    def serve_forever(self, stop: Optional[threading.Event] = None) -> None:
        selector = selectors.DefaultSelector()
        for sock in self.sockets:
            selector.register(sock, selectors.EVENT_READ)
        while stop is None or not stop.is_set():
            for key, _ in selector.select(timeout=0.2):
                try:
                    conn, peer = key.fileobj.accept()  # type: ignore[union-attr]
                except OSError:
                    continue
                if self.mode == "reset":
                    _reset(conn, peer[0])
                    continue
                if not self.slots.acquire(blocking=False):
                    conn.close()  # full: refuse rather than queue without bound
                    log(f"{self.mode} {peer[0]} refused: {MAX_CONNECTIONS} connections busy")
                    continue
                threading.Thread(target=self._handle, args=(conn, peer[0]), daemon=True).start()
        selector.close()
        for sock in self.sockets:
            sock.close()

    def _handle(self, sock: socket.socket, peer: str) -> None:
        try:
            sock.settimeout(IDLE_TIMEOUT)
            # As nginx does (tcp_nodelay on): no Nagle delay on small answers after TLS tickets.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            tls = self.tls_context is not None
            if tls:
                try:
                    sock = self.tls_context.wrap_socket(sock, server_side=True)
                except (OSError, ValueError) as exc:
                    log(f"{self.mode} {peer} TLS handshake failed: {exc}")
                    return
            self._dispatch(Conn(sock, peer, self.starttls_context), tls)
        except Exception as exc:  # one bad client must never take the server down
            log(f"{self.mode} {peer} error {type(exc).__name__}: {exc}")
        finally:
            try:
                sock.close()
            except OSError:
                pass
            self.slots.release()

    def _dispatch(self, conn: Conn, tls: bool) -> None:
        handlers: dict[str, Callable[[], None]] = {
            "http": lambda: _serve_http(conn, tls, self.name),
            "smtp": lambda: _serve_smtp(conn, self.name, reject=False),
            "smtp-reject": lambda: _serve_smtp(conn, self.name, reject=True),
            "pop3": lambda: _serve_pop3(conn, reject=False),
            "pop3-reject": lambda: _serve_pop3(conn, reject=True),
            "imap": lambda: _serve_imap(conn, bye=False),
            "imap-bye": lambda: _serve_imap(conn, bye=True),
            "ssh": lambda: _serve_ssh(conn),
            "binary": lambda: _serve_binary(conn),
            "silent": lambda: _serve_silent(conn),
        }
        handlers[self.mode]()


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point: ``python -m netcheck.lab.appserver --listen ... --mode ...``."""
    parser = argparse.ArgumentParser(prog="python -m netcheck.lab.appserver")
    parser.add_argument("--listen", required=True, help="ADDR:PORT[,ADDR:PORT...]")
    parser.add_argument("--mode", required=True, choices=MODES)
    parser.add_argument("--name", default="lab.test", help="host name the greetings use")
    parser.add_argument("--tls-cert", help="serve TLS with this certificate (PEM)")
    parser.add_argument("--tls-key", help="its private key (PEM)")
    parser.add_argument("--starttls", action="store_true",
                        help="offer TLS through STARTTLS/STLS instead of from the first byte")
    parser.add_argument("--ready", help="file to create once listening")
    args = parser.parse_args(argv)
    try:
        server = AppServer(args.mode, parse_listen(args.listen), args.name, args.tls_cert,
                           args.tls_key, args.starttls)
        bound = server.bind()
    except (OSError, ValueError) as exc:
        print(f"appserver: {exc}", file=sys.stderr)
        return 2
    write_ready(args.ready)
    tls = " with STARTTLS" if args.starttls else " over TLS" if args.tls_cert else ""
    log(f"{args.mode}{tls} listening on "
        + ", ".join(f"{h}:{p}" for h, p in bound))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
