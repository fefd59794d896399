"""``tls.certificate``: is the certificate the server presents one we can trust for this
name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from netcheck.checks.presentation.common import (
    EXPIRING_DAYS,
    _acme,
    _dates,
    _endpoint,
    _handshakes,
    _host_of,
    _s_client,
    _speaks_tls,
    _system_store,
    issuer_is_public,
    short_name,
)

from netcheck.i18n import _, ngettext
from netcheck.model import Hint, Layer, Result, failed, passed, skipped, warned
from netcheck.registry import check

if TYPE_CHECKING:
    from netcheck.probes.tls import CertSummary, TlsResult
    from netcheck.runner import Context

# OpenSSL X509_V_ERR_* codes, grouped by what a person must do about them.
VERIFY_NOT_YET_VALID = {9}
VERIFY_EXPIRED = {10}
VERIFY_HOSTNAME = {62, 64}  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH
VERIFY_SELF_SIGNED = {18}  # depth-zero self-signed


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
    expired = _expired(r, kind, subject)
    if expired is not None:
        found.append(("TLS_CERT_EXPIRED", expired))
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
    expiring = _expiring(r, subject)
    if expiring is not None:
        found.append(("TLS_CERT_EXPIRING", expiring))
    return found


def _expired(r: TlsResult, kind: Optional[str], subject: str) -> Optional[str]:
    """The summary when the certificate (read from itself) or one in its chain (as OpenSSL
    said) is out of its dates."""
    cert = r.certificate
    if cert is not None and cert.days_left < 0:
        return _("certificate {subject} expired on {date} ({ago})").format(
            subject=subject, date=_day(cert.not_after), ago=_ago(cert.days_left))
    if cert is not None and cert.not_yet_valid:
        return _("certificate {subject} is not valid yet: valid from {date} (check the "
                 "clocks)").format(subject=subject, date=_day(cert.not_before))
    if kind in ("expired", "not_yet_valid"):
        culprit = _chain_culprit(r.chain, kind)
        return (_("a certificate in the chain ({subject}) has expired") if kind == "expired"
                else _("a certificate in the chain ({subject}) is not valid yet")).format(
                    subject=culprit)
    return None


def _expiring(r: TlsResult, subject: str) -> Optional[str]:
    """The summary when a verified certificate, or one its chain needs, expires soon."""
    cert = r.certificate
    if not r.verified or cert is None:
        return None
    soonest = min([cert, *[c for c in r.chain[1:] if not c.self_signed]],
                  key=lambda c: c.days_left)
    if soonest.days_left >= EXPIRING_DAYS:
        return None
    days = soonest.days_left
    text = (ngettext("certificate {subject} expires on {date}, in {n} day",
                     "certificate {subject} expires on {date}, in {n} days", days)
            if soonest is cert else
            ngettext("chain certificate {subject} expires on {date}, in {n} day",
                     "chain certificate {subject} expires on {date}, in {n} days", days))
    return text.format(subject=subject if soonest is cert else short_name(soonest.subject),
                       date=_day(soonest.not_after), n=days)


def _chain_culprit(chain: list[CertSummary], kind: str) -> str:
    for c in chain:
        if (kind == "expired" and c.days_left < 0) or (kind == "not_yet_valid"
                                                       and c.not_yet_valid):
            return c.subject
    return _("not shown by the server")


def _certificate_hint(code: str, r: TlsResult, ctx: Context) -> Hint:
    if code == "TLS_CERT_EXPIRED":
        return _expired_hint(r, ctx)
    if code == "TLS_CERT_EXPIRING":
        return _expiring_hint(r, ctx)
    if code == "TLS_CERT_HOSTNAME_MISMATCH":
        return _mismatch_hint(r, ctx)
    return _untrusted_hint(r, ctx)


def _on_server_note() -> str:
    return "   # " + _("on the server")


def _renewal(r: TlsResult) -> tuple[str, bool]:
    """How to get the certificate again, and whether certbot does it.

    certbot only renews what an ACME CA (Let's Encrypt) issued; a certificate of a private
    CA (not in this host's trust store) comes again from that CA.
    """
    cert = r.certificate
    issuer = f"'{short_name(cert.issuer)}'" if cert else _("its issuer")
    public = issuer_is_public(r.chain, _system_store())
    acme = public and _acme(r.chain)
    if public:
        how = (_("renew it on the server with certbot") if acme else
               _("renew it with {issuer}, the CA that issued it").format(issuer=issuer))
    else:
        how = _("{issuer} is a private CA (it is not in this host's trust store): issue a new "
                "certificate from that CA").format(issuer=issuer)
    return how, acme


def _expired_hint(r: TlsResult, ctx: Context) -> Hint:
    name, where, cert = _host_of(ctx), _endpoint(r), r.certificate
    show = [_dates(r)]
    how, acme = _renewal(r)
    if cert is not None and cert.not_yet_valid:
        return Hint(_("The certificate of {name} ({endpoint}) is valid only from {date}: "
                      "the server's (or this host's) clock is wrong, or it was issued with "
                      "a future start. Check both clocks, then reissue it if the date is "
                      "wrong:").format(name=name, endpoint=where, date=_day(cert.not_before)),
                    ["timedatectl   # " + _("here and on the server"), *show])
    when = _day(cert.not_after) if cert is not None else _("some time ago")
    return Hint(_("The certificate of {name} ({endpoint}) expired on {date}: {how}, "
                  "install it and reload the service on port {port}.").format(
                      name=name, endpoint=where, date=when, how=how, port=r.port),
                [*show, *([f"certbot renew{_on_server_note()}"] if acme else [])])


def _expiring_hint(r: TlsResult, ctx: Context) -> Hint:
    name, where, cert = _host_of(ctx), _endpoint(r), r.certificate
    how, acme = _renewal(r)
    on_server = _on_server_note()
    # English says "days" even for one (it always has); the catalogs choose the form.
    when = (ngettext("{date} ({n} days)", "{date} ({n} days)", cert.days_left).format(
        date=_day(cert.not_after), n=cert.days_left) if cert else _("soon"))
    return Hint(_("The certificate of {name} ({endpoint}) expires on {when}: {how} now, "
                  "and make sure renewal happens before the date next time.").format(
                      name=name, endpoint=where, when=when, how=how),
                [_dates(r), *([f"certbot renew --dry-run{on_server}",
                               f"systemctl list-timers 'certbot*'{on_server}"] if acme else [])])


def _mismatch_hint(r: TlsResult, ctx: Context) -> Hint:
    name, where, cert = _host_of(ctx), _endpoint(r), r.certificate
    how, acme = _renewal(r)
    names = ", ".join(cert.san) if cert and cert.san else _("no names")
    return Hint(_("The certificate served at {endpoint} names {names}, not {name}. "
                  "Install a certificate whose subjectAltName includes {name} (or use a "
                  "name it covers); on a shared address check the server's SNI/virtual "
                  "host for this name. For the certificate: {how}.").format(
                      endpoint=where, names=names, name=name, how=how),
                [_dates(r), *([f"certbot certonly -d {name}{_on_server_note()}"] if acme else [])])


def _untrusted_hint(r: TlsResult, ctx: Context) -> Hint:
    """Not trusted here: a --cafile that lacks its CA, a self-signed one, an unknown CA."""
    name, where, cert = _host_of(ctx), _endpoint(r), r.certificate
    show = [_dates(r)]
    issuer = f"'{short_name(cert.issuer)}'" if cert else _("its issuer")
    cafile = ctx.options.cafile
    target = ctx.target.url if ctx.target else name
    if cafile:
        return Hint(_("The certificate of {name} ({endpoint}) is issued by {issuer}, which is "
                      "not in --cafile {cafile} nor in this host's CA store. Use the CA that "
                      "issued it, or have the server send its full chain "
                      "(fullchain.pem):").format(name=name, endpoint=where, issuer=issuer,
                                                 cafile=cafile), show)
    if cert is not None and cert.self_signed:
        return _self_signed_hint(r, name, where, target)
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


def _self_signed_hint(r: TlsResult, name: str, where: str, target: str) -> Hint:
    cert = r.certificate
    assert cert is not None
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
