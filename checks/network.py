"""Layer 3: the network manager, addresses, routes, the gateway, names, the target, the MTU.

The order of declaration is the slides' order and the tie-break for the root cause: an
address problem explains a route problem, a route problem explains a silent gateway, a
silent gateway explains a resolver that does not answer.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import TYPE_CHECKING, Any, Optional

from netcheck import hints
from netcheck.i18n import _, ngettext
from netcheck.lazy import asyncio
from netcheck.model import Hint, Layer, Result, Status, failed, passed, skipped, warned
from netcheck.probes import dns, icmp, neighbour, shared
from netcheck.registry import check

if TYPE_CHECKING:
    from netcheck.runner import Context, PathInfo

SLOW_DNS_MS = 500.0


async def _manager(ctx: Context) -> hints.Manager:
    return await shared.manager(ctx)


def _name_target(ctx: Context) -> Optional[str]:
    if ctx.target is None:
        return _("no target")
    return None if ctx.target.is_name else _("the target is an address: no name to resolve")


def _fam_name(family: int) -> str:
    return "IPv6" if family == socket.AF_INET6 else "IPv4"


# -- the host itself -----------------------------------------------------------------

@check("network.service", Layer.NETWORK, codes=("NET_SERVICE_INACTIVE",), scope="host")
async def network_service(ctx: Context) -> Result:
    """Network manager is running.

    The manager that is enabled at boot (NetworkManager, systemd-networkd, ifupdown) must
    be running, or addresses and routes are not kept up to date.
    """
    mgr = await _manager(ctx)
    if mgr.name == hints.NO_MANAGER:
        return skipped(_("no network manager in use (interfaces configured by hand)"),
                       manager=mgr.to_json())
    if mgr.name == hints.IFUPDOWN:
        return passed(_("ifupdown configures the interfaces (no daemon to run)"),
                      manager=mgr.to_json())
    if mgr.running:
        return passed(_("{manager} is running").format(manager=mgr.name), manager=mgr.to_json())
    if not mgr.systemd:
        return skipped(_("{manager} is not running, but systemd is not PID 1 here "
                         "(a container or a chroot): not judged").format(manager=mgr.name),
                       manager=mgr.to_json())
    return failed("NET_SERVICE_INACTIVE",
                  _("{manager} is enabled but not running").format(manager=mgr.name),
                  Hint(_("Start {manager} again and look at why it stopped.").format(
                      manager=mgr.name),
                       [*hints.restart_manager(mgr), f"journalctl -u {mgr.unit} -n 50"]),
                  manager=mgr.to_json())


@check("network.loopback", Layer.NETWORK, codes=("LOOPBACK_DOWN",), scope="host")
async def loopback(ctx: Context) -> Result:
    """Loopback interface works.

    ``lo`` must be up with 127.0.0.1: local resolvers (127.0.0.53) and many services
    talk to themselves through it. A TCP connect to 127.0.0.1 proves it: refused or
    accepted means the stack answered.
    """
    lo = next((lk for lk in ctx.facts.links if lk.is_loopback), None)
    if lo is None:
        return failed("LOOPBACK_DOWN", _("there is no loopback interface"),
                      Hint(_("Create and bring up lo."), ["ip link set dev lo up"]))
    probe = await shared.tcp_connect(ctx, "127.0.0.1", 9)
    addrs = [a.address for a in ctx.facts.addrs_of(lo.index)]
    evidence = {"interface": lo.name, "flags": lo.flag_names, "addresses": addrs,
                "probe": probe.to_json()}
    if not lo.admin_up or probe.state not in ("open", "refused"):
        why = (_("{ifname} is down") if not lo.admin_up
               else _("{ifname} does not answer on 127.0.0.1"))
        return failed("LOOPBACK_DOWN", why.format(ifname=lo.name),
                      Hint(_("Bring the loopback interface up (and give it 127.0.0.1/8)."),
                           [f"ip link set dev {lo.name} up",
                            f"ip addr add 127.0.0.1/8 dev {lo.name}"]), **evidence)
    return passed(_("{ifname} is up, 127.0.0.1 answers").format(ifname=lo.name), **evidence)


def _needed_families(ctx: Context, path: PathInfo, addresses: list[str]) -> list[int]:
    if addresses:
        fams = []
        for a in addresses:
            fam = socket.AF_INET6 if ":" in a else socket.AF_INET
            if fam not in fams:
                fams.append(fam)
        return fams
    return list(ctx.families)


@check("network.address", Layer.NETWORK, requires=("link.carrier",),
       codes=("ADDR_NONE", "ADDR_LINK_LOCAL_ONLY", "ADDR_DAD_FAILED"))
async def address(ctx: Context) -> Result:
    """Egress interface has an address.

    The interface the packets leave by needs a usable address of the family the target
    has; only 169.254.x.x / fe80:: means DHCP or SLAAC failed; a duplicate address (DAD
    failed) is unusable.
    """
    path = await ctx.path()
    if path.ifindex is None or path.interface is None:
        return skipped(_("no egress interface to look at"))
    ifname = path.interface
    target_addrs = await ctx.addresses()
    fams = _needed_families(ctx, path, target_addrs)
    mgr = await _manager(ctx)
    per_family: dict[str, list[str]] = {}
    usable_any = False
    only_ll: list[int] = []
    dad: list[str] = []
    for fam in fams:
        addrs = ctx.facts.addrs_of(path.ifindex, fam)
        per_family[_fam_name(fam)] = [f"{a.address}/{a.prefixlen}" for a in addrs]
        dad += [a.address for a in addrs if a.dad_failed]
        good = [a for a in addrs if not a.dad_failed and not a.tentative and not a.link_local]
        target_ll = any(ipaddress.ip_address(t.split("%")[0]).is_link_local
                        for t in target_addrs)
        if good or (target_ll and any(a.link_local for a in addrs)):
            usable_any = True
        elif any(a.link_local and not a.dad_failed for a in addrs):
            only_ll.append(fam)
    evidence = {"interface": ifname, "addresses": per_family}
    if usable_any:
        return passed(_("{ifname} has {addresses}").format(ifname=ifname, addresses=", ".join(
            f"{k} {v[0]}" for k, v in per_family.items() if v)), **evidence)
    if dad:
        return failed("ADDR_DAD_FAILED",
                      _("{address} on {ifname} is a duplicate: another host on the link has "
                        "it").format(address=dad[0], ifname=ifname),
                      Hint(_("Find the other host with the same address (arping / ip neigh) "
                             "and give one of them another address."),
                           [f"arping -D -I {ifname} -c 2 {dad[0]}" if ":" not in dad[0]
                            else f"ip -6 neigh show dev {ifname}",
                            f"ip addr del {dad[0]} dev {ifname}"]), **evidence)
    if only_ll and socket.AF_INET in only_ll or (only_ll and socket.AF_INET not in fams):
        kind = "169.254.0.0/16" if only_ll[0] == socket.AF_INET else "fe80::/10"
        return failed("ADDR_LINK_LOCAL_ONLY",
                      _("{ifname} has only a link-local address ({prefix}): DHCP/SLAAC got no "
                        "answer").format(ifname=ifname, prefix=kind),
                      Hint(_("Ask the DHCP server again for an address on {ifname} and check "
                             "that a DHCP server answers on this link.").format(ifname=ifname),
                           hints.get_address(ifname, mgr)), **evidence)
    names = [_fam_name(f) for f in fams]
    summary = (_("{ifname} has no {family} or {other} address").format(
        ifname=ifname, family=names[0], other=names[1]) if len(names) > 1
        else _("{ifname} has no {family} address").format(ifname=ifname, family=names[0]))
    return failed("ADDR_NONE", summary,
                  Hint(_("Give {ifname} an address: by DHCP, or by hand.").format(ifname=ifname),
                       hints.get_address(ifname, mgr)
                       + [f"ip addr add <address>/<prefix> dev {ifname}"]), **evidence)


def _route_text(route: object) -> str:
    r = route
    dst = "default" if r.dst_len == 0 else f"{r.dst}/{r.dst_len}"  # type: ignore[attr-defined]
    kind = "" if r.type == "unicast" else f"{r.type} "  # type: ignore[attr-defined]
    return f"{kind}{dst}"


def _covering_routes(ctx: Context, destination: str, kinds: set[str]) -> list[str]:
    ip = ipaddress.ip_address(destination.split("%")[0])
    found = []
    for r in ctx.facts.routes:
        if r.type not in kinds:
            continue
        net = ipaddress.ip_network(f"{r.dst or ('::' if ip.version == 6 else '0.0.0.0')}"
                                   f"/{r.dst_len}", strict=False)
        if net.version == ip.version and ip in net:
            found.append(_route_text(r))
    return found


@check("network.route", Layer.NETWORK, requires=("network.address",),
       codes=("ROUTE_NO_DEFAULT", "ROUTE_UNREACHABLE"))
async def route(ctx: Context) -> Result:
    """Route to the target.

    What ``ip route get`` answers for each target address: a usable route, none at all
    (no default route), or a route that throws the packets away (unreachable, blackhole,
    prohibit).
    """
    path = await ctx.path()
    if not path.lookups:
        return skipped(_("nothing to look a route up for"))
    evidence = {"path": path.to_json()}
    good = [lk for lk in path.lookups if lk.type in ("unicast", "local")]
    if good:
        lk = good[0]
        # The words of `ip route get`: an output line, not prose, so never translated.
        via = f"via {lk.gateway} " if lk.gateway else "on-link "
        return passed(f"{lk.destination} {via}dev {lk.ifname} src {lk.prefsrc}", **evidence)
    lk = path.lookups[0]
    ifname = path.interface or "<interface>"
    if lk.type in ("unreachable", "blackhole", "prohibit"):
        culprits = _covering_routes(ctx, lk.destination, {"unreachable", "blackhole", "prohibit"})
        shown = culprits[0] if culprits else f"{lk.type} route"
        return failed("ROUTE_UNREACHABLE",
                      _("the route to {destination} is '{route}': the kernel discards the "
                        "packets").format(destination=lk.destination, route=shown),
                      Hint(_("Remove the route that throws the traffic away."),
                           [f"ip route del {shown}", f"ip route get {lk.destination}"]),
                      route=shown, **evidence)
    if lk.type == "none":
        mgr = await _manager(ctx)
        family = socket.AF_INET6 if ":" in lk.destination else socket.AF_INET
        gw = _gateway_guess(ctx, path, family)
        cmds = hints.default_route(gw, ifname, mgr) if gw else [
            f"ip {'-6 ' if family == socket.AF_INET6 else ''}route add default via "
            f"<gateway> dev {ifname}"]
        text = (_("Add a default route through the network's gateway (the router seen on "
                  "{ifname} is {gateway}).").format(ifname=ifname, gateway=gw) if gw
                else _("Add a default route through the network's gateway."))
        return failed("ROUTE_NO_DEFAULT",
                      _("no default route and no route to {destination}").format(
                          destination=lk.destination),
                      Hint(text, [*cmds, "ip route"]), **evidence)
    return Result(Status.ERROR, _("route lookup failed: {error}").format(error=lk.error),
                  evidence=evidence)


def _gateway_guess(ctx: Context, path: PathInfo, family: int) -> Optional[str]:
    """A router this host has seen on the egress link (a neighbour), to suggest by name."""
    if path.ifindex is None:
        return None
    for n in ctx.facts.neighbours:
        if n.ifindex == path.ifindex and (":" in n.address) == (family == socket.AF_INET6):
            if n.state not in ("FAILED", "INCOMPLETE") and not n.address.startswith("fe80"):
                return n.address
    return None


@check("network.gateway", Layer.NETWORK, requires=("network.route",),
       codes=("GATEWAY_NOT_ON_LINK", "GATEWAY_UNREACHABLE"))
async def gateway(ctx: Context) -> Result:
    """Gateway answers on the link.

    The next hop of the route must sit in a prefix of the egress interface and answer
    ARP / neighbour solicitation (``ip neigh``); a ping reply also proves it. A gateway
    that drops ping but resolves, or forwards to a target that answers, is fine.
    """
    path = await ctx.path()
    gw = path.gateway
    if gw is None:
        return passed(_("no gateway needed: the target is on the link of {ifname}").format(
            ifname=path.interface), path=path.to_json())
    if path.ifindex is None:
        return skipped(_("no egress interface"))
    ifname = path.interface or ""
    gw_ip = ipaddress.ip_address(gw)
    prefixes = [a.network for a in ctx.facts.addrs_of(path.ifindex)]
    on_link = gw_ip.is_link_local or any(gw_ip in p for p in prefixes)
    link = ctx.facts.link(index=path.ifindex)
    src = next((lk.prefsrc for lk in path.lookups if lk.prefsrc), None)
    # The target's own probes start now too: if the gateway looks silent, whether the
    # target answered through it is the deciding evidence, and nobody waits twice.
    target_answered = asyncio.ensure_future(_target_answered(ctx))
    ping_t = shared.ping(ctx, gw)
    wire_t = ctx.blocking(neighbour.probe_on_wire, ifname, path.ifindex,
                          link.mac if link else None, src, gw, ctx.timeout)
    neigh_t = ctx.blocking(neighbour.resolve, gw, path.ifindex, ctx.timeout)
    pending: set[asyncio.Future[Any]] = {ping_t, wire_t, neigh_t}
    while pending:  # stop at the first proof of life instead of waiting out every timeout
        _done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        if (ping_t.done() and ping_t.result().state == "reply") or (
                wire_t.done() and wire_t.result()[1]):
            break
    ping_res = ping_t.result() if ping_t.done() else icmp.PingResult(gw, "not waited for")
    probed, mac = wire_t.result() if wire_t.done() else (True, None)
    neigh = neigh_t.result() if neigh_t.done() else neighbour.NeighbourResult(
        gw, path.ifindex, "not waited for")
    evidence = {"gateway": gw, "interface": ifname, "on_link": on_link,
                "prefixes": [str(p) for p in prefixes], "neighbour": neigh.to_json(),
                "ping": ping_res.to_json()}
    if probed:
        evidence["arp_probe" if ":" not in gw else "ndp_probe"] = mac or "no answer"
    # A fresh answer on the wire is proof; the kernel's cache may remember a gateway that
    # has since gone, so without our own probe only REACHABLE counts, and only as a hint.
    how = None
    if ping_res.state == "reply":
        how = _("gateway {gateway} on {ifname} answers ping")
        evidence["rtt_ms"] = round(ping_res.rtt_ms or 0, 3)
    elif mac:
        how = (_("gateway {gateway} on {ifname} answers ARP ({mac})") if ":" not in gw
               else _("gateway {gateway} on {ifname} answers neighbour solicitation ({mac})"))
    elif not probed and neigh.state == "REACHABLE":
        how = _("gateway {gateway} on {ifname} is in the neighbour table as REACHABLE "
                "({mac})")
        mac = neigh.lladdr
    elif await target_answered:
        how = _("gateway {gateway} on {ifname} forwards to the target (which answers)")
    if how:
        return passed(how.format(gateway=gw, ifname=ifname, mac=mac), **evidence)
    if not probed and neigh.resolved:
        return passed(_("gateway {gateway} on {ifname} is known on the link ({state}, {mac}) "
                        "but did not confirm it (no ping reply; an ARP probe needs "
                        "root)").format(gateway=gw, ifname=ifname, state=neigh.state,
                                        mac=neigh.lladdr), **evidence)
    mgr = await _manager(ctx)
    if not on_link:
        return failed("GATEWAY_NOT_ON_LINK",
                      _("gateway {gateway} is outside every prefix of {ifname} "
                        "({prefixes})").format(
                          gateway=gw, ifname=ifname,
                          prefixes=", ".join(map(str, prefixes)) or _("no address")),
                      Hint(_("The gateway must be an address on {ifname}'s network: fix the "
                             "default route (or the interface's address/prefix).").format(
                                 ifname=ifname),
                           [f"ip route del default via {gw}",
                            *hints.default_route("<gateway on the link>", ifname or "", mgr)[:1]]),
                      **evidence)
    if probed:
        why = (_("gateway {gateway} answers neither ARP nor ping on {ifname}") if ":" not in gw
               else _("gateway {gateway} answers neither neighbour solicitation nor ping on "
                      "{ifname}")).format(gateway=gw, ifname=ifname)
        if neigh.resolved:
            why += " " + _("(the neighbour cache still says {state}, learnt before it "
                           "went)").format(state=neigh.state)
    else:
        why = _("gateway {gateway} does not answer on {ifname} (neighbour {state})").format(
            gateway=gw, ifname=ifname, state=neigh.state)
    return failed("GATEWAY_UNREACHABLE", why,
                  Hint(_("Nothing at {gateway} answers ARP on {ifname}: the gateway address is "
                         "wrong or the router is down. Check the router, or fix the "
                         "route.").format(gateway=gw, ifname=ifname),
                       [f"ip neigh show dev {ifname}", f"ping -c 3 {gw}",
                        f"ip route del default via {gw}",
                        *hints.default_route("<the right gateway>", ifname or "", mgr)[:1]]),
                  **evidence)


async def _target_answered(ctx: Context) -> bool:
    """Did the target's side answer a TCP connect (proof the whole path forwards)?"""
    if ctx.target is None:
        return False
    try:
        addrs = await ctx.addresses()
        pings = asyncio.ensure_future(shared.ping_all(ctx, addrs))
        if any(r.answered for r in await shared.tcp_all(ctx, addrs, ctx.target.port)):
            return True
        return any(p.state == "reply" for p in await pings)
    except Exception:
        return False


# -- names ---------------------------------------------------------------------------

@check("dns.config", Layer.NETWORK, applies=_name_target, codes=("DNS_NO_RESOLVER",))
async def dns_config(ctx: Context) -> Result:
    """Name servers are configured.

    ``/etc/resolv.conf`` must name at least one server (with systemd-resolved, the stub
    127.0.0.53 and its upstream servers).
    """
    # Read here, not through the resolution: the config is known long before the answers.
    cfg = await ctx.blocking(dns.parse_resolv_conf, ctx.options.resolv_conf)
    evidence = {"file": cfg.path, "nameservers": cfg.nameservers, "search": cfg.search,
                "upstreams": cfg.upstreams}
    if cfg.nameservers:
        summary = f"{cfg.path}: nameserver {', '.join(cfg.nameservers)}"
        if cfg.uses_stub:
            summary += " " + _("(systemd-resolved; upstream {servers})").format(
                servers=", ".join(cfg.upstreams) or _("none"))
        return passed(summary, **evidence)
    assert ctx.target is not None
    if await ctx.blocking(dns.hosts_lookup, ctx.options.hosts_file, ctx.target.host):
        return passed(_("no name server, but {host} is in the hosts file").format(
            host=ctx.target.host), **evidence)
    why = (_("cannot read {file}: {error}").format(file=cfg.path, error=cfg.error) if cfg.error
           else _("{file} names no nameserver").format(file=cfg.path))
    mgr = await _manager(ctx)
    cmds = ["cat /etc/resolv.conf", f"echo 'nameserver <your DNS server>' >> {cfg.path}"]
    if mgr.name == hints.NETWORKMANAGER:
        cmds.insert(0, "nmcli device show | grep -i dns")
    elif mgr.name == hints.NETWORKD:
        cmds.insert(0, "resolvectl status")
    return failed("DNS_NO_RESOLVER", why,
                  Hint(_("Configure a name server (DHCP usually provides one)."), cmds),
                  **evidence)


def _server_verdicts(res: dns.Resolution) -> dict[str, str]:
    """Per server: ok | the DNS_* code its answers amount to."""
    out: dict[str, str] = {}
    for server in res.config.nameservers:
        mine = [a for a in res.answers if a.server == server]
        if not mine:
            continue
        rcodes = {a.rcode for a in mine if a.rcode}
        if rcodes & {"NOERROR", "NXDOMAIN"}:
            out[server] = "ok"
        elif "REFUSED" in rcodes:
            out[server] = "DNS_REFUSED"
        elif "SERVFAIL" in rcodes:
            out[server] = "DNS_SERVFAIL"
        elif rcodes:
            out[server] = "DNS_SERVFAIL"
        else:
            out[server] = "DNS_RESOLVER_UNREACHABLE"
    return out


# Not blocked by the path checks: for a name, the path is only known once it resolves,
# and the resolver's answers (or silence) are worth having at once either way.
@check("dns.servers", Layer.NETWORK, applies=_name_target, requires=("dns.config",),
       codes=("DNS_RESOLVER_UNREACHABLE", "DNS_REFUSED", "DNS_SERVFAIL"))
async def dns_servers(ctx: Context) -> Result:
    """Name servers answer.

    Each configured server is asked directly, as ``dig @server`` would: silence or an
    ICMP error, REFUSED, and SERVFAIL are different faults with different fixes.
    """
    resolving = ctx.resolution()
    done, _pending = await asyncio.wait({resolving}, timeout=0.3)
    if not done:  # slow to answer: find out meanwhile whether the server's host is up
        servers = (await ctx.blocking(dns.parse_resolv_conf, ctx.options.resolv_conf)).nameservers
        if servers:
            shared.ping(ctx, servers[0])
    res = await resolving
    verdicts = _server_verdicts(res)
    evidence = {"servers": verdicts, "answers": [a.to_json() for a in res.answers[:12]]}
    working = [s for s, v in verdicts.items() if v == "ok"]
    if working:
        broken = {s: v for s, v in verdicts.items() if v != "ok"}
        summary = ngettext("{servers} answers", "{servers} answer", len(working)).format(
            servers=", ".join(working))
        if broken:
            summary += f" ({', '.join(f'{s}: {v}' for s, v in broken.items())})"
        return passed(summary, **evidence)
    if res.source == "hosts":
        return passed(_("no name server answers, but the target is in the hosts file "
                        "(not on the path)"), **evidence)
    first = res.config.nameservers[0]
    code = verdicts.get(first, "DNS_RESOLVER_UNREACHABLE")
    errors = sorted({a.error for a in res.answers if a.server == first and a.error})
    if res.config.uses_stub and res.config.upstreams:
        upstream = await asyncio.gather(*(dns.query(u, res.fqdn or res.name, "A", ctx.timeout)
                                          for u in res.config.upstreams[:3]))
        evidence["upstreams"] = [a.to_json() for a in upstream]
    servers = ", ".join(res.config.nameservers)
    if code == "DNS_REFUSED":
        return failed(code, ngettext("{servers} refuses to answer for {name}",
                                     "{servers} refuse to answer for {name}",
                                     len(verdicts)).format(servers=servers, name=res.name),
                      Hint(_("The server answers but will not resolve for this host: it is not "
                             "your resolver, or its access list excludes you. Use the resolver "
                             "your network gives (DHCP), or allow this host on the server."),
                           [f"dig @{first} {res.name}", "cat /etc/resolv.conf"]), **evidence)
    if code == "DNS_SERVFAIL":
        return failed(code, ngettext("{servers} answers SERVFAIL for {name}",
                                     "{servers} answer SERVFAIL for {name}",
                                     len(verdicts)).format(servers=servers, name=res.name),
                      Hint(_("The resolver cannot get an answer (its upstream or the domain's "
                             "servers fail, or DNSSEC validation fails). Check the resolver's "
                             "log and its forwarders."),
                           [f"dig @{first} {res.name}", f"dig @{first} {res.name} +cd"]),
                      **evidence)
    how = " and ".join(errors) or _("no answer")
    text = _("No configured name server answers: the server is down, a firewall drops port "
             "53, or the address in resolv.conf is wrong.")
    cmds = [f"dig @{first} {res.name} +time=2 +tries=1", f"ping -c 3 {first}",
            "cat /etc/resolv.conf"]
    if how == "timeout":
        # Is the server's host there at all? Tells a dead host from a silent service.
        alive = await shared.ping(ctx, first)
        evidence["server_ping"] = alive.to_json()
        if alive.state == "reply":
            how += " " + _("(but {server} answers ping: its DNS service or a firewall drops "
                           "port 53)").format(server=first)
            text = _("{server} is up but its DNS service does not answer: start the service "
                     "or open port 53 (UDP and TCP) on its firewall.").format(server=first)
        elif alive.state != "unavailable":
            how += " " + _("(and {server} does not answer ping either)").format(server=first)
            cmds.insert(1, f"traceroute -n {first}")
    if res.config.uses_stub:
        text += " " + _("With systemd-resolved, the stub must run and have an upstream server.")
        cmds = ["resolvectl status", "systemctl status systemd-resolved", *cmds]
    return failed("DNS_RESOLVER_UNREACHABLE",
                  ngettext("name server {servers}: {problem}", "name servers {servers}: {problem}",
                           len(res.config.nameservers)).format(servers=servers, problem=how),
                  Hint(text, cmds), **evidence)


@check("dns.resolution", Layer.NETWORK, applies=_name_target, requires=("dns.servers",),
       codes=("DNS_NXDOMAIN", "DNS_NO_ADDRESS", "DNS_SLOW"))
async def dns_resolution(ctx: Context) -> Result:
    """Name resolves to an address.

    The name must exist and have an address of the family asked for (A / AAAA), and the
    answer should come quickly. The CNAME chain is shown as ``dig`` shows it.
    """
    res = await ctx.resolution()
    chain = next((a.cnames for a in res.answers if a.cnames), [])
    evidence = {"resolution": res.to_json(), "cname_chain": chain}
    name = res.name
    if res.source == "hosts" and res.addresses:
        return passed(_("{name} -> {addresses} (from the hosts file)").format(
            name=name, addresses=", ".join(res.addresses)), **evidence)
    if res.fqdn is None:
        if any(a.rcode == "NXDOMAIN" for a in res.answers):
            return failed("DNS_NXDOMAIN", _("{name} does not exist (NXDOMAIN)").format(name=name),
                          Hint(_("Check the spelling of the name; if it is right, the domain's "
                                 "DNS lacks the record."),
                               [f"dig {name}", f"dig {name} SOA"]), **evidence)
        return skipped(_("no server gave an answer"), **evidence)
    fams = "/".join(t for f, t in ((socket.AF_INET, "A"), (socket.AF_INET6, "AAAA"))
                    if f in ctx.families)
    if not res.addresses:
        return failed("DNS_NO_ADDRESS", _("{name} exists but has no {types} record").format(
            name=res.fqdn, types=fams),
                      Hint(_("The name exists but has no address of the family needed: use "
                             "another name, the other address family, or add the record."),
                           [f"dig {res.fqdn} A", f"dig {res.fqdn} AAAA", f"dig {res.fqdn} ANY"]),
                      **evidence)
    values = {"name": res.fqdn, "addresses": ", ".join(res.addresses),
              "ms": f"{res.duration_ms:.0f}", "chain": " -> ".join(c[1] for c in chain)}
    summary = (_("{name} via {chain} -> {addresses} in {ms} ms") if chain
               else _("{name} -> {addresses} in {ms} ms")).format(**values)
    verdicts = _server_verdicts(res)
    first = res.config.nameservers[0] if res.config.nameservers else None
    if first and verdicts.get(first, "ok") != "ok":
        # The system resolver asks the servers in order: every lookup waits for the first
        # one to time out (5 s by default) before it asks the next.
        return warned("DNS_SLOW", _("{summary}, but only after the first name server {server} "
                                    "fails ({code}): every lookup waits for it first").format(
                                        summary=summary, server=first, code=verdicts[first]),
                      Hint(_("Remove or fix {server} in resolv.conf so the working server is "
                             "asked first.").format(server=first),
                           ["cat /etc/resolv.conf", f"dig @{first} {res.name}"]),
                      **evidence)
    if res.duration_ms > SLOW_DNS_MS:
        return warned("DNS_SLOW", _("{summary} (slow: over {limit} ms)").format(
            summary=summary, limit=f"{SLOW_DNS_MS:.0f}"),
                      Hint(_("Resolution works but is slow: the resolver or its upstream is "
                             "overloaded or far away; every new connection waits for it."),
                           [f"dig {res.fqdn}", "cat /etc/resolv.conf"]), **evidence)
    return passed(summary, **evidence)


@check("dns.hosts_file", Layer.NETWORK, applies=_name_target, requires=("dns.config",),
       codes=("DNS_HOSTS_OVERRIDE",))
async def hosts_file(ctx: Context) -> Result:
    """Hosts file agrees with DNS.

    ``/etc/hosts`` is read before DNS: an old entry there sends the connection to an
    address DNS no longer gives.
    """
    res = await ctx.resolution()
    evidence = {"file": ctx.options.hosts_file, "hosts": res.hosts_addresses,
                "dns": res.dns_addresses}
    values = {"file": ctx.options.hosts_file, "name": res.name,
              "addresses": ", ".join(res.hosts_addresses), "dns": ", ".join(res.dns_addresses)}
    if not res.hosts_addresses:
        return passed(_("{name} is not in {file}").format(**values), **evidence)
    if not res.dns_addresses or set(res.hosts_addresses) & set(res.dns_addresses):
        return passed(_("{file} maps {name} to {addresses}").format(**values), **evidence)
    status = await _hosts_entry_works(ctx, res.hosts_addresses)
    make = failed if not status else warned
    summary = (_("{file} maps {name} to {addresses}, DNS says {dns}") if status
               else _("{file} maps {name} to {addresses}, DNS says {dns} (and the hosts "
                      "address does not answer)"))
    return make("DNS_HOSTS_OVERRIDE", summary.format(**values),
                Hint(_("Remove or correct the stale line in the hosts file."),
                     [f"grep -n '{res.name}' {ctx.options.hosts_file}",
                      f"sed -i '/\\s{res.name}\\(\\s\\|$\\)/d' {ctx.options.hosts_file}"]),
                **evidence)


async def _hosts_entry_works(ctx: Context, addresses: list[str]) -> bool:
    assert ctx.target is not None
    results = await shared.tcp_all(ctx, addresses, ctx.target.port)
    return any(r.answered for r in results)


# -- the target ----------------------------------------------------------------------

# How one address answered, best first: what a family's best address says is its state.
_ANSWER_RANK = ("ping", "tcp", "local", "unknown", "icmp", "silent")


def _answer(p: icmp.PingResult, c: Any, address: str,
            own: frozenset[str] = frozenset()) -> str:
    if p.state == "reply":
        return "ping"
    if c.answered or (c.state == "icmp" and c.icmp_from == address):
        return "tcp"  # SYN-ACK, RST, or a reject sent by the target itself
    if c.state == "local" or (p.state == "send_error" and p.error in ("EPERM", "EACCES")):
        return "local"  # this host's own firewall stopped the probe
    if any(x.state in ("icmp", "icmp_error") and (x.icmp_from or "").split("%")[0] in own
           for x in (p, c)):
        return "local"  # an ICMP error made by this host itself: its output chain rejects
    if p.state == "icmp_error" or c.state == "icmp":
        return "icmp"
    if p.state == "unavailable":
        return "unknown"
    return "silent"


@check("network.target", Layer.NETWORK,
       requires=("network.gateway", "dns.resolution", "dns.hosts_file"),
       codes=("TARGET_UNREACHABLE", "TARGET_NO_ICMP"))
async def target_reachable(ctx: Context) -> Result:
    """Target answers.

    Ping and a TCP connect to the port, sent together, to every address. A target that
    drops ping but answers TCP is fine (a warning, never the root cause of a failure);
    one that answers nothing at all, or whose router says "unreachable", is not reachable;
    one address family that fails while the other works is a warning naming it.
    """
    assert ctx.target is not None
    addrs = (await ctx.addresses())[:8]
    if not addrs:
        return skipped(_("the target has no address to try"))
    ping_task = asyncio.ensure_future(shared.ping_all(ctx, addrs))
    conns = await shared.tcp_all(ctx, addrs, ctx.target.port)
    opened = [c.address for c in conns if c.state == "open"]
    if opened and ctx.target.scheme in ("http", "https"):
        # The GET the application check will send anyway starts now, while a ping that
        # gets no answer runs out its timeout: waits overlap instead of adding up.
        shared.http_get(ctx, opened[0])
    pings = await ping_task
    own = frozenset(x.address for x in ctx.facts.addresses) - set(addrs)
    answers = {a: _answer(p, c, a, own) for a, p, c in zip(addrs, pings, conns)}
    # Silence (or an error) may be this host's own output rules: ask the firewall finding
    # (read once per run by the transport checks; {} without CAP_NET_ADMIN).
    silent = [a for a, how in answers.items() if how in ("icmp", "silent", "unknown")]
    blocked: dict[str, str] = {}
    if silent:
        from netcheck.probes import firewall

        blocked = await firewall.blocked_addresses(ctx)
        for a in silent:
            if a in blocked:
                answers[a] = "local"
    by_family: dict[str, str] = {}
    for a, how in answers.items():
        fam = "IPv6" if ":" in a else "IPv4"
        best = by_family.get(fam, "silent")
        by_family[fam] = min(best, how, key=_ANSWER_RANK.index)
    evidence: dict[str, Any] = {"answers": answers, "ping": [p.to_json() for p in pings],
                                "tcp": [c.to_json() for c in conns]}
    if blocked:
        evidence["local_firewall"] = {a: why for a, why in blocked.items() if a in silent}
    replies = [p for p in pings if p.state == "reply"]
    if replies:
        evidence["rtt_ms"] = round(min(p.rtt_ms or 0 for p in replies), 3)
        evidence["answering_ping"] = [p.address for p in replies]
    working = sorted(f for f, how in by_family.items() if how in ("ping", "tcp"))
    broken = {f: how for f, how in by_family.items() if how in ("icmp", "silent")}
    port = ctx.target.port
    if working and broken:
        fam = sorted(broken)[0]
        bad = next(a for a in addrs if ("IPv6" if ":" in a else "IPv4") == fam)
        evidence["unreachable_families"] = sorted(broken)
        return warned("TARGET_UNREACHABLE",
                      _("{family} {problem} while {working} works").format(
                          family=fam, problem=_why_silent(ctx, bad, pings, conns),
                          working=" and ".join(working)),
                      Hint(_("Clients that prefer {family} fail or wait for a timeout: check "
                             "{family} routing beyond the gateway (or remove the {family} "
                             "address from DNS).").format(family=fam),
                           [f"traceroute -n {bad}", f"ping -c 3 {bad}"]),
                      **evidence)
    if working:
        if replies:
            return passed(_("{address} answers ping in {ms} ms").format(
                address=replies[0].address, ms=f"{replies[0].rtt_ms:.1f}"), **evidence)
        if all(p.state == "unavailable" for p in pings):
            return passed(_("{address} answers TCP port {port} (ping needs root here)").format(
                address=addrs[0], port=port), **evidence)
        return warned("TARGET_NO_ICMP",
                      _("{address} drops ping but answers TCP port {port}").format(
                          address=addrs[0], port=port),
                      Hint(_("Nothing to fix for connectivity: the target (or a firewall "
                             "before it) filters ICMP echo. Test it with TCP probes "
                             "(nping --tcp-connect) instead of ping.")), **evidence)
    if "local" in by_family.values():
        return skipped(_("this host's own firewall stops the probes to {address}: see the "
                         "transport check").format(address=addrs[0]), **evidence)
    if not broken:
        return skipped(_("cannot ping (needs root or CAP_NET_RAW) and TCP got no answer: an "
                         "unreachable target and a filtered port look the same"), **evidence)
    path = await ctx.path()
    return failed("TARGET_UNREACHABLE", _why_silent(ctx, addrs[0], pings, conns),
                  Hint(_("The gateway works but nothing comes back from the target: the host "
                         "is down, or a router or firewall beyond the gateway drops the "
                         "traffic. Find the last hop that answers."),
                       [f"traceroute -n {addrs[0]}", f"mtr -n -c 5 {addrs[0]}",
                        f"ping -c 3 {path.gateway or addrs[0]}"]), **evidence)


def _why_silent(ctx: Context, address: str, pings: list[icmp.PingResult],
                conns: list[Any]) -> str:
    """``ADDRESS is unreachable: ROUTER says ...`` or ``ADDRESS answers neither ...``."""
    for x in [*pings, *conns]:
        if x.address == address and x.state in ("icmp", "icmp_error"):
            return _("{address} is unreachable: {router} says {icmp}").format(
                address=address, router=x.icmp_from or _("a router"), icmp=x.icmp_name)
    assert ctx.target is not None
    return _("{address} answers neither ping nor TCP port {port}").format(
        address=address, port=ctx.target.port)


def _header_bytes(address: str) -> int:
    return 48 if ":" in address else 28  # IP + ICMP headers


@check("network.pmtu", Layer.NETWORK, requires=("network.target",),
       codes=("PMTU_BLACKHOLE", "MTU_MISMATCH"))
async def path_mtu(ctx: Context) -> Result:
    """Full-size packets get through.

    Echo requests with Don't-Fragment at the interface's MTU and below (``ping -M do -s``):
    a router with a smaller MTU must answer "fragmentation needed"; if small packets pass
    and full-size ones vanish with no such answer, the path is a black hole for big
    transfers (handshakes work, downloads stall).
    """
    target = ctx.result("network.target")
    answering = list(target.evidence.get("answering_ping", [])) if target else []
    if not answering and target is not None:
        by_tcp = await _pmtu_by_http(ctx, target)
        if by_tcp is not None:
            return by_tcp
    if not answering and target is not None and all(
            p.get("state") == "unavailable" for p in target.evidence.get("ping", [{}])):
        return skipped(_("needs root (or CAP_NET_RAW, or ping_group_range) to send ICMP "
                         "probes"))
    if not answering:
        return skipped(_("the target does not answer ping: the path MTU cannot be probed"))
    path = await ctx.path()
    fam_addrs = [a for a in answering if (":" in a) == (path.family == socket.AF_INET6)]
    addr = (fam_addrs or answering)[0]
    link = ctx.facts.link(index=path.ifindex) if path.ifindex else None
    if link is None or link.mtu <= 0:
        return skipped(_("no egress interface MTU to test"))
    if link.is_loopback:
        # The packets never leave this host: no router on the way can have a smaller MTU.
        return skipped(_("the target is on this host ({ifname}): there is no path MTU to "
                         "probe").format(ifname=link.name))
    hdr = _header_bytes(addr)
    mtu = link.mtu
    # The target answered ping already: a probe silent for many of its round trips is lost.
    rtt_ms = float(target.evidence.get("rtt_ms") or 100.0)
    t = min(ctx.timeout, max(0.3, rtt_ms * 8 / 1000))
    small, full = await asyncio.gather(icmp.ping(addr, t, 56, df=True),
                                       icmp.ping(addr, t, mtu - hdr, df=True))
    evidence: dict[str, object] = {"interface": link.name, "local_mtu": mtu, "address": addr,
                                   "small": small.to_json(), "full": full.to_json()}
    if full.state == "reply":
        return passed(_("{mtu}-byte packets reach {address} unfragmented").format(
            mtu=mtu, address=addr), path_mtu=mtu, **evidence)
    if full.mtu and full.mtu < mtu:
        evidence["path_mtu"] = full.mtu
        summary = (_("path MTU to {address} is {path_mtu}, {ifname}'s MTU is {mtu} ({router} "
                     "says fragmentation needed)") if full.icmp_from
                   else _("path MTU to {address} is {path_mtu}, {ifname}'s MTU is {mtu} (the "
                          "kernel knows fragmentation needed)"))
        return warned("MTU_MISMATCH",
                      summary.format(address=addr, path_mtu=full.mtu, ifname=link.name, mtu=mtu,
                                     router=full.icmp_from),
                      Hint(_("Path MTU discovery works here, so traffic flows; matching the "
                             "interface MTU to the path avoids the extra round trip."),
                           [f"ip link set dev {link.name} mtu {full.mtu}",
                            f"tracepath -n {addr}"]), **evidence)
    if small.state != "reply":
        return passed(_("small packets were lost too: packet loss, not an MTU problem"),
                      **evidence)
    found = await _search_path_mtu(addr, hdr, mtu, t)
    evidence["path_mtu"] = found
    if found is None:
        return passed(_("full-size packets were lost once, then passed: plain packet loss"),
                      **evidence)
    return failed("PMTU_BLACKHOLE",
                  _("packets over {path_mtu} bytes to {address} vanish with no ICMP "
                    "'fragmentation needed' (path MTU {path_mtu}, {ifname} MTU {mtu})").format(
                        path_mtu=found, address=addr, ifname=link.name, mtu=mtu),
                  Hint(_("A router on the path has a smaller MTU and its ICMP 'too big' "
                         "messages are dropped by a firewall: big transfers stall. Lower "
                         "this host's MTU (or clamp the TCP MSS on the router) and let ICMP "
                         "type 3 code 4 / ICMPv6 type 2 through."),
                       [f"ip link set dev {link.name} mtu {found}",
                        "iptables -t mangle -A FORWARD -p tcp --tcp-flags SYN,RST SYN "
                        "-j TCPMSS --clamp-mss-to-pmtu   # " + _("on the router"),
                        f"tracepath -n {addr}"]), **evidence)


SMALL_MSS = 536  # the minimum every IPv4 path must carry (RFC 879)
STALLS = ("timeout", "stall", "body_stall")


async def _pmtu_by_http(ctx: Context, target: Result) -> Optional[Result]:
    """Without ping, a web target still shows a black hole: a GET that stalls with
    full-size segments but completes when our SYN asks for small ones (TCP_MAXSEG)."""
    assert ctx.target is not None
    if ctx.target.scheme not in ("http", "https"):
        return None
    opened = [c["address"] for c in target.evidence.get("tcp", []) if c.get("state") == "open"]
    if not opened:
        return None
    addr = opened[0]
    normal = await shared.http_get(ctx, addr)
    evidence: dict[str, Any] = {"address": addr, "method": "HTTP GET, normal and small MSS",
                                "normal": {"outcome": normal.outcome,
                                           "bytes": normal.bytes_received}}
    if normal.outcome not in STALLS:
        return passed(_("{address} does not answer ping, but its HTTP answer came back "
                        "({outcome}, {bytes} bytes): no sign of a path-MTU black hole").format(
                            address=addr, outcome=normal.outcome, bytes=normal.bytes_received),
                      **evidence)
    small = await shared.http_get(ctx, addr, mss=SMALL_MSS)
    evidence["small_mss"] = {"mss": SMALL_MSS, "outcome": small.outcome,
                             "bytes": small.bytes_received}
    if small.outcome in STALLS or small.bytes_received <= normal.bytes_received:
        return None  # the application itself stalls: not the path's fault
    path = await ctx.path()
    link = ctx.facts.link(index=path.ifindex) if path.ifindex else None
    ifname = link.name if link else (path.interface or "<interface>")
    mtu = link.mtu if link else 1500
    return failed("PMTU_BLACKHOLE",
                  _("the HTTP answer from {address} stalls after {bytes} bytes with full-size "
                    "segments but arrives whole with {mss}-byte segments: packets near "
                    "{ifname}'s MTU {mtu} vanish on the way").format(
                        address=addr, bytes=normal.bytes_received, mss=SMALL_MSS,
                        ifname=ifname, mtu=mtu),
                  Hint(_("A router between here and the server has a smaller MTU and its ICMP "
                         "'fragmentation needed' is dropped: big segments vanish, the download "
                         "stalls. Lower this host's MTU (or clamp the MSS on the router) and let "
                         "ICMP type 3 code 4 / ICMPv6 type 2 through."),
                       [f"ip link set dev {ifname} mtu 1400",
                        "iptables -t mangle -A FORWARD -p tcp --tcp-flags SYN,RST SYN "
                        "-j TCPMSS --clamp-mss-to-pmtu   # " + _("on the router"),
                        f"tracepath -n {addr}"]), **evidence)


async def _search_path_mtu(addr: str, hdr: int, mtu: int, timeout: float) -> Optional[int]:
    """The largest packet that gets through, by rounds of parallel DF probes.

    None when the full size passes on a second try (the first loss was chance).
    """
    floor = 1280 if ":" in addr else 576
    low, high = floor, mtu  # low: assumed to pass, high: known to vanish
    for _round in range(3):
        if high - low <= 1:
            break
        step = max(1, (high - low) // 8)
        sizes = sorted({min(high - 1, low + step * i) for i in range(1, 8)} | {low})
        sizes = [s for s in sizes if low <= s < high]
        probes = [icmp.ping(addr, timeout, s - hdr, df=True) for s in sizes]
        probes.append(icmp.ping(addr, timeout, high - hdr, df=True))
        results = await asyncio.gather(*probes)
        if results[-1].state == "reply" and high == mtu:
            return None
        passing = [s for s, r in zip(sizes, results[:-1]) if r.state == "reply"]
        if not passing:
            return low if low > floor else None
        low = max(passing)
        failing = [s for s, r in zip(sizes, results[:-1]) if r.state != "reply" and s > low]
        high = min(failing) if failing else high
    return low
