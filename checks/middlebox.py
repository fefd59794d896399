"""Layer 7: what stands between this host and the server — a proxy, a captive portal.

The ladder to a proxy as curl would use it (``--proxy``, else ``http_proxy`` /
``https_proxy`` / ``all_proxy`` with ``no_proxy``): the proxy's name, its port, TLS for an
``https://`` proxy, then through it — ``CONNECT`` to the target's port for https, the request
itself for http. Every finding names the variable that set the proxy; credentials are ``***``.

A captive portal (hotel, airport, guest Wi-Fi) intercepts plain HTTP and sends it to a
sign-in page, and resets or spoofs what it cannot intercept: the TCP, TLS and DNS failures it
causes are its symptoms, and CAPTIVE_PORTAL outranks them (runner.EXPLAINS_BELOW).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Optional

from netcheck.i18n import N_, _
from netcheck.lazy import asyncio
from netcheck.model import Hint, Layer, Result, failed, passed, skipped
from netcheck.registry import check

if TYPE_CHECKING:
    from netcheck.probes.http import HttpResult, Proxy, ProxyChoice, UrlParts
    from netcheck.probes.portal import Finding, PortalFacts
    from netcheck.probes.tcp import TcpResult
    from netcheck.runner import Context

UNREACHABLE, AUTH, REFUSED = "PROXY_UNREACHABLE", "PROXY_AUTH_REQUIRED", "PROXY_REFUSED"
PORTAL = "CAPTIVE_PORTAL"
HTTP_SCHEMES = ("http", "https")
MAX_PROXY_ADDRESSES = 3  # curl tries the proxy's addresses in turn; three tell enough
RESERVE = 0.4  # seconds kept back from the deadline for the report
HOSTNAME_MISMATCH = 62  # X509_V_ERR_HOSTNAME_MISMATCH: a certificate for another name


def _http_target(ctx: Context) -> Optional[str]:
    if ctx.target is None:
        return _("no target")
    if ctx.target.scheme not in HTTP_SCHEMES:
        return _("not an http(s) target ({scheme}://): no proxy is used").format(
            scheme=ctx.target.scheme)
    return None


def proxy_choice(ctx: Context, parts: UrlParts) -> ProxyChoice:
    """The proxy this run's request goes through (``--proxy`` / ``--no-proxy`` / the
    environment), as :func:`netcheck.probes.http.choose_proxy` reads them."""
    from netcheck.probes import http

    return http.choose_proxy(parts.scheme, parts.host, parts.port, os.environ,
                             explicit=ctx.options.proxy, disabled=ctx.options.no_proxy)


def _q(text: str) -> str:
    import shlex

    return shlex.quote(text)


def _proxy_commands(proxy_url: str, url: str) -> list[str]:
    return ["env | grep -i _proxy", f"curl -v --proxy {_q(proxy_url)} {_q(url)}",
            f"curl -v --noproxy '*' {_q(url)}   # " + _("the same without the proxy")]


def _direct_reason(choice: ProxyChoice, host: str) -> str:
    if choice.bypass == "--no-proxy":
        text = _("--no-proxy: the request goes direct")
    elif choice.bypass:
        text = _("{variable} exempts {host} from the proxy set by {source}: the request goes "
                 "direct").format(variable=choice.bypass, host=host, source=choice.source)
    else:
        text = _("no proxy is set (--proxy, http_proxy, https_proxy, all_proxy): the request "
                 "goes direct")
    if choice.ignored:
        text += " " + _("({variables} is ignored, as curl ignores it)").format(
            variables=", ".join(choice.ignored))
    return text


async def _proxy_addresses(ctx: Context, host: str) -> tuple[list[str], Optional[str]]:
    """The proxy's addresses, resolved as the system would, or why there are none."""
    import ipaddress

    from netcheck.probes import dns

    try:
        ipaddress.ip_address(host.split("%")[0])
        return [host], None
    except ValueError:
        pass
    res = await dns.resolve_like_system(host, ctx.families, ctx.options.resolv_conf,
                                        ctx.options.hosts_file, ctx.timeout)
    if res.addresses:
        return list(res.addresses), None
    rcodes = sorted({a.rcode or a.error or "?" for a in res.answers})
    if not res.servers and not res.hosts_addresses:
        return [], _("no name server is configured")
    return [], ", ".join(rcodes) if rcodes else _("no name server answered")


def _tcp_failure(r: TcpResult) -> str:
    where = f"[{r.address}]:{r.port}" if ":" in r.address else f"{r.address}:{r.port}"
    if r.state == "refused":
        return _("{endpoint} refuses (RST: nothing listens there)").format(endpoint=where)
    if r.state == "timeout":
        return _("{endpoint} does not answer (SYN unanswered)").format(endpoint=where)
    if r.state == "icmp":
        return _("{endpoint}: {icmp} from {sender}").format(
            endpoint=where, icmp=r.icmp_name, sender=r.icmp_from or r.address)
    return f"{where}: {r.state}" + (f" ({r.errno})" if r.errno else "")


def _unreachable(proxy: Proxy, source: str, why: str, url: str,
                 evidence: dict[str, Any]) -> Result:
    text = _("the proxy {proxy} (set by {source}) cannot be reached: {why}").format(
        proxy=proxy.display, source=source, why=why)
    return failed(UNREACHABLE, text, Hint(
        _("Every request to the web goes to this proxy first, and the proxy does not answer: "
          "it is down, its address or port is wrong, or the network does not lead to it. Fix "
          "{source} (or unset it if this network needs no proxy), or ask whoever runs the "
          "proxy.").format(source=source),
        _proxy_commands(proxy.display, url)), **evidence)


def proxy_answer_problem(r: HttpResult, scheme: str) -> Optional[tuple[str, str]]:
    """(code, reason) when the proxy itself refused the request, from its first answer.

    Facts in, finding out: CONNECT answered with anything but 2xx (407, 403, 5xx...) is the
    proxy's; for http (the request sent to the proxy as is) a 407 is, and so is a 403 or a
    5xx that the proxy made itself: no Via (a proxy adds it to what it forwards, RFC 9110
    7.6.3), or a Proxy-Status / X-Squid-Error header. ``reason``: "auth", "forbidden",
    "upstream" or "refused"; None when the proxy carried the request.
    """
    hop = r.hops[0] if r.hops else None
    if hop is None or hop.status is None:
        return None
    own = hop.from_proxy if scheme == "https" else (
        hop.status == 407 or (hop.proxy_status is not None or hop.via is None)
        and (hop.status == 403 or hop.status >= 500))
    if not own:
        return None
    if hop.status == 407:
        return AUTH, "auth"
    if hop.status == 403:
        return REFUSED, "forbidden"
    if hop.status >= 500:
        return REFUSED, "upstream"
    return REFUSED, "refused"


def _auth_scheme(challenge: Optional[str]) -> str:
    return (challenge or "").split(" ", 1)[0].split(",", 1)[0] or _("unnamed")


def _refused(proxy: Proxy, source: str, code: str, reason: str, r: HttpResult,
             parts: UrlParts, evidence: dict[str, Any]) -> Result:
    from netcheck.redact import shown

    hop = r.hops[0]
    what = (f"CONNECT {parts.host_for_url}:{parts.port}" if parts.scheme == "https"
            else f"GET {parts.url}")
    base = dict(proxy=proxy.display, source=source, request=what,
                status=shown(hop.status_line or str(hop.status), 120))
    commands = _proxy_commands(proxy.display, parts.url)
    if code == AUTH:
        scheme = _auth_scheme(hop.proxy_authenticate)
        if proxy.username is not None:
            text = _("the proxy {proxy} (set by {source}) refuses the credentials it was given: "
                     "{request} -> {status} (it asks for {scheme})")
        else:
            text = _("the proxy {proxy} (set by {source}) wants credentials: {request} -> "
                     "{status} (it asks for {scheme})")
        return failed(AUTH, text.format(scheme=scheme, **base), Hint(
            _("The proxy answers 407 Proxy Authentication Required. Put the user name and "
              "password in {source} as curl reads them: before the proxy's host, joined by a "
              "colon and followed by @ (an @ in the password written %40); or ask whoever runs "
              "the proxy for an account.").format(source=source), commands), **evidence)
    texts = {
        "forbidden": N_("the proxy {proxy} (set by {source}) forbids this destination: "
                        "{request} -> {status}"),
        "upstream": N_("the proxy {proxy} (set by {source}) cannot reach the target itself: "
                       "{request} -> {status}"),
        "refused": N_("the proxy {proxy} (set by {source}) refuses the request: {request} -> "
                      "{status}"),
    }
    why = {
        "forbidden": N_("The proxy works but its policy denies this host or port (a CONNECT "
                        "port list such as tinyproxy's ConnectPort or squid's SSL_ports, an "
                        "access list). Ask whoever runs it, or go direct if this host is "
                        "internal (no_proxy)."),
        "upstream": N_("The proxy answered, so the way to it works; the way from the proxy to "
                       "the target does not (the target is down, or the proxy's own network "
                       "or resolver cannot reach it). Try the target from another network."),
        "refused": N_("The proxy refuses this request; its answer and its log say why."),
    }
    return failed(REFUSED, _(texts[reason]).format(**base), Hint(_(why[reason]), commands),
                  **evidence)


@check("http.proxy", Layer.APPLICATION, codes=(UNREACHABLE, AUTH, REFUSED), proves_flow=True,
       applies=_http_target)
async def http_proxy(ctx: Context) -> Result:
    """Proxy carries the request to the target.

    When a proxy is set (--proxy, or http_proxy, https_proxy, all_proxy as curl reads them;
    no_proxy and --no-proxy send a host direct), the ladder to it: its name resolves, its
    port accepts TCP, TLS for an https:// proxy; then through it: CONNECT to the target's
    port for https, the request itself for http. A proxy that cannot be reached, that wants
    credentials (407, with the scheme it asks for) or that refuses or cannot reach the target
    (403, 5xx) is the finding, with the variable that set it.
    """
    from netcheck.probes import http, shared

    assert ctx.target is not None
    parts = http.parts_of(ctx.target)
    choice = proxy_choice(ctx, parts)
    evidence: dict[str, Any] = choice.to_json()
    if choice.error is not None:
        if "SOCKS" in choice.error:
            return skipped(_("{source} names a SOCKS proxy: netcheck walks only http:// and "
                             "https:// proxies").format(source=choice.source), **evidence)
        return failed(UNREACHABLE, _("{source} does not name a usable proxy: {error}").format(
            source=choice.source, error=choice.error), Hint(
                _("Fix the variable (curl's form: http://host:port/, with the user name and "
                  "password before the host when the proxy wants them) or unset it."),
                ["env | grep -i _proxy"]), **evidence)
    proxy, source = choice.proxy, choice.source or "--proxy"
    if proxy is None:
        return skipped(_direct_reason(choice, parts.host), **evidence)
    steps: list[dict[str, Any]] = []
    evidence["steps"] = steps
    addresses, why = await _proxy_addresses(ctx, proxy.host)
    steps.append({"step": "name", "host": proxy.host, "addresses": addresses,
                  **({"error": why} if why else {})})
    if not addresses:
        return _unreachable(proxy, source, _("its name {host} does not resolve ({why})")
                            .format(host=proxy.host, why=why), parts.url, evidence)
    connects = list(await asyncio.gather(*(shared.tcp_connect(ctx, a, proxy.port)
                                           for a in addresses[:MAX_PROXY_ADDRESSES])))
    steps.append({"step": "tcp", "connects": [c.to_json() for c in connects]})
    usable = [c for c in connects if c.handshake]
    if not usable:
        return _unreachable(proxy, source, "; ".join(_tcp_failure(c) for c in connects),
                            parts.url, evidence)
    if proxy.scheme == "https":
        from netcheck.probes import tls

        t = await tls.handshake(usable[0].address, proxy.port, proxy.host,
                                cafile=ctx.options.cafile, timeout=ctx.timeout)
        steps.append({"step": "tls", **t.to_json()})
        if not t.ok or not t.verified:
            detail = t.verify_message or t.error_text or t.state
            return _unreachable(proxy, source, _("TLS with the proxy fails: {detail}")
                                .format(detail=detail), parts.url, evidence)
    r = await shared.http_get(ctx, None)  # the request itself, shared with http.response
    first = r.hops[0].to_json() if r.hops else {}
    steps.append({"step": "connect" if parts.scheme == "https" else "request",
                  "outcome": r.outcome, **first})
    if r.outcome == "proxy_failed":
        return _unreachable(proxy, source, r.detail or r.outcome, parts.url, evidence)
    problem = proxy_answer_problem(r, parts.scheme)
    if problem is not None:
        return _refused(proxy, source, *problem, r, parts, evidence)
    hop = r.hops[0] if r.hops else None
    # CONNECT answered 2xx (what TLS with the server then does is the next rungs' business),
    # or the proxy forwarded an answer to the request.
    tunnel = parts.scheme == "https" and hop is not None and hop.tunnel_ms is not None
    if tunnel or (hop is not None and hop.status is not None):
        assert hop is not None
        how = (_("CONNECT {authority} established").format(
            authority=f"{parts.host_for_url}:{parts.port}") if parts.scheme == "https"
            else _("it forwards the request ({status})").format(status=hop.status))
        return passed(_("the proxy {proxy} (set by {source}) carries the request: {how}")
                      .format(proxy=proxy.display, source=source, how=how), **evidence)
    return skipped(_("the proxy {proxy} (set by {source}) accepts connections; the request "
                     "through it ended before an answer: {detail}").format(
                         proxy=proxy.display, source=source, detail=r.detail or r.outcome),
                   **evidence)


# -- captive portals -----------------------------------------------------------------------

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
