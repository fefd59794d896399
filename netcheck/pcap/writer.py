"""Write pcap and pcapng files, and build the frames to put in them.

Used by ``netcheck trace -w FILE`` (the captured packets, for Wireshark), by the tests (small
captures of the odd cases, byte for byte what tcpdump would write) and by the benchmark (a
million-packet capture made in seconds). Frames are built with correct IPv4, TCP, UDP and
ICMP checksums so that Wireshark and tshark show nothing odd about them.

:class:`TcpScript` plays one TCP conversation (handshake, data, close) keeping the sequence
and acknowledgement numbers right, so a test reads like the session it describes.
"""

from __future__ import annotations

import socket
import struct
from array import array
from typing import IO, Callable, Optional

from netcheck.pcap.reader import LINKTYPE_ETHERNET

FIN, SYN, RST, PSH, ACK = 1, 2, 4, 8, 16
CLIENT_MAC = bytes.fromhex("020000000001")
SERVER_MAC = bytes.fromhex("020000000002")


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\0"
    total = sum(array("H", data))  # native order: the folded sum is byte-swapped consistently
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    value = ~total & 0xFFFF
    return socket.htons(value) if array("H", b"\x01\x00")[0] == 1 else value


def _packed(addr: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6 if ":" in addr else socket.AF_INET, addr)


def ether(payload: bytes, ethertype: int, src: bytes = CLIENT_MAC, dst: bytes = SERVER_MAC,
          vlan: Optional[int] = None) -> bytes:
    """An Ethernet II frame, with an 802.1Q tag if ``vlan`` is given."""
    tag = struct.pack(">HH", 0x8100, vlan) if vlan is not None else b""
    return dst + src + tag + struct.pack(">H", ethertype) + payload


def ipv4(src: str, dst: str, proto: int, payload: bytes, ttl: int = 64, ident: int = 0,
         fragment: int = 0x4000) -> bytes:
    """An IPv4 packet (no options, Don't Fragment set by default)."""
    header = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, fragment, ttl,
                         proto, 0, _packed(src), _packed(dst))
    return header[:10] + struct.pack(">H", checksum(header)) + header[12:] + payload


def ipv6(src: str, dst: str, nh: int, payload: bytes, hlim: int = 64,
         ext: bytes = b"", ext_nh: Optional[int] = None) -> bytes:
    """An IPv6 packet; ``ext`` are extension headers (their first Next Header is ``ext_nh``)."""
    first = ext_nh if ext else nh
    return struct.pack(">IHBB16s16s", 0x60000000, len(ext) + len(payload), first, hlim,
                       _packed(src), _packed(dst)) + ext + payload


def _pseudo(src: str, dst: str, proto: int, length: int) -> bytes:
    s, d = _packed(src), _packed(dst)
    if len(s) == 4:
        return s + d + struct.pack(">BBH", 0, proto, length)
    return s + d + struct.pack(">IxxxB", length, proto)


def tcp(src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int,
        window: int = 64240, payload: bytes = b"", options: bytes = b"",
        with_checksum: bool = True) -> bytes:
    """A TCP segment (header, options padded to 4 bytes, payload) with its checksum."""
    options += b"\x01" * (-len(options) % 4)
    offset = (20 + len(options)) // 4
    header = struct.pack(">HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                         offset << 4, flags, window, 0, 0) + options
    if with_checksum:
        value = checksum(_pseudo(src, dst, 6, len(header) + len(payload)) + header + payload)
        header = header[:16] + struct.pack(">H", value) + header[18:]
    return header + payload


def udp(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    """A UDP datagram with its checksum."""
    header = struct.pack(">HHHH", sport, dport, 8 + len(payload), 0)
    value = checksum(_pseudo(src, dst, 17, 8 + len(payload)) + header + payload) or 0xFFFF
    return header[:6] + struct.pack(">H", value) + payload


def icmp(itype: int, code: int, body: bytes) -> bytes:
    """An ICMPv4 message (``body`` after the 4-byte type/code/checksum)."""
    header = struct.pack(">BBH", itype, code, 0)
    return header[:2] + struct.pack(">H", checksum(header + body)) + body


def ip_packet(src: str, dst: str, proto: int, payload: bytes) -> bytes:
    """IPv4 or IPv6 by the address family."""
    if ":" in src:
        return ipv6(src, dst, proto, payload)
    return ipv4(src, dst, proto, payload)


def frame(src: str, dst: str, proto: int, payload: bytes, linktype: int = LINKTYPE_ETHERNET,
          from_client: bool = True) -> bytes:
    """A whole link-layer frame for ``linktype`` around an IP packet."""
    packet = ip_packet(src, dst, proto, payload)
    ethertype = 0x86DD if ":" in src else 0x0800
    if linktype == LINKTYPE_ETHERNET:
        macs = (CLIENT_MAC, SERVER_MAC) if from_client else (SERVER_MAC, CLIENT_MAC)
        return ether(packet, ethertype, src=macs[0], dst=macs[1])
    if linktype == 113:  # Linux cooked v1
        kind = 4 if from_client else 0
        return struct.pack(">HHH8sH", kind, 1, 6, CLIENT_MAC + b"\0\0", ethertype) + packet
    if linktype == 276:  # Linux cooked v2
        kind = 4 if from_client else 0
        return struct.pack(">HHIHBB8s", ethertype, 0, 2, 1, kind, 6, CLIENT_MAC + b"\0\0") \
            + packet
    if linktype == 0:  # BSD loopback, host byte order family
        family = 24 if ":" in src else 2
        return struct.pack("<I", family) + packet
    if linktype in (101, 12, 14, 228, 229):
        return packet
    raise ValueError(f"cannot build frames for link type {linktype}")


class PcapWriter:
    """A classic pcap file: one link type, microsecond or nanosecond timestamps."""

    def __init__(self, fh: IO[bytes], linktype: int = LINKTYPE_ETHERNET,
                 snaplen: int = 262144, nanosecond: bool = False,
                 big_endian: bool = False) -> None:
        """Write the file header to ``fh`` (a binary file)."""
        self.fh = fh
        self.snaplen = snaplen
        self.nanosecond = nanosecond
        self.endian = ">" if big_endian else "<"
        magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
        fh.write(struct.pack(self.endian + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))
        self._rec = struct.Struct(self.endian + "IIII").pack

    def write(self, ts: float, data: bytes, wirelen: Optional[int] = None) -> None:
        """One packet at time ``ts`` (seconds since the epoch); cut to the snap length."""
        sec = int(ts)
        frac = round((ts - sec) * (1e9 if self.nanosecond else 1e6))
        if frac >= (1_000_000_000 if self.nanosecond else 1_000_000):
            sec, frac = sec + 1, 0
        cap = data[:self.snaplen]
        self.fh.write(self._rec(sec, frac, len(cap), wirelen or len(data)))
        self.fh.write(cap)


class PcapngWriter:
    """A pcapng file: one section, any number of interfaces of any link types."""

    def __init__(self, fh: IO[bytes], big_endian: bool = False) -> None:
        """Write the section header block."""
        self.fh = fh
        self.e = ">" if big_endian else "<"
        self.ifaces: list[tuple[int, int]] = []  # (snaplen, ticks per second)
        options = self._option(4, b"netcheck") + self._option(0, b"")
        body = struct.pack(self.e + "IHHq", 0x1A2B3C4D, 1, 0, -1) + options
        self._block(0x0A0D0D0A, body)

    def _option(self, code: int, value: bytes) -> bytes:
        return struct.pack(self.e + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)

    def _block(self, btype: int, body: bytes) -> None:
        size = 12 + len(body)
        self.fh.write(struct.pack(self.e + "II", btype, size) + body +
                      struct.pack(self.e + "I", size))

    def add_interface(self, linktype: int, name: str = "", snaplen: int = 262144,
                      tsresol: int = 6) -> int:
        """Declare an interface; returns its id. ``tsresol`` is the power of ten of a tick."""
        options = b""
        if name:
            options += self._option(2, name.encode())
        if tsresol != 6:
            options += self._option(9, bytes([tsresol]))
        if options:
            options += self._option(0, b"")
        self._block(1, struct.pack(self.e + "HHI", linktype, 0, snaplen) + options)
        self.ifaces.append((snaplen, 10 ** tsresol))
        return len(self.ifaces) - 1

    def write(self, iface: int, ts: float, data: bytes, wirelen: Optional[int] = None) -> None:
        """An enhanced packet block on interface ``iface``."""
        snaplen, tps = self.ifaces[iface]
        cap = data[:snaplen]
        ticks = round(ts * tps)
        body = struct.pack(self.e + "IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(cap),
                           wirelen or len(data)) + cap + b"\0" * (-len(cap) % 4)
        self._block(6, body)


Emit = Callable[[float, bytes, bool], None]


class TcpScript:
    """Play one TCP conversation into ``emit(ts, frame, from_client)``, numbers kept right.

    >>> frames = []
    >>> s = TcpScript(lambda ts, f, c: frames.append(f), "198.18.1.2", "198.18.2.10", 80)
    >>> s.handshake(); s.send(True, b"GET / HTTP/1.1\\r\\n\\r\\n"); s.close(True)
    >>> len(frames)
    8
    """

    def __init__(self, emit: Emit, client: str, server: str, sport: int, cport: int = 53574,
                 t0: float = 1_700_000_000.0, isn_c: int = 1_000_000, isn_s: int = 5_000_000,
                 rtt: float = 0.0004, linktype: int = LINKTYPE_ETHERNET,
                 mss: int = 1460, wscale: Optional[int] = 7, timestamps: bool = False,
                 checksums: bool = True) -> None:
        """Addresses (IPv4 or IPv6), ports, start time, ISNs, one-way delay (``rtt`` / 2)."""
        self.emit = emit
        self.client, self.server = client, server
        self.cport, self.sport = cport, sport
        self.now = t0
        self.rtt = rtt
        self.cseq = isn_c
        self.sseq = isn_s
        self.cack = 0
        self.sack = 0
        self.linktype = linktype
        self.mss = mss
        self.wscale = wscale
        self.timestamps = timestamps
        self.checksums = checksums
        self.cwin = 64240
        self.swin = 65160

    def _options(self, synack: bool) -> bytes:
        opts = struct.pack(">BBH", 2, 4, self.mss) + b"\x04\x02"  # MSS, SACK permitted
        if self.timestamps:
            opts += struct.pack(">BBII", 8, 10, int(self.now * 1000) & 0xFFFFFFFF, 0)
        if self.wscale is not None:
            opts += b"\x01" + struct.pack(">BBB", 3, 3, self.wscale)
        return opts

    def packet(self, from_client: bool, flags: int, payload: bytes = b"",
               seq: Optional[int] = None, ack: Optional[int] = None, window: Optional[int] = None,
               options: bytes = b"", advance: float = 0.0) -> None:
        """Emit one raw segment (numbers default to the conversation's current ones)."""
        self.now += advance
        if from_client:
            src, dst, sp, dp = self.client, self.server, self.cport, self.sport
            seq = self.cseq if seq is None else seq
            ack = self.cack if ack is None else ack
            window = self.cwin if window is None else window
        else:
            src, dst, sp, dp = self.server, self.client, self.sport, self.cport
            seq = self.sseq if seq is None else seq
            ack = self.sack if ack is None else ack
            window = self.swin if window is None else window
        segment = tcp(src, dst, sp, dp, seq, ack if flags & ACK else 0, flags, window,
                      payload, options, with_checksum=self.checksums)
        self.emit(self.now, frame(src, dst, 6, segment, self.linktype, from_client),
                  from_client)

    def syn(self, advance: float = 0.0) -> None:
        """The client's SYN (call again for a retry: same ISN)."""
        self.packet(True, SYN, options=self._options(False), ack=0, advance=advance)

    def synack(self) -> None:
        """The server's SYN-ACK."""
        self.sack = (self.cseq + 1) & 0xFFFFFFFF
        self.packet(False, SYN | ACK, options=self._options(True), advance=self.rtt / 2)

    def handshake(self) -> None:
        """SYN, SYN-ACK, ACK."""
        self.syn()
        self.synack()
        self.cseq = (self.cseq + 1) & 0xFFFFFFFF
        self.sseq = (self.sseq + 1) & 0xFFFFFFFF
        self.cack = self.sseq
        self.packet(True, ACK, advance=self.rtt / 2)

    def send(self, from_client: bool, data: bytes, segment: int = 1448,
             ack_each: bool = True, gap: float = 0.00005) -> None:
        """Data in segments of at most ``segment`` bytes; the peer ACKs (each one, or once)."""
        for i in range(0, len(data), segment):
            chunk = data[i:i + segment]
            self.packet(from_client, PSH | ACK if i + segment >= len(data) else ACK, chunk,
                        advance=gap)
            if from_client:
                self.cseq = (self.cseq + len(chunk)) & 0xFFFFFFFF
                self.sack = self.cseq
            else:
                self.sseq = (self.sseq + len(chunk)) & 0xFFFFFFFF
                self.cack = self.sseq
            if ack_each:
                self.packet(not from_client, ACK, advance=self.rtt / 2)
        if not ack_each:
            self.packet(not from_client, ACK, advance=self.rtt / 2)

    def close(self, client_first: bool = True, combined: bool = True) -> None:
        """FIN from one side; the other answers FIN+ACK (``combined``) or ACK then FIN."""
        self.fin(client_first)
        if combined:
            self.fin(not client_first, advance=self.rtt / 2)
        else:
            self.packet(not client_first, ACK, advance=self.rtt / 2)
            self.fin(not client_first, advance=0.0001)
        self.packet(client_first, ACK, advance=self.rtt / 2)

    def fin(self, from_client: bool, advance: float = 0.0001) -> None:
        """A FIN+ACK from one side (its sequence number then counts one more)."""
        self.packet(from_client, FIN | ACK, advance=advance)
        if from_client:
            self.cseq = (self.cseq + 1) & 0xFFFFFFFF
            self.sack = self.cseq
        else:
            self.sseq = (self.sseq + 1) & 0xFFFFFFFF
            self.cack = self.sseq

    def rst(self, from_client: bool, advance: float = 0.0001) -> None:
        """An RST+ACK from one side."""
        self.packet(from_client, RST | ACK, advance=advance)


def tls_record(ctype: int, body: bytes, version: int = 0x0303) -> bytes:
    """One TLS record."""
    return struct.pack(">BHH", ctype, version, len(body)) + body


def tls_handshake(mtype: int, body: bytes) -> bytes:
    """One TLS handshake message (to put in a record of type 22)."""
    return struct.pack(">B", mtype) + len(body).to_bytes(3, "big") + body


def client_hello(sni: str, versions: tuple[int, ...] = (0x0304, 0x0303)) -> bytes:
    """A TLS ClientHello handshake message with SNI and supported_versions."""
    name = sni.encode()
    sni_ext = struct.pack(">H", len(name) + 3) + b"\0" + struct.pack(">H", len(name)) + name
    vers = bytes([2 * len(versions)]) + b"".join(struct.pack(">H", v) for v in versions)
    exts = struct.pack(">HH", 0, len(sni_ext)) + sni_ext + struct.pack(">HH", 43, len(vers)) \
        + vers
    body = struct.pack(">H", 0x0303) + b"\x11" * 32 + b"\x20" + b"\x22" * 32 + \
        struct.pack(">HHH", 4, 0x1301, 0x1302) + b"\x01\x00" + struct.pack(">H", len(exts)) + exts
    return tls_handshake(1, body)


def server_hello(version: int = 0x0304) -> bytes:
    """A TLS ServerHello handshake message (supported_versions when ``version`` is 1.3)."""
    exts = struct.pack(">HHH", 43, 2, version) if version == 0x0304 else b""
    body = struct.pack(">H", 0x0303) + b"\x33" * 32 + b"\x20" + b"\x22" * 32 + \
        struct.pack(">HB", 0x1301, 0) + struct.pack(">H", len(exts)) + exts
    return tls_handshake(2, body)


def dns_query(ident: int, name: str, qtype: int = 1) -> bytes:
    """A DNS query message (recursion desired)."""
    return struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0) + _qname(name) + \
        struct.pack(">HH", qtype, 1)


def dns_response(ident: int, name: str, qtype: int, answers: list[tuple[int, bytes]],
                 rcode: int = 0) -> bytes:
    """A DNS response; ``answers`` are ``(type, rdata)`` for the question name."""
    out = struct.pack(">HHHHHH", ident, 0x8180 | rcode, 1, len(answers), 0, 0) + \
        _qname(name) + struct.pack(">HH", qtype, 1)
    for rtype, rdata in answers:
        out += b"\xc0\x0c" + struct.pack(">HHIH", rtype, 1, 60, len(rdata)) + rdata
    return out


def _qname(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.strip(".").split(".")) + b"\0"


class Recorder:
    """Collect frames (a :class:`TcpScript` ``emit``), then write them or analyse them.

    >>> rec = Recorder()
    >>> TcpScript(rec, "198.18.1.2", "198.18.2.10", 80).handshake()
    >>> len(rec.frames)
    3
    """

    def __init__(self, linktype: int = LINKTYPE_ETHERNET) -> None:
        """Frames of one link type."""
        self.linktype = linktype
        self.frames: list[tuple[float, bytes]] = []

    def __call__(self, ts: float, data: bytes, from_client: bool = True) -> None:
        """Add one frame (the ``Emit`` signature)."""
        self.frames.append((ts, data))

    def add(self, ts: float, data: bytes) -> None:
        """Add one frame."""
        self.frames.append((ts, data))

    def packets(self, snaplen: int = 262144) -> list[tuple]:
        """The frames as reader tuples ``(t, linktype, buf, offset, caplen, wirelen, n)``."""
        if not self.frames:
            return []
        t0 = self.frames[0][0]
        return [(ts - t0, self.linktype, data, 0, min(len(data), snaplen), len(data), i + 1)
                for i, (ts, data) in enumerate(self.frames)]

    def write_pcap(self, fh: IO[bytes], **options: object) -> None:
        """Write all frames as a pcap file (options as for :class:`PcapWriter`)."""
        writer = PcapWriter(fh, linktype=self.linktype, **options)  # type: ignore[arg-type]
        for ts, data in self.frames:
            writer.write(ts, data)
