"""This host's current sockets towards the target: what ``ss -tunap`` shows for it.

Two steps, because the first must be instant and the second is slow:

1. :func:`read_tables` copies the kernel's socket tables (/proc/net/tcp, tcp6, udp, udp6)
   when the run starts, before netcheck's own probes open sockets to the target, so those
   are never mistaken for the user's. Nothing is parsed yet: the target's addresses are
   looked for later, as strings in the table's own hex spelling (:func:`towards`).
2. Only when some socket leads to the target, :func:`with_owners` asks psutil
   (``psutil.net_connections(kind="inet")``, which reads every process's file descriptors:
   tens of milliseconds) which process owns each. Without root the sockets of other users'
   processes keep no owner, and the result says so instead of failing.

psutil is imported only for step 2.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

MAX_LISTED = 50  # a host with thousands of connections to one server gets a sample
PROC_TABLES = ("tcp", "tcp6", "udp", "udp6")
MAX_TABLE_BYTES = 16 << 20  # per table: a host with millions of sockets gets a partial view
# /proc/net/tcp "st" column (include/net/tcp_states.h)
TCP_STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
              6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN",
              11: "CLOSING", 12: "NEW_SYN_RECV"}


@dataclass
class SocketInfo:
    """One socket: protocol, state, both ends and (when visible) the owning process."""

    proto: str  # tcp | udp
    family: int  # 4 or 6
    state: str  # ESTABLISHED, SYN_SENT, TIME_WAIT... (UDP: ESTABLISHED when connected)
    local_ip: str
    local_port: int
    peer_ip: Optional[str]
    peer_port: Optional[int]
    pid: Optional[int] = None
    process: Optional[str] = None

    @property
    def local(self) -> str:
        return _endpoint(self.local_ip, self.local_port)

    @property
    def peer(self) -> str:
        return _endpoint(self.peer_ip, self.peer_port) if self.peer_ip else "*"

    def describe(self) -> str:
        owner = f" ({self.process or '?'}, pid {self.pid})" if self.pid else ""
        return f"{self.proto} {self.state} {self.local} -> {self.peer}{owner}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"proto": self.proto, "state": self.state, "local": self.local,
                               "peer": self.peer}
        if self.pid is not None:
            out["pid"] = self.pid
            out["process"] = self.process
        return out


# Snapshot.error: reason codes, not sentences (checks/transport/connections.py words them).
NO_PSUTIL = "no_psutil"  # psutil is not installed
OWNERS_UNREADABLE = "owners_unreadable"  # psutil.net_connections raised OSError


@dataclass
class Snapshot:
    """Sockets towards the target, with their owners where this user may see them."""

    sockets: list[SocketInfo] = field(default_factory=list)
    owners_visible: bool = True  # False: other users' processes are hidden (not root)
    # Why the owners could not be named: NO_PSUTIL or OWNERS_UNREADABLE (the check words it),
    # with the OS error's own text for the latter.
    error: Optional[str] = None
    error_detail: Optional[str] = None


@dataclass
class RawTables:
    """The kernel's socket tables as read at one moment (lines, unparsed)."""

    lines: dict[str, list[bytes]] = field(default_factory=dict)


def read_tables(procfs: str = "/proc") -> Optional[RawTables]:
    """Copy /proc/net/{tcp,tcp6,udp,udp6} now (no parsing: cheap enough before any probe)."""
    raw = RawTables()
    for name in PROC_TABLES:
        try:
            with open(f"{procfs}/net/{name}", "rb") as fh:
                data = fh.read(MAX_TABLE_BYTES)
        except OSError:
            continue
        raw.lines[name] = data.split(b"\n")[1:]
    return raw if raw.lines else None


def _hex_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """An address in the kernel table's spelling: 32-bit words in host byte order, in hex."""
    if ip.version == 4:
        return f"{struct.unpack('=I', ip.packed)[0]:08X}"
    return "".join(f"{w:08X}" for w in struct.unpack("=4I", ip.packed))


def _from_hex(text: str) -> str:
    packed = bytes.fromhex(text)
    if len(packed) == 4:
        return str(ipaddress.IPv4Address(struct.pack("=I", struct.unpack(">I", packed)[0])))
    words = struct.unpack(">4I", packed)
    ip = ipaddress.IPv6Address(struct.pack("=4I", *words))
    return str(ip.ipv4_mapped) if ip.ipv4_mapped is not None else str(ip)


def towards(raw: RawTables, addresses: Iterable[str]) -> list[SocketInfo]:
    """Sockets in the tables whose remote end is one of ``addresses`` (any port)."""
    wanted: dict[str, set[str]] = {"4": set(), "6": set()}
    for address in addresses:
        try:
            ip = ipaddress.ip_address(address.split("%")[0])
        except ValueError:
            continue
        if ip.version == 6 and ip.ipv4_mapped is not None:  # type: ignore[union-attr]
            ip = ip.ipv4_mapped  # type: ignore[union-attr]
        wanted[str(ip.version)].add(_hex_address(ip))
        if ip.version == 4:  # IPv4 peers of dual-stack sockets sit in tcp6 as ::ffff:a.b.c.d
            wanted["6"].add(_hex_address(ipaddress.IPv6Address(f"::ffff:{ip}")))
    found: list[SocketInfo] = []
    for name, lines in raw.lines.items():
        keys = wanted["6" if name.endswith("6") else "4"]
        if not keys:
            continue
        for line in lines:
            parts = line.split(None, 4)
            if len(parts) < 4:
                continue
            remote = parts[2].decode("ascii", "replace")
            peer_hex, _, peer_port = remote.partition(":")
            if peer_hex not in keys:
                continue
            local_hex, _, local_port = parts[1].decode("ascii", "replace").partition(":")
            try:
                state = int(parts[3], 16)
                found.append(SocketInfo(
                    proto=name.rstrip("6"), family=6 if name.endswith("6") else 4,
                    state=TCP_STATES.get(state, f"state {state}"),
                    local_ip=_from_hex(local_hex), local_port=int(local_port, 16),
                    peer_ip=_from_hex(peer_hex), peer_port=int(peer_port, 16)))
            except ValueError:
                continue
    order = {"ESTABLISHED": 0, "SYN_SENT": 1, "SYN_RECV": 2}
    return sorted(found, key=lambda s: (order.get(s.state, 3), s.peer_port or 0, s.local))


def with_owners(found: list[SocketInfo]) -> Snapshot:
    """Name the process that owns each socket, through psutil (blocking, tens of ms)."""
    snap = Snapshot(sockets=found, owners_visible=os.geteuid() == 0)
    if not found:
        return snap
    try:
        import psutil
    except ImportError:
        snap.error = NO_PSUTIL
        return snap
    try:
        conns = psutil.net_connections(kind="inet")
    except psutil.AccessDenied:
        snap.owners_visible = False
        return snap
    except OSError as exc:
        snap.error, snap.error_detail = OWNERS_UNREADABLE, str(exc)
        return snap
    owners: dict[tuple[str, str, int, str, int], Optional[int]] = {}
    for c in conns:
        if c.laddr and c.raddr:
            proto = "tcp" if c.type == socket.SOCK_STREAM else "udp"
            owners[(proto, _normal(c.laddr.ip), c.laddr.port, _normal(c.raddr.ip),
                    c.raddr.port)] = c.pid
    names: dict[int, Optional[str]] = {}
    for s in found:
        pid = owners.get((s.proto, _normal(s.local_ip), s.local_port,
                          _normal(s.peer_ip or ""), s.peer_port or 0))
        if pid is None:
            continue
        if pid not in names:
            try:
                names[pid] = psutil.Process(pid).name()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                names[pid] = None
        s.pid, s.process = pid, names[pid]
    return snap


def _normal(address: str) -> str:
    """An address in one spelling: IPv4-mapped IPv6 as IPv4, no zone, compressed."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return address
    if ip.version == 6 and ip.ipv4_mapped is not None:  # type: ignore[union-attr]
        return str(ip.ipv4_mapped)  # type: ignore[union-attr]
    return str(ip)


def _endpoint(ip: Optional[str], port: Optional[int]) -> str:
    if ip is None:
        return "*"
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
