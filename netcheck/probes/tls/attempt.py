"""One TCP connection and one handshake (``_attempt``), driven through memory BIOs: the
first bytes sniffed for TLS, the handshake run to its end or failure, the records after it read
when the server may still refuse our certificate, and the chain the server sent.
"""

from __future__ import annotations

import ssl
import time
from typing import Any, Optional

from netcheck.lazy import asyncio
from netcheck.probes.tls.conn import (
    ALERTS,
    MAX_HANDSHAKE_BYTES,
    _Attempt,
    _Conn,
    _connect,
    _dispatch_message,
    _watched,
)
from netcheck.probes.tls.plaintext import (
    _printable,
    banner_protocol,
    first_line,
    is_text,
    looks_like_tls,
)
from netcheck.probes.tls.starttls import _starttls_dialog

# After the handshake, wait this long for a TLS 1.3 server's verdict on our (absent) client
# certificate when we cannot tell whether it asked for one (no message callback).
POST_HANDSHAKE_PEEK = 0.3
MAX_CHAIN = 10


def _chain_der(obj: ssl.SSLObject) -> list[bytes]:
    """The chain as the server sent it: public API (3.13), private one (3.10+), or the leaf."""
    chain: Any = None
    for holder in (obj, getattr(obj, "_sslobj", None)):
        getter = getattr(holder, "get_unverified_chain", None)
        if getter is not None:
            try:
                chain = getter()
            except (ValueError, ssl.SSLError):
                chain = None
            break
    out: list[bytes] = []
    for item in chain or []:
        if isinstance(item, (bytes, bytearray)):
            out.append(bytes(item))
        else:
            try:
                import _ssl

                out.append(item.public_bytes(_ssl.ENCODING_DER))
            except Exception:
                continue
    if not out:
        try:
            leaf = obj.getpeercert(binary_form=True)
            if leaf:
                out.append(leaf)
        except (ValueError, ssl.SSLError):
            pass
    return out[:MAX_CHAIN]


async def _sniff(conn: _Conn, attempt: _Attempt, first: bytes) -> Optional[bytes]:
    """Decide from the first bytes whether the server speaks TLS.

    Returns the bytes to feed to OpenSSL, or None when the answer is not TLS (the attempt
    then records the plain text or the binary as evidence).
    """
    data = first
    while looks_like_tls(data) is None:
        more = await conn.recv()
        if not more:
            break
        data += more
    if looks_like_tls(data):
        return data
    if is_text(data):
        # A banner arrives in one segment; wait a moment for the rest of a split first line.
        while b"\n" not in data and len(data) < 512:
            more = await conn.recv(limit=0.2)
            if not more:
                break
            data += more
        attempt.state = "plaintext"
        attempt.plaintext = first_line(data)
        attempt.banner_protocol = banner_protocol(attempt.plaintext)
    else:
        attempt.state = "binary"
        attempt.first_bytes = data[:16].hex(" ")
    return None


async def _drive(obj: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO,
                 conn: _Conn, attempt: _Attempt, peek_after: bool) -> None:
    """Run the handshake to its end (or its failure), then read the first record after it."""
    sniffed = False
    start = time.monotonic()
    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            await conn.send(outgoing.read())
            data = await conn.recv()
            if data is None:
                attempt.state = "oversized" if conn.received >= MAX_HANDSHAKE_BYTES else (
                    "no_answer" if conn.received == 0 else "stalled")
                # The budget, not the clock: a loaded host overshoots it by milliseconds.
                attempt.waited_s = round(min(conn.timeout, time.monotonic() - start), 2)
                if conn.left() <= 0:
                    attempt.waited_s = round(conn.timeout, 2)
                return
            if not sniffed and data:
                fed = await _sniff(conn, attempt, data)
                if fed is None:
                    return
                sniffed, data = True, fed
            if data:
                incoming.write(data)
            else:
                if conn.received == 0:
                    attempt.state = "closed"
                    return
                incoming.write_eof()
        except ssl.SSLCertVerificationError as exc:
            attempt.state = "verify_failed"
            attempt.verify_code = exc.verify_code
            attempt.verify_message = _printable(str(exc.verify_message or exc.reason or exc))
            attempt.chain_der = _chain_der(obj)
            await _send_quietly(conn, outgoing)
            return
        except ssl.SSLError as exc:
            _record_error(attempt, exc)
            attempt.chain_der = _chain_der(obj)
            await _send_quietly(conn, outgoing)
            return
    attempt.handshake_ms = (time.monotonic() - start) * 1000
    attempt.version = obj.version()
    cipher = obj.cipher()
    attempt.cipher = cipher[0] if cipher else None
    attempt.alpn = obj.selected_alpn_protocol()
    attempt.chain_der = _chain_der(obj)
    attempt.state = "ok"
    await conn.send(outgoing.read())  # our Finished (and, in TLS 1.3, our Certificate)
    await _after_handshake(obj, incoming, conn, attempt, peek_after)


async def _after_handshake(obj: ssl.SSLObject, incoming: ssl.MemoryBIO, conn: _Conn,
                           attempt: _Attempt, peek_after: bool) -> None:
    """Read the first records after the handshake when the server may still say no.

    In TLS 1.3 the server judges our client certificate after our side has finished: its
    "certificate required" alert arrives with the first record read afterwards. When it
    asked for a certificate, wait for its verdict (a session ticket means yes); when we
    could not see whether it asked, peek briefly.
    """
    if attempt.version != "TLSv1.3" or attempt.cert_requested is False:
        return
    if attempt.cert_requested:
        end = conn.deadline
    elif peek_after:
        end = min(conn.deadline, time.monotonic() + POST_HANDSHAKE_PEEK)
    else:
        return
    while True:
        data = await conn.recv(limit=max(0.0, end - time.monotonic()))
        if data is None:
            return  # nothing more in time: no objection from the server
        if data:
            incoming.write(data)
        else:
            incoming.write_eof()
        try:
            obj.read(1)
            return  # application data: the server accepted us
        except ssl.SSLWantReadError:
            if attempt.tickets or attempt.cert_requested is None:
                return  # a ticket (or, unobserved, any record) without an alert: accepted
        except ssl.SSLZeroReturnError:
            return
        except ssl.SSLEOFError as exc:
            if attempt.cert_requested:  # it asked for a certificate, then hung up on us
                _record_error(attempt, exc)
                attempt.post_handshake = True
            return
        except ssl.SSLError as exc:
            _record_error(attempt, exc)
            attempt.post_handshake = True
            return


def _record_error(attempt: _Attempt, exc: ssl.SSLError) -> None:
    attempt.state = "tls_error"
    attempt.error_reason = getattr(exc, "reason", None) or type(exc).__name__
    text = str(exc.args[1] if len(exc.args) > 1 else exc)
    attempt.error_text = _printable(text.split(" (_ssl.c")[0])
    if attempt.alert_code is None:
        attempt.alert_code = _alert_from_reason(attempt.error_reason)


def _alert_from_reason(reason: Optional[str]) -> Optional[int]:
    """OpenSSL names a received alert SSLV3_ALERT_x / TLSV1_ALERT_x / TLSV13_ALERT_x."""
    if not reason or "_ALERT_" not in reason:
        return None
    name = reason.split("_ALERT_", 1)[1].replace("_", " ").lower()
    return next((code for code, text in ALERTS.items() if text == name), None)


async def _send_quietly(conn: _Conn, outgoing: ssl.MemoryBIO) -> None:
    """Send our alert so the server's log says why; never fail on it."""
    try:
        await conn.send(outgoing.read())
    except (OSError, asyncio.TimeoutError):
        pass


async def _attempt(address: str, port: int, hostname: str, context: ssl.SSLContext,
                   timeout: float, starttls: Optional[str],
                   peek_after: bool = True) -> _Attempt:
    """One TCP connection and one handshake."""
    attempt = _Attempt()
    if getattr(context, "_msg_callback", None) is _dispatch_message:
        attempt.cert_requested = False  # observed: it becomes True when the server asks
    sock = await _connect(address, port, timeout, attempt)
    if sock is None:
        return attempt
    conn = _Conn(sock, timeout)
    try:
        if starttls:
            detail = await _starttls_dialog(conn, starttls)
            if detail is not None:
                attempt.state, attempt.starttls_detail = "no_starttls", detail
                return attempt
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        # Python sends no SNI for an IP literal but still checks the certificate against it.
        obj = context.wrap_bio(incoming, outgoing, server_side=False, server_hostname=hostname)
        _watched[obj] = attempt
        await _drive(obj, incoming, outgoing, conn, attempt, peek_after)
        if attempt.state == "ok":
            try:  # close_notify, so the server logs a clean close
                obj.unwrap()
            except (ssl.SSLError, ValueError):
                pass
            await _send_quietly(conn, outgoing)
    except (ConnectionResetError, BrokenPipeError) as exc:
        if attempt.state not in ("plaintext", "binary") and attempt.handshake_ms is None:
            attempt.state = "closed"
            attempt.error_reason = type(exc).__name__
    except (OSError, asyncio.TimeoutError) as exc:
        if attempt.handshake_ms is None and attempt.state not in ("plaintext", "binary"):
            attempt.state = "no_answer" if isinstance(exc, asyncio.TimeoutError) else "closed"
            attempt.error_reason = type(exc).__name__
    finally:
        attempt.bytes_received = conn.received
        sock.close()
    return attempt
