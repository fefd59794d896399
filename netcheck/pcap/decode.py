"""Decode a captured frame down to its transport header: link layer, IPv4/IPv6, TCP/UDP/ICMP.

:func:`locate` is on the hot path (called once per packet) and returns a plain tuple, never
an object: ``(proto, src, dst, l4, l4len, end)`` where

- ``proto`` is the IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, 50 ESP, 51 AH...),
  :data:`FRAGMENT` for a non-first IP fragment (no transport header in it), or
  :data:`NOT_IP` for a frame that carries no IP packet (then ``l4`` holds its EtherType);
- ``src`` and ``dst`` are the packed addresses (4 or 16 bytes), which are cheap to compare and
  to use in dictionary keys; :func:`address` turns them into text when needed;
- ``l4`` is the offset of the transport header in the buffer, ``l4len`` the transport length
  the IP header *declares* (what the sender sent: Wireshark computes TCP segment lengths from
  it), and ``end`` the end of what was *captured* (smaller when the snap length cut the frame);
- ``ipid`` is the IPv4 identification (-1 for IPv6): with the TCP header it tells a frame
  captured twice from a retransmission.

Nothing is ever read at or past ``end``: a header the snap length cut is not decoded, and TCP
options cut by it are left out (and said to be cut), never read from the next packet's bytes.

Link types: Ethernet (with 802.1Q/802.1ad VLAN tags, MPLS labels and LLC/SNAP), Linux cooked
v1 and v2, raw IP, BSD/OpenBSD loopback. IPv6 extension headers (hop-by-hop, routing, fragment,
destination options, AH, mobility) are walked to the transport header. Tunnels (IPv6 in IPv4,
GRE, GTP, CAPWAP, VXLAN, Teredo...) are not opened: :data:`TUNNEL_PROTOS` and
:data:`TUNNEL_PORTS` name them so the report can say what it did not look inside.
"""

from __future__ import annotations

import socket
import struct
from typing import Optional

from netcheck.pcap.reader import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
)

NOT_IP = -2
FRAGMENT = -1
ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_ARP = 0x0806
ETH_MPLS = frozenset((0x8847, 0x8848))
VLAN_TAGS = frozenset((0x8100, 0x88A8, 0x9100))
IPV6_EXTENSIONS = frozenset((0, 43, 60, 135, 139, 140))
RAW_LINKS = frozenset((LINKTYPE_RAW, 12, 14, LINKTYPE_NULL, LINKTYPE_LOOP))
ETHERTYPE_NAMES = {ETH_ARP: "arp", 0x8035: "rarp", 0x88CC: "lldp", 0x8863: "pppoe",
                   0x8864: "pppoe", 0x888E: "eapol", 0x8847: "mpls", 0x88F7: "ptp",
                   0x88BE: "erspan", 0x894F: "nsh"}
IP_PROTO_NAMES = {1: "icmp", 2: "igmp", 4: "ipip", 6: "tcp", 17: "udp", 41: "ipv6-in-ip",
                  47: "gre", 50: "esp", 51: "ah", 58: "icmpv6", 89: "ospf", 103: "pim",
                  112: "vrrp", 132: "sctp"}

# Tunnels carried straight in IP, and over UDP (by port): named, not opened.
TUNNEL_PROTOS = {4: "IPv4 in IP (4in4/4in6)", 41: "IPv6 in IPv4 (6in4/6to4)",
                 47: "GRE", 97: "EtherIP", 115: "L2TPv3"}
TUNNEL_PORTS = {2152: "GTP-U (mobile data tunnel)", 2123: "GTP-C (mobile tunnel control)",
                5246: "CAPWAP control (wireless access points)",
                5247: "CAPWAP data (wireless access points)", 4789: "VXLAN",
                6081: "Geneve", 3544: "Teredo (IPv6 over UDP)", 1701: "L2TP",
                4754: "GRE over UDP", 8472: "VXLAN (Linux)"}

Located = tuple[int, bytes, bytes, int, int, int, int]


def address(packed: bytes) -> str:
    """``198.18.2.10`` or ``2001:db8::10`` from 4 or 16 packed bytes."""
    return socket.inet_ntop(socket.AF_INET if len(packed) == 4 else socket.AF_INET6, packed)


def endpoint(packed: bytes, port: int) -> str:
    """``198.18.2.10:443`` or ``[2001:db8::10]:443``."""
    text = address(packed)
    return f"[{text}]:{port}" if len(packed) == 16 else f"{text}:{port}"


def network_layer(link: int, buf: bytes, off: int, caplen: int) -> tuple[int, int]:
    """``(ethertype, offset of the network header)``; ethertype 0 when unknown or cut."""
    end = off + caplen
    if link == LINKTYPE_ETHERNET:
        if caplen < 14:
            return 0, end
        et = buf[off + 12] << 8 | buf[off + 13]
        pos = off + 14
        while et in VLAN_TAGS and pos + 4 <= end:
            et = buf[pos + 2] << 8 | buf[pos + 3]
            pos += 4
        if et <= 1500:  # an 802.3 length field: LLC, with SNAP it may still carry IP
            if pos + 8 <= end and buf[pos] == 0xAA and buf[pos + 1] == 0xAA \
                    and buf[pos + 2] == 3 and not (buf[pos + 3] | buf[pos + 4] | buf[pos + 5]):
                return buf[pos + 6] << 8 | buf[pos + 7], pos + 8
            return 0, end
        if et in ETH_MPLS:
            return _mpls(buf, pos, end)
        return et, pos
    if link == LINKTYPE_LINUX_SLL:
        if caplen < 16:
            return 0, end
        return buf[off + 14] << 8 | buf[off + 15], off + 16
    if link == LINKTYPE_LINUX_SLL2:
        if caplen < 20:
            return 0, end
        return buf[off] << 8 | buf[off + 1], off + 20
    if link in RAW_LINKS:
        # BSD loopback puts the address family (host byte order) in 4 bytes first; its value
        # differs between systems, the IP version nibble does not.
        pos = off + 4 if link in (LINKTYPE_NULL, LINKTYPE_LOOP) else off
        if pos >= end:
            return 0, end
        version = buf[pos] >> 4
        return (ETH_IPV4 if version == 4 else ETH_IPV6 if version == 6 else 0), pos
    if link == LINKTYPE_IPV4:
        return ETH_IPV4, off
    if link == LINKTYPE_IPV6:
        return ETH_IPV6, off
    return 0, end


def _mpls(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """Past an MPLS label stack to the IP packet it carries (told by the version nibble)."""
    for _ in range(16):  # bounded: a stack without its bottom-of-stack bit cannot loop us
        if pos + 4 > end:
            break
        bottom = buf[pos + 2] & 1
        pos += 4
        if bottom:
            if pos < end and buf[pos] >> 4 in (4, 6):
                return (ETH_IPV4 if buf[pos] >> 4 == 4 else ETH_IPV6), pos
            break  # an Ethernet pseudowire or a control word: not opened
    return 0x8847, end


def locate(link: int, buf: bytes, off: int, caplen: int, wirelen: int) -> Optional[Located]:
    """The transport header of a frame (see the module docstring), or None if undecodable."""
    et, pos = network_layer(link, buf, off, caplen)
    end = off + caplen
    if et == ETH_IPV4:
        return ipv4(buf, pos, end, off + wirelen)
    if et == ETH_IPV6:
        return ipv6(buf, pos, end, off + wirelen)
    return NOT_IP, b"", b"", et, 0, end, -1


def ipv4(buf: bytes, pos: int, end: int, wire_end: int) -> Optional[Located]:
    """Decode an IPv4 header at ``pos`` (see :func:`locate`)."""
    if pos + 20 > end or buf[pos] >> 4 != 4:
        return None
    ihl = (buf[pos] & 15) * 4
    if ihl < 20 or pos + ihl > end:
        return None
    total = buf[pos + 2] << 8 | buf[pos + 3]
    if total == 0:
        total = wire_end - pos  # TCP segmentation offload: captured before the NIC split it
    proto = buf[pos + 9]
    if (buf[pos + 6] & 0x1F) | buf[pos + 7]:
        proto = FRAGMENT  # a later fragment: the transport header is in the first one
    return (proto, buf[pos + 12:pos + 16], buf[pos + 16:pos + 20], pos + ihl, total - ihl, end,
            buf[pos + 4] << 8 | buf[pos + 5])


def ipv6(buf: bytes, pos: int, end: int, wire_end: int) -> Optional[Located]:
    """Decode an IPv6 header and its extension headers at ``pos`` (see :func:`locate`)."""
    if pos + 40 > end or buf[pos] >> 4 != 6:
        return None
    plen = buf[pos + 4] << 8 | buf[pos + 5]
    if plen == 0:
        plen = wire_end - pos - 40  # jumbogram or offloaded segment
    nh = buf[pos + 6]
    src, dst = buf[pos + 8:pos + 24], buf[pos + 24:pos + 40]
    p = pos + 40
    left = plen
    for _ in range(8):  # bounded: a crafted chain of extension headers cannot loop us
        if nh in IPV6_EXTENSIONS:
            if p + 2 > end:
                return None
            size = (buf[p + 1] + 1) * 8
        elif nh == 44:  # fragment header
            if p + 8 > end:
                return None
            if (buf[p + 2] << 8 | buf[p + 3]) & 0xFFF8:
                return FRAGMENT, src, dst, p + 8, left - 8, end, -1
            size = 8
        elif nh == 51:  # AH: length in 4-byte units, minus 2
            if p + 2 > end:
                return None
            size = (buf[p + 1] + 2) * 4
        else:
            break
        nh = buf[p]
        p += size
        left -= size
    return nh, src, dst, p, left, end, -1


def tcp_options(buf: bytes, start: int, stop: int, end: int) -> dict[str, object]:
    """TCP options between ``start`` and ``stop``: mss, wscale, sack_perm, sack, tsval, tsecr.

    ``end`` is the end of the captured bytes: options past it were not captured (a small snap
    length) and are not read; ``cut`` is then True, and an option cut in the middle is left
    out rather than guessed.
    """
    out: dict[str, object] = {}
    if stop > end:
        out["cut"] = True
        stop = end
    pos = start
    while pos < stop:
        kind = buf[pos]
        if kind == 0:
            break
        if kind == 1:
            pos += 1
            continue
        if pos + 1 >= stop:
            break
        size = buf[pos + 1]
        if size < 2 or pos + size > stop:
            break
        if kind == 2 and size == 4:
            out["mss"] = buf[pos + 2] << 8 | buf[pos + 3]
        elif kind == 3 and size == 3:
            out["wscale"] = buf[pos + 2]
        elif kind == 4:
            out["sack_perm"] = True
        elif kind == 5 and size >= 10:
            edges = struct.unpack_from(f">{(size - 2) // 4}I", buf, pos + 2)
            out["sack"] = list(zip(edges[::2], edges[1::2]))
        elif kind == 8 and size == 10:
            out["tsval"], out["tsecr"] = struct.unpack_from(">II", buf, pos + 2)
        elif kind == 34:
            out["tfo"] = True
        pos += size
    return out
