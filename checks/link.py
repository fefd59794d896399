"""Layer 2: the egress interface exists, is up, has carrier, its radio is on and associated,
and its counters stay clean.

Only the interface the packets really leave by is judged (``ctx.path()``); a broken
interface elsewhere is reported by ``link.others`` and never becomes the root cause.
The Wi-Fi check is declared before ``link.admin_up`` on purpose: a radio blocked by rfkill
also keeps the interface down, and the rfkill finding is the one that explains both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from netcheck.facts import Link
from netcheck.hints import IFUPDOWN, NETWORKMANAGER, Manager, link_up
from netcheck.model import Hint, Layer, Result, failed, passed, skipped, warned
from netcheck.probes import wireless
from netcheck.registry import check

if TYPE_CHECKING:
    from netcheck.runner import Context

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


@check("link.exists", Layer.LINK, codes=("LINK_MISSING",))
async def interface_exists(ctx: Context) -> Result:
    """Egress interface exists.

    The interface named with ``--interface``, or the one the route to the target uses,
    is among the host's links (``ip -br link``).
    """
    if ctx.facts.netlink_error and not ctx.facts.links:
        return skipped(f"cannot list interfaces: {ctx.facts.netlink_error}")
    name, link = await _egress(ctx)
    if name is None:
        return skipped("no egress interface")
    if link is None:
        existing = [lk.name for lk in ctx.facts.links]
        named = ("named with --interface" if ctx.options.interface == name
                 else "the route to the target uses")
        return failed("LINK_MISSING", f"{name} does not exist ({named})", Hint(
            f"There is no interface {name} on this host; the interfaces are: "
            f"{', '.join(existing) or 'none'}. Use one of them (or fix the name).",
            ["ip -br link"]), interface=name, interfaces=existing)
    return passed(f"{name} exists ({link.kind or 'device'}, index {link.index})",
                  interface=name, index=link.index, kind=link.kind, mac=link.mac, mtu=link.mtu)


def _rfkill_hint(name: str, phy: Optional[str], soft: bool, link: Link, mgr: Manager) -> Hint:
    radio = f"{name} ({phy})" if phy else name
    if not soft:
        return Hint(f"The radio of {radio} is blocked by a hardware switch: turn Wi-Fi on with "
                    "the laptop's switch or Fn key (or enable it in the BIOS/UEFI setup); "
                    "software cannot unblock it.", ["rfkill list all"])
    commands = ["rfkill unblock wlan"]
    if mgr.name == NETWORKMANAGER:
        commands.append("nmcli radio wifi on")
    if not link.admin_up:
        commands += link_up(name, mgr)
    return Hint(f"The radio of {radio} is blocked in software (airplane mode or "
                f"'rfkill block'): unblock it, then bring {name} up.", commands)


def _not_associated_hint(state: wireless.WirelessState, mgr: Manager) -> Hint:
    name = state.interface
    seen = [f"{b.ssid} ({b.signal_dbm:g} dBm)" for b in state.visible
            if b.ssid and b.signal_dbm is not None]
    text = f"{name} is not connected to any Wi-Fi network"
    text += f"; in range: {', '.join(seen)}." if seen else "."
    text += " Scan, then connect to your network."
    commands = [f"iw dev {name} scan | grep -e SSID -e signal", f"iw dev {name} link",
                f"wpa_cli -i {name} status"]
    if mgr.name == NETWORKMANAGER:
        commands += [f"nmcli device wifi list ifname {name}",
                     f"nmcli --ask device wifi connect SSID ifname {name}"]
    elif mgr.name == IFUPDOWN:
        commands.append(f"ifup {name}")  # wpa-ssid / wpa-psk under 'iface {name}'
    return Hint(text, commands)


@check("link.wifi", Layer.LINK, requires=("link.exists",),
       codes=("WIFI_RFKILL_SOFT", "WIFI_RFKILL_HARD", "WIFI_NOT_ASSOCIATED", "WIFI_WEAK_SIGNAL"))
async def wifi_associated(ctx: Context) -> Result:
    """Wi-Fi radio on and associated.

    For a wireless egress interface: no rfkill block (``rfkill list``), associated to an
    access point (``iw dev IF link``), and a signal of at least -70 dBm.
    """
    name, link = await _egress(ctx)
    if name is None or link is None:
        return skipped("no egress interface")
    if not wireless.is_wireless(ctx.facts, name):
        return skipped(f"{name} is not wireless")
    state = await ctx.blocking(wireless.read_wireless, ctx.facts, name)
    evidence = state.to_json()
    if state.rfkill_hard or state.rfkill_soft:
        code = "WIFI_RFKILL_HARD" if state.rfkill_hard else "WIFI_RFKILL_SOFT"
        how = "hard" if state.rfkill_hard else "soft"
        hint = _rfkill_hint(name, state.phy, not state.rfkill_hard, link, await _manager(ctx))
        return failed(code, f"{name} radio is {how}-blocked by rfkill", hint, **evidence)
    if not link.admin_up:
        return skipped(f"{name} is down: association not checked (bring it up first)",
                       **evidence)
    if state.associated is None:
        return skipped(f"association of {name} unknown ({state.error or 'no nl80211 data'})",
                       **evidence)
    if not state.associated:
        return failed("WIFI_NOT_ASSOCIATED", f"{name} is not associated to an access point",
                      _not_associated_hint(state, await _manager(ctx)), **evidence)
    ap = f"{state.ssid or '?'} ({state.bssid or '?'})"
    if state.signal_dbm is None:
        return passed(f"{name} associated to {ap}, signal unknown", **evidence)
    radio = f"signal {state.signal_dbm:g} dBm" + (
        f", {state.freq_mhz} MHz" if state.freq_mhz else "")
    if state.signal_dbm < WEAK_SIGNAL_DBM:
        commands = [f"iw dev {name} link", f"iw dev {name} scan | grep -e SSID -e signal"]
        if (await _manager(ctx)).name == NETWORKMANAGER:
            commands.append(f"nmcli device wifi list ifname {name}")
        return warned("WIFI_WEAK_SIGNAL", f"{name} associated to {ap} with a weak {radio}",
                      Hint(f"The signal on {name} is below {WEAK_SIGNAL_DBM} dBm: move closer "
                           "to the access point or pick a stronger one; expect loss and "
                           "retries until then.", commands), **evidence)
    return passed(f"{name} associated to {ap}, {radio}", **evidence)


@check("link.admin_up", Layer.LINK, requires=("link.exists",), codes=("LINK_ADMIN_DOWN",))
async def admin_up(ctx: Context) -> Result:
    """Interface is administratively up.

    The UP flag of ``ip -br link``: someone (or something) must have set it up.
    """
    name, link = await _egress(ctx)
    if name is None or link is None:
        return skipped("no egress interface")
    if link.admin_up:
        return passed(f"{name} is UP", **_state(link))
    mgr = await _manager(ctx)
    commands = link_up(name, mgr)
    text = f"Bring {name} up."
    if _blocked_radio(ctx, name):
        text = f"The radio of {name} is blocked by rfkill: unblock it first, then bring it up."
        commands = ["rfkill unblock wlan", *commands]
    return failed("LINK_ADMIN_DOWN", f"{name} is administratively down",
                  Hint(text, commands), manager=mgr.name, **_state(link))


def _no_carrier_hint(ctx: Context, name: str, link: Link) -> Hint:
    facts = ctx.facts
    if wireless.is_wireless(facts, name):
        return Hint(f"{name} is a Wi-Fi interface: no carrier means it is not associated to "
                    "an access point; see the Wi-Fi check (link.wifi).",
                    [f"iw dev {name} link", f"iw dev {name} scan | grep -e SSID -e signal"])
    if link.kind == "veth":
        peer_index = facts.read_sys("sys/class/net", name, "iflink") or ""
        peer = (facts.link(index=int(peer_index)) if peer_index.isdigit()
                and int(peer_index) != link.index else None)
        if peer is not None:
            return Hint(f"{name} is one end of a veth pair: its peer end {peer.name} is down. "
                        "Bring the peer up.", [f"ip link set dev {peer.name} up"])
        return Hint(f"{name} is one end of a veth pair: its peer end (in another network "
                    "namespace) is down. Bring the peer up there.",
                    [f"ip -d link show dev {name}", "ip netns list",
                     "ip -n NAMESPACE link set dev PEER up"])
    if link.kind == "bridge":
        return Hint(f"Bridge {name} has no port up with carrier: attach a port or bring one up.",
                    [f"ip -br link show master {name}", "bridge link"])
    return Hint(f"No signal on {name}: check the cable, the switch port and that the other "
                "end is powered and up (in a virtual machine: the adapter's 'cable "
                "connected' setting).", [f"ethtool {name}", f"ip -br link show dev {name}"])


@check("link.carrier", Layer.LINK, requires=("link.admin_up",), codes=("LINK_NO_CARRIER",))
async def carrier(ctx: Context) -> Result:
    """Interface has carrier.

    UP and LOWER_UP: the cable, switch port, peer or access point is there.
    """
    name, link = await _egress(ctx)
    if name is None or link is None:
        return skipped("no egress interface")
    if link.carrier:
        note = " (DORMANT: waiting for authentication)" if link.operstate == "DORMANT" else ""
        return passed(f"{name} is UP with carrier{note}", **_state(link))
    return failed("LINK_NO_CARRIER", f"{name} is UP but has no carrier",
                  _no_carrier_hint(ctx, name, link), kind=link.kind, **_state(link))


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
       runs_last=True)
async def counters_clean(ctx: Context) -> Result:
    """No errors or drops during the run.

    The egress interface's error and drop counters (``ip -s -h link``) at the start and at
    the end of the run: growth means a bad cable or port, interference, or a full queue.
    """
    name, link = await _egress(ctx)
    if name is None or link is None:
        return skipped("no egress interface")
    start = link.stats
    end = await ctx.blocking(ctx.facts.link_stats, name)
    if not start or not end:
        return skipped(f"counters of {name} not available")
    evidence: dict[str, object] = {"interface": name}
    for side in ("rx", "tx"):
        before, after = _counters(start, side), _counters(end, side)
        evidence[side] = {"start": before, "end": after,
                          "delta": {k: after[k] - before[k] for k in before}}
    evidence["ip_s_h"] = [_line(s, evidence[s]["end"]) for s in ("rx", "tx")]  # type: ignore
    grown = {k: end.get(k, 0) - start.get(k, 0) for k in GROWING_COUNTERS
             if end.get(k, 0) > start.get(k, 0)}
    if grown:
        what = ", ".join(f"{k} +{v}" for k, v in grown.items())
        return warned("LINK_ERRORS", f"{name}: {what} during the run", Hint(
            f"Error or drop counters grow on {name}: a bad cable or switch port, a duplex "
            "mismatch or radio interference for errors; a full queue or unwanted traffic "
            "for drops. Watch them while the traffic flows.",
            [f"ip -s -h link show dev {name}", f"ethtool -S {name}"]), **evidence)
    rx, tx = evidence["rx"], evidence["tx"]  # type: ignore[assignment]
    return passed(f"{name}: no errors or drops during the run "
                  f"(RX {_human(rx['end']['bytes'])}B, TX {_human(tx['end']['bytes'])}B)",
                  **evidence)


def _problem(ctx: Context, link: Link,
             switches: list[wireless.RfkillSwitch]) -> Optional[tuple[str, str]]:
    """What is wrong with an interface (code and words), or None when it is up with carrier."""
    facts = ctx.facts
    if link.admin_up and link.carrier:
        return None
    is_wifi = wireless.is_wireless(facts, link.name)
    if is_wifi:
        mine = wireless.switches_for(switches, wireless.phy_of(facts, link.name))
        if any(s.hard for s in mine):
            return "WIFI_RFKILL_HARD", "is blocked by a hardware rfkill switch"
        if any(s.soft for s in mine):
            return "WIFI_RFKILL_SOFT", "is blocked by rfkill"
    if not link.admin_up:
        return "LINK_ADMIN_DOWN", "is down"
    if is_wifi:
        return "WIFI_NOT_ASSOCIATED", "is not associated"
    return "LINK_NO_CARRIER", "has no carrier"


@check("link.others", Layer.LINK)
async def other_interfaces(ctx: Context) -> Result:
    """Other interfaces (off the path).

    Interfaces the packets to the target do not use, reported when they are down or have
    no carrier. Informative only: never a failure, never the root cause.
    """
    path = await ctx.path()
    egress = path.interface
    others = [lk for lk in ctx.facts.links if not lk.is_loopback and lk.name != egress]
    if not others:
        return passed("no other interfaces", interfaces=[])
    switches = wireless.read_rfkill(ctx.facts)
    found = []
    for link in others:
        problem = _problem(ctx, link, switches)
        if problem is not None:
            found.append((link, *problem))
    evidence = [{"name": lk.name, "operstate": lk.operstate, "flags": _flags(lk),
                 "problem": code} for lk, code, _ in found]
    if not found:
        n = len(others)
        return passed(f"the other {n} interface{'s are' if n > 1 else ' is'} up with carrier",
                      interfaces=[])
    words = ", ".join(f"{lk.name} {what}" for lk, _, what in found)
    where = " (not on the path to the target)" if egress else ""
    return passed(f"{words}{where}", interfaces=evidence)
