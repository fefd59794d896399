"""Layer 2: the egress interface exists, is up, has carrier, its radio is on and associated,
and its counters stay clean.

Only the interface the packets really leave by is judged (``ctx.path()``); a broken
interface elsewhere is reported by ``link.others`` and never becomes the root cause.
The Wi-Fi check is declared before ``link.admin_up`` on purpose: a radio blocked by rfkill
also keeps the interface down, and the rfkill finding is the one that explains both.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Optional

from netcheck.hints import IFUPDOWN, NETWORKMANAGER, NO_MANAGER, Manager, link_up, usable
from netcheck.i18n import N_, _, ngettext, pgettext
from netcheck.lazy import lazy
from netcheck.model import Hint, Layer, Result, Status, failed, passed, skipped, warned
from netcheck.registry import RECIPROCAL, check

if TYPE_CHECKING:
    from netcheck.facts import Link
    from netcheck.probes import wireless
    from netcheck.runner import Context
else:  # imported at first use: `netcheck checks` lists the checks without the probes
    wireless = lazy("netcheck.probes.wireless")

WEAK_SIGNAL_DBM = -70
GROWING_COUNTERS = ("rx_errors", "tx_errors", "rx_dropped", "tx_dropped")


async def _egress(ctx: Context) -> tuple[Optional[str], Optional[Link]]:
    """The egress interface's name and, when it exists, its link."""
    path = await ctx.path()
    name = path.interface
    return name, ctx.facts.link(name=name) if name else None


async def _manager(ctx: Context) -> Manager:
    from netcheck.probes import shared

    return await shared.manager(ctx)


# The order ``ip link`` prints flags in (iproute2's print_link_flags).
_IP_FLAG_ORDER = ("NO-CARRIER", "LOOPBACK", "BROADCAST", "POINTOPOINT", "MULTICAST", "NOARP",
                  "UP", "LOWER_UP", "DORMANT")


def _flags(link: Link) -> list[str]:
    """Flags as ``ip -br link`` shows them: ``<NO-CARRIER,BROADCAST,MULTICAST,UP>``."""
    names = link.flag_names
    return sorted(names, key=lambda n: _IP_FLAG_ORDER.index(n) if n in _IP_FLAG_ORDER else 99)


def _state(link: Link) -> dict[str, object]:
    return {"interface": link.name, "operstate": link.operstate, "flags": _flags(link)}


def _blocked_radio(ctx: Context, name: str) -> list[wireless.RfkillSwitch]:
    if not wireless.is_wireless(ctx.facts, name):
        return []
    switches = wireless.switches_for(wireless.read_rfkill(ctx.facts),
                                     wireless.phy_of(ctx.facts, name))
    return [s for s in switches if s.soft or s.hard]


@check("link.exists", Layer.LINK, codes=("LINK_MISSING",), path_part="interface",
       modes=RECIPROCAL)
async def interface_exists(ctx: Context) -> Result:
    """Egress interface exists.

    The interface named with ``--interface``, or the one the route to the target uses,
    is among the host's links (``ip -br link``).
    """
    if ctx.facts.netlink_error and not ctx.facts.links:
        return skipped(_("cannot list interfaces: {error}").format(
            error=ctx.facts.netlink_error))
    name, link = await _egress(ctx)
    if name is None:
        return skipped(_("no egress interface"))
    if link is None:
        existing = [lk.name for lk in ctx.facts.links]
        summary = (_("{ifname} does not exist (named with --interface)")
                   if ctx.options.interface == name
                   else _("{ifname} does not exist (the route to the target uses)"))
        return failed("LINK_MISSING", summary.format(ifname=name), Hint(
            _("There is no interface {ifname} on this host; the interfaces are: "
              "{interfaces}. Use one of them (or fix the name).").format(
                  ifname=name, interfaces=", ".join(existing) or pgettext("interfaces", "none")),
            ["ip -br link"]), interface=name, interfaces=existing)
    kind = link.kind or (_("loopback") if link.is_loopback else _("device"))
    return passed(_("{ifname} exists ({kind}, index {index})").format(
        ifname=name, kind=kind, index=link.index),
                  interface=name, index=link.index, kind=link.kind, mac=link.mac, mtu=link.mtu)


def _rfkill_hint(name: str, phy: Optional[str], soft: bool, link: Link, mgr: Manager) -> Hint:
    radio = f"{name} ({phy})" if phy else name
    if not soft:
        return Hint(_("The radio of {radio} is blocked by a hardware switch: turn Wi-Fi on "
                      "with the laptop's switch or Fn key (or enable it in the BIOS/UEFI "
                      "setup); software cannot unblock it.").format(radio=radio),
                    ["rfkill list all"])
    commands = ["rfkill unblock wlan"]
    if mgr.name == NETWORKMANAGER:
        commands.append("nmcli radio wifi on")
    if not link.admin_up:
        commands += link_up(name, mgr)
    return Hint(_("The radio of {radio} is blocked in software (airplane mode or "
                  "'rfkill block'): unblock it, then bring {ifname} up.").format(
                      radio=radio, ifname=name), commands)


def _not_associated_hint(state: wireless.WirelessState, mgr: Manager) -> Hint:
    name = state.interface
    seen = [f"{b.ssid} ({b.signal_dbm:g} dBm)" for b in state.visible
            if b.ssid and b.signal_dbm is not None]
    if seen:
        text = _("{ifname} is not connected to any Wi-Fi network; in range: {networks}. "
                 "Scan, then connect to your network.").format(ifname=name,
                                                               networks=", ".join(seen))
    else:
        text = _("{ifname} is not connected to any Wi-Fi network. Scan, then connect to "
                 "your network.").format(ifname=name)
    commands = [f"iw dev {name} scan | grep -e SSID -e signal", f"iw dev {name} link",
                f"wpa_cli -i {name} status"]
    if mgr.name == NETWORKMANAGER:
        commands += [f"nmcli device wifi list ifname {name}",
                     f"nmcli --ask device wifi connect SSID ifname {name}"]
    elif mgr.name == IFUPDOWN:
        commands.append(f"ifup {name}")  # wpa-ssid / wpa-psk under 'iface {name}'
    return Hint(text, commands)


@check("link.wifi", Layer.LINK, requires=("link.exists",), modes=RECIPROCAL,
       codes=("WIFI_RFKILL_SOFT", "WIFI_RFKILL_HARD", "WIFI_NOT_ASSOCIATED", "WIFI_WEAK_SIGNAL"),
       path_part="interface")
async def wifi_associated(ctx: Context) -> Result:
    """Wi-Fi radio on and associated.

    For a wireless egress interface: no rfkill block (``rfkill list``), associated to an
    access point (``iw dev IF link``), and a signal of at least -70 dBm.
    """
    name, link = await _egress(ctx)
    if name is None or link is None:
        return skipped(_("no egress interface"))
    if not wireless.is_wireless(ctx.facts, name):
        return skipped(_("{ifname} is not wireless").format(ifname=name))
    state = await ctx.blocking(wireless.read_wireless, ctx.facts, name)
    evidence = state.to_json()
    if state.rfkill_hard or state.rfkill_soft:
        code = "WIFI_RFKILL_HARD" if state.rfkill_hard else "WIFI_RFKILL_SOFT"
        summary = (_("{ifname} radio is hard-blocked by rfkill") if state.rfkill_hard
                   else _("{ifname} radio is soft-blocked by rfkill"))
        hint = _rfkill_hint(name, state.phy, not state.rfkill_hard, link, await _manager(ctx))
        return failed(code, summary.format(ifname=name), hint, **evidence)
    if not link.admin_up:
        return skipped(_("{ifname} is down: association not checked (bring it up "
                         "first)").format(ifname=name), **evidence)
    if state.associated is None:
        return skipped(_("association of {ifname} unknown ({reason})").format(
            ifname=name, reason=state.error or _("no nl80211 data")), **evidence)
    if not state.associated:
        return failed("WIFI_NOT_ASSOCIATED",
                      _("{ifname} is not associated to an access point").format(ifname=name),
                      _not_associated_hint(state, await _manager(ctx)), **evidence)
    ap = f"{state.ssid or '?'} ({state.bssid or '?'})"
    if state.signal_dbm is None:
        return passed(_("{ifname} associated to {ap}, signal unknown").format(
            ifname=name, ap=ap), **evidence)
    radio = _("signal {dbm} dBm").format(dbm=f"{state.signal_dbm:g}") + (
        f", {state.freq_mhz} MHz" if state.freq_mhz else "")
    if state.signal_dbm < WEAK_SIGNAL_DBM:
        commands = [f"iw dev {name} link", f"iw dev {name} scan | grep -e SSID -e signal"]
        if (await _manager(ctx)).name == NETWORKMANAGER:
            commands.append(f"nmcli device wifi list ifname {name}")
        return warned("WIFI_WEAK_SIGNAL",
                      _("{ifname} associated to {ap} with a weak {radio}").format(
                          ifname=name, ap=ap, radio=radio),
                      Hint(_("The signal on {ifname} is below {dbm} dBm: move closer to the "
                             "access point or pick a stronger one; expect loss and retries "
                             "until then.").format(ifname=name, dbm=WEAK_SIGNAL_DBM),
                           commands), **evidence)
    return passed(_("{ifname} associated to {ap}, {radio}").format(ifname=name, ap=ap,
                                                                   radio=radio), **evidence)


@check("link.admin_up", Layer.LINK, requires=("link.exists",), codes=("LINK_ADMIN_DOWN",),
       path_part="interface", modes=RECIPROCAL)
async def admin_up(ctx: Context) -> Result:
    """Interface is administratively up.

    The UP flag of ``ip -br link``: someone (or something) must have set it up.
    """
    name, link = await _egress(ctx)
    if name is None or link is None:
        return skipped(_("no egress interface"))
    if link.admin_up:
        return passed(_("{ifname} is UP").format(ifname=name), **_state(link))
    mgr = await _manager(ctx)
    commands = link_up(name, mgr)
    if _blocked_radio(ctx, name):
        text = _("The radio of {ifname} is blocked by rfkill: unblock it first, then bring it "
                 "up.").format(ifname=name)
        commands = ["rfkill unblock wlan", *commands]
    elif mgr.name != NO_MANAGER:
        text = _("Bring {ifname} up through {manager}: it configures the interface again "
                 "(addresses and routes), which the kernel removed when the link went "
                 "down.").format(ifname=name, manager=mgr.name)
    else:
        text, restore = await _restore_after_down(ctx, name, link)
        commands += restore
    return failed("LINK_ADMIN_DOWN", _("{ifname} is administratively down").format(ifname=name),
                  Hint(text, commands), manager=mgr.name, **_state(link))


async def _restore_after_down(ctx: Context, name: str, link: Link) -> tuple[str, list[str]]:
    """Why ``ip link set up`` is not the whole repair, and what else to run.

    Taking a link down makes the kernel drop every route through it and its global IPv6
    addresses (net.ipv6.conf.*.keep_addr_on_down is 0 by default); up again, only the routes
    of the addresses it kept come back. A DHCP lease names the router that was lost; without
    one, the next run finds the router on the link (network.route).
    """
    from netcheck.probes.leases import leases

    kept = [f"{a.address}/{a.prefixlen}" for a in ctx.facts.addrs_of(link.index)
            if not a.link_local]
    routers = [r for lease in await ctx.blocking(leases, name, link.index)
               for r in lease.routers]
    text = _("Bring {ifname} up. Taking a link down makes the kernel remove every route "
             "through it (the default route too) and its global IPv6 addresses; up again, "
             "only the routes of the addresses it kept come back ({addresses}). So the "
             "default route must be added again: without it the next run stops at 'Route to "
             "the target' (ROUTE_NO_DEFAULT).").format(
                 ifname=name, addresses=", ".join(kept) or _("none"))
    if routers:
        return text, [f"ip {'-6 ' if ':' in r else ''}route add default via {r} dev {name}   # "
                      + _("the router of the DHCP lease") for r in routers[:2]]
    again = shlex.quote(ctx.target.url) if ctx.target is not None else ""
    return text, ["# " + _("then the default route: netcheck finds the router that answers on "
                           "{ifname}'s link and names it").format(ifname=name),
                  f"netcheck {again}".strip()]


async def _no_carrier_hint(ctx: Context, name: str, link: Link) -> Hint:
    facts = ctx.facts
    if wireless.is_wireless(facts, name):
        return Hint(_("{ifname} is a Wi-Fi interface: no carrier means it is not associated "
                      "to an access point; see the Wi-Fi check (link.wifi).").format(
                          ifname=name),
                    [usable(f"iw dev {name} link"),
                     usable(f"iw dev {name} scan | grep -e SSID -e signal")])
    if link.kind == "veth":
        from netcheck.probes import veth

        # The kernel names the peer: its index, and the namespace it lives in.
        peer = await ctx.blocking(veth.peer_of, name, max(0.5, ctx.timeout))
        if peer is not None and peer.ifname and peer.netnsid is None:
            return Hint(_("{ifname} is one end of a veth pair: its peer end {peer} is down. "
                          "Bring the peer up.").format(ifname=name, peer=peer.ifname),
                        [f"ip link set dev {peer.ifname} up"])
        if peer is not None and peer.ifname and peer.namespace:
            return Hint(_("{ifname} is one end of a veth pair: its peer end {peer} in network "
                          "namespace {namespace} is down (a cable whose other end is "
                          "unplugged). Bring the peer up there.").format(
                              ifname=name, peer=peer.ifname, namespace=peer.namespace),
                        [f"ip -n {peer.namespace} link set dev {peer.ifname} up",
                         f"ip -n {peer.namespace} -br link show dev {peer.ifname}"])
        where = (_("interface index {index} of the namespace with id {nsid}, which has no "
                   "name under /run/netns (a container's)").format(index=peer.ifindex,
                                                                  nsid=peer.netnsid)
                 if peer is not None and peer.netnsid is not None else _("another namespace"))
        return Hint(_("{ifname} is one end of a veth pair: its peer end ({where}) is down. "
                      "Find that namespace's process and bring the peer up there.").format(
                          ifname=name, where=where),
                    [f"ip -d link show dev {name}", "lsns -t net"])
    if link.kind == "bridge":
        return Hint(_("Bridge {ifname} has no port up with carrier: attach a port or bring "
                      "one up.").format(ifname=name),
                    [f"ip -br link show master {name}", "bridge link"])
    return Hint(_("No signal on {ifname}: check the cable, the switch port and that the other "
                  "end is powered and up (in a virtual machine: the adapter's 'cable "
                  "connected' setting).").format(ifname=name),
                [f"ethtool {name}", f"ip -br link show dev {name}"])


@check("link.carrier", Layer.LINK, requires=("link.admin_up",), codes=("LINK_NO_CARRIER",),
       path_part="interface", modes=RECIPROCAL)
async def carrier(ctx: Context) -> Result:
    """Interface has carrier.

    UP and LOWER_UP: the cable, switch port, peer or access point is there.
    """
    name, link = await _egress(ctx)
    if name is None or link is None:
        return skipped(_("no egress interface"))
    if link.carrier:
        summary = (_("{ifname} is UP with carrier (DORMANT: waiting for authentication)")
                   if link.operstate == "DORMANT" else _("{ifname} is UP with carrier"))
        return passed(summary.format(ifname=name), **_state(link))
    return failed("LINK_NO_CARRIER", _("{ifname} is UP but has no carrier").format(ifname=name),
                  await _no_carrier_hint(ctx, name, link), kind=link.kind, **_state(link))


def _human(value: int) -> str:
    """A counter the way ``ip -s -h link`` prints it (2.52M, 278k)."""
    number = float(value)
    for unit in ("", "k", "M", "G", "T"):
        if number < 1000 or unit == "T":
            if not unit:
                return str(value)
            return f"{number:.2f}{unit}" if number < 10 else (
                f"{number:.1f}{unit}" if number < 100 else f"{number:.0f}{unit}")
        number /= 1000
    return str(value)


def _counters(stats: dict[str, int], side: str) -> dict[str, int]:
    return {k: stats.get(f"{side}_{k}", 0) for k in ("bytes", "packets", "errors", "dropped")}


def _line(side: str, stats: dict[str, int]) -> str:
    return (f"{side.upper()}: {_human(stats['bytes'])} bytes  {_human(stats['packets'])} "
            f"packets  {stats['errors']} errors  {stats['dropped']} dropped")


@check("link.errors", Layer.LINK, requires=("link.exists",), codes=("LINK_ERRORS",),
       runs_last=True, modes=RECIPROCAL)
async def counters_clean(ctx: Context) -> Result:
    """No errors or drops during the run.

    The egress interface's error and drop counters (``ip -s -h link``) at the start and at
    the end of the run: growth means a bad cable or port, interference, or a full queue.
    """
    name, link = await _egress(ctx)
    if name is None or link is None:
        return skipped(_("no egress interface"))
    start = link.stats
    end = await ctx.blocking(ctx.facts.link_stats, name)
    if not start or not end:
        return skipped(_("counters of {ifname} not available").format(ifname=name))
    evidence: dict[str, object] = {"interface": name}
    for side in ("rx", "tx"):
        before, after = _counters(start, side), _counters(end, side)
        evidence[side] = {"start": before, "end": after,
                          "delta": {k: after[k] - before[k] for k in before}}
    evidence["ip_s_h"] = [_line(s, evidence[s]["end"]) for s in ("rx", "tx")]  # type: ignore
    grown = {k: end.get(k, 0) - start.get(k, 0) for k in GROWING_COUNTERS
             if end.get(k, 0) > start.get(k, 0)}
    own = _own_oversize_drops(ctx, grown)
    if own:
        evidence["own_probes_dropped"] = own
        return passed(_("{ifname}: tx_dropped +{n} during the run: frames too big for the "
                        "link, this run's own path-MTU probes ({sent} over the path MTU of "
                        "{path_mtu} bytes, see network.pmtu), not a fault of the "
                        "link").format(ifname=name, n=grown["tx_dropped"],
                                       sent=own["oversize_probes"], path_mtu=own["path_mtu"]),
                      **evidence)
    if grown:
        what = ", ".join(f"{k} +{v}" for k, v in grown.items())
        return warned("LINK_ERRORS", _("{ifname}: {counters} during the run").format(
            ifname=name, counters=what), Hint(
            _("Error or drop counters grow on {ifname}: a bad cable or switch port, a duplex "
              "mismatch or radio interference for errors; a full queue or unwanted traffic "
              "for drops. Watch them while the traffic flows.").format(ifname=name),
            [f"ip -s -h link show dev {name}", f"ethtool -S {name}"]), **evidence)
    rx, tx = evidence["rx"], evidence["tx"]  # type: ignore[assignment]
    return passed(_("{ifname}: no errors or drops during the run (RX {rx}B, TX {tx}B)").format(
        ifname=name, rx=_human(rx['end']['bytes']), tx=_human(tx['end']['bytes'])), **evidence)


def _own_oversize_drops(ctx: Context, grown: dict[str, int]) -> Optional[dict[str, int]]:
    """When the only growth is transmit drops and this run sent path-MTU probes too big for
    the path that network.pmtu found smaller than the interface's MTU: the link refused
    frames larger than it carries (a veth or a driver drops a frame over the peer's MTU,
    and the kernel's resends of it). None otherwise."""
    pmtu = ctx.result("network.pmtu")
    if set(grown) != {"tx_dropped"} or pmtu is None or pmtu.status not in (
            Status.WARN, Status.FAIL):
        return None
    sent, path_mtu = pmtu.evidence.get("oversize_probes"), pmtu.evidence.get("path_mtu")
    if not isinstance(sent, int) or not isinstance(path_mtu, int) or sent <= 0:
        return None
    return {"oversize_probes": sent, "path_mtu": path_mtu}


def _problem(ctx: Context, link: Link,
             switches: list[wireless.RfkillSwitch]) -> Optional[tuple[str, str]]:
    """What is wrong with an interface (code, and words to translate with ``_()`` and format
    with ``ifname``), or None when it is up with carrier."""
    facts = ctx.facts
    if link.admin_up and link.carrier:
        return None
    is_wifi = wireless.is_wireless(facts, link.name)
    if is_wifi:
        mine = wireless.switches_for(switches, wireless.phy_of(facts, link.name))
        if any(s.hard for s in mine):
            return "WIFI_RFKILL_HARD", N_("{ifname} is blocked by a hardware rfkill switch")
        if any(s.soft for s in mine):
            return "WIFI_RFKILL_SOFT", N_("{ifname} is blocked by rfkill")
    if not link.admin_up:
        return "LINK_ADMIN_DOWN", N_("{ifname} is down")
    if is_wifi:
        return "WIFI_NOT_ASSOCIATED", N_("{ifname} is not associated")
    return "LINK_NO_CARRIER", N_("{ifname} has no carrier")


@check("link.others", Layer.LINK, scope="host", modes=RECIPROCAL)
async def other_interfaces(ctx: Context) -> Result:
    """Other interfaces (off the path).

    Interfaces the packets to the target do not use, reported when they are down or have
    no carrier. Informative only: never a failure, never the root cause.
    """
    path = await ctx.path()
    egress = path.interface
    others = [lk for lk in ctx.facts.links if not lk.is_loopback and lk.name != egress]
    if not others:
        return passed(_("no other interfaces"), interfaces=[])
    switches = wireless.read_rfkill(ctx.facts)
    found = []
    for link in others:
        problem = _problem(ctx, link, switches)
        if problem is not None:
            found.append((link, *problem))
    evidence = [{"name": lk.name, "operstate": lk.operstate, "flags": _flags(lk),
                 "problem": code} for lk, code, _what in found]
    if not found:
        n = len(others)
        return passed(ngettext("the other {n} interface is up with carrier",
                               "the other {n} interfaces are up with carrier", n).format(n=n),
                      interfaces=[])
    words = ", ".join(_(what).format(ifname=lk.name) for lk, _code, what in found)
    if egress:
        words = _("{problems} (not on the path to the target)").format(problems=words)
    return passed(words, interfaces=evidence)
