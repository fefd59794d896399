"""IPsec in the kernel (xfrm): the policies and security associations, and what they do to a flow.

An xfrm policy whose selector covers a flow decides its fate before any route or firewall
does: ``action block`` discards it; a policy with templates (``tmpl ... proto esp mode
tunnel``) sends it only through a security association (SA) that matches the template — and
when the tunnel never came up there is none, so the kernel drops the packets silently (or
holds them while it asks the IKE daemon for an SA that never comes).

pyroute2 has no xfrm messages, so the policies and SAs are read here with one netlink dump
each (``NETLINK_XFRM``, ``XFRM_MSG_GETPOLICY`` / ``XFRM_MSG_GETSA``), the way ``ip xfrm
policy`` / ``ip xfrm state`` read them. Reading needs CAP_NET_ADMIN; without it the reading
says so and nothing is judged. The structures are the kernel's (``linux/xfrm.h``), decoded
with :mod:`struct`; :func:`parse_policies` and :func:`parse_states` take the raw dump so
recorded bytes can be replayed in tests.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

from netcheck import family as fam

NETLINK_XFRM = 6
XFRM_MSG_GETSA = 0x12
XFRM_MSG_GETPOLICY = 0x15
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
XFRMA_TMPL = 5
XFRMA_MARK = 17
XFRMA_IF_ID = 31
DIRS = {0: "in", 1: "out", 2: "fwd"}
ACTIONS = {0: "allow", 1: "block"}
MODES = {0: "transport", 1: "tunnel", 2: "ro", 3: "in_trigger", 4: "beet"}
PROTOS = {50: "esp", 51: "ah", 108: "comp", 43: "route2", 60: "hao"}

# struct xfrm_selector: daddr[16] saddr[16] dport dport_mask sport sport_mask (be16)
# family(u16) prefixlen_d prefixlen_s proto (u8) pad ifindex(i32) user(u32) = 56 bytes
_SELECTOR = struct.Struct("=16s16s2s2s2s2sHBBB3xiI")
_LIFETIME_CFG, _LIFETIME_CUR = 64, 32
# struct xfrm_userpolicy_info: selector, lft, curlft, priority, index, dir, action, flags,
# share; 168 bytes with the tail padding of its u64 fields
_POLICY_TAIL = struct.Struct("=IIBBBB")
_POLICY_SIZE = 168
# struct xfrm_user_tmpl: id{daddr[16] spi(be32) proto(u8) pad3} family(u16) pad2 saddr[16]
# reqid(u32) mode share optional (u8) pad aalgos ealgos calgos (u32) = 64 bytes
_TMPL = struct.Struct("=16s4sB3xH2x16sIBBBxIII")
# struct xfrm_usersa_info: selector(56) id{daddr[16] spi proto}(24) saddr[16] lft(64)
# curlft(32) stats(12) seq reqid (u32) family(u16) mode replay_window flags (u8): 224 bytes
_SA_ID = struct.Struct("=16s4sB3x")
_SA_TAIL = struct.Struct("=IIHBBB")
_SA_SIZE = 224


@dataclass
class Selector:
    """Which packets a policy (or an SA) is for; 0 / empty fields match anything."""

    family: int
    daddr: str
    prefixlen_d: int
    saddr: str
    prefixlen_s: int
    proto: int = 0
    dport: int = 0
    dport_mask: int = 0
    sport: int = 0
    sport_mask: int = 0
    ifindex: int = 0

    def text(self) -> str:
        """As ``ip xfrm policy`` prints it: ``src A/n dst B/m [proto P] [dport N]``."""
        out = f"src {self.saddr}/{self.prefixlen_s} dst {self.daddr}/{self.prefixlen_d}"
        if self.proto:
            out += f" proto {_proto_name(self.proto)}"
        if self.sport_mask:
            out += f" sport {self.sport}"
        if self.dport_mask:
            out += f" dport {self.dport}"
        return out


@dataclass
class Template:
    """What SA a policy wants: protocol, mode, tunnel end points, reqid."""

    proto: int
    mode: int
    daddr: str
    saddr: str
    family: int
    reqid: int = 0
    spi: int = 0
    optional: bool = False

    def text(self) -> str:
        ends = f"src {self.saddr} dst {self.daddr} " if self.mode == 1 else ""
        return (f"tmpl {ends}proto {_proto_name(self.proto)} reqid {self.reqid} "
                f"mode {MODES.get(self.mode, str(self.mode))}")


@dataclass
class Policy:
    """One xfrm policy (``ip xfrm policy``)."""

    selector: Selector
    direction: str  # in | out | fwd
    action: str  # allow | block
    priority: int
    index: int
    templates: list[Template] = field(default_factory=list)
    mark: Optional[tuple[int, int]] = None  # (value, mask)
    if_id: Optional[int] = None

    def text(self) -> str:
        """One line in ``ip xfrm policy`` words."""
        out = f"{self.selector.text()} dir {self.direction}"
        if self.action != "allow":
            out += f" action {self.action}"
        out += f" priority {self.priority}"
        for t in self.templates:
            out += " " + t.text()
        return out

    def to_json(self) -> dict[str, Any]:
        return {"policy": self.text(), "dir": self.direction, "action": self.action,
                "priority": self.priority, "index": self.index}


@dataclass
class State:
    """One security association (``ip xfrm state``)."""

    daddr: str
    saddr: str
    spi: int
    proto: int
    mode: int
    reqid: int
    family: int

    def text(self) -> str:
        return (f"src {self.saddr} dst {self.daddr} proto {_proto_name(self.proto)} "
                f"spi 0x{self.spi:08x} reqid {self.reqid} mode {MODES.get(self.mode, '?')}")


@dataclass
class Xfrm:
    """Everything read: the policies and the SAs, or why they could not be read."""

    policies: list[Policy] = field(default_factory=list)
    states: list[State] = field(default_factory=list)
    error: Optional[str] = None
    duration_ms: float = 0.0

    @property
    def readable(self) -> bool:
        return self.error is None


@dataclass
class XfrmVerdict:
    """What the policies do to one flow leaving this host (``dir out``)."""

    outcome: str  # none (no policy covers it) | bypass | block | no_sa | protected
    policy: Optional[Policy] = None
    missing: Optional[Template] = None  # the template no SA matches
    sa: Optional[State] = None  # the SA the flow would use

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"outcome": self.outcome}
        if self.policy is not None:
            out["policy"] = self.policy.text()
        if self.missing is not None:
            out["missing_sa"] = self.missing.text()
        if self.sa is not None:
            out["sa"] = self.sa.text()
        return out


def _proto_name(number: int) -> str:
    names = {6: "tcp", 17: "udp", 1: "icmp", 58: "ipv6-icmp", **PROTOS}
    return names.get(number, str(number))


def _addr(raw: bytes, family: int) -> str:
    if family == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, raw[:16])
    return socket.inet_ntop(socket.AF_INET, raw[:4])


def _attrs(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Netlink attributes: (type, payload), 4-byte aligned."""
    offset = 0
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            return
        yield kind & 0x3FFF, data[offset + 4: offset + length]
        offset += (length + 3) & ~3


def _selector(raw: bytes) -> Selector:
    (daddr, saddr, dport, dmask, sport, smask, family, plen_d, plen_s, proto, ifindex,
     _user) = _SELECTOR.unpack_from(raw)
    be16 = struct.Struct("!H")
    return Selector(family=family, daddr=_addr(daddr, family), prefixlen_d=plen_d,
                    saddr=_addr(saddr, family), prefixlen_s=plen_s, proto=proto,
                    dport=be16.unpack(dport)[0], dport_mask=be16.unpack(dmask)[0],
                    sport=be16.unpack(sport)[0], sport_mask=be16.unpack(smask)[0],
                    ifindex=ifindex)


def parse_policy(payload: bytes) -> Optional[Policy]:
    """One ``XFRM_MSG_NEWPOLICY`` payload (after the netlink header)."""
    if len(payload) < _POLICY_SIZE:
        return None
    sel = _selector(payload)
    priority, index, direction, action, _flags, _share = _POLICY_TAIL.unpack_from(
        payload, _SELECTOR.size + _LIFETIME_CFG + _LIFETIME_CUR)
    policy = Policy(sel, DIRS.get(direction, str(direction)), ACTIONS.get(action, str(action)),
                    priority, index)
    for kind, value in _attrs(payload[_POLICY_SIZE:]):
        if kind == XFRMA_TMPL:
            for off in range(0, len(value) - _TMPL.size + 1, _TMPL.size):
                (daddr, spi, proto, family, saddr, reqid, mode, _s, optional, _a, _e,
                 _c) = _TMPL.unpack_from(value, off)
                family = family or sel.family
                policy.templates.append(Template(
                    proto=proto, mode=mode, daddr=_addr(daddr, family),
                    saddr=_addr(saddr, family), family=family, reqid=reqid,
                    spi=struct.unpack("!I", spi)[0], optional=bool(optional)))
        elif kind == XFRMA_MARK and len(value) >= 8:
            policy.mark = struct.unpack_from("=II", value)
        elif kind == XFRMA_IF_ID and len(value) >= 4:
            policy.if_id = struct.unpack_from("=I", value)[0]
    return policy


def parse_state(payload: bytes) -> Optional[State]:
    """One ``XFRM_MSG_NEWSA`` payload (after the netlink header)."""
    if len(payload) < _SA_SIZE:
        return None
    daddr, spi, proto = _SA_ID.unpack_from(payload, _SELECTOR.size)
    saddr = payload[_SELECTOR.size + _SA_ID.size: _SELECTOR.size + _SA_ID.size + 16]
    tail = _SELECTOR.size + _SA_ID.size + 16 + _LIFETIME_CFG + _LIFETIME_CUR + 12
    _seq, reqid, family, mode, _win, _flags = _SA_TAIL.unpack_from(payload, tail)
    return State(daddr=_addr(daddr, family), saddr=_addr(saddr, family),
                 spi=struct.unpack("!I", spi)[0], proto=proto, mode=mode, reqid=reqid,
                 family=family)


def _messages(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(type, payload) of each netlink message in one buffer."""
    offset = 0
    while offset + 16 <= len(data):
        length, kind, _flags, _seq, _pid = struct.unpack_from("=IHHII", data, offset)
        if length < 16:
            return
        yield kind, data[offset + 16: offset + length]
        offset += (length + 3) & ~3


def _payloads(chunks: list[bytes]) -> Iterator[bytes]:
    for chunk in chunks:
        for kind, payload in _messages(chunk):
            if kind not in (NLMSG_DONE, NLMSG_ERROR):
                yield payload


def parse_policies(chunks: list[bytes]) -> list[Policy]:
    """The policies in a recorded ``XFRM_MSG_GETPOLICY`` dump (the buffers as received)."""
    return [p for p in map(parse_policy, _payloads(chunks)) if p is not None]


def parse_states(chunks: list[bytes]) -> list[State]:
    """The SAs in a recorded ``XFRM_MSG_GETSA`` dump."""
    return [s for s in map(parse_state, _payloads(chunks)) if s is not None]


def dump(msg_type: int, timeout: float) -> list[bytes]:
    """Blocking: one netlink dump on NETLINK_XFRM; the buffers as received.

    Raises OSError (EPERM without CAP_NET_ADMIN, EPROTONOSUPPORT without xfrm).
    """
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_XFRM) as sock:
        sock.bind((0, 0))
        seq = int(time.monotonic() * 1000) & 0xFFFF
        # The dump request carries an empty body of the message's size: the kernel
        # reads nothing from it for a dump, but iproute2 sends one and so do we.
        body = b"\0" * (_POLICY_SIZE if msg_type == XFRM_MSG_GETPOLICY else _SA_SIZE)
        header = struct.pack("=IHHII", 16 + len(body), msg_type, NLM_F_REQUEST | NLM_F_DUMP,
                             seq, 0)
        sock.sendto(header + body, (0, 0))
        chunks = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("xfrm dump did not finish")
            sock.settimeout(left)
            data = sock.recv(1 << 16)
            chunks.append(data)
            for kind, payload in _messages(data):
                if kind == NLMSG_DONE:
                    return chunks
                if kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0] if len(payload) >= 4 else 0
                    if code:
                        raise OSError(code, os.strerror(code))
                    return chunks


def read(timeout: float = 2.0) -> Xfrm:
    """Blocking: this host's xfrm policies and SAs (``ip xfrm policy`` + ``ip xfrm state``)."""
    start = time.monotonic()
    found = Xfrm()
    try:
        found.policies = parse_policies(dump(XFRM_MSG_GETPOLICY, timeout))
        found.states = parse_states(dump(XFRM_MSG_GETSA, timeout))
    except OSError as exc:
        found.error = exc.strerror or str(exc)
    found.duration_ms = (time.monotonic() - start) * 1000
    return found


# -- judging -------------------------------------------------------------------------------

def _in_prefix(address: str, prefix: str, length: int) -> bool:
    try:
        return ipaddress.ip_address(fam.bare(address)) in ipaddress.ip_network(
            f"{prefix}/{length}", strict=False)
    except ValueError:
        return False


def _port_hit(port: Optional[int], value: int, mask: int) -> bool:
    if not mask:
        return True
    if port is None:
        return False  # a port-specific policy cannot cover a flow without ports
    return (port & mask) == (value & mask)


def covers(policy: Policy, src: Optional[str], dst: str, proto: int,
           dport: Optional[int] = None, sport: Optional[int] = None, oif: int = 0,
           mark: int = 0) -> bool:
    """Does the policy's selector cover this flow (``src`` None: any source of ours)?"""
    sel = policy.selector
    family = fam.family_of(dst)
    if sel.family and sel.family != family:
        return False
    if not _in_prefix(dst, sel.daddr, sel.prefixlen_d):
        return False
    if src is not None and not _in_prefix(src, sel.saddr, sel.prefixlen_s):
        return False
    if sel.proto and sel.proto != proto:
        return False
    if not _port_hit(dport, sel.dport, sel.dport_mask):
        return False
    if sel.sport_mask and sport is not None and not _port_hit(sport, sel.sport,
                                                              sel.sport_mask):
        return False
    if sel.ifindex and oif and sel.ifindex != oif:
        return False
    if policy.mark is not None:
        value, mask = policy.mark
        if mask and (mark & mask) != (value & mask):
            return False
    return True


def _sa_for(t: Template, states: list[State], dst: str, src: Optional[str]) -> Optional[State]:
    """The SA that satisfies a template for this flow, as xfrm_state_find would pick it."""
    want_d = t.daddr if t.mode == 1 or not _zero(t.daddr) else fam.bare(dst)
    for s in states:
        # SPI 0 is never a real SA's: it is the larval entry of an ACQUIRE still unanswered.
        if not s.spi or s.proto != t.proto or s.mode != t.mode:
            continue
        if t.reqid and s.reqid != t.reqid:
            continue
        if t.spi and s.spi != t.spi:
            continue
        if not _zero(want_d) and s.daddr != want_d:
            continue
        want_s = t.saddr if not _zero(t.saddr) else src
        if want_s and not _zero(want_s) and s.saddr != want_s:
            continue
        return s
    return None


def _zero(address: str) -> bool:
    return address in ("0.0.0.0", "::")


def judge(found: Xfrm, src: Optional[str], dst: str, proto: int, dport: Optional[int] = None,
          oif: int = 0) -> XfrmVerdict:
    """What the ``dir out`` policies do to one flow: the first covering one decides.

    Policies are tried by priority (smaller first), as the kernel does for the main
    policy type; socket policies (IKE daemons' own bypass) are not in the dump.
    """
    out = sorted((p for p in found.policies if p.direction == "out"),
                 key=lambda p: (p.priority, p.index))
    for p in out:
        if not covers(p, src, dst, proto, dport, oif=oif):
            continue
        if p.action == "block":
            return XfrmVerdict("block", p)
        if not p.templates:
            return XfrmVerdict("bypass", p)
        sa = None
        for t in p.templates:
            got = _sa_for(t, found.states, dst, src)
            if got is None and not t.optional:
                return XfrmVerdict("no_sa", p, missing=t)
            sa = sa or got
        return XfrmVerdict("protected", p, sa=sa)
    return XfrmVerdict("none")
