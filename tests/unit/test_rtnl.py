"""netcheck.rtnl decodes rtnetlink messages as pyroute2 does, for what netcheck reads.

Two ways: kernel-format messages built here (a multipath route, a policy rule with ranges, a
link with its kind and counters), decoded by both; and this host's own tables, read through
both into a snapshot (read-only dumps and route lookups of documentation addresses: nothing
is sent on any network).
"""

from __future__ import annotations

import errno
import socket
import struct
from typing import Any

import pytest

from netcheck import facts, rtnl

pyroute2_rtnl = pytest.importorskip("pyroute2.netlink.rtnl")


def _attr(kind: int, value: bytes) -> bytes:
    length = 4 + len(value)
    return struct.pack("=HH", length, kind) + value + bytes(-length % 4)


def _message(kind: int, body: bytes) -> bytes:
    return struct.pack("=IHHII", 16 + len(body), kind, 0, 1, 0) + body


def _pyroute2(cls: Any, data: bytes) -> Any:
    msg = cls(data)
    msg.decode()
    return msg


def _ours(request: int, data: bytes) -> rtnl.Message:
    return rtnl.decode(request, data[16:])


def test_multipath_route_decodes_as_pyroute2() -> None:
    from pyroute2.netlink.rtnl.rtmsg import rtmsg

    hop1 = _attr(5, socket.inet_aton("198.18.1.1"))
    hop2 = _attr(5, socket.inet_aton("198.18.9.1"))
    hops = (struct.pack("=HBBi", 8 + len(hop1), 0x4, 0, 2) + hop1
            + struct.pack("=HBBi", 8 + len(hop2), 0x10, 0, 3) + hop2)
    body = (struct.pack("=BBBBBBBBI", socket.AF_INET, 24, 0, 0, 254, 4, 0, 1, 0)
            + _attr(15, struct.pack("=I", 1000)) + _attr(1, socket.inet_aton("198.18.5.0"))
            + _attr(6, struct.pack("=I", 100)) + _attr(9, hops))
    data = _message(24, body)
    theirs, ours = _pyroute2(rtmsg, data), _ours(rtnl.RTM_GETROUTE, data)
    route, expected = facts._route(ours, socket.AF_INET), facts._route(theirs, socket.AF_INET)
    assert route == expected
    assert route is not None and (route.gateway, route.oif, route.onlink, route.table) == (
        "198.18.1.1", 2, True, 1000)
    second = ours.get_attr("RTA_MULTIPATH")[1]
    assert (second["oif"], second["flags"], second.get_attr("RTA_GATEWAY")) == (3, 0x10,
                                                                                 "198.18.9.1")


def _rule(*extra: bytes) -> bytes:
    body = (struct.pack("=BBBBBBBBI", socket.AF_INET, 0, 24, 0, 0, 0, 0, 1, 0x2)
            + _attr(6, struct.pack("=I", 32765)) + _attr(15, struct.pack("=I", 51820))
            + _attr(10, struct.pack("=I", 0xCA6C)) + _attr(16, struct.pack("=I", 0xFFFF))
            + _attr(2, socket.inet_aton("198.18.1.0")) + _attr(3, b"eth0\0")
            + _attr(14, struct.pack("=I", 0)) + _attr(22, b"\x06") + b"".join(extra))
    return _message(32, body)


def test_policy_rule_decodes_as_pyroute2() -> None:
    from pyroute2.netlink.rtnl.fibmsg import fibmsg

    data = _rule()
    ours = facts._rules(_Rules(_ours(rtnl.RTM_GETRULE, data)), socket.AF_INET)
    assert ours == facts._rules(_Rules(_pyroute2(fibmsg, data)), socket.AF_INET)
    assert ours[0].text() == ("32765:\tnot from 198.18.1.0/24 fwmark 0xca6c/0xffff iif eth0 "
                              "ipproto 6 lookup 51820 suppress_prefixlength 0")


def test_rule_ranges_are_read() -> None:
    """pyroute2 gives a port or uid range as "80:443", which the snapshot could not read (the
    whole snapshot failed on a host with such a rule); here it is {start, end}."""
    data = _rule(_attr(24, struct.pack("=HH", 80, 443)), _attr(20, struct.pack("=II", 1000, 1999)))
    rule, = facts._rules(_Rules(_ours(rtnl.RTM_GETRULE, data)), socket.AF_INET)
    assert (rule.dport, rule.uid) == ((80, 443), (1000, 1999))
    assert "ipproto 6 dport 80-443 uidrange 1000-1999 lookup 51820" in rule.text()


class _Rules:
    """An IPRoute stand-in whose rule dump is one message."""

    def __init__(self, msg: Any) -> None:
        self.msg = msg

    def get_rules(self, family: int) -> list[Any]:
        return [self.msg]


def test_link_decodes_as_pyroute2() -> None:
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    stats = struct.pack("=24Q", *range(1, 25))
    body = (struct.pack("=BxHiII", socket.AF_UNSPEC, 1, 7, 0x11043, 0)
            + _attr(3, b"veth0\0") + _attr(4, struct.pack("=I", 1500))
            + _attr(16, b"\x06") + _attr(1, bytes.fromhex("02aabbccddee"))
            + _attr(18, _attr(1, b"veth\0")) + _attr(23, stats))
    data = _message(16, body)
    theirs, ours = _pyroute2(ifinfmsg, data), _ours(rtnl.RTM_GETLINK, data)
    for name in ("IFLA_IFNAME", "IFLA_MTU", "IFLA_OPERSTATE", "IFLA_ADDRESS"):
        assert ours.get_attr(name) == theirs.get_attr(name), name
    assert ours.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_KIND") == "veth"
    for key in facts.STAT_NAMES:
        assert ours.get_attr("IFLA_STATS64")[key] == theirs.get_attr("IFLA_STATS64")[key], key
    assert (ours["index"], ours["flags"]) == (theirs["index"], theirs["flags"]) == (7, 0x11043)


def test_this_hosts_tables_read_the_same_through_both(monkeypatch: pytest.MonkeyPatch) -> None:
    from pyroute2.iproute.linux import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    destinations = ["127.0.0.1", "::1", "198.18.0.1", "2001:db8::1"]
    ours = facts.snapshot()
    if ours.netlink_error:
        pytest.skip(f"no netlink here: {ours.netlink_error}")
    our_paths = facts.route_get(destinations)
    monkeypatch.setattr(facts, "iproute_class", lambda: IPRoute)
    monkeypatch.setattr(rtnl, "NetlinkError", NetlinkError)  # what route_get catches
    theirs = facts.snapshot()
    assert theirs.netlink_error is None
    for table in ("links", "addresses", "routes", "rules", "neighbours"):
        assert getattr(ours, table) == getattr(theirs, table), table
    assert our_paths == facts.route_get(destinations)


def test_a_refused_request_raises_netlink_error_with_its_errno() -> None:
    with rtnl.IPRoute() as ipr:
        with pytest.raises(rtnl.NetlinkError) as raised:
            ipr.get_links(index=0x7FFFFFF0)  # no such interface
    assert raised.value.code == errno.ENODEV
