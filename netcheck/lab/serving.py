"""What every lab server shares (:mod:`netcheck.lab.servers`, the appserver, the TLS and portal
servers): a log line per event on stderr, the ready file, listening sockets bound even before
their address exists, and reading and closing a TCP connection without a reset.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from typing import Optional

IP_FREEBIND = 15  # linux/in.h
IPV6_FREEBIND = 78  # linux/in6.h


def _log(message: str) -> None:
    """One line per event on stderr; flushed so a crash still leaves the log complete."""
    sys.stderr.write(f"{time.strftime('%H:%M:%S')} {message}\n")
    sys.stderr.flush()


def _write_ready(path: Optional[str]) -> None:
    """Create the ready file atomically (write + rename) so the lab never reads half a file."""
    if not path:
        return
    from netcheck.safefile import open_for_write

    with open_for_write(path, 0o644) as fh:  # as root: a new file, renamed, never a link's
        fh.write(f"{os.getpid()}\n".encode("ascii"))


def _listeners(port: int, kind: int,
               hosts: tuple[str, ...] = ("0.0.0.0", "::")) -> list[socket.socket]:
    """Bind a socket per address (one IPv4, one IPv6-only by default: the wildcards)."""
    socks = []
    for host in hosts:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, kind)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # The lab starts its servers while it still adds their addresses: bind anyway.
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
        if family == socket.AF_INET6:
            # Separate v4 and v6 sockets: each family shows up in `ss` as a real server would.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(128)
        socks.append(sock)
    return socks


def _recv_until(conn: socket.socket, marker: bytes, limit: int = 65536) -> bytes:
    """Read until ``marker`` appears, the peer closes, ``limit`` bytes or the socket timeout."""
    data = b""
    try:
        while marker not in data and len(data) < limit:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    return data


def _close_gracefully(conn: socket.socket) -> None:
    """Send FIN, drain briefly, then close: closing with unread data would send an RST."""
    try:
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(1.0)
        while conn.recv(4096):
            pass
    except OSError:
        pass
    finally:
        conn.close()
