"""Gathering the facts the address, route and gateway rungs judge: the run's one
:class:`L3View` (no probe sent), the routes and rules that discard the flow, and the
kernel's route lookups.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from netcheck.checks.network.common import _loopback
from netcheck.checks.network.judging import (
    OK,
    UNUSED,
    FamilyAddresses,
    FamilyRoute,
    address_state,
    route_state,
)

from netcheck.lazy import asyncio, lazy

if TYPE_CHECKING:
    from netcheck import family as addrfam
    from netcheck.runner import Context, PathInfo
else:  # imported at first use: `netcheck checks` lists the checks without the probes
    addrfam = lazy("netcheck.family")


# -- gathering the facts -----------------------------------------------------------------------

@dataclass
class L3View:
    """What the address and route rungs judge, computed once per run (no probe sent)."""

    path: PathInfo
    flow: addrfam.FlowFamilies
    resolver: tuple[str, ...]
    addresses: dict[int, FamilyAddresses]
    routes: dict[int, FamilyRoute]

    @property
    def address_states(self) -> dict[int, str]:
        return {f: address_state(fa) for f, fa in self.addresses.items()}

    @property
    def route_states(self) -> dict[int, str]:
        return {f: route_state(fr) for f, fr in self.routes.items()}


async def families_judged_below(ctx: Context) -> set[int]:
    """The families whose address or route rung found a problem (failed or warned): what
    the target's and the port's silence in those families would only repeat."""
    view = await _l3_view(ctx)
    return {f for states in (view.address_states, view.route_states)
            for f, state in states.items() if state not in (OK, UNUSED)}


def _l3_view(ctx: Context) -> asyncio.Task[L3View]:
    return ctx.memo(("network", "l3-view"), lambda: _build_l3_view(ctx))


async def _build_l3_view(ctx: Context) -> L3View:
    path = await ctx.path()
    target_addrs = await ctx.addresses()
    servers: list[str] = []
    resolved = True
    if ctx.target is not None and ctx.target.is_name and not target_addrs:
        res = await ctx.resolution()
        servers = [addrfam.bare(s) for s in res.servers]
        stub = all(_loopback(s) for s in servers)
        if stub:
            # A local stub answers from this host: the path the name needs is its
            # upstreams' (when they are known), not loopback's.
            servers = [addrfam.bare(u) for u in res.config.upstreams]
        # A name the servers answered for (NXDOMAIN, no record) did resolve as far as the
        # path goes: they are reachable, only the name is missing. A stub's SERVFAIL or
        # REFUSED is made on this host, most often because its upstreams did not answer: it
        # proves nothing of their path (their own answers, asked directly, do).
        resolved = res.source == "hosts" or any(
            a.rcode is not None and (not stub or a.rcode in ("NOERROR", "NXDOMAIN"))
            for a in res.answers) or any(a.rcode is not None for a in res.upstream_answers)
    flow = addrfam.flow_families(target_addrs, servers, ctx.families, resolved)
    resolver = tuple(servers) if flow.resolver else ()
    addresses: dict[int, FamilyAddresses] = {}
    routes: dict[int, FamilyRoute] = {}
    wanted = await _families_meant(ctx, path)
    for fam in flow.all:
        lk = _lookup_for(path, fam, resolver if fam in flow.resolver and
                         fam not in flow.target else ())
        ifname, ifindex = _egress_of(ctx, path, lk)
        in_use = addrfam.configured(ctx.facts, fam) or fam in wanted
        if ifindex is not None and ifname is not None:
            addresses[fam] = FamilyAddresses(
                fam, ifname, tuple(ctx.facts.addrs_of(ifindex, fam)), in_use,
                any(addrfam.is_link_local(t) for t in addrfam.of_family(target_addrs, fam)))
        if lk is not None:
            culprit, rule = _culprit(ctx, lk), None
            if culprit is None and lk.type in ("none", "unreachable", "blackhole", "prohibit"):
                found = _rule_culprit(ctx, lk)
                culprit, rule = ((found.text().replace("\t", " "), found.priority) if found
                                 else (None, None))
            routes[fam] = FamilyRoute(fam, lk, in_use, culprit,
                                      _other_tables(ctx, fam) if lk.type == "none" else (),
                                      culprit_rule=rule)
    return L3View(path, flow, resolver, addresses, routes)


async def _families_meant(ctx: Context, path: PathInfo) -> set[int]:
    """The families this host is configured to use even when its addresses and routes of
    them are gone (a lease expired): those of the name servers it is told to ask beyond
    itself (resolv.conf's, a local stub's upstreams), and IPv4 when a DHCP client keeps a
    lease for the egress interface (dhclient, NetworkManager, systemd-networkd)."""
    from netcheck.probes import leases

    found: set[int] = set()
    if ctx.target is not None and ctx.target.is_name:
        cfg = (await ctx.resolution()).config
        found |= {addrfam.family_of(a) for a in [*cfg.nameservers, *cfg.upstreams]
                  if not _loopback(addrfam.bare(a))}
    if addrfam.V4 not in found and path.interface and path.ifindex is not None:
        if await ctx.blocking(leases.leases, path.interface, path.ifindex):
            found.add(addrfam.V4)
    return found


def _lookup_for(path: PathInfo, fam: int, prefer: tuple[str, ...]) -> Any:
    """The lookup that stands for a family: the first working one of its basis addresses
    (a name server's when ``prefer`` names them), else the family's own."""
    mine = [lk for lk in path.lookups if addrfam.family_of(lk.destination) == fam
            and (not prefer or lk.destination in prefer)]
    good = [lk for lk in mine if lk.type in ("unicast", "local")]
    return (good or mine or [path.for_family(fam)])[0]


def _egress_of(ctx: Context, path: PathInfo, lk: Any) -> tuple[Optional[str], Optional[int]]:
    """The interface a family's packets leave by (--interface wins; no route: the guess)."""
    if ctx.options.interface or lk is None or lk.oif is None:
        return path.interface, path.ifindex
    link = ctx.facts.link(index=lk.oif)
    return (lk.ifname or (link.name if link else None)), lk.oif


def _route_text(route: Any) -> str:
    dst = "default" if route.dst_len == 0 else f"{route.dst}/{route.dst_len}"
    kind = "" if route.type == "unicast" else f"{route.type} "
    table = getattr(route, "table", 254)
    return f"{kind}{dst}" + (f" table {route.table_name}" if table != 254 else "")


def _culprit(ctx: Context, lk: Any) -> Optional[str]:
    """The most specific route that discards packets to the lookup's destination."""
    if lk.type not in ("unreachable", "blackhole", "prohibit"):
        return None
    found = _covering_routes(ctx, lk.destination, {"unreachable", "blackhole", "prohibit"})
    return found[0] if found else None


def _rule_culprit(ctx: Context, lk: Any) -> Any:
    """The policy rule (``ip rule ... unreachable|blackhole|prohibit``) that discards
    packets to the lookup's destination before any table is looked at, or None. Only
    rules every packet to it meets (no mark, interface, port or user condition) count."""
    ip = ipaddress.ip_address(addrfam.bare(lk.destination))
    for rule in ctx.facts.rules_of(addrfam.family_of(lk.destination)):
        if rule.invert or rule.fwmark is not None or rule.iifname or rule.oifname or \
                rule.ipproto is not None or rule.dport is not None or rule.uid is not None:
            continue
        if rule.src and rule.src_len:
            continue  # depends on the source address: not every packet meets it
        if rule.dst and ip not in ipaddress.ip_network(f"{rule.dst}/{rule.dst_len}",
                                                       strict=False):
            continue
        if rule.action in ("unreachable", "blackhole", "prohibit"):
            return rule
        if rule.action == "lookup" and rule.table == 254:
            return None  # main was looked at first: its missing route is the cause
    return None


def _covering_routes(ctx: Context, destination: str, kinds: set[str]) -> list[str]:
    ip = ipaddress.ip_address(addrfam.bare(destination))
    found = []
    for r in sorted(ctx.facts.routes, key=lambda r: -r.dst_len):
        if r.type not in kinds:
            continue
        net = ipaddress.ip_network(f"{r.dst or ('::' if ip.version == 6 else '0.0.0.0')}"
                                   f"/{r.dst_len}", strict=False)
        if net.version == ip.version and ip in net:
            found.append(_route_text(r))
    return found


def _other_tables(ctx: Context, fam: int) -> tuple[str, ...]:
    """Tables other than main with a default route of the family (no rule led there)."""
    return tuple(dict.fromkeys(r.table_name for r in ctx.facts.defaults(fam, table=None)
                               if r.table != 254))


def _family_evidence(fam: Optional[int]) -> dict[str, str]:
    return {"family": addrfam.name(fam)} if fam is not None else {}


async def _route_lookups(ctx: Context, addresses: list[str]) -> dict[str, Any]:
    """The kernel's route lookup (``ip route get``) of each address: the path's own, else
    asked now; an address missing from the answer could not be looked up."""
    from netcheck.facts import route_get

    path = await ctx.path()
    known = {lk.destination: lk for lk in [*path.lookups, *path.by_family.values()]}
    missing = [a for a in addresses if a not in known]
    if missing:
        names = {lk.index: lk.name for lk in ctx.facts.links}
        oif = path.ifindex if ctx.options.interface else None
        try:
            known.update({lk.destination: lk for lk in await ctx.blocking(
                route_get, missing, oif, names)})
        except OSError:
            pass
    return {a: known[a] for a in addresses if a in known}
