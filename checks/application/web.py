"""``http.response``: an HTTP request gets a good answer (the redirect chain as wget
shows it, the status, the times per hop), and its judging.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, Optional

from netcheck.checks.application.common import (
    HTTP_SCHEMES,
    TLS_REQUIRES,
    _for,
    _heard,
    _on_server,
    _reset_on_second_look,
    _talking_address,
    _tls_failure,
)

from netcheck import hints
from netcheck.hints import server_side_command
from netcheck.i18n import N_, _, ngettext
from netcheck.model import Hint, Layer, Result, Status, failed, passed, skipped
from netcheck.registry import check

if TYPE_CHECKING:
    from netcheck.probes.http import HttpResult, UrlParts
    from netcheck.runner import Context


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1 << 20:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1 << 20):.1f} MiB"


PHASES = ("dns_ms", "connect_ms", "tunnel_ms", "tls_ms", "ttfb_ms", "transfer_ms", "total_ms")


def _timings_sum(r: HttpResult) -> dict[str, float]:
    """Each phase summed over the hops, as blackbox_exporter's probe_http_duration_seconds."""
    total: dict[str, float] = {}
    for phase in PHASES:
        values = [hop.timings[phase] for hop in r.hops if phase in hop.timings]
        if values:
            total[phase] = round(sum(values), 3)
    return total


def _q(text: str) -> str:
    """A URL or path as a shell word: ``?`` and ``&`` in a pasted command must not bite."""
    import shlex

    return shlex.quote(text)


def _http_commands(ctx: Context, url: str, proxy: Optional[str]) -> list[str]:
    cafile = ctx.options.cafile
    curl = (f"curl -v --cacert {_q(cafile)} {_q(url)}" if cafile and url.startswith("https")
            else f"curl -v {_q(url)}")
    commands = [f"wget -S --max-redirect=20 {_q(url)}", curl]
    if proxy:
        commands.append(f"curl -v --noproxy '*' {_q(url)}   # "
                        + _("the same without the proxy"))
    return commands


def _server_side(ctx: Context) -> list[str]:
    rid = ctx.options.request_id
    port = ctx.target.port if ctx.target is not None else None
    return [_on_server(f"grep {rid} /var/log/nginx/access.log",
                       _("on the server: this run's request")),
            *([server_side_command(port, rid)] if port else []),
            _on_server("tail -n 50 /var/log/nginx/error.log"),
            _on_server("journalctl -u nginx --since -10min",
                       _("on the server (or apache2, the app's unit)"))]


def _http_evidence(ctx: Context, r: HttpResult) -> dict[str, Any]:
    evidence = r.to_json()
    evidence["request_id"] = ctx.options.request_id
    evidence["chain"] = [hop.wget_line() for hop in r.hops]
    evidence["timings"] = _timings_sum(r)
    if r.proxy is None:
        evidence.pop("proxy", None)
    return evidence


def _chain_text(r: HttpResult) -> str:
    if r.redirects == 0:
        return ""
    changes = sorted({h.scheme_change for h in r.hops if h.scheme_change})
    reused = sum(1 for h in r.hops if h.connection == "reused")
    # "connection(s)" in English whatever the count (as ever); the catalogs choose the form.
    extra = [*changes, *([ngettext("{n} connection(s) reused", "{n} connection(s) reused",
                                   reused).format(n=reused)] if reused else [])]
    text = " " + ngettext("after {n} redirect", "after {n} redirects", r.redirects).format(
        n=r.redirects)
    return text + (f" ({', '.join(extra)})" if extra else "")


def _status_text(r: HttpResult) -> str:
    return f"{r.status} {r.reason}".strip() if r.status is not None else _("no status")


def _title(r: HttpResult) -> str:
    """The error page's title, when it says more than the status line already does."""
    title = r.hops[-1].title if r.hops else None
    if not title or (r.reason and r.reason.lower() in title.lower()):
        return ""
    return " " + _("(page title: {title})").format(title=repr(title))


@check("http.response", Layer.APPLICATION, requires=(*TLS_REQUIRES, "http.proxy"),
       codes=("HTTP_CLIENT_ERROR", "HTTP_SERVER_ERROR", "HTTP_REDIRECT_LOOP", "APP_TIMEOUT",
              "APP_PROTOCOL_MISMATCH", "APP_CONNECTION_RESET"), proves_flow=True,
       applies=_for(HTTP_SCHEMES, N_("not an http(s) target ({scheme}://)")))
async def http_response(ctx: Context) -> Result:
    """HTTP request gets a good answer.

    A GET with netcheck's User-Agent (which carries the run's request id, so the server's
    log finds it) following redirects hop by hop as wget prints them: status, Location,
    connection new or reused, http->https; DNS, connect, TLS, first-byte and transfer times
    per hop; the final status, size and Server header. Proxy variables are honoured and
    named. A 4xx or 5xx, a redirect loop, silence, a stall, a reset before any byte, or an
    answer that is not HTTP are the findings.
    """
    from netcheck.probes import http

    assert ctx.target is not None
    from netcheck.checks.middlebox import proxy_choice

    parts = http.parts_of(ctx.target)
    direct = proxy_choice(ctx, parts).proxy is None  # through a proxy: http.proxy's ladder
    address: Optional[str] = None
    if direct:
        talking = await _talking_address(ctx)
        if isinstance(talking, Result):
            return talking
        address = talking
    from netcheck.probes import shared

    # The same GET the path-MTU check may already have sent (one request, one log line).
    r = await shared.http_get(ctx, address)
    if (direct and address is not None and r.outcome == "closed" and r.status is None
            and r.bytes_received == 0 and len(r.hops) <= 1):
        reset = await _reset_on_second_look(ctx, address)
        if reset is not None:
            return reset
    return _judge_http(ctx, parts, r)


class _Told(NamedTuple):
    """What every verdict on one answer says alike: the URLs, where it was, the commands."""

    url: str
    final: str
    via: str
    where: str
    commands: list[str]
    find_it: str
    evidence: dict[str, Any]


def _told(ctx: Context, parts: UrlParts, r: HttpResult) -> _Told:
    url = parts.url
    evidence = _http_evidence(ctx, r)
    via = " " + _("via proxy {proxy}").format(proxy=r.proxy) if r.proxy else ""
    where = (f"{r.hops[-1].address}:{r.hops[-1].port}"
             if r.hops and r.hops[-1].address else f"{parts.authority}")
    commands = _http_commands(ctx, url, r.proxy)
    find_it = _("Search the server's log for request id {request_id} (netcheck's "
                "User-Agent).").format(request_id=ctx.options.request_id)
    return _Told(url, r.final_url or url, via, where, commands, find_it, evidence)


def _judge_http(ctx: Context, parts: UrlParts, r: HttpResult) -> Result:
    told = _told(ctx, parts, r)
    if r.outcome == "not_allowed":
        return _not_allowed(r, told)
    if r.outcome in ("ok", "body_stall") and r.status is not None:
        return _judge_answer(ctx, parts, r, told)
    if r.outcome in ("redirect_loop", "too_many_redirects", "redirect_refused"):
        return _redirect_failure(ctx, r, told)
    if r.outcome in ("timeout", "stall"):
        return _no_answer(ctx, parts, r, told)
    if r.outcome in ("protocol_mismatch", "header_too_large", "closed"):
        return _not_http(ctx, parts, r, told)
    if r.outcome == "tls_failed":
        failing = r.hops[-1].url if r.hops else told.url
        fail_parts = _safe_parts(failing) or parts
        return _tls_failure(ctx, f"{failing}", r.detail or "", [
            f"openssl s_client -connect {fail_parts.host_for_url}:{fail_parts.port} "
            f"-servername {fail_parts.host} </dev/null", f"netcheck {_q(failing)}"],
            **told.evidence)
    return _failed_below(r, told)


def _not_allowed(r: HttpResult, told: _Told) -> Result:
    # The run's hop policy (the exporter's allow-list) stopped the chain before a hop:
    # nothing was sent there, so nothing past it can be judged — a skip that says why.
    if r.status is None:
        return skipped(f"{told.url}: {r.detail}", **told.evidence)
    answers = _("{who} answers {status}").format(who=told.final, status=_status_text(r))
    return skipped(f"{answers}; {r.detail}", **told.evidence)


def _judge_answer(ctx: Context, parts: UrlParts, r: HttpResult, told: _Told) -> Result:
    """An answer with a status: a stalled body, a 4xx, a 5xx, or the pass."""
    assert r.status is not None
    status = r.status
    final = told.final
    from_proxy = bool(r.hops and r.hops[-1].from_proxy)
    who = (_("the proxy {proxy} (CONNECT to {authority})").format(
        proxy=r.proxy, authority=parts.authority) if from_proxy else final)
    if r.outcome == "body_stall":
        return failed("APP_TIMEOUT",
                      _("{url} answers {status}{via}, but the body stalled after "
                        "{size}").format(url=final, status=_status_text(r), via=told.via,
                                         size=_size(r.size)), Hint(
                          _("The headers arrived, then the body stopped. A transfer that "
                            "stalls once full-size packets flow is the signature of a "
                            "path-MTU black hole (an ICMP 'too big' dropped on the way); "
                            "otherwise the application stalls while writing.")
                          + " " + told.find_it,
                          [*told.commands, f"ping -M do -s 1472 -c 3 {parts.host}",
                           *_server_side(ctx)]), **told.evidence)
    answers = _("{who} answers {status}").format(who=who, status=_status_text(r))
    if 400 <= status < 500:
        return failed("HTTP_CLIENT_ERROR", answers + _chain_text(r) + _title(r),
                      Hint(_client_error_text(status, final, from_proxy) + " " + told.find_it,
                           [*told.commands, *_server_side(ctx)]), **told.evidence)
    if status >= 500:
        return failed("HTTP_SERVER_ERROR", answers + _chain_text(r) + _title(r),
                      Hint(_server_error_text(status, from_proxy) + " " + told.find_it,
                           [*told.commands, *_server_side(ctx)]), **told.evidence)
    return passed(_answer_summary(r, told), **told.evidence)


def _answer_summary(r: HttpResult, told: _Told) -> str:
    """The pass's line: status, redirects, size and time, and what was not read."""
    total = sum(h.total_ms or 0 for h in r.hops)
    summary = _("{url} answers {status}{redirects}{via}: {size} in {ms} ms").format(
        url=told.final, status=_status_text(r), redirects=_chain_text(r), via=told.via,
        size=_size(r.size), ms=f"{total:.0f}")
    if r.truncated_reason == "size":
        summary += " " + _("(read the first {size}, then stopped)").format(size=_size(r.size))
    elif r.truncated_reason:
        summary += " " + _("(body not read to its end: {reason})").format(
            reason=r.truncated_reason)
    if r.server:
        summary += f", Server: {r.server}"  # the header's own name
    if r.status is not None and 300 <= r.status < 400:
        summary += " " + _("(a redirect without a Location to follow)")
    return summary


def _redirect_failure(ctx: Context, r: HttpResult, told: _Told) -> Result:
    url = told.url
    hops = " -> ".join(h.url for h in r.hops[:6]) + (" -> ..." if len(r.hops) > 6 else "")
    if r.outcome == "redirect_refused":
        text = _("{url}: the redirect chain ends in a Location netcheck will not follow "
                 "({detail}); browsers refuse it too").format(url=url, detail=r.detail)
    elif r.outcome == "redirect_loop":
        text = _("{url} redirects in a loop: {hops} -> {next}").format(
            url=url, hops=hops, next=r.hops[-1].next_url)
    else:
        text = _("{url} redirects more than {n} times: {hops}").format(
            url=url, n=r.redirects, hops=hops)
    return failed("HTTP_REDIRECT_LOOP", text, Hint(
        _("The server (or the application behind it) sends the client round in circles: "
          "usually a rewrite rule that matches its own target, an http->https redirect "
          "behind a TLS-terminating proxy that never sees https, or a login page that "
          "redirects to itself. Follow the chain and read each Location;") + " " + told.find_it,
        [f"wget -S --max-redirect=20 {_q(url)}", f"curl -sIL --max-redirs 20 {_q(url)}",
         _on_server("grep -rn 'return 30\\|rewrite' /etc/nginx/"),
         *_server_side(ctx)[:1]]), **told.evidence)


def _no_answer(ctx: Context, parts: UrlParts, r: HttpResult, told: _Told) -> Result:
    """Connected, then silence or a stall: the application, not the path, mostly."""
    url = told.url
    first_hop = len(r.hops) <= 1
    if r.outcome == "timeout":
        text = _("connected to {endpoint}{via} but {url} sends no answer: {detail}").format(
            endpoint=told.where, via=told.via, url=told.final if not first_hop else url,
            detail=r.detail)
    else:
        text = _("{url}{via}: the answer stalls: {detail}").format(url=told.final, via=told.via,
                                                                   detail=r.detail)
    return failed("APP_TIMEOUT", text, Hint(
        _("The port accepts connections (the kernel, a proxy or a load balancer completes "
          "the handshake) but the application never answers: a hung or overloaded worker, "
          "an upstream it waits for, or — when only large answers stall — a path-MTU black "
          "hole.") + " " + told.find_it,
        [f"curl -v --max-time 10 {_q(url)}", *told.commands[:1],
         _on_server(f"ss -tnp state established '( sport = :{parts.port} )'"),
         *_server_side(ctx)[1:]]), **told.evidence)


def _not_http(ctx: Context, parts: UrlParts, r: HttpResult, told: _Told) -> Result:
    """An answer that is not HTTP: headers too large, an empty reply, another protocol."""
    url, where = told.url, told.where
    if r.outcome == "header_too_large":
        text = _("{endpoint} answers {url} with headers larger than {kib} KiB: not a usable "
                 "HTTP answer (curl and browsers give up too)").format(
                     endpoint=where, url=url, kib=_max_header_kib())
    elif r.outcome == "closed":
        text = _("{endpoint}: {detail} (curl: 'Empty reply from server')").format(
            endpoint=where, detail=r.detail)
    else:
        text = _("{endpoint} does not speak HTTP: it answers '{line}' — {heard}").format(
            endpoint=where, line=r.first_line, heard=_heard(r.heard, _("something else")))
    return failed("APP_PROTOCOL_MISMATCH", text, Hint(
        _("Port {port} on {host} is not an HTTP server (or not a sane one). Is it the right "
          "port for this URL? Which program listens there?").format(port=parts.port,
                                                                    host=parts.host),
        [hints.talk(parts.host, parts.port), f"curl -v {_q(url)}",
         _on_server(f"ss -tlnp 'sport = :{parts.port}'",
                    _("on the server: which program listens")),
         *_server_side(ctx)[1:2]]), **told.evidence)


def _failed_below(r: HttpResult, told: _Told) -> Result:
    # connect_failed, dns_failed, proxy_failed, error: mostly a redirect to somewhere else
    # that fails lower down, or a proxy that does not work; not a layer-7 code.
    failing = r.hops[-1].url if r.hops else told.url
    hint_cmds = [f"netcheck {_q(failing)}", *told.commands]
    if r.outcome == "proxy_failed":
        hint_cmds = [*told.commands, "env | grep -i _proxy"]
    return Result(Status.ERROR, f"{failing}{told.via}: {r.detail}", evidence=told.evidence,
                  hint=Hint(_("The request could not be completed below the application: "
                              "check the proxy settings.") if r.outcome == "proxy_failed"
                            else _("The request could not be completed below the application: "
                                   "diagnose the URL that failed on its own."), hint_cmds))


def _max_header_kib() -> int:
    from netcheck.probes.http import MAX_HEADER_BYTES

    return MAX_HEADER_BYTES // 1024


def _safe_parts(url: str) -> Optional[UrlParts]:
    from netcheck.probes.http import UrlError, split_url

    try:
        return split_url(url)
    except UrlError:
        return None


def _client_error_text(status: int, url: str, from_proxy: bool) -> str:
    if from_proxy:
        return _("The proxy refuses the tunnel ({status}): it wants credentials (407) or "
                 "forbids this destination; check the proxy variables and its policy.").format(
                     status=status)
    known = {
        401: N_("The server wants credentials (401): the URL works, the client must log in."),
        403: N_("The server forbids this resource (403): file permissions, an allow/deny rule "
                "or a web application firewall on the server."),
        404: N_("The server has nothing at {url} (404): a wrong path, a missing file or a "
                "virtual host that is not the one meant (check the Host name)."),
        405: N_("The server does not allow GET here (405)."),
        407: N_("A proxy wants credentials (407)."),
        421: N_("The request reached a server that is not configured for this name (421)."),
        429: N_("The server rate-limits this client (429): wait, or ask for a higher limit."),
    }
    text = known.get(status, N_("The server rejects the request ({status})."))
    return _(text).format(url=url, status=status)


def _server_error_text(status: int, from_proxy: bool) -> str:
    if from_proxy:
        return _("The proxy cannot reach the destination ({status}): the fault is beyond "
                 "it.").format(status=status)
    known = {
        500: N_("The application failed while answering (500): its error log says why."),
        502: N_("A proxy or load balancer got no valid answer from the application behind it "
                "(502): the backend is down or crashing."),
        503: N_("The service is unavailable (503): the application behind the server is down, "
                "overloaded or in maintenance."),
        504: N_("A proxy or load balancer waited too long for the application behind it "
                "(504)."),
    }
    return _(known.get(status, N_("The server failed to answer ({status})."))).format(
        status=status)
