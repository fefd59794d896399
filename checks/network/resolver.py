"""The resolver rungs: the resolver configuration (``dns.config``) and the name servers that
answer (``dns.servers``), judged by pure functions (:func:`judge_config` here,
:func:`judge_servers` in :mod:`~netcheck.checks.network.nameservers`, re-exported).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from netcheck.checks.network.common import _loopback, _manager, _name_target
from netcheck.checks.network.nameservers import ServerRecord, judge_servers

from netcheck import hints
from netcheck.i18n import _
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
    res = await _resolution(ctx)
    records = [ServerRecord.of(s, res.answers) for s in res.config.nameservers]
    upstreams = [ServerRecord.of(s, res.upstream_answers) for s in res.config.upstreams]
    evidence: dict[str, Any] = {
        "servers": {r.server: r.state for r in records if r.asked},
        "answers": [a.to_json() for a in res.answers[:12]]}
    if res.upstream_answers:
        evidence["upstreams"] = [a.to_json() for a in res.upstream_answers]
    first = next((r for r in records if r.asked), None)
    burst_stats = None
    far = _server_to_ping(first, records, upstreams)
    if far is not None:
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
        return _servers_warned(ctx, res, code, text, first, records, upstreams, evidence)
    result = failed(code, text, _servers_hint(ctx, res, code, first, upstreams, burst_stats),
                    **evidence)
    if code in ("DNS_RESOLVER_UNREACHABLE", "PATH_LOSS"):
        # Silence: a lower rung of the path the queries took may explain it (runner).
        result.unanswered = tuple(r.server for r in (*records, *upstreams)
                                  if r.asked and r.state == "DNS_RESOLVER_UNREACHABLE")
    return result


async def _resolution(ctx: Context) -> dns.Resolution:
    """The run's resolution of the target's name; one slow to come starts a burst of pings to
    the first name server meanwhile."""
    resolving = ctx.resolution()
    done, _pending = await asyncio.wait({resolving}, timeout=0.3)
    if not done:  # slow to answer: find out meanwhile whether the server's host is up
        servers = (await ctx.blocking(dns.parse_resolv_conf, ctx.options.resolv_conf)).nameservers
        if servers and not _loopback(servers[0]):
            shared.burst(ctx, servers[0])
    return await resolving


def _server_to_ping(first: Optional[ServerRecord], records: list[ServerRecord],
                    upstreams: list[ServerRecord]) -> Optional[ServerRecord]:
    """The name server whose host to ping, or None: a remote one that is silent (or answers
    only after resends) while no configured server answers."""
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
        return far
    return None


def _servers_warned(ctx: Context, res: dns.Resolution, code: str, text: str,
                    first: ServerRecord, records: list[ServerRecord],
                    upstreams: list[ServerRecord], evidence: dict[str, Any]) -> Result:
    """The warning about a failing server while another answers, with the family it loses
    and the silent servers a lower rung may explain."""
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


def _servers_hint(ctx: Context, res: dns.Resolution, code: str, first: ServerRecord,
                  upstreams: list[ServerRecord], burst: Optional[dict[str, Any]]) -> Hint:
    """What to do about the name servers, by code and by who failed (stub or upstream)."""
    name = res.fqdn or res.name
    if res.config.stub_kind is not None and _loopback(first.server):
        return _stub_hint(res, name, code, first, upstreams)
    server = first.server
    if code == "PATH_LOSS":
        return _loss_hint(server)
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


def _stub_hint(res: dns.Resolution, name: str, code: str, first: ServerRecord,
               upstreams: list[ServerRecord]) -> Hint:
    """What to do when resolv.conf names a local stub: about the stub itself, or about the
    upstream it forwards to (or the path to it)."""
    stub_is_culprit = first.state != "ok" and (
        any(r.state == "ok" for r in upstreams) or not upstreams)
    if stub_is_culprit:
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
    up = next((r for r in upstreams if r.state != "ok"), upstreams[0])
    if code == "PATH_LOSS":
        return _loss_hint(up.server)
    return Hint(_("The stub works but the server it forwards to ({server}) fails: fix "
                  "that server or the path to it, or give the stub another upstream.").format(
                      server=up.server),
                [hints.dig(name, up.server), f"ping -c 3 {up.server}",
                 hints.usable("resolvectl status") if res.config.uses_stub
                 else f"grep -r server= {dns.DNSMASQ_CONF}"])


def _loss_hint(server: str) -> Hint:
    """Most packets to ``server`` are lost on the way: where, with mtr."""
    return Hint(_("Most packets to the name server are lost on the way: find where with "
                  "mtr, and look at the link and the routers on that path."),
                [hints.count_loss(server), f"ping -c 50 -i 0.2 {server}"])
