"""The route rung (``network.route``): a route to the target (and to the name servers), and
the routers on the link that could be the missing gateway.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Optional

from netcheck.checks.network.common import _loopback, _manager
from netcheck.checks.network.judging import OK, UNUSED, FamilyRoute, Judged, judge_route
from netcheck.checks.network.view import (
    L3View,
    _egress_of,
    _family_evidence,
    _l3_view,
    _route_text,
)

from netcheck import hints
from netcheck.i18n import _
from netcheck.lazy import asyncio, lazy
from netcheck.model import Hint, Layer, Result, Status, failed, passed, skipped, warned
from netcheck.registry import RECIPROCAL, check

if TYPE_CHECKING:
    from netcheck import family as addrfam
    from netcheck.probes import dns
    from netcheck.runner import Context
else:  # imported at first use: `netcheck checks` lists the checks without the probes
    addrfam = lazy("netcheck.family")
    dns = lazy("netcheck.probes.dns")


@check("network.route", Layer.NETWORK, requires=("network.address",),
       codes=("ROUTE_NO_DEFAULT", "ROUTE_UNREACHABLE"), path_part="route",
       modes=RECIPROCAL)
async def route(ctx: Context) -> Result:
    """Route to the target.

    What the kernel's route lookup (``ip route get``, policy rules followed) answers for
    each family the flow needs: a usable route, none at all (no default route), or a route
    that throws the packets away (unreachable, blackhole, prohibit).
    """
    view = await _l3_view(ctx)
    if not view.routes:
        return skipped(_("nothing to look a route up for"))
    flow, per = _routes_to_judge(view)
    judged = judge_route(flow, per, view.resolver)
    evidence: dict[str, Any] = {"path": view.path.to_json(), **_family_evidence(judged.family)}
    defaults = [_default_text(ctx, r) for f in flow.all for r in ctx.facts.defaults(f, None)]
    if defaults:  # which one the lookup took, and which it did not, as `ip route` says
        evidence["defaults"] = defaults
    if judged.status is Status.PASS:
        return passed(judged.text, **evidence)
    if judged.status is Status.ERROR:
        return Result(Status.ERROR, judged.text, evidence=evidence)
    assert judged.family is not None and judged.code is not None
    fr = per[judged.family]
    make = failed if judged.status is Status.FAIL else warned
    if judged.code == "ROUTE_UNREACHABLE":
        return _route_discards(judged, fr, make, evidence)
    if judged.reason == "other_table":
        return make(judged.code, judged.text, _other_table_hint(fr, judged.family),
                    rules=[r.text() for r in ctx.facts.rules_of(judged.family)], **evidence)
    ifname, _ifindex = _egress_of(ctx, view.path, fr.lookup)
    hint = await _no_default_hint(ctx, judged.family, fr.lookup.destination,
                                  ifname or "<interface>")
    return make("ROUTE_NO_DEFAULT", judged.text, hint, **evidence)


def _routes_to_judge(view: L3View) -> tuple[addrfam.FlowFamilies, dict[int, FamilyRoute]]:
    """The flow's families and their route lookups, less a family whose address already
    failed (all of them when every family's did)."""
    # A family whose address already failed was judged there: not twice.
    addr_ok = view.address_states
    per = {f: fr for f, fr in view.routes.items() if addr_ok.get(f, OK) in (OK, UNUSED)}
    flow = addrfam.FlowFamilies(
        tuple(f for f in view.flow.target if f in per) or view.flow.target,
        tuple(f for f in view.flow.resolver if f in per))
    return flow, per or view.routes


def _route_discards(judged: Judged, fr: FamilyRoute, make: Callable[..., Result],
                    evidence: dict[str, Any]) -> Result:
    """ROUTE_UNREACHABLE: a policy rule or a route throws the packets away."""
    assert judged.code is not None
    ip = f"ip {'-6 ' if judged.family == addrfam.V6 else ''}"
    if judged.reason.startswith("rule:"):
        return make(judged.code, judged.text,
                    Hint(_("Remove the policy rule that throws the traffic away (a lockdown "
                           "or VPN script may have left it)."),
                         [f"{ip}rule show", f"{ip}rule del pref {judged.reason[5:]}",
                          f"ip route get {fr.lookup.destination}"]), rule=fr.culprit,
                    **evidence)
    shown = judged.reason
    return make(judged.code, judged.text,
                Hint(_("Remove the route that throws the traffic away."),
                     [f"{ip}route del {shown}", f"ip route get {fr.lookup.destination}"]),
                route=shown, **evidence)


def _other_table_hint(fr: FamilyRoute, family: int) -> Hint:
    """A default route sits in a table no policy rule leads this traffic to."""
    ip = f"ip {'-6 ' if family == addrfam.V6 else ''}"
    return Hint(_("A default route exists in table {tables}, but no policy rule sends "
                  "this traffic there: check the rules (a VPN client that went down "
                  "may have left them half removed).").format(
                      tables=", ".join(fr.other_tables)),
                [f"{ip}rule show", f"{ip}route show table {fr.other_tables[0]}",
                 f"ip route get {fr.lookup.destination}"])


async def _no_default_hint(ctx: Context, family: int, destination: str, ifname: str) -> Hint:
    """No route to the destination: what the table holds, and the default route to add
    (through the router that answers on the link, when one does)."""
    ip = f"ip {'-6 ' if family == addrfam.V6 else ''}"
    mgr = await _manager(ctx)
    router = (await _router_on_link(ctx, ifname, family)
              if ctx.facts.link(name=ifname) is not None else None)
    known = _routes_text(ctx, family)
    text = _("The kernel has no route to {destination}: its {family} routing table holds "
             "only {routes}, and no default route (the default gateway, the router that "
             "takes everything beyond the local networks).").format(
                 destination=destination, family=addrfam.label(family),
                 routes="; ".join(known) if known else _("no route at all"))
    if router is not None:
        text += " " + _("Add a default route through {gateway}; the next run checks that it "
                        "answers (Gateway answers on the link).").format(gateway=router.address)
        cmds = ["# " + _router_note(router, ifname),
                *hints.default_route(router.address, ifname, mgr, add=True)]
    else:
        text += " " + _("No router answered on {ifname}'s link: ask the network's "
                        "administrator which address the gateway has.").format(ifname=ifname)
        cmds = [f"{ip}route add default via <gateway> dev {ifname}"]
    return Hint(text, [*cmds, f"{ip}route"])


def _routes_text(ctx: Context, family: int) -> list[str]:
    """The routes of the main table for a family, as ``ip route`` prints them (short)."""
    out = []
    for r in ctx.facts.routes:
        if r.family != family or r.table != 254 or r.type not in ("unicast", "blackhole",
                                                                 "unreachable", "prohibit"):
            continue
        if r.dst and r.dst.startswith("fe80"):
            continue  # every IPv6 interface has one: not what a person looks for
        link = ctx.facts.link(index=r.oif) if r.oif is not None else None
        out.append(_route_text(r) + (f" via {r.gateway}" if r.gateway else "")
                   + (f" dev {link.name}" if link else ""))
    return out


def _default_text(ctx: Context, r: Any) -> str:
    link = ctx.facts.link(index=r.oif) if r.oif is not None else None
    text = "default" + (f" via {r.gateway}" if r.gateway else "")
    text += f" dev {link.name}" if link else ""
    text += f" table {r.table_name}" if r.table != 254 else ""
    text += f" metric {r.priority}" if r.priority else ""
    return text + (" linkdown" if r.linkdown else "")


class Router(NamedTuple):
    """A router found on the egress link, and how sure netcheck is of it."""

    address: str
    proven: bool  # it forwarded a probe to the flow's destination and the answer came back
    source: str  # where the candidate came from (a lease, the neighbour table, the prefix)


def _router_on_link(ctx: Context, ifname: str, family: int,
                    exclude: frozenset[str] = frozenset()) -> asyncio.Task[Optional[Router]]:
    """The router that answers on ``ifname``'s link, for a hint to name instead of
    ``<gateway>``: once per run and family.

    Candidates are what the host was told or has seen — its DHCP lease, its neighbour
    table — then the first and last address of the link's prefix, where routers sit
    (:func:`netcheck.fix.prove.gateway_candidates`). Each is asked with ARP / neighbour
    solicitation, then sent the flow's own probes (a SYN to the target's port, an echo) in
    frames addressed to its MAC: one whose probes come back from the destination forwards.
    Without root only the neighbour table's entries are named, unproven.
    """
    async def find() -> Optional[Router]:
        from netcheck.fix import prove

        link = ctx.facts.link(name=ifname)
        if link is None:
            return None
        version = 6 if family == addrfam.V6 else 4
        neighbours = [n.address for n in ctx.facts.neighbours if n.ifindex == link.index
                      and n.state not in ("FAILED", "INCOMPLETE", "NONE")]
        sources: list[tuple[str, list[str]]] = [
            (_("the DHCP lease {file}").format(file=lease.file), lease.routers)
            for lease in await ctx.blocking(prove.leases, ifname, link.index)]
        sources.append((_("the neighbour table of {ifname}").format(ifname=ifname), neighbours))
        mine = ctx.facts.addrs_of(link.index)
        candidates = prove.gateway_candidates(
            version, [a.network for a in mine], {a.address for a in ctx.facts.addresses},
            sources, set(exclude))
        if not candidates:
            return None
        if not ctx.facts.privileged or not link.mac:
            seen = [(a, how) for a, how in candidates if a in neighbours]
            return Router(seen[0][0], False, seen[0][1]) if seen else None
        where = await _forward_destinations(ctx, family)
        wait = max(0.3, min(1.0, ctx.timeout))

        def source_of(candidate: str) -> Optional[str]:
            ip = ipaddress.ip_address(candidate)
            return next((a.address for a in mine if a.network.version == ip.version
                         and ip in a.network and not a.dad_failed), None)

        proofs = await asyncio.gather(*(ctx.blocking(
            prove.prove_gateway, ifname, link.index, link.mac, source_of(a), a, how, where,
            wait) for a, how in candidates), return_exceptions=True)
        found = [p for p in proofs if not isinstance(p, BaseException)]
        best = next((p for p in found if p.proven), None) or next(
            (p for p in found if p.mac), None)
        return Router(best.address, best.proven, best.source) if best is not None else None

    return ctx.memo(("router-on-link", ifname, family, exclude), find)


async def _forward_destinations(ctx: Context, family: int) -> list[tuple[str, Optional[int]]]:
    """What a candidate router must forward: the target (with its port) or, while the name
    does not resolve, the name servers (port 53); never a documentation address."""
    assert ctx.target is not None
    port = ctx.target.port if ctx.target.scheme != "dns" else 53
    targets: list[tuple[str, Optional[int]]] = [
        (a, port) for a in addrfam.of_family(await ctx.addresses(), family)]
    if not targets and ctx.target.is_name:
        cfg = await ctx.blocking(dns.parse_resolv_conf, ctx.options.resolv_conf)
        servers: list[tuple[str, Optional[int]]] = [
            (addrfam.bare(a), 53) for a in cfg.nameservers
            if addrfam.family_of(a) == family and not _loopback(a)]
        return servers[:2]
    return targets[:2]


def _router_note(router: Router, ifname: str) -> str:
    """The comment that says how netcheck found the router it names."""
    if router.proven:
        return _("{router} answers on {ifname}'s link and forwards this flow's packets "
                 "({source})").format(router=router.address, ifname=ifname,
                                      source=router.source)
    return _("{router} answers on {ifname}'s link ({source}); that it routes is not "
             "proven").format(router=router.address, ifname=ifname, source=router.source)
