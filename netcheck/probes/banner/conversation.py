"""One conversation with a service: connect (TLS when asked), read the greeting within bounded
time and bytes, nudge a silent service once, and SMTP's ``EHLO`` and ``QUIT``."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from netcheck.lazy import asyncio
from netcheck.probes.banner.kinds import classify, first_line, printable
from netcheck.probes.banner.stream import Stream, open_stream, os_error_name

if TYPE_CHECKING:
    import ssl

# A greeting longer than this is not a greeting; SMTP's EHLO reply with every extension
# fits in a few hundred bytes.
MAX_GREETING_BYTES = 4096
# How long a generic ``tcp://`` banner is waited for: long enough for a local service to
# speak, short enough that a service that waits for the client costs little.
GENERIC_WAIT = 0.5
EHLO_NAME = "netcheck.invalid"  # RFC 6761: a name that can never be anyone's real one


@dataclass
class BannerResult:
    """What one conversation with a service met."""

    address: str
    port: int
    protocol: str  # what was expected: smtp, pop3, imap, ssh, generic
    state: str = "error"  # answered | silent | closed | connect_failed | tls_failed | error
    greeting: Optional[str] = None  # printable, bounded
    heard: str = "empty"  # classify() of the first bytes
    reply_code: Optional[str] = None  # "220", "554", "+OK", "-ERR", "OK", "BYE", "SSH-2.0"
    tls: bool = False
    tls_version: Optional[str] = None
    capabilities: list[str] = field(default_factory=list)  # SMTP EHLO keywords
    starttls: Optional[bool] = None  # offered by SMTP/IMAP/POP3, when the reply says
    exchange: list[dict[str, str]] = field(default_factory=list)  # [{"sent", "received"}]
    bytes_received: int = 0
    connect_ms: Optional[float] = None
    tls_ms: Optional[float] = None
    greeting_ms: Optional[float] = None  # connected (or TLS done) -> greeting complete
    error: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"address": self.address, "port": self.port,
                               "protocol": self.protocol, "state": self.state,
                               "heard": self.heard}
        for key in ("greeting", "reply_code", "tls_version", "starttls", "error"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.tls:
            out["tls"] = True
        if self.capabilities:
            out["capabilities"] = list(self.capabilities)
        if self.exchange:
            out["exchange"] = [dict(x) for x in self.exchange]
        out["bytes_received"] = self.bytes_received
        out["timings"] = {k: round(v, 3) for k, v in (
            ("connect_ms", self.connect_ms), ("tls_ms", self.tls_ms),
            ("greeting_ms", self.greeting_ms)) if v is not None}
        return out


async def _read_until(stream: Stream, done: Any, until: float, limit: int,
                      buf: bytes = b"") -> tuple[bytes, str]:
    """Read until ``done(buf)`` is true: (bytes, "done" | "closed" | "timeout" | "limit")."""
    while not done(buf):
        if len(buf) >= limit:
            return buf, "limit"
        try:
            data = await stream.recv(until)
        except asyncio.TimeoutError:
            return buf, "timeout"
        if not data:
            return buf, "closed"
        buf += data
    return buf, "done"


def _line_done(buf: bytes) -> bool:
    return b"\n" in buf


def _smtp_done(buf: bytes) -> bool:
    """An SMTP reply is complete at its last line, ``NNN text`` (``NNN-`` lines continue).

    Something that is not SMTP at all is complete at its first line: that is enough to
    say what it is.
    """
    if b"\n" not in buf:
        return False
    if classify(buf) != "smtp":
        return True
    complete = buf[:buf.rfind(b"\n")].split(b"\n")
    return any(re.match(rb"^\d{3}(?: |\r?$)", line) for line in complete)


def _ssh_done(buf: bytes) -> bool:
    """Complete at the version line; RFC 4253 4.2 lets a server send other lines first."""
    if b"\n" not in buf:
        return False
    complete = buf[:buf.rfind(b"\n")].split(b"\n")
    if any(line.startswith(b"SSH-") for line in complete):
        return True
    # Another protocol's first line, or too many lines for a pre-version message.
    return classify(buf) not in ("text",) or len(complete) >= 5


async def probe(protocol: str, address: str, port: int, *, timeout: float,
                tls_context: Optional[ssl.SSLContext] = None,
                server_hostname: Optional[str] = None, wait: Optional[float] = None,
                mss: Optional[int] = None) -> BannerResult:
    """Connect, (TLS when a context is given), read the greeting, and do the one exchange.

    protocol: ``smtp`` (and ``submission``), ``pop3``, ``imap``, ``ssh`` or ``generic``.
    timeout bounds each phase; ``wait`` is how long a generic banner is waited for
    (default GENERIC_WAIT, never more than ``timeout``).
    """
    proto = "smtp" if protocol == "submission" else protocol
    result = BannerResult(address, port, protocol)
    start = time.monotonic()
    try:
        stream = await open_stream(address, port, start + timeout, mss)
    except asyncio.TimeoutError:
        result.state, result.error = "connect_failed", f"connect timed out after {timeout:g} s"
        return result
    except OSError as exc:
        result.state, result.error = "connect_failed", os_error_name(exc)
        return result
    result.connect_ms = (time.monotonic() - start) * 1000
    try:
        if tls_context is not None:
            t0 = time.monotonic()
            try:
                await stream.start_tls(tls_context, server_hostname, t0 + timeout)
            except asyncio.TimeoutError:
                result.state, result.error = "tls_failed", "TLS handshake timed out"
                return result
            except Exception as exc:  # ssl.SSLError and its kin: the reason is what matters
                result.state = "tls_failed"
                result.error = getattr(exc, "verify_message", None) or getattr(
                    exc, "reason", None) or str(exc)
                return result
            result.tls = True
            result.tls_ms = (time.monotonic() - t0) * 1000
            result.tls_version = stream.tls.version() if stream.tls is not None else None
        await _converse(proto, stream, result, timeout, wait)
    finally:
        stream.close()
    return result


async def _converse(proto: str, stream: Stream, result: BannerResult, timeout: float,
                    wait: Optional[float]) -> None:
    t0 = time.monotonic()
    if proto == "generic":
        window = min(timeout, GENERIC_WAIT if wait is None else wait)
        done = _line_done
    else:
        window = timeout
        done = {"smtp": _smtp_done, "ssh": _ssh_done}.get(proto, _line_done)
    buf, how = await _read_until(stream, done, t0 + window, MAX_GREETING_BYTES)
    result.bytes_received = len(buf)
    if buf:
        result.greeting = printable(buf.strip(b"\r\n"), 600)
        result.heard = classify(buf)
        if how == "done":
            result.greeting_ms = (time.monotonic() - t0) * 1000
    if not buf:
        result.state = "closed" if how == "closed" else "silent"
        if result.state == "silent" and proto in NUDGES:
            await _nudge(stream, proto, result, timeout)
        return
    result.state = "answered"
    _reply_code(proto, buf, result)
    if proto == "smtp" and result.heard == "smtp" and (result.reply_code or "").startswith("2"):
        await _ehlo(stream, result, timeout)


# Said to a service that should have spoken first and did not: what comes back tells a hung
# daemon (still nothing) from another protocol on the port (an HTTP server's "400 Bad
# Request"). The empty line ends a request for servers that wait for a whole header block.
NUDGES = {"smtp": b"QUIT\r\n\r\n", "pop3": b"QUIT\r\n\r\n", "imap": b"a1 LOGOUT\r\n\r\n",
          "ssh": b"SSH-2.0-netcheck\r\n\r\n"}
NUDGE_WAIT = 1.0


async def _nudge(stream: Stream, proto: str, result: BannerResult, timeout: float) -> None:
    sent = NUDGES[proto]
    t0 = time.monotonic()
    wait = min(timeout, NUDGE_WAIT)
    try:
        await stream.send(sent, t0 + wait)
    except (OSError, asyncio.TimeoutError):
        return
    reply, how = await _read_until(stream, _line_done, t0 + wait, MAX_GREETING_BYTES)
    label = printable(sent.strip(b"\r\n"), 60) + " (after the silence)"
    result.exchange.append({"sent": label, "received": first_line(reply) if reply
                            else f"({'closed' if how == 'closed' else 'nothing'})"})
    if reply:
        result.heard = classify(reply)
        result.bytes_received += len(reply)


def _reply_code(proto: str, buf: bytes, result: BannerResult) -> None:
    head = buf.lstrip(b"\r\n")
    if result.heard == "smtp":
        result.reply_code = head[:3].decode("ascii")
    elif result.heard == "pop3":
        result.reply_code = "+OK" if head.startswith(b"+OK") else "-ERR"
    elif result.heard == "imap":
        result.reply_code = head[2:].split(None, 1)[0].decode("ascii", "replace").upper()
        if b"STARTTLS" in head.upper():
            result.starttls = True
    elif result.heard == "ssh":
        for line in buf.split(b"\n"):
            if line.startswith(b"SSH-"):
                result.reply_code = line.split(b"-", 2)[1].decode("ascii", "replace")
                result.reply_code = "SSH-" + result.reply_code
                result.greeting = printable(line.rstrip(b"\r"), 255)
                break


async def _ehlo(stream: Stream, result: BannerResult, timeout: float) -> None:
    """EHLO, read the capabilities, QUIT: what ``swaks`` or ``openssl s_client`` would show."""
    t0 = time.monotonic()
    sent = f"EHLO {EHLO_NAME}"
    try:
        await stream.send(sent.encode("ascii") + b"\r\n", t0 + timeout)
    except (OSError, asyncio.TimeoutError) as exc:
        result.exchange.append({"sent": sent, "received": f"(send failed: {os_error_name(exc)})"})
        return
    buf, how = await _read_until(stream, _smtp_done, t0 + timeout, MAX_GREETING_BYTES)
    text = printable(buf.strip(b"\r\n"), 600) if buf else f"({how})"
    result.exchange.append({"sent": sent, "received": text})
    lines = [ln.rstrip(b"\r") for ln in buf.split(b"\n") if ln.strip()]
    if lines and lines[0][:1] == b"2":
        # The first line names the server; the rest are extension keywords.
        result.capabilities = [ln[4:].decode("ascii", "replace").strip()
                               for ln in lines[1:] if len(ln) > 4][:40]
        result.starttls = any(c.upper().split()[0] == "STARTTLS"
                              for c in result.capabilities if c.strip())
    try:
        await stream.send(b"QUIT\r\n", time.monotonic() + min(timeout, 0.5))
        quit_reply, _ = await _read_until(stream, _smtp_done,
                                          time.monotonic() + min(timeout, 0.5), 512)
        result.exchange.append({"sent": "QUIT",
                                "received": printable(quit_reply.strip(b"\r\n"), 200)
                                if quit_reply else "(no reply)"})
    except (OSError, asyncio.TimeoutError):
        pass
