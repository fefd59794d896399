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

The package, by concern: ``plaintext`` (a plain-text answer on a TLS port), ``certs``
(CertSummary, host names), ``context`` (client contexts, shared per run), ``conn`` (one
connection: its socket, its attempt, the message callback), ``attempt`` (one handshake through
memory BIOs), ``starttls`` (the plain-text upgrade). Here: :func:`handshake` and its result,
:func:`shared_handshake`, and every name importable from ``netcheck.probes.tls`` as before the
split.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Sequence

from netcheck.lazy import asyncio
from netcheck.probes.tls.attempt import (
    MAX_CHAIN,
    POST_HANDSHAKE_PEEK,
    _alert_from_reason,
    _attempt,
    _chain_der,
)
from netcheck.probes.tls.certs import CertSummary, hostname_matches, summarize_der, summarize_pem
from netcheck.probes.tls.conn import ALERTS, MAX_HANDSHAKE_BYTES, _Attempt
from netcheck.probes.tls.context import CONTEXT_TTL, client_context, shared_context
from netcheck.probes.tls.plaintext import (
    MAX_BANNER_CHARS,
    _printable,
    banner_protocol,
    first_line,
    is_text,
    looks_like_tls,
)
from netcheck.probes.tls.starttls import STARTTLS_FOR_SCHEME

if TYPE_CHECKING:
    from netcheck.runner import Context

# Every public name the module had before it became a package.
__all__ = [
    "ALERTS", "ALPN_FOR_SCHEME", "CONTEXT_TTL", "CertSummary", "MAX_BANNER_CHARS", "MAX_CHAIN",
    "MAX_HANDSHAKE_BYTES", "POST_HANDSHAKE_PEEK", "STARTTLS_FOR_SCHEME", "TlsResult",
    "banner_protocol", "client_context", "first_line", "handshake", "hostname_matches",
    "is_text", "looks_like_tls", "shared_handshake", "summarize_der", "summarize_pem",
    # private, reached from outside (http's client reads _chain_der; tests, _alert_from_reason)
    "_alert_from_reason", "_chain_der",
]


# ALPN offered per scheme (the HTTP check offers the same). Mail servers get none: some
# that know ALPN reject a protocol name they do not expect.
ALPN_FOR_SCHEME: dict[str, tuple[str, ...]] = {"https": ("h2", "http/1.1")}


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
        verifying = shared_context(cafile, cert, key, True, alpn)
        plain = shared_context(cafile, cert, key, False, alpn)
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
