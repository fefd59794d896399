"""The address rungs: the egress interface has an address (``network.address``) and no other
host on the link claims it (``network.address_conflict``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from netcheck.checks.network.common import _manager
from netcheck.checks.network.judging import judge_address
from netcheck.checks.network.view import _family_evidence, _l3_view

from netcheck import hints
from netcheck.i18n import _
from netcheck.lazy import asyncio, lazy
from netcheck.model import Hint, Layer, Result, Status, failed, passed, skipped, warned
from netcheck.registry import RECIPROCAL, check

if TYPE_CHECKING:
    from netcheck import family as addrfam
    from netcheck.probes import conflict
    from netcheck.probes.neighbour import ConflictWatch
    from netcheck.runner import Context
else:  # imported at first use: `netcheck checks` lists the checks without the probes
    addrfam = lazy("netcheck.family")
    conflict = lazy("netcheck.probes.conflict")


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


def _start_arp_probes(ctx: Context) -> None:
    """The ARP probes leave as soon as the egress interface is known: their wait for nobody
    to answer overlaps the rungs below instead of following them."""
    if not ctx.facts.privileged:
        return
    path = ctx.path()

    def start(_done: object = None) -> None:
        if path.cancelled() or path.exception() is not None:
            return
        link = _arp_link(ctx, path.result())
        if link is not None:
            for a in _probed(ctx, link):
                _address_claimed(ctx, link.name, link.mac, a)

    if path.done():
        start()  # queued before the checks' first steps
    else:
        path.add_done_callback(start)


def _arp_link(ctx: Context, path: Any) -> Any:
    """The egress interface, None when there is none."""
    return ctx.facts.link(index=path.ifindex) if path.ifindex is not None else None


def _uses_arp(link: Any) -> bool:
    return bool(link.mac) and link.mac != "00:00:00:00:00:00" and not link.flags & 0x80  # NOARP


def _own_ipv4(ctx: Context, link: Any) -> list[str]:
    """This host's IPv4 addresses on ``link`` that a conflict could take."""
    return [a.address for a in ctx.facts.addrs_of(link.index, addrfam.V4)
            if not a.link_local and not a.dad_failed]


def _probed(ctx: Context, link: Any) -> list[str]:
    """The IPv4 addresses of ``link`` to probe; none when the link does not use ARP."""
    return _own_ipv4(ctx, link) if _uses_arp(link) else []


@check("network.address_conflict", Layer.NETWORK, requires=("link.carrier",),
       codes=("ADDR_DAD_FAILED",), path_part="address", starts=_start_arp_probes)
async def address_conflict(ctx: Context) -> Result:
    """No other host uses this host's address.

    An ARP probe for each IPv4 address of the egress interface, as RFC 5227 (``arping -D``)
    sends it, with sender 0.0.0.0 so nobody's cache learns from it: a machine that answers
    claims the address, and replies meant for this host go there. Nobody answering is the
    proof, so the wait matters: the gateway (or the on-link target) gets the same probe for
    its own address, and the wait ends 20 times its answer after the start (at least 0.1 s,
    at most 0.3 s); on Wi-Fi, whose dozing stations hear broadcasts late, or when nobody sizes
    it, the whole 0.3 s. IPv6 has the kernel's own duplicate address detection
    (``network.address``). Needs root.
    """
    link = _arp_link(ctx, await ctx.path())
    if link is None:
        return skipped(_("no egress interface to look at"))
    mine = _own_ipv4(ctx, link)
    if not mine:
        return skipped(_("{ifname} has no IPv4 address to probe").format(ifname=link.name))
    if not _uses_arp(link):
        return skipped(_("{ifname} does not use ARP").format(ifname=link.name))
    if not ctx.facts.privileged:
        return skipped(_("needs root (or CAP_NET_RAW) to send ARP probes"))
    watches = await asyncio.gather(*(_address_watch(ctx, link.name, link.mac, a) for a in mine))
    found = ["error" if w is None else w.claimed_by or "" for w in watches]
    evidence = {"interface": link.name, "probed": mine,
                "answers": {a: m for a, m in zip(mine, found) if m},
                "listened": {a: w.to_json() for a, w in zip(mine, watches) if w is not None}}
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
    async def mac_of_claimant() -> str:
        watch = await _address_watch(ctx, ifname, mac, address)
        return "error" if watch is None else watch.claimed_by or ""

    return ctx.memo(("arp-conflict-mac", ifname, address), mac_of_claimant)


def _address_watch(ctx: Context, ifname: str, mac: str,
                   address: str) -> asyncio.Task[Optional[ConflictWatch]]:
    """The run's one ARP probe for this host's own address, as it went (None: it could not
    be sent)."""
    async def probe() -> Optional[ConflictWatch]:
        # The probe the process sent when it started (netcheck.probes.conflict), if it was
        # for this interface and address; else one sent now, its wait sized by the path's
        # first neighbour.
        reference = _first_neighbour(await ctx.path(), ifname)
        try:
            return await ctx.blocking(conflict.claimed, ctx.options.early, ifname, mac, address,
                                      conflict.probe_wait(ctx.timeout), reference)
        except (OSError, ValueError):
            return None

    return ctx.memo(("arp-conflict", ifname, address), probe)


def _first_neighbour(path: Any, ifname: str) -> Optional[str]:
    """The IPv4 neighbour the path's packets go to first on ``ifname``, when they leave by it."""
    lookup = path.for_family(addrfam.V4)
    if lookup is None or lookup.ifname != ifname:
        return None
    return conflict.on_link_neighbour(lookup.gateway, lookup.destination,
                                      lookup.type == "unicast")
