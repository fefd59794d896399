"""The few rtnetlink requests a run makes, read with :mod:`socket` and :mod:`struct`.

A snapshot (:func:`netcheck.facts.snapshot`) is five dumps — links, addresses, routes, policy
rules, neighbours — and a path is one ``ip route get`` per address: a few milliseconds of
kernel work. Through pyroute2 each run first paid 45-70 ms of imports (``pyroute2.iproute``
brings unittest.mock, every tc message class...) on its critical path: every rung waited for
the snapshot. So the messages are decoded here, with pyroute2's names and shapes
(``msg["index"]``, ``msg.get_attr("IFLA_IFNAME")``), for the attributes netcheck reads and
nothing else; an attribute not in the tables below is skipped. The structures are the
kernel's (``linux/rtnetlink.h``, ``if_link.h``, ``if_addr.h``, ``fib_rules.h``,
``neighbour.h``). ``tests/unit/test_rtnl.py`` compares the decoding with pyroute2's on this
host's own tables.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from typing import Any, Callable, Iterator, Optional

NETLINK_ROUTE = 0
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_DUMP_INTR, NLM_F_DUMP = 0x1, 0x2, 0x10, 0x300
NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE = 1, 2, 3
RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE, RTM_GETNEIGH, RTM_GETRULE = 18, 22, 26, 30, 34
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED and NLA_F_NET_BYTEORDER
_NLMSGHDR = struct.Struct("=IHHII")
_RTATTR = struct.Struct("=HH")
_RTNEXTHOP = struct.Struct("=HBBi")
RECV_BYTES = 1 << 17  # more than the kernel puts in one datagram of a dump
DUMP_TRIES = 3  # a dump the kernel marks interrupted (the tables changed meanwhile) is redone

OPERSTATES = ("UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP")
# struct rtnl_link_stats64, the fields netcheck reads (the struct goes on; they come first).
STATS64 = ("rx_packets", "tx_packets", "rx_bytes", "tx_bytes", "rx_errors", "tx_errors",
           "rx_dropped", "tx_dropped")


class NetlinkError(OSError):
    """The kernel refused a request; ``code`` is the errno (as pyroute2's NetlinkError)."""

    def __init__(self, code: int, text: str = "") -> None:
        super().__init__(code, text or os.strerror(code))
        self.code = code


def _u8(data: bytes, _family: int) -> int:
    return data[0]


def _u32(data: bytes, _family: int) -> int:
    return int(struct.unpack_from("=I", data)[0])


def _i32(data: bytes, _family: int) -> int:
    return int(struct.unpack_from("=i", data)[0])


def _text(data: bytes, _family: int) -> str:
    return data.split(b"\0", 1)[0].decode("utf-8", "replace")


def _ip(data: bytes, family: int) -> Optional[str]:
    if family == socket.AF_INET and len(data) >= 4:
        return socket.inet_ntop(socket.AF_INET, data[:4])
    if family == socket.AF_INET6 and len(data) >= 16:
        return socket.inet_ntop(socket.AF_INET6, data[:16])
    return None


def _l2(data: bytes, _family: int) -> str:
    return ":".join(f"{b:02x}" for b in data)


def _stats64(data: bytes, _family: int) -> dict[str, int]:
    values = struct.unpack_from(f"={len(STATS64)}Q", data) if len(data) >= 8 * len(STATS64) \
        else ()
    return dict(zip(STATS64, values))


def _range32(data: bytes, _family: int) -> dict[str, int]:
    start, end = struct.unpack_from("=II", data)
    return {"start": start, "end": end}


def _range16(data: bytes, _family: int) -> dict[str, int]:
    start, end = struct.unpack_from("=HH", data)
    return {"start": start, "end": end}


def _linkinfo(data: bytes, family: int) -> Message:
    return Message({}, _attrs(data, 0, _LINKINFO, family))


def _multipath(data: bytes, family: int) -> list[Message]:
    hops, offset = [], 0
    while offset + _RTNEXTHOP.size <= len(data):
        length, flags, _hops, ifindex = _RTNEXTHOP.unpack_from(data, offset)
        if length < _RTNEXTHOP.size:
            break
        end = min(offset + length, len(data))
        hops.append(Message({"flags": flags, "oif": ifindex},
                            _attrs(data[:end], offset + _RTNEXTHOP.size, _ROUTE, family)))
        offset += (length + 3) & ~3
    return hops


Decoder = Callable[[bytes, int], Any]
_LINK: dict[int, tuple[str, Decoder]] = {
    1: ("IFLA_ADDRESS", _l2), 3: ("IFLA_IFNAME", _text), 4: ("IFLA_MTU", _u32),
    16: ("IFLA_OPERSTATE", lambda d, f: OPERSTATES[d[0]] if d[0] < len(OPERSTATES) else "UNKNOWN"),
    18: ("IFLA_LINKINFO", _linkinfo), 23: ("IFLA_STATS64", _stats64)}
_LINKINFO: dict[int, tuple[str, Decoder]] = {1: ("IFLA_INFO_KIND", _text)}
_ADDR: dict[int, tuple[str, Decoder]] = {
    1: ("IFA_ADDRESS", _ip), 2: ("IFA_LOCAL", _ip), 3: ("IFA_LABEL", _text), 8: ("IFA_FLAGS", _u32)}
_ROUTE: dict[int, tuple[str, Decoder]] = {
    1: ("RTA_DST", _ip), 2: ("RTA_SRC", _ip), 4: ("RTA_OIF", _i32), 5: ("RTA_GATEWAY", _ip),
    6: ("RTA_PRIORITY", _u32), 7: ("RTA_PREFSRC", _ip), 9: ("RTA_MULTIPATH", _multipath),
    15: ("RTA_TABLE", _u32)}
_RULE: dict[int, tuple[str, Decoder]] = {
    1: ("FRA_DST", _ip), 2: ("FRA_SRC", _ip), 3: ("FRA_IIFNAME", _text), 6: ("FRA_PRIORITY", _u32),
    10: ("FRA_FWMARK", _u32), 14: ("FRA_SUPPRESS_PREFIXLEN", _u32), 15: ("FRA_TABLE", _u32),
    16: ("FRA_FWMASK", _u32), 17: ("FRA_OIFNAME", _text), 20: ("FRA_UID_RANGE", _range32),
    22: ("FRA_IP_PROTO", _u8), 24: ("FRA_DPORT_RANGE", _range16)}
_NEIGH: dict[int, tuple[str, Decoder]] = {1: ("NDA_DST", _ip), 2: ("NDA_LLADDR", _l2)}

# Each message's fixed header: its struct and field names (pyroute2's), and its attributes.
_IFINFOMSG = (struct.Struct("=BxHiII"), ("family", "ifi_type", "index", "flags", "change"), _LINK)
_IFADDRMSG = (struct.Struct("=BBBBi"), ("family", "prefixlen", "flags", "scope", "index"), _ADDR)
_RTMSG = (struct.Struct("=BBBBBBBBI"), ("family", "dst_len", "src_len", "tos", "table", "proto",
                                        "scope", "type", "flags"), _ROUTE)
_FIBRULEHDR = (struct.Struct("=BBBBBBBBI"), ("family", "dst_len", "src_len", "tos", "table",
                                             "res1", "res2", "action", "flags"), _RULE)
_NDMSG = (struct.Struct("=BxxxiHBB"), ("family", "ifindex", "state", "flags", "ndm_type"), _NEIGH)
_KINDS = {RTM_GETLINK: _IFINFOMSG, RTM_GETADDR: _IFADDRMSG, RTM_GETROUTE: _RTMSG,
          RTM_GETRULE: _FIBRULEHDR, RTM_GETNEIGH: _NDMSG}


class Message:
    """One decoded message: header fields by name, attributes by their kernel name."""

    __slots__ = ("fields", "attrs")

    def __init__(self, fields: dict[str, int], attrs: dict[str, Any]) -> None:
        self.fields = fields
        self.attrs = attrs

    def __getitem__(self, name: str) -> Any:
        return self.fields[name]

    def get_attr(self, name: str, default: Any = None) -> Any:
        """The attribute's decoded value (the first one, as pyroute2), or ``default``."""
        return self.attrs.get(name, default)


def _attrs(data: bytes, offset: int, table: dict[int, tuple[str, Decoder]],
           family: int) -> dict[str, Any]:
    found: dict[str, Any] = {}
    while offset + _RTATTR.size <= len(data):
        length, kind = _RTATTR.unpack_from(data, offset)
        if length < _RTATTR.size:
            break
        known = table.get(kind & NLA_TYPE_MASK)
        if known is not None and known[0] not in found:
            value = known[1](data[offset + _RTATTR.size:offset + length], family)
            if value is not None:
                found[known[0]] = value
        offset += (length + 3) & ~3
    return found


def decode(request: int, payload: bytes) -> Message:
    """One message's payload (after the netlink header) of the kind ``request`` asks for."""
    header, names, table = _KINDS[request]
    fields = dict(zip(names, header.unpack_from(payload)))
    return Message(fields, _attrs(payload, (header.size + 3) & ~3, table, fields["family"]))


class IPRoute:
    """One NETLINK_ROUTE socket: the requests of pyroute2's IPRoute that netcheck makes."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                  NETLINK_ROUTE)
        try:
            self.sock.settimeout(5.0)  # the kernel answers at once; never hang a probe thread
            self.sock.bind((0, 0))
        except OSError:
            self.sock.close()
            raise
        self.seq = 0

    def __enter__(self) -> IPRoute:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def _request(self, kind: int, flags: int, body: bytes) -> list[Message]:
        for _try in range(DUMP_TRIES):
            messages, interrupted = self._exchange(kind, flags, body)
            if not interrupted:
                break
        return messages

    def _exchange(self, kind: int, flags: int, body: bytes) -> tuple[list[Message], bool]:
        self.seq += 1
        seq = self.seq
        self.sock.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(body), kind, NLM_F_REQUEST | flags,
                                      seq, 0) + body)
        dump = flags & NLM_F_DUMP == NLM_F_DUMP
        found: list[Message] = []
        interrupted = False
        while True:
            data = self.sock.recv(RECV_BYTES)
            for mtype, mflags, payload in _split(data, seq):
                interrupted = interrupted or bool(mflags & NLM_F_DUMP_INTR)
                if mtype == NLMSG_DONE:
                    return found, interrupted
                if mtype == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0]
                    if code:
                        raise NetlinkError(code)
                    return found, interrupted  # an acknowledgement
                if mtype == NLMSG_NOOP:
                    continue
                found.append(decode(kind, payload))
                if not dump and not mflags & NLM_F_MULTI:
                    return found, interrupted

    def _dump(self, kind: int, family: int) -> list[Message]:
        header, names, _table = _KINDS[kind]
        return self._request(kind, NLM_F_DUMP, header.pack(family, *[0] * (len(names) - 1)))

    def get_links(self, index: Optional[int] = None) -> list[Message]:
        """Every link, or the one with this index (``ip link show``)."""
        if index is None:
            return self._dump(RTM_GETLINK, socket.AF_UNSPEC)
        return self._request(RTM_GETLINK, 0, _IFINFOMSG[0].pack(socket.AF_UNSPEC, 0, index, 0, 0))

    def get_addr(self, family: int = socket.AF_UNSPEC) -> list[Message]:
        """Every address (``ip addr``)."""
        return self._dump(RTM_GETADDR, family)

    def get_routes(self, family: int = socket.AF_UNSPEC) -> list[Message]:
        """The routes of every table (``ip route show table all``)."""
        return self._dump(RTM_GETROUTE, family)

    def get_rules(self, family: int = socket.AF_UNSPEC) -> list[Message]:
        """The policy rules (``ip rule``)."""
        return self._dump(RTM_GETRULE, family)

    def get_neighbours(self, family: int = socket.AF_UNSPEC, ifindex: Optional[int] = None,
                       dst: Optional[str] = None) -> list[Message]:
        """The neighbour entries (``ip neigh``), of one interface and address when given."""
        return [m for m in self._dump(RTM_GETNEIGH, family)
                if (ifindex is None or m["ifindex"] == ifindex)
                and (dst is None or m.get_attr("NDA_DST") == dst)]

    def route(self, command: str, dst: str, flags: int = 0,
              oif: Optional[int] = None) -> list[Message]:
        """The kernel's route for one destination (``ip route get DST [oif N]``): the one
        command of pyroute2's ``route()`` that netcheck sends."""
        if command != "get":
            raise ValueError(f"only route('get', ...) is supported, not {command!r}")
        family = socket.AF_INET6 if ":" in dst else socket.AF_INET
        raw = socket.inet_pton(family, dst)
        body = _RTMSG[0].pack(family, len(raw) * 8, 0, 0, 0, 0, 0, 0, flags) + _attr(1, raw)
        if oif is not None:
            body += _attr(4, struct.pack("=i", oif))
        return self._request(RTM_GETROUTE, 0, body)


def _attr(kind: int, value: bytes) -> bytes:
    length = _RTATTR.size + len(value)
    return _RTATTR.pack(length, kind) + value + bytes(-length % 4)


def _split(data: bytes, seq: int) -> Iterator[tuple[int, int, bytes]]:
    """The messages of one datagram that answer request ``seq``: (type, flags, payload)."""
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, mtype, mflags, mseq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size:
            raise NetlinkError(errno.EBADMSG, "malformed netlink message")
        if mseq == seq:
            yield mtype, mflags, data[offset + _NLMSGHDR.size:offset + length]
        offset += (length + 3) & ~3
