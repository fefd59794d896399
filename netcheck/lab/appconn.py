"""A lab application server's client connection (:mod:`netcheck.lab.appserver`): a reader
bounded in bytes, STARTTLS after the protocol's go-ahead, and holding a client in silence.
"""

from __future__ import annotations

import socket
import time
from typing import Any, Optional

from netcheck.lab.serving import _log as log

HOLD_SECONDS = 60.0  # how long a hostile route keeps the client busy at most


class Conn:
    """A client connection with a line/until reader bounded in bytes."""

    def __init__(self, sock: socket.socket, peer: str, starttls: Any = None) -> None:
        self.sock = sock
        self.peer = peer
        self.pending = b""
        self.starttls = starttls  # an ssl.SSLContext when STARTTLS is offered
        self.upgraded = False

    @property
    def can_starttls(self) -> bool:
        return self.starttls is not None and not self.upgraded

    def start_tls(self) -> bool:
        """Upgrade to TLS after the protocol's go-ahead (STARTTLS, STLS)."""
        if not self.can_starttls or self.pending:
            return False  # bytes sent before the handshake must not survive it (RFC 3207)
        try:
            self.sock = self.starttls.wrap_socket(self.sock, server_side=True)
        except (OSError, ValueError) as exc:
            log(f"starttls {self.peer} handshake failed: {exc}")
            return False
        self.upgraded = True
        log(f"starttls {self.peer} now {self.sock.version()}")  # type: ignore[attr-defined]
        return True

    def send(self, data: bytes) -> bool:
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def read_until(self, marker: bytes, limit: int) -> Optional[bytes]:
        """Bytes up to and including ``marker``; None at close, timeout or over ``limit``."""
        while marker not in self.pending:
            if len(self.pending) > limit:
                return None
            try:
                chunk = self.sock.recv(4096)
            except OSError:
                return None
            if not chunk:
                return None
            self.pending += chunk
        end = self.pending.index(marker) + len(marker)
        data, self.pending = self.pending[:end], self.pending[end:]
        return data

    def hold(self, seconds: float = HOLD_SECONDS) -> None:
        """Keep the connection open, saying nothing, until the client leaves or time is up."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.sock.settimeout(max(0.05, min(1.0, end - time.monotonic())))
            try:
                if not self.sock.recv(4096):
                    return
            except socket.timeout:
                continue
            except OSError:
                return
