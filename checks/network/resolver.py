"""The resolver rungs: the resolver configuration (``dns.config``) and the name servers that
answer (``dns.servers``), judged by pure functions (:func:`judge_config`,
:func:`judge_servers`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from netcheck.checks.network.common import _loopback, _manager, _name_target
from netcheck.checks.network.path import LOSS_WARN_PCT

from netcheck import hints
from netcheck.i18n import _, ngettext, probe_text
from netcheck.lazy import asyncio, lazy
from netcheck.model import Hint, Layer, Result, Status, failed, warned
from netcheck.registry import check

if TYPE_CHECKING:
    from netcheck import family as addrfam
    from netcheck.probes import dns, shared
    from netcheck.runner import Context
else:  # imported at first use: `netcheck checks` lists the checks without the probes
    addrfam = lazy("netcheck.family")
    dns, shared = (lazy(f"netcheck.probes.{name}")
                   for name in ("dns", "shared"))


# -- names ---------------------------------------------------------------------------

def _nss_blocker_text(nss: dns.NssHosts, name: str) -> Optional[str]:
    """Why getaddrinfo() never asks DNS for ``name`` (nsswitch.conf), or None."""
    blocker = nss.dns_blocker(name)
    if blocker is None:
        return None
    if blocker == "no-dns":
        return _("the hosts: line of {file} is '{line}', without dns: programs never ask a "
                 "name server").format(file=nss.path, line=nss.line or "")
    return _("the hosts: line of {file} is '{line}': {source} answers for .local names and "
             "stops there, so DNS is never asked for {name}").format(
                 file=nss.path, line=nss.line or "", source=blocker, name=name)


def judge_config(cfg: dns.ResolverConfig, nss: dns.NssHosts, name: str,
                 in_hosts: bool) -> tuple[Status, Optional[str], str]:
    """dns.config's judgement: facts read from resolv.conf and nsswitch.conf in,
    ``(status, code, text)`` out."""
    blocked = _nss_blocker_text(nss, name)
    if blocked is not None:
        if in_hosts:
            return Status.PASS, None, _("{name} is in the hosts file ({why})").format(
                name=name, why=blocked)
        return Status.FAIL, "DNS_NO_RESOLVER", blocked
    if not cfg.nameservers:
        if in_hosts:
            return Status.PASS, None, _("no name server, but {host} is in the hosts "
                                        "file").format(host=name)
        return Status.FAIL, "DNS_NO_RESOLVER", (
            _("cannot read {file}: {error}").format(file=cfg.path, error=cfg.error)
            if cfg.error else _("{file} names no nameserver").format(file=cfg.path))
    summary = f"{cfg.path}: nameserver {', '.join(cfg.nameservers)}"
    if cfg.stub_kind is not None:
        servers = ", ".join(cfg.upstreams) or _("not found")
        summary += " " + (_("(systemd-resolved; upstream {servers})") if cfg.uses_stub
                          else _("(a local stub; upstream {servers})")).format(servers=servers)
    return Status.PASS, None, summary


@check("dns.config", Layer.NETWORK, applies=_name_target, codes=("DNS_NO_RESOLVER",))
async def dns_config(ctx: Context) -> Result:
    """Name servers are configured.

    ``/etc/resolv.conf`` must name at least one server (with a local stub — systemd-resolved's
    127.0.0.53, a dnsmasq or unbound on 127.0.0.1 — also where it forwards to), and the
    ``hosts:`` line of ``/etc/nsswitch.conf`` must let programs ask DNS at all.
    """
    # Read here, not through the resolution: the config is known long before the answers.
    cfg = await ctx.blocking(dns.parse_resolv_conf, ctx.options.resolv_conf)
    nss = await ctx.blocking(dns.parse_nsswitch, dns.NSSWITCH)
    assert ctx.target is not None
    in_hosts = bool(await ctx.blocking(dns.hosts_lookup, ctx.options.hosts_file,
                                       ctx.target.host)) and "files" in nss.sources
    evidence = {**cfg.to_json(), "nsswitch": nss.to_json()}
    status, code, text = judge_config(cfg, nss, ctx.target.host, in_hosts)
    if code is None:
        return Result(status, text, evidence=evidence)
    if nss.dns_blocker(ctx.target.host) is not None:
        return failed(code, text, Hint(
            _("Let programs ask DNS: put dns on the hosts: line of {file} (usually "
              "'hosts: files dns'), or add the name to the hosts file.").format(file=nss.path),
            [f"grep '^hosts:' {nss.path}", f"getent hosts {ctx.target.host}",
             f"sed -i 's/^hosts:.*/hosts: files dns/' {nss.path}"]), **evidence)
    mgr = await _manager(ctx)
    found = await _resolver_that_answers(ctx)
    server = found.address if found is not None else "<your DNS server>"
    cmds = ["cat /etc/resolv.conf", f"echo 'nameserver {server}' >> {cfg.path}"]
    if found is not None:
        cmds.insert(1, "# " + _("{server} answers for {name} ({source})").format(
            server=found.address, name=ctx.target.host, source=found.source))
    if mgr.name == hints.NETWORKMANAGER:
        cmds.insert(0, "nmcli device show | grep -i dns")
    elif mgr.name == hints.NETWORKD:
        cmds.insert(0, hints.usable("resolvectl status"))
    return failed(code, text, Hint(_("Without a name server no name resolves: programs have "
                                     "nobody to ask. Configure one (DHCP usually provides "
                                     "one)."), cmds), **evidence)


async def _resolver_that_answers(ctx: Context) -> Any:
    """A name server that answers for the target's name, to name in a hint instead of
    ``<your DNS server>``: the DHCP lease's servers, then the gateway (routers often relay
    DNS), each asked (:func:`netcheck.fix.prove.prove_resolver`); None when none answers."""
    from netcheck.fix import prove

    assert ctx.target is not None
    path = await ctx.path()
    link = ctx.facts.link(index=path.ifindex) if path.ifindex is not None else None
    sources: list[tuple[str, list[str]]] = []
    if link is not None:
        sources += [(_("the DHCP lease {file}").format(file=lease.file), lease.dns)
                    for lease in await ctx.blocking(prove.leases, link.name, link.index)]
    if path.gateway:
        sources.append((_("the gateway"), [path.gateway]))
    candidates = prove.resolver_candidates(sources, set())
    if not candidates:
        return None
    wait = max(0.3, min(1.0, ctx.timeout))
    answers = await asyncio.gather(*(prove.prove_resolver(a, how, ctx.target.host, "A", wait)
                                     for a, how in candidates), return_exceptions=True)
    return next((a for a in answers if not isinstance(a, BaseException) and a.proven), None)


@dataclass(frozen=True)
class ServerRecord:
    """What one name server did with every question netcheck sent it (recorded facts)."""

    server: str
    rcodes: tuple[str, ...] = ()  # the rcodes of the answers
    errors: tuple[str, ...] = ()  # what the unanswered questions met (timeout, rejected ...)
    sent: int = 0  # datagrams sent, resends included
    retried: int = 0  # questions answered only after a resend
    addresses: int = 0  # addresses its answers held

    @classmethod
    def of(cls, server: str, answers: list[dns.DnsAnswer]) -> ServerRecord:
        """The record of ``server`` from a run's answers."""
        mine = [a for a in answers if a.server == server]
        return cls(server, tuple(a.rcode for a in mine if a.rcode),
                   tuple(a.error for a in mine if a.error and not a.rcode),
                   sum(a.sent for a in mine), sum(1 for a in mine if a.rcode and a.retried),
                   sum(len(a.addresses) for a in mine))

    @property
    def partial(self) -> bool:
        """It answered some questions with no address and stayed silent to the others (the
        A question lost, the empty AAAA answer back): nothing it said is an answer yet."""
        return (not self.addresses and "timeout" in self.errors
                and set(self.rcodes) <= {"NOERROR"} and bool(self.rcodes))

    @property
    def silent(self) -> bool:
        """No answer came back: what the path may explain and a trace may locate (an error
        this host's own stack gave, no route or a policy rule, never left it)."""
        return self.state == "DNS_RESOLVER_UNREACHABLE" and "timeout" in self.errors

    @property
    def asked(self) -> bool:
        return bool(self.rcodes or self.errors)

    @property
    def state(self) -> str:
        """ok | DNS_REFUSED | DNS_SERVFAIL | DNS_RESOLVER_UNREACHABLE (as dig would tell)."""
        rcodes = set(self.rcodes)
        if rcodes & {"NOERROR", "NXDOMAIN"} and not self.partial:
            return "ok"
        if "REFUSED" in rcodes:
            return "DNS_REFUSED"
        if rcodes - {"NOERROR"}:
            return "DNS_SERVFAIL"
        return "DNS_RESOLVER_UNREACHABLE"

    @property
    def problem(self) -> str:
        """What a person would read: ``answers SERVFAIL``, ``no answer to 12 queries``."""
        state = self.state
        if state == "DNS_REFUSED":
            return _("answers REFUSED")
        if state == "DNS_SERVFAIL":
            return _("answers {rcode}").format(rcode=sorted(set(self.rcodes))[0])
        if self.partial:
            return _("answers {answered} of {questions} questions, with no address, and not "
                     "the others (no answer to {sent} queries)").format(
                         answered=len(self.rcodes), questions=len(self.rcodes) + len(
                             self.errors), sent=self.sent)
        errors = ", ".join(probe_text(e) for e in sorted(set(self.errors))) or _("no answer")
        if set(self.errors) == {"timeout"} and self.sent > 1:
            return _("no answer to {sent} queries").format(sent=self.sent)
        return errors


# Below this share of echo round trips coming back, a name server's silence to every one of
# its queries is what the path's loss would give anyway (odds over 1 %): loss, not DNS.
def _silence_explained_by_loss(rec: ServerRecord, burst: Optional[dict[str, Any]]) -> bool:
    if not burst or not burst.get("sent") or not burst.get("received"):
        return False
    if set(rec.errors) != {"timeout"}:
        return False
    back = burst["received"] / burst["sent"]
    return back < 1.0 and (1.0 - back) ** max(1, rec.sent) > 0.01


def _lossy(burst: Optional[dict[str, Any]]) -> bool:
    """Burst statistics showing more lost round trips than a healthy path loses."""
    return bool(burst and burst.get("sent") and burst["received"] < burst["sent"]
                and float(burst.get("loss_pct") or 0) >= LOSS_WARN_PCT)


def judge_servers(configured: list[ServerRecord], upstreams: list[ServerRecord], name: str,
                  stub_kind: Optional[str] = None, in_hosts: bool = False,
                  server_burst: Optional[dict[str, Any]] = None,
                  ) -> tuple[Status, Optional[str], str]:
    """dns.servers' judgement: recorded per-server results in, ``(status, code, text)`` out.

    ``configured``: resolv.conf's servers in order; ``upstreams``: the local stub's upstream
    servers asked directly (empty when there is no stub or they are unknown);
    ``server_burst``: burst statistics (:func:`icmp.burst_stats`) of the first server when
    it answered nothing (behind a local stub that fails: of its first silent upstream).
    """
    asked = [r for r in configured if r.asked]
    working = [r for r in asked if r.state == "ok"]
    if working:
        summary = ngettext("{servers} answers", "{servers} answer", len(working)).format(
            servers=", ".join(r.server for r in working))
        broken = [r for r in asked if r.state != "ok"]
        if broken and not in_hosts:
            # The lookups still get answers, but a server this host is told to ask fails:
            # a lost family (its path broken) or a lost spare, what the next fault hits.
            bad = broken[0]
            return Status.WARN, bad.state, ngettext(
                "name server {server}: {problem}, while {servers} answers",
                "name server {server}: {problem}, while {servers} answer",
                len(working)).format(server=bad.server, problem=bad.problem,
                                     servers=", ".join(r.server for r in working))
        if broken:
            summary += f" ({', '.join(f'{r.server}: {r.state}' for r in broken)})"
        up_ok = [r for r in upstreams if r.asked and r.state == "ok"]
        up_bad = [r for r in upstreams if r.asked and r.state != "ok"]
        if up_ok and up_bad and not in_hosts and stub_kind is not None:
            # Behind a working stub the same holds one step further: an upstream it is told
            # to ask fails while another answers (a lost family, or a lost spare).
            bad = up_bad[0]
            return Status.WARN, bad.state, ngettext(
                "{stub} answers, but its upstream {server}: {problem}, while {servers} answers",
                "{stub} answers, but its upstream {server}: {problem}, while {servers} answer",
                len(up_ok)).format(stub=working[0].server, server=bad.server,
                                   problem=bad.problem,
                                   servers=", ".join(r.server for r in up_ok))
        resent = sum(r.retried for r in working)
        if resent:
            summary += " " + ngettext("({n} question answered only after a resend: datagrams "
                                      "are lost on the way)",
                                      "({n} questions answered only after a resend: datagrams "
                                      "are lost on the way)", resent).format(n=resent)
        return Status.PASS, None, summary
    if in_hosts:
        return Status.PASS, None, _("no name server answers, but the target is in the hosts "
                                    "file (not on the path)")
    if not asked:
        return Status.SKIP, None, _("no name server was asked")
    first = asked[0]
    if stub_kind is not None and _loopback(first.server):
        who = (_("the systemd-resolved stub {server}") if stub_kind == "systemd-resolved"
               else _("the local stub {server}")).format(server=first.server)
        up_ok = [r for r in upstreams if r.asked and r.state == "ok"]
        up_bad = [r for r in upstreams if r.asked and r.state != "ok"]
        # An upstream on a path that loses most packets: silent, or answering netcheck only
        # after resends (the stub sends its question fewer times and lost the answers).
        lossy: Optional[tuple[ServerRecord, str]] = None
        if up_ok and all(r.retried for r in up_ok) and _lossy(server_burst):
            lossy = up_ok[0], _("answers only after resends")
        elif not up_ok and up_bad and up_bad[0].state == "DNS_RESOLVER_UNREACHABLE" and \
                _silence_explained_by_loss(up_bad[0], server_burst):
            lossy = up_bad[0], _("is silent too ({problem})").format(problem=up_bad[0].problem)
        if lossy is not None:
            assert server_burst is not None
            return Status.FAIL, "PATH_LOSS", _(
                "{who} fails ({problem}): its upstream {server} {what}, and only {received} of "
                "{sent} pings to it came back ({loss} % lost): the path to it loses most "
                "packets").format(who=who, problem=first.problem, server=lossy[0].server,
                                  what=lossy[1], received=server_burst["received"],
                                  sent=server_burst["sent"],
                                  loss=f"{server_burst['loss_pct']:g}")
        if up_ok:
            return Status.FAIL, first.state, _(
                "{who} fails ({problem}), but its upstream {upstream} answers: the stub is "
                "the problem").format(who=who, problem=first.problem, upstream=up_ok[0].server)
        if up_bad:
            return Status.FAIL, up_bad[0].state, _(
                "{who} fails ({problem}) because its upstream {upstream} fails too "
                "({up_problem}): the upstream is the problem").format(who=who,
                                                                       problem=first.problem,
                                         upstream=up_bad[0].server,
                                         up_problem=up_bad[0].problem)
    if first.state == "DNS_RESOLVER_UNREACHABLE" and _silence_explained_by_loss(
            first, server_burst):
        assert server_burst is not None
        return Status.FAIL, "PATH_LOSS", _(
            "name server {server}: {problem}, and only {received} of {sent} pings came back "
            "({loss} % lost): the path to it loses most packets").format(
                server=first.server, problem=first.problem, received=server_burst["received"],
                sent=server_burst["sent"], loss=f"{server_burst['loss_pct']:g}")
    servers = ", ".join(r.server for r in asked)
    if first.state == "DNS_REFUSED":
        return Status.FAIL, first.state, ngettext(
            "{servers} refuses to answer for {name}", "{servers} refuse to answer for {name}",
            len(asked)).format(servers=servers, name=name)
    if first.state == "DNS_SERVFAIL":
        return Status.FAIL, first.state, ngettext(
            "{servers} answers SERVFAIL for {name}", "{servers} answer SERVFAIL for {name}",
            len(asked)).format(servers=servers, name=name)
    problem = first.problem
    if server_burst and server_burst.get("received"):
        problem += " " + _("(but {server} answers ping: its DNS service or a firewall drops "
                           "port 53)").format(server=first.server)
    elif server_burst and server_burst.get("sent"):
        problem += " " + _("(and {server} does not answer ping either)").format(
            server=first.server)
    return Status.FAIL, "DNS_RESOLVER_UNREACHABLE", ngettext(
        "name server {servers}: {problem}", "name servers {servers}: {problem}",
        len(asked)).format(servers=servers, problem=problem)


def _server_verdicts(res: dns.Resolution) -> dict[str, str]:
    """Per server asked: ok | the DNS_* code its answers amount to."""
    records = (ServerRecord.of(s, res.answers) for s in res.config.nameservers)
    return {r.server: r.state for r in records if r.asked}


# Not blocked by the path checks: for a name, the path is only known once it resolves,
# and the resolver's answers (or silence) are worth having at once either way.
@check("dns.servers", Layer.NETWORK, applies=_name_target, requires=("dns.config",),
       codes=("DNS_RESOLVER_UNREACHABLE", "DNS_REFUSED", "DNS_SERVFAIL", "PATH_LOSS"))
async def dns_servers(ctx: Context) -> Result:
    """Name servers answer.

    Each configured server is asked directly, as ``dig @server`` would, every question sent
    again until answered: silence (to every one of them) or an ICMP error, REFUSED, and
    SERVFAIL are different faults with different fixes. Behind a local stub its upstream
    servers are asked too, to tell which of the two fails.
    """
    resolving = ctx.resolution()
    done, _pending = await asyncio.wait({resolving}, timeout=0.3)
    if not done:  # slow to answer: find out meanwhile whether the server's host is up
        servers = (await ctx.blocking(dns.parse_resolv_conf, ctx.options.resolv_conf)).nameservers
        if servers and not _loopback(servers[0]):
            shared.burst(ctx, servers[0])
    res = await resolving
    records = [ServerRecord.of(s, res.answers) for s in res.config.nameservers]
    upstreams = [ServerRecord.of(s, res.upstream_answers) for s in res.config.upstreams]
    evidence: dict[str, Any] = {
        "servers": {r.server: r.state for r in records if r.asked},
        "answers": [a.to_json() for a in res.answers[:12]]}
    if res.upstream_answers:
        evidence["upstreams"] = [a.to_json() for a in res.upstream_answers]
    first = next((r for r in records if r.asked), None)
    burst_stats = None
    # The server whose silence is to be explained: the first one, or behind a local stub
    # that fails, its first silent upstream (the stub's own silence is its upstream's).
    far = first
    if first is not None and _loopback(first.server) and first.state != "ok":
        far = next((r for r in upstreams if r.asked and r.state != "ok"), None) or next(
            (r for r in upstreams if r.retried), None)
    if (far is not None and not _loopback(far.server)
            and ((far.state == "DNS_RESOLVER_UNREACHABLE" and "timeout" in far.errors)
                 or (far.state == "ok" and far.retried))
            and not any(r.state == "ok" for r in records)):
        # Is the server's host there at all? Tells a dead host, a silent service and a
        # path that loses most packets apart.
        server_burst = await shared.burst(ctx, far.server)
        evidence["server_ping"] = server_burst.to_json()
        burst_stats = server_burst.stats() if server_burst.measured else None
    status, code, text = judge_servers(records, upstreams, res.name, res.config.stub_kind,
                                       res.source == "hosts", burst_stats)
    if code is None:
        return Result(status, text, evidence=evidence)
    assert first is not None
    if status is Status.WARN:
        # The servers the warning is about: resolv.conf's, or the stub's upstreams.
        pool = records if any(r.asked and r.state != "ok" for r in records) else upstreams
        bad = [r for r in pool if r.asked and r.state != "ok"]
        good = {addrfam.family_of(r.server) for r in pool if r.state == "ok"}
        lost = {addrfam.family_of(r.server) for r in bad}
        if len(lost) == 1 and not lost & good:  # one family's servers fail, the other's work
            evidence["family"] = addrfam.name(lost.pop())
        hint = (_servers_hint(ctx, res, code, first, upstreams, None) if pool is upstreams
                else _servers_hint(ctx, res, code, bad[0], [], None))
        result = warned(code, text, hint, **evidence)
        # What breaks its family's path, or loses its datagrams, explains a silent one
        # (runner.explained_by); only silence is located (ServerRecord.silent).
        result.unanswered = tuple(r.server for r in bad if r.silent)
        return result
    result = failed(code, text, _servers_hint(ctx, res, code, first, upstreams, burst_stats),
                    **evidence)
    if code in ("DNS_RESOLVER_UNREACHABLE", "PATH_LOSS"):
        # Silence: a lower rung of the path the queries took may explain it (runner).
        result.unanswered = tuple(r.server for r in (*records, *upstreams)
                                  if r.asked and r.state == "DNS_RESOLVER_UNREACHABLE")
    return result


def _servers_hint(ctx: Context, res: dns.Resolution, code: str, first: ServerRecord,
                  upstreams: list[ServerRecord], burst: Optional[dict[str, Any]]) -> Hint:
    """What to do about the name servers, by code and by who failed (stub or upstream)."""
    name = res.fqdn or res.name
    stub = res.config.stub_kind is not None and _loopback(first.server)
    stub_is_culprit = stub and first.state != "ok" and (
        any(r.state == "ok" for r in upstreams) or not upstreams)
    if stub and stub_is_culprit:
        resolved = res.config.stub_kind == "systemd-resolved"
        text = (_("The local stub resolver on {server} fails while the server it forwards to "
                  "works: restart the stub (and read its log), or point resolv.conf at the "
                  "upstream server.").format(server=first.server) if upstreams
                else _("With systemd-resolved, the stub must run and have an upstream server.")
                if resolved else _("No configured name server answers: the server is down, a "
                                   "firewall drops port 53, or the address in resolv.conf is "
                                   "wrong."))
        return Hint(
            text,
            (["systemctl restart systemd-resolved", hints.usable("resolvectl status"),
              "journalctl -u systemd-resolved -n 50"] if resolved
             else ["ss -lunp 'sport = :53'", "systemctl restart dnsmasq unbound"])
            + [hints.dig(name, first.server)]
            + [hints.dig(name, u.server) for u in upstreams[:1]])
    if stub and code == "PATH_LOSS":
        up = next((r for r in upstreams if r.state != "ok"), upstreams[0])
        return Hint(_("Most packets to the name server are lost on the way: find where with "
                      "mtr, and look at the link and the routers on that path."),
                    [hints.count_loss(up.server), f"ping -c 50 -i 0.2 {up.server}"])
    if stub:
        up = next((r for r in upstreams if r.state != "ok"), upstreams[0])
        return Hint(_("The stub works but the server it forwards to ({server}) fails: fix "
                      "that server or the path to it, or give the stub another upstream.").format(
                          server=up.server),
                    [hints.dig(name, up.server), f"ping -c 3 {up.server}",
                     hints.usable("resolvectl status") if res.config.uses_stub
                     else f"grep -r server= {dns.DNSMASQ_CONF}"])
    server = first.server
    if code == "PATH_LOSS":
        return Hint(_("Most packets to the name server are lost on the way: find where with "
                      "mtr, and look at the link and the routers on that path."),
                    [hints.count_loss(server), f"ping -c 50 -i 0.2 {server}"])
    if code == "DNS_REFUSED":
        return Hint(_("The server answers but will not resolve for this host: it is not your "
                      "resolver, or its access list excludes you. Use the resolver your "
                      "network gives (DHCP), or allow this host on the server."),
                    [hints.dig(name, server), "cat /etc/resolv.conf"])
    if code == "DNS_SERVFAIL":
        return Hint(_("The resolver cannot get an answer (its upstream or the domain's "
                      "servers fail, or DNSSEC validation fails). Check the resolver's log "
                      "and its forwarders."),
                    [hints.dig(name, server), hints.dig(name, server, "", "+cd")])
    text = _("No configured name server answers: the server is down, a firewall drops port "
             "53, or the address in resolv.conf is wrong.")
    cmds = [hints.dig(name, server, "", "+time=2", "+tries=1"), f"ping -c 3 {server}",
            "cat /etc/resolv.conf"]
    if burst and burst.get("received"):
        text = _("{server} is up but its DNS service does not answer: start the service or "
                 "open port 53 (UDP and TCP) on its firewall.").format(server=server)
    elif burst:
        cmds.insert(1, hints.trace(server))
    return Hint(text, cmds)
