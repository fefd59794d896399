"""Layer 7: the application protocol answers as it should (HTTP, SMTP, POP3, IMAP, SSH, DNS).

The slides' last rungs: ``wget`` shows the redirect chain and the status, ``nc`` and ``swaks``
show a greeting, and the server's log finds the request (netcheck's User-Agent carries the
run's request id for that). Every check here starts where transport (and, for TLS schemes,
the presentation layer) said the port works, so what is left is the application itself:
a status, a greeting, a rejection, silence, or another protocol on the port.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

from netcheck import hints
from netcheck.hints import server_side_command
from netcheck.i18n import N_, _, ngettext
from netcheck.model import Hint, Layer, Result, Status, failed, passed, skipped
from netcheck.registry import check

if TYPE_CHECKING:
    from netcheck.probes.banner import BannerResult, DnsTargetAnswer
    from netcheck.probes.http import HttpResult, UrlParts
    from netcheck.probes.tcp import TcpResult
    from netcheck.runner import Context

HTTP_SCHEMES = ("http", "https")
GREETING_SCHEMES = ("smtp", "submission", "pop3", "pop3s", "imap", "imaps", "ssh")
PROTOCOL_SCHEMES = (*GREETING_SCHEMES, "dns")
TLS_SCHEMES = ("https", "pop3s", "imaps")
PROTOCOL_OF = {"smtp": "smtp", "submission": "smtp", "pop3": "pop3", "pop3s": "pop3",
               "imap": "imap", "imaps": "imap", "ssh": "ssh"}
NAMES = {"smtp": "SMTP", "pop3": "POP3", "imap": "IMAP", "ssh": "SSH", "dns": "DNS"}
REJECTED = {"smtp": "SMTP_REJECTED", "pop3": "POP3_REJECTED", "imap": "IMAP_REJECTED"}
# Time kept back from the run's deadline for the report itself.
RESERVE = 0.4
# What a port was heard to speak: netcheck.probes.banner.classify()'s kinds (banner.KINDS),
# in words.
HEARD = {
    "ssh": N_("an SSH server"),
    "http": N_("an HTTP server"),
    "tls": N_("a TLS service (it expects a TLS handshake first)"),
    "smtp": N_("a mail (SMTP) or FTP server's greeting"),
    "pop3": N_("a POP3 server"),
    "imap": N_("an IMAP server"),
    "binary": N_("binary data (not a text protocol)"),
    "text": N_("an unknown text protocol"),
    "empty": N_("nothing"),
}


def _heard(kind: Optional[str], otherwise: str) -> str:
    """What the port speaks, in words (``otherwise``, already translated, when unknown)."""
    return _(HEARD[kind]) if kind in HEARD else otherwise


def _on_server(command: str, note: str = "") -> str:
    """A command to run on the server, with its comment in the reader's language."""
    return f"{command}   # " + (note or _("on the server"))


def _for(schemes: tuple[str, ...], why: str) -> Callable[[Context], Optional[str]]:
    """``applies`` for these schemes; ``why`` (marked with N_, formatted with ``scheme``)
    says why another target is skipped."""
    def applies(ctx: Context) -> Optional[str]:
        if ctx.target is None:
            return _("no target")
        if ctx.target.scheme not in schemes:
            return _(why).format(scheme=ctx.target.scheme)
        return None

    return applies


async def _open_address(ctx: Context) -> Optional[str]:
    """The first address the transport check connected to (no new connect for it)."""
    assert ctx.target is not None
    transport = ctx.result("transport.tcp")
    if transport is not None:
        for connect in transport.evidence.get("connects", []):
            if connect.get("state") == "open":
                return str(connect["address"])
    addrs = await ctx.addresses()
    if not addrs:
        return None
    from netcheck.probes import shared

    results = await shared.tcp_all(ctx, addrs, ctx.target.port)
    return next((r.address for r in results if r.state == "open"), None)


def _budget(ctx: Context) -> float:
    return max(0.2, ctx.time_left() - RESERVE)


# -- a server that resets before its first byte ---------------------------------------------

RESET = "APP_CONNECTION_RESET"
# How long a connection is watched again when the application saw it closed without a word:
# a block that resets only after a slow check (tcpd's reverse lookup) still shows.
REWATCH_S = 1.0


def _reset_result(ctx: Context, resets: list[TcpResult]) -> Result:
    """APP_CONNECTION_RESET for connections reset after the handshake, before any byte."""
    assert ctx.target is not None
    r = resets[0]
    host, port = ctx.target.host, ctx.target.port
    endpoint = f"[{r.address}]:{port}" if ":" in r.address else f"{r.address}:{port}"
    summary = _("{endpoint} accepts the connection, then resets it before sending a byte: "
                "the server refuses this client after the handshake").format(endpoint=endpoint)
    return failed(RESET, summary, Hint(
        _("The port completes the TCP handshake, so the network and the listening socket "
          "work; then the server side sends an RST before any answer. Something acting after "
          "accept() refuses this client: TCP wrappers (/etc/hosts.allow, /etc/hosts.deny), a "
          "fail2ban or firewall rule that resets established connections, a connection limit "
          "(sshd's MaxStartups), or a worker that crashes as it accepts. The server's log "
          "names it."),
        [hints.talk(host, port), f"tcpdump -ni any host {r.address} and port {port}",
         _on_server(f"ss -tlnp 'sport = :{port}'", _("on the server: which program listens")),
         server_side_command(port),
         _on_server("cat /etc/hosts.allow /etc/hosts.deny"),
         _on_server("fail2ban-client status"),
         _on_server("journalctl --since -10min -p warning")]),
        connects=[x.to_json() for x in resets])


async def _reset_before_a_byte(ctx: Context) -> Optional[Result]:
    """The finding when every handshake of this run was reset before the server said a thing.

    The transport rung watched each connection it opened (typed results, shared): a server
    that resets at once answers every protocol the same way, so nothing is sent to it.
    None when some address keeps its connection open (or none completed a handshake).
    """
    from netcheck.probes import shared

    assert ctx.target is not None
    addrs = await ctx.addresses()
    results = await shared.tcp_all(ctx, addrs, ctx.target.port) if addrs else []
    if any(r.state == "open" for r in results):
        return None
    resets = [r for r in results if r.state == "reset"]
    return _reset_result(ctx, resets) if resets else None


async def _reset_on_second_look(ctx: Context, address: str) -> Optional[Result]:
    """The application saw the connection closed without a word: connect again, say nothing,
    and watch longer. A reset then is the server's refusal; a plain close (FIN) is not."""
    from netcheck.probes import tcp

    assert ctx.target is not None
    watch = max(0.05, min(ctx.timeout, REWATCH_S, _budget(ctx)))
    r = await tcp.connect(address, ctx.target.port, ctx.timeout, watch=watch)
    return _reset_result(ctx, [r]) if r.state == "reset" else None


def _tls_failure(ctx: Context, what: str, detail: str, commands: list[str],
                 **evidence: Any) -> Result:
    """TLS failed under us: the presentation layer's finding, not ours to code."""
    tls_check = ctx.result("tls.handshake")
    if tls_check is None:
        summary = _("{what}: TLS failed (no TLS check is loaded to diagnose it): {detail}")
    elif tls_check.status is Status.PASS:
        summary = _("{what}: TLS failed although tls.handshake passed: {detail}")
    else:
        summary = _("{what}: TLS failed (tls.handshake: {finding}): {detail}")
    finding = tls_check.summary if tls_check is not None else ""
    return Result(Status.ERROR, summary.format(what=what, finding=finding, detail=detail),
                  evidence=evidence,
                  hint=Hint(_("The application could not be reached over TLS; look at the "
                              "certificate and the handshake first."), commands))


# -- HTTP ----------------------------------------------------------------------------------

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


# TLS schemes: after the handshake and the certificate (a certificate a browser would refuse
# blocks the request, as it would block the browser). Both skip for plain schemes.
TLS_REQUIRES = ("transport.tcp", "tls.handshake", "tls.certificate")


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
    if direct:
        reset = await _reset_before_a_byte(ctx)
        if reset is not None:
            return reset
    address = await _open_address(ctx) if direct else None
    if address is None and direct:
        return skipped(_("no address of the target accepted the TCP connection"))
    from netcheck.probes import shared

    # The same GET the path-MTU check may already have sent (one request, one log line).
    r = await shared.http_get(ctx, address)
    if (direct and address is not None and r.outcome == "closed" and r.status is None
            and r.bytes_received == 0 and len(r.hops) <= 1):
        reset = await _reset_on_second_look(ctx, address)
        if reset is not None:
            return reset
    return _judge_http(ctx, parts, r)


def _judge_http(ctx: Context, parts: UrlParts, r: HttpResult) -> Result:
    url = parts.url
    final = r.final_url or url
    evidence = _http_evidence(ctx, r)
    rid = ctx.options.request_id
    via = " " + _("via proxy {proxy}").format(proxy=r.proxy) if r.proxy else ""
    where = (f"{r.hops[-1].address}:{r.hops[-1].port}"
             if r.hops and r.hops[-1].address else f"{parts.authority}")
    commands = _http_commands(ctx, url, r.proxy)
    find_it = _("Search the server's log for request id {request_id} (netcheck's "
                "User-Agent).").format(request_id=rid)
    total = sum(h.total_ms or 0 for h in r.hops)

    if r.outcome == "not_allowed":
        # The run's hop policy (the exporter's allow-list) stopped the chain before a hop:
        # nothing was sent there, so nothing past it can be judged — a skip that says why.
        if r.status is None:
            return skipped(f"{url}: {r.detail}", **evidence)
        answers = _("{who} answers {status}").format(who=final, status=_status_text(r))
        return skipped(f"{answers}; {r.detail}", **evidence)

    if r.outcome in ("ok", "body_stall") and r.status is not None:
        status = r.status
        from_proxy = bool(r.hops and r.hops[-1].from_proxy)
        who = (_("the proxy {proxy} (CONNECT to {authority})").format(
            proxy=r.proxy, authority=parts.authority) if from_proxy else final)
        if r.outcome == "body_stall":
            return failed("APP_TIMEOUT",
                          _("{url} answers {status}{via}, but the body stalled after "
                            "{size}").format(url=final, status=_status_text(r), via=via,
                                             size=_size(r.size)), Hint(
                              _("The headers arrived, then the body stopped. A transfer that "
                                "stalls once full-size packets flow is the signature of a "
                                "path-MTU black hole (an ICMP 'too big' dropped on the way); "
                                "otherwise the application stalls while writing.")
                              + " " + find_it,
                              [*commands, f"ping -M do -s 1472 -c 3 {parts.host}",
                               *_server_side(ctx)]), **evidence)
        answers = _("{who} answers {status}").format(who=who, status=_status_text(r))
        if 400 <= status < 500:
            return failed("HTTP_CLIENT_ERROR", answers + _chain_text(r) + _title(r),
                          Hint(_client_error_text(status, final, from_proxy) + " " + find_it,
                               [*commands, *_server_side(ctx)]), **evidence)
        if status >= 500:
            return failed("HTTP_SERVER_ERROR", answers + _chain_text(r) + _title(r),
                          Hint(_server_error_text(status, from_proxy) + " " + find_it,
                               [*commands, *_server_side(ctx)]), **evidence)
        summary = _("{url} answers {status}{redirects}{via}: {size} in {ms} ms").format(
            url=final, status=_status_text(r), redirects=_chain_text(r), via=via,
            size=_size(r.size), ms=f"{total:.0f}")
        if r.truncated_reason == "size":
            summary += " " + _("(read the first {size}, then stopped)").format(size=_size(r.size))
        elif r.truncated_reason:
            summary += " " + _("(body not read to its end: {reason})").format(
                reason=r.truncated_reason)
        if r.server:
            summary += f", Server: {r.server}"  # the header's own name
        if 300 <= status < 400:
            summary += " " + _("(a redirect without a Location to follow)")
        return passed(summary, **evidence)

    if r.outcome in ("redirect_loop", "too_many_redirects", "redirect_refused"):
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
              "redirects to itself. Follow the chain and read each Location;") + " " + find_it,
            [f"wget -S --max-redirect=20 {_q(url)}", f"curl -sIL --max-redirs 20 {_q(url)}",
             _on_server("grep -rn 'return 30\\|rewrite' /etc/nginx/"),
             *_server_side(ctx)[:1]]), **evidence)

    if r.outcome in ("timeout", "stall"):
        first_hop = len(r.hops) <= 1
        if r.outcome == "timeout":
            text = _("connected to {endpoint}{via} but {url} sends no answer: {detail}").format(
                endpoint=where, via=via, url=final if not first_hop else url, detail=r.detail)
        else:
            text = _("{url}{via}: the answer stalls: {detail}").format(url=final, via=via,
                                                                       detail=r.detail)
        return failed("APP_TIMEOUT", text, Hint(
            _("The port accepts connections (the kernel, a proxy or a load balancer completes "
              "the handshake) but the application never answers: a hung or overloaded worker, "
              "an upstream it waits for, or — when only large answers stall — a path-MTU black "
              "hole.") + " " + find_it,
            [f"curl -v --max-time 10 {_q(url)}", *commands[:1],
             _on_server(f"ss -tnp state established '( sport = :{parts.port} )'"),
             *_server_side(ctx)[1:]]), **evidence)

    if r.outcome in ("protocol_mismatch", "header_too_large", "closed"):
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
             *_server_side(ctx)[1:2]]), **evidence)

    if r.outcome == "tls_failed":
        failing = r.hops[-1].url if r.hops else url
        fail_parts = _safe_parts(failing) or parts
        return _tls_failure(ctx, f"{failing}", r.detail or "", [
            f"openssl s_client -connect {fail_parts.host_for_url}:{fail_parts.port} "
            f"-servername {fail_parts.host} </dev/null", f"netcheck {_q(failing)}"], **evidence)

    # connect_failed, dns_failed, proxy_failed, error: mostly a redirect to somewhere else
    # that fails lower down, or a proxy that does not work; not a layer-7 code.
    failing = r.hops[-1].url if r.hops else url
    hint_cmds = [f"netcheck {_q(failing)}", *commands]
    if r.outcome == "proxy_failed":
        hint_cmds = [*commands, "env | grep -i _proxy"]
    return Result(Status.ERROR, f"{failing}{via}: {r.detail}", evidence=evidence,
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


# -- greetings: SMTP, POP3, IMAP, SSH; and DNS --------------------------------------------

@check("app.protocol", Layer.APPLICATION, requires=TLS_REQUIRES,
       codes=("SMTP_REJECTED", "POP3_REJECTED", "IMAP_REJECTED", "APP_PROTOCOL_MISMATCH",
              "APP_TIMEOUT", "APP_CONNECTION_RESET"), proves_flow=True,
       applies=_for(PROTOCOL_SCHEMES, N_("not a mail, SSH or DNS target ({scheme}://)")))
async def app_protocol(ctx: Context) -> Result:
    """Service greets as its protocol should.

    SMTP and submission: the 220 greeting, then EHLO (capabilities, STARTTLS offered?) and
    QUIT; POP3: +OK; IMAP: * OK; SSH: its SSH-2.0 version line — over TLS first for pop3s
    and imaps. A DNS target is asked a question itself (its own zone's SOA, the root's NS).
    A rejecting greeting, silence, or another protocol on the port are the findings.
    """
    assert ctx.target is not None
    if ctx.target.scheme == "dns":
        return await _dns_target(ctx)
    from netcheck.probes import banner

    reset = await _reset_before_a_byte(ctx)
    if reset is not None:
        return reset
    address = await _open_address(ctx)
    if address is None:
        return skipped(_("no address of the target accepted the TCP connection"))
    scheme, port, host = ctx.target.scheme, ctx.target.port, ctx.target.host
    proto = PROTOCOL_OF[scheme]
    tls_context = None
    if scheme in TLS_SCHEMES:
        from netcheck.probes.tls import client_context

        tls_context = client_context(ctx.options.cafile, ctx.options.cert, ctx.options.key)
    r = await banner.probe(proto, address, port, timeout=ctx.timeout, tls_context=tls_context,
                           server_hostname=host)
    if r.state == "closed" and r.bytes_received == 0:
        reset = await _reset_on_second_look(ctx, address)
        if reset is not None:
            return reset
    return _judge_greeting(ctx, scheme, proto, r)


def _greeting_commands(scheme: str, host: str, port: int) -> list[str]:
    hp = f"{host}:{port}"
    if scheme in ("smtp", "submission"):
        return [*([f"swaks --server {hp} --quit-after EHLO"] if hints.have("swaks") else []),
                hints.talk(host, port, crlf=True),
                f"openssl s_client -starttls smtp -connect {hp} </dev/null",
                _on_server("journalctl -u postfix -u exim4 --since -10min"),
                _on_server("tail -n 50 /var/log/mail.log")]
    if scheme in ("pop3s", "imaps"):
        return [f"openssl s_client -connect {hp} -servername {host} </dev/null",
                _on_server("journalctl -u dovecot --since -10min"),
                _on_server("tail -n 50 /var/log/mail.log")]
    if scheme in ("pop3", "imap"):
        return [hints.talk(host, port, crlf=True),
                _on_server("journalctl -u dovecot --since -10min"),
                _on_server("tail -n 50 /var/log/mail.log")]
    return [f"ssh -v -p {port} {host}", hints.talk(host, port),
            _on_server("journalctl -u ssh --since -10min")]


def _judge_greeting(ctx: Context, scheme: str, proto: str, r: BannerResult) -> Result:
    assert ctx.target is not None
    host, port = ctx.target.host, ctx.target.port
    name = NAMES[proto]
    evidence = r.to_json()
    where = (_("{host} port {port} ({address})") if r.address != host
             else _("{host} port {port}")).format(host=host, port=port, address=r.address)
    commands = _greeting_commands(scheme, host, port)
    if r.state == "tls_failed":
        return _tls_failure(ctx, f"{scheme}://{host}:{port}", r.error or "", [
            f"openssl s_client -connect {host}:{port} -servername {host} </dev/null"],
            **evidence)
    if r.state in ("connect_failed", "error"):
        return Result(Status.ERROR, _("could not connect to {endpoint} again: {error}").format(
            endpoint=where, error=r.error), evidence=evidence)
    which_program = _("on the server: which program")
    if r.state == "silent" and r.heard not in ("empty", PROTOCOL_OF.get(proto, proto)):
        said = r.exchange[-1] if r.exchange else {"sent": "?", "received": "?"}
        return failed("APP_PROTOCOL_MISMATCH",
                      _("{endpoint} does not speak {protocol}: no greeting, and to {sent} it "
                        "answers {received} — {heard}").format(
                          endpoint=where, protocol=name, sent=repr(said["sent"].split(" (")[0]),
                          received=repr(said["received"]),
                          heard=_heard(r.heard, _("something else"))), Hint(
                          _("An {protocol} server speaks first; this port waits for the client "
                            "and then answers in another protocol: a wrong port, or another "
                            "program listening there.").format(protocol=name),
                          [hints.talk(host, port),
                           _on_server(f"ss -tlnp 'sport = :{port}'", which_program)]),
                      **evidence)
    if r.state == "silent":
        return failed("APP_TIMEOUT", _("{endpoint} accepts the connection but sends no "
                                       "{protocol} greeting within {seconds} s").format(
                          endpoint=where, protocol=name, seconds=f"{ctx.timeout:g}"), Hint(
                          _("An {protocol} server speaks first; this one is silent: the daemon "
                            "hangs, is overloaded (a reverse DNS lookup of the client that "
                            "times out is a classic for mail servers), or something else holds "
                            "the port.").format(protocol=name),
                          commands), **evidence)
    if r.state == "closed":
        text = _("{endpoint} closes the connection without a word (no {protocol} "
                 "greeting)").format(endpoint=where, protocol=name)
        if proto in REJECTED:
            return failed(REJECTED[proto], text, Hint(
                _("The {protocol} server refuses this client before greeting it: an access "
                  "rule (tcp wrappers, a firewall that resets, fail2ban) or a connection "
                  "limit.").format(protocol=name), commands), **evidence)
        return failed("APP_PROTOCOL_MISMATCH", text, Hint(
            _("sshd closes at once when it refuses a client (MaxStartups, hosts.deny, "
              "fail2ban) and any non-SSH service may do so too: look at the server's log."),
            commands), **evidence)
    expected = {"smtp": "smtp", "pop3": "pop3", "imap": "imap", "ssh": "ssh"}[proto]
    if r.heard != expected:
        return failed("APP_PROTOCOL_MISMATCH",
                      _("{endpoint} does not speak {protocol}: it says {greeting} — "
                        "{heard}").format(endpoint=where, protocol=name,
                                          greeting=repr(r.greeting),
                                          heard=_heard(r.heard, _("something else"))), Hint(
                          _("Port {port} answers with another protocol than {protocol}: a "
                            "wrong port, or another program listening there.").format(
                                port=port, protocol=name),
                          [hints.talk(host, port),
                           _on_server(f"ss -tlnp 'sport = :{port}'", which_program)]),
                      **evidence)
    code = r.reply_code or ""
    rejects = _("{endpoint} rejects the session: {greeting}").format(endpoint=where,
                                                                     greeting=r.greeting)
    if proto == "smtp":
        if not code.startswith("2"):
            return failed("SMTP_REJECTED", rejects, Hint(
                _("The mail server greets with {code} instead of 220: it refuses this client "
                  "(a block list, a relay/access rule for this address) or is out of service "
                  "(421). Its log names the rule.").format(code=code), commands), **evidence)
        caps = ", ".join(r.capabilities[:8])
        tls_note = (_("STARTTLS offered") if r.starttls else _("no STARTTLS offered"))
        if scheme == "submission" and not r.starttls and not r.tls:
            tls_note += " " + _("(credentials would travel in clear)")
        greeting = (r.greeting or "").split("\\r\\n")[0]
        return passed(f"{greeting}; EHLO: {tls_note}" + (f" [{caps}]" if caps else ""),
                      **evidence)
    over_tls = " " + _("(over TLS)") if r.tls else ""
    if proto == "pop3":
        if code != "+OK":
            return failed("POP3_REJECTED", rejects, Hint(
                _("The POP3 server answers -ERR at once: it refuses this client or the service "
                  "is disabled. Its log says why."), commands), **evidence)
        return passed(f"{r.greeting}{over_tls}", **evidence)
    if proto == "imap":
        if code not in ("OK", "PREAUTH"):
            return failed("IMAP_REJECTED", rejects, Hint(
                _("The IMAP server greets with '* {code}': it refuses this client, is shutting "
                  "down or has too many connections. Its log says why.").format(code=code),
                commands), **evidence)
        return passed(f"{r.greeting}{over_tls}", **evidence)
    version = r.greeting or ""
    if code.startswith("SSH-1.") and code != "SSH-1.99":
        return passed(version + " " + _("(protocol 1 only: modern clients refuse it)"),
                      **evidence)
    return passed(version, **evidence)


async def _dns_target(ctx: Context) -> Result:
    """The target asked as a name server: its own zone's SOA, the root's NS."""
    from netcheck.probes import banner, dns

    assert ctx.target is not None
    address = await _open_address(ctx)
    if address is None:
        addrs = await ctx.addresses()
        if not addrs:
            return skipped(_("the target has no address to ask"))
        address = addrs[0]
    port = ctx.target.port
    questions: list[tuple[str, str]] = []
    if ctx.target.is_name and ctx.target.host.count(".") >= 1:
        questions.append((ctx.target.host.split(".", 1)[1], "SOA"))
    for domain in dns.parse_resolv_conf(ctx.options.resolv_conf).search[:2]:
        if (domain, "SOA") not in questions:
            questions.append((domain, "SOA"))
    questions.append((".", "NS"))
    timeout = min(ctx.timeout, _budget(ctx) / 2)
    from netcheck.lazy import asyncio

    answers: list[DnsTargetAnswer] = list(await asyncio.gather(
        *(banner.ask_dns(address, port, q, t, timeout) for q, t in questions)))
    over_tcp = False
    if all(a.error == "timeout" for a in answers):
        # UDP silent: is it the protocol or the transport? TCP answered the connect.
        retry = await banner.ask_dns(address, port, questions[0][0], questions[0][1],
                                     min(ctx.timeout, _budget(ctx)), tcp=True)
        answers.append(retry)
        over_tcp = retry.rcode is not None
    evidence = {"server": address, "port": port, "answers": [a.to_json() for a in answers]}
    target = (_("{address} port {port}") if address == ctx.target.host
              else _("{host} ({address}) port {port}")).format(
                  address=address, port=port, host=ctx.target.host)
    commands = [f"dig @{address} -p {port} {questions[0][0]} {questions[0][1]}",
                f"dig @{address} -p {port} +tcp {questions[0][0]} {questions[0][1]}",
                _on_server("journalctl -u named -u bind9 -u unbound --since -10min")]
    answered = [a for a in answers if a.rcode is not None]
    if not answered:
        if any((a.error or "").startswith("malformed") for a in answers):
            return failed("APP_PROTOCOL_MISMATCH",
                          _("{server} answers, but not in DNS").format(server=target),
                          Hint(_("Port {port} does not speak DNS: another program listens "
                                 "there.").format(port=port),
                               [_on_server(f"ss -ulnp 'sport = :{port}'"), *commands[:1]]),
                          **evidence)
        return failed("APP_TIMEOUT", _("{server} accepts TCP but answers no DNS question "
                                       "within {seconds} s (UDP and TCP)").format(
                          server=target, seconds=f"{timeout:g}"), Hint(
                          _("The name server process hangs or drops queries (rate limiting, an "
                            "access list that drops instead of refusing)."), commands),
                      **evidence)
    best = next((a for a in answered if a.rcode == "NOERROR" and a.answers),
                next((a for a in answered if a.rcode == "NOERROR"), answered[0]))
    flags = ", ".join(f for f, on in ((_("authoritative"), best.authoritative),
                                      (_("recursion available"), best.recursion_available))
                      if on)
    shown = best.answers[0] if best.answers else _("no records")
    summary = _("{server} answers {question}: {rcode}, {answer}").format(
        server=target, question=best.question, rcode=best.rcode, answer=shown)
    if flags:
        summary += f" ({flags})"
    if best.rtt_ms is not None:
        summary += " " + _("in {ms} ms").format(ms=f"{best.rtt_ms:.1f}")
    if best.rcode != "NOERROR":
        summary += " — " + _("it refuses every question netcheck asked (an access list?)")
    if over_tcp:
        summary += "; " + _("over TCP only: UDP queries time out (a firewall dropping UDP 53?)")
    return passed(summary, **evidence)


# -- tcp:// : service identification --------------------------------------------------------

async def _client_first_and_quiet(ctx: Context, address: str) -> Optional[Result]:
    """A pass with no greeting waited for, when the port's protocol has the client speak
    first and the transport rung's watch of this address's connection saw nothing come.

    A server that spoke (binary on port 80) or closed is read as any other: None.
    """
    from netcheck.probes import banner, shared

    assert ctx.target is not None
    port = ctx.target.port
    protocol = banner.client_speaks_first(port)
    if protocol is None:
        return None
    seen = await shared.tcp_connect(ctx, address, port)
    if seen.state != "open" or seen.after != "quiet" or seen.watched_ms is None:
        return None
    evidence = banner.BannerResult(address, port, "generic", state="silent").to_json()
    evidence.update(client_first=protocol, waited_ms=0, watched_ms=round(seen.watched_ms, 1))
    return passed(_("{address} port {port} waits for the client: {protocol} has the client "
                    "speak first, and nothing came in the {ms} ms the connection was watched "
                    "(no greeting waited for)").format(
                        address=address, port=port, protocol=protocol,
                        ms=f"{seen.watched_ms:.0f}"), **evidence)


@check("app.banner", Layer.APPLICATION, requires=("transport.tcp",), codes=(RESET,),
       applies=_for(("tcp",), N_("not a tcp:// target ({scheme}://)")))
async def app_banner(ctx: Context) -> Result:
    """Service identifies itself.

    Many services speak first (SSH, SMTP, FTP, POP3, IMAP, some databases): what the port
    says within half a second is shown and recognised. Silence is not a fault: HTTP, TLS
    and many others wait for the client. A server that resets the connection before any
    byte refuses this client (APP_CONNECTION_RESET).
    """
    from netcheck.probes import banner

    assert ctx.target is not None
    reset = await _reset_before_a_byte(ctx)
    if reset is not None:
        return reset
    address = await _open_address(ctx)
    if address is None:
        return skipped(_("no address of the target accepted the TCP connection"))
    port = ctx.target.port
    quiet = await _client_first_and_quiet(ctx, address)
    if quiet is not None:
        return quiet
    r = await banner.probe("generic", address, port, timeout=ctx.timeout)
    if r.state == "closed" and r.bytes_received == 0:
        reset = await _reset_on_second_look(ctx, address)
        if reset is not None:
            return reset
    evidence = r.to_json()
    where = {"address": address, "port": port}
    if r.state == "answered":
        what = _heard(r.heard, _("something"))
        return passed(_("{address} port {port} says {greeting}: {heard}").format(
            greeting=repr(r.greeting[:100]), heard=what, **where) if r.greeting
            else _("{address} port {port}: {heard}").format(heard=what, **where), **evidence)
    if r.state == "silent":
        return passed(_("{address} port {port} says nothing within {seconds} s: it waits for "
                        "the client (HTTP, TLS and many others do)").format(
                            seconds=f"{min(ctx.timeout, banner.GENERIC_WAIT):g}", **where),
                      **evidence)
    if r.state == "closed":
        return passed(_("{address} port {port} closes the connection without a word").format(
            **where), **evidence)
    return skipped(_("could not connect to {address} port {port} again: {error}").format(
        error=r.error, **where), **evidence)
