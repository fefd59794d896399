"""What the capture holds besides TCP sessions: DNS exchanges (over UDP, and over TCP as
handed on by :mod:`netcheck.pcap.payload`), UDP flows, IKE, ESP/AH, ICMP (an error quoting a
TCP segment is told to that session), tunnels and what was not decoded.

:class:`~netcheck.pcap.sessions.Analyzer` calls :meth:`OtherTraffic.udp`,
:meth:`OtherTraffic.icmp` and :meth:`OtherTraffic.ipsec` once per packet of those protocols,
and counts the rest here; every list and table has a cap (bounded memory on any capture).
"""

from __future__ import annotations

import struct
from typing import Any, Optional

from netcheck.pcap import protocols as P
from netcheck.pcap.decode import TUNNEL_PORTS, address, endpoint
from netcheck.pcap.tcpsession import MAX_EVENTS, Session

MAX_DNS = 5_000
MAX_FLOWS = 1_000
MAX_RECEIVERS = 100_000
MAX_KINDS = 64  # distinct ICMP messages, IKE exchanges, TLS alerts listed
MAX_TEXT = 256  # characters kept of a DNS name or answer

_u16 = struct.Struct(">H").unpack_from


def _cut(text: Optional[str]) -> Optional[str]:
    """A name or answer from a packet, at most :data:`MAX_TEXT` characters (bounded memory)."""
    if text is None or len(text) <= MAX_TEXT:
        return text
    return text[:MAX_TEXT - 3] + "..."


class DnsLog:
    """DNS exchanges, each query paired with its answer (the netcheck-pcap/1 ``dns`` list)."""

    def __init__(self, limit: int = MAX_DNS) -> None:
        """limit: exchanges listed; past it they are counted in :attr:`dropped`."""
        self.limit = limit
        self.entries: list[dict[str, Any]] = []
        self.pending: dict[tuple, dict[str, Any]] = {}
        self.dropped = 0

    def message(self, data: bytes, client: bytes, server: bytes, cport: int, t: float,
                response: bool, transport: str) -> bool:
        """One DNS message; False if ``data`` is not one (of the direction expected)."""
        limit = self.limit
        if len(self.entries) >= limit and len(data) >= 12:
            # Past the cap only answers to listed queries matter: the ID and the QR bit tell,
            # without parsing the message (a DNS-heavy capture stays fast).
            key = (client, server, cport, data[0] << 8 | data[1])
            if not (data[2] & 0x80 and key in self.pending):
                self.dropped += 1
                return True
        msg = P.parse_dns(data)
        if msg is None or msg["response"] != response:
            return False
        key = (client, server, cport, msg["id"])
        if not response:
            if key in self.pending:
                return True  # a retry of the same query: Wireshark lists it, we keep one
            if len(self.entries) >= limit:
                self.dropped += 1
                return True
            entry = self._entry(msg, t, server, transport)
            if len(self.pending) > limit:
                self.pending.pop(next(iter(self.pending)))
            self.pending[key] = entry
            return True
        asked = self.pending.pop(key, None)
        if asked is None:
            if len(self.entries) >= limit:
                self.dropped += 1
                return True
            entry = self._entry(msg, t, server, transport)
        else:
            entry = asked
            entry["rtt_ms"] = round((t - entry["t"]) * 1000, 3)
        entry["rcode"] = msg["rcode"]
        entry["answers"] = [_cut(answer) for answer in msg["answers"]]
        return True

    def tcp_segment(self, s: Session, c2s: bool, data: bytes) -> None:
        """A data segment of a DNS-over-TCP session: a 2-byte length, then the message (only
        whole messages in a segment)."""
        if len(data) >= 14:
            size = _u16(data, 0)[0]
            if size <= len(data) - 2:
                self.message(data[2:2 + size], s.caddr, s.saddr, s.cport, s.last_t,
                             not c2s, "tcp")

    def _entry(self, msg: dict[str, Any], t: float, server: bytes,
               transport: str) -> dict[str, Any]:
        """A new listed DNS exchange (its answer, if any, is filled in by the caller)."""
        entry = {"t": round(t, 6), "id": msg["id"], "query": _cut(msg["query"]),
                 "type": msg["type"], "rcode": None, "answers": [],
                 "server": address(server), "transport": transport, "rtt_ms": None}
        self.entries.append(entry)
        return entry


class OtherTraffic:
    """Everything but TCP sessions: UDP flows, DNS, IKE, ESP/AH, ICMP, and the counts of
    what was seen and not looked inside."""

    def __init__(self, table: dict[bytes, tuple[Session, bool]], dns: DnsLog,
                 max_events: int = MAX_EVENTS) -> None:
        """table: the analysis' live TCP sessions (an ICMP error is told to the one it
        quotes); dns: where DNS exchanges go; max_events: events kept of a recorded session."""
        self.table = table
        self.dns = dns
        self.max_events = max_events
        self.udp_flows: dict[bytes, list[Any]] = {}
        self.udp_dropped = [0, 0]  # flows, packets
        self.ike: dict[str, Any] = {}
        self.esp: dict[str, list[Any]] = {}
        self.icmp_kinds: dict[str, int] = {}
        self.non_ip: dict[str, int] = {}
        self.undecoded = 0
        self.fragments = 0
        self.malformed: dict[str, int] = {}  # what could not be decoded, by kind
        self.tunnels: dict[str, int] = {}  # tunnels seen and not opened: name -> packets
        self.receivers: set[bytes] = set()  # addresses that received a non-TCP packet

    @staticmethod
    def count(table: dict[str, int], name: str) -> None:
        """One more packet of ``name`` in one of the count tables."""
        table[name] = table.get(name, 0) + 1

    def udp(self, src: bytes, dst: bytes, sp: int, dp: int, t: float, buf: bytes, l4: int,
            l4len: int, end: int) -> None:
        """One UDP datagram: DNS, a tunnel, IKE or ESP in UDP, else a flow counted."""
        data = buf[l4 + 8:min(end, l4 + l4len)]
        if sp == 53 or dp == 53:
            if self.dns.message(data, src if dp == 53 else dst, dst if dp == 53 else src,
                                sp if dp == 53 else dp, t, sp == 53, "udp"):
                if sp == 53:
                    self.received(dst)
                return
            self.count(self.malformed, "DNS message")
        tunnel = TUNNEL_PORTS.get(dp) or TUNNEL_PORTS.get(sp)
        if tunnel is not None:
            self.count(self.tunnels, tunnel)
            return
        if sp in (500, 4500) or dp in (500, 4500):
            if (sp == 4500 or dp == 4500) and data[:4] != b"\0\0\0\0":
                if len(data) >= 8:  # ESP in UDP (NAT traversal): starts with the SPI
                    self._esp_spi("esp", data[:4])
                    return
            ike = P.parse_ike(data[4:] if (sp == 4500 or dp == 4500) else data)
            if ike:
                self._ike(ike)
                return
        key = src + dst + buf[l4:l4 + 4]
        flow = self.udp_flows.get(key)
        if flow is None:
            flow = self.udp_flows.get(dst + src + buf[l4 + 2:l4 + 4] + buf[l4:l4 + 2])
        if flow is None:
            if len(self.udp_flows) >= MAX_FLOWS:
                self.udp_dropped[1] += 1
                return
            flow = [endpoint(src, sp), endpoint(dst, dp), 0, 0, t]
            self.udp_flows[key] = flow
        flow[2] += 1
        flow[3] += max(0, l4len - 8)

    def received(self, address: bytes) -> None:
        """``address`` received a captured packet (bounded: past the cap, not recorded)."""
        if len(self.receivers) < MAX_RECEIVERS:
            self.receivers.add(address)

    def icmp(self, proto: int, src: bytes, dst: bytes, t: float, n: int, buf: bytes, l4: int,
             end: int) -> None:
        """One ICMP or ICMPv6 message (``proto`` 1 or 58), counted by kind."""
        if l4 + 2 > end:
            return
        itype, code = buf[l4], buf[l4 + 1]
        self.received(dst)
        from netcheck.pcap.explain import icmp_name

        name = icmp_name(proto, itype, code)
        if name not in self.icmp_kinds and len(self.icmp_kinds) >= MAX_KINDS:
            name = "other"  # 65536 type/code pairs must not make 65536 entries
        self.count(self.icmp_kinds, name)
        if (proto == 1 and itype in (3, 11)) or (proto == 58 and itype in (1, 3)):
            self._icmp_error(proto, name, src, t, n, buf, l4 + 8, end)

    def _icmp_error(self, proto: int, name: str, src: bytes, t: float, n: int, buf: bytes,
                    inner: int, end: int) -> None:
        """An error quoting one of our TCP segments explains that session's silence."""
        loc = None
        if proto == 1 and inner + 20 <= end:
            from netcheck.pcap.decode import ipv4

            loc = ipv4(buf, inner, end, end)
        elif proto == 58 and inner + 40 <= end:
            from netcheck.pcap.decode import ipv6

            loc = ipv6(buf, inner, end, end)
        if loc and loc[0] == 6 and loc[3] + 4 <= end:
            isrc, idst, il4 = loc[1], loc[2], loc[3]
            entry = self.table.get(isrc + idst + buf[il4:il4 + 4])
            if entry is not None:
                s = entry[0]
                s.icmp = f"{name} from {address(src)}"
                if s.events is not None and len(s.events) < self.max_events:
                    s.events.append((n, t, None, 0, 0, 0, 0, 0, {}, [("icmp", s.icmp)],
                                     None))

    def ipsec(self, proto: int, buf: bytes, l4: int, end: int) -> None:
        """One ESP (50) or AH (51) packet: counted, its SPI listed."""
        if proto == 50 and l4 + 4 <= end:
            self._esp_spi("esp", buf[l4:l4 + 4])
        elif proto == 51 and l4 + 8 <= end:
            self._esp_spi("ah", buf[l4 + 4:l4 + 8])

    def _esp_spi(self, kind: str, spi: bytes) -> None:
        entry = self.esp.setdefault(kind, [0, []])
        entry[0] += 1
        text = "0x" + spi.hex()
        if text not in entry[1] and len(entry[1]) < 64:
            entry[1].append(text)

    def _ike(self, ike: dict[str, Any]) -> None:
        info = self.ike
        if not info:
            info.update({"packets": 0, "versions": [], "exchanges": [], "spis": []})
        info["packets"] += 1
        if ike["version"] not in info["versions"]:
            info["versions"].append(ike["version"])
        if ike["exchange"] not in info["exchanges"] and len(info["exchanges"]) < MAX_KINDS:
            info["exchanges"].append(ike["exchange"])
        pair = f"{ike['initiator_spi']}/{ike['responder_spi']}"
        if pair not in info["spis"] and len(info["spis"]) < 64:
            info["spis"].append(pair)

    # -- the report -------------------------------------------------------------------------

    def not_decoded(self, tls_bad: int) -> list[dict[str, Any]]:
        """What is in the capture but not looked inside: tunnels, and malformed headers or
        messages (``tls_bad``: TLS records), each with its packet count (the summary names
        them, never silence)."""
        out = [{"what": name, "kind": "tunnel", "packets": count}
               for name, count in sorted(self.tunnels.items())]
        malformed = dict(self.malformed)
        if self.undecoded:
            malformed["IP header"] = malformed.get("IP header", 0) + self.undecoded
        if tls_bad:
            malformed["TLS record"] = tls_bad
        out += [{"what": name, "kind": "malformed", "packets": count}
                for name, count in sorted(malformed.items())]
        return out

    def other(self) -> list[dict[str, Any]]:
        """The netcheck-pcap/1 ``other`` list: IKE, ESP/AH, UDP flows, ICMP, non-IP."""
        out: list[dict[str, Any]] = []
        if self.ike:
            out.append({"proto": "isakmp", **self.ike})
        for kind, (count, spis) in self.esp.items():
            out.append({"proto": kind, "packets": count, "spis": list(spis)})
        for client, server, packets, size, t in self.udp_flows.values():
            out.append({"proto": "udp", "client": client, "server": server,
                        "packets": packets, "bytes": size, "first_ts": round(t, 6)})
        if self.udp_dropped[1]:
            out.append({"proto": "udp", "client": None, "server": None,
                        "packets": self.udp_dropped[1], "bytes": None,
                        "note": f"flows beyond the first {MAX_FLOWS}"})
        if self.icmp_kinds:
            out.append({"proto": "icmp", "packets": sum(self.icmp_kinds.values()),
                        "messages": dict(self.icmp_kinds)})
        for name, count in self.non_ip.items():
            out.append({"proto": name, "packets": count})
        if self.fragments:
            out.append({"proto": "ip-fragment", "packets": self.fragments})
        if self.undecoded:
            out.append({"proto": "undecoded", "packets": self.undecoded})
        return out
