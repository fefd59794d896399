"""What one datagram carries, parsed whole: a DNS message, an ISAKMP/IKE header."""

from __future__ import annotations

import socket
import struct
from typing import Any, Optional

from netcheck.pcap.protocols.text import first_line

# -- DNS -------------------------------------------------------------------------------------

DNS_TYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA",
             33: "SRV", 35: "NAPTR", 41: "OPT", 43: "DS", 46: "RRSIG", 47: "NSEC",
             48: "DNSKEY", 64: "SVCB", 65: "HTTPS", 255: "ANY", 257: "CAA"}
DNS_RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP",
              5: "REFUSED", 6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH",
              10: "NOTZONE"}
MAX_ANSWERS = 16


def _dns_name(msg: bytes, pos: int) -> tuple[str, int]:
    """A (possibly compressed) domain name at ``pos``; returns it and the position after it."""
    labels: list[str] = []
    end = -1
    hops = 0
    size = 1
    while True:
        if pos >= len(msg):
            raise ValueError("name runs past the message")
        length = msg[pos]
        if length & 0xC0 == 0xC0:
            if pos + 1 >= len(msg):
                raise ValueError("pointer cut short")
            if end < 0:
                end = pos + 2
            pos = ((length & 0x3F) << 8) | msg[pos + 1]
            hops += 1
            if hops > 32:
                raise ValueError("compression loop")
            continue
        if length == 0:
            pos += 1
            break
        size += 1 + length
        if size > 255:  # RFC 1035 3.1; pointers could otherwise chain a name of any length
            raise ValueError("name longer than 255 bytes")
        label = msg[pos + 1:pos + 1 + length]
        labels.append("".join(chr(b) if 33 <= b < 127 and b != 46 else f"\\{b:03d}"
                              for b in label))
        pos += 1 + length
    return ".".join(labels) or ".", (end if end >= 0 else pos)


def _rdata(msg: bytes, rtype: int, pos: int, rdlen: int) -> str:
    rd = msg[pos:pos + rdlen]
    if rtype == 1 and rdlen == 4:
        return socket.inet_ntop(socket.AF_INET, rd)
    if rtype == 28 and rdlen == 16:
        return socket.inet_ntop(socket.AF_INET6, rd)
    if rtype in (2, 5, 12):
        return _dns_name(msg, pos)[0]
    if rtype == 15 and rdlen >= 3:
        return f"{struct.unpack_from('>H', msg, pos)[0]} {_dns_name(msg, pos + 2)[0]}"
    if rtype == 6:
        return _dns_name(msg, pos)[0]
    if rtype == 16 and rd:
        return first_line(rd[1:1 + rd[0]], 60)
    return f"({rdlen} bytes)"


def parse_dns(msg: bytes) -> Optional[dict[str, Any]]:
    """The header, first question and answers of a DNS message, or None if it is not one.

    Returns ``{"id", "response", "rcode", "query", "type", "answers"}``; answers of another
    type than the one asked are prefixed with their type (``CNAME www.lab.test``).
    """
    if len(msg) < 12:
        return None
    ident, flags, qd, an = struct.unpack_from(">HHHH", msg, 0)
    if qd > 32 or an > 512:
        return None
    response = bool(flags & 0x8000)
    out: dict[str, Any] = {"id": ident, "response": response,
                           "rcode": DNS_RCODES.get(flags & 0xF, str(flags & 0xF)),
                           "query": None, "type": None, "answers": []}
    try:
        pos = 12
        if qd:
            name, pos = _dns_name(msg, pos)
            qtype = struct.unpack_from(">H", msg, pos)[0]
            pos += 4
            out["query"], out["type"] = name, DNS_TYPES.get(qtype, f"TYPE{qtype}")
            for _ in range(qd - 1):
                pos = _dns_name(msg, pos)[1] + 4
        else:
            qtype = -1
        if response:
            for _ in range(min(an, MAX_ANSWERS)):
                pos = _dns_name(msg, pos)[1]
                rtype, _cls, _ttl, rdlen = struct.unpack_from(">HHIH", msg, pos)
                pos += 10
                if pos + rdlen > len(msg):
                    break
                value = _rdata(msg, rtype, pos, rdlen)
                if rtype != qtype:
                    value = f"{DNS_TYPES.get(rtype, f'TYPE{rtype}')} {value}"
                out["answers"].append(value)
                pos += rdlen
    except (ValueError, struct.error, IndexError):
        if out["query"] is None:
            return None
    return out


# -- IPsec -----------------------------------------------------------------------------------

IKE_EXCHANGES = {2: "Identity Protection (Main Mode)", 4: "Aggressive", 5: "Informational",
                 32: "Quick Mode", 34: "IKE_SA_INIT", 35: "IKE_AUTH", 36: "CREATE_CHILD_SA",
                 37: "INFORMATIONAL"}


def parse_ike(data: bytes) -> Optional[dict[str, Any]]:
    """SPIs, version and exchange type of an ISAKMP/IKE header, or None."""
    if len(data) < 28:
        return None
    ispi, rspi = data[0:8], data[8:16]
    version = data[17]
    exch = data[18]
    flags = data[19]
    major = version >> 4
    if major not in (1, 2):
        return None
    return {"version": f"IKEv{major}", "exchange": IKE_EXCHANGES.get(exch, f"type {exch}"),
            "initiator_spi": "0x" + ispi.hex(), "responder_spi": "0x" + rspi.hex(),
            "response": bool(flags & 0x20) if major == 2 else None}
