"""A captive portal's web server for the lab, and a connectivity-check server.

::

    python -m netcheck.lab.portalserver --listen ADDR:PORT[,ADDR:PORT...] --mode portal|check
                                        --name HOST [--tls-cert CERT --tls-key KEY] [--ready FILE]

``portal``: what a hotel's sign-in server answers to every request the router sends it (nft
DNAT of port 80, whatever the destination): ``302 Found`` to ``http://HOST/login?url=<the URL
asked for>``, and ``/login`` itself a 200 sign-in page. With ``--tls-cert`` it also answers
TLS (a certificate for HOST, not for the name the client asked for).
``check``: a connectivity-check endpoint of a free network: ``204 No Content`` to everything.

Every request is logged to stderr with its Host and User-Agent. One thread per connection, at
most MAX_CONNECTIONS, one request per connection, everything bounded.
"""

from __future__ import annotations

import argparse
import socket
import ssl
import sys
import threading
from typing import Optional
from urllib.parse import quote

from netcheck.lab.appserver import parse_listen
from netcheck.lab.servers import _log as log
from netcheck.lab.servers import _write_ready as write_ready

MAX_CONNECTIONS = 32
MAX_REQUEST_BYTES = 8 * 1024
IDLE_TIMEOUT = 5.0
SIGN_IN_PAGE = (b"<html><head><title>Welcome - please sign in</title></head><body>"
                b"<form method=post action=/login><input name=room><input name=name>"
                b"<input type=submit value='Sign in'></form></body></html>")


def _read_request(conn: socket.socket) -> Optional[tuple[str, dict[str, str]]]:
    data = b""
    while b"\r\n\r\n" not in data and len(data) < MAX_REQUEST_BYTES:
        chunk = conn.recv(4096)
        if not chunk:
            return None
        data += chunk
    lines = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return None
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return parts[1], headers


def answer(mode: str, name: str, target: str, headers: dict[str, str]) -> bytes:
    """The response bytes for one request (``target``: the request line's path or URL)."""
    if mode == "check":
        return b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
    if target.split("?", 1)[0] == "/login" and headers.get("host", "").split(":")[0] == name:
        return (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(SIGN_IN_PAGE), SIGN_IN_PAGE))
    asked = target if "://" in target else f"http://{headers.get('host', name)}{target}"
    location = f"http://{name}/login?url={quote(asked, safe='')}"
    body = b"<html><body>Please sign in first.</body></html>"
    return (f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Type: text/html\r\n"
            f"Cache-Control: no-store\r\nConnection: close\r\nContent-Length: {len(body)}"
            f"\r\n\r\n").encode("latin-1") + body


def _handle(conn: socket.socket, peer: str, mode: str, name: str,
            context: Optional[ssl.SSLContext], slots: threading.BoundedSemaphore) -> None:
    try:
        conn.settimeout(IDLE_TIMEOUT)
        if context is not None:
            conn = context.wrap_socket(conn, server_side=True)
        request = _read_request(conn)
        if request is None:
            return
        target, headers = request
        log(f"{mode} {peer} {headers.get('host', '-')} {target[:200]!r} "
            f"{headers.get('user-agent', '-')!r}")
        conn.sendall(answer(mode, name, target, headers))
    except (OSError, ssl.SSLError) as exc:
        log(f"{mode} {peer} {type(exc).__name__}: {exc}")
    finally:
        try:
            conn.close()
        except OSError:
            pass
        slots.release()


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point: ``python -m netcheck.lab.portalserver --listen ... --mode ...``."""
    parser = argparse.ArgumentParser(prog="portalserver")
    parser.add_argument("--listen", required=True)
    parser.add_argument("--mode", required=True, choices=("portal", "check"))
    parser.add_argument("--name", required=True, help="the portal's own host name")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--ready")
    args = parser.parse_args(argv)
    context = None
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
    sockets = []
    for address, port in parse_listen(args.listen):
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:  # [::] beside 0.0.0.0 on the same port
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((address, port))
        sock.listen(64)
        sockets.append(sock)
    if args.ready:
        write_ready(args.ready)
    log(f"{args.mode} listening on {args.listen} as {args.name}")
    slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def serve(sock: socket.socket) -> None:
        while True:
            conn, peer = sock.accept()
            slots.acquire()
            threading.Thread(target=_handle, args=(conn, peer[0], args.mode, args.name,
                                                   context, slots), daemon=True).start()

    threads = [threading.Thread(target=serve, args=(s,), daemon=True) for s in sockets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
