"""TLS: contexts and handshakes. Measures only; the checks judge.

:func:`handshake` connects (non-blocking, asyncio) and drives OpenSSL through memory BIOs, so
every byte the server sends passes through here first. That is what lets it tell apart:

- a port that answers in plain text (``HTTP/1.1 400``, ``SSH-2.0-…``, ``220 …``) or with
  binary garbage: the first bytes are not a TLS record header;
- silence after the ClientHello, an immediate close, an alert from the server (protocol
  version, handshake failure, certificate required…), a local refusal by OpenSSL;
- a certificate that does not verify: the handshake is made with verification first; when
  the certificate is what fails it, a second handshake without verification reads what the
  server presents (version, cipher, ALPN, chain), so the evidence is complete and the reason
  exact (``verify_code`` / ``verify_message``).

Reads are bounded in size (``MAX_HANDSHAKE_BYTES``) and time (``timeout``), so a hostile
server that sends megabytes or nothing costs at most the timeout. Nothing here prints; key
files are only ever named by path, never read back into the result.
"""

from __future__ import annotations

import math
import os
import socket
import ssl
import sys
import time
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from netcheck.lazy import asyncio

if TYPE_CHECKING:
    from netcheck.runner import Context

# A server's certificate chain is rarely over 20 KB; anything past this is not a handshake.
MAX_HANDSHAKE_BYTES = 256 * 1024
# How much plain text is kept as evidence (the first line of a banner or status line).
MAX_BANNER_CHARS = 200
# After the handshake, wait this long for a TLS 1.3 server's verdict on our (absent) client
# certificate when we cannot tell whether it asked for one (no message callback).
POST_HANDSHAKE_PEEK = 0.3
MAX_CHAIN = 10
# ALPN offered per scheme (the HTTP check offers the same). Mail servers get none: some
# that know ALPN reject a protocol name they do not expect.
ALPN_FOR_SCHEME: dict[str, tuple[str, ...]] = {"https": ("h2", "http/1.1")}

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

# What well-known plain-text services say first (or answer to a ClientHello).
_BANNERS: tuple[tuple[str, str], ...] = (
    ("HTTP/", "HTTP"),
    ("SSH-", "SSH"),
    ("220 ", "SMTP or FTP"),
    ("220-", "SMTP or FTP"),
    ("+OK", "POP3"),
    ("-ERR", "POP3"),
    ("* OK", "IMAP"),
    ("* PREAUTH", "IMAP"),
    ("* BYE", "IMAP"),
    ("RFB ", "VNC"),
    ("<!DOCTYPE", "HTTP (a body without headers)"),
    ("<html", "HTTP (a body without headers)"),
    ("421 ", "SMTP or FTP"),
    ("554 ", "SMTP"),
)


def client_context(cafile: Optional[str] = None, cert: Optional[str] = None,
                   key: Optional[str] = None, verify: bool = True,
                   alpn: Sequence[str] = ()) -> ssl.SSLContext:
    """A client context: system CAs plus ``cafile``, an optional client certificate.

    With ``verify=False`` the handshake completes whatever the certificate is, so that a
    failing certificate can still be read and shown exactly (and the system CAs, ~30 ms
    to load, are not loaded). ``SSLKEYLOGFILE`` is honoured as by
    ``ssl.create_default_context``, so a capture of the run can be decrypted in Wireshark.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # hostname checked, CERT_REQUIRED
    if verify:
        _load_system_cas(ctx)
        if cafile:
            ctx.load_verify_locations(cafile=cafile)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    keylog = os.environ.get("SSLKEYLOGFILE")
    if keylog and not sys.flags.ignore_environment and hasattr(ctx, "keylog_filename"):
        ctx.keylog_filename = keylog
    if cert:
        ctx.load_cert_chain(cert, key)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def _load_system_cas(ctx: ssl.SSLContext) -> None:
    """The system's trusted CAs, looked up lazily where the system keeps a hashed directory.

    Loading the whole bundle parses every CA (~30 ms); OpenSSL's hashed directory
    (/etc/ssl/certs on Debian, kept in step with the bundle by update-ca-certificates)
    yields the one CA a chain needs, when it needs it (~1 ms). An SSL_CERT_FILE or
    SSL_CERT_DIR in the environment is honoured through the default loading.
    """
    paths = ssl.get_default_verify_paths()
    custom = os.environ.get(paths.openssl_cafile_env) or os.environ.get(paths.openssl_capath_env)
    capath = paths.capath
    if not custom and capath and os.path.isdir(capath) and any(
            name.endswith(".0") for name in os.listdir(capath)[:400]):
        ctx.load_verify_locations(capath=capath)
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)


# Reused for a minute at most, and only while the files named are unchanged: a long-lived
# process (batch, the exporter) must see a renewed CA bundle or client certificate.
CONTEXT_TTL = 60.0
_contexts: dict[tuple[Any, ...], tuple[float, ssl.SSLContext]] = {}


def _file_stamp(path: Optional[str]) -> Optional[tuple[str, int]]:
    if not path:
        return None
    try:
        return path, os.stat(path).st_mtime_ns
    except OSError:
        return path, -1


def _shared_context(cafile: Optional[str], cert: Optional[str], key: Optional[str],
                    verify: bool, alpn: Sequence[str]) -> ssl.SSLContext:
    """One context per settings, shared by every address and attempt of a run (loading the
    system CAs costs ~30 ms each time). Its message callback dispatches to the attempt that
    owns each connection."""
    settings = (_file_stamp(cafile), _file_stamp(cert), _file_stamp(key), verify, tuple(alpn))
    now = time.monotonic()
    cached = _contexts.get(settings)
    if cached is not None and now - cached[0] < CONTEXT_TTL:
        return cached[1]
    ctx = client_context(cafile, cert, key, verify, alpn)
    if hasattr(ctx, "_msg_callback"):
        ctx._msg_callback = _dispatch_message
    for stale in [k for k, (made, _) in _contexts.items() if now - made >= CONTEXT_TTL]:
        del _contexts[stale]
    _contexts[settings] = (now, ctx)
    return ctx


# -- certificates ----------------------------------------------------------------------------

@dataclass
class CertSummary:
    """What a person needs to know about one certificate (parsed from its DER)."""

    subject: str
    issuer: str
    san: list[str]
    not_before: str  # RFC 3339, UTC
    not_after: str
    days_left: int  # whole days until not_after (negative once expired)
    serial: str
    signature_algorithm: str
    self_signed: bool
    is_ca: bool
    key: str  # e.g. "EC secp256r1", "RSA 2048"
    sha256: str
    not_yet_valid: bool = False
    san_total: int = 0  # the SAN list is capped; this is how many there were

    @property
    def expired(self) -> bool:
        return self.days_left < 0  # floored: half a day past not_after is already -1

    def to_json(self) -> dict[str, Any]:
        out = dict(vars(self))
        if self.san_total <= len(self.san):
            out.pop("san_total")
        return out

    def brief(self) -> dict[str, Any]:
        """The fields a chain listing shows for each certificate."""
        return {"subject": self.subject, "issuer": self.issuer, "not_after": self.not_after,
                "days_left": self.days_left, "self_signed": self.self_signed}


def _printable(text: str, limit: int = MAX_BANNER_CHARS) -> str:
    """Text from the network made safe to show: printable, one line, bounded."""
    shown = "".join(ch if ch.isprintable() else "." for ch in text[: limit * 2])
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _rfc3339(value: datetime) -> str:
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def summarize_der(der: bytes, now: Optional[datetime] = None) -> CertSummary:
    """Parse one DER certificate into a :class:`CertSummary` (raises ValueError if broken)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    cert = x509.load_der_x509_certificate(der)
    now = now or datetime.now(timezone.utc)
    # cryptography >= 42 has the *_utc properties; older versions return naive UTC values.
    before = _utc(getattr(cert, "not_valid_before_utc", None) or cert.not_valid_before)
    after = _utc(getattr(cert, "not_valid_after_utc", None) or cert.not_valid_after)
    san: list[str] = []
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        san = [str(v) for v in ext.get_values_for_type(x509.DNSName)]
        san += [str(v) for v in ext.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    except ValueError:  # a malformed extension: show what else there is
        san = []
    is_ca = False
    try:
        is_ca = bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except (x509.ExtensionNotFound, ValueError):
        pass
    public = cert.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        key = f"RSA {public.key_size}"
    elif isinstance(public, ec.EllipticCurvePublicKey):
        key = f"EC {public.curve.name}"
    else:
        key = type(public).__name__.replace("PublicKey", "").lstrip("_")
    try:
        sig = cert.signature_algorithm_oid._name  # e.g. ecdsa-with-SHA256
    except AttributeError:
        sig = cert.signature_algorithm_oid.dotted_string
    subject, issuer = _name_text(cert.subject), _name_text(cert.issuer)
    return CertSummary(
        subject=subject,
        issuer=issuer,
        san=[_printable(s, 100) for s in san[:50]],
        san_total=len(san),
        not_before=_rfc3339(before),
        not_after=_rfc3339(after),
        days_left=math.floor((after - now).total_seconds() / 86400),
        not_yet_valid=before > now,
        serial=format(cert.serial_number, "x"),
        signature_algorithm=str(sig),
        self_signed=_self_signed(cert),
        is_ca=is_ca,
        key=key,
        sha256=cert.fingerprint(hashes.SHA256()).hex(),
    )


def summarize_pem(pem: bytes, now: Optional[datetime] = None) -> CertSummary:
    """Parse one PEM certificate (e.g. a file the lab CA wrote)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(pem)
    return summarize_der(cert.public_bytes(serialization.Encoding.DER), now)


def _name_text(name: Any) -> str:
    try:
        return _printable(name.rfc4514_string(), 300)
    except ValueError:
        return "(unreadable name)"


def _self_signed(cert: Any) -> bool:
    """Issued by itself: same name, and its own key verifies its signature."""
    if cert.subject != cert.issuer:
        return False
    verify = getattr(cert, "verify_directly_issued_by", None)  # cryptography >= 40
    if verify is None:
        return True
    try:
        verify(cert)
        return True
    except Exception:  # signature, algorithm or name mismatch: issued by another key
        return False


def hostname_matches(summary: CertSummary, host: str) -> bool:
    """Does the certificate name ``host`` (RFC 6125: SAN only, one left-most wildcard)?

    Used to say *also* "wrong name" when OpenSSL stopped at an earlier error (an untrusted
    chain is reported before the name is compared).
    """
    import ipaddress

    host = host.rstrip(".").lower()
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    for name in summary.san:
        if ip is not None:
            try:
                if ipaddress.ip_address(name) == ip:
                    return True
            except ValueError:
                continue
            continue
        name = name.rstrip(".").lower()
        if name == host:
            return True
        if name.startswith("*.") and "." in host:
            first, _, rest = host.partition(".")
            if rest == name[2:] and first and "." in rest:
                return True
    return False


# -- plain text on a TLS port ----------------------------------------------------------------

def looks_like_tls(data: bytes) -> Optional[bool]:
    """Is this the start of a TLS record? None while fewer than 3 bytes are known.

    A record starts with its content type (20-24), then version major 3, minor 0-4.
    """
    if not data:
        return None
    if data[0] not in (20, 21, 22, 23, 24):
        return False
    if len(data) < 3:
        return None if len(data) < 2 or data[1] == 3 else False
    return data[1] == 3 and data[2] <= 4


def is_text(data: bytes) -> bool:
    """Mostly printable ASCII (a banner or status line), not binary."""
    sample = data[:128]
    if not sample:
        return False
    printable = sum(1 for b in sample if 32 <= b < 127 or b in (9, 10, 13))
    return printable >= 0.9 * len(sample)


def first_line(data: bytes) -> str:
    """The first line of a plain-text answer, printable and at most MAX_BANNER_CHARS."""
    line = data.split(b"\n", 1)[0].rstrip(b"\r")
    return _printable(line.decode("latin-1"))


def banner_protocol(line: str) -> Optional[str]:
    """The plain-text protocol a first line belongs to (HTTP, SSH, SMTP…), if recognised."""
    for prefix, proto in _BANNERS:
        if line.upper().startswith(prefix.upper()):
            return proto
    return None


# -- the handshake ---------------------------------------------------------------------------

@dataclass
class TlsResult:
    """What a TLS handshake with address:port met. Facts only; the checks judge."""

    address: str
    port: int
    server_name: Optional[str]  # SNI sent (None for an IP literal)
    # ok | connect_failed | no_answer | closed | plaintext | binary | oversized | stalled |
    # tls_error | no_starttls | setup_error
    state: str = "no_answer"
    alpn_offered: list[str] = field(default_factory=list)
    version: Optional[str] = None
    cipher: Optional[str] = None
    alpn: Optional[str] = None
    connect_ms: Optional[float] = None
    handshake_ms: Optional[float] = None
    waited_s: Optional[float] = None  # how long silence was waited for
    error_reason: Optional[str] = None  # OpenSSL's reason, e.g. TLSV1_ALERT_PROTOCOL_VERSION
    error_text: Optional[str] = None
    alert: Optional[str] = None  # the alert the server sent, e.g. "certificate required"
    alert_code: Optional[int] = None
    post_handshake: bool = False  # the failure came after our side finished the handshake
    cert_requested: Optional[bool] = None  # None: could not be observed
    cert_sent: bool = False
    plaintext: Optional[str] = None  # first line the server sent in the clear
    banner_protocol: Optional[str] = None
    first_bytes: Optional[str] = None  # hex, when the answer was binary
    bytes_received: int = 0
    certificate: Optional[CertSummary] = None
    chain: list[CertSummary] = field(default_factory=list)
    cert_parse_error: Optional[str] = None
    verified: Optional[bool] = None  # None: verification never got to run
    verify_code: Optional[int] = None
    verify_message: Optional[str] = None
    handshakes: int = 0
    starttls: Optional[str] = None
    starttls_detail: Optional[str] = None
    legacy_version: Optional[str] = None  # the version an old server does speak, if found

    @property
    def ok(self) -> bool:
        """The handshake completed (the certificate may still fail verification)."""
        return self.state == "ok"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in vars(self).items():
            if v is None or v == [] or (k == "post_handshake" and not v):
                continue
            if k == "certificate":
                v = v.to_json()
            elif k == "chain":
                v = [c.brief() for c in v]
            elif k in ("connect_ms", "handshake_ms"):
                v = round(v, 1)
            out[k] = v
        return out


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


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host.split("%")[0])
        return True
    except ValueError:
        return False


async def handshake(address: str, port: int, server_name: str, *,
                    alpn: Sequence[str] = (), cafile: Optional[str] = None,
                    cert: Optional[str] = None, key: Optional[str] = None,
                    timeout: float = 2.0, starttls: Optional[str] = None) -> TlsResult:
    """Handshake with address:port as ``server_name`` (SNI unless it is an IP literal).

    First with verification (system CAs + ``cafile``, host name checked): on a healthy
    server that is the only handshake. When the certificate is what fails, a second
    handshake without verification reads what the server presents. ``starttls`` is
    ``smtp``, ``imap`` or ``pop3`` to upgrade a plain-text session first.
    """
    server_name = server_name.split("%")[0]  # a scoped IPv6 literal: the zone is not a name
    sni = not _is_ip(server_name)
    result = TlsResult(address, port, server_name if sni else None,
                       alpn_offered=list(alpn), cert_sent=bool(cert), starttls=starttls)
    try:
        verifying = _shared_context(cafile, cert, key, True, alpn)
        plain = _shared_context(cafile, cert, key, False, alpn)
    except (OSError, ssl.SSLError, ValueError) as exc:
        result.state = "setup_error"
        result.error_text = _printable(f"{type(exc).__name__}: {exc}")
        return result
    first = await _attempt(address, port, server_name, verifying, timeout, starttls)
    result.handshakes = 1
    used = first
    if first.state == "verify_failed":
        result.verified = False
        result.verify_code, result.verify_message = first.verify_code, first.verify_message
        used = await _attempt(address, port, server_name, plain, timeout, starttls)
        result.handshakes = 2
        if not used.chain_der:
            used.chain_der = first.chain_der
    elif first.state == "ok" or first.post_handshake or first.saw_after_certificate:
        # The certificate was checked and accepted before anything else went wrong.
        result.verified = True
    _merge(result, used)
    if result.state == "tls_error" and (used.alert_code == 70  # alert protocol_version
                                        or used.error_reason == "UNSUPPORTED_PROTOCOL"):
        result.legacy_version = await _legacy_version(address, port, server_name, timeout)
    return result


def _alert_name(code: Optional[int]) -> Optional[str]:
    if code is None:
        return None
    return ALERTS.get(code, f"alert {code}")


def _merge(result: TlsResult, attempt: _Attempt) -> None:
    for name in ("state", "version", "cipher", "alpn", "connect_ms", "handshake_ms",
                 "waited_s", "error_reason", "error_text", "post_handshake", "cert_requested",
                 "plaintext", "banner_protocol", "first_bytes", "bytes_received",
                 "starttls_detail"):
        setattr(result, name, getattr(attempt, name))
    if attempt.state == "connect_failed":
        result.error_reason = attempt.connect_errno
    result.alert_code = attempt.alert_code
    result.alert = _alert_name(attempt.alert_code)
    summaries = []
    for der in attempt.chain_der:
        try:
            summaries.append(summarize_der(der))
        except Exception as exc:  # a certificate with odd fields: say so, never crash
            result.cert_parse_error = _printable(f"{type(exc).__name__}: {exc}")
            break
    if summaries:
        result.certificate, result.chain = summaries[0], summaries


async def _legacy_version(address: str, port: int, server_name: str,
                          timeout: float) -> Optional[str]:
    """Which old version the server does speak, when it refused every modern one."""
    try:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    except (ssl.SSLError, ValueError):
        return None
    attempt = await _attempt(address, port, server_name, ctx, timeout, None, peek_after=False)
    return attempt.version if attempt.state == "ok" else None


def shared_handshake(ctx: Context, address: str) -> asyncio.Task[TlsResult]:
    """The run's one TLS handshake with address (target port), shared by every check.

    Keyed ``("tls", address, port)``: the TLS checks and the HTTP check reuse the outcome.
    """
    assert ctx.target is not None
    target, opts = ctx.target, ctx.options
    starttls = STARTTLS_FOR_SCHEME.get(target.scheme)
    return ctx.memo(("tls", address, target.port), lambda: handshake(
        address, target.port, target.host, alpn=ALPN_FOR_SCHEME.get(target.scheme, ()),
        cafile=opts.cafile, cert=opts.cert, key=opts.key, timeout=ctx.timeout,
        starttls=starttls))


# -- STARTTLS --------------------------------------------------------------------------------

STARTTLS_FOR_SCHEME: dict[str, str] = {
    "smtp": "smtp", "submission": "smtp", "imap": "imap", "pop3": "pop3",
}
_MAX_LINE = 1024
_MAX_DIALOG = 16 * 1024


class _Lines:
    """Line reader for the plain-text part of a STARTTLS session (bounded like the rest)."""

    def __init__(self, conn: _Conn) -> None:
        self.conn = conn
        self.buffer = b""

    async def line(self) -> Optional[str]:
        while b"\n" not in self.buffer and len(self.buffer) < _MAX_LINE:
            if self.conn.received > _MAX_DIALOG:
                return None
            data = await self.conn.recv()
            if not data:
                break
            self.buffer += data
        if not self.buffer:
            return None
        raw, _, self.buffer = self.buffer.partition(b"\n")
        return _printable(raw.rstrip(b"\r").decode("latin-1"), _MAX_LINE)

    def silence(self) -> str:
        """Why nothing (more) came: the time ran out or the server closed."""
        if self.conn.left() <= 0:
            return f"nothing within {self.conn.timeout:g} s"
        return "the server closed the connection"

    async def until(self, done: Callable[[str], bool], limit: int = 64) -> list[str]:
        """Lines up to and including the first for which ``done`` is true."""
        lines: list[str] = []
        while len(lines) < limit:
            line = await self.line()
            if line is None:
                break
            lines.append(line)
            if done(line):
                break
        return lines


def _smtp_final(line: str) -> bool:
    return len(line) < 4 or line[3] != "-"


def _ehlo_name(conn: _Conn) -> str:
    """Our own address as an SMTP address literal (RFC 5321 4.1.3)."""
    try:
        local = conn.sock.getsockname()[0]
    except OSError:
        return "netcheck.invalid"
    return f"[IPv6:{local}]" if ":" in local else f"[{local}]"


async def _starttls_dialog(conn: _Conn, protocol: str) -> Optional[str]:
    """Upgrade a plain-text session; None when the server said go, else why it did not."""
    lines = _Lines(conn)
    if protocol == "smtp":
        greeting = await lines.until(_smtp_final)
        if not greeting or not greeting[-1].startswith("220"):
            return f"no SMTP greeting ({greeting[0] if greeting else lines.silence()})"
        await conn.send(f"EHLO {_ehlo_name(conn)}\r\n".encode("ascii"))
        ehlo = await lines.until(_smtp_final)
        if not ehlo or not ehlo[-1].startswith("250"):
            return f"EHLO refused ({ehlo[-1] if ehlo else lines.silence()})"
        if not any(line[4:].upper().startswith("STARTTLS") for line in ehlo):
            return "the server does not offer STARTTLS (not in its EHLO answer)"
        await conn.send(b"STARTTLS\r\n")
        reply = await lines.until(_smtp_final)
        if not reply or not reply[-1].startswith("220"):
            return f"STARTTLS refused ({reply[-1] if reply else lines.silence()})"
        return None
    if protocol == "imap":
        greeting = await lines.line()
        if not greeting or not greeting.upper().startswith("* OK"):
            return f"no IMAP greeting ({greeting or lines.silence()})"
        caps = greeting.upper()
        if "STARTTLS" not in caps:
            await conn.send(b"n1 CAPABILITY\r\n")
            caps = " ".join(await lines.until(lambda x: x.startswith("n1 "))).upper()
        if "STARTTLS" not in caps:
            return "the server does not offer STARTTLS (not in its CAPABILITY)"
        await conn.send(b"n2 STARTTLS\r\n")
        reply = await lines.until(lambda x: x.startswith("n2 "))
        if not reply or not reply[-1].upper().startswith("N2 OK"):
            return f"STARTTLS refused ({reply[-1] if reply else lines.silence()})"
        return None
    if protocol == "pop3":
        greeting = await lines.line()
        if not greeting or not greeting.startswith("+OK"):
            return f"no POP3 greeting ({greeting or lines.silence()})"
        await conn.send(b"CAPA\r\n")
        first = await lines.line()
        caps = await lines.until(lambda x: x == ".") if first and first.startswith("+OK") else []
        if not any(c.upper().startswith("STLS") for c in caps):
            return "the server does not offer STLS (not in its CAPA list)"
        await conn.send(b"STLS\r\n")
        reply = await lines.line()
        if not reply or not reply.startswith("+OK"):
            return f"STLS refused ({reply or lines.silence()})"
        return None
    return f"STARTTLS for {protocol} is not supported"
