"""One snapshot of the host's network state, taken once per run and shared by all checks.

Links, addresses, routes (of every table), policy rules and neighbours come from netlink dumps
on one socket (:mod:`netcheck.rtnl`);
hardware, drivers, rfkill and counters come from sysfs under a configurable root, so that
recorded fixtures of real machines can stand in for hardware a namespace cannot have.
The snapshot is plain data (``to_json`` / ``from_json``) so it can be recorded and replayed.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

# rtnetlink constants (linux/if.h, linux/if_addr.h, linux/rtnetlink.h, linux/neighbour.h)
IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFF_LOWER_UP = 0x10000
IFA_F_DADFAILED = 0x08
IFA_F_TENTATIVE = 0x40
ROUTE_TYPES = {1: "unicast", 2: "local", 3: "broadcast", 6: "blackhole", 7: "unreachable",
               8: "prohibit", 9: "throw"}
RTNH_F_ONLINK, RTNH_F_LINKDOWN = 0x4, 0x10
MAIN_TABLE, LOCAL_TABLE = 254, 255
# fib rule actions (linux/fib_rules.h) and the flag that makes a rule "not ..."
RULE_ACTIONS = {1: "lookup", 2: "goto", 3: "nop", 6: "blackhole", 7: "unreachable",
                8: "prohibit"}
FIB_RULE_INVERT = 0x2
NUD_STATES = {0x01: "INCOMPLETE", 0x02: "REACHABLE", 0x04: "STALE", 0x08: "DELAY",
              0x10: "PROBE", 0x20: "FAILED", 0x40: "NOARP", 0x80: "PERMANENT"}
# In the order ``ip link`` prints them.
_FLAG_NAMES = [(0x8, "LOOPBACK"), (0x2, "BROADCAST"), (0x10, "POINTOPOINT"), (0x1000, "MULTICAST"),
               (0x80, "NOARP"), (0x1, "UP"), (0x10000, "LOWER_UP"), (0x20000, "DORMANT")]
STAT_NAMES = ("rx_bytes", "rx_packets", "rx_errors", "rx_dropped",
              "tx_bytes", "tx_packets", "tx_errors", "tx_dropped")


@dataclass
class Link:
    index: int
    name: str
    flags: int
    operstate: str
    mtu: int
    kind: Optional[str] = None
    mac: Optional[str] = None
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def admin_up(self) -> bool:
        return bool(self.flags & IFF_UP)

    @property
    def carrier(self) -> bool:
        return bool(self.flags & IFF_LOWER_UP)

    @property
    def is_loopback(self) -> bool:
        return bool(self.flags & IFF_LOOPBACK)

    @property
    def flag_names(self) -> list[str]:
        names = [n for bit, n in _FLAG_NAMES if self.flags & bit]
        if self.admin_up and not self.carrier:
            names.insert(0, "NO-CARRIER")
        return names


@dataclass
class Addr:
    ifindex: int
    family: int
    address: str
    prefixlen: int
    scope: int
    flags: int

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        return ipaddress.ip_address(self.address)

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_interface(f"{self.address}/{self.prefixlen}").network

    @property
    def link_local(self) -> bool:
        return self.ip.is_link_local

    @property
    def dad_failed(self) -> bool:
        return bool(self.flags & IFA_F_DADFAILED)

    @property
    def tentative(self) -> bool:
        return bool(self.flags & IFA_F_TENTATIVE) and not self.dad_failed


@dataclass
class Route:
    family: int
    dst: Optional[str]  # None for a default route
    dst_len: int
    type: str
    oif: Optional[int] = None
    gateway: Optional[str] = None
    prefsrc: Optional[str] = None
    priority: int = 0
    onlink: bool = False
    table: int = MAIN_TABLE
    linkdown: bool = False  # the kernel flags it: its interface has no carrier

    @property
    def is_default(self) -> bool:
        return self.dst_len == 0

    @property
    def table_name(self) -> str:
        """``main``, ``local``, ``default`` or the number, as ``ip route`` names tables."""
        return {254: "main", 255: "local", 253: "default"}.get(self.table, str(self.table))


@dataclass
class PolicyRule:
    """One routing policy rule (``ip rule``): which table a lookup goes to, and when."""

    family: int
    priority: int
    action: str  # lookup | goto | nop | blackhole | unreachable | prohibit
    table: int = 0
    invert: bool = False  # "not ..."
    fwmark: Optional[int] = None
    fwmask: Optional[int] = None
    src: Optional[str] = None
    src_len: int = 0
    dst: Optional[str] = None
    dst_len: int = 0
    iifname: Optional[str] = None
    oifname: Optional[str] = None
    suppress_prefixlength: Optional[int] = None
    ipproto: Optional[int] = None
    dport: Optional[tuple[int, int]] = None
    uid: Optional[tuple[int, int]] = None

    def text(self) -> str:
        """As ``ip rule`` prints it: ``32765: not from all fwmark 0xca6c lookup 51820``."""
        parts = ["not"] if self.invert else []
        parts.append(f"from {self.src}/{self.src_len}" if self.src else "from all")
        if self.dst:
            parts.append(f"to {self.dst}/{self.dst_len}")
        if self.fwmark is not None:
            mask = f"/0x{self.fwmask:x}" if self.fwmask not in (None, 0xFFFFFFFF) else ""
            parts.append(f"fwmark 0x{self.fwmark:x}{mask}")
        if self.iifname:
            parts.append(f"iif {self.iifname}")
        if self.oifname:
            parts.append(f"oif {self.oifname}")
        if self.ipproto is not None:
            parts.append(f"ipproto {self.ipproto}")
        if self.dport is not None:
            lo, hi = self.dport
            parts.append(f"dport {lo}" if lo == hi else f"dport {lo}-{hi}")
        if self.uid is not None:
            parts.append(f"uidrange {self.uid[0]}-{self.uid[1]}")
        if self.action == "lookup":
            name = {254: "main", 255: "local", 253: "default"}.get(self.table, str(self.table))
            parts.append(f"lookup {name}")
        else:
            parts.append(self.action)
        if self.suppress_prefixlength is not None:
            parts.append(f"suppress_prefixlength {self.suppress_prefixlength}")
        return f"{self.priority}:\t" + " ".join(parts)


@dataclass
class Neighbour:
    ifindex: int
    address: str
    state: str
    lladdr: Optional[str] = None


@dataclass
class RouteLookup:
    """The kernel's answer to ``ip route get DST``: the path one packet would take."""

    destination: str
    type: str  # unicast, local, blackhole, unreachable, prohibit, none (no route), error
    oif: Optional[int] = None
    ifname: Optional[str] = None
    gateway: Optional[str] = None
    prefsrc: Optional[str] = None
    error: Optional[str] = None
    table: Optional[int] = None  # the table the route came from (policy rules followed)


@dataclass
class Facts:
    """The snapshot. Build it with :func:`snapshot`, or :meth:`from_json` for a recording."""

    links: list[Link] = field(default_factory=list)
    addresses: list[Addr] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    neighbours: list[Neighbour] = field(default_factory=list)
    rules: list[PolicyRule] = field(default_factory=list)
    hostname: str = ""
    privileged: bool = False
    sysroot: str = "/"
    netlink_error: Optional[str] = None

    # -- lookups -------------------------------------------------------------------
    def link(self, name: Optional[str] = None, index: Optional[int] = None) -> Optional[Link]:
        """The link with this name or index, if any."""
        for lk in self.links:
            if (name is not None and lk.name == name) or (index is not None and lk.index == index):
                return lk
        return None

    def addrs_of(self, ifindex: int, family: Optional[int] = None) -> list[Addr]:
        """Addresses on one interface, optionally of one family."""
        return [a for a in self.addresses
                if a.ifindex == ifindex and (family is None or a.family == family)]

    def defaults(self, family: int, table: Optional[int] = MAIN_TABLE) -> list[Route]:
        """Default routes of a family in one table (None: any), best (lowest metric) first."""
        found = [r for r in self.routes if r.family == family and r.is_default
                 and r.type == "unicast" and (table is None or r.table == table)]
        return sorted(found, key=lambda r: (r.table != MAIN_TABLE, r.priority))

    def rules_of(self, family: int) -> list[PolicyRule]:
        """Policy rules of a family in the order the kernel tries them."""
        return sorted((r for r in self.rules if r.family == family), key=lambda r: r.priority)

    def neighbour(self, ifindex: int, address: str) -> Optional[Neighbour]:
        for n in self.neighbours:
            if n.ifindex == ifindex and n.address == address:
                return n
        return None

    def sys(self, *parts: str) -> Path:
        """A path under the sysfs/procfs root (``/`` on a live host, a fixture in tests)."""
        return Path(self.sysroot, *parts)

    def read_sys(self, *parts: str) -> Optional[str]:
        """Contents of a sysfs/procfs file, stripped, or None when absent or unreadable."""
        try:
            return self.sys(*parts).read_text(errors="replace").strip()
        except OSError:
            return None

    def link_stats(self, name: str) -> dict[str, int]:
        """Fresh counters of one interface from sysfs (used to see what grew during a run)."""
        stats: dict[str, int] = {}
        for stat in STAT_NAMES:
            value = self.read_sys("sys/class/net", name, "statistics", stat)
            if value is not None and value.isdigit():
                stats[stat] = int(value)
        return stats

    # -- recording -----------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any], sysroot: Optional[str] = None) -> Facts:
        return cls(
            links=[Link(**x) for x in doc.get("links", [])],
            addresses=[Addr(**x) for x in doc.get("addresses", [])],
            routes=[Route(**x) for x in doc.get("routes", [])],
            neighbours=[Neighbour(**x) for x in doc.get("neighbours", [])],
            rules=[PolicyRule(**{k: (tuple(v) if isinstance(v, list) else v)
                                 for k, v in x.items()}) for x in doc.get("rules", [])],
            hostname=doc.get("hostname", ""),
            privileged=doc.get("privileged", False),
            sysroot=sysroot or doc.get("sysroot", "/"),
        )


def has_net_raw() -> bool:
    """True when this process may open raw sockets (root or CAP_NET_RAW effective)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) & (1 << 13))
    except OSError:
        pass
    return os.geteuid() == 0


def iproute_class() -> Any:
    """The netlink client of the snapshot and the route lookups: :class:`netcheck.rtnl.IPRoute`
    (pyroute2's names and shapes for what netcheck asks, without pyroute2's 45-70 ms of
    imports on every run's critical path)."""
    from netcheck.rtnl import IPRoute

    return IPRoute


def _attr(msg: Any, name: str, default: Any = None) -> Any:
    value = msg.get_attr(name)
    return default if value is None else value


def snapshot(sysroot: str = "/") -> Facts:
    """Take the one netlink snapshot of this run (links, addresses, routes, neighbours)."""
    facts = Facts(hostname=socket.gethostname(), privileged=has_net_raw(), sysroot=sysroot)
    try:
        with iproute_class()() as ipr:
            for msg in ipr.get_links():
                stats = _attr(msg, "IFLA_STATS64") or {}
                linkinfo = msg.get_attr("IFLA_LINKINFO")
                facts.links.append(Link(
                    index=msg["index"],
                    name=_attr(msg, "IFLA_IFNAME", "?"),
                    flags=msg["flags"],
                    operstate=_attr(msg, "IFLA_OPERSTATE", "UNKNOWN"),
                    mtu=_attr(msg, "IFLA_MTU", 0),
                    kind=linkinfo.get_attr("IFLA_INFO_KIND") if linkinfo else None,
                    mac=msg.get_attr("IFLA_ADDRESS"),
                    stats={k: int(stats.get(k, 0)) for k in STAT_NAMES} if stats else {},
                ))
            for msg in ipr.get_addr():
                address = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
                if address is None:
                    continue
                facts.addresses.append(Addr(
                    ifindex=msg["index"], family=msg["family"], address=address,
                    prefixlen=msg["prefixlen"], scope=msg["scope"],
                    flags=_attr(msg, "IFA_FLAGS", msg["flags"]),
                ))
            for family in (socket.AF_INET, socket.AF_INET6):
                # Every table, not only main: policy routing (wg-quick, a second uplink, a
                # VPN client) keeps its defaults in tables of its own.
                for msg in ipr.get_routes(family=family):
                    route = _route(msg, family)
                    if route is not None:
                        facts.routes.append(route)
                facts.rules += _rules(ipr, family)
            for msg in ipr.get_neighbours():
                dst = msg.get_attr("NDA_DST")
                if dst is None:
                    continue
                facts.neighbours.append(Neighbour(
                    ifindex=msg["ifindex"], address=dst,
                    state=NUD_STATES.get(msg["state"], str(msg["state"])),
                    lladdr=msg.get_attr("NDA_LLADDR"),
                ))
    except Exception as exc:  # no netlink (seccomp, exotic kernel): checks skip, never crash
        facts.netlink_error = f"{type(exc).__name__}: {exc}"
    return facts


def _route(msg: Any, family: int) -> Optional[Route]:
    table = _attr(msg, "RTA_TABLE", msg["table"])
    kind = ROUTE_TYPES.get(msg["type"], str(msg["type"]))
    if table == LOCAL_TABLE and kind in ("local", "broadcast"):
        return None  # the kernel's own entries for this host's addresses: not a path
    if kind not in ROUTE_TYPES.values():
        return None  # multicast, anycast, nat...: no path anything takes to the target
    gateway, oif, flags = msg.get_attr("RTA_GATEWAY"), msg.get_attr("RTA_OIF"), msg["flags"]
    hops = msg.get_attr("RTA_MULTIPATH")
    if hops and gateway is None and oif is None:  # ECMP: the first next hop stands for all
        first = hops[0]
        gateway, oif = first.get_attr("RTA_GATEWAY"), first["oif"]
        flags |= first["flags"]
    return Route(
        family=family, dst=msg.get_attr("RTA_DST"), dst_len=msg["dst_len"], type=kind,
        oif=oif, gateway=gateway, prefsrc=msg.get_attr("RTA_PREFSRC"),
        priority=_attr(msg, "RTA_PRIORITY", 0), onlink=bool(flags & RTNH_F_ONLINK),
        table=table, linkdown=bool(flags & RTNH_F_LINKDOWN))


def _rules(ipr: Any, family: int) -> list[PolicyRule]:
    found = []
    for msg in ipr.get_rules(family=family):
        fwmark = msg.get_attr("FRA_FWMARK")
        dport = msg.get_attr("FRA_DPORT_RANGE")
        uid = msg.get_attr("FRA_UID_RANGE")
        found.append(PolicyRule(
            family=family, priority=_attr(msg, "FRA_PRIORITY", 0),
            action=RULE_ACTIONS.get(msg["action"], str(msg["action"])),
            table=_attr(msg, "FRA_TABLE", msg["table"]),
            invert=bool(msg["flags"] & FIB_RULE_INVERT),
            fwmark=fwmark, fwmask=msg.get_attr("FRA_FWMASK") if fwmark is not None else None,
            src=msg.get_attr("FRA_SRC"), src_len=msg["src_len"],
            dst=msg.get_attr("FRA_DST"), dst_len=msg["dst_len"],
            iifname=msg.get_attr("FRA_IIFNAME"), oifname=msg.get_attr("FRA_OIFNAME"),
            suppress_prefixlength=_suppressed(msg.get_attr("FRA_SUPPRESS_PREFIXLEN")),
            ipproto=msg.get_attr("FRA_IP_PROTO"),
            dport=(dport["start"], dport["end"]) if dport else None,
            uid=(uid["start"], uid["end"]) if uid else None,
        ))
    return found


def _suppressed(value: Optional[int]) -> Optional[int]:
    # The kernel reports "no suppression" as -1 (0xffffffff unsigned).
    return None if value is None or value in (-1, 0xFFFFFFFF) else value


def route_get(destinations: list[str], oif: Optional[int] = None,
              names: Optional[dict[int, str]] = None) -> list[RouteLookup]:
    """Ask the kernel which way packets to each destination would go (``ip route get``).

    One netlink socket for all of them; interface names come from ``names`` (the
    snapshot's), asking the kernel only for an interface the snapshot does not know.
    """
    ipr_class = iproute_class()
    from netcheck.rtnl import NetlinkError

    lookups = [RouteLookup(destination=d, type="none") for d in destinations]
    try:
        with ipr_class() as ipr:
            for lookup in lookups:
                try:
                    _lookup_one(ipr, lookup, oif, names or {})
                except NetlinkError as exc:
                    lookup.type = _ROUTE_ERRORS.get(exc.code, "error")
                    lookup.error = os.strerror(exc.code) if exc.code else str(exc)
    except Exception as exc:
        for lookup in lookups:
            if lookup.type == "none" and lookup.error is None:
                lookup.type, lookup.error = "error", f"{type(exc).__name__}: {exc}"
    return lookups


# What ``ip route get`` errors mean: no route, or a route that throws the packet away.
_ROUTE_ERRORS = {errno.ENETUNREACH: "none", errno.EHOSTUNREACH: "unreachable",
                 errno.EACCES: "prohibit", errno.EINVAL: "blackhole"}


def _lookup_one(ipr: Any, lookup: RouteLookup, oif: Optional[int],
                names: dict[int, str]) -> None:
    # RTM_F_LOOKUP_TABLE, as `ip route get` sends it: the answer names the table the route
    # came from (policy rules followed) instead of "main".
    kwargs: dict[str, Any] = {"dst": lookup.destination.split("%")[0], "flags": 0x1000}
    if oif is not None:
        kwargs["oif"] = oif
    msgs = ipr.route("get", **kwargs)
    if not msgs:
        return
    msg = msgs[0]
    lookup.type = ROUTE_TYPES.get(msg["type"], str(msg["type"]))
    lookup.oif = msg.get_attr("RTA_OIF")
    lookup.gateway = msg.get_attr("RTA_GATEWAY")
    lookup.prefsrc = msg.get_attr("RTA_PREFSRC")
    lookup.table = _attr(msg, "RTA_TABLE", msg["table"])
    if lookup.oif is not None:
        lookup.ifname = names.get(lookup.oif)
        if lookup.ifname is None:
            links = ipr.get_links(lookup.oif)
            if links:
                lookup.ifname = links[0].get_attr("IFLA_IFNAME")
