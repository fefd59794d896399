"""Layer 3: the network manager, addresses, routes, the gateway, names, the target, the MTU.

The order of declaration is the slides' order and the tie-break for the root cause: an
address problem explains a route problem, a route problem explains a silent gateway, a
silent gateway explains a resolver that does not answer.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

from netcheck import hints
from netcheck.i18n import _, ngettext, probe_text
from netcheck.lazy import asyncio, lazy
from netcheck.model import Hint, Layer, Result, Status, failed, passed, skipped, warned
from netcheck.registry import RECIPROCAL, check

if TYPE_CHECKING:
    import socket

    from netcheck import family as addrfam
    from netcheck.probes import dns, icmp, neighbour, shared
    from netcheck.runner import Context, PathInfo
else:  # imported at first use: `netcheck checks` lists the checks without the probes
    socket, addrfam = lazy("socket"), lazy("netcheck.family")
    dns, icmp, neighbour, shared = (lazy(f"netcheck.probes.{name}")
                                    for name in ("dns", "icmp", "neighbour", "shared"))

SLOW_DNS_MS = 500.0


async def _manager(ctx: Context) -> hints.Manager:
    return await shared.manager(ctx)


def _name_target(ctx: Context) -> Optional[str]:
    if ctx.target is None:
        return _("no target")
    # The first rungs of layer 3 to be asked whether they apply: the bursts that measure
    # loss and latency on the path start here, so they run while the other rungs do.
    shared.path_bursts(ctx)
    return None if ctx.target.is_name else _("the target is an address: no name to resolve")


def _fam_name(family: int) -> str:
    return "IPv6" if family == socket.AF_INET6 else "IPv4"


# -- the host itself -----------------------------------------------------------------

@check("network.service", Layer.NETWORK, codes=("NET_SERVICE_INACTIVE",), scope="host",
       modes=RECIPROCAL)
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


@check("network.loopback", Layer.NETWORK, codes=("LOOPBACK_DOWN",), scope="host",
       modes=RECIPROCAL)
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


# -- per family, per flow: what the address, route and gateway rungs judge -------------------
#
# The rungs below judge each address family the flow needs, for each part of the flow: the
# name servers while the name does not resolve (a host whose only name server is IPv4 needs
# IPv4, whatever the target has), and the target. A part whose families all fail breaks the
# flow; one family failing while another carries the part is `degraded`, with
# evidence.family naming it. A family this host does not use at all (no address beyond
# fe80::, no route) is no failure when another carries the flow (netcheck.family.configured).
# The judging itself is pure: facts in, a Judged out, unit-tested on recorded probe results
# (tests/unit/test_l3_judging.py) as presentation.handshake_problem is for TLS.

OK, UNUSED = "ok", "unused"


class Judged(NamedTuple):
    """A rung's judgement of its facts, before any hint is written."""

    status: Status
    code: Optional[str]
    text: str
    family: Optional[int] = None  # the family that fails (evidence.family)
    reason: str = ""  # which of several causes, for the hint


@dataclass(frozen=True)
class FamilyAddresses:
    """One family's addresses on its egress interface, and whether this host uses it."""

    family: int
    ifname: str
    addresses: tuple[Any, ...]  # facts.Addr
    in_use: bool = True
    link_local_target: bool = False


def address_state(fa: FamilyAddresses) -> str:
    """``ok``, ``unused`` (this host does not use the family) or the problem code."""
    addrs = fa.addresses
    good = [a for a in addrs if not a.dad_failed and not a.tentative and not a.link_local]
    if good or (fa.link_local_target and any(a.link_local and not a.dad_failed
                                             for a in addrs)):
        return OK
    if any(a.dad_failed for a in addrs):
        return "ADDR_DAD_FAILED"
    # 169.254.x.x only comes from a DHCP client that got no answer; fe80:: alone is what
    # every interface gets by itself: a failure only on a host that uses IPv6 otherwise.
    link_local = [a for a in addrs if a.link_local]
    if fa.family == addrfam.V4 and link_local:
        return "ADDR_LINK_LOCAL_ONLY"
    if link_local and fa.in_use and any(not a.tentative for a in link_local):
        return "ADDR_LINK_LOCAL_ONLY"
    return "ADDR_NONE" if fa.in_use else UNUSED


def _part_outcome(families: tuple[int, ...], states: dict[int, str]
                  ) -> tuple[list[int], list[int], list[int]]:
    """(working, failing, unused) families of one part of the flow."""
    working = [f for f in families if states.get(f) == OK]
    failing = [f for f in families if states.get(f) not in (OK, UNUSED, None)]
    unused = [f for f in families if states.get(f) == UNUSED]
    return working, failing, unused


def _combine(flow: addrfam.FlowFamilies, states: dict[int, str],
             unused_code: str) -> tuple[Optional[str], Optional[int], str, list[int]]:
    """What the per-family states amount to for the flow.

    Returns (code, family, part, working): the code of the family that breaks a part (a
    fail), or of one that fails beside a working one (a warning: ``working`` not empty),
    or (None, None, "", working) when every part has a working family. A part whose
    families are all unused needs one anyway: it fails with ``unused_code``.
    """
    warning: Optional[tuple[Optional[str], Optional[int], str, list[int]]] = None
    for part, families in flow.parts():
        working, failing, unused = _part_outcome(families, states)
        if not working:
            fam = (failing or unused or list(families))[0]
            code = states.get(fam)
            return (unused_code if code in (UNUSED, None) else code), fam, part, []
        if failing and warning is None:
            warning = (states[failing[0]], failing[0], part, working)
    if warning is not None:
        return warning
    return None, None, "", [f for f in flow.all if states.get(f) == OK]


def _families_text(families: list[int]) -> str:
    return ", ".join(addrfam.label(f) for f in families)


def _needed_text(part: str, fam: int, resolver: tuple[str, ...], working: list[int]) -> str:
    """Why the family matters, appended to the problem: what carries the flow instead, or
    which name server needs it."""
    if working:
        return " " + _("({working} carries the traffic meanwhile)").format(
            working=_families_text(working))
    if part == "resolver":
        servers = [s for s in resolver if addrfam.family_of(s) == fam]
        return " " + ngettext("(the name server {servers} is {family})",
                              "(the name servers {servers} are {family})",
                              len(servers)).format(servers=", ".join(servers),
                                                   family=addrfam.label(fam))
    return ""


def judge_address(flow: addrfam.FlowFamilies, per: dict[int, FamilyAddresses],
                  resolver: tuple[str, ...] = ()) -> Judged:
    """The address rung: each needed family needs a usable address on its egress interface.

    ``per``: the facts of each family of ``flow.all``; ``resolver``: the name servers'
    addresses, to name them when their family is the one missing.
    """
    states = {f: address_state(fa) for f, fa in per.items()}
    code, fam, part, working = _combine(flow, states, "ADDR_NONE")
    if code is None:
        shown: dict[str, list[str]] = {}
        for f in flow.all:
            fa = per.get(f)
            good = [a for a in fa.addresses if not a.link_local] if fa else []
            good = good or ([a for a in fa.addresses] if fa else [])
            if fa and states.get(f) == OK and good:
                shown.setdefault(fa.ifname, []).append(
                    f"{addrfam.label(f)} {good[0].address}/{good[0].prefixlen}")
        text = "; ".join(_("{ifname} has {addresses}").format(ifname=i, addresses=", ".join(a))
                         for i, a in shown.items())
        unused = [f for f in flow.all if states.get(f) == UNUSED]
        if unused:
            text += " " + _("({family}: not used on this host)").format(
                family=_families_text(unused))
        return Judged(Status.PASS, None, text)
    assert fam is not None
    fa = per[fam]
    status = Status.WARN if working else Status.FAIL
    tail = _needed_text(part, fam, resolver, working)
    if code == "ADDR_DAD_FAILED":
        dup = next(a.address for a in fa.addresses if a.dad_failed)
        return Judged(status, code, _("{address} on {ifname} is a duplicate: another host on the "
                                      "link has it").format(address=dup, ifname=fa.ifname) + tail,
                      fam, dup)
    if code == "ADDR_LINK_LOCAL_ONLY":
        kind = "169.254.0.0/16" if fam == addrfam.V4 else "fe80::/10"
        return Judged(status, code, _("{ifname} has only a link-local address ({prefix}): "
                                      "DHCP/SLAAC got no answer").format(
                                          ifname=fa.ifname, prefix=kind) + tail, fam)
    # Every family of the part missing on one interface: say so in one sentence.
    missing = [f for f in dict(flow.parts()).get(part, ()) if f in per
               and states.get(f) in ("ADDR_NONE", UNUSED) and per[f].ifname == fa.ifname]
    if not working and len(missing) > 1:
        return Judged(status, "ADDR_NONE", _("{ifname} has no {family} or {other} address").format(
            ifname=fa.ifname, family=addrfam.label(missing[0]),
            other=addrfam.label(missing[1])) + tail, fam)
    return Judged(status, "ADDR_NONE", _("{ifname} has no {family} address").format(
        ifname=fa.ifname, family=addrfam.label(fam)) + tail, fam)


@dataclass(frozen=True)
class FamilyRoute:
    """One family's route lookup, and what the tables hold around it."""

    family: int
    lookup: Any  # facts.RouteLookup
    in_use: bool = True
    culprit: Optional[str] = None  # the route that discards the packets, as `ip route` says it
    other_tables: tuple[str, ...] = ()  # default routes in tables no rule led the lookup to
    culprit_rule: Optional[int] = None  # the priority of the policy rule that discards them


def route_state(fr: FamilyRoute) -> str:
    """``ok``, ``unused``, ``error`` or the problem code of one family's lookup."""
    kind = fr.lookup.type
    if kind in ("unicast", "local"):
        return OK
    if kind in ("unreachable", "blackhole", "prohibit") or fr.culprit_rule is not None:
        return "ROUTE_UNREACHABLE"
    if kind == "none":
        return "ROUTE_NO_DEFAULT" if fr.in_use else UNUSED
    return "error"


def route_line(lk: Any) -> str:
    """``ip route get``'s own words for a lookup (an output line: never translated)."""
    via = f"via {lk.gateway} " if lk.gateway else "on-link "
    line = f"{lk.destination} {via}dev {lk.ifname} src {lk.prefsrc}"
    table = getattr(lk, "table", None)
    if table not in (None, 254):
        line += f" table {table}"
    return line


def judge_route(flow: addrfam.FlowFamilies, per: dict[int, FamilyRoute],
                resolver: tuple[str, ...] = ()) -> Judged:
    """The route rung: the kernel's lookup (policy rules followed) for each needed family."""
    states = {f: route_state(fr) for f, fr in per.items()}
    if "error" in states.values() and not any(s == OK for s in states.values()):
        lk = next(fr.lookup for f, fr in per.items() if states[f] == "error")
        return Judged(Status.ERROR, None, _("route lookup failed: {error}").format(
            error=lk.error))
    states = {f: (s if s != "error" else UNUSED) for f, s in states.items()}
    code, fam, part, working = _combine(flow, states, "ROUTE_NO_DEFAULT")
    if code is None:
        lines = [route_line(per[f].lookup) for f in flow.all if states.get(f) == OK]
        return Judged(Status.PASS, None, lines[0] if lines else _("nothing to look a route up "
                                                                    "for"))
    assert fam is not None
    fr = per[fam]
    lk = fr.lookup
    status = Status.WARN if working else Status.FAIL
    tail = _needed_text(part, fam, resolver, working)
    if code == "ROUTE_UNREACHABLE" and fr.culprit_rule is not None:
        return Judged(status, code, _("the policy rule '{rule}' makes {destination} "
                                      "unreachable: the kernel discards the packets before any "
                                      "routing table is looked at").format(
                                          rule=fr.culprit, destination=lk.destination) + tail,
                      fam, f"rule:{fr.culprit_rule}")
    if code == "ROUTE_UNREACHABLE":
        shown = fr.culprit or f"{lk.type} route"
        return Judged(status, code, _("the route to {destination} is '{route}': the kernel "
                                      "discards the packets").format(
                                          destination=lk.destination, route=shown) + tail,
                      fam, shown)
    text = _("no default route and no route to {destination}").format(destination=lk.destination)
    if fr.other_tables:
        text += " " + _("(table {tables} has one, but no rule sends this traffic there)").format(
            tables=", ".join(fr.other_tables))
    return Judged(status, "ROUTE_NO_DEFAULT", text + tail, fam,
                  "other_table" if fr.other_tables else "")


@dataclass(frozen=True)
class GatewayFacts:
    """What the probes of one gateway met, and what else was found when only ARP answered."""

    gateway: str
    ifname: str
    on_link: bool = True
    prefixes: tuple[str, ...] = ()
    ping: str = "timeout"  # icmp.PingResult.state
    probed: bool = False  # our own ARP / neighbour solicitation went out
    wire_mac: Optional[str] = None  # who answered it
    neigh_state: str = "NONE"  # the kernel's neighbour entry
    neigh_mac: Optional[str] = None
    through: Optional[tuple[str, str]] = None  # what answered through it: (role, address)
    input_block: Optional[str] = None  # this host's input rule that drops its replies
    own_conflict: Optional[str] = None  # "ADDRESS (MAC)": another host has our address
    ipsec: Optional[str] = None  # an xfrm policy that swallows the probes
    rp_dropped: int = 0  # packets reverse-path filtering dropped while the probes ran
    rp_strict: tuple[str, ...] = ()  # interfaces with rp_filter=1 (strict)
    # What lies beyond it (the target, a name server) was asked through it and nothing of it
    # answered: a gateway that answers only ARP then forwards nothing either.
    beyond_silent: bool = False
    # A probe of the flow whose TTL runs out at the gateway: True when the gateway answered
    # "time exceeded" (it handles this host's IP packets), False when nothing came, None
    # when not tried.
    ttl_hop: Optional[bool] = None


STATIC_NUD = ("PERMANENT", "NOARP")


def judge_gateway(g: GatewayFacts) -> Judged:
    """The gateway rung: proof that IP goes to the gateway *and comes back*.

    A ping reply, or an answer from anything beyond it (the target, a name server), is
    proof. An ARP / neighbour-solicitation reply alone is only the link: then the reasons
    an IP reply does not come are looked for (a static neighbour entry with another MAC,
    this host's own input chain, another host on this host's address, an IPsec policy).
    """
    v4 = ":" not in g.gateway
    values = {"gateway": g.gateway, "ifname": g.ifname, "mac": g.wire_mac or g.neigh_mac,
              "state": g.neigh_state}
    if g.ping == "reply":
        return Judged(Status.PASS, None, _("gateway {gateway} on {ifname} answers ping").format(
            **values), reason="ping")
    if g.through and g.through[0] == "target":
        return Judged(Status.PASS, None, _("gateway {gateway} on {ifname} forwards to the target "
                                           "(which answers)").format(**values), reason="through")
    if g.through:
        return Judged(Status.PASS, None, _("gateway {gateway} on {ifname} forwards: the name "
                                           "server {server} answers through it").format(
                                               server=g.through[1], **values), reason="through")
    if not g.on_link:
        # No IP comes back from a gateway outside this host's prefixes even when it answers
        # neighbour discovery (IPv6 asks for any address on the link): the router has no
        # route back to a source address that is not on its network.
        text = _("gateway {gateway} is outside every prefix of {ifname} ({prefixes})").format(
            prefixes=", ".join(g.prefixes) or _("no address"), **values)
        if g.wire_mac:
            text += " " + _("(it answers {how} with {mac}, but no IP reply comes back to an "
                            "address outside its network)").format(
                                how="ARP" if v4 else "NDP", **values)
        return Judged(Status.FAIL, "GATEWAY_NOT_ON_LINK", text, reason="not_on_link")
    if g.wire_mac:
        pinned = g.neigh_state in STATIC_NUD and g.neigh_mac and (
            g.neigh_mac.lower() != g.wire_mac.lower())
        if pinned:
            return Judged(Status.FAIL, "GATEWAY_UNREACHABLE", _(
                "the neighbour table pins gateway {gateway} to {pinned} ({state}), but the "
                "gateway answers {how} with {mac}: every frame goes to a MAC address nobody "
                "has").format(pinned=g.neigh_mac, how="ARP" if v4 else "NDP",
                              **values), reason="static_neighbour")
        answers = (_("gateway {gateway} on {ifname} answers ARP ({mac})") if v4
                   else _("gateway {gateway} on {ifname} answers neighbour solicitation "
                          "({mac})")).format(**values)
        if g.input_block:
            return Judged(Status.SKIP, None, answers + ", " + _(
                "but no IP reply gets in: this host's input chain drops it ({rule}); see "
                "transport.input_firewall").format(rule=g.input_block), reason="input_block")
        if g.own_conflict:
            return Judged(Status.SKIP, None, answers + ", " + _(
                "but no IP reply comes back: another host answers ARP for this host's own "
                "address {conflict}, so the replies go there; see "
                "network.address_conflict").format(conflict=g.own_conflict),
                reason="own_conflict")
        if g.ipsec:
            return Judged(Status.SKIP, None, answers + ", " + _(
                "but no IP reply comes back: an IPsec policy takes the traffic ({policy}); see "
                "network.ipsec").format(policy=g.ipsec), reason="ipsec")
        if v4 and g.rp_dropped and g.rp_strict:
            return Judged(Status.FAIL, "GATEWAY_UNREACHABLE", answers + ", " + _(
                "but its replies are dropped by this host's reverse-path filter: {count} "
                "packets failed it while the probes ran (strict rp_filter on {interfaces}): "
                "they come back by another way than they left").format(
                    count=g.rp_dropped, interfaces=", ".join(g.rp_strict)), reason="rp_filter")
        if g.beyond_silent and g.ttl_hop is False:
            # ARP is the link only: not one IP packet comes back from it or through it, and a
            # probe whose TTL runs out there gets no "time exceeded" (a router that only
            # drops ping still sends those). It does not handle this host's IP packets.
            return Judged(Status.FAIL, "GATEWAY_UNREACHABLE", answers + ", " + _(
                "but no IP packet comes back from it or through it: no ping reply, nothing "
                "beyond it answers, and a probe whose TTL runs out there gets no 'time "
                "exceeded'"), reason="link_only_no_ip")
        if g.ttl_hop:
            return Judged(Status.PASS, None, answers + " " + _(
                "and routes this host's packets (a probe whose TTL runs out there gets its "
                "'time exceeded'), but sends no ping reply"), reason="link_only")
        return Judged(Status.PASS, None, answers + " " + _(
            "but sent no IP reply (it drops ping, and nothing answered through it yet)"),
                      reason="link_only")
    if g.probed and g.input_block and not v4:
        return Judged(Status.SKIP, None, _(
            "gateway {gateway} on {ifname}: no neighbour advertisement gets in, this host's "
            "input chain drops it ({rule}); see transport.input_firewall").format(
                rule=g.input_block, **values), reason="input_block")
    if not g.probed and g.neigh_state == "REACHABLE":
        return Judged(Status.PASS, None, _("gateway {gateway} on {ifname} is in the neighbour "
                                           "table as REACHABLE ({mac})").format(**values),
                      reason="cache")
    if not g.probed and g.neigh_state in neighbour.RESOLVED:
        return Judged(Status.PASS, None, _(
            "gateway {gateway} on {ifname} is known on the link ({state}, {mac}) but did not "
            "confirm it (no ping reply; an ARP probe needs root)").format(**values),
                      reason="cache")
    if g.probed:
        why = (_("gateway {gateway} answers neither ARP nor ping on {ifname}") if v4
               else _("gateway {gateway} answers neither neighbour solicitation nor ping on "
                      "{ifname}")).format(**values)
        if g.neigh_state in neighbour.RESOLVED:
            why += " " + _("(the neighbour cache still says {state}, learnt before it "
                           "went)").format(**values)
    else:
        why = _("gateway {gateway} does not answer on {ifname} (neighbour {state})").format(
            **values)
    return Judged(Status.FAIL, "GATEWAY_UNREACHABLE", why, reason="silent")


def judge_gateways(flow: addrfam.FlowFamilies, per: dict[int, Judged]) -> Judged:
    """The gateways of every needed family together: one failing beside a working one
    degrades the flow (a warning naming the family), all failing break it."""
    states = {f: (OK if j.status in (Status.PASS, Status.SKIP) else (j.code or "error"))
              for f, j in per.items()}
    code, fam, _part, working = _combine(flow, states, "GATEWAY_UNREACHABLE")
    if code is None or fam not in per:
        skipped_one = next((j for j in per.values() if j.status is Status.SKIP), None)
        if skipped_one is not None:
            return skipped_one
        return next((per[f] for f in flow.all if f in per), Judged(Status.PASS, None, ""))
    j = per[fam]
    if working:
        return j._replace(status=Status.WARN, family=fam, text=j.text + " " + _(
            "({working} carries the traffic meanwhile)").format(
                working=_families_text(working)))
    return j._replace(family=fam)


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
        if all(_loopback(s) for s in servers):
            # A local stub answers from this host: the path the name needs is its
            # upstreams' (when they are known), not loopback's.
            servers = [addrfam.bare(u) for u in res.config.upstreams]
        # A name the servers answered for (NXDOMAIN, no record) did resolve as far as the
        # path goes: they are reachable, only the name is missing.
        resolved = any(a.rcode is not None for a in res.answers) or res.source == "hosts"
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
    from netcheck.fix import prove

    found: set[int] = set()
    if ctx.target is not None and ctx.target.is_name:
        cfg = (await ctx.resolution()).config
        found |= {addrfam.family_of(a) for a in [*cfg.nameservers, *cfg.upstreams]
                  if not _loopback(addrfam.bare(a))}
    if addrfam.V4 not in found and path.interface and path.ifindex is not None:
        if await ctx.blocking(prove.leases, path.interface, path.ifindex):
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


# -- the rungs -----------------------------------------------------------------------------------

@check("network.address", Layer.NETWORK, requires=("link.carrier",),
       codes=("ADDR_NONE", "ADDR_LINK_LOCAL_ONLY", "ADDR_DAD_FAILED"), path_part="address",
       modes=RECIPROCAL)
async def address(ctx: Context) -> Result:
    """Egress interface has an address.

    Each family the flow needs — the target's, and the name servers' while the name does not
    resolve — needs a usable address on the interface its packets leave by: only
    169.254.x.x / fe80:: means DHCP or SLAAC failed; a duplicate address (DAD failed) is
    unusable. One family failing while the other carries the flow is a warning naming it.
    """
    view = await _l3_view(ctx)
    path = view.path
    if path.ifindex is None or path.interface is None or not view.addresses:
        return skipped(_("no egress interface to look at"))
    judged = judge_address(view.flow, view.addresses, view.resolver)
    evidence: dict[str, Any] = {
        "interface": path.interface,
        "addresses": {addrfam.label(f): [f"{a.address}/{a.prefixlen}" for a in fa.addresses]
                      for f, fa in view.addresses.items()},
        "families": view.flow.to_json(), **_family_evidence(judged.family)}
    if judged.status is Status.PASS:
        return passed(judged.text, **evidence)
    fa = view.addresses[judged.family or addrfam.V4]
    ifname = fa.ifname
    make = failed if judged.status is Status.FAIL else warned
    assert judged.code is not None
    if judged.code == "ADDR_DAD_FAILED":
        dup = judged.reason
        return make(judged.code, judged.text,
                    Hint(_("Find the other host with the same address (arping / ip neigh) and "
                           "give one of them another address."),
                         [hints.usable(f"arping -D -I {ifname} -c 2 {dup}") if ":" not in dup
                          else f"ip -6 neigh show dev {ifname}",
                          f"ip addr del {dup} dev {ifname}"]), **evidence)
    mgr = await _manager(ctx)
    if judged.code == "ADDR_LINK_LOCAL_ONLY":
        return make(judged.code, judged.text,
                    Hint(_("Ask the DHCP server again for an address on {ifname} and check that a "
                           "DHCP server answers on this link.").format(ifname=ifname),
                         hints.get_address(ifname, mgr)), **evidence)
    v6 = judged.family == addrfam.V6
    return make("ADDR_NONE", judged.text,
                Hint(_("Give {ifname} an address: by DHCP, or by hand.").format(ifname=ifname),
                     hints.get_address(ifname, mgr)
                     + [f"ip {'-6 ' if v6 else ''}addr add <address>/<prefix> dev {ifname}"]),
                **evidence)


@check("network.address_conflict", Layer.NETWORK, requires=("link.carrier",),
       codes=("ADDR_DAD_FAILED",), path_part="address")
async def address_conflict(ctx: Context) -> Result:
    """No other host uses this host's address.

    An ARP probe for each IPv4 address of the egress interface, as RFC 5227 (``arping -D``)
    sends it, with sender 0.0.0.0 so nobody's cache learns from it: a machine that answers
    claims the address, and replies meant for this host go there. IPv6 has the kernel's own
    duplicate address detection (``network.address``). Needs root.
    """
    path = await ctx.path()
    link = ctx.facts.link(index=path.ifindex) if path.ifindex is not None else None
    if link is None:
        return skipped(_("no egress interface to look at"))
    mine = [a.address for a in ctx.facts.addrs_of(link.index, addrfam.V4)
            if not a.link_local and not a.dad_failed]
    if not mine:
        return skipped(_("{ifname} has no IPv4 address to probe").format(ifname=link.name))
    if not link.mac or link.mac == "00:00:00:00:00:00" or link.flags & 0x80:  # IFF_NOARP
        return skipped(_("{ifname} does not use ARP").format(ifname=link.name))
    if not ctx.facts.privileged:
        return skipped(_("needs root (or CAP_NET_RAW) to send ARP probes"))
    found = await asyncio.gather(*(_address_claimed(ctx, link.name, link.mac, a) for a in mine))
    evidence = {"interface": link.name, "probed": mine,
                "answers": {a: m for a, m in zip(mine, found) if m}}
    claimed = [(a, m) for a, m in zip(mine, found) if m and m != "error"]
    if not claimed:
        if all(m == "error" for m in found):
            return skipped(_("could not send ARP probes on {ifname}").format(ifname=link.name),
                           **evidence)
        return passed(_("nobody else answers ARP for {addresses} on {ifname}").format(
            addresses=", ".join(mine), ifname=link.name), family=addrfam.IPV4, **evidence)
    addr, mac = claimed[0]
    plen = next((a.prefixlen for a in ctx.facts.addrs_of(link.index) if a.address == addr), 32)
    return failed("ADDR_DAD_FAILED",
                  _("another host ({mac}) answers ARP for {address}, this host's own address on "
                    "{ifname}: the address is a duplicate").format(
                        mac=mac, address=addr, ifname=link.name),
                  Hint(_("Two machines have {address}: replies meant for this host go to the "
                         "other one ({mac}). Find it (its MAC address, the switch's MAC table) "
                         "and give one of them another address.").format(address=addr, mac=mac),
                       [hints.usable(f"arping -D -I {link.name} -c 2 {addr}"),
                        f"ip neigh show dev {link.name}",
                        f"ip addr del {addr}/{plen} dev {link.name}"]),
                  family=addrfam.IPV4, **evidence)


def _address_claimed(ctx: Context, ifname: str, mac: str, address: str) -> asyncio.Task[str]:
    """The run's one ARP probe for this host's own address: the MAC of another host that
    claims it, "" when nobody does, "error" when it could not be sent."""
    async def probe() -> str:
        # RFC 5227 waits a second before *using* an address; a host on the link that holds it
        # answers the probe in milliseconds, and every healthy run would wait out that second.
        wait = max(0.2, min(ctx.timeout / 4, 0.3))
        try:
            found = await ctx.blocking(neighbour.arp_conflict_probe, ifname, mac, address, wait)
        except (OSError, ValueError):
            return "error"
        return found or ""

    return ctx.memo(("arp-conflict", ifname, address), probe)


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
    path = view.path
    if not view.routes:
        return skipped(_("nothing to look a route up for"))
    # A family whose address already failed was judged there: not twice.
    addr_ok = view.address_states
    per = {f: fr for f, fr in view.routes.items() if addr_ok.get(f, OK) in (OK, UNUSED)}
    flow = addrfam.FlowFamilies(
        tuple(f for f in view.flow.target if f in per) or view.flow.target,
        tuple(f for f in view.flow.resolver if f in per))
    per = per or view.routes
    judged = judge_route(flow, per, view.resolver)
    evidence: dict[str, Any] = {"path": path.to_json(), **_family_evidence(judged.family)}
    defaults = [_default_text(ctx, r) for f in flow.all for r in ctx.facts.defaults(f, None)]
    if defaults:  # which one the lookup took, and which it did not, as `ip route` says
        evidence["defaults"] = defaults
    if judged.status is Status.PASS:
        return passed(judged.text, **evidence)
    if judged.status is Status.ERROR:
        return Result(Status.ERROR, judged.text, evidence=evidence)
    assert judged.family is not None and judged.code is not None
    fr = per[judged.family]
    lk = fr.lookup
    make = failed if judged.status is Status.FAIL else warned
    ifname, _ifindex = _egress_of(ctx, path, lk)
    ifname = ifname or "<interface>"
    v6 = judged.family == addrfam.V6
    if judged.code == "ROUTE_UNREACHABLE" and judged.reason.startswith("rule:"):
        ip = f"ip {'-6 ' if v6 else ''}"
        return make(judged.code, judged.text,
                    Hint(_("Remove the policy rule that throws the traffic away (a lockdown "
                           "or VPN script may have left it)."),
                         [f"{ip}rule show", f"{ip}rule del pref {judged.reason[5:]}",
                          f"ip route get {lk.destination}"]), rule=fr.culprit, **evidence)
    if judged.code == "ROUTE_UNREACHABLE":
        shown = judged.reason
        return make(judged.code, judged.text,
                    Hint(_("Remove the route that throws the traffic away."),
                         [f"ip {'-6 ' if v6 else ''}route del {shown}",
                          f"ip route get {lk.destination}"]), route=shown, **evidence)
    if judged.reason == "other_table":
        rules = [r.text() for r in ctx.facts.rules_of(judged.family)]
        return make(judged.code, judged.text,
                    Hint(_("A default route exists in table {tables}, but no policy rule sends "
                           "this traffic there: check the rules (a VPN client that went down "
                           "may have left them half removed).").format(
                               tables=", ".join(fr.other_tables)),
                         [f"ip {'-6 ' if v6 else ''}rule show",
                          f"ip {'-6 ' if v6 else ''}route show table {fr.other_tables[0]}",
                          f"ip route get {lk.destination}"]), rules=rules, **evidence)
    mgr = await _manager(ctx)
    router = (await _router_on_link(ctx, ifname, judged.family)
              if ctx.facts.link(name=ifname) is not None else None)
    known = _routes_text(ctx, judged.family)
    text = _("The kernel has no route to {destination}: its {family} routing table holds "
             "only {routes}, and no default route (the default gateway, the router that "
             "takes everything beyond the local networks).").format(
                 destination=lk.destination, family=addrfam.label(judged.family),
                 routes="; ".join(known) if known else _("no route at all"))
    if router is not None:
        text += " " + _("Add a default route through {gateway}; the next run checks that it "
                        "answers (Gateway answers on the link).").format(gateway=router.address)
        cmds = ["# " + _router_note(router, ifname),
                *hints.default_route(router.address, ifname, mgr, add=True)]
    else:
        text += " " + _("No router answered on {ifname}'s link: ask the network's "
                        "administrator which address the gateway has.").format(ifname=ifname)
        cmds = [f"ip {'-6 ' if v6 else ''}route add default via <gateway> dev {ifname}"]
    return make("ROUTE_NO_DEFAULT", judged.text,
                Hint(text, [*cmds, f"ip {'-6 ' if v6 else ''}route"]), **evidence)


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
    found = [(a, port) for a in addrfam.of_family(await ctx.addresses(), family)][:2]
    if not found and ctx.target.is_name:
        cfg = await ctx.blocking(dns.parse_resolv_conf, ctx.options.resolv_conf)
        found = [(addrfam.bare(a), 53) for a in cfg.nameservers
                 if addrfam.family_of(a) == family and not _loopback(a)][:2]
    return found


def _router_note(router: Router, ifname: str) -> str:
    """The comment that says how netcheck found the router it names."""
    if router.proven:
        return _("{router} answers on {ifname}'s link and forwards this flow's packets "
                 "({source})").format(router=router.address, ifname=ifname,
                                      source=router.source)
    return _("{router} answers on {ifname}'s link ({source}); that it routes is not "
             "proven").format(router=router.address, ifname=ifname, source=router.source)


def _xfrm(ctx: Context) -> asyncio.Task[Any]:
    """The run's one reading of the xfrm policies and SAs (None without CAP_NET_ADMIN)."""
    async def read() -> Any:
        from netcheck.probes import firewall, xfrm

        if not firewall.has_cap_net_admin():
            return None
        return await ctx.blocking(xfrm.read, max(0.5, min(2.0, ctx.timeout)))

    return ctx.memo_shared(("xfrm", "read"), read)


_PROTO_NUMBERS = {"tcp": 6, "udp": 17}


def _flows_of(ctx: Context, view: L3View) -> list[tuple[int, str, str, int, Any]]:
    """(family, protocol, destination, port, lookup) of what the run sends for the flow."""
    assert ctx.target is not None
    proto = "udp" if ctx.target.scheme == "dns" else "tcp"
    flows = []
    if view.path.basis == "target":
        for lk in view.path.lookups[:8]:
            flows.append((addrfam.family_of(lk.destination), proto, lk.destination,
                          ctx.target.port, lk))
    for server in view.resolver:
        lk = next((x for x in view.path.lookups if x.destination == server), None)
        flows.append((addrfam.family_of(server), "udp", server, 53, lk))
    return flows


async def _name_server_ipsec(ctx: Context, found: Any, judged: list[Any],
                             evidence: dict[str, Any]) -> tuple[Optional[str], Optional[int],
                                                                list[int]]:
    """(code, family, working families) of the name servers' flows (resolv.conf's beyond
    this host, a local stub's upstreams) when every server of one family is cut off by a
    policy and another family's server is not; (None, None, []) otherwise."""
    from netcheck.probes import xfrm

    cfg = (await ctx.resolution()).config
    servers = [addrfam.bare(a) for a in dict.fromkeys([*cfg.nameservers, *cfg.upstreams])
               if not _loopback(addrfam.bare(a))]
    if not servers:
        return None, None, []
    lookups = await _route_lookups(ctx, servers)
    per: dict[int, list[Any]] = {}
    for server in servers:
        lk = lookups.get(server)
        v = xfrm.judge(found, lk.prefsrc if lk else None, server, _PROTO_NUMBERS["udp"], 53,
                       lk.oif if lk and lk.oif else 0)
        fam = addrfam.family_of(server)
        per.setdefault(fam, []).append(v)
        judged.append((fam, "udp", server, 53, v))
        evidence["flows"].append({"flow": f"udp {server} port 53", **v.to_json()})
    cut = [f for f, vs in per.items() if all(v.outcome in ("block", "no_sa") for v in vs)]
    working = [f for f in per if f not in cut]
    if not cut or not working:
        return None, None, []  # all cut off: dns.servers says so, with what the queries met
    first = next(v for v in per[cut[0]] if v.outcome in ("block", "no_sa"))
    return ("IPSEC_POLICY_BLOCK" if first.outcome == "block" else "IPSEC_NO_SA"), cut[0], working


@check("network.ipsec", Layer.NETWORK, requires=("network.route",),
       codes=("IPSEC_NO_SA", "IPSEC_POLICY_BLOCK"))
async def ipsec(ctx: Context) -> Result:
    """IPsec policies let the traffic out.

    The kernel's xfrm policies (``ip xfrm policy``, read over netlink) are matched against
    each flow the run sends (to the target's addresses and port; to the name servers while
    the name does not resolve), direction out, as the kernel matches them: a covering policy
    with ``action block`` discards the flow; one with a template sends it only through a
    security association (``ip xfrm state``), and without one — the tunnel never came up —
    the packets vanish. Needs root (CAP_NET_ADMIN) to read them.
    """
    from netcheck.probes import xfrm

    if ctx.target is None:
        return skipped(_("no target"))
    view = await _l3_view(ctx)
    found = await _xfrm(ctx)
    if found is None:
        return skipped(_("needs root (CAP_NET_ADMIN) to read the IPsec policies"))
    if not found.readable:
        return skipped(_("cannot read the IPsec policies: {error}").format(error=found.error))
    if not any(p.direction == "out" for p in found.policies):
        return passed(_("no IPsec policy on this host"), policies=0)
    judged = []
    for fam, proto, dst, port, lk in _flows_of(ctx, view):
        verdict = xfrm.judge(found, lk.prefsrc if lk else None, dst, _PROTO_NUMBERS[proto],
                             port, lk.oif if lk and lk.oif else 0)
        judged.append((fam, proto, dst, port, verdict))
    evidence: dict[str, Any] = {
        "policies": len(found.policies), "states": len(found.states),
        "flows": [{"flow": f"{proto} {dst} port {port}", **v.to_json()}
                  for _f, proto, dst, port, v in judged]}
    states: dict[int, str] = {}
    for fam in view.flow.all:
        mine = [v for f, _p, _d, _port, v in judged if f == fam]
        bad = [v for v in mine if v.outcome in ("block", "no_sa")]
        states[fam] = (OK if not mine or len(bad) < len(mine) else
                       "IPSEC_POLICY_BLOCK" if bad[0].outcome == "block" else "IPSEC_NO_SA")
    code, fam, _part, working = _combine(view.flow, states, "IPSEC_NO_SA")
    if code is None and ctx.target.is_name and not view.resolver:
        # The name resolved, but the host still asks its name servers for every name: one
        # family's servers cut off while the other's answer is that family lost.
        code, fam, working = await _name_server_ipsec(ctx, found, judged, evidence)
    if code is None:
        protected = [(d, v) for _f, _p, d, _port, v in judged if v.outcome == "protected"]
        if protected:
            dst, v = protected[0]
            return passed(_("the traffic to {address} goes through IPsec ({sa})").format(
                address=dst, sa=v.sa.text() if v.sa else v.policy.text()), **evidence)
        return passed(_("no IPsec policy covers the traffic to {addresses}").format(
            addresses=", ".join(d for _f, _p, d, _port, _v in judged) or "-"), **evidence)
    fam_, proto, dst, port, v = next(x for x in judged if x[0] == fam
                                     and x[4].outcome in ("block", "no_sa"))
    assert v.policy is not None
    flow = _("{protocol} port {port} to {address}").format(protocol=proto, port=port,
                                                           address=dst)
    make = warned if working else failed
    evidence["family"] = addrfam.name(fam_)
    delete = f"ip xfrm policy delete {v.policy.selector.text()} dir out"
    if code == "IPSEC_POLICY_BLOCK":
        return make(code, _("an IPsec policy blocks {flow}: {policy}").format(
            flow=flow, policy=v.policy.text()),
                    Hint(_("The kernel discards this traffic before it leaves: an xfrm policy "
                           "with action block covers it. Delete the policy if it is not "
                           "wanted (or narrow its selector)."),
                         ["ip xfrm policy", delete]), **evidence)
    peer = v.missing.daddr if v.missing is not None else dst
    tools = [c for c, tool in (("swanctl --list-sas", "swanctl"), ("ipsec statusall", "ipsec"))
             if shutil.which(tool)]
    return make(code, _("{flow} must go through IPsec ({policy}), but there is no security "
                        "association for it: the tunnel to {peer} is not up").format(
                            flow=flow, policy=v.policy.text(), peer=peer),
                Hint(_("The traffic to {address} may only leave through an IPsec tunnel, and "
                       "the tunnel never came up (or went down): the kernel drops the packets "
                       "silently. Bring the tunnel up with the IKE daemon and check that IKE "
                       "(UDP 500 and 4500) reaches {peer}; remove the policy if the tunnel is "
                       "no longer wanted.").format(address=dst, peer=peer),
                     ["ip xfrm state", "ip xfrm policy", *tools, delete]), **evidence)


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
    path = view.path
    addr_ok, route_ok = view.address_states, view.route_states
    fams = [f for f in view.flow.all if route_ok.get(f) == OK and addr_ok.get(f, OK) == OK]
    hops = {}
    for fam in fams:
        lk = view.routes[fam].lookup
        ifname, ifindex = _egress_of(ctx, path, lk)
        if lk.gateway and ifindex is not None:
            hops[fam] = (lk.gateway, ifname or "", ifindex, lk.prefsrc)
    if not hops:
        return passed(_("no gateway needed: the target is on the link of {ifname}").format(
            ifname=path.interface), path=path.to_json())
    probed = await asyncio.gather(*(_probe_gateway(ctx, fam, *hop) for fam, hop in hops.items()))
    facts = {fam: g for fam, (g, _ev) in zip(hops, probed)}
    per = {fam: judge_gateway(g) for fam, g in facts.items()}
    flow = addrfam.FlowFamilies(tuple(f for f in view.flow.target if f in per),
                                tuple(f for f in view.flow.resolver if f in per))
    judged = judge_gateways(flow, per)
    fam = judged.family if judged.family in facts else next(
        (f for f in facts if per[f] == judged), next(iter(facts)))
    g = facts[fam]
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
    gw, ifname = g.gateway, g.ifname
    if judged.reason == "rp_filter":
        return make(judged.code, judged.text,
                    Hint(_("The replies come back through another interface than the one the "
                           "packets left by (asymmetric routing: a second uplink, a router "
                           "sending the return traffic another way), and strict reverse-path "
                           "filtering drops them. Make the return path the same, or filter "
                           "loosely (rp_filter=2)."),
                         # the larger of all's and the interface's value counts: 2 on each
                         ["nstat -az TcpExtIPReversePathFilter",
                          *(f"sysctl -w net.ipv4.conf.{i}.rp_filter=2" for i in g.rp_strict)]),
                    **evidence)
    if judged.reason == "static_neighbour":
        return make(judged.code, judged.text,
                    Hint(_("The neighbour table holds a static entry for {gateway} with "
                           "{pinned}, but the gateway's MAC address is {mac}: frames go nowhere. "
                           "Delete the entry so ARP finds the gateway again (or correct "
                           "it).").format(gateway=gw, pinned=g.neigh_mac, mac=g.wire_mac),
                         [f"ip neigh del {gw} dev {ifname}",
                          f"ip neigh replace {gw} lladdr {g.wire_mac} dev {ifname} nud reachable",
                          f"ip neigh show dev {ifname}"]), **evidence)
    mgr = await _manager(ctx)
    v6 = ":" in gw
    ip = f"ip {'-6 ' if v6 else ''}"
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
    if judged.reason == "not_on_link":
        return make(judged.code, judged.text,
                    Hint(_("The gateway {gateway} is outside every network of {ifname} "
                           "({prefixes}): the kernel can only hand packets to a neighbour on "
                           "the link, so the default route must name an address of {ifname}'s "
                           "network (or the interface's address/prefix is wrong).").format(
                               gateway=gw, ifname=ifname,
                               prefixes=", ".join(g.prefixes) or _("none")) + then,
                         [f"{ip}route del default via {gw}", *fix]), **evidence)
    return make(judged.code, judged.text,
                Hint(_("The kernel asks on {ifname} who has {gateway} (ARP, neighbour "
                       "discovery) and nobody answers: every packet for beyond the link waits "
                       "for that answer and is dropped. The gateway address in the route is "
                       "wrong, or the router is down.").format(gateway=gw, ifname=ifname)
                + then,
                     [f"{ip}neigh show dev {ifname}", f"ping -c 3 {gw}", *fix]),
                **evidence)


async def _probe_gateway(ctx: Context, fam: int, gw: str, ifname: str, ifindex: int,
                         src: Optional[str]) -> tuple[GatewayFacts, dict[str, Any]]:
    """Ping, ARP / NDP from our own socket and the kernel's neighbour entry, at once; then,
    when only the link answered, what keeps the IP replies away."""
    gw_ip = ipaddress.ip_address(gw)
    prefixes = [a.network for a in ctx.facts.addrs_of(ifindex)]
    on_link = gw_ip.is_link_local or any(gw_ip in p for p in prefixes)
    link = ctx.facts.link(index=ifindex)
    # What answers through the gateway (the target, a name server) is proof too, and the
    # target's probes start now: nobody waits twice.
    through_t = asyncio.ensure_future(_answered_through(ctx, fam, gw))
    ping_t = shared.ping(ctx, gw)
    wire_t = ctx.blocking(neighbour.probe_on_wire, ifname, ifindex,
                          link.mac if link else None, src, gw, ctx.timeout)
    neigh_t = ctx.blocking(neighbour.resolve, gw, ifindex, ctx.timeout)
    rp_before = _rp_filter_drops(ctx)
    pending: set[asyncio.Future[Any]] = {ping_t, wire_t, neigh_t, through_t}
    while pending:  # stop at the first proof of IP both ways instead of every timeout
        _done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        if (ping_t.done() and ping_t.result().state == "reply") or (
                through_t.done() and through_t.result()[0]):
            break
    ping_res = ping_t.result() if ping_t.done() else icmp.PingResult(gw, "not waited for")
    probed, mac = wire_t.result() if wire_t.done() else (True, None)
    neigh = neigh_t.result() if neigh_t.done() else neighbour.NeighbourResult(
        gw, ifindex, "not waited for")
    through, asked = through_t.result() if through_t.done() else (None, False)
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
                         beyond_silent=asked and through_t.done() and not through)
    if mac and ping_res.state != "reply" and not through:
        # Only the link answered: look for what swallows the IP replies, and whether the
        # gateway handles this host's packets at all (its "time exceeded").
        rp_after = _rp_filter_drops(ctx)
        input_block, conflict, policy, ttl_hop = await asyncio.gather(
            _input_drops_reply(ctx, gw, src, ifname),
            _own_address_claimed(ctx, fam, ifname, link.mac if link else None, src),
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
    elif probed and not mac and ":" in gw and ping_res.state != "reply" and not through:
        # IPv6 neighbour discovery is ICMPv6 and goes through the input chains, untracked.
        advert = await _input_drops_reply(ctx, gw, src, ifname, advert=True)
        if advert:
            facts = dataclasses.replace(facts, input_block=advert)
            evidence["input_block"] = advert
    return facts, evidence


def _rp_filter_drops(ctx: Context) -> Optional[int]:
    """The kernel's count of IPv4 packets reverse-path filtering dropped (TcpExt
    IPReversePathFilter in /proc/net/netstat, this namespace's), or None."""
    text = ctx.facts.read_sys("proc", "net", "netstat") or ""
    lines = [line.split() for line in text.splitlines()]
    for names, values in zip(lines, lines[1:]):
        if names and names[0] == "TcpExt:" and values and values[0] == "TcpExt:" \
                and "IPReversePathFilter" in names:
            i = names.index("IPReversePathFilter")
            return int(values[i]) if i < len(values) and values[i].isdigit() else None
    return None


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
    answers "time exceeded" even when it drops ping to itself. True / False, or None when
    no probe could be sent."""
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
    if not done:
        return None
    return any(p.state == "hop" for p in done)


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


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


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
        bad = [r for r in records if r.asked and r.state != "ok"]
        good = {addrfam.family_of(r.server) for r in records if r.state == "ok"}
        lost = {addrfam.family_of(r.server) for r in bad}
        if len(lost) == 1 and not lost & good:  # one family's servers fail, the other's work
            evidence["family"] = addrfam.name(lost.pop())
        result = warned(code, text, _servers_hint(ctx, res, code, bad[0], [], None),
                        **evidence)
        # What breaks its family's path, or loses its datagrams, explains a silent one
        # (runner.explained_by).
        result.unanswered = tuple(r.server for r in bad if r.state == "DNS_RESOLVER_UNREACHABLE")
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
    stub_is_culprit = stub and (any(r.state == "ok" for r in upstreams) or not upstreams)
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


def first_server_wait_ms(res: dns.Resolution, server: str) -> float:
    """How long the system resolver waits for a failing ``server`` before it asks the next:
    resolv.conf's timeout when it stays silent, else the time its error took to come."""
    mine = [a for a in res.answers if a.server == server and not a.answered]
    if any(a.error == "timeout" for a in mine):
        return res.config.timeout * 1000.0
    return max((a.rtt_ms or 0.0 for a in mine), default=0.0)


def judge_resolution(res: dns.Resolution, families: tuple[int, ...]
                     ) -> tuple[Status, Optional[str], str]:
    """dns.resolution's judgement: the recorded resolution in, ``(status, code, text)`` out."""
    name = res.name
    if res.source == "hosts" and res.addresses:
        return Status.PASS, None, _("{name} -> {addresses} (from the hosts file)").format(
            name=name, addresses=", ".join(res.addresses))
    if res.fqdn is None:
        if any(a.rcode == "NXDOMAIN" for a in res.answers):
            tried = [t for t in res.tried if t != name]
            text = _("{name} does not exist (NXDOMAIN)").format(name=name)
            if tried:
                text += " " + _("(also tried {names} from the search list)").format(
                    names=", ".join(tried))
            return Status.FAIL, "DNS_NXDOMAIN", text
        return Status.SKIP, None, _("no server gave an answer")
    if not res.addresses:
        types = "/".join(t for f, t in ((socket.AF_INET, "A"), (socket.AF_INET6, "AAAA"))
                         if f in families)
        return Status.FAIL, "DNS_NO_ADDRESS", _("{name} exists but has no {types} "
                                                "record").format(name=res.fqdn, types=types)
    chain = next((a.cnames for a in res.answers if a.cnames), [])
    values = {"name": res.fqdn, "addresses": ", ".join(res.addresses),
              "ms": f"{res.duration_ms:.0f}", "chain": " -> ".join(c[1] for c in chain)}
    summary = (_("{name} via {chain} -> {addresses} in {ms} ms") if chain
               else _("{name} -> {addresses} in {ms} ms")).format(**values)
    if res.fqdn != name:
        summary += " " + _("(through the search list)")
    verdicts = _server_verdicts(res)
    first = res.config.nameservers[0] if res.config.nameservers else None
    if first and verdicts.get(first, "ok") != "ok" and not res.config.rotate:
        # The system resolver asks the servers in order and moves on when the first one
        # fails: at once for an error (an ICMP error, no route, REFUSED, SERVFAIL), only
        # after resolv.conf's timeout (5 s by default) for silence.
        record = ServerRecord.of(first, res.answers)
        wait_ms = first_server_wait_ms(res, first)
        answering = next((s for s in res.config.nameservers if verdicts.get(s) == "ok"), None)
        values = {"summary": summary, "server": first, "problem": record.problem,
                  "next": answering or _("the next server")}
        if wait_ms > SLOW_DNS_MS:
            return Status.WARN, "DNS_SLOW", _(
                "{summary}, but only after the first name server {server} fails "
                "({problem}): every lookup waits {seconds} s for it before asking "
                "{next}").format(seconds=f"{wait_ms / 1000:.3g}", **values) + (" " + _(
                    "(resolv.conf's timeout)") if "timeout" in record.errors else "")
        summary += " " + _("(the first name server {server} fails at once ({problem}): the "
                           "resolver moves on to {next} without waiting)").format(**values)
    if res.duration_ms > res.config.timeout * 1000:
        return Status.WARN, "DNS_SLOW", _(
            "{summary}: slower than resolv.conf's timeout of {timeout} s, so the system "
            "resolver gives up before the answer comes").format(
                summary=summary, timeout=res.config.timeout)
    if res.duration_ms > SLOW_DNS_MS:
        return Status.WARN, "DNS_SLOW", _("{summary} (slow: over {limit} ms)").format(
            summary=summary, limit=f"{SLOW_DNS_MS:.0f}")
    return Status.PASS, None, summary


@check("dns.resolution", Layer.NETWORK, applies=_name_target, requires=("dns.servers",),
       codes=("DNS_NXDOMAIN", "DNS_NO_ADDRESS", "DNS_SLOW"))
async def dns_resolution(ctx: Context) -> Result:
    """Name resolves to an address.

    The name (through resolv.conf's search list and ndots, as the system resolver builds
    it) must exist and have an address of the family asked for (A / AAAA), and the answer
    should come quickly. The CNAME chain is shown as ``dig`` shows it.
    """
    shared.path_bursts(ctx)  # the path is known once the name is: start measuring it
    res = await ctx.resolution()
    chain = next((a.cnames for a in res.answers if a.cnames), [])
    evidence = {"resolution": res.to_json(), "cname_chain": chain}
    status, code, text = judge_resolution(res, ctx.families)
    if code is None:
        return Result(status, text, evidence=evidence)
    first = res.config.nameservers[0] if res.config.nameservers else None
    silent_first = (code == "DNS_SLOW" and first is not None and
                    _server_verdicts(res).get(first) == "DNS_RESOLVER_UNREACHABLE")
    fqdn = res.fqdn or res.name
    if code == "DNS_NXDOMAIN":
        hint = Hint(_("Check the spelling of the name; if it is right, the domain's DNS lacks "
                      "the record."),
                    [hints.dig(fqdn), hints.dig(fqdn, None, "SOA"), "grep search /etc/resolv.conf"])
    elif code == "DNS_NO_ADDRESS":
        hint = Hint(_("The name exists but has no address of the family needed: use another "
                      "name, the other address family, or add the record."),
                    [hints.dig(fqdn, None, "A"), hints.dig(fqdn, None, "AAAA"),
                     hints.dig(fqdn, None, "ANY")])
    elif _server_verdicts(res).get(res.config.nameservers[0], "ok") != "ok":
        first = res.config.nameservers[0]
        hint = Hint(_("Remove or fix {server} in resolv.conf so the working server is asked "
                      "first.").format(server=first),
                    ["cat /etc/resolv.conf", hints.dig(res.name, first)])
    else:
        hint = Hint(_("Resolution works but is slow: the resolver or its upstream is "
                      "overloaded or far away; every new connection waits for it."),
                    [hints.dig(fqdn), "cat /etc/resolv.conf"])
    result = Result(status, text, code=code, hint=hint, evidence=evidence)
    if silent_first:
        assert first is not None
        # The wait rests on that server's silence: what breaks its family's path explains
        # it (runner.explained_by).
        result.unanswered = (first,)
    return result


@check("dns.hosts_file", Layer.NETWORK, applies=_name_target, requires=("dns.config",),
       codes=("DNS_HOSTS_OVERRIDE",))
async def hosts_file(ctx: Context) -> Result:
    """Hosts file agrees with DNS.

    ``/etc/hosts`` is read before DNS (nsswitch.conf's usual ``hosts: files dns``): an old
    entry there sends the connection to an address DNS no longer gives.
    """
    res = await ctx.resolution()
    evidence = {"file": ctx.options.hosts_file, "hosts": res.hosts_addresses,
                "dns": res.dns_addresses}
    values = {"file": ctx.options.hosts_file, "name": res.name,
              "addresses": ", ".join(res.hosts_addresses), "dns": ", ".join(res.dns_addresses)}
    if not res.hosts_addresses:
        return passed(_("{name} is not in {file}").format(**values), **evidence)
    if res.source == "dns" and res.nss is not None and not res.nss.files_first:
        # nsswitch.conf asks DNS before the hosts file: the line there is never used.
        return passed(_("{file} maps {name} to {addresses}, but nsswitch.conf asks DNS first "
                        "(DNS says {dns})").format(**values), **evidence)
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


# -- loss and latency on the path ------------------------------------------------------

# 3 of 30 echo round trips lost is more than chance on a healthy path; 1 of 30 is not.
LOSS_WARN_PCT = 10.0
# Above this share of packets lost each way (the round trips back below 25 %), the path is
# down for practical purposes: TCP backs off for seconds at a time. A failure needs the
# numbers to show it with 95 % confidence (Wilson's interval), not one unlucky burst.
LOSS_FAIL_ONE_WAY = 0.5
CONFIDENCE_Z = 1.96
LINK_RTT_MS = 100.0  # a LAN or Wi-Fi gateway answers far faster than this when healthy
JITTER_MS = 30.0  # a round-trip spread (ping's mdev) beyond this hurts voice and video
JITTER_RATIO = 5.0  # ... and it counts beyond the gateway only if that much worse than to it
TARGET_RTT_MS = 400.0  # beyond the farthest continents by fibre: queues, satellites, loops
MIN_SAMPLES = 5  # fewer answered probes say nothing about jitter


@dataclass(frozen=True)
class PathSample:
    """What a burst of echo requests to one address measured (recorded facts)."""

    address: str
    role: str  # gateway | target
    sent: int
    received: int
    rtt_min_ms: Optional[float] = None
    rtt_avg_ms: Optional[float] = None
    rtt_max_ms: Optional[float] = None
    rtt_mdev_ms: Optional[float] = None
    rtt_median_ms: Optional[float] = None
    jitter_ms: Optional[float] = None  # median change between consecutive round trips

    @classmethod
    def of(cls, address: str, role: str, stats: dict[str, Any]) -> PathSample:
        """From :func:`icmp.burst_stats` (or a burst's ``to_json()``)."""
        return cls(address, role, int(stats.get("sent") or 0), int(stats.get("received") or 0),
                   stats.get("rtt_min_ms"), stats.get("rtt_avg_ms"), stats.get("rtt_max_ms"),
                   stats.get("rtt_mdev_ms"), stats.get("rtt_median_ms"), stats.get("jitter_ms"))

    @property
    def typical_ms(self) -> float:
        """The usual round trip: the median (a few slow replies do not make a path slow)."""
        return (self.rtt_median_ms if self.rtt_median_ms is not None else self.rtt_avg_ms) or 0.0

    @property
    def spread_ms(self) -> float:
        """How much round trips swing from one to the next (mdev when not measured)."""
        return (self.jitter_ms if self.jitter_ms is not None else self.rtt_mdev_ms) or 0.0

    @property
    def loss_pct(self) -> float:
        return 100.0 * (self.sent - self.received) / self.sent if self.sent else 0.0

    @property
    def lossy(self) -> bool:
        """Some answers back, and more lost than chance explains."""
        return self.sent >= MIN_SAMPLES and self.received > 0 and self.loss_pct >= LOSS_WARN_PCT

    @property
    def surely_down(self) -> bool:
        """Even the most the round trips could succeed (upper bound of Wilson's 95 % interval)
        means more than LOSS_FAIL_ONE_WAY of the packets lost each way."""
        if not self.sent:
            return False
        n, z = self.sent, CONFIDENCE_Z
        p = self.received / n
        upper = (p + z * z / (2 * n) + z * ((p * (1 - p) + z * z / (4 * n)) / n) ** 0.5) / (
            1 + z * z / n)
        return upper < (1.0 - LOSS_FAIL_ONE_WAY) ** 2

    @property
    def one_way_loss(self) -> float:
        """The share of packets lost each way if loss is the same both ways (an echo round
        trip needs two packets to pass)."""
        return 1.0 - (self.received / self.sent) ** 0.5 if self.sent else 0.0

    def numbers(self) -> str:
        """``13 of 20 lost (65 %), RTT min/avg/max/mdev 0.1/0.2/0.4/0.1 ms``."""
        text = _("{lost} of {sent} lost ({loss} %)").format(
            lost=self.sent - self.received, sent=self.sent, loss=f"{self.loss_pct:.0f}")
        if self.rtt_avg_ms is not None:
            text += ", RTT min/avg/max/mdev " + "/".join(
                f"{v:.1f}" for v in (self.rtt_min_ms, self.rtt_avg_ms, self.rtt_max_ms,
                                     self.rtt_mdev_ms or 0.0)) + " ms"
        return text


def judge_path(gateway: Optional[PathSample], target: Optional[PathSample]
               ) -> Optional[tuple[Status, str, str, str]]:
    """Loss and latency on the way: bursts to the gateway and the target in,
    ``(status, code, text, where)`` out — None when nothing is wrong or measurable.

    ``where`` is ``link`` (already to the gateway), ``beyond`` (the gateway is clean, the
    target is not) or ``target`` (no gateway measured). Loss comes first: a lossy path is
    also a slow one.
    """
    for s in (gateway, target):
        if s is None or not s.lossy:
            continue
        where = ("link" if s.role == "gateway"
                 else "beyond" if gateway is not None and gateway.received else "target")
        down = any(x is not None and x.lossy and x.surely_down for x in (gateway, target))
        status = Status.FAIL if down else Status.WARN
        each_way = f"{100 * s.one_way_loss:.0f}"
        if where == "link":
            text = _("packets are lost between this host and its gateway {gateway}: {numbers} "
                     "(about {each} % each way)").format(gateway=s.address,
                                                         numbers=s.numbers(), each=each_way)
        elif where == "beyond":
            assert gateway is not None
            text = _("packets are lost beyond the gateway {gateway} (none lost to it): to "
                     "{target} {numbers} (about {each} % each way)").format(
                         gateway=gateway.address, target=s.address, numbers=s.numbers(),
                         each=each_way)
        else:
            text = _("packets to {target} are lost: {numbers} (about {each} % each way)").format(
                target=s.address, numbers=s.numbers(), each=each_way)
        return status, "PATH_LOSS", text, where
    # Typical values, not averages: a busy CPU on this host delays a few replies by tens of
    # milliseconds, which is no fault of the path (and no reason to warn on a healthy one).
    if gateway is not None and gateway.received >= MIN_SAMPLES and (
            gateway.typical_ms >= LINK_RTT_MS or gateway.spread_ms >= JITTER_MS):
        return Status.WARN, "PATH_LATENCY", _(
            "round trips to the gateway {gateway} are slow or uneven for a local link: "
            "{numbers}").format(gateway=gateway.address, numbers=gateway.numbers()), "link"
    if target is None or target.received < MIN_SAMPLES:
        return None
    base_jitter = max(gateway.spread_ms, 1.0) if gateway and gateway.received else 1.0
    jitter = target.spread_ms
    if target.typical_ms >= TARGET_RTT_MS or (
            jitter >= JITTER_MS and jitter >= JITTER_RATIO * base_jitter):
        where = "beyond" if gateway is not None and gateway.received else "target"
        base = (_(" (to the gateway {gateway}: RTT avg {avg} ms, mdev {mdev} ms)").format(
            gateway=gateway.address, avg=f"{gateway.rtt_avg_ms or 0:.1f}",
            mdev=f"{gateway.rtt_mdev_ms or 0:.1f}") if where == "beyond" and gateway else "")
        return Status.WARN, "PATH_LATENCY", _(
            "round trips to {target} are far slower or more uneven than the path should give: "
            "{numbers}{base}").format(target=target.address, numbers=target.numbers(),
                                      base=base), where
    return None


def _path_finding(bursts: dict[str, Any]) -> Optional[tuple[Status, str, str, str, str]]:
    """The worst loss or latency finding over the families measured, with its family."""
    found = []
    gateways = bursts.get("gateways", {})
    for address, result in bursts.get("targets", {}).items():
        gw = next((g for g in gateways if (":" in g) == (":" in address)), None)
        gw_sample = (PathSample.of(gw, "gateway", gateways[gw].stats())
                     if gw and gateways[gw].measured else None)
        tg_sample = PathSample.of(address, "target", result.stats()) if result.measured else None
        judged = judge_path(gw_sample, tg_sample)
        if judged is not None:
            found.append((*judged, "ipv6" if ":" in address else "ipv4"))
    rank = {Status.FAIL: 0, Status.WARN: 1}
    found.sort(key=lambda f: (rank.get(f[0], 2), f[1] != "PATH_LOSS"))
    return found[0] if found else None


def _syns_lost_to_loss(conns: list[Any], burst: Optional[icmp.BurstResult]) -> bool:
    """Would the echoes' loss lose every SYN the connects sent (odds over 1 %)?"""
    if burst is None or not burst.measured:
        return False
    back = burst.received / burst.sent
    syns = sum(c.syns or 1 for c in conns)
    return back < 1.0 and (1.0 - back) ** syns > 0.01


def _path_hint(code: str, where: str, gateway: Optional[str], target: str,
               ifname: Optional[str]) -> Hint:
    if code == "PATH_LOSS" and where == "link":
        return Hint(_("Packets are lost on the local link: look at the cable, the switch port "
                      "or the Wi-Fi signal, and at the interface's error counters."),
                    [*([f"ip -s link show dev {ifname}"] if ifname else []),
                     f"ping -c 50 -i 0.2 {gateway or target}", hints.count_loss(target)])
    if code == "PATH_LOSS":
        return Hint(_("Packets are lost after the gateway: find the hop where the loss starts "
                      "with mtr, and report it to whoever runs that network."),
                    [hints.count_loss(target), f"ping -c 50 -i 0.2 {target}"])
    return Hint(_("Round trips are slow or uneven: a queue fills up (bufferbloat, a "
                  "saturated link) or the path is long. Find where the delay grows with mtr."),
                [hints.count_loss(target), f"ping -c 20 {gateway or target}"])


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
       codes=("TARGET_UNREACHABLE", "TARGET_NO_ICMP", "PATH_LOSS", "PATH_LATENCY"))
async def target_reachable(ctx: Context) -> Result:
    """Target answers.

    Ping and a TCP connect to the port, sent together, to every address, and a burst of
    pings to the gateway and the target counted like ``ping -c 30``. A target that drops
    ping but answers TCP is fine (a warning, never the root cause of a failure); one that
    answers nothing at all, or whose router says "unreachable", is not reachable; one
    address family that fails while the other works is a warning naming it. Some answers
    back is never "unreachable": lost round trips are PATH_LOSS (to the gateway, or beyond
    it), round trips far slower or more uneven than the gateway's are PATH_LATENCY.
    """
    assert ctx.target is not None
    addrs = addrfam.used(ctx.facts, (await ctx.addresses())[:8])
    if not addrs:
        return skipped(_("the target has no address to try"))
    # A family whose address or route already failed (or warned) was judged there: its
    # silence here would be that finding again, not the target's (not twice).
    judged = await families_judged_below(ctx)
    addrs = [a for a in addrs if addrfam.family_of(a) not in judged] or addrs
    bursts_task = shared.path_bursts(ctx)
    ping_task = asyncio.ensure_future(shared.ping_all(ctx, addrs))
    conns = await shared.tcp_all(ctx, addrs, ctx.target.port)
    opened = [c.address for c in conns if c.state == "open"]
    if opened and ctx.target.scheme in ("http", "https"):
        # The GET the application check will send anyway starts now, while a ping that
        # gets no answer runs out its timeout: waits overlap instead of adding up.
        shared.http_get(ctx, opened[0])
    pings = await ping_task
    bursts = await _bursts_in_time(ctx, bursts_task)
    # A reply to any echo of the burst proves the address answers, whatever one ping met.
    pings = [_with_burst(p, bursts["targets"].get(p.address)) for p in pings]
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
                                "tcp": [c.to_json() for c in conns],
                                "bursts": {a: b.to_json() for part in ("gateways", "targets")
                                           for a, b in bursts[part].items()}}
    if blocked:
        evidence["local_firewall"] = {a: why for a, why in blocked.items() if a in silent}
    replies = [p for p in pings if p.state == "reply"]
    if replies:
        evidence["rtt_ms"] = round(min(p.rtt_ms or 0 for p in replies), 3)
        evidence["answering_ping"] = [p.address for p in replies]
    working = sorted(f for f, how in by_family.items() if how in ("ping", "tcp"))
    broken = {f: how for f, how in by_family.items() if how in ("icmp", "silent")}
    port = ctx.target.port
    finding = _path_finding(bursts) if working else None
    if finding is not None and (finding[0] is Status.FAIL or not broken):
        status, code, text, where, family = finding
        mine = [c for c in conns if addrfam.name(addrfam.family_of(c.address)) == family]
        if status is Status.FAIL and any(c.answered for c in mine):
            # The flow's own packets (its TCP handshake) went and came back: echoes lost on
            # the way (a router that rate-limits or deprioritises ICMP, or loss TCP's
            # retransmissions get over) degrade it, they do not break it.
            status = Status.WARN
            text += " " + _("(but the TCP handshake to port {port} gets through: the lost "
                            "echoes slow the flow down, they do not stop it)").format(
                                port=ctx.target.port)
        elif code == "PATH_LOSS" and mine and all(c.state == "timeout" for c in mine) and \
                _syns_lost_to_loss(mine, bursts["targets"].get(mine[0].address)):
            # ... and when the handshake's SYNs got no answer either, as often as the echoes'
            # loss would have it, the loss stops the flow: that silence proves no firewall.
            status = Status.FAIL
            text += " " + _("(and the TCP handshake to port {port} got no answer: the loss "
                            "stops the flow)").format(port=ctx.target.port)
        path = await ctx.path()
        target_addr = next((a for a in bursts["targets"] if ("ipv6" if ":" in a else "ipv4")
                            == family), addrs[0])
        gw = next((g for g in bursts["gateways"] if (":" in g) == (":" in target_addr)), None)
        evidence["family"] = family
        evidence["location"] = {
            "last_hop": 1 if where == "beyond" else None,
            "address": gw if where in ("link", "beyond") else target_addr,
            "method": "icmp-echo burst", "text": text}
        return Result(status, text, code=code, evidence=evidence,
                      hint=_path_hint(code, where, gw, target_addr, path.interface))
    if working and broken:
        fam = sorted(broken)[0]
        bad = next(a for a in addrs if ("IPv6" if ":" in a else "IPv4") == fam)
        evidence["unreachable_families"] = sorted(broken)
        evidence["family"] = addrfam.name(addrfam.family_of(bad))  # the contract's families rule
        return warned("TARGET_UNREACHABLE",
                      _("{family} {problem} while {working} works").format(
                          family=fam, problem=_why_silent(ctx, bad, pings, conns),
                          working=" and ".join(working)),
                      Hint(_("Clients that prefer {family} fail or wait for a timeout: check "
                             "{family} routing beyond the gateway (or remove the {family} "
                             "address from DNS).").format(family=fam),
                           [hints.trace(bad), f"ping -c 3 {bad}"]),
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
                       [hints.trace(addrs[0]),
                        f"ping -c 3 {path.gateway or addrs[0]}"]), **evidence)


async def _bursts_in_time(ctx: Context, task: asyncio.Future[dict[str, Any]]) -> dict[str, Any]:
    """The path's bursts, if they end while the run's deadline still leaves room to report;
    else none (a scrape with a short deadline judges without loss statistics)."""
    from netcheck.runner import DEADLINE_MARGIN

    left = ctx.time_left() - DEADLINE_MARGIN - 0.05
    done, _pending = await asyncio.wait({task}, timeout=max(0.0, left))
    return task.result() if done else {"gateways": {}, "targets": {}}


def _with_burst(ping: icmp.PingResult, burst: Optional[icmp.BurstResult]) -> icmp.PingResult:
    """The ping, or a reply made of the burst's fastest one when the single ping was lost."""
    if ping.state == "reply" or burst is None or not burst.rtts_ms:
        return ping
    return icmp.PingResult(ping.address, "reply", method=burst.method,
                           rtt_ms=min(burst.rtts_ms), size=burst.size)


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

    Echo requests with Don't-Fragment at the interface's MTU and below (``ping -M do -s``),
    in bursts so that a lost packet is not taken for a vanished size: a router with a
    smaller MTU must answer "fragmentation needed"; if small packets pass and full-size ones
    vanish with no such answer — more of them than the path's loss explains — the path is
    a black hole for big transfers (handshakes work, downloads stall): broken when the
    flow's own transfer stalls on it (an HTTP download), a warning while the exchange asked
    for still works.
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
    link = ctx.facts.link(index=path.ifindex) if path.ifindex else None
    if link is None or link.mtu <= 0:
        return skipped(_("no egress interface MTU to test"))
    if link.is_loopback:
        # The packets never leave this host: no router on the way can have a smaller MTU.
        return skipped(_("the target is on this host ({ifname}): there is no path MTU to "
                         "probe").format(ifname=link.name))
    # One address of each family the target answers on: a router may drop the "too big"
    # of one family only (ICMPv6's packet-too-big and ICMP's fragmentation-needed are two
    # rules), so the flow's other family can meet a black hole the first does not.
    first = {}
    for a in sorted(answering, key=lambda a: addrfam.family_of(a) != path.family):
        first.setdefault(addrfam.family_of(a), a)
    assert target is not None
    found = await asyncio.gather(*(_path_mtu_to(ctx, target, _egress_link(ctx, path, fam, link),
                                                addr) for fam, addr in first.items()))
    rank = {Status.FAIL: 0, Status.WARN: 1}
    worst = min(found, key=lambda r: (rank.get(r.status, 2), r.code != "PMTU_BLACKHOLE"))
    oversize = sum(int(r.evidence.get("oversize_probes") or 0) for r in found)
    if oversize:
        worst.evidence["oversize_probes"] = oversize
    if len(found) > 1:
        worst.evidence["families"] = {addrfam.name(f): r.code or r.status.value
                                      for f, r in zip(first, found)}
        if worst.code and any(r.code != worst.code for r in found):
            worst.evidence["family"] = addrfam.name(addrfam.family_of(
                str(worst.evidence["address"])))
    return worst


def _egress_link(ctx: Context, path: PathInfo, family: int, default: Any) -> Any:
    """The interface a family's packets leave by (its route lookup's), else ``default``."""
    lk = path.for_family(family)
    link = ctx.facts.link(index=lk.oif) if lk is not None and lk.oif is not None else None
    return link if link is not None and link.mtu > 0 and not link.is_loopback else default


async def _path_mtu_to(ctx: Context, target: Result, link: Any, addr: str) -> Result:
    """network.pmtu's probes of one address (see :func:`path_mtu`)."""
    hdr = _header_bytes(addr)
    mtu = link.mtu
    # The target answered ping already: a probe silent for many of its round trips is lost.
    rtt_ms = float(target.evidence.get("rtt_ms") or 100.0)
    t = min(ctx.timeout, max(0.3, rtt_ms * 8 / 1000))
    small, full = await asyncio.gather(
        icmp.burst(addr, t, PMTU_PROBES, PMTU_INTERVAL, 56, df=True),
        icmp.burst(addr, t, PMTU_PROBES, PMTU_INTERVAL, mtu - hdr, df=True))
    evidence: dict[str, object] = {"interface": link.name, "local_mtu": mtu, "address": addr,
                                   "small": small.to_json(), "full": full.to_json()}
    if full.received:
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
                            hints.mtu_probe(addr, mtu)]), **evidence)
    small_back = small.received / small.sent if small.sent else 0.0
    if not small.received or (1.0 - small_back) ** max(1, full.sent) > 0.01:
        # Full-size silence that the small packets' own loss explains is loss, not MTU.
        return passed(_("small packets were lost too: packet loss, not an MTU problem"),
                      **evidence)
    sizes: list[tuple[int, int]] = [(mtu, _attempts(full))]
    found = await _search_path_mtu(addr, hdr, mtu, t, sizes)
    evidence["path_mtu"] = found
    if found is not None:
        # The probes too big for the path: a link that refuses them counts them (and the
        # kernel's resends of them) as its own drops; link.errors tells those apart.
        evidence["oversize_probes"] = sum(n for size, n in sizes if size > found)
    if found is None:
        return passed(_("full-size packets were lost once, then passed: plain packet loss"),
                      **evidence)
    # Broken only when the flow's own transfer stalls on it; a handshake and small exchanges
    # pass a black hole (their packets are small): then it is a warning of what big
    # transfers will meet.
    stalled = await _transfer_stalled(ctx, target)
    summary = (_("packets over {path_mtu} bytes to {address} vanish with no ICMPv6 'packet "
                 "too big' (path MTU {path_mtu}, {ifname} MTU {mtu})") if ":" in addr
               else _("packets over {path_mtu} bytes to {address} vanish with no ICMP "
                      "'fragmentation needed' (path MTU {path_mtu}, {ifname} MTU {mtu})")).format(
                          path_mtu=found, address=addr, ifname=link.name, mtu=mtu)
    if stalled is not None:
        evidence["transfer"] = stalled
        summary += " " + _("and the transfer from {address} stalls").format(address=addr)
    else:
        summary += " " + _("(the exchange asked for still works: its packets are small; big "
                           "transfers will stall)")
    report = failed if stalled is not None else warned
    return report("PMTU_BLACKHOLE", summary,
                  Hint(_("A router on the path has a smaller MTU and its ICMP 'too big' "
                         "messages are dropped by a firewall: big transfers stall. Lower "
                         "this host's MTU (or clamp the TCP MSS on the router) and let ICMP "
                         "type 3 code 4 / ICMPv6 type 2 through."),
                       [f"ip link set dev {link.name} mtu {found}",
                        "iptables -t mangle -A FORWARD -p tcp --tcp-flags SYN,RST SYN "
                        "-j TCPMSS --clamp-mss-to-pmtu   # " + _("on the router"),
                        hints.mtu_probe(addr, mtu)]), **evidence)


SMALL_MSS = 536  # the minimum every IPv4 path must carry (RFC 879)
STALLS = ("timeout", "stall", "body_stall")


async def _transfer_stalled(ctx: Context, target: Optional[Result]) -> Optional[dict[str, Any]]:
    """The flow's own transfer when it stalls (the run's GET of an http(s) target), else
    None: nothing of the flow stalled (or it moves no data that could)."""
    assert ctx.target is not None
    if target is None or ctx.target.scheme not in ("http", "https"):
        return None
    opened = [c["address"] for c in target.evidence.get("tcp", []) if c.get("state") == "open"]
    if not opened:
        return None
    got = await shared.http_get(ctx, opened[0])
    if got.outcome not in STALLS:
        return None
    return {"outcome": got.outcome, "bytes": got.bytes_received}


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
                        hints.mtu_probe(addr, mtu)]), **evidence)


# DF probes per size: 16 silent full-size probes while small ones pass is not chance even
# with 40 % of packets lost each way (0.64^16 < 0.1 %); the search rounds use fewer.
PMTU_PROBES = 16
PMTU_INTERVAL = 0.005
SEARCH_PROBES = 4


def _attempts(burst: icmp.BurstResult) -> int:
    """Probes a burst tried to send: those sent, and the one the kernel refused."""
    return burst.sent + (1 if burst.state == "send_error" else 0)


async def _search_path_mtu(addr: str, hdr: int, mtu: int, timeout: float,
                           sent: Optional[list[tuple[int, int]]] = None) -> Optional[int]:
    """The largest packet that gets through, by rounds of parallel bursts of DF probes.

    None when the full size passes on a second try (the first loss was chance). ``sent``
    gets ``(size, probes tried)`` for every burst.
    """
    floor = 1280 if ":" in addr else 576
    low, high = floor, mtu  # low: assumed to pass, high: known to vanish
    for _round in range(3):
        if high - low <= 1:
            break
        step = max(1, (high - low) // 8)
        sizes = sorted({min(high - 1, low + step * i) for i in range(1, 8)} | {low})
        sizes = [s for s in sizes if low <= s < high]
        probes = [icmp.burst(addr, timeout, SEARCH_PROBES, PMTU_INTERVAL, s - hdr, df=True)
                  for s in sizes]
        probes.append(icmp.burst(addr, timeout, PMTU_PROBES if high == mtu else SEARCH_PROBES,
                                 PMTU_INTERVAL, high - hdr, df=True))
        results = await asyncio.gather(*probes)
        if sent is not None:
            sent += [(s, _attempts(r)) for s, r in zip([*sizes, high], results)]
        if results[-1].received and high == mtu:
            return None
        passing = [s for s, r in zip(sizes, results[:-1]) if r.received]
        if not passing:
            return low if low > floor else None
        low = max(passing)
        failing = [s for s, r in zip(sizes, results[:-1]) if not r.received and s > low]
        high = min(failing) if failing else high
    return low
