"""What the address, route and gateway rungs judge, per address family and per part of the
flow: pure functions, facts in and a :class:`Judged` out (tests/unit/test_l3_judging.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

from netcheck.i18n import _, ngettext
from netcheck.lazy import lazy
from netcheck.model import Status

if TYPE_CHECKING:
    from netcheck import family as addrfam
    from netcheck.probes import neighbour
else:  # imported at first use: `netcheck checks` lists the checks without the probes
    addrfam = lazy("netcheck.family")
    neighbour = lazy("netcheck.probes.neighbour")


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
    values = {"gateway": g.gateway, "ifname": g.ifname, "mac": g.wire_mac or g.neigh_mac,
              "state": g.neigh_state}
    proof = _ip_comes_back(g, values)
    if proof is not None:
        return proof
    if not g.on_link:
        return _gateway_off_link(g, values)
    if g.wire_mac:
        return _link_answers_only(g, values)
    return _link_silent(g, values)


def _ip_comes_back(g: GatewayFacts, values: dict[str, Any]) -> Optional[Judged]:
    """A pass when IP proves the gateway works: its ping reply, or an answer through it."""
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
    return None


def _gateway_off_link(g: GatewayFacts, values: dict[str, Any]) -> Judged:
    """GATEWAY_NOT_ON_LINK: the gateway is outside every prefix of the interface."""
    # No IP comes back from a gateway outside this host's prefixes even when it answers
    # neighbour discovery (IPv6 asks for any address on the link): the router has no
    # route back to a source address that is not on its network.
    text = _("gateway {gateway} is outside every prefix of {ifname} ({prefixes})").format(
        prefixes=", ".join(g.prefixes) or _("no address"), **values)
    if g.wire_mac:
        text += " " + _("(it answers {how} with {mac}, but no IP reply comes back to an "
                        "address outside its network)").format(
                            how="ARP" if ":" not in g.gateway else "NDP", **values)
    return Judged(Status.FAIL, "GATEWAY_NOT_ON_LINK", text, reason="not_on_link")


def _link_answers_only(g: GatewayFacts, values: dict[str, Any]) -> Judged:
    """The gateway answers ARP / neighbour solicitation but no IP reply came: why not (a
    pinned MAC, this host's input chain, an address conflict, IPsec, rp_filter), or whether
    it handles IP at all (a TTL probe's 'time exceeded')."""
    v4 = ":" not in g.gateway
    pinned = g.neigh_state in STATIC_NUD and g.neigh_mac and (
        g.neigh_mac.lower() != (g.wire_mac or "").lower())
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


def _link_silent(g: GatewayFacts, values: dict[str, Any]) -> Judged:
    """No answer on the link either: what the neighbour cache knows (when this host could
    not probe), this host's input chain, or GATEWAY_UNREACHABLE."""
    v4 = ":" not in g.gateway
    if g.probed and g.input_block and not v4:
        return Judged(Status.SKIP, None, _(
            "gateway {gateway} on {ifname}: no neighbour advertisement gets in, this host's "
            "input chain drops it ({rule}); see transport.input_firewall").format(
                rule=g.input_block, **values), reason="input_block")
    if not g.probed and g.neigh_state in neighbour.RESOLVED:
        return _neighbour_entry_only(g, values)
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


def _neighbour_entry_only(g: GatewayFacts, values: dict[str, Any]) -> Judged:
    """Without our own ARP / NDP probe (no root) and no IP reply: the kernel's neighbour
    entry, the link at most, weighed against what IP says (a probe whose TTL runs out at the
    gateway, when nothing answered through it)."""
    if g.beyond_silent and g.ttl_hop is False:
        return Judged(Status.FAIL, "GATEWAY_UNREACHABLE", _(
            "gateway {gateway} on {ifname}: no IP packet comes back from it or through it "
            "(no ping reply, nothing beyond it answers, and a probe whose TTL runs out there "
            "gets no 'time exceeded'); its neighbour entry ({state}, {mac}) proves the link at "
            "most (an ARP probe of our own needs root)").format(**values), reason="no_ip")
    if g.ttl_hop:
        return Judged(Status.PASS, None, _(
            "gateway {gateway} on {ifname} routes this host's packets (a probe whose TTL runs "
            "out there gets its 'time exceeded'), but sends no ping reply").format(**values),
                      reason="ttl_hop")
    if g.neigh_state == "REACHABLE":
        return Judged(Status.PASS, None, _("gateway {gateway} on {ifname} is in the neighbour "
                                           "table as REACHABLE ({mac})").format(**values),
                      reason="cache")
    return Judged(Status.PASS, None, _(
        "gateway {gateway} on {ifname} is known on the link ({state}, {mac}) but did not "
        "confirm it (no ping reply; an ARP probe needs root)").format(**values),
                  reason="cache")


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
