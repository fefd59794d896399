"""Wi-Fi state of one interface: radio blocks, association, access point and signal.

What ``rfkill list``, ``iw dev IF link`` and ``iw dev IF scan`` show on the slides. rfkill
comes from sysfs; association and signal from nl80211 (pyroute2's ``IW``) on a live host,
or from a recording of the same nl80211 replies at ``<sysroot>/nl80211/<ifname>.json`` in a
fixture, with ``/proc/net/wireless`` as the fallback for the signal level. Anything that
cannot be read is left unknown: this probe never crashes and never judges.

The recording holds pyroute2's own decoding (``msg.dump()``) of the replies, keyed by the
command asked: ``NL80211_CMD_GET_INTERFACE``, ``NL80211_CMD_GET_STATION`` and
``NL80211_CMD_GET_SCAN`` (each a list of messages), so live and recorded data go through
one parser.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from netcheck.facts import Facts

GET_INTERFACE = "NL80211_CMD_GET_INTERFACE"
GET_STATION = "NL80211_CMD_GET_STATION"
GET_SCAN = "NL80211_CMD_GET_SCAN"
BSS_STATUS_ASSOCIATED = 1  # NL80211_BSS_STATUS_ASSOCIATED
BSS_STATUS_IBSS_JOINED = 2
_PHY_NAME = re.compile(r"phy\d+")


@dataclass
class RfkillSwitch:
    """One ``/sys/class/rfkill/rfkillN`` entry, as ``rfkill list`` prints it."""

    id: int
    name: str
    type: str
    soft: bool
    hard: bool


@dataclass
class Bss:
    """One access point from the scan cache."""

    bssid: Optional[str] = None
    ssid: Optional[str] = None
    freq_mhz: Optional[int] = None
    signal_dbm: Optional[float] = None
    status: Optional[int] = None


@dataclass
class WirelessState:
    """What is known about one wireless interface; ``None`` means unknown."""

    interface: str
    phy: Optional[str] = None
    associated: Optional[bool] = None
    ssid: Optional[str] = None
    bssid: Optional[str] = None
    signal_dbm: Optional[float] = None
    freq_mhz: Optional[int] = None
    rfkill_soft: bool = False
    rfkill_hard: bool = False
    rfkill: list[RfkillSwitch] = field(default_factory=list)  # the switches for this radio
    visible: list[Bss] = field(default_factory=list)  # other access points in the scan cache
    source: str = "unknown"  # nl80211, recording, /proc/net/wireless, carrier, or unknown
    error: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# -- sysfs ---------------------------------------------------------------------------
def is_wireless(facts: Facts, ifname: str) -> bool:
    """True for an 802.11 interface (sysfs has ``wireless`` or ``phy80211`` under it)."""
    base = facts.sys("sys/class/net", ifname)
    return (base / "wireless").exists() or (base / "phy80211").exists()


def phy_of(facts: Facts, ifname: str) -> Optional[str]:
    """The wiphy (``phy0``) an interface belongs to, as ``iw dev`` shows it."""
    name = facts.read_sys("sys/class/net", ifname, "phy80211", "name")
    if name:
        return name
    try:
        return os.path.basename(os.readlink(facts.sys("sys/class/net", ifname, "phy80211")))
    except OSError:
        return None


def read_rfkill(facts: Facts) -> list[RfkillSwitch]:
    """Every rfkill switch on the host (``rfkill list all``)."""
    switches = []
    base = facts.sys("sys/class/rfkill")
    try:
        names = sorted(os.listdir(base), key=lambda n: int(n[6:]) if n[6:].isdigit() else 0)
    except OSError:
        return switches
    for entry in names:
        if not entry.startswith("rfkill"):
            continue
        soft = facts.read_sys("sys/class/rfkill", entry, "soft")
        hard = facts.read_sys("sys/class/rfkill", entry, "hard")
        switches.append(RfkillSwitch(
            id=int(entry[6:]) if entry[6:].isdigit() else -1,
            name=facts.read_sys("sys/class/rfkill", entry, "name") or entry,
            type=facts.read_sys("sys/class/rfkill", entry, "type") or "?",
            soft=soft == "1", hard=hard == "1",
        ))
    return switches


def switches_for(switches: list[RfkillSwitch], phy: Optional[str]) -> list[RfkillSwitch]:
    """The switches that block this radio: its own phy's, and the platform's Wi-Fi keys.

    A platform switch (``ideapad_wlan``, ``dell-wifi``…) blocks every Wi-Fi radio; another
    phy's switch does not block this one.
    """
    return [s for s in switches if s.type in ("wlan", "all")
            and (s.name == phy or not _PHY_NAME.fullmatch(s.name))]


def proc_signal(facts: Facts, ifname: str) -> Optional[float]:
    """The signal level in dBm from ``/proc/net/wireless``, or None when it says nothing.

    ``wlp2s0: 0000   54.  -56.  -256        0      0      0      0     23        0``
    """
    for line in (facts.read_sys("proc/net/wireless") or "").splitlines():
        name, sep, rest = line.partition(":")
        if not sep or name.strip() != ifname:
            continue
        fields = rest.split()
        if len(fields) < 3:
            return None
        try:
            level = float(fields[2].rstrip("."))
        except ValueError:
            return None
        return level if -120 < level < 0 else None  # 0 / -256: not associated, no reading
    return None


# -- nl80211 --------------------------------------------------------------------------
def _attrs(msg: Any) -> dict[str, Any]:
    """A decoded netlink message (pyroute2 ``dump()`` form) as a name -> value dict."""
    found: dict[str, Any] = {}
    if isinstance(msg, dict):
        for pair in msg.get("attrs", []):
            if isinstance(pair, (list, tuple)) and len(pair) == 2:
                found.setdefault(pair[0], pair[1])
    return found


def _text(value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _number(value: Any) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) else None


def parse_bss(msg: Any) -> Optional[Bss]:
    """One NL80211_CMD_GET_SCAN reply (an NL80211_ATTR_BSS) as a :class:`Bss`."""
    bss = _attrs(_attrs(msg).get("NL80211_ATTR_BSS"))
    if not bss:
        return None
    ies = bss.get("NL80211_BSS_INFORMATION_ELEMENTS") or bss.get("NL80211_BSS_BEACON_IES")
    mbm = bss.get("NL80211_BSS_SIGNAL_MBM")
    signal = None
    if isinstance(mbm, dict):
        signal = _number(mbm.get("VALUE"))
        signal = signal / 100 if signal is not None else None
    freq = bss.get("NL80211_BSS_FREQUENCY")
    status = bss.get("NL80211_BSS_STATUS")
    return Bss(
        bssid=_text(bss.get("NL80211_BSS_BSSID")),
        ssid=_text(ies.get("SSID")) if isinstance(ies, dict) else None,
        freq_mhz=int(freq) if isinstance(freq, int) else None,
        signal_dbm=signal,
        status=status if isinstance(status, int) else None,
    )


def apply_nl80211(state: WirelessState, doc: dict[str, Any]) -> None:
    """Fill association, access point and signal from decoded nl80211 replies."""
    scan = [b for b in (parse_bss(m) for m in doc.get(GET_SCAN) or []) if b is not None]
    stations = [_attrs(m) for m in doc.get(GET_STATION) or []]
    iface = _attrs((doc.get(GET_INTERFACE) or [None])[0])
    current = next((b for b in scan
                    if b.status in (BSS_STATUS_ASSOCIATED, BSS_STATUS_IBSS_JOINED)), None)
    state.visible = [b for b in scan if b is not current]
    if current is None and not stations and GET_SCAN not in doc and GET_STATION not in doc:
        return  # nothing was answered: association stays unknown
    state.associated = current is not None or bool(stations)
    if not state.associated:
        return
    state.ssid = (current.ssid if current else None) or _text(iface.get("NL80211_ATTR_SSID"))
    state.bssid = current.bssid if current else None
    state.freq_mhz = current.freq_mhz if current else None
    if state.freq_mhz is None and isinstance(iface.get("NL80211_ATTR_WIPHY_FREQ"), int):
        state.freq_mhz = iface["NL80211_ATTR_WIPHY_FREQ"]
    station = next((s for s in stations if state.bssid is None
                    or _text(s.get("NL80211_ATTR_MAC")) == state.bssid),
                   stations[0] if stations else {})
    if state.bssid is None:
        state.bssid = _text(station.get("NL80211_ATTR_MAC"))
    info = _attrs(station.get("NL80211_ATTR_STA_INFO"))
    readings = (_number(info.get("NL80211_STA_INFO_SIGNAL")),
                _number(info.get("NL80211_STA_INFO_SIGNAL_AVG")),
                current.signal_dbm if current else None)
    state.signal_dbm = next((r for r in readings if r is not None), None)


def live_nl80211(ifindex: int) -> dict[str, Any]:
    """Ask the kernel over nl80211 (what ``iw dev IF link`` asks). Raises on failure."""
    from pyroute2.iwutil import IW  # heavy import: only on a live host with a wireless interface

    doc: dict[str, Any] = {}
    with IW() as iw:
        doc[GET_INTERFACE] = [m.dump() for m in iw.get_interface_by_ifindex(ifindex)]
        bss = iw.get_associated_bss(ifindex)
        doc[GET_SCAN] = [bss.dump()] if bss is not None else []
        doc[GET_STATION] = [m.dump() for m in iw.get_stations(ifindex)]
    return doc


def recorded_nl80211(facts: Facts, ifname: str) -> Optional[dict[str, Any]]:
    """The recorded nl80211 replies of a fixture, or None when there is no recording."""
    text = facts.read_sys("nl80211", f"{ifname}.json")
    if text is None:
        return None
    doc = json.loads(text)
    return doc if isinstance(doc, dict) else None


def read_wireless(facts: Facts, ifname: str) -> WirelessState:
    """Everything known about one wireless interface; unknown parts stay ``None``."""
    state = WirelessState(interface=ifname, phy=phy_of(facts, ifname))
    state.rfkill = switches_for(read_rfkill(facts), state.phy)
    state.rfkill_soft = any(s.soft for s in state.rfkill)
    state.rfkill_hard = any(s.hard for s in state.rfkill)
    link = facts.link(name=ifname)
    try:
        doc = None
        if facts.sysroot == "/" and link is not None:
            doc, state.source = live_nl80211(link.index), "nl80211"
        elif facts.sysroot != "/":
            doc, state.source = recorded_nl80211(facts, ifname), "recording"
        if doc is not None:
            apply_nl80211(state, doc)
    except Exception as exc:  # no nl80211 family, old kernel, odd reply: stay unknown
        state.error = f"{type(exc).__name__}: {exc}"
    if state.associated is None:
        state.source = "unknown"
        if link is not None and link.admin_up:
            # A station's carrier (LOWER_UP) comes up only once it is associated.
            state.associated, state.source = link.carrier, "carrier"
    if state.associated and state.signal_dbm is None:
        level = proc_signal(facts, ifname)
        if level is not None:
            state.signal_dbm = level
            state.source += "+/proc/net/wireless"
    return state
