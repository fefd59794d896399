"""Proof before a plan: a replacement gateway that forwards, a resolver that answers.

A diagnosis that says "the gateway 198.18.1.99 does not answer" does not say which gateway
is right. Guessing one (the ``.1`` of the prefix, whatever answers ARP) is how a student
breaks a network further, so a gateway goes into a plan only after this module saw it:

1. **answer on the link**: our own ARP request (IPv6: neighbour solicitation) gets a reply,
   and
2. **forward**: a TCP SYN to the flow's destination port and an echo request, sent in an
   Ethernet frame addressed to the candidate's MAC (the routing table is not touched: no
   temporary route, nothing to undo), get an answer *from the destination itself*
   (SYN-ACK, RST, echo reply, or an ICMP error whose sender is the destination). An ICMP
   error from the candidate ("net unreachable") proves it refuses, not that it forwards.

Candidates are only what this host has been told or has seen: the DHCP lease of the
interface, the network manager's values, the neighbour table, and the first and last host
address of the interface's prefix (where routers usually sit) — each tried, none trusted.
A resolver must answer a query for the target's name (NOERROR or NXDOMAIN; REFUSED and
SERVFAIL are no answer); candidates are the lease's and the manager's name servers and the
(working) gateway, which often relays DNS.
"""

from __future__ import annotations

import ipaddress
import random
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any, Optional

from netcheck.probes.leases import (  # noqa: F401 - the repair planner's names, as before
    Lease,
    leases,
    parse_dhclient_leases,
    parse_key_value_lease,
)

ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD
PACKET_OUTGOING = 4
MAX_CANDIDATES = 6
NEEDS_ROOT = "needs root, or CAP_NET_RAW"


# -- where candidates come from --------------------------------------------------------------

def usual_router_addresses(network: Any) -> list[str]:
    """The first and last host address of a prefix (IPv6: ``prefix::1``)."""
    if network.version == 6:
        return [str(network.network_address + 1)] if network.prefixlen <= 126 else []
    if network.prefixlen >= 31:
        return []
    return [str(network.network_address + 1), str(network.broadcast_address - 1)]


def gateway_candidates(family: int, prefixes: list[Any], own: set[str],
                       sources: list[tuple[str, list[str]]], exclude: set[str]) -> list[
                           tuple[str, str]]:
    """(address, where it came from) for each address worth probing, best source first.

    ``prefixes``: the interface's networks of the family (a gateway must be on one);
    ``sources``: (description, addresses) in order of trust; the prefixes' usual router
    addresses come last. Our own addresses and ``exclude`` (the gateway that failed) never.
    """
    from netcheck.i18n import _

    found: dict[str, str] = {}
    nets = [n for n in prefixes if n.version == family and not n.is_link_local]
    listed = [*sources, *((_("the first or last address of {prefix}").format(prefix=n),
                           usual_router_addresses(n)) for n in nets)]
    for source, addresses in listed:
        for address in addresses:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                continue
            text = str(ip)
            if ip.version != family or text in own or text in exclude or text in found:
                continue
            if not any(ip in n for n in nets):
                continue
            found[text] = source
    return list(found.items())[:MAX_CANDIDATES]


# -- the forwarding probe --------------------------------------------------------------------

def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _pseudo(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    if len(src) == 4:
        return src + dst + struct.pack("!BBH", 0, proto, length)
    return src + dst + struct.pack("!I3xB", length, proto)


def _ip_packet(src: bytes, dst: bytes, proto: int, payload: bytes) -> bytes:
    if len(src) == 4:
        header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload),
                             random.randrange(1 << 16), 0x4000, 64, proto, 0, src, dst)
        header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
        return header + payload
    return struct.pack("!IHBB16s16s", 0x60000000, len(payload), proto, 64, src, dst) + payload


def syn_segment(src: bytes, dst: bytes, sport: int, dport: int, seq: int) -> bytes:
    """A TCP SYN with an MSS option, its checksum over the pseudo-header."""
    options = struct.pack("!BBH", 2, 4, 1460)
    header = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, (6 << 4), 0x02, 64240, 0, 0)
    segment = header + options
    check = _checksum(_pseudo(src, dst, 6, len(segment)) + segment)
    return segment[:16] + struct.pack("!H", check) + segment[18:]


def echo_message(src: bytes, dst: bytes, ident: int, seq: int) -> bytes:
    """An ICMP (IPv6: ICMPv6) echo request with its checksum."""
    v6 = len(src) == 16
    body = struct.pack("!BBHHH", 128 if v6 else 8, 0, 0, ident, seq) + b"netcheck-fix-proof"
    check = _checksum((_pseudo(src, dst, 58, len(body)) if v6 else b"") + body)
    return body[:2] + struct.pack("!H", check) + body[4:]


@dataclass
class Probe:
    """What to send through a candidate: its frames, and what counts as their answer."""

    destination: str
    port: Optional[int]
    sport: int
    seq: int
    ident: int


def match_reply(frame_ip: bytes, probes: list[Probe], own: bytes) -> Optional[str]:
    """The answer (in words) an IP packet is to one of the probes, or None.

    Only what comes *from the probed destination* to our address counts: a SYN-ACK or RST
    for our port, an echo reply with our identifier, or an ICMP error the destination
    itself sent about our probe.
    """
    v6 = len(own) == 16
    if v6:
        if len(frame_ip) < 40:
            return None
        proto, src, dst, payload = frame_ip[6], frame_ip[8:24], frame_ip[24:40], frame_ip[40:]
    else:
        if len(frame_ip) < 20 or frame_ip[0] >> 4 != 4:
            return None
        ihl = (frame_ip[0] & 0x0F) * 4
        proto, src, dst, payload = frame_ip[9], frame_ip[12:16], frame_ip[16:20], frame_ip[ihl:]
    if dst != own:
        return None
    fam = socket.AF_INET6 if v6 else socket.AF_INET
    sender = socket.inet_ntop(fam, src)
    for p in probes:
        if ipaddress.ip_address(p.destination) != ipaddress.ip_address(sender):
            continue
        if proto == 6 and len(payload) >= 14 and p.port is not None:
            sport, dport = struct.unpack("!HH", payload[:4])
            flags = payload[13]
            if sport == p.port and dport == p.sport:
                if flags & 0x12 == 0x12:
                    return f"SYN-ACK from {sender} port {p.port}"
                if flags & 0x04:
                    return f"RST from {sender} port {p.port}"
        if proto == (58 if v6 else 1) and len(payload) >= 8:
            kind = payload[0]
            ident = struct.unpack("!H", payload[4:6])[0]
            if kind == (129 if v6 else 0) and ident == p.ident:
                return f"echo reply from {sender}"
            if kind in ((1, 2, 3, 4) if v6 else (3, 11, 12)):
                return f"ICMP type {kind} code {payload[1]} from {sender} itself"
    return None


def forward_probe(ifname: str, src_mac: str, gw_mac: str, src_ip: str,
                  destinations: list[tuple[str, Optional[int]]], timeout: float) -> Optional[str]:
    """Blocking: frames to the candidate's MAC for ``destinations``; the first answer.

    Sent again every 0.3 s until ``timeout`` (a lost frame is not a silent router). Needs
    CAP_NET_RAW. The kernel answers a SYN-ACK for a port it never opened with a RST, which
    is harmless.
    """
    v6 = ":" in src_ip
    fam = socket.AF_INET6 if v6 else socket.AF_INET
    ethertype = ETH_P_IPV6 if v6 else ETH_P_IP
    own = socket.inet_pton(fam, src_ip)
    probes = [Probe(d, port, random.randrange(33000, 60000), random.randrange(1 << 32),
                    random.randrange(1, 1 << 16)) for d, port in destinations]
    header = bytes.fromhex(gw_mac.replace(":", "")) + bytes.fromhex(src_mac.replace(":", "")) \
        + struct.pack("!H", ethertype)
    frames = []
    for p in probes:
        dst = socket.inet_pton(fam, p.destination)
        if p.port is not None:
            frames.append(header + _ip_packet(own, dst, 6, syn_segment(own, dst, p.sport,
                                                                       p.port, p.seq)))
        frames.append(header + _ip_packet(own, dst, 58 if v6 else 1,
                                          echo_message(own, dst, p.ident, 1)))
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype)) as sock:
        sock.bind((ifname, ethertype))
        deadline = time.monotonic() + timeout
        next_send = 0.0
        while True:
            now = time.monotonic()
            if now >= deadline:
                return None
            if now >= next_send:
                for frame in frames:
                    sock.send(frame)
                next_send = now + 0.3
            sock.settimeout(max(0.01, min(next_send, deadline) - now))
            try:
                data, where = sock.recvfrom(65535)
            except socket.timeout:
                continue
            if len(where) > 2 and where[2] == PACKET_OUTGOING:
                continue
            answer = match_reply(data[14:], probes, own)
            if answer is not None:
                return answer


@dataclass
class GatewayProof:
    """One candidate gateway and what probing it showed."""

    address: str
    source: str
    mac: Optional[str] = None
    answer: Optional[str] = None  # what came back through it
    why_not: str = ""

    @property
    def proven(self) -> bool:
        return bool(self.mac and self.answer)

    def to_json(self) -> dict[str, Any]:
        return {"address": self.address, "source": self.source, "mac": self.mac,
                "answer": self.answer, "proven": self.proven, "why_not": self.why_not or None}


def prove_gateway(ifname: str, ifindex: int, src_mac: Optional[str], src_ip: Optional[str],
                  candidate: str, source: str, destinations: list[tuple[str, Optional[int]]],
                  timeout: float, mac: Optional[str] = None) -> GatewayProof:
    """Blocking: does ``candidate`` answer on the link and forward to the destinations?

    ``mac``: probe through this MAC instead of asking ARP / NDP for it.
    """
    from netcheck.probes import neighbour

    proof = GatewayProof(candidate, source)
    if not src_mac or not src_ip:
        proof.why_not = "no address of this host on the candidate's link"
        return proof
    if mac is None:
        ran, mac = neighbour.probe_on_wire(ifname, ifindex, src_mac, src_ip, candidate,
                                           min(timeout, 1.0))
        if not ran:
            proof.why_not = f"cannot send ARP/NDP here ({NEEDS_ROOT})"
            return proof
    if not mac or mac == neighbour.NO_LLADDR_OPTION:
        proof.why_not = "nothing answers ARP/NDP for it"
        return proof
    proof.mac = mac
    if not destinations:
        proof.why_not = "nothing to send through it"
        return proof
    try:
        proof.answer = forward_probe(ifname, src_mac, mac, src_ip, destinations, timeout)
    except OSError as exc:
        proof.why_not = f"cannot send through it: {exc.strerror or exc}"
        return proof
    if proof.answer is None:
        where = ", ".join(d if p is None else f"{d} port {p}" for d, p in destinations)
        proof.why_not = f"answers on the link, but nothing came back from {where} through it"
    return proof


# -- resolvers --------------------------------------------------------------------------------

@dataclass
class ResolverProof:
    """One candidate name server and its answer."""

    address: str
    source: str
    rcode: Optional[str] = None
    addresses: tuple[str, ...] = ()
    error: Optional[str] = None

    @property
    def proven(self) -> bool:
        return self.rcode in ("NOERROR", "NXDOMAIN")

    def to_json(self) -> dict[str, Any]:
        return {"address": self.address, "source": self.source, "rcode": self.rcode,
                "addresses": list(self.addresses), "error": self.error, "proven": self.proven}


async def prove_resolver(address: str, source: str, name: str, rdtype: str,
                         timeout: float) -> ResolverProof:
    """Ask ``address`` for ``name``: a real answer proves it serves this host."""
    from netcheck.probes import dns

    answer = await dns.query(address, name, rdtype, timeout, interval=0.3)
    return ResolverProof(address, source, answer.rcode, tuple(answer.addresses), answer.error)


def resolver_candidates(sources: list[tuple[str, list[str]]], exclude: set[str],
                        families: tuple[int, ...] = (4, 6)) -> list[tuple[str, str]]:
    """(address, where it came from) of the name servers worth asking, in order of trust."""
    found: dict[str, str] = {}
    for source, addresses in sources:
        for address in addresses:
            try:
                ip = ipaddress.ip_address(address.split("%")[0])
            except ValueError:
                continue
            text = str(ip)
            if ip.version in families and text not in exclude and text not in found \
                    and not ip.is_unspecified:
                found[text] = source
    return list(found.items())[:MAX_CANDIDATES]
