"""``app.portal``: no captive portal intercepts the traffic.

A captive portal (hotel, airport, guest Wi-Fi) intercepts plain HTTP and sends it to a
sign-in page, and resets or spoofs what it cannot intercept: the TCP, TLS and DNS failures it
causes are its symptoms, and CAPTIVE_PORTAL outranks them (runner.EXPLAINS_BELOW).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from netcheck.checks.middlebox.common import HTTP_SCHEMES, _q, proxy_choice

from netcheck.i18n import N_, _
from netcheck.model import Hint, Layer, Result, failed, passed, skipped
from netcheck.registry import check

if TYPE_CHECKING:
    from netcheck.probes.http import UrlParts
    from netcheck.probes.portal import Finding, PortalFacts
    from netcheck.probes.tcp import TcpResult
    from netcheck.runner import Context

PORTAL = "CAPTIVE_PORTAL"
RESERVE = 0.4  # seconds kept back from the deadline for the report
HOSTNAME_MISMATCH = 62  # X509_V_ERR_HOSTNAME_MISMATCH: a certificate for another name


PORTAL_TEXTS = {
    "check_redirect": N_("the connectivity check {check} is redirected to {portal}: a captive "
                         "portal intercepts plain HTTP"),
    "check_511": N_("the connectivity check {check} is answered '511 Network Authentication "
                    "Required': a captive portal wants a sign-in"),
    "check_content": N_("the connectivity check {check} gets another page than the one it "
                        "expects: a captive portal answers in its place"),
    "target_511": N_("{url} is answered '511 Network Authentication Required': a "
                     "captive portal wants a sign-in"),
    "dns_rewritten": N_("{host} resolves to the portal's own address and {url} is "
                        "redirected to {portal}: a captive portal rewrites DNS answers"),
    "tls_reset": N_("{url} is redirected to {portal} while TLS to {host} is reset: a "
                    "captive portal intercepts HTTP and blocks HTTPS until you sign in"),
    "tls_silent": N_("{url} is redirected to {portal} while TLS to {host} gets no "
                     "answer: a captive portal intercepts HTTP and blocks HTTPS until you sign "
                     "in"),
    "tls_other_name": N_("{url} is redirected to {portal} and TLS to {host} is "
                         "answered with a certificate for another name: a captive portal "
                         "intercepts the traffic"),
}


def _tls_state(connects: list[TcpResult], handshake: Any, host: str) -> Optional[str]:
    """How the target's TLS port fared, in portal terms (see PortalFacts.target_tls).

    A certificate that does not name ``host`` is "other_name" whether or not a CA vouches
    for it (a portal's own certificate is usually both); one that names it but does not
    verify (a private CA without --cafile) is "untrusted": a site's business, not a portal's.
    """
    if connects and not any(c.handshake for c in connects):
        if all(c.state in ("refused", "reset") for c in connects):
            return "reset"
        return "silent" if all(c.state == "timeout" for c in connects) else "failed"
    if handshake is None:
        return None
    if not handshake.ok:
        return "reset" if handshake.state in ("closed", "connect_failed") else "failed"
    if handshake.verified:
        return "ok"
    from netcheck.probes.tls import hostname_matches

    cert = handshake.certificate
    if handshake.verify_code == HOSTNAME_MISMATCH or (
            cert is not None and not hostname_matches(cert, host)):
        return "other_name"
    return "untrusted"


async def _resolve(ctx: Context, name: str) -> list[str]:
    from netcheck.probes import dns

    found = await dns.resolve_like_system(name, ctx.families, ctx.options.resolv_conf,
                                          ctx.options.hosts_file, ctx.timeout)
    return list(found.addresses)


async def _plain_get(ctx: Context, url: str, address: Optional[str]) -> Any:
    """One plain-HTTP GET, direct (a portal intercepts what leaves this host), not followed."""
    from netcheck.probes import http, portal

    async def resolve(name: str) -> list[str]:
        return await _resolve(ctx, name)

    r = await http.fetch(url, address=address, timeout=ctx.timeout,
                         deadline=max(0.2, ctx.time_left() - RESERVE),
                         request_id=ctx.options.request_id, resolve=resolve, max_redirects=0,
                         hop_refusal=ctx.options.hop_refusal)
    return portal.probe_of(url, r)


async def _portal_facts(ctx: Context) -> tuple[PortalFacts, list[str]]:
    """What the portal judgement needs, gathered with as few new packets as possible: the
    target's own connects and handshake are the run's shared ones."""
    from netcheck.probes import portal, shared

    assert ctx.target is not None
    target = ctx.target
    facts = portal.PortalFacts(host=target.host)
    looked: list[str] = []
    check = portal.check_url(ctx.options.portal_url, ctx.options.sysroot)
    facts.check = check
    if check is None and target.scheme not in HTTP_SCHEMES:
        return facts, looked  # nothing could tell: no need to wait for the target's connects
    facts.target_addresses = await ctx.addresses()
    addrs = facts.target_addresses
    connects = await shared.tcp_all(ctx, addrs, target.port) if addrs else []
    opened = [c.address for c in connects if c.state == "open"]
    flow_failed = bool(connects) and not opened
    if target.scheme == "https" and connects:
        from netcheck.probes import tls  # not imported by a run that makes no handshake

        handshake = await tls.shared_handshake(ctx, opened[0]) if opened else None
        facts.target_tls = _tls_state(connects, handshake, target.host)
        looked.append("tls")
        if facts.target_tls == "ok":
            return facts, looked  # a verified handshake: nothing intercepts this flow
        flow_failed = True
    if check is not None and (target.scheme == "http" or flow_failed):
        facts.check_probe = await _plain_get(ctx, check.url, None)
        looked.append("check")
    if target.scheme not in HTTP_SCHEMES or not addrs:
        return facts, looked
    if target.scheme == "http":
        # The flow's own GET (one request, one line in the server's log); through a proxy
        # the flow is the proxy's (http.proxy), and only the connectivity check tells.
        direct = proxy_choice(ctx, _parts(ctx)).proxy is None
        if opened and direct:
            r = await shared.http_get(ctx, opened[0])
            facts.target_probe = portal.probe_of(_parts(ctx).url, r)
    else:
        facts.target_probe = await _plain_get(ctx, f"http://{_parts(ctx).host_for_url}/",
                                              addrs[0])
    if facts.target_probe is None:
        return facts, looked
    looked.append("http")
    probe = facts.target_probe
    if probe.redirected and probe.location_host and probe.location_host != target.host:
        facts.portal_addresses = await _portal_addresses(ctx, probe.location_host)
        if facts.target_tls is None and target.scheme == "http":
            facts.target_tls = await _tls_on_443(ctx, addrs[0])
    return facts, looked


def _parts(ctx: Context) -> UrlParts:
    from netcheck.probes import http

    return http.parts_of(ctx.target)


async def _portal_addresses(ctx: Context, host: str) -> list[str]:
    import ipaddress

    try:
        ipaddress.ip_address(host.split("%")[0])
        return [host]
    except ValueError:
        return await _resolve(ctx, host)


async def _tls_on_443(ctx: Context, address: str) -> Optional[str]:
    """An http target whose port 80 redirects elsewhere: does its https answer as itself?"""
    from netcheck.probes import tcp, tls

    assert ctx.target is not None
    c = await tcp.connect(address, 443, ctx.timeout)
    if not c.handshake:
        return _tls_state([c], None, ctx.target.host)
    h = await tls.handshake(address, 443, ctx.target.host, cafile=ctx.options.cafile,
                            timeout=ctx.timeout)
    return _tls_state([c], h, ctx.target.host)


def _portal_result(ctx: Context, found: Finding, facts: PortalFacts,
                   evidence: dict[str, Any]) -> Result:
    from netcheck.redact import shown

    url = shown(found.portal_url, 300)
    check = facts.check.url if facts.check else ""
    probed = facts.target_probe.url if facts.target_probe else f"http://{facts.host}/"
    text = _(PORTAL_TEXTS[found.how]).format(host=facts.host, portal=url, check=check,
                                              url=probed)
    commands = [f"curl -sI {_q(check or probed)}"]
    if facts.check is not None and facts.check.source != "--portal-url":
        commands.append("nmcli networking connectivity check")
    return failed(PORTAL, text, Hint(
        _("This network sends web traffic to a sign-in page first (a captive portal: hotel, "
          "airport, campus guest Wi-Fi) and blocks or spoofs the rest until you sign in; the "
          "TCP, TLS or DNS failures below are its doing, not the server's. Open {url} in a "
          "browser, sign in or accept the terms, then try again.").format(url=url),
        commands), portal_url=url, how=found.how, **evidence)


def _portal_applies(ctx: Context) -> Optional[str]:
    return _("no target") if ctx.target is None else None


@check("app.portal", Layer.APPLICATION, codes=(PORTAL,), applies=_portal_applies)
async def captive_portal(ctx: Context) -> Result:
    """No captive portal intercepts the traffic.

    A captive portal answers plain HTTP with a redirect to its sign-in page (or 511) and
    resets, drops or spoofs what it cannot intercept. Looked at: the connectivity-check URL
    (NetworkManager's [connectivity] uri, else --portal-url) when the flow fails or is plain
    HTTP; the target's own host over plain HTTP (redirected to another host while its TLS is
    reset or answered with a certificate for another name, or while its name resolves to the
    portal's address). A verified TLS handshake with the target proves nothing intercepts
    it. Outranks the TCP, TLS and DNS failures the portal causes.
    """
    from netcheck.probes import portal

    facts, looked = await _portal_facts(ctx)
    evidence: dict[str, Any] = {"looked_at": looked}
    if facts.check is not None:
        evidence["check_url"] = facts.check.to_json()
    for key, probe in (("check", facts.check_probe), ("http", facts.target_probe)):
        if probe is not None:
            evidence[key] = probe.to_json()
    if facts.target_tls is not None:
        evidence["target_tls"] = facts.target_tls
    if facts.portal_addresses:
        evidence["portal_addresses"] = facts.portal_addresses
    found = portal.judge(facts)
    if found is not None:
        return _portal_result(ctx, found, facts, evidence)
    host = facts.host
    if not looked:
        return skipped(_("not looked for: not a web target, and no connectivity-check URL is "
                         "configured (NetworkManager's [connectivity] uri, or --portal-url)")
                       if facts.check is None else
                       _("not looked for: the port answers (not a web target)"), **evidence)
    if facts.target_tls == "ok":
        return passed(_("the TLS handshake with {host} verifies: nothing intercepts this flow")
                      .format(host=host), **evidence)
    if facts.check_probe is not None and facts.check_probe.status is not None:
        return passed(_("the connectivity check {url} answers as a network without a portal "
                        "does ({status})").format(url=facts.check.url if facts.check else "",
                                                  status=facts.check_probe.status), **evidence)
    probe = facts.target_probe
    if probe is not None and probe.status is not None:
        return passed(_("{url} is answered by the site itself ({status}), not redirected to a "
                        "sign-in page").format(url=probe.url, status=probe.status), **evidence)
    if facts.check is None:
        return skipped(_("no sign of a portal could be looked for: no connectivity-check URL "
                         "(NetworkManager's [connectivity] uri, or --portal-url), and plain "
                         "HTTP to {host} got no answer").format(host=host), **evidence)
    return skipped(_("no sign of a portal could be looked for: neither the connectivity check "
                     "nor plain HTTP to {host} answered").format(host=host), **evidence)
