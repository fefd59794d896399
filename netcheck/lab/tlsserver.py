"""A TLS server for the lab, and the things that sit on a TLS port by mistake.

Started by the TLS scenarios inside the server namespace::

    python -m netcheck.lab.tlsserver --listen 198.18.2.20:443 --listen [2001:db8:2::20]:443 \\
        --cert tls-ok.crt --key tls-ok.key [--client-ca ca.crt] \\
        [--min-version 1.2] [--max-version 1.3] [--mode tls] --ready FILE

Modes (what a client connecting to the port meets):

``tls``          a TLS handshake (stdlib ssl), ALPN http/1.1, then a minimal ``HTTP/1.1 200``
                 to a GET, so a whole ``https://`` walk is green; ``--client-ca`` demands a
                 client certificate issued by that CA (mutual TLS).
``plain-http``   plain HTTP on the port: a ClientHello gets ``HTTP/1.1 400 Bad Request``.
``ssh-banner``   an SSH server's greeting (``SSH-2.0-…``), sent on connect.
``smtp-banner``  an SMTP greeting (``220 … ESMTP``), sent on connect.
``smtp-starttls`` an SMTP server that offers STARTTLS and upgrades to TLS (``--cert/--key``).
``garbage``      ``--garbage-bytes`` of seeded random binary (1 MiB by default), then close.
``silent``       accepts and never sends a byte (holds the connection up to ``--hold`` s).

Everything is bounded: a thread per connection up to ``MAX_CONNECTIONS``, socket timeouts,
reads of at most a few KB. One line per connection goes to stderr; the ready file is written
once every socket listens (the same protocol as ``netcheck.lab.servers``).
"""

from __future__ import annotations

import argparse
import random
import selectors
import socket
import ssl
import sys
import threading
from typing import Callable, Optional

from netcheck.lab.servers import HTTP_BODY, SSH_BANNER, _close_gracefully, _log, _recv_until
from netcheck.lab.servers import _write_ready as write_ready

MODES = ("tls", "plain-http", "ssh-banner", "smtp-banner", "smtp-starttls", "garbage", "silent")
VERSIONS = {"1.0": ssl.TLSVersion.TLSv1, "1.1": ssl.TLSVersion.TLSv1_1,
            "1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
MAX_CONNECTIONS = 64
IO_TIMEOUT = 5.0
SMTP_BANNER = b"220 mail.lab.test ESMTP netcheck-lab\r\n"
_slots = threading.BoundedSemaphore(MAX_CONNECTIONS)


def parse_listen(text: str) -> tuple[str, int]:
    """``198.18.2.20:443`` or ``[2001:db8:2::20]:443`` -> (address, port)."""
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
    else:
        host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"--listen wants ADDR:PORT or [V6ADDR]:PORT: {text!r}")
    return host, int(port)


def server_context(cert: str, key: str, client_ca: Optional[str] = None,
                   min_version: Optional[str] = None,
                   max_version: Optional[str] = None) -> ssl.SSLContext:
    """The server side: certificate, optional client CA, and the versions it will speak."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if (min_version and min_version < "1.2") or (max_version and max_version < "1.2"):
        # OpenSSL 3 refuses TLS 1.0/1.1 at its default security level; an old server
        # is exactly what this lab wants to show.
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    if min_version:
        ctx.minimum_version = VERSIONS[min_version]
    if max_version:
        ctx.maximum_version = VERSIONS[max_version]
    ctx.load_cert_chain(cert, key)
    if client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(client_ca)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def _http_answer(conn: socket.socket, request: bytes, peer: str, label: str) -> None:
    first = request.split(b"\r\n", 1)[0].decode("latin-1", "replace")
    method = first.split(" ", 1)[0]
    if method in ("GET", "HEAD"):
        body = b"" if method == "HEAD" else HTTP_BODY
        head = ("HTTP/1.1 200 OK\r\nServer: netcheck-lab\r\nContent-Type: text/html\r\n"
                f"Content-Length: {len(HTTP_BODY)}\r\nConnection: close\r\n\r\n")
        conn.sendall(head.encode("ascii") + body)
        _log(f"{label} {peer} {first[:80]!r} -> 200")
    else:
        body = b"bad request\n"
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nServer: netcheck-lab\r\n"
                     b"Content-Type: text/plain\r\nContent-Length: 12\r\n"
                     b"Connection: close\r\n\r\n" + body)
        _log(f"{label} {peer} {first[:40]!r} -> 400")


def _serve_tls(conn: socket.socket, peer: str, ctx: ssl.SSLContext) -> None:
    tls = ctx.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
    try:
        tls.do_handshake()
    except (ssl.SSLError, OSError) as exc:
        _log(f"tls {peer} handshake failed: {exc}")
        tls.close()
        return
    who = ""
    client = tls.getpeercert()
    if client:
        who = " client " + "/".join(v for rdn in client.get("subject", ()) for _, v in rdn)
    _log(f"tls {peer} {tls.version()} {tls.cipher()[0] if tls.cipher() else '-'} "
         f"alpn={tls.selected_alpn_protocol()}{who}")
    try:
        request = _recv_until(tls, b"\r\n\r\n", limit=16384)
        if request:
            _http_answer(tls, request, peer, "tls")
        try:
            tls.unwrap()
        except (ssl.SSLError, OSError, ValueError):
            pass
    except (ssl.SSLError, OSError) as exc:
        _log(f"tls {peer} error after the handshake: {exc}")
    finally:
        tls.close()


def _serve_plain_http(conn: socket.socket, peer: str) -> None:
    # One read is enough: a ClientHello has no CRLF, and nginx answers 400 to it at once.
    try:
        request = conn.recv(4096)
    except OSError:
        request = b""
    if request:
        _http_answer(conn, request, peer, "plain-http")
    _close_gracefully(conn)


def _serve_banner(conn: socket.socket, peer: str, banner: bytes, label: str) -> None:
    conn.sendall(banner)
    line = _recv_until(conn, b"\n", limit=4096)
    if label == "smtp" and line:
        conn.sendall(b"500 5.5.1 command unrecognized\r\n")
    _log(f"{label} {peer} banner sent, got {len(line)} bytes")
    _close_gracefully(conn)


def _serve_smtp_starttls(conn: socket.socket, peer: str, ctx: ssl.SSLContext) -> None:
    """Just enough SMTP for a STARTTLS upgrade: greeting, EHLO, STARTTLS, then EHLO/QUIT."""
    conn.sendall(SMTP_BANNER)
    stream: socket.socket = conn
    upgraded = False
    for _ in range(8):  # a handful of commands, then goodbye
        line = _recv_until(stream, b"\n", limit=1024)
        verb = line.split(b" ", 1)[0].strip().upper()
        if not line or verb == b"QUIT":
            if line:
                stream.sendall(b"221 2.0.0 bye\r\n")
            break
        if verb in (b"EHLO", b"HELO"):
            offer = b"" if upgraded else b"250-STARTTLS\r\n"
            stream.sendall(b"250-mail.lab.test\r\n250-SIZE 10240000\r\n" + offer
                           + b"250 8BITMIME\r\n")
        elif verb == b"STARTTLS" and not upgraded:
            stream.sendall(b"220 2.0.0 ready to start TLS\r\n")
            try:
                stream = ctx.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                _log(f"smtp {peer} STARTTLS handshake failed: {exc}")
                conn.close()
                return
            upgraded = True
            _log(f"smtp {peer} STARTTLS {stream.version()}")  # type: ignore[attr-defined]
        else:
            stream.sendall(b"502 5.5.2 command not implemented\r\n")
    stream.close()


def _serve_garbage(conn: socket.socket, peer: str, size: int) -> None:
    # Seeded: the same bytes every run, so a failure can be reproduced byte for byte.
    data = random.Random(443).randbytes(size)
    sent = 0
    try:
        while sent < len(data):
            sent += conn.send(data[sent:sent + 65536])
    except OSError as exc:
        _log(f"garbage {peer} stopped after {sent} bytes: {exc}")
    else:
        _log(f"garbage {peer} sent {sent} bytes")
    conn.close()


def _serve_silent(conn: socket.socket, peer: str, hold: float) -> None:
    conn.settimeout(hold)
    got = 0
    try:
        while got < 1 << 20:  # read and drop, bounded; never answer
            chunk = conn.recv(4096)
            if not chunk:
                break
            got += len(chunk)
    except OSError:
        pass
    _log(f"silent {peer} got {got} bytes, said nothing")
    conn.close()


def handler_for(args: argparse.Namespace) -> Callable[[socket.socket, str], None]:
    """The per-connection function of the chosen mode."""
    if args.mode == "tls":
        if not args.cert or not args.key:
            raise SystemExit("--mode tls needs --cert and --key")
        ctx = server_context(args.cert, args.key, args.client_ca, args.min_version,
                             args.max_version)
        return lambda conn, peer: _serve_tls(conn, peer, ctx)
    if args.mode == "smtp-starttls":
        if not args.cert or not args.key:
            raise SystemExit("--mode smtp-starttls needs --cert and --key")
        ctx = server_context(args.cert, args.key, args.client_ca, args.min_version,
                             args.max_version)
        return lambda conn, peer: _serve_smtp_starttls(conn, peer, ctx)
    if args.mode == "plain-http":
        return _serve_plain_http
    if args.mode == "ssh-banner":
        return lambda conn, peer: _serve_banner(conn, peer, SSH_BANNER, "ssh")
    if args.mode == "smtp-banner":
        return lambda conn, peer: _serve_banner(conn, peer, SMTP_BANNER, "smtp")
    if args.mode == "garbage":
        return lambda conn, peer: _serve_garbage(conn, peer, args.garbage_bytes)
    return lambda conn, peer: _serve_silent(conn, peer, args.hold)


def _run_one(handle: Callable[[socket.socket, str], None], conn: socket.socket,
             peer: str) -> None:
    try:
        conn.settimeout(IO_TIMEOUT)
        handle(conn, peer)
    except Exception as exc:  # one bad connection never stops the server
        _log(f"{peer} error: {type(exc).__name__}: {exc}")
        try:
            conn.close()
        except OSError:
            pass
    finally:
        _slots.release()


def serve(listen: list[tuple[str, int]], handle: Callable[[socket.socket, str], None],
          ready: Optional[str]) -> None:
    """Accept on every address forever, one bounded thread per connection."""
    selector = selectors.DefaultSelector()
    for host, port in listen:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(64)
        selector.register(sock, selectors.EVENT_READ)
    write_ready(ready)
    _log(f"listening on {', '.join(f'{h}:{p}' for h, p in listen)}")
    while True:
        for key, _ in selector.select():
            try:
                conn, peer = key.fileobj.accept()  # type: ignore[union-attr]
            except OSError:
                continue
            if not _slots.acquire(blocking=False):
                _log(f"{peer[0]} refused: {MAX_CONNECTIONS} connections already")
                conn.close()
                continue
            threading.Thread(target=_run_one, args=(handle, conn, peer[0]), daemon=True).start()


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point: ``python -m netcheck.lab.tlsserver --listen ADDR:PORT ...``."""
    parser = argparse.ArgumentParser(prog="python -m netcheck.lab.tlsserver",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", type=parse_listen, action="append", required=True,
                        metavar="ADDR:PORT", help="address to listen on (repeatable)")
    parser.add_argument("--mode", choices=MODES, default="tls")
    parser.add_argument("--cert", help="server certificate (PEM)")
    parser.add_argument("--key", help="its private key (PEM)")
    parser.add_argument("--client-ca", help="demand a client certificate issued by this CA")
    parser.add_argument("--min-version", choices=sorted(VERSIONS))
    parser.add_argument("--max-version", choices=sorted(VERSIONS))
    parser.add_argument("--garbage-bytes", type=int, default=1 << 20)
    parser.add_argument("--hold", type=float, default=30.0,
                        help="silent mode: how long to hold a connection open")
    parser.add_argument("--ready", help="file to create once listening")
    args = parser.parse_args(argv)
    handle = handler_for(args)
    try:
        serve(args.listen, handle, args.ready)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
