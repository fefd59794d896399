"""Neighbour resolution (ARP / NDP): does the next hop answer on the link at all?

A gateway may drop ping and still forward packets; whether it answers ARP or neighbour
solicitation is what says it is there. The kernel only resolves on demand, so one UDP
datagram to the discard port sets it going, then the neighbour table is watched.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from dataclasses import dataclass
from typing import Optional

from netcheck.facts import NUD_STATES

RESOLVED = {"REACHABLE", "STALE", "DELAY", "PROBE", "PERMANENT", "NOARP"}
DISCARD_PORT = 9


@dataclass
class NeighbourResult:
    address: str
    ifindex: int
    state: str  # a NUD state name, or NONE when the kernel has no entry
    lladdr: Optional[str] = None
    waited_ms: float = 0.0
    error: Optional[str] = None

    @property
    def resolved(self) -> bool:
        return self.state in RESOLVED

    def to_json(self) -> dict[str, object]:
        return {k: (round(v, 1) if isinstance(v, float) else v)
                for k, v in vars(self).items() if v is not None}


def resolve(address: str, ifindex: int, timeout: float) -> NeighbourResult:
    """Blocking: make the kernel resolve ``address`` on ``ifindex`` and report the outcome."""
    from netcheck.facts import iproute_class

    start = time.monotonic()
    result = NeighbourResult(address, ifindex, "NONE")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            dest: tuple[object, ...] = (address, DISCARD_PORT)
            if family == socket.AF_INET6:
                dest = (address, DISCARD_PORT, 0, ifindex if address.startswith("fe80") else 0)
            sock.sendto(b"", dest)
    except OSError as exc:
        result.error = exc.strerror or str(exc)
    try:
        with iproute_class()() as ipr:
            while True:
                entries = ipr.get_neighbours(family=family, ifindex=ifindex, dst=address)
                entries = [e for e in entries if e.get_attr("NDA_DST") == address]
                if entries:
                    msg = entries[0]
                    result.state = NUD_STATES.get(msg["state"], str(msg["state"]))
                    result.lladdr = msg.get_attr("NDA_LLADDR")
                if result.state in RESOLVED or result.state == "FAILED":
                    break
                if time.monotonic() - start >= timeout:
                    break
                time.sleep(0.02)
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    result.waited_ms = (time.monotonic() - start) * 1000
    return result


ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800


def _mac_bytes(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


def _mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def arp_probe(ifname: str, src_mac: str, src_ip: str, target_ip: str,
              timeout: float) -> Optional[str]:
    """Blocking: ask "who has target_ip?" on the wire, as ``arping`` does (needs CAP_NET_RAW).

    Returns the MAC address that answered, or None when nobody did. Raises OSError when a
    packet socket cannot be opened (no privilege). Unlike the kernel's neighbour cache, a
    fresh request cannot be fooled by an entry learnt before the gateway went away.
    """
    with socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ARP)) as sock:
        sock.bind((ifname, ETH_P_ARP))
        request = struct.pack("!HHBBH6s4s6s4s", 1, ETH_P_IP, 6, 4, 1, _mac_bytes(src_mac),
                              socket.inet_aton(src_ip), b"\0" * 6, socket.inet_aton(target_ip))
        sock.sendto(request, (ifname, ETH_P_ARP, 0, 1, b"\xff" * 6))
        wanted = socket.inet_aton(target_ip)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            sock.settimeout(left)
            try:
                data = sock.recv(128)
            except socket.timeout:
                return None
            if len(data) >= 28:
                op = struct.unpack("!H", data[6:8])[0]
                if op == 2 and data[14:18] == wanted:
                    return _mac_text(data[8:14])


# ndp_probe's answer when a neighbour advertisement came without the target link-layer
# address option: a reason code in the MAC's place (the checks word it), not a MAC.
NO_LLADDR_OPTION = "no_lladdr_option"


def ndp_probe(ifname: str, ifindex: int, src_mac: str, target_ip: str,
              timeout: float) -> Optional[str]:
    """Blocking: IPv6 neighbour solicitation for target_ip (needs CAP_NET_RAW).

    Returns the link-layer address from the neighbour advertisement, NO_LLADDR_OPTION when
    the advertisement carries none, or None when nothing answered.
    """
    target = socket.inet_pton(socket.AF_INET6, target_ip)
    group = "ff02::1:ff" + target[13:].hex()[:2] + ":" + target[14:].hex()
    with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as sock:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
        # type 135 NS, target, option 1: our link-layer address (the kernel adds the checksum)
        ns = struct.pack("!BBHI16s", 135, 0, 0, 0, target) + bytes([1, 1]) + _mac_bytes(src_mac)
        sock.sendto(ns, (group, 0, 0, ifindex))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            sock.settimeout(left)
            try:
                data = sock.recv(256)
            except socket.timeout:
                return None
            if len(data) >= 24 and data[0] == 136 and data[8:24] == target:
                opts = data[24:]
                while len(opts) >= 8 and opts[1]:
                    if opts[0] == 2:
                        return _mac_text(opts[2:8])
                    opts = opts[opts[1] * 8:]
                return NO_LLADDR_OPTION


def probe_on_wire(ifname: str, ifindex: int, src_mac: Optional[str], src_ip: Optional[str],
                  target_ip: str, timeout: float) -> tuple[bool, Optional[str]]:
    """Blocking: ARP (IPv4) or neighbour solicitation (IPv6) sent by us, not the kernel.

    Returns (ran, mac): ran is False when it could not be sent (no privilege, no MAC on
    the interface), so the caller falls back on the kernel's neighbour cache.
    """
    if not src_mac or src_mac == "00:00:00:00:00:00":
        return False, None
    try:
        if ":" in target_ip:
            return True, ndp_probe(ifname, ifindex, src_mac, target_ip, timeout)
        if not src_ip or ":" in src_ip:
            return False, None
        return True, arp_probe(ifname, src_mac, src_ip, target_ip, timeout)
    except (OSError, ValueError):
        return False, None


# How long an RFC 5227 probe listens once the link has shown how fast it answers: a host on
# the link answers ARP from its kernel, as fast as the neighbour that sized the wait, give or
# take its load; CALIBRATED_FACTOR times that neighbour's answer, never under MIN_SETTLE.
MIN_SETTLE = 0.1
CALIBRATED_FACTOR = 20


@dataclass(frozen=True)
class ConflictWatch:
    """What ARP probes for this host's own address met, and how long they listened."""

    claimed_by: Optional[str]  # the MAC of another host that claims the address; None: nobody
    waited: float  # seconds listened
    probes: int  # probes sent
    reference: Optional[str] = None  # the neighbour whose answer sized the wait
    reference_rtt: Optional[float] = None  # seconds it took to answer the same kind of probe

    def to_json(self) -> dict[str, object]:
        """The evidence: how the absence of a conflict was shown."""
        doc: dict[str, object] = {"waited_ms": round(self.waited * 1000, 1), "probes": self.probes}
        if self.reference is not None:
            doc["sized_by"] = self.reference
            if self.reference_rtt is not None:
                doc["sized_by_rtt_ms"] = round(self.reference_rtt * 1000, 2)
        return doc


def _probe_packet(own: bytes, wanted: bytes) -> bytes:
    """An RFC 5227 ARP probe: who has ``wanted``? (sender IP 0.0.0.0, target MAC zero)."""
    return struct.pack("!HHBBH6s4s6s4s", 1, ETH_P_IP, 6, 4, 1, own, b"\0" * 4, b"\0" * 6,
                       wanted)


def _claimant(arp: bytes, wanted: bytes) -> Optional[str]:
    """The MAC of another host an ARP packet shows holding ``wanted``: it answers for it or
    announces it (sender IP ``wanted``), or probes for it right now (sender 0.0.0.0)."""
    op = struct.unpack("!H", arp[6:8])[0]
    sender_mac, sender_ip, target_ip = arp[8:14], arp[14:18], arp[24:28]
    if sender_ip == wanted and op in (1, 2):
        return _mac_text(sender_mac)
    if op == 1 and sender_ip == b"\0" * 4 and target_ip == wanted:
        return _mac_text(sender_mac)
    return None


def is_wireless(ifname: str) -> bool:
    """A Wi-Fi interface (cfg80211's sysfs entries): its dozing stations hear broadcasts only
    at the access point's DTIM beacons, hundreds of milliseconds apart."""
    base = f"/sys/class/net/{ifname}"
    return os.path.exists(f"{base}/wireless") or os.path.exists(f"{base}/phy80211")


def arp_conflict_probe(ifname: str, own_mac: str, address: str, timeout: float,
                       probes: int = 2, interval: float = 0.1,
                       reference: Optional[str] = None) -> ConflictWatch:
    """Blocking: is ``address`` (this host's own IPv4 address) in use by another machine?

    Sends ARP probes as RFC 5227 (and ``arping -D``) does: "who has ADDRESS?" with sender
    IP 0.0.0.0, so no cache on the link learns anything from them. Any host that answers,
    or that announces or probes ADDRESS itself from another MAC address while we listen,
    claims the address. Nobody answering within ``timeout`` is the proof of absence.

    ``reference`` (a neighbour on the link, the gateway) sizes that wait: it gets the same
    probe for its own address, and a host that holds ours would answer as it does. Once it
    has answered, the second probe leaves and the wait ends CALIBRATED_FACTOR times its
    answer after the start, never under MIN_SETTLE, never over ``timeout``. Without a
    reference, on Wi-Fi, or when it does not answer, the whole ``timeout`` is waited.
    Raises OSError without CAP_NET_RAW.
    """
    own = _mac_bytes(own_mac)
    wanted = socket.inet_aton(address)
    if reference is not None and (reference == address or is_wireless(ifname)):
        reference = None
    with socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ARP)) as sock:
        sock.bind((ifname, ETH_P_ARP))
        broadcast = (ifname, ETH_P_ARP, 0, 1, b"\xff" * 6)
        start = time.monotonic()
        sock.sendto(_probe_packet(own, wanted), broadcast)
        sent = 1
        ref = socket.inet_aton(reference) if reference is not None else None
        if ref is not None:
            sock.sendto(_probe_packet(own, ref), broadcast)
        ref_rtt: Optional[float] = None
        deadline = start + timeout
        next_probe = start + interval

        def watched(claimed_by: Optional[str], now: float) -> ConflictWatch:
            return ConflictWatch(claimed_by, now - start, sent, reference, ref_rtt)

        while True:
            now = time.monotonic()
            if sent < probes and now >= next_probe:
                sock.sendto(_probe_packet(own, wanted), broadcast)
                sent += 1
                next_probe = now + interval
            if now >= deadline:
                return watched(None, now)
            wake = deadline if sent >= probes else min(deadline, next_probe)
            sock.settimeout(max(0.001, wake - now))
            try:
                data, where = sock.recvfrom(128)
            except socket.timeout:
                continue
            if len(data) < 28 or where[2] == socket.PACKET_OUTGOING or data[8:14] == own:
                continue
            claimant = _claimant(data, wanted)
            if claimant is not None:
                return watched(claimant, time.monotonic())
            if data[6:8] == b"\0\2" and ref is not None and data[14:18] == ref and ref_rtt is None:
                now = time.monotonic()
                ref_rtt = now - start
                next_probe = now  # the retry leaves now, answered as fast
                deadline = min(deadline, start + max(MIN_SETTLE, CALIBRATED_FACTOR * ref_rtt))
