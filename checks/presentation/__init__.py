"""Layers 5-6: TLS, the handshake and the certificate.

Two rungs, in this order (the order is the root-cause tie-break): does the port speak TLS
and complete a handshake with us, then is the certificate it presents one we can trust for
this name. Both judge the same handshakes (``netcheck.probes.tls.shared_handshake``, one per
address that accepted the TCP connection), so the HTTP check can reuse them too.

``netcheck.probes.tls`` (and with it ssl, ~30 ms) is imported inside the checks: listing the
checks must stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from netcheck.hints import server_side_command
from netcheck.i18n import _, ngettext
from netcheck.lazy import asyncio
from netcheck.model import Hint, Layer, Result, Status, failed, passed, skipped, warned
from netcheck.registry import check

if TYPE_CHECKING:
    from netcheck.probes.tls import CertSummary, TlsResult
    from netcheck.runner import Context

EXPIRING_DAYS = 14
TLS_SCHEMES = ("https", "pop3s", "imaps")
STARTTLS_SCHEMES = ("smtp", "submission", "imap", "pop3")
MAX_ADDRESSES = 4  # a name with more addresses is a pool: a few tell the story

# OpenSSL X509_V_ERR_* codes, grouped by what a person must do about them.
VERIFY_NOT_YET_VALID = {9}
VERIFY_EXPIRED = {10}
VERIFY_HOSTNAME = {62, 64}  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH
VERIFY_SELF_SIGNED = {18}  # depth-zero self-signed
# Alerts a server sends about the client's certificate (or its absence).
CLIENT_CERT_ALERTS = {116, 40, 42, 43, 44, 45, 46, 48, 49}
ABOUT_OUR_CERT_ALERTS = {116, 42, 43, 44, 45, 46, 48, 49}
PROTOCOL_VERSION_REASONS = {"UNSUPPORTED_PROTOCOL", "WRONG_SSL_VERSION", "NO_PROTOCOLS_AVAILABLE",
                            "TLSV1_ALERT_PROTOCOL_VERSION", "VERSION_TOO_LOW"}
CIPHER_REASONS = {"NO_SHARED_CIPHER", "NO_CIPHERS_AVAILABLE", "NO_SUITABLE_SIGNATURE_ALGORITHM",
                  "NO_SHARED_SIGNATURE_ALGORITHMS", "SSLV3_ALERT_INSUFFICIENT_SECURITY",
                  "TLSV1_ALERT_INSUFFICIENT_SECURITY"}


def _speaks_tls(ctx: Context) -> Optional[str]:
    if ctx.target is None:
        return _("no target")
    scheme = ctx.target.scheme
    if scheme in TLS_SCHEMES or scheme in STARTTLS_SCHEMES:
        return None
    return _("{scheme}:// does not use TLS").format(scheme=scheme)


def _open_addresses(ctx: Context) -> list[str]:
    """The addresses the transport check connected to (no new TCP probes for the others)."""
    transport = ctx.result("transport.tcp")
    connects = (transport.evidence.get("connects") if transport else None) or []
    return [c["address"] for c in connects
            if isinstance(c, dict) and c.get("state") == "open" and c.get("address")]


async def _handshakes(ctx: Context) -> list[TlsResult]:
    from netcheck.probes import shared, tls

    assert ctx.target is not None
    addresses = _open_addresses(ctx)
    if not addresses:  # the transport check said nothing usable: connect ourselves
        results = await shared.tcp_all(ctx, await ctx.addresses(), ctx.target.port)
        addresses = [r.address for r in results if r.state == "open"]
    addresses = addresses[:MAX_ADDRESSES]
    return list(await asyncio.gather(*(tls.shared_handshake(ctx, a) for a in addresses)))


def _endpoint(r: TlsResult) -> str:
    host = f"[{r.address}]" if ":" in r.address else r.address
    return f"{host}:{r.port}"


def _s_client(r: TlsResult, *extra: str) -> str:
    """The openssl command that shows what this server presents (stdin from /dev/null: it
    prints and ends instead of waiting for the person to type)."""
    parts = ["openssl s_client", "-connect", _endpoint(r)]
    if r.server_name:
        parts += ["-servername", r.server_name]
    if r.starttls:
        parts += ["-starttls", r.starttls]
    return " ".join([*parts, *extra, "</dev/null"])


def _dates(r: TlsResult) -> str:
    """What the slides' ``openssl x509`` shows of the served certificate: notBefore=,
    notAfter=, subject=, issuer= and its names, read straight from the server."""
    return (f"{_s_client(r)} 2>/dev/null | openssl x509 -noout -dates -subject -issuer "
            "-ext subjectAltName")


# Attribute names of ssl's certificate dicts, as RFC 4514 strings write them.
_RDN_SHORT = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
              "countryName": "C", "localityName": "L", "stateOrProvinceName": "ST",
              "domainComponent": "DC", "emailAddress": "1.2.840.113549.1.9.1"}


def _dn_parts(dn: str) -> frozenset[tuple[str, str]]:
    """An RFC 4514 name as a set of (attribute, value) pairs (``CN=R3,O=Let's Encrypt``)."""
    import re

    parts = []
    for rdn in re.split(r"(?<!\\)[,+]", dn):
        key, sep, value = rdn.partition("=")
        if sep:
            parts.append((key.strip(), value.strip().replace("\\", "")))
    return frozenset(parts)


def _system_store() -> frozenset[frozenset[tuple[str, str]]]:
    """The subjects of the CAs this host trusts system-wide (not --cafile)."""
    import ssl

    try:
        cas = ssl.create_default_context().get_ca_certs()
    except (ssl.SSLError, OSError):
        return frozenset()
    return frozenset(frozenset((_RDN_SHORT.get(k, k), v) for rdn in ca.get("subject", ())
                               for k, v in rdn) for ca in cas)


def issuer_is_public(chain: list[CertSummary], store: frozenset[frozenset[tuple[str, str]]]
                     ) -> bool:
    """Whether a CA of this host's system trust store issued the chain: a public CA (or one
    the organisation installed system-wide), not a private CA the server's owner runs."""
    return any(_dn_parts(c.issuer) in store for c in chain)


def _acme(chain: list[CertSummary]) -> bool:
    """Issued by Let's Encrypt (renewed with certbot)."""
    return any("Let's Encrypt" in c.issuer or "ISRG" in c.issuer for c in chain)


def _host_of(ctx: Context) -> str:
    assert ctx.target is not None
    return ctx.target.host


def short_name(dn: str) -> str:
    """The common name of an RFC 4514 name (``CN=www,O=x`` -> ``www``), else the whole name."""
    import re

    found = re.search(r"(?:^|,)CN=((?:\\.|[^,\\])*)", dn)
    return found.group(1).replace("\\", "") if found and found.group(1) else dn


def _secs(value: Optional[float]) -> str:
    return f"{value:g} s" if value is not None else _("the timeout")


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


# -- the certificate -------------------------------------------------------------------------

def verify_kind(code: Optional[int]) -> Optional[str]:
    """What an OpenSSL verify error code amounts to: expired, not_yet_valid, hostname,
    self_signed or untrusted (None for no error)."""
    if code is None or code == 0:
        return None
    if code in VERIFY_EXPIRED:
        return "expired"
    if code in VERIFY_NOT_YET_VALID:
        return "not_yet_valid"
    if code in VERIFY_HOSTNAME:
        return "hostname"
    if code in VERIFY_SELF_SIGNED:
        return "self_signed"
    return "untrusted"


def _day(stamp: str) -> str:
    """2026-11-20T10:00:00Z -> 2026-11-20 10:00 UTC."""
    return stamp.replace("T", " ")[:16] + " UTC"


def _ago(days_left: int) -> str:
    """How long ago a certificate expired; days_left is floored (-1 = within the last day)."""
    n = -(days_left + 1)
    if n <= 0:
        return _("less than a day ago")
    return ngettext("{n} day ago", "{n} days ago", n).format(n=n)


def certificate_problems(r: TlsResult, host: str) -> list[tuple[str, str]]:
    """Every (code, summary) that applies to the certificate one handshake met, worst first.

    Expiry and a wrong name are facts about the certificate itself, true for every client,
    so they come before "untrusted", which depends on this host's CA store. OpenSSL stops at
    its first error (an unknown issuer before the name), so dates and names are also read
    from the certificate itself.
    """
    from netcheck.probes.tls import hostname_matches

    cert, kind = r.certificate, verify_kind(r.verify_code)
    found: list[tuple[str, str]] = []
    subject = short_name(cert.subject) if cert else _("the certificate")
    if cert is not None and cert.days_left < 0:
        found.append(("TLS_CERT_EXPIRED",
                      _("certificate {subject} expired on {date} ({ago})").format(
                          subject=subject, date=_day(cert.not_after), ago=_ago(cert.days_left))))
    elif cert is not None and cert.not_yet_valid:
        found.append(("TLS_CERT_EXPIRED",
                      _("certificate {subject} is not valid yet: valid from {date} (check the "
                        "clocks)").format(subject=subject, date=_day(cert.not_before))))
    elif kind in ("expired", "not_yet_valid"):
        culprit = _chain_culprit(r.chain, kind)
        found.append(("TLS_CERT_EXPIRED",
                      (_("a certificate in the chain ({subject}) has expired") if kind == "expired"
                       else _("a certificate in the chain ({subject}) is not valid yet")).format(
                          subject=culprit)))
    names = ", ".join(cert.san) if cert and cert.san else _("no DNS names")
    if kind == "hostname" or (r.verified is False and cert is not None
                              and not hostname_matches(cert, host)):
        found.append(("TLS_CERT_HOSTNAME_MISMATCH",
                      _("the certificate does not name {host}: it is for {names}").format(
                          host=host, names=names)))
    if r.verified is False and kind in ("self_signed", "untrusted"):
        if kind == "self_signed" or (cert is not None and cert.self_signed):
            why = _("self-signed ({subject})").format(subject=subject)
        else:
            issuer = f"'{short_name(cert.issuer)}'" if cert else _("an unknown issuer")
            why = _("issued by {issuer}, which this host does not trust").format(issuer=issuer)
        found.append(("TLS_CERT_UNTRUSTED",
                      _("the certificate does not verify: {why} (verify error {code}: "
                        "{message})").format(why=why, code=r.verify_code,
                                             message=r.verify_message)))
    if r.verified is False and not found:
        found.append(("TLS_CERT_UNTRUSTED",
                      _("the certificate does not verify (verify error {code}: "
                        "{message})").format(code=r.verify_code, message=r.verify_message)))
    if r.verified and cert is not None:
        soonest = min([cert, *[c for c in r.chain[1:] if not c.self_signed]],
                      key=lambda c: c.days_left)
        if soonest.days_left < EXPIRING_DAYS:
            days = soonest.days_left
            text = (ngettext("certificate {subject} expires on {date}, in {n} day",
                             "certificate {subject} expires on {date}, in {n} days", days)
                    if soonest is cert else
                    ngettext("chain certificate {subject} expires on {date}, in {n} day",
                             "chain certificate {subject} expires on {date}, in {n} days", days))
            found.append(("TLS_CERT_EXPIRING", text.format(
                subject=subject if soonest is cert else short_name(soonest.subject),
                date=_day(soonest.not_after), n=days)))
    return found


def _chain_culprit(chain: list[CertSummary], kind: str) -> str:
    for c in chain:
        if (kind == "expired" and c.days_left < 0) or (kind == "not_yet_valid"
                                                       and c.not_yet_valid):
            return c.subject
    return _("not shown by the server")


def _certificate_hint(code: str, r: TlsResult, ctx: Context) -> Hint:
    name, where = _host_of(ctx), _endpoint(r)
    cert = r.certificate
    show = [_dates(r)]
    on_server = "   # " + _("on the server")
    issuer = f"'{short_name(cert.issuer)}'" if cert else _("its issuer")
    # certbot only renews what an ACME CA (Let's Encrypt) issued; a certificate of a private
    # CA (not in this host's trust store) comes again from that CA.
    public = issuer_is_public(r.chain, _system_store())
    acme = public and _acme(r.chain)
    if public:
        how = (_("renew it on the server with certbot") if acme else
               _("renew it with {issuer}, the CA that issued it").format(issuer=issuer))
    else:
        how = _("{issuer} is a private CA (it is not in this host's trust store): issue a new "
                "certificate from that CA").format(issuer=issuer)
    if code == "TLS_CERT_EXPIRED":
        if cert is not None and cert.not_yet_valid:
            return Hint(_("The certificate of {name} ({endpoint}) is valid only from {date}: "
                          "the server's (or this host's) clock is wrong, or it was issued with "
                          "a future start. Check both clocks, then reissue it if the date is "
                          "wrong:").format(name=name, endpoint=where,
                                           date=_day(cert.not_before)),
                        ["timedatectl   # " + _("here and on the server"), *show])
        when = _day(cert.not_after) if cert is not None else _("some time ago")
        return Hint(_("The certificate of {name} ({endpoint}) expired on {date}: {how}, "
                      "install it and reload the service on port {port}.").format(
                          name=name, endpoint=where, date=when, how=how, port=r.port),
                    [*show, *([f"certbot renew{on_server}"] if acme else [])])
    if code == "TLS_CERT_EXPIRING":
        # English says "days" even for one (it always has); the catalogs choose the form.
        when = (ngettext("{date} ({n} days)", "{date} ({n} days)", cert.days_left).format(
            date=_day(cert.not_after), n=cert.days_left) if cert else _("soon"))
        return Hint(_("The certificate of {name} ({endpoint}) expires on {when}: {how} now, "
                      "and make sure renewal happens before the date next time.").format(
                          name=name, endpoint=where, when=when, how=how),
                    [*show, *([f"certbot renew --dry-run{on_server}",
                               f"systemctl list-timers 'certbot*'{on_server}"] if acme else [])])
    if code == "TLS_CERT_HOSTNAME_MISMATCH":
        names = ", ".join(cert.san) if cert and cert.san else _("no names")
        return Hint(_("The certificate served at {endpoint} names {names}, not {name}. "
                      "Install a certificate whose subjectAltName includes {name} (or use a "
                      "name it covers); on a shared address check the server's SNI/virtual "
                      "host for this name. For the certificate: {how}.").format(
                          endpoint=where, names=names, name=name, how=how),
                    [*show, *([f"certbot certonly -d {name}{on_server}"] if acme else [])])
    cafile = ctx.options.cafile
    target = ctx.target.url if ctx.target else name
    if cafile:
        return Hint(_("The certificate of {name} ({endpoint}) is issued by {issuer}, which is "
                      "not in --cafile {cafile} nor in this host's CA store. Use the CA that "
                      "issued it, or have the server send its full chain "
                      "(fullchain.pem):").format(name=name, endpoint=where, issuer=issuer,
                                                 cafile=cafile), show)
    if cert is not None and cert.self_signed:
        fingerprint = ":".join(cert.sha256[i:i + 2] for i in range(0, len(cert.sha256), 2))
        saved = f"{name}.crt"
        return Hint(_("{name} ({endpoint}) presents a self-signed certificate ({subject}): no "
                      "client trusts it. Replace it with one from a CA (Let's Encrypt: "
                      "certbot), or, if you control the clients, trust this one explicitly "
                      "with --cafile, after checking its fingerprint with the server's "
                      "administrator:").format(name=name, endpoint=where,
                                               subject=short_name(cert.subject)),
                    [f"{_s_client(r)} 2>/dev/null | openssl x509 -out {saved}",
                     f"openssl x509 -noout -fingerprint -sha256 -in {saved}   # "
                     + _("must be {fingerprint}").format(fingerprint=fingerprint.upper()),
                     f"netcheck {target} --cafile {saved}"])
    issuer_name = short_name(cert.issuer) if cert else ""
    slug = "".join(ch if ch.isalnum() or ch in ".-" else "-"
                   for ch in issuer_name).strip("-").lower() or "ca"
    return Hint(_("The certificate of {name} ({endpoint}) is issued by {issuer}, which this "
                  "host does not trust. For a lab or campus CA, get that CA's certificate "
                  "from whoever runs it and pass it with --cafile, or install it system-wide; "
                  "if the issuer is an intermediate, the server must send it "
                  "(fullchain.pem):").format(name=name, endpoint=where, issuer=issuer),
                [*show, f"netcheck {target} --cafile CA.crt   # "
                 + _("CA.crt: the certificate of {issuer}").format(issuer=issuer),
                 f"cp CA.crt /usr/local/share/ca-certificates/{slug}.crt",
                 "update-ca-certificates"])


def _certificate_evidence(r: TlsResult, ctx: Context,
                          problems: list[tuple[str, str]]) -> dict[str, Any]:
    ev: dict[str, Any] = {"address": r.address, "port": r.port, "sni": r.server_name}
    if r.certificate is not None:
        ev.update(r.certificate.to_json())
    ev["chain"] = [c.brief() for c in r.chain]
    ev["verified"] = r.verified
    if r.verify_code is not None:
        ev["verify_code"], ev["verify_message"] = r.verify_code, r.verify_message
    if ctx.options.cafile:
        ev["cafile"] = ctx.options.cafile
    if r.cert_parse_error:
        ev["parse_error"] = r.cert_parse_error
    if len(problems) > 1:
        ev["problems"] = [code for code, _summary in problems]
    return ev


@check("tls.certificate", Layer.PRESENTATION, requires=("tls.handshake",), applies=_speaks_tls,
       codes=("TLS_CERT_EXPIRED", "TLS_CERT_EXPIRING", "TLS_CERT_UNTRUSTED",
              "TLS_CERT_HOSTNAME_MISMATCH"))
async def tls_certificate(ctx: Context) -> Result:
    """Certificate is valid, trusted and names the host.

    Verified against the system CAs plus --cafile, with the target's name checked. When it
    fails, what the server presented is read anyway (a second handshake without
    verification), so subject, SAN, issuer, dates and days left are always the evidence;
    expiring within 14 days is a warning.
    """
    every = await _handshakes(ctx)
    results = [r for r in every if r.ok]
    if not results:
        if every and all(r.state == "no_starttls" for r in every):
            return skipped(_("no STARTTLS here, so no certificate (see tls.handshake)"))
        return skipped(_("no completed handshake to take a certificate from"))
    host = _host_of(ctx)
    judged = [(r, certificate_problems(r, host)) for r in results]
    for severity in ("fail", "warn"):
        for r, problems in judged:
            hard = [p for p in problems if p[0] != "TLS_CERT_EXPIRING"]
            chosen = hard if severity == "fail" else problems
            if not chosen:
                continue
            code, summary = chosen[0]
            if len(chosen) > 1:
                summary += "; " + _("also: {problems}").format(
                    problems="; ".join(s for _code, s in chosen[1:]))
            fine = [x.address for x, found in judged if not found]
            if fine:
                summary += " " + _("(at {address}; {others} is fine)").format(
                    address=r.address, others=", ".join(fine))
            make = failed if severity == "fail" else warned
            return make(code, summary, _certificate_hint(code, r, ctx),
                        **_certificate_evidence(r, ctx, problems))
    r = results[0]
    cert = r.certificate
    if cert is None:
        return passed(_("the certificate verifies (it could not be parsed for details)"),
                      **_certificate_evidence(r, ctx, []))
    left = ngettext("{subject} (issued by '{issuer}') valid until {date}, {n} days left",
                    "{subject} (issued by '{issuer}') valid until {date}, {n} days left",
                    cert.days_left)  # one English form, as ever; the catalogs choose theirs
    return passed(left.format(subject=short_name(cert.subject), issuer=short_name(cert.issuer),
                              date=_day(cert.not_after), n=cert.days_left),
                  **_certificate_evidence(r, ctx, []))
