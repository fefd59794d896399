"""``app.protocol``: a mail or SSH server greets as its protocol should (SMTP,
POP3, IMAP, SSH; over TLS for pop3s and imaps), and a DNS target answers a
question itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from netcheck.checks.application.common import (
    NAMES,
    PROTOCOL_OF,
    PROTOCOL_SCHEMES,
    REJECTED,
    TLS_REQUIRES,
    TLS_SCHEMES,
    _budget,
    _for,
    _heard,
    _on_server,
    _open_address,
    _reset_on_second_look,
    _talking_address,
    _tls_failure,
)

from netcheck import hints
from netcheck.i18n import N_, _
from netcheck.model import Hint, Layer, Result, Status, failed, passed, skipped
from netcheck.registry import check

if TYPE_CHECKING:
    from netcheck.probes.banner import BannerResult, DnsTargetAnswer
    from netcheck.runner import Context


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

    address = await _talking_address(ctx)
    if isinstance(address, Result):
        return address
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


class _Said(NamedTuple):
    """What every verdict on one greeting says alike: the protocol, where, the commands."""

    name: str
    where: str
    commands: list[str]
    evidence: dict[str, Any]


def _judge_greeting(ctx: Context, scheme: str, proto: str, r: BannerResult) -> Result:
    assert ctx.target is not None
    host, port = ctx.target.host, ctx.target.port
    evidence = r.to_json()
    where = (_("{host} port {port} ({address})") if r.address != host
             else _("{host} port {port}")).format(host=host, port=port, address=r.address)
    said = _Said(NAMES[proto], where, _greeting_commands(scheme, host, port), evidence)
    if r.state == "tls_failed":
        return _tls_failure(ctx, f"{scheme}://{host}:{port}", r.error or "", [
            f"openssl s_client -connect {host}:{port} -servername {host} </dev/null"],
            **evidence)
    if r.state in ("connect_failed", "error"):
        return Result(Status.ERROR, _("could not connect to {endpoint} again: {error}").format(
            endpoint=where, error=r.error), evidence=evidence)
    if r.state == "silent":
        return _silent(ctx, proto, r, said)
    if r.state == "closed":
        return _closed_at_once(proto, said)
    expected = {"smtp": "smtp", "pop3": "pop3", "imap": "imap", "ssh": "ssh"}[proto]
    if r.heard != expected:
        return failed("APP_PROTOCOL_MISMATCH",
                      _("{endpoint} does not speak {protocol}: it says {greeting} — "
                        "{heard}").format(endpoint=where, protocol=said.name,
                                          greeting=repr(r.greeting),
                                          heard=_heard(r.heard, _("something else"))), Hint(
                          _("Port {port} answers with another protocol than {protocol}: a "
                            "wrong port, or another program listening there.").format(
                                port=port, protocol=said.name),
                          _who_listens(host, port)), **evidence)
    if proto == "smtp":
        return _smtp_greeted(scheme, r, said)
    return _greeted(proto, r, said)


def _who_listens(host: str, port: int) -> list[str]:
    return [hints.talk(host, port),
            _on_server(f"ss -tlnp 'sport = :{port}'", _("on the server: which program"))]


def _silent(ctx: Context, proto: str, r: BannerResult, said: _Said) -> Result:
    """No greeting: another protocol that waits for the client, or a hung daemon."""
    assert ctx.target is not None
    name, where = said.name, said.where
    if r.heard not in ("empty", PROTOCOL_OF.get(proto, proto)):
        sent = r.exchange[-1] if r.exchange else {"sent": "?", "received": "?"}
        return failed("APP_PROTOCOL_MISMATCH",
                      _("{endpoint} does not speak {protocol}: no greeting, and to {sent} it "
                        "answers {received} — {heard}").format(
                          endpoint=where, protocol=name, sent=repr(sent["sent"].split(" (")[0]),
                          received=repr(sent["received"]),
                          heard=_heard(r.heard, _("something else"))), Hint(
                          _("An {protocol} server speaks first; this port waits for the client "
                            "and then answers in another protocol: a wrong port, or another "
                            "program listening there.").format(protocol=name),
                          _who_listens(ctx.target.host, ctx.target.port)),
                      **said.evidence)
    return failed("APP_TIMEOUT", _("{endpoint} accepts the connection but sends no "
                                   "{protocol} greeting within {seconds} s").format(
                      endpoint=where, protocol=name, seconds=f"{ctx.timeout:g}"), Hint(
                      _("An {protocol} server speaks first; this one is silent: the daemon "
                        "hangs, is overloaded (a reverse DNS lookup of the client that "
                        "times out is a classic for mail servers), or something else holds "
                        "the port.").format(protocol=name),
                      said.commands), **said.evidence)


def _closed_at_once(proto: str, said: _Said) -> Result:
    text = _("{endpoint} closes the connection without a word (no {protocol} "
             "greeting)").format(endpoint=said.where, protocol=said.name)
    if proto in REJECTED:
        return failed(REJECTED[proto], text, Hint(
            _("The {protocol} server refuses this client before greeting it: an access "
              "rule (tcp wrappers, a firewall that resets, fail2ban) or a connection "
              "limit.").format(protocol=said.name), said.commands), **said.evidence)
    return failed("APP_PROTOCOL_MISMATCH", text, Hint(
        _("sshd closes at once when it refuses a client (MaxStartups, hosts.deny, "
          "fail2ban) and any non-SSH service may do so too: look at the server's log."),
        said.commands), **said.evidence)


def _rejects(r: BannerResult, said: _Said) -> str:
    return _("{endpoint} rejects the session: {greeting}").format(endpoint=said.where,
                                                                  greeting=r.greeting)


def _smtp_greeted(scheme: str, r: BannerResult, said: _Said) -> Result:
    """An SMTP greeting: 220 or a refusal, then what EHLO offered (STARTTLS above all)."""
    code = r.reply_code or ""
    if not code.startswith("2"):
        return failed("SMTP_REJECTED", _rejects(r, said), Hint(
            _("The mail server greets with {code} instead of 220: it refuses this client "
              "(a block list, a relay/access rule for this address) or is out of service "
              "(421). Its log names the rule.").format(code=code), said.commands),
            **said.evidence)
    caps = ", ".join(r.capabilities[:8])
    tls_note = (_("STARTTLS offered") if r.starttls else _("no STARTTLS offered"))
    if scheme == "submission" and not r.starttls and not r.tls:
        tls_note += " " + _("(credentials would travel in clear)")
    greeting = (r.greeting or "").split("\\r\\n")[0]
    return passed(f"{greeting}; EHLO: {tls_note}" + (f" [{caps}]" if caps else ""),
                  **said.evidence)


def _greeted(proto: str, r: BannerResult, said: _Said) -> Result:
    """A POP3, IMAP or SSH greeting: its code accepts the client or refuses it."""
    code = r.reply_code or ""
    over_tls = " " + _("(over TLS)") if r.tls else ""
    if proto == "pop3":
        if code != "+OK":
            return failed("POP3_REJECTED", _rejects(r, said), Hint(
                _("The POP3 server answers -ERR at once: it refuses this client or the service "
                  "is disabled. Its log says why."), said.commands), **said.evidence)
        return passed(f"{r.greeting}{over_tls}", **said.evidence)
    if proto == "imap":
        if code not in ("OK", "PREAUTH"):
            return failed("IMAP_REJECTED", _rejects(r, said), Hint(
                _("The IMAP server greets with '* {code}': it refuses this client, is shutting "
                  "down or has too many connections. Its log says why.").format(code=code),
                said.commands), **said.evidence)
        return passed(f"{r.greeting}{over_tls}", **said.evidence)
    version = r.greeting or ""
    if code.startswith("SSH-1.") and code != "SSH-1.99":
        return passed(version + " " + _("(protocol 1 only: modern clients refuse it)"),
                      **said.evidence)
    return passed(version, **said.evidence)


async def _dns_target(ctx: Context) -> Result:
    """The target asked as a name server: its own zone's SOA, the root's NS."""
    assert ctx.target is not None
    address = await _open_address(ctx)
    if address is None:
        addrs = await ctx.addresses()
        if not addrs:
            return skipped(_("the target has no address to ask"))
        address = addrs[0]
    port = ctx.target.port
    questions = _dns_questions(ctx)
    timeout = min(ctx.timeout, _budget(ctx) / 2)
    answers, over_tcp = await _ask_dns(ctx, address, port, questions, timeout)
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
    return passed(_dns_summary(target, answered, over_tcp), **evidence)


def _dns_questions(ctx: Context) -> list[tuple[str, str]]:
    """The target's own zone, the resolver's first search domains, then the root."""
    from netcheck.probes import dns

    assert ctx.target is not None
    questions: list[tuple[str, str]] = []
    if ctx.target.is_name and ctx.target.host.count(".") >= 1:
        questions.append((ctx.target.host.split(".", 1)[1], "SOA"))
    for domain in dns.parse_resolv_conf(ctx.options.resolv_conf).search[:2]:
        if (domain, "SOA") not in questions:
            questions.append((domain, "SOA"))
    questions.append((".", "NS"))
    return questions


async def _ask_dns(ctx: Context, address: str, port: int, questions: list[tuple[str, str]],
                   timeout: float) -> tuple[list[DnsTargetAnswer], bool]:
    """Every question over UDP at once; all silent, the first once more over TCP.

    Returns the answers and whether only TCP answered.
    """
    from netcheck.lazy import asyncio
    from netcheck.probes import banner

    answers: list[DnsTargetAnswer] = list(await asyncio.gather(
        *(banner.ask_dns(address, port, q, t, timeout) for q, t in questions)))
    over_tcp = False
    if all(a.error == "timeout" for a in answers):
        # UDP silent: is it the protocol or the transport? TCP answered the connect.
        retry = await banner.ask_dns(address, port, questions[0][0], questions[0][1],
                                     min(ctx.timeout, _budget(ctx)), tcp=True)
        answers.append(retry)
        over_tcp = retry.rcode is not None
    return answers, over_tcp


def _dns_summary(target: str, answered: list[DnsTargetAnswer], over_tcp: bool) -> str:
    """The pass's line, from the best answer: one with records, else any NOERROR."""
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
    return summary
