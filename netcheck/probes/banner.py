"""What a service says first: greetings read with bounded time and bytes, and one exchange.

Many services speak before the client does (SSH's version line, SMTP's ``220``, POP3's
``+OK``, IMAP's ``* OK``); others wait (HTTP, TLS, DNS over TCP). This probe connects, reads
what comes within a short wait, renders it printable, and says what protocol it looks like —
so a check can tell "an SSH server on port 80" from "a silent web server" without guessing.

Where a protocol needs it, one exchange follows: SMTP's ``EHLO`` (the capabilities, STARTTLS
among them) and ``QUIT``. A DNS target is asked a question with dnspython. Nothing here judges;
the checks in ``checks/application/`` do.
"""

from __future__ import annotations

import errno
import re
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from netcheck.lazy import asyncio

if TYPE_CHECKING:
    import ssl

# A greeting longer than this is not a greeting; SMTP's EHLO reply with every extension
# fits in a few hundred bytes.
MAX_GREETING_BYTES = 4096
# How long a generic ``tcp://`` banner is waited for: long enough for a local service to
# speak, short enough that a service that waits for the client costs little.
GENERIC_WAIT = 0.5
EHLO_NAME = "netcheck.invalid"  # RFC 6761: a name that can never be anyone's real one

# Ports whose registered protocol (IANA service names) has the client speak first: a server
# there sends nothing until asked, so a greeting is not waited for. Implicit-TLS ports are
# here too (the client's ClientHello comes first). Servers that greet (SMTP 25/587, FTP 21,
# SSH 22, POP3 110, IMAP 143, MySQL 3306, VNC 5900) are not.
CLIENT_FIRST_PORTS: dict[int, str] = {
    53: "DNS", 80: "HTTP", 88: "Kerberos", 111: "ONC RPC", 389: "LDAP", 443: "HTTPS",
    445: "SMB", 465: "SMTPS", 636: "LDAPS", 853: "DNS over TLS", 993: "IMAPS", 995: "POP3S",
    1433: "MS SQL", 1521: "Oracle", 1883: "MQTT", 2049: "NFS", 2379: "etcd",
    3128: "HTTP proxy", 3389: "RDP", 5432: "PostgreSQL", 5672: "AMQP", 6379: "Redis",
    6443: "HTTPS", 8000: "HTTP", 8080: "HTTP", 8443: "HTTPS", 8883: "MQTT over TLS",
    9090: "HTTP", 9092: "Kafka", 9100: "HTTP", 9200: "HTTP", 11211: "memcached",
    27017: "MongoDB",
}


def client_speaks_first(port: int) -> Optional[str]:
    """The protocol registered on ``port`` when its client speaks first, else None.

    None means "unknown, or the server greets": only then is a greeting worth waiting for.
    """
    return CLIENT_FIRST_PORTS.get(port)

# First bytes -> what they are. Order matters: the most specific first.
_TLS_RECORD = re.compile(rb"^[\x14-\x17]\x03[\x00-\x04]")


def printable(data: bytes, limit: int = 200) -> str:
    """Bytes as one line a person can read: control and non-ASCII bytes as ``\\xNN``.

    CR and LF become ``\\r`` and ``\\n`` so a multi-line greeting stays on one line; the
    result is cut at ``limit`` characters with ``...``.
    """
    out: list[str] = []
    size = 0
    for byte in data:
        if 32 <= byte < 127:
            piece = chr(byte)
        elif byte == 10:
            piece = "\\n"
        elif byte == 13:
            piece = "\\r"
        elif byte == 9:
            piece = "\\t"
        else:
            piece = f"\\x{byte:02x}"
        if size + len(piece) > limit:
            out.append("...")
            break
        out.append(piece)
        size += len(piece)
    return "".join(out)


def first_line(data: bytes, limit: int = 120) -> str:
    """The first non-empty line of ``data``, printable and bounded."""
    for line in data.splitlines():
        if line.strip():
            return printable(line.rstrip(b"\r"), limit)
    return printable(data[:limit], limit)


def _binary_ratio(data: bytes) -> float:
    if not data:
        return 0.0
    odd = sum(1 for b in data if not (32 <= b < 127 or b in (9, 10, 13)))
    return odd / len(data)


def classify(data: bytes) -> str:
    """What the first bytes a port sent look like.

    One of: ``empty``, ``ssh``, ``http``, ``smtp`` (a ``220`` greeting, FTP's too), ``pop3``,
    ``imap``, ``tls`` (a TLS record: the port wants TLS first), ``binary``, ``text``.
    """
    if not data:
        return "empty"
    head = data.lstrip(b"\r\n")[:64]
    if head.startswith(b"SSH-"):
        return "ssh"
    if re.match(rb"^HTTP/\d", head):
        return "http"
    if _TLS_RECORD.match(data):
        return "tls"
    if re.match(rb"^[2-5]\d\d[ -]", head):
        return "smtp"
    if head.startswith((b"+OK", b"-ERR")):
        return "pop3"
    if re.match(rb"^\* (OK|NO|BAD|BYE|PREAUTH)\b", head, re.IGNORECASE):
        return "imap"
    if _binary_ratio(data[:256]) > 0.3:
        return "binary"
    return "text"


# Every kind classify() tells (the checks say them in words: netcheck.checks.application.HEARD).
KINDS = ("ssh", "http", "tls", "smtp", "pop3", "imap", "binary", "text", "empty")


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


class Stream:
    """A connected socket, optionally TLS through memory BIOs, with deadline-bounded reads."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.tls: Optional[ssl.SSLObject] = None
        self._in: Any = None
        self._out: Any = None
        self.received = 0
        # Bytes read past the end of one HTTP response, handed to the next read (keep-alive).
        self.buffer = b""
        self.address: Optional[str] = None
        self.port: Optional[int] = None

    async def _raw_recv(self, until: float) -> bytes:
        left = until - time.monotonic()
        if left <= 0:
            raise asyncio.TimeoutError
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.sock_recv(self.sock, 16384), left)
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
            return b""

    async def _flush(self, until: float) -> None:
        if self._out is not None and self._out.pending:
            await self.sendall_raw(self._out.read(), until)

    async def sendall_raw(self, data: bytes, until: float) -> None:
        left = max(0.01, until - time.monotonic())
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.sock_sendall(self.sock, data), left)

    async def start_tls(self, context: ssl.SSLContext, server_hostname: Optional[str],
                        until: float) -> None:
        import ssl

        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self._in, self._out, server_hostname=server_hostname)
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pass
            await self._flush(until)
            data = await self._raw_recv(until)
            if data:
                self._in.write(data)
            else:
                self._in.write_eof()
        await self._flush(until)

    async def send(self, data: bytes, until: float) -> None:
        if self.tls is not None:
            self.tls.write(data)
            await self._flush(until)
        else:
            await self.sendall_raw(data, until)

    async def recv(self, until: float) -> bytes:
        """Some bytes, or b"" when the peer closed; asyncio.TimeoutError at ``until``."""
        if self.buffer:
            data, self.buffer = self.buffer, b""
            return data
        if self.tls is None:
            data = await self._raw_recv(until)
            self.received += len(data)
            return data
        import ssl

        while True:
            try:
                data = self.tls.read(16384)
                self.received += len(data)
                return data
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""
            await self._flush(until)
            raw = await self._raw_recv(until)
            if raw:
                self._in.write(raw)
            else:
                self._in.write_eof()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _sockaddr(address: str, port: int) -> tuple[Any, ...]:
    if ":" in address:
        host, _, zone = address.partition("%")
        return (host, port, 0, socket.if_nametoindex(zone) if zone else 0)
    return (address, port)


async def open_stream(address: str, port: int, until: float,
                      mss: Optional[int] = None) -> Stream:
    """A TCP connection to address:port; OSError or asyncio.TimeoutError when it fails."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        if mss:
            # Before connect(), so the SYN advertises it and the peer sends small segments.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, int(mss))
        # As curl does: a request written after a TLS Finished must not wait for its ACK
        # (Nagle), or delayed ACKs add 40 ms to the time measured.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        loop = asyncio.get_running_loop()
        left = until - time.monotonic()
        if left <= 0:
            raise asyncio.TimeoutError
        await asyncio.wait_for(loop.sock_connect(sock, _sockaddr(address, port)), left)
    except BaseException:
        sock.close()
        raise
    stream = Stream(sock)
    stream.address, stream.port = address, port
    return stream


def os_error_name(exc: BaseException) -> str:
    """ECONNREFUSED-style name of an OSError, or the exception's own text."""
    if isinstance(exc, OSError) and exc.errno:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


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


# -- DNS: the target itself asked as a name server ----------------------------------------

@dataclass
class DnsTargetAnswer:
    """The answer of a name server to one question."""

    question: str  # "lab.test. SOA"
    transport: str = "udp"
    rcode: Optional[str] = None
    answers: list[str] = field(default_factory=list)
    authoritative: bool = False
    recursion_available: bool = False
    rtt_ms: Optional[float] = None
    error: Optional[str] = None  # timeout | malformed: ... | error text

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"question": self.question, "transport": self.transport}
        if self.rcode is not None:
            out.update(rcode=self.rcode, answers=self.answers[:8], aa=self.authoritative,
                       ra=self.recursion_available)
        if self.rtt_ms is not None:
            out["rtt_ms"] = round(self.rtt_ms, 3)
        if self.error:
            out["error"] = self.error
        return out


async def ask_dns(address: str, port: int, qname: str, rdtype: str, timeout: float,
                  tcp: bool = False) -> DnsTargetAnswer:
    """Ask the server at address:port one question (``dig @address -p port qname rdtype``)."""
    import dns.asyncquery
    import dns.exception
    import dns.flags
    import dns.message
    import dns.rcode

    answer = DnsTargetAnswer(f"{qname} {rdtype}", "tcp" if tcp else "udp")
    query = dns.message.make_query(qname, rdtype)
    query.flags |= dns.flags.RD
    where = address.split("%")[0]
    start = time.monotonic()
    try:
        if tcp:
            response = await dns.asyncquery.tcp(query, where, timeout=timeout, port=port)
        else:
            response = await dns.asyncquery.udp(query, where, timeout=timeout, port=port,
                                                ignore_unexpected=True)
    except (dns.exception.Timeout, asyncio.TimeoutError):
        answer.error = "timeout"
        return answer
    except OSError as exc:
        answer.error = os_error_name(exc)
        answer.rtt_ms = (time.monotonic() - start) * 1000
        return answer
    except (dns.exception.DNSException, ValueError, EOFError) as exc:
        answer.error = f"malformed: {type(exc).__name__}"
        return answer
    answer.rtt_ms = (time.monotonic() - start) * 1000
    answer.rcode = dns.rcode.to_text(response.rcode())
    answer.authoritative = bool(response.flags & dns.flags.AA)
    answer.recursion_available = bool(response.flags & dns.flags.RA)
    for rrset in response.answer:
        answer.answers.extend(f"{rrset.name} {rr.to_text()}" for rr in rrset)
    return answer
