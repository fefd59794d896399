"""The gateway rung (``network.gateway``): IP goes to the gateway and comes back, and what
explains it when only ARP answers.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

from netcheck.checks.network.addressing import _address_claimed
from netcheck.checks.network.common import _manager
from netcheck.checks.network.judging import (
    OK,
    STATIC_NUD,
    GatewayFacts,
    judge_gateway,
    judge_gateways,
)
from netcheck.checks.network.routing import _router_note, _router_on_link
from netcheck.checks.network.view import L3View, _egress_of, _l3_view, _route_lookups
from netcheck.checks.network.xfrm import _xfrm

from netcheck import hints
from netcheck.i18n import _
from netcheck.lazy import asyncio, lazy
from netcheck.model import Hint, Layer, Result, Status, failed, passed, skipped, warned
from netcheck.registry import RECIPROCAL, check

if TYPE_CHECKING:
    from netcheck import family as addrfam
    from netcheck.probes import icmp, neighbour, shared
    from netcheck.runner import Context
else:  # imported at first use: `netcheck checks` lists the checks without the probes
    addrfam = lazy("netcheck.family")
    icmp, neighbour, shared = (lazy(f"netcheck.probes.{name}")
                               for name in ("icmp", "neighbour", "shared"))


@check("network.gateway", Layer.NETWORK, requires=("network.route",),
       codes=("GATEWAY_NOT_ON_LINK", "GATEWAY_UNREACHABLE"), path_part="gateway",
       modes=RECIPROCAL)
async def gateway(ctx: Context) -> Result:
    """Gateway answers on the link.

    The next hop of each family's route must sit in a prefix of the egress interface and
    answer with IP: a ping reply, or an answer from the target or a name server through
    it, proves the packets go and come back. A reply to ARP / neighbour solicitation alone
    proves only the link; then netcheck looks for what swallows the IP replies: a static
    neighbour entry with another MAC, this host's own input chain, another host answering
    for this host's address, an IPsec policy.
    """
    view = await _l3_view(ctx)
    hops = _gateway_hops(ctx, view)
    if not hops:
        return passed(_("no gateway needed: the target is on the link of {ifname}").format(
            ifname=view.path.interface), path=view.path.to_json())
    probed = await asyncio.gather(*(_probe_gateway(ctx, fam, *hop) for fam, hop in hops.items()))
    facts = {fam: g for fam, (g, _ev) in zip(hops, probed)}
    per = {fam: judge_gateway(g) for fam, g in facts.items()}
    flow = addrfam.FlowFamilies(tuple(f for f in view.flow.target if f in per),
                                tuple(f for f in view.flow.resolver if f in per))
    judged = judge_gateways(flow, per)
    fam = judged.family if judged.family in facts else next(
        (f for f in facts if per[f] == judged), next(iter(facts)))
    evidence = dict(probed[list(hops).index(fam)][1])
    if len(hops) > 1:
        evidence["gateways"] = {addrfam.name(f): ev for f, (_g, ev) in zip(hops, probed)}
    if judged.family is not None:
        evidence["family"] = addrfam.name(judged.family)
    if judged.status is Status.PASS:
        return passed(judged.text, **evidence)
    if judged.status is Status.SKIP:
        return skipped(judged.text, **evidence)
    assert judged.code is not None
    make = failed if judged.status is Status.FAIL else warned
    hint = await _gateway_hint(ctx, judged.reason, facts[fam], fam)
    return make(judged.code, judged.text, hint, **evidence)


def _gateway_hops(ctx: Context, view: L3View) -> dict[int, tuple[str, str, int, Optional[str]]]:
    """Per family whose address and route are fine: the route's gateway, the egress
    interface's name and index, and the preferred source address (none on the link)."""
    addr_ok, route_ok = view.address_states, view.route_states
    fams = [f for f in view.flow.all if route_ok.get(f) == OK and addr_ok.get(f, OK) == OK]
    hops = {}
    for fam in fams:
        lk = view.routes[fam].lookup
        ifname, ifindex = _egress_of(ctx, view.path, lk)
        if lk.gateway and ifindex is not None:
            hops[fam] = (lk.gateway, ifname or "", ifindex, lk.prefsrc)
    return hops


async def _gateway_hint(ctx: Context, reason: Optional[str], g: GatewayFacts,
                        fam: int) -> Hint:
    """What to do about a gateway that fails, by the reason it was judged on."""
    if reason == "rp_filter":
        return Hint(_("The replies come back through another interface than the one the "
                      "packets left by (asymmetric routing: a second uplink, a router "
                      "sending the return traffic another way), and strict reverse-path "
                      "filtering drops them. Make the return path the same, or filter "
                      "loosely (rp_filter=2)."),
                    # the larger of all's and the interface's value counts: 2 on each
                    ["nstat -az TcpExtIPReversePathFilter",
                     *(f"sysctl -w net.ipv4.conf.{i}.rp_filter=2" for i in g.rp_strict)])
    gw, ifname = g.gateway, g.ifname
    if reason == "static_neighbour":
        return Hint(_("The neighbour table holds a static entry for {gateway} with "
                      "{pinned}, but the gateway's MAC address is {mac}: frames go nowhere. "
                      "Delete the entry so ARP finds the gateway again (or correct "
                      "it).").format(gateway=gw, pinned=g.neigh_mac, mac=g.wire_mac),
                    [f"ip neigh del {gw} dev {ifname}",
                     f"ip neigh replace {gw} lladdr {g.wire_mac} dev {ifname} nud reachable",
                     f"ip neigh show dev {ifname}"])
    if reason == "no_ip":
        return _no_ip_hint(g)
    ip = f"ip {'-6 ' if ':' in gw else ''}"
    fix, then = await _right_gateway(ctx, g, fam)
    if reason == "not_on_link":
        return Hint(_("The gateway {gateway} is outside every network of {ifname} "
                      "({prefixes}): the kernel can only hand packets to a neighbour on "
                      "the link, so the default route must name an address of {ifname}'s "
                      "network (or the interface's address/prefix is wrong).").format(
                          gateway=gw, ifname=ifname,
                          prefixes=", ".join(g.prefixes) or _("none")) + then,
                    [f"{ip}route del default via {gw}", *fix])
    return Hint(_("The kernel asks on {ifname} who has {gateway} (ARP, neighbour "
                  "discovery) and nobody answers: every packet for beyond the link waits "
                  "for that answer and is dropped. The gateway address in the route is "
                  "wrong, or the router is down.").format(gateway=gw, ifname=ifname)
                + then,
                [f"{ip}neigh show dev {ifname}", f"ping -c 3 {gw}", *fix])


def _no_ip_hint(g: GatewayFacts) -> Hint:
    """Nothing comes back from a gateway this host could not ARP-probe (no root)."""
    gw, ifname = g.gateway, g.ifname
    check = (f"arping -I {ifname} -c 3 {gw}   # " + _("as root: who has it now")
             if ":" not in gw else f"ndisc6 {gw} {ifname}   # " + _("as root: who has it now"))
    text = _("Nothing comes back from {gateway}: no ping reply, no answer from beyond it, no "
             "'time exceeded'. The router is down, or the frames never reach it.").format(
                 gateway=gw)
    commands = [f"ip neigh show {gw} dev {ifname}", check]
    if g.neigh_state in STATIC_NUD:
        text += " " + _("Its neighbour entry ({state}, {mac}) is never checked by the kernel: "
                        "a static entry, or ARP switched off on {ifname}, sends every frame "
                        "to that MAC address whether the gateway has it or not. Compare it "
                        "with the gateway's real address; delete a wrong static entry, "
                        "switch ARP back on.").format(state=g.neigh_state, mac=g.neigh_mac,
                                                       ifname=ifname)
        commands += [f"ip -d link show {ifname}   # " + _("NOARP: ARP is off"),
                     f"ip neigh del {gw} dev {ifname}"]
        if g.neigh_state == "NOARP":
            commands.append(f"ip link set dev {ifname} arp on")
    return Hint(text, commands)


async def _right_gateway(ctx: Context, g: GatewayFacts, fam: int) -> tuple[list[str], str]:
    """The commands that make the default route name the router that answers on the link
    (or a placeholder when none does), and the sentence that says which."""
    mgr = await _manager(ctx)
    gw, ifname = g.gateway, g.ifname
    ip = f"ip {'-6 ' if ':' in gw else ''}"
    router = await _router_on_link(ctx, ifname, fam, frozenset({gw}))
    if router is not None:
        fix = ["# " + _router_note(router, ifname),
               *hints.default_route(router.address, ifname, mgr)]
        then = " " + _("{router} answers on the link: the default route should name "
                       "it.").format(router=router.address)
    else:
        fix = [f"{ip}route replace default via <the right gateway> dev {ifname}"]
        then = " " + _("No other router answered on the link: check that the router is on, "
                       "or ask the network's administrator which address it has.")
    return fix, then


def _wire_answer(mac: Optional[str]) -> Optional[str]:
    """The ARP / NDP probe's answer as shown: a MAC address, or the words for an
    advertisement without one (``neighbour.NO_LLADDR_OPTION``)."""
    if mac == neighbour.NO_LLADDR_OPTION:
        return _("(no link-layer option)")
    return mac


class _FirstAnswers(NamedTuple):
    """What the gateway's probes sent at once met (those not waited for: none yet)."""

    ping: icmp.PingResult
    probed: bool  # our own ARP / neighbour solicitation went out
    mac: Optional[str]  # who answered it (as shown)
    neigh: neighbour.NeighbourResult
    through: Optional[tuple[str, str]]  # what answered through the gateway: (role, address)
    asked: bool  # anything beyond the gateway was asked
    rp_before: Optional[int]  # reverse-path filter drops counted when the probes started


async def _probe_gateway(ctx: Context, fam: int, gw: str, ifname: str, ifindex: int,
                         src: Optional[str]) -> tuple[GatewayFacts, dict[str, Any]]:
    """Ping, ARP / NDP from our own socket and the kernel's neighbour entry, at once; then,
    when only the link answered, what keeps the IP replies away."""
    gw_ip = ipaddress.ip_address(gw)
    prefixes = [a.network for a in ctx.facts.addrs_of(ifindex)]
    on_link = gw_ip.is_link_local or any(gw_ip in p for p in prefixes)
    link = ctx.facts.link(index=ifindex)
    first = await _first_answers(ctx, fam, gw, ifindex, ifname, src,
                                 link.mac if link else None)
    ping_res, probed, mac, neigh, through = (first.ping, first.probed, first.mac, first.neigh,
                                             first.through)
    evidence: dict[str, Any] = {"gateway": gw, "interface": ifname, "on_link": on_link,
                                "prefixes": [str(p) for p in prefixes],
                                "neighbour": neigh.to_json(), "ping": ping_res.to_json()}
    if probed:
        evidence["arp_probe" if ":" not in gw else "ndp_probe"] = mac or "no answer"
    if ping_res.state == "reply":
        evidence["rtt_ms"] = round(ping_res.rtt_ms or 0, 3)
    if through:
        evidence["answered_through"] = {"role": through[0], "address": through[1]}
    facts = GatewayFacts(gw, ifname, on_link, tuple(str(p) for p in prefixes), ping_res.state,
                         probed, mac, neigh.state, neigh.lladdr, through,
                         beyond_silent=first.asked and not through)
    if mac and ping_res.state != "reply" and not through:
        facts = await _why_only_the_link(ctx, fam, facts, src, ifindex,
                                         link.mac if link else None, first.rp_before, evidence)
    elif not probed and ping_res.state != "reply" and not through and facts.beyond_silent \
            and neigh.state in neighbour.RESOLVED:
        # Without root no ARP probe: the neighbour entry is all the link shows, and a static
        # one (or one learnt long ago) proves nothing of now. Whether the gateway handles
        # this host's packets is asked as without the link's answer: a probe whose TTL runs
        # out there (a TCP SYN or a DNS query; no root needed).
        hop = await _gateway_hop(ctx, gw, fam)
        facts = dataclasses.replace(facts, ttl_hop=hop)
        if hop is not None:
            evidence["ttl_1_probe"] = "time exceeded" if hop else "no answer"
    elif probed and not mac and ":" in gw and ping_res.state != "reply" and not through:
        # IPv6 neighbour discovery is ICMPv6 and goes through the input chains, untracked.
        advert = await _input_drops_reply(ctx, gw, src, ifname, advert=True)
        if advert:
            facts = dataclasses.replace(facts, input_block=advert)
            evidence["input_block"] = advert
    return facts, evidence


async def _first_answers(ctx: Context, fam: int, gw: str, ifindex: int, ifname: str,
                         src: Optional[str], mac: Optional[str]) -> _FirstAnswers:
    """Ping, our own ARP / NDP probe, the kernel's neighbour entry and what answers through
    the gateway, sent at once and waited for until the first proof of IP both ways (or
    until every one has ended)."""
    # What answers through the gateway (the target, a name server) is proof too, and the
    # target's probes start now: nobody waits twice.
    through_t = asyncio.ensure_future(_answered_through(ctx, fam, gw))
    ping_t = shared.ping(ctx, gw)
    wire_t = ctx.blocking(neighbour.probe_on_wire, ifname, ifindex, mac, src, gw, ctx.timeout)
    neigh_t = ctx.blocking(neighbour.resolve, gw, ifindex, ctx.timeout)
    rp_before = _rp_filter_drops(ctx)
    pending: set[asyncio.Future[Any]] = {ping_t, wire_t, neigh_t, through_t}
    while pending:  # stop at the first proof of IP both ways instead of every timeout
        _done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        if (ping_t.done() and ping_t.result().state == "reply") or (
                through_t.done() and through_t.result()[0]):
            break
    ping_res = ping_t.result() if ping_t.done() else icmp.PingResult(gw, "not waited for")
    probed, answer = wire_t.result() if wire_t.done() else (True, None)
    neigh = neigh_t.result() if neigh_t.done() else neighbour.NeighbourResult(
        gw, ifindex, "not waited for")
    # Not waited for: nothing beyond was asked yet (so it is not called silent).
    through, asked = through_t.result() if through_t.done() else (None, False)
    return _FirstAnswers(ping_res, probed, _wire_answer(answer), neigh, through, asked,
                         rp_before)


async def _why_only_the_link(ctx: Context, fam: int, facts: GatewayFacts, src: Optional[str],
                             ifindex: int, mac: Optional[str], rp_before: Optional[int],
                             evidence: dict[str, Any]) -> GatewayFacts:
    """The gateway's facts (and evidence) once what swallows the IP replies is looked for:
    this host's input chain, a host on our own address, an IPsec policy, the reverse-path
    filter, and whether the gateway handles this host's packets at all (its "time
    exceeded")."""
    gw, ifname = facts.gateway, facts.ifname
    rp_after = _rp_filter_drops(ctx)
    input_block, conflict, policy, ttl_hop = await asyncio.gather(
        _input_drops_reply(ctx, gw, src, ifname),
        _own_address_claimed(ctx, fam, ifname, mac, src),
        _ipsec_takes(ctx, src, gw, fam, ifindex),
        _gateway_hop(ctx, gw, fam) if facts.beyond_silent else _nothing())
    rp_dropped = rp_after - rp_before if rp_before is not None and rp_after is not None \
        else 0
    facts = dataclasses.replace(facts, input_block=input_block, own_conflict=conflict,
                                ipsec=policy, rp_dropped=rp_dropped,
                                rp_strict=_rp_strict(ctx), ttl_hop=ttl_hop)
    if ttl_hop is not None:
        evidence["ttl_1_probe"] = "time exceeded" if ttl_hop else "no answer"
    if rp_dropped:
        evidence["rp_filter"] = {"dropped": rp_dropped, "strict": list(facts.rp_strict)}
    evidence["state"] = "link_only"
    for key, value in (("input_block", input_block), ("address_conflict", conflict),
                       ("ipsec", policy)):
        if value:
            evidence[key] = value
    return facts


def _rp_filter_drops(ctx: Context) -> Optional[int]:
    """The kernel's count of IPv4 packets reverse-path filtering dropped (TcpExt
    IPReversePathFilter in /proc/net/netstat, this namespace's), or None."""
    from netcheck.probes import netstat

    return netstat.counter(ctx.facts, "TcpExt", "IPReversePathFilter")


def _rp_strict(ctx: Context) -> tuple[str, ...]:
    """Interfaces where reverse-path filtering is strict (the larger of all and the
    interface's own rp_filter is 1)."""
    def value(name: str) -> int:
        raw = ctx.facts.read_sys("proc", "sys", "net", "ipv4", "conf", name, "rp_filter")
        return int(raw) if raw and raw.isdigit() else 0

    every = value("all")
    return tuple(lk.name for lk in ctx.facts.links
                 if not lk.is_loopback and max(every, value(lk.name)) == 1)


async def _answered_through(ctx: Context, fam: int, gw: str
                            ) -> tuple[Optional[tuple[str, str]], bool]:
    """What answered from beyond the gateway ``gw`` of a family — ``(role, address)`` of a
    name server or the target whose packets the kernel sends through ``gw`` — or None, and
    whether anything beyond it was asked at all."""
    if ctx.target is None:
        return None, False
    asked = False
    try:
        if ctx.target.is_name:
            res = await ctx.resolution()
            # resolv.conf's servers, and a local stub's upstreams asked directly
            answers = [*res.answers, *res.upstream_answers]
            servers = [a for a in dict.fromkeys(addrfam.bare(x.server) for x in answers)
                       if addrfam.family_of(a) == fam and _beyond_link(ctx, a)]
            through = set(await _through_gateway(ctx, servers, gw))
            for a in answers:
                if addrfam.bare(a.server) not in through:
                    continue
                if a.rcode is not None:
                    return ("name server", a.server), True
                asked = asked or a.error == "timeout"
        addrs = await _through_gateway(ctx, [a for a in addrfam.of_family(
            await ctx.addresses(), fam) if _beyond_link(ctx, a)], gw)
        if not addrs:
            return None, asked
        pings = asyncio.ensure_future(shared.ping_all(ctx, addrs))
        for c in await shared.tcp_all(ctx, addrs, ctx.target.port):
            if c.answered:
                return ("target", c.address), True
        for p in await pings:
            if p.state == "reply":
                return ("target", p.address), True
    except Exception:
        return None, False
    return None, True


async def _nothing() -> None:
    return None


async def _through_gateway(ctx: Context, addresses: list[str], gw: str) -> list[str]:
    """Those of ``addresses`` the kernel sends through ``gw`` (``ip route get``): a name
    server that answers by another router proves nothing of this one."""
    if not addresses:
        return []
    known = await _route_lookups(ctx, addresses)
    return [a for a in addresses if a not in known or (
        known[a].gateway is not None and addrfam.bare(known[a].gateway) == addrfam.bare(gw))]


async def _gateway_hop(ctx: Context, gw: str, fam: int) -> Optional[bool]:
    """Does the gateway handle this host's IP packets? Probes of the flow (a SYN to the
    target's port, an echo) whose TTL runs out at the gateway: a router that forwards
    answers "time exceeded" even when it drops ping to itself. True / False (silence), or
    None when no probe could be sent or an ICMP error answered instead."""
    from netcheck.probes import hops

    assert ctx.target is not None
    wait = max(0.2, min(0.5, ctx.timeout))  # the first hop's answer comes in milliseconds
    targets = [a for a in addrfam.of_family(await ctx.addresses(), fam) if _beyond_link(ctx, a)]
    probes: list[Any] = []
    if targets:
        probes.append(hops.tcp_probe(targets[0], ctx.target.port, 1, wait))
    elif ctx.target.is_name:  # not resolved: the queries to the name server are the flow
        res = await ctx.resolution()
        servers = [addrfam.bare(s) for s in [*res.servers, *res.config.upstreams]]
        targets = [s for s in addrfam.of_family(servers, fam) if _beyond_link(ctx, s)]
        if targets:
            probes.append(hops.udp_probe(targets[0], 53, 1, wait,
                                         hops.dns_query(ctx.target.host)))
    if not probes:
        return None
    probes.append(hops.icmp_probe(targets[0], 1, wait))
    found = await asyncio.gather(*probes, return_exceptions=True)
    done = [p for p in found if not isinstance(p, BaseException) and p.state != "error"]
    if any(p.state == "hop" for p in done):
        return True
    # Silence only: an ICMP error instead (this host's own output rules rejecting the probe
    # among them) settles nothing about the gateway.
    return False if done and all(p.state == "timeout" for p in done) else None


def _beyond_link(ctx: Context, address: str) -> bool:
    """Not this host, not loopback, not on a connected prefix: reached through a gateway."""
    try:
        ip = ipaddress.ip_address(addrfam.bare(address))
    except ValueError:
        return False
    if ip.is_loopback or ip.is_link_local:
        return False
    return not any(ip == a.ip or ip in a.network for a in ctx.facts.addresses
                   if a.family == addrfam.family_of(address))


async def _input_drops_reply(ctx: Context, remote: str, local: Optional[str],
                             ifname: str, advert: bool = False) -> Optional[str]:
    """The rule of this host's input chains that drops the echo reply (or, ``advert``, the
    neighbour advertisement) from ``remote``."""
    from netcheck.probes import firewall

    if not firewall.has_cap_net_admin():
        return None
    flow = (firewall.neighbour_advert_flow(remote, local, ifname) if advert
            else firewall.reply_flow(remote, local, "icmp", None, ifname))
    fw = await firewall.judge_flows(ctx, [flow], hook="input")
    v = fw.verdicts[0] if fw.readable and fw.verdicts else None
    return v.describe() if v is not None and v.blocked else None


async def _own_address_claimed(ctx: Context, fam: int, ifname: str, mac: Optional[str],
                               src: Optional[str]) -> Optional[str]:
    """``ADDRESS (MAC)`` when another host answers ARP for our own IPv4 source address."""
    if fam != addrfam.V4 or not src or not mac or not ctx.facts.privileged:
        return None
    other = await _address_claimed(ctx, ifname, mac, src)
    return f"{src} ({other})" if other and other != "error" else None


async def _ipsec_takes(ctx: Context, src: Optional[str], gw: str, fam: int,
                       ifindex: int) -> Optional[str]:
    """The xfrm policy that blocks the ping to the gateway or has no SA for it."""
    from netcheck.probes import xfrm

    found = await _xfrm(ctx)
    if found is None or not found.readable:
        return None
    v = xfrm.judge(found, src, gw, 1 if fam == addrfam.V4 else 58, None, ifindex)
    if v.outcome in ("block", "no_sa") and v.policy is not None:
        return v.policy.text()
    return None
