"""One connection of a handshake: what it met (``_Attempt``), its socket read and written
within a deadline and a byte budget (``_Conn``, ``_connect``), and the message callback that
notes into the attempt what the server sent (its certificate request, tickets, alerts).
"""

from __future__ import annotations

import socket
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Optional

from netcheck.lazy import asyncio

# A server's certificate chain is rarely over 20 KB; anything past this is not a handshake.
MAX_HANDSHAKE_BYTES = 256 * 1024

# TLS AlertDescription (RFC 8446 section 6, RFC 5246 section 7.2).
ALERTS: dict[int, str] = {
    0: "close notify", 10: "unexpected message", 20: "bad record mac",
    22: "record overflow", 30: "decompression failure", 40: "handshake failure",
    42: "bad certificate", 43: "unsupported certificate", 44: "certificate revoked",
    45: "certificate expired", 46: "certificate unknown", 47: "illegal parameter",
    48: "unknown ca", 49: "access denied", 50: "decode error", 51: "decrypt error",
    70: "protocol version", 71: "insufficient security", 80: "internal error",
    86: "inappropriate fallback", 90: "user canceled", 109: "missing extension",
    110: "unsupported extension", 112: "unrecognized name",
    113: "bad certificate status response", 115: "unknown psk identity",
    116: "certificate required", 120: "no application protocol",
}
# Handshake message types seen through the message callback.
_HS_CERTIFICATE, _HS_CERT_REQUEST, _HS_NEW_SESSION_TICKET = 11, 13, 4
_CT_ALERT, _CT_HANDSHAKE, _CT_APPLICATION = 21, 22, 23


@dataclass
class _Attempt:
    """One connection's handshake, before the two attempts are merged."""

    state: str = "no_answer"
    version: Optional[str] = None
    cipher: Optional[str] = None
    alpn: Optional[str] = None
    connect_ms: Optional[float] = None
    handshake_ms: Optional[float] = None
    waited_s: Optional[float] = None
    error_reason: Optional[str] = None
    error_text: Optional[str] = None
    alert_code: Optional[int] = None
    post_handshake: bool = False
    cert_requested: Optional[bool] = None
    saw_certificate: bool = False
    saw_after_certificate: bool = False
    tickets: int = 0
    plaintext: Optional[str] = None
    banner_protocol: Optional[str] = None
    first_bytes: Optional[str] = None
    bytes_received: int = 0
    chain_der: list[bytes] = field(default_factory=list)
    verify_code: Optional[int] = None
    verify_message: Optional[str] = None
    connect_errno: Optional[str] = None
    starttls_detail: Optional[str] = None


class _Conn:
    """A non-blocking socket read and written with a deadline and a byte budget."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self.sock = sock
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.received = 0
        self.loop = asyncio.get_running_loop()

    def left(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    async def send(self, data: bytes) -> None:
        if data:
            await asyncio.wait_for(self.loop.sock_sendall(self.sock, data), self.left() or 0.001)

    async def recv(self, limit: Optional[float] = None) -> Optional[bytes]:
        """Up to 16 KB; b"" at EOF; None when nothing came in time (or a budget ran out)."""
        wait = self.left() if limit is None else min(limit, self.left())
        if wait <= 0 or self.received >= MAX_HANDSHAKE_BYTES:
            return None
        try:
            data = await asyncio.wait_for(self.loop.sock_recv(self.sock, 16384), wait)
        except asyncio.TimeoutError:
            return None
        self.received += len(data)
        return data


def _sockaddr(address: str, port: int) -> tuple[Any, ...]:
    if ":" in address:
        host, _, zone = address.partition("%")
        return (host, port, 0, socket.if_nametoindex(zone) if zone else 0)
    return (address, port)


async def _connect(address: str, port: int, timeout: float,
                   attempt: _Attempt) -> Optional[socket.socket]:
    import errno as errno_mod

    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    start = time.monotonic()
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(
            sock, _sockaddr(address, port)), timeout)
    except asyncio.TimeoutError:
        attempt.state, attempt.connect_errno = "connect_failed", "ETIMEDOUT"
        sock.close()
        return None
    except OSError as exc:
        attempt.state = "connect_failed"
        attempt.connect_errno = errno_mod.errorcode.get(exc.errno or 0, str(exc))
        sock.close()
        return None
    attempt.connect_ms = (time.monotonic() - start) * 1000
    return sock


# Which attempt each live connection belongs to, for the shared contexts' message callback.
_watched: weakref.WeakKeyDictionary[Any, _Attempt] = weakref.WeakKeyDictionary()


def _dispatch_message(conn: Any, direction: str, version: Any, content_type: Any,
                      msg_type: Any, data: bytes) -> None:
    """Note what the server sent: its Certificate, CertificateRequest, tickets, alerts."""
    try:
        attempt = _watched.get(conn)
        if attempt is None or direction != "read":
            return
        ctype, mtype = int(content_type), int(msg_type)
        if ctype == _CT_HANDSHAKE:
            if mtype == _HS_CERTIFICATE:
                attempt.saw_certificate = True
            elif attempt.saw_certificate:
                attempt.saw_after_certificate = True
            if mtype == _HS_CERT_REQUEST:
                attempt.cert_requested = True
            elif mtype == _HS_NEW_SESSION_TICKET:
                attempt.tickets += 1
        elif ctype == _CT_ALERT and mtype != 0:
            attempt.alert_code = mtype
    except Exception:  # a callback must never break the handshake it watches
        pass
