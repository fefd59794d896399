"""``tls.handshake``: does the port speak TLS and complete a handshake with us."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from netcheck.checks.presentation.common import (
    _endpoint,
    _handshakes,
    _host_of,
    _s_client,
    _secs,
    _speaks_tls,
)

from netcheck.hints import server_side_command
from netcheck.i18n import _
from netcheck.model import Hint, Layer, Result, Status, failed, passed, skipped
from netcheck.registry import check

if TYPE_CHECKING:
    from netcheck.probes.tls import TlsResult
    from netcheck.runner import Context

# Alerts a server sends about the client's certificate (or its absence).
CLIENT_CERT_ALERTS = {116, 40, 42, 43, 44, 45, 46, 48, 49}
ABOUT_OUR_CERT_ALERTS = {116, 42, 43, 44, 45, 46, 48, 49}
PROTOCOL_VERSION_REASONS = {"UNSUPPORTED_PROTOCOL", "WRONG_SSL_VERSION", "NO_PROTOCOLS_AVAILABLE",
                            "TLSV1_ALERT_PROTOCOL_VERSION", "VERSION_TOO_LOW"}
CIPHER_REASONS = {"NO_SHARED_CIPHER", "NO_CIPHERS_AVAILABLE", "NO_SUITABLE_SIGNATURE_ALGORITHM",
                  "NO_SHARED_SIGNATURE_ALGORITHMS", "SSLV3_ALERT_INSUFFICIENT_SECURITY",
                  "TLSV1_ALERT_INSUFFICIENT_SECURITY"}


# -- the handshake -----------------------------------------------------------------------------

def handshake_problem(r: TlsResult) -> Optional[tuple[str, str]]:
    """(code, summary) of what went wrong with one handshake, or None when it completed."""
    where = _endpoint(r)
    if r.state == "ok":
        return None
    if r.state == "plaintext":
        text = (_("{endpoint} answers in plain text, not TLS ({protocol}): {text}")
                if r.banner_protocol else _("{endpoint} answers in plain text, not TLS: {text}"))
        return ("TLS_PROTOCOL_MISMATCH", text.format(endpoint=where, protocol=r.banner_protocol,
                                                     text=repr(r.plaintext)))
    if r.state == "binary":
        return ("TLS_PROTOCOL_MISMATCH",
                _("{endpoint} answers with binary data that is not TLS (first bytes "
                  "{bytes})").format(endpoint=where, bytes=r.first_bytes))
    if r.state == "no_answer":
        return ("TLS_HANDSHAKE_FAILED",
                _("{endpoint} accepted the connection but sent no answer to the ClientHello "
                  "within {wait}").format(endpoint=where, wait=_secs(r.waited_s)))
    if r.state == "stalled":
        return ("TLS_HANDSHAKE_FAILED",
                _("the handshake with {endpoint} stalled: {bytes} bytes, then silence for "
                  "{wait}").format(endpoint=where, bytes=r.bytes_received,
                                   wait=_secs(r.waited_s)))
    if r.state == "oversized":
        return ("TLS_HANDSHAKE_FAILED",
                _("{endpoint} sent {bytes} bytes without completing a handshake").format(
                    endpoint=where, bytes=r.bytes_received))
    if r.state == "closed":
        text = (_("{endpoint} reset the connection without answering the ClientHello")
                if r.error_reason == "ConnectionResetError"
                else _("{endpoint} closed the connection without answering the ClientHello"))
        return ("TLS_HANDSHAKE_FAILED", text.format(endpoint=where))
    if r.state == "connect_failed":
        return ("TLS_HANDSHAKE_FAILED",
                _("could not connect to {endpoint} again for the handshake ({error})").format(
                    endpoint=where, error=r.error_reason))
    if r.state == "tls_error":
        return _tls_error(r, where)
    return ("TLS_HANDSHAKE_FAILED", _("TLS with {endpoint} failed ({state})").format(
        endpoint=where, state=r.state))


def _client_cert_refused(r: TlsResult) -> bool:
    alert = r.alert_code
    if alert == 116:  # certificate_required: says it in so many words (TLS 1.3)
        return True
    if r.cert_requested and alert in CLIENT_CERT_ALERTS:
        return True
    if r.cert_sent and alert in ABOUT_OUR_CERT_ALERTS:
        return True
    # Asked, nothing sent, and the server hung up right after our Finished (TLS 1.3).
    return bool(r.cert_requested and r.post_handshake and not r.cert_sent and alert is None)


def _tls_error(r: TlsResult, where: str) -> tuple[str, str]:
    # The alert's name is OpenSSL's (and the RFC's): quoted as it is, in every language.
    alert = " " + _("(alert '{alert}')").format(alert=r.alert) if r.alert else ""
    reason = r.error_reason or ""
    if _client_cert_refused(r):
        if r.cert_sent:
            return ("TLS_CLIENT_CERT_REQUIRED",
                    _("{endpoint} rejected the client certificate given with --cert").format(
                        endpoint=where) + alert)
        return ("TLS_CLIENT_CERT_REQUIRED",
                _("{endpoint} requires a client certificate and none was given").format(
                    endpoint=where) + alert)
    if r.alert_code == 70 or reason in PROTOCOL_VERSION_REASONS:
        text = (_("no TLS version in common with {endpoint}: the server speaks only {version} "
                  "(this client offers TLS 1.2 and 1.3)") if r.legacy_version
                else _("no TLS version in common with {endpoint} (this client offers TLS 1.2 "
                       "and 1.3)"))
        return ("TLS_HANDSHAKE_FAILED",
                text.format(endpoint=where, version=r.legacy_version) + alert)
    if r.alert_code == 71 or reason in CIPHER_REASONS:
        return ("TLS_HANDSHAKE_FAILED", _("no cipher suite in common with {endpoint}").format(
            endpoint=where) + alert)
    if r.alert_code == 40:
        return ("TLS_HANDSHAKE_FAILED",
                _("{endpoint} refused the handshake{alert}: usually no cipher suite, group or "
                  "signature algorithm in common").format(endpoint=where, alert=alert))
    if r.alert_code == 112:
        return ("TLS_HANDSHAKE_FAILED",
                _("{endpoint} does not know the name {name} (SNI)").format(
                    endpoint=where, name=r.server_name) + alert)
    if r.alert_code == 120:
        return ("TLS_HANDSHAKE_FAILED",
                _("no application protocol in common with {endpoint} (ALPN offered: "
                  "{offered})").format(endpoint=where,
                                       offered=", ".join(r.alpn_offered) or _("none")) + alert)
    if reason in ("UNEXPECTED_EOF_WHILE_READING", "SSLEOFError", "EOF"):
        return ("TLS_HANDSHAKE_FAILED",
                _("{endpoint} closed the connection in mid-handshake").format(endpoint=where))
    detail = r.error_text or reason or _("unknown error")
    return ("TLS_HANDSHAKE_FAILED", _("TLS handshake with {endpoint} failed: {detail}").format(
        endpoint=where, detail=detail) + alert)


def _handshake_hint(code: str, r: TlsResult, ctx: Context) -> Hint:
    where = _endpoint(r)
    name = _host_of(ctx)
    s_client = _s_client(r, "-showcerts")
    on_server = "   # " + _("on the server")
    if code == "TLS_PROTOCOL_MISMATCH":
        proto = r.banner_protocol or _("something other than TLS")
        text = _("Port {port} of {address} speaks {protocol}, not TLS. Either the wrong "
                 "service listens there, or the service is plain text: then use its plain "
                 "URL, or enable TLS on it. On the server, see which program listens on "
                 "port {port}:").format(port=r.port, address=r.address, protocol=proto)
        commands = [f"ss -tlnp 'sport = :{r.port}'{on_server}", s_client]
        if r.banner_protocol == "HTTP":
            commands.insert(0, f"curl -v http://{name}:{r.port}/")
        elif r.banner_protocol == "SSH":
            commands.insert(0, f"ssh -p {r.port} {name}   # " + _("it is an SSH server"))
        return Hint(text, commands)
    if code == "TLS_CLIENT_CERT_REQUIRED":
        if r.cert_sent:
            text = _("{name} ({endpoint}) wants a client certificate issued by a CA it trusts; "
                     "the one given ({cert}) was refused ({alert}). Use a certificate from the "
                     "CA the server names in its CertificateRequest:").format(
                         name=name, endpoint=where, cert=ctx.options.cert,
                         alert=r.alert or _("no reason"))
        else:
            text = _("{name} ({endpoint}) uses mutual TLS: it demands a client certificate. "
                     "Give one issued by a CA the server trusts with --cert and --key:").format(
                         name=name, endpoint=where)
        return Hint(text, [f"netcheck {ctx.target.url if ctx.target else name} "
                           "--cert client.crt --key client.key",
                           _s_client(r, "-cert client.crt -key client.key")])
    if r.state == "no_answer":
        return Hint(_("{endpoint} accepts TCP but never answers a TLS ClientHello: the service "
                      "is hung, waits for something else first (a plain-text protocol, "
                      "STARTTLS), or a middlebox swallows TLS. Look at it from here and on the "
                      "server:").format(endpoint=where),
                    [s_client, f"tcpdump -ni any host {r.address} and port {r.port}",
                     server_side_command(r.port)])
    if r.alert_code == 70 or (r.error_reason or "") in PROTOCOL_VERSION_REASONS:
        spoken = r.legacy_version or _("an old TLS version")
        return Hint(_("{name} ({endpoint}) speaks only {version}; current clients (OpenSSL 3) "
                      "need TLS 1.2 or 1.3 (RFC 8996 retired 1.0 and 1.1). Enable TLS 1.2/1.3 "
                      "on the server (nginx: ssl_protocols TLSv1.2 TLSv1.3; apache: "
                      "SSLProtocol -all +TLSv1.2 +TLSv1.3):").format(
                          name=name, endpoint=where, version=spoken),
                    [_s_client(r, "-tls1_2"),
                     f"nmap --script ssl-enum-ciphers -p {r.port} {r.address}"])
    return Hint(_("The TLS handshake with {name} ({endpoint}) fails. See what the server says, "
                  "and its log:").format(name=name, endpoint=where),
                [s_client, f"nmap --script ssl-enum-ciphers -p {r.port} {r.address}",
                 server_side_command(r.port)])


def _handshake_evidence(r: TlsResult, ctx: Context, all_results: list[TlsResult]) -> dict[str, Any]:
    ev: dict[str, Any] = {"address": r.address, "port": r.port, "sni": r.server_name}
    for key in ("version", "cipher", "alpn", "alpn_offered", "handshake_ms", "connect_ms",
                "plaintext", "banner_protocol", "first_bytes", "alert", "alert_code",
                "error_reason", "error_text", "waited_s", "cert_requested",
                "legacy_version", "bytes_received", "starttls", "post_handshake"):
        value = getattr(r, key)
        if value is None or value == [] or (key == "post_handshake" and not value):
            continue
        ev[key] = round(value, 1) if key in ("handshake_ms", "connect_ms") else value
    if ctx.options.cert:
        ev["client_cert"] = ctx.options.cert  # the path only; the key is never shown
    if r.certificate is not None:
        ev["certificate"] = r.certificate.brief()
    if len(all_results) > 1:
        ev["handshakes"] = [{"address": x.address, "state": x.state,
                             **({"version": x.version} if x.version else {})}
                            for x in all_results]
    return ev


@check("tls.handshake", Layer.PRESENTATION, requires=("transport.tcp",), applies=_speaks_tls,
       codes=("TLS_HANDSHAKE_FAILED", "TLS_PROTOCOL_MISMATCH", "TLS_CLIENT_CERT_REQUIRED"))
async def tls_handshake(ctx: Context) -> Result:
    """TLS handshake completes.

    A ClientHello with SNI (the target's name) and ALPN to every address that accepted the
    TCP connection. Plain text or binary instead of a TLS record means the port speaks
    another protocol (its first line is the evidence); silence, an alert (no common version
    or cipher, a client certificate demanded) or a close mean the handshake fails — with
    the version, cipher, ALPN and time when it works.
    """
    results = await _handshakes(ctx)
    if not results:
        return skipped(_("no address accepted the TCP connection"))
    usable = [r for r in results if r.state != "no_starttls"]
    if not usable:
        return skipped(_("no STARTTLS here: {detail} (the application check judges the "
                         "plain-text session)").format(detail=results[0].starttls_detail),
                       starttls=results[0].starttls)
    setup = next((r for r in usable if r.state == "setup_error"), None)
    if setup is not None:
        return Result(Status.ERROR, _("cannot set up TLS here: {error}").format(
            error=setup.error_text))
    problems = [(r, handshake_problem(r)) for r in usable]
    bad = [(r, p) for r, p in problems if p is not None]
    if bad:
        r, (code, summary) = bad[0]
        good = [x.address for x in usable if x.ok]
        if good:
            summary += " " + _("(while {addresses} works)").format(addresses=", ".join(good))
        return failed(code, summary, _handshake_hint(code, r, ctx),
                      **_handshake_evidence(r, ctx, results))
    r = usable[0]
    refused = await _client_cert_refused_by_app(ctx, r, results)
    if refused is not None:
        return refused
    alpn = f", ALPN {r.alpn}" if r.alpn else (", " + _("no ALPN") if r.alpn_offered else "")
    text = (_("{version} {cipher}{alpn} with {endpoint} after STARTTLS ({starttls}) in {ms} ms")
            if r.starttls else _("{version} {cipher}{alpn} with {endpoint} in {ms} ms"))
    return passed(text.format(version=r.version, cipher=r.cipher, alpn=alpn,
                              endpoint=_endpoint(r), starttls=r.starttls,
                              ms=f"{r.handshake_ms or 0:.1f}"),
                  **_handshake_evidence(r, ctx, results))


async def _client_cert_refused_by_app(ctx: Context, r: TlsResult,
                                      results: list[TlsResult]) -> Optional[Result]:
    """A server that asks for a client certificate may finish the handshake without one and
    refuse in HTTP instead of with a TLS alert (nginx's ``ssl_verify_client on`` answers
    "400 No required SSL certificate was sent"): still a missing client certificate."""
    assert ctx.target is not None
    if not (r.cert_requested and not r.cert_sent and ctx.target.scheme == "https"):
        return None
    from netcheck.probes import shared

    answer = await shared.http_get(ctx, r.address)
    title = (answer.hops[-1].title if answer.hops else None) or ""
    status = answer.status
    if not (status in (495, 496) or (status in (400, 403) and "certificate" in title.lower())):
        return None
    code = "TLS_CLIENT_CERT_REQUIRED"
    summary = _("{endpoint} asked for a client certificate, and without one the web server "
                "refuses the request: {status} {title}").format(
        endpoint=_endpoint(r), status=status, title=repr(title))
    return failed(code, summary, _handshake_hint(code, r, ctx),
                  **_handshake_evidence(r, ctx, results), http_status=status, http_title=title)
