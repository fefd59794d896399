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
        return "no target"
    return None if ctx.target.is_name else "the target is an address: no name to resolve"


def _fam_name(family: int) -> str:
    return "IPv6" if family == socket.AF_INET6 else "IPv4"


# -- the host itself -----------------------------------------------------------------

@check("network.service", Layer.NETWORK, codes=("NET_SERVICE_INACTIVE",))
async def network_service(ctx: Context) -> Result:
    """Network manager is running.

    The manager that is enabled at boot (NetworkManager, systemd-networkd, ifupdown) must
    be running, or addresses and routes are not kept up to date.
    """
    mgr = await _manager(ctx)
    if mgr.name == hints.NO_MANAGER:
        return skipped("no network manager in use (interfaces configured by hand)",
                       manager=mgr.to_json())
    if mgr.name == hints.IFUPDOWN:
        return passed("ifupdown configures the interfaces (no daemon to run)",
                      manager=mgr.to_json())
    if mgr.running:
        return passed(f"{mgr.name} is running", manager=mgr.to_json())
    if not mgr.systemd:
        return skipped(f"{mgr.name} is not running, but systemd is not PID 1 here "
                       "(a container or a chroot): not judged", manager=mgr.to_json())
    return failed("NET_SERVICE_INACTIVE", f"{mgr.name} is enabled but not running",
                  Hint(f"Start {mgr.name} again and look at why it stopped.",
                       [*hints.restart_manager(mgr), f"journalctl -u {mgr.unit} -n 50"]),
                  manager=mgr.to_json())


@check("network.loopback", Layer.NETWORK, codes=("LOOPBACK_DOWN",))
async def loopback(ctx: Context) -> Result:
    """Loopback interface works.

    ``lo`` must be up with 127.0.0.1: local resolvers (127.0.0.53) and many services
    talk to themselves through it. A TCP connect to 127.0.0.1 proves it: refused or
    accepted means the stack answered.
    """
    lo = next((lk for lk in ctx.facts.links if lk.is_loopback), None)
    if lo is None:
        return failed("LOOPBACK_DOWN", "there is no loopback interface",
                      Hint("Create and bring up lo.", ["ip link set dev lo up"]))
    probe = await shared.tcp_connect(ctx, "127.0.0.1", 9)
    addrs = [a.address for a in ctx.facts.addrs_of(lo.index)]
    evidence = {"interface": lo.name, "flags": lo.flag_names, "addresses": addrs,
                "probe": probe.to_json()}
    if not lo.admin_up or probe.state not in ("open", "refused"):
        why = "is down" if not lo.admin_up else "does not answer on 127.0.0.1"
        return failed("LOOPBACK_DOWN", f"{lo.name} {why}",
                      Hint("Bring the loopback interface up (and give it 127.0.0.1/8).",
                           [f"ip link set dev {lo.name} up",
                            f"ip addr add 127.0.0.1/8 dev {lo.name}"]), **evidence)
    return passed(f"{lo.name} is up, 127.0.0.1 answers", **evidence)


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
        return skipped("no egress interface to look at")
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
        return passed(f"{ifname} has " + ", ".join(
            f"{k} {v[0]}" for k, v in per_family.items() if v), **evidence)
    if dad:
        return failed("ADDR_DAD_FAILED",
                      f"{dad[0]} on {ifname} is a duplicate: another host on the link has it",
                      Hint("Find the other host with the same address (arping / ip neigh) and "
                           "give one of them another address.",
                           [f"arping -D -I {ifname} -c 2 {dad[0]}" if ":" not in dad[0]
                            else f"ip -6 neigh show dev {ifname}",
                            f"ip addr del {dad[0]} dev {ifname}"]), **evidence)
    if only_ll and socket.AF_INET in only_ll or (only_ll and socket.AF_INET not in fams):
        kind = "169.254.0.0/16" if only_ll[0] == socket.AF_INET else "fe80::/10"
        return failed("ADDR_LINK_LOCAL_ONLY",
                      f"{ifname} has only a link-local address ({kind}): DHCP/SLAAC got no answer",
                      Hint(f"Ask the DHCP server again for an address on {ifname} "
                           "and check that a DHCP server answers on this link.",
                           hints.get_address(ifname, mgr)), **evidence)
    want = " or ".join(_fam_name(f) for f in fams)
    return failed("ADDR_NONE", f"{ifname} has no {want} address",
                  Hint(f"Give {ifname} an address: by DHCP, or by hand.",
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
        return skipped("nothing to look a route up for")
    evidence = {"path": path.to_json()}
    good = [lk for lk in path.lookups if lk.type in ("unicast", "local")]
    if good:
        lk = good[0]
        via = f"via {lk.gateway} " if lk.gateway else "on-link "
        return passed(f"{lk.destination} {via}dev {lk.ifname} src {lk.prefsrc}", **evidence)
    lk = path.lookups[0]
    ifname = path.interface or "<interface>"
    if lk.type in ("unreachable", "blackhole", "prohibit"):
        culprits = _covering_routes(ctx, lk.destination, {"unreachable", "blackhole", "prohibit"})
        shown = culprits[0] if culprits else f"{lk.type} route"
        return failed("ROUTE_UNREACHABLE",
                      f"the route to {lk.destination} is '{shown}': "
                      "the kernel discards the packets",
                      Hint("Remove the route that throws the traffic away.",
                           [f"ip route del {shown}", f"ip route get {lk.destination}"]),
                      route=shown, **evidence)
    if lk.type == "none":
        mgr = await _manager(ctx)
        family = socket.AF_INET6 if ":" in lk.destination else socket.AF_INET
        gw = _gateway_guess(ctx, path, family)
        cmds = hints.default_route(gw, ifname, mgr) if gw else [
            f"ip {'-6 ' if family == socket.AF_INET6 else ''}route add default via "
            f"<gateway> dev {ifname}"]
        return failed("ROUTE_NO_DEFAULT",
                      f"no default route and no route to {lk.destination}",
                      Hint("Add a default route through the network's gateway"
                           + (f" (the router seen on {ifname} is {gw})." if gw else "."),
                           [*cmds, "ip route"]), **evidence)
    return Result(Status.ERROR, f"route lookup failed: {lk.error}", evidence=evidence)


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
        return passed(f"no gateway needed: the target is on the link of {path.interface}",
                      path=path.to_json())
    if path.ifindex is None:
        return skipped("no egress interface")
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
        _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
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
        how = "answers ping"
        evidence["rtt_ms"] = round(ping_res.rtt_ms or 0, 3)
    elif mac:
        how = f"answers {'ARP' if ':' not in gw else 'neighbour solicitation'} ({mac})"
    elif not probed and neigh.state == "REACHABLE":
        how = f"is in the neighbour table as REACHABLE ({neigh.lladdr})"
    elif await target_answered:
        how = "forwards to the target (which answers)"
    if how:
        return passed(f"gateway {gw} on {ifname} {how}", **evidence)
    if not probed and neigh.resolved:
        return passed(f"gateway {gw} on {ifname} is known on the link ({neigh.state}, "
                      f"{neigh.lladdr}) but did not confirm it (no ping reply; an ARP probe "
                      "needs root)", **evidence)
    mgr = await _manager(ctx)
    if not on_link:
        return failed("GATEWAY_NOT_ON_LINK",
                      f"gateway {gw} is outside every prefix of {ifname} "
                      f"({', '.join(map(str, prefixes)) or 'no address'})",
                      Hint(f"The gateway must be an address on {ifname}'s network: fix the "
                           "default route (or the interface's address/prefix).",
                           [f"ip route del default via {gw}",
                            *hints.default_route("<gateway on the link>", ifname or "", mgr)[:1]]),
                      **evidence)
    if probed:
        why = f"answers neither ARP nor ping on {ifname}" if ":" not in gw else \
            f"answers neither neighbour solicitation nor ping on {ifname}"
        if neigh.resolved:
            why += f" (the neighbour cache still says {neigh.state}, learnt before it went)"
    else:
        why = f"does not answer on {ifname} (neighbour {neigh.state})"
    return failed("GATEWAY_UNREACHABLE", f"gateway {gw} {why}",
                  Hint(f"Nothing at {gw} answers ARP on {ifname}: the gateway address is "
                       "wrong or the router is down. Check the router, or fix the route.",
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
        extra = f" (systemd-resolved; upstream {', '.join(cfg.upstreams) or 'none'})" \
            if cfg.uses_stub else ""
        return passed(f"{cfg.path}: nameserver {', '.join(cfg.nameservers)}{extra}", **evidence)
    assert ctx.target is not None
    if await ctx.blocking(dns.hosts_lookup, ctx.options.hosts_file, ctx.target.host):
        return passed(f"no name server, but {ctx.target.host} is in the hosts file",
                      **evidence)
    why = f"cannot read {cfg.path}: {cfg.error}" if cfg.error else f"{cfg.path} names no nameserver"
    mgr = await _manager(ctx)
    cmds = ["cat /etc/resolv.conf", f"echo 'nameserver <your DNS server>' >> {cfg.path}"]
    if mgr.name == hints.NETWORKMANAGER:
        cmds.insert(0, "nmcli device show | grep -i dns")
    elif mgr.name == hints.NETWORKD:
        cmds.insert(0, "resolvectl status")
    return failed("DNS_NO_RESOLVER", why,
                  Hint("Configure a name server (DHCP usually provides one).", cmds), **evidence)


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
    done, _ = await asyncio.wait({resolving}, timeout=0.3)
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
        note = f" ({', '.join(f'{s}: {v}' for s, v in broken.items())})" if broken else ""
        return passed(f"{', '.join(working)} answer{'s' if len(working) == 1 else ''}{note}",
                      **evidence)
    if res.source == "hosts":
        return passed("no name server answers, but the target is in the hosts file "
                      "(not on the path)", **evidence)
    first = res.config.nameservers[0]
    code = verdicts.get(first, "DNS_RESOLVER_UNREACHABLE")
    errors = sorted({a.error for a in res.answers if a.server == first and a.error})
    if res.config.uses_stub and res.config.upstreams:
        upstream = await asyncio.gather(*(dns.query(u, res.fqdn or res.name, "A", ctx.timeout)
                                          for u in res.config.upstreams[:3]))
        evidence["upstreams"] = [a.to_json() for a in upstream]
    servers = ", ".join(res.config.nameservers)
    if code == "DNS_REFUSED":
        return failed(code, f"{servers} refuse{'s' if len(verdicts) == 1 else ''} to answer "
                      f"for {res.name}",
                      Hint("The server answers but will not resolve for this host: it is not "
                           "your resolver, or its access list excludes you. Use the resolver "
                           "your network gives (DHCP), or allow this host on the server.",
                           [f"dig @{first} {res.name}", "cat /etc/resolv.conf"]), **evidence)
    if code == "DNS_SERVFAIL":
        return failed(code, f"{servers} answer{'s' if len(verdicts) == 1 else ''} SERVFAIL "
                      f"for {res.name}",
                      Hint("The resolver cannot get an answer (its upstream or the domain's "
                           "servers fail, or DNSSEC validation fails). Check the resolver's "
                           "log and its forwarders.",
                           [f"dig @{first} {res.name}", f"dig @{first} {res.name} +cd"]),
                      **evidence)
    how = " and ".join(errors) or "no answer"
    text = ("No configured name server answers: the server is down, a firewall drops port "
            "53, or the address in resolv.conf is wrong.")
    cmds = [f"dig @{first} {res.name} +time=2 +tries=1", f"ping -c 3 {first}",
            "cat /etc/resolv.conf"]
    if how == "timeout":
        # Is the server's host there at all? Tells a dead host from a silent service.
        alive = await shared.ping(ctx, first)
        evidence["server_ping"] = alive.to_json()
        if alive.state == "reply":
            how += f" (but {first} answers ping: its DNS service or a firewall drops port 53)"
            text = (f"{first} is up but its DNS service does not answer: start the service "
                    "or open port 53 (UDP and TCP) on its firewall.")
        elif alive.state != "unavailable":
            how += f" (and {first} does not answer ping either)"
            cmds.insert(1, f"traceroute -n {first}")
    if res.config.uses_stub:
        text += " With systemd-resolved, the stub must run and have an upstream server."
        cmds = ["resolvectl status", "systemctl status systemd-resolved", *cmds]
    return failed("DNS_RESOLVER_UNREACHABLE",
                  f"name server{'s' if len(res.config.nameservers) > 1 else ''} {servers}: {how}",
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
        return passed(f"{name} -> {', '.join(res.addresses)} (from the hosts file)", **evidence)
    if res.fqdn is None:
        if any(a.rcode == "NXDOMAIN" for a in res.answers):
            return failed("DNS_NXDOMAIN", f"{name} does not exist (NXDOMAIN)",
                          Hint("Check the spelling of the name; if it is right, the domain's "
                               "DNS lacks the record.",
                               [f"dig {name}", f"dig {name} SOA"]), **evidence)
        return skipped("no server gave an answer", **evidence)
    fams = "/".join(t for f, t in ((socket.AF_INET, "A"), (socket.AF_INET6, "AAAA"))
                    if f in ctx.families)
    if not res.addresses:
        return failed("DNS_NO_ADDRESS", f"{res.fqdn} exists but has no {fams} record",
                      Hint("The name exists but has no address of the family needed: use "
                           "another name, the other address family, or add the record.",
                           [f"dig {res.fqdn} A", f"dig {res.fqdn} AAAA", f"dig {res.fqdn} ANY"]),
                      **evidence)
    via = " via " + " -> ".join(c[1] for c in chain) if chain else ""
    summary = f"{res.fqdn}{via} -> {', '.join(res.addresses)} in {res.duration_ms:.0f} ms"
    verdicts = _server_verdicts(res)
    first = res.config.nameservers[0] if res.config.nameservers else None
    if first and verdicts.get(first, "ok") != "ok":
        # The system resolver asks the servers in order: every lookup waits for the first
        # one to time out (5 s by default) before it asks the next.
        return warned("DNS_SLOW", f"{summary}, but only after the first name server {first} "
                      f"fails ({verdicts[first]}): every lookup waits for it first",
                      Hint(f"Remove or fix {first} in resolv.conf so the working server is "
                           "asked first.", ["cat /etc/resolv.conf", f"dig @{first} {res.name}"]),
                      **evidence)
    if res.duration_ms > SLOW_DNS_MS:
        return warned("DNS_SLOW", f"{summary} (slow: over {SLOW_DNS_MS:.0f} ms)",
                      Hint("Resolution works but is slow: the resolver or its upstream is "
                           "overloaded or far away; every new connection waits for it.",
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
    if not res.hosts_addresses:
        return passed(f"{res.name} is not in {ctx.options.hosts_file}", **evidence)
    if not res.dns_addresses or set(res.hosts_addresses) & set(res.dns_addresses):
        return passed(f"{ctx.options.hosts_file} maps {res.name} to "
                      f"{', '.join(res.hosts_addresses)}", **evidence)
    status = await _hosts_entry_works(ctx, res.hosts_addresses)
    make = failed if not status else warned
    return make("DNS_HOSTS_OVERRIDE",
                f"{ctx.options.hosts_file} maps {res.name} to {', '.join(res.hosts_addresses)}, "
                f"DNS says {', '.join(res.dns_addresses)}"
                + ("" if status else " (and the hosts address does not answer)"),
                Hint("Remove or correct the stale line in the hosts file.",
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
        return skipped("the target has no address to try")
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
                      f"{fam} {bad} {_why_silent(ctx, bad, pings, conns)} while "
                      f"{' and '.join(working)} works",
                      Hint(f"Clients that prefer {fam} fail or wait for a timeout: check "
                           f"{fam} routing beyond the gateway (or remove the {fam} address "
                           "from DNS).", [f"traceroute -n {bad}", f"ping -c 3 {bad}"]),
                      **evidence)
    if working:
        if replies:
            return passed(f"{replies[0].address} answers ping in {replies[0].rtt_ms:.1f} ms",
                          **evidence)
        if all(p.state == "unavailable" for p in pings):
            return passed(f"{addrs[0]} answers TCP port {port} (ping needs root here)",
                          **evidence)
        return warned("TARGET_NO_ICMP", f"{addrs[0]} drops ping but answers TCP port {port}",
                      Hint("Nothing to fix for connectivity: the target (or a firewall "
                           "before it) filters ICMP echo. Test it with TCP probes "
                           "(nping --tcp-connect) instead of ping."), **evidence)
    if "local" in by_family.values():
        return skipped(f"this host's own firewall stops the probes to {addrs[0]}: "
                       "see the transport check", **evidence)
    if not broken:
        return skipped("cannot ping (needs root or CAP_NET_RAW) and TCP got no answer: an "
                       "unreachable target and a filtered port look the same", **evidence)
    path = await ctx.path()
    return failed("TARGET_UNREACHABLE", f"{addrs[0]} {_why_silent(ctx, addrs[0], pings, conns)}",
                  Hint("The gateway works but nothing comes back from the target: the host "
                       "is down, or a router or firewall beyond the gateway drops the "
                       "traffic. Find the last hop that answers.",
                       [f"traceroute -n {addrs[0]}", f"mtr -n -c 5 {addrs[0]}",
                        f"ping -c 3 {path.gateway or addrs[0]}"]), **evidence)


def _why_silent(ctx: Context, address: str, pings: list[icmp.PingResult],
                conns: list[Any]) -> str:
    for x in [*pings, *conns]:
        if x.address == address and x.state in ("icmp", "icmp_error"):
            return f"is unreachable: {x.icmp_from or 'a router'} says {x.icmp_name}"
    assert ctx.target is not None
    return f"answers neither ping nor TCP port {ctx.target.port}"


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
        return skipped("needs root (or CAP_NET_RAW, or ping_group_range) to send ICMP probes")
    if not answering:
        return skipped("the target does not answer ping: the path MTU cannot be probed")
    path = await ctx.path()
    fam_addrs = [a for a in answering if (":" in a) == (path.family == socket.AF_INET6)]
    addr = (fam_addrs or answering)[0]
    link = ctx.facts.link(index=path.ifindex) if path.ifindex else None
    if link is None or link.mtu <= 0:
        return skipped("no egress interface MTU to test")
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
        return passed(f"{mtu}-byte packets reach {addr} unfragmented", path_mtu=mtu, **evidence)
    if full.mtu and full.mtu < mtu:
        evidence["path_mtu"] = full.mtu
        who = f"{full.icmp_from} says" if full.icmp_from else "the kernel knows"
        return warned("MTU_MISMATCH",
                      f"path MTU to {addr} is {full.mtu}, {link.name}'s MTU is {mtu} "
                      f"({who} fragmentation needed)",
                      Hint("Path MTU discovery works here, so traffic flows; matching the "
                           "interface MTU to the path avoids the extra round trip.",
                           [f"ip link set dev {link.name} mtu {full.mtu}",
                            f"tracepath -n {addr}"]), **evidence)
    if small.state != "reply":
        return passed("small packets were lost too: packet loss, not an MTU problem",
                      **evidence)
    found = await _search_path_mtu(addr, hdr, mtu, t)
    evidence["path_mtu"] = found
    if found is None:
        return passed("full-size packets were lost once, then passed: plain packet loss",
                      **evidence)
    return failed("PMTU_BLACKHOLE",
                  f"packets over {found} bytes to {addr} vanish with no ICMP "
                  f"'fragmentation needed' (path MTU {found}, {link.name} MTU {mtu})",
                  Hint("A router on the path has a smaller MTU and its ICMP 'too big' "
                       "messages are dropped by a firewall: big transfers stall. Lower "
                       "this host's MTU (or clamp the TCP MSS on the router) and let ICMP "
                       "type 3 code 4 / ICMPv6 type 2 through.",
                       [f"ip link set dev {link.name} mtu {found}",
                        "iptables -t mangle -A FORWARD -p tcp --tcp-flags SYN,RST SYN "
                        "-j TCPMSS --clamp-mss-to-pmtu   # on the router",
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
        return passed(f"{addr} does not answer ping, but its HTTP answer came back "
                      f"({normal.outcome}, {normal.bytes_received} bytes): no sign of a "
                      "path-MTU black hole", **evidence)
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
                  f"the HTTP answer from {addr} stalls after {normal.bytes_received} bytes with "
                  f"full-size segments but arrives whole with {SMALL_MSS}-byte segments: "
                  f"packets near {ifname}'s MTU {mtu} vanish on the way",
                  Hint("A router between here and the server has a smaller MTU and its ICMP "
                       "'fragmentation needed' is dropped: big segments vanish, the download "
                       "stalls. Lower this host's MTU (or clamp the MSS on the router) and let "
                       "ICMP type 3 code 4 / ICMPv6 type 2 through.",
                       [f"ip link set dev {ifname} mtu 1400",
                        "iptables -t mangle -A FORWARD -p tcp --tcp-flags SYN,RST SYN "
                        "-j TCPMSS --clamp-mss-to-pmtu   # on the router",
                        f"tracepath -n {addr}"]), **evidence)


async def _search_path_mtu(addr: str, hdr: int, mtu: int, timeout: float) -> Optional[int]:
    """The largest packet that gets through, by rounds of parallel DF probes.

    None when the full size passes on a second try (the first loss was chance).
    """
    floor = 1280 if ":" in addr else 576
    low, high = floor, mtu  # low: assumed to pass, high: known to vanish
    for _ in range(3):
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
