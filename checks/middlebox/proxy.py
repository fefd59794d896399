"""``http.proxy``: the proxy a request goes through carries it to the target.

The ladder to a proxy as curl would use it (``--proxy``, else ``http_proxy`` /
``https_proxy`` / ``all_proxy`` with ``no_proxy``): the proxy's name, its port, TLS for an
``https://`` proxy, then through it — ``CONNECT`` to the target's port for https, the request
itself for http. Every finding names the variable that set the proxy; credentials are ``***``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from netcheck.checks.middlebox.common import HTTP_SCHEMES, _q, proxy_choice

from netcheck.i18n import N_, _
from netcheck.lazy import asyncio
from netcheck.model import Hint, Layer, Result, failed, passed, skipped
from netcheck.registry import check

if TYPE_CHECKING:
    from netcheck.probes.http import HttpResult, Proxy, ProxyChoice, UrlParts
    from netcheck.probes.tcp import TcpResult
    from netcheck.runner import Context

UNREACHABLE, AUTH, REFUSED = "PROXY_UNREACHABLE", "PROXY_AUTH_REQUIRED", "PROXY_REFUSED"
MAX_PROXY_ADDRESSES = 3  # curl tries the proxy's addresses in turn; three tell enough


def _http_target(ctx: Context) -> Optional[str]:
    if ctx.target is None:
        return _("no target")
    if ctx.target.scheme not in HTTP_SCHEMES:
        return _("not an http(s) target ({scheme}://): no proxy is used").format(
            scheme=ctx.target.scheme)
    return None


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




def _unusable_choice(choice: ProxyChoice, evidence: dict[str, Any]) -> Result:
    """A proxy setting netcheck cannot follow: a SOCKS proxy (not walked), or a malformed one."""
    assert choice.error is not None
    if "SOCKS" in choice.error:
        return skipped(_("{source} names a SOCKS proxy: netcheck walks only http:// and "
                         "https:// proxies").format(source=choice.source), **evidence)
    return failed(UNREACHABLE, _("{source} does not name a usable proxy: {error}").format(
        source=choice.source, error=choice.error), Hint(
            _("Fix the variable (curl's form: http://host:port/, with the user name and "
              "password before the host when the proxy wants them) or unset it."),
            ["env | grep -i _proxy"]), **evidence)


async def _way_to_proxy(ctx: Context, proxy: Proxy, steps: list[dict[str, Any]]
                        ) -> Optional[str]:
    """Why the proxy cannot be reached (None: it can), each rung of the way in ``steps``:
    its name resolves, its port accepts TCP, TLS for an https:// proxy."""
    from netcheck.probes import shared

    addresses, why = await _proxy_addresses(ctx, proxy.host)
    steps.append({"step": "name", "host": proxy.host, "addresses": addresses,
                  **({"error": why} if why else {})})
    if not addresses:
        return _("its name {host} does not resolve ({why})").format(host=proxy.host, why=why)
    connects = list(await asyncio.gather(*(shared.tcp_connect(ctx, a, proxy.port)
                                           for a in addresses[:MAX_PROXY_ADDRESSES])))
    steps.append({"step": "tcp", "connects": [c.to_json() for c in connects]})
    usable = [c for c in connects if c.handshake]
    if not usable:
        return "; ".join(_tcp_failure(c) for c in connects)
    if proxy.scheme == "https":
        from netcheck.probes import tls

        t = await tls.handshake(usable[0].address, proxy.port, proxy.host,
                                cafile=ctx.options.cafile, timeout=ctx.timeout)
        steps.append({"step": "tls", **t.to_json()})
        if not t.ok or not t.verified:
            detail = t.verify_message or t.error_text or t.state
            return _("TLS with the proxy fails: {detail}").format(detail=detail)
    return None


def _through_proxy(proxy: Proxy, source: str, r: HttpResult, parts: UrlParts,
                   evidence: dict[str, Any]) -> Result:
    """What the proxy did with the request: failed it, refused it, or carried it."""
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
        return _unusable_choice(choice, evidence)
    proxy, source = choice.proxy, choice.source or "--proxy"
    if proxy is None:
        return skipped(_direct_reason(choice, parts.host), **evidence)
    steps: list[dict[str, Any]] = []
    evidence["steps"] = steps
    why = await _way_to_proxy(ctx, proxy, steps)
    if why is not None:
        return _unreachable(proxy, source, why, parts.url, evidence)
    r = await shared.http_get(ctx, None)  # the request itself, shared with http.response
    first = r.hops[0].to_json() if r.hops else {}
    steps.append({"step": "connect" if parts.scheme == "https" else "request",
                  "outcome": r.outcome, **first})
    return _through_proxy(proxy, source, r, parts, evidence)
