"""Layer-3 judging without a network: facts in, (status, code, text) out.

The address, route and gateway rungs judge through pure functions
(checks/network/judging.py), as presentation.handshake_problem does for TLS: every recorded
state is one row here. Also the helpers they stand on: the address-family module, the xfrm
reader (a dump recorded from a lab namespace), reply flows through recorded input chains,
and the root-cause rule that lets this host's input chain outrank the silence it causes.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

import pytest
from netcheck.checks import network as net
from netcheck.checks.network import path as net_path

from netcheck import family
from netcheck.facts import Addr, Link, Route, RouteLookup
from netcheck.model import CheckOutcome, Layer, Result, Status, failed
from netcheck.probes import firewall as fw
from netcheck.probes import icmp, xfrm
from netcheck.probes.tcp import TcpResult
from netcheck.runner import choose_root_cause

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
V4, V6 = socket.AF_INET, socket.AF_INET6


# -- the family module ---------------------------------------------------------------------------

def test_family_of_follows_the_packets() -> None:
    assert family.family_of("198.18.1.2") == V4
    assert family.family_of("::ffff:198.18.1.2") == V4  # a mapped address travels as IPv4
    assert family.family_of("fe80::1%eth0") == V6
    assert family.name(V4) == "ipv4" and family.name(V6) == "ipv6"
    assert family.label(V6) == "IPv6"
    assert family.from_name("IPv6") == V6 and family.from_name(4) == V4
    with pytest.raises(ValueError):
        family.from_name("ipx")


def test_the_name_servers_family_counts_while_the_name_does_not_resolve() -> None:
    flow = family.flow_families([], ["198.18.3.53"], resolved=False)
    assert flow.resolver == (V4,) and flow.target == (V4, V6)
    assert flow.parts()[0] == ("resolver", (V4,))
    resolved = family.flow_families(["198.18.2.10"], ["2001:db8:3::53"], resolved=True)
    assert resolved.resolver == () and resolved.all == (V4,)
    assert family.flow_families(["2001:db8:2::10"], asked=(V4,)).target == (V4,)


@dataclass
class FakeFacts:
    links: list[Link] = field(default_factory=list)
    addresses: list[Addr] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)


LO = Link(1, "lo", 0x9, "UNKNOWN", 65536)
ETH0 = Link(2, "eth0", 0x11043, "UP", 1500, "veth", "02:00:00:00:00:02")


def addr(address: str, prefixlen: int, flags: int = 0, ifindex: int = 2) -> Addr:
    fam = family.family_of(address)
    return Addr(ifindex, fam, address, prefixlen, 253 if address.startswith("fe80") else 0,
                flags)


def test_a_family_this_host_does_not_use_is_not_configured() -> None:
    ipv4_only = FakeFacts([LO, ETH0], [addr("127.0.0.1", 8, ifindex=1), addr("::1", 128, ifindex=1),
                                       addr("198.18.1.2", 24), addr("fe80::2", 64)],
                          [Route(V4, None, 0, "unicast", 2, "198.18.1.1")])
    assert family.configured_families(ipv4_only) == (V4,)
    assert family.used(ipv4_only, ["198.18.2.10", "2001:db8:2::10"]) == ["198.18.2.10"]
    assert family.used(ipv4_only, ["2001:db8:2::10"]) == ["2001:db8:2::10"]
    # 169.254.x.x is a DHCP client that got no answer: IPv4 was wanted there.
    ipv4ll = FakeFacts([LO, ETH0], [addr("169.254.23.5", 16)])
    assert family.configured(ipv4ll, V4)
    # A default route in another table counts too (policy routing).
    routed = FakeFacts([LO, ETH0], [addr("fe80::2", 64)],
                       [Route(V6, None, 0, "unicast", 2, "fe80::1", table=100)])
    assert family.configured(routed, V6)


# -- the address rung -----------------------------------------------------------------------------

DADFAILED, TENTATIVE = 0x08, 0x40


def fa(fam: int, *addrs: Addr, in_use: bool = True, ifname: str = "eth0") -> net.FamilyAddresses:
    return net.FamilyAddresses(fam, ifname, addrs, in_use)


BOTH = family.FlowFamilies((V4, V6))
DNS_V4 = family.FlowFamilies((V4, V6), (V4,))
GOOD4, GOOD6 = addr("198.18.1.2", 24), addr("2001:db8:1::2", 64)
LL4, LL6 = addr("169.254.23.5", 16), addr("fe80::2", 64)

# (flow, per-family facts, status, code, family, words the text must hold)
ADDRESS_ROWS: list[tuple[Any, dict[int, net.FamilyAddresses], Status, Optional[str],
                         Optional[int], tuple[str, ...]]] = [
    (BOTH, {V4: fa(V4, GOOD4), V6: fa(V6, GOOD6, LL6)}, Status.PASS, None, None,
     ("eth0 has IPv4 198.18.1.2/24, IPv6 2001:db8:1::2/64",)),
    # IPv4 lost, IPv6 fine, the only name server IPv4: the flow cannot start.
    (DNS_V4, {V4: fa(V4), V6: fa(V6, GOOD6, LL6)}, Status.FAIL, "ADDR_NONE", V4,
     ("eth0 has no IPv4 address", "198.18.3.53")),
    (DNS_V4, {V4: fa(V4, LL4), V6: fa(V6, GOOD6, LL6)}, Status.FAIL, "ADDR_LINK_LOCAL_ONLY", V4,
     ("169.254.0.0/16",)),
    # The same with the name server reachable over IPv6: IPv6 carries the flow.
    (BOTH, {V4: fa(V4, LL4), V6: fa(V6, GOOD6, LL6)}, Status.WARN, "ADDR_LINK_LOCAL_ONLY", V4,
     ("IPv6 carries the traffic",)),
    # An IPv4-only host: fe80:: only and IPv6 not used anywhere is no failure.
    (BOTH, {V4: fa(V4, GOOD4), V6: fa(V6, LL6, in_use=False)}, Status.PASS, None, None,
     ("IPv6: not used on this host",)),
    # ... but it is when IPv6 is all the target has.
    (family.FlowFamilies((V6,)), {V6: fa(V6, LL6, in_use=False)}, Status.FAIL, "ADDR_NONE", V6,
     ("no IPv6 address",)),
    # fe80:: alone on a host that uses IPv6 (a default route): SLAAC got no answer.
    (family.FlowFamilies((V6,)), {V6: fa(V6, LL6)}, Status.FAIL, "ADDR_LINK_LOCAL_ONLY", V6,
     ("fe80::/10",)),
    (family.FlowFamilies((V6,)), {V6: fa(V6, addr("2001:db8:1::1", 64, DADFAILED), LL6)},
     Status.FAIL, "ADDR_DAD_FAILED", V6, ("2001:db8:1::1", "duplicate")),
    (BOTH, {V4: fa(V4), V6: fa(V6)}, Status.FAIL, "ADDR_NONE", V4,
     ("eth0 has no IPv4 or IPv6 address",)),
    # A tentative address (DAD still running) is not usable yet.
    (family.FlowFamilies((V6,)), {V6: fa(V6, addr("2001:db8:1::2", 64, TENTATIVE))},
     Status.FAIL, "ADDR_NONE", V6, ()),
]


@pytest.mark.parametrize("flow,per,status,code,fam,words", ADDRESS_ROWS)
def test_address_judging(flow: Any, per: dict[int, net.FamilyAddresses], status: Status,
                         code: Optional[str], fam: Optional[int], words: tuple[str, ...]) -> None:
    judged = net.judge_address(flow, per, ("198.18.3.53",))
    assert (judged.status, judged.code, judged.family) == (status, code, fam), judged
    for word in words:
        assert word in judged.text, judged.text


# -- the route rung -------------------------------------------------------------------------------

def lookup(dst: str, kind: str = "unicast", gw: Optional[str] = "198.18.1.1",
           table: Optional[int] = 254) -> RouteLookup:
    return RouteLookup(dst, kind, 2, "eth0", gw if kind == "unicast" else None,
                       "198.18.1.2" if kind == "unicast" else None, table=table)


def fr(lk: RouteLookup, in_use: bool = True, culprit: Optional[str] = None,
       others: tuple[str, ...] = ()) -> net.FamilyRoute:
    return net.FamilyRoute(family.family_of(lk.destination), lk, in_use, culprit, others)


ROUTE_ROWS: list[tuple[Any, dict[int, net.FamilyRoute], Status, Optional[str], Optional[int],
                       tuple[str, ...]]] = [
    (BOTH, {V4: fr(lookup("198.18.2.10")), V6: fr(lookup("2001:db8:2::10", gw="2001:db8:1::1"))},
     Status.PASS, None, None, ("198.18.2.10 via 198.18.1.1 dev eth0 src 198.18.1.2",)),
    # The default lives in table 100, reached through a rule: `ip route get`'s words say so.
    (family.FlowFamilies((V4,)), {V4: fr(lookup("198.18.2.10", table=100))}, Status.PASS, None,
     None, ("table 100",)),
    (family.FlowFamilies((V4,)), {V4: fr(lookup("198.18.2.10", "none"))}, Status.FAIL,
     "ROUTE_NO_DEFAULT", V4, ("no default route and no route to 198.18.2.10",)),
    (family.FlowFamilies((V4,)),
     {V4: fr(lookup("198.18.2.10", "none"), others=("51820",))}, Status.FAIL, "ROUTE_NO_DEFAULT",
     V4, ("table 51820 has one",)),
    (BOTH, {V4: fr(lookup("198.18.2.10", "blackhole"), culprit="blackhole 198.18.2.0/24"),
            V6: fr(lookup("2001:db8:2::10", gw="2001:db8:1::1"))},
     Status.WARN, "ROUTE_UNREACHABLE", V4, ("blackhole 198.18.2.0/24", "IPv6 carries")),
    # No IPv6 route on a host that does not use IPv6: nothing to report.
    (BOTH, {V4: fr(lookup("198.18.2.10")), V6: fr(lookup("2001:db8:2::10", "none"), False)},
     Status.PASS, None, None, ("198.18.2.10",)),
    (DNS_V4, {V4: fr(lookup("198.18.3.53", "none")),
              V6: fr(lookup("2001:db8:2::10", gw="2001:db8:1::1"))},
     Status.FAIL, "ROUTE_NO_DEFAULT", V4, ("198.18.3.53",)),
    # `ip rule add to ... unreachable`: the lookup fails as with no route, but a rule, not
    # a missing route, throws the packets away.
    (DNS_V4, {V4: net.FamilyRoute(V4, lookup("198.18.3.53", "none"), True,
                                  "100: from all to 198.18.3.0/24 unreachable", culprit_rule=100),
              V6: fr(lookup("2001:db8:2::10", gw="2001:db8:1::1"))},
     Status.FAIL, "ROUTE_UNREACHABLE", V4, ("policy rule '100: from all to 198.18.3.0/24",)),
]


@pytest.mark.parametrize("flow,per,status,code,fam,words", ROUTE_ROWS)
def test_route_judging(flow: Any, per: dict[int, net.FamilyRoute], status: Status,
                       code: Optional[str], fam: Optional[int], words: tuple[str, ...]) -> None:
    judged = net.judge_route(flow, per, ("198.18.3.53",))
    assert (judged.status, judged.code, judged.family) == (status, code, fam), judged
    for word in words:
        assert word in judged.text, judged.text


# -- the gateway rung ------------------------------------------------------------------------------

GW_MAC, OLD_MAC = "4a:55:57:56:73:69", "02:00:5e:10:00:01"


def gw(**kw: Any) -> net.GatewayFacts:
    kw.setdefault("probed", True)
    return net.GatewayFacts("198.18.1.1", "eth0", **kw)


# (facts, status, code, reason)
GATEWAY_ROWS: list[tuple[net.GatewayFacts, Status, Optional[str], str]] = [
    (gw(ping="reply", wire_mac=GW_MAC), Status.PASS, None, "ping"),
    (gw(through=("target", "198.18.2.10"), wire_mac=GW_MAC), Status.PASS, None, "through"),
    (gw(through=("name server", "198.18.3.53")), Status.PASS, None, "through"),
    # ARP alone is the link, not IP: a pinned MAC nobody has is why nothing comes back.
    (gw(wire_mac=GW_MAC, neigh_state="PERMANENT", neigh_mac=OLD_MAC), Status.FAIL,
     "GATEWAY_UNREACHABLE", "static_neighbour"),
    (gw(wire_mac=GW_MAC, neigh_state="PERMANENT", neigh_mac=GW_MAC), Status.PASS, None,
     "link_only"),
    (gw(wire_mac=GW_MAC, input_block="inet t input: policy drop"), Status.SKIP, None,
     "input_block"),
    (gw(wire_mac=GW_MAC, own_conflict="198.18.1.2 (8a:68:77:32:25:a8)"), Status.SKIP, None,
     "own_conflict"),
    (gw(wire_mac=GW_MAC, ipsec="src 0.0.0.0/0 dst 0.0.0.0/0 dir out action block"), Status.SKIP,
     None, "ipsec"),
    # replies that come back another way, dropped by strict reverse-path filtering
    (gw(wire_mac=GW_MAC, rp_dropped=12, rp_strict=("eth1",)), Status.FAIL,
     "GATEWAY_UNREACHABLE", "rp_filter"),
    (gw(wire_mac=GW_MAC, rp_dropped=12), Status.PASS, None, "link_only"),  # loose: no proof
    (gw(wire_mac=GW_MAC), Status.PASS, None, "link_only"),
    # ARP, and not one IP packet back from it or through it, not even a "time exceeded":
    # it does not handle this host's packets (port security, a hotspot's gate).
    (gw(wire_mac=GW_MAC, beyond_silent=True, ttl_hop=False), Status.FAIL,
     "GATEWAY_UNREACHABLE", "link_only_no_ip"),
    # ... while a router that only drops ping to itself still says "time exceeded".
    (gw(wire_mac=GW_MAC, beyond_silent=True, ttl_hop=True), Status.PASS, None, "link_only"),
    (gw(wire_mac=GW_MAC, beyond_silent=True), Status.PASS, None, "link_only"),  # not tried
    # IPv6 asks for any address on the link: a gateway outside every prefix answers NDP,
    # but its replies cannot come back to an address outside its network.
    (net.GatewayFacts("2001:db8:1::1", "eth0", on_link=False, probed=True, wire_mac=GW_MAC,
                      prefixes=("2001:db8:11::/64",)), Status.FAIL, "GATEWAY_NOT_ON_LINK",
     "not_on_link"),
    # Without root: the kernel's cache is a hint, said as one.
    (gw(probed=False, neigh_state="REACHABLE", neigh_mac=GW_MAC), Status.PASS, None, "cache"),
    (gw(probed=False, neigh_state="STALE", neigh_mac=GW_MAC), Status.PASS, None, "cache"),
    (gw(on_link=False, prefixes=("198.18.1.0/24",)), Status.FAIL, "GATEWAY_NOT_ON_LINK",
     "not_on_link"),
    (gw(), Status.FAIL, "GATEWAY_UNREACHABLE", "silent"),
    (gw(neigh_state="STALE", neigh_mac=GW_MAC), Status.FAIL, "GATEWAY_UNREACHABLE", "silent"),
    (gw(probed=False, neigh_state="FAILED"), Status.FAIL, "GATEWAY_UNREACHABLE", "silent"),
    (net.GatewayFacts("2001:db8:1::1", "eth0", probed=True, input_block="inet t input: policy "
                      "drop"), Status.SKIP, None, "input_block"),
]


@pytest.mark.parametrize("facts,status,code,reason", GATEWAY_ROWS)
def test_gateway_judging(facts: net.GatewayFacts, status: Status, code: Optional[str],
                         reason: str) -> None:
    judged = net.judge_gateway(facts)
    assert (judged.status, judged.code, judged.reason) == (status, code, reason), judged
    assert facts.gateway in judged.text


def test_static_neighbour_text_names_both_macs() -> None:
    text = net.judge_gateway(gw(wire_mac=GW_MAC, neigh_state="PERMANENT",
                                neigh_mac=OLD_MAC)).text
    assert OLD_MAC in text and GW_MAC in text and "PERMANENT" in text


def test_one_gateway_failing_beside_a_working_family_degrades() -> None:
    per = {V4: net.judge_gateway(gw(ping="reply")),
           V6: net.judge_gateway(net.GatewayFacts("2001:db8:1::1", "eth0", probed=True))}
    judged = net.judge_gateways(BOTH, per)
    assert (judged.status, judged.code, judged.family) == (Status.WARN, "GATEWAY_UNREACHABLE", V6)
    assert "IPv4 carries the traffic" in judged.text
    broken = net.judge_gateways(family.FlowFamilies((V6,)), {V6: per[V6]})
    assert broken.status is Status.FAIL and broken.family == V6


# -- xfrm ---------------------------------------------------------------------------------------

def _recorded_policies() -> list[bytes]:
    lines = (FIXTURES / "xfrm" / "policies.hex").read_text().splitlines()
    return [bytes.fromhex(line) for line in lines if line and not line.startswith("#")]


def _sa_message(src: str, dst: str, spi: int, proto: int, mode: int, reqid: int) -> bytes:
    """An XFRM_MSG_NEWSA as the kernel lays out struct xfrm_usersa_info (224 bytes)."""
    fam = family.family_of(dst)

    def a(x: str) -> bytes:  # xfrm_address_t: 16 bytes, an IPv4 address in the first 4
        return socket.inet_pton(fam, x).ljust(16, b"\0")

    selector = b"\0" * 56
    body = (selector + a(dst) + struct.pack("!I", spi) + bytes([proto]) + b"\0" * 3 + a(src)
            + b"\0" * (64 + 32 + 12) + struct.pack("=IIHBBB", 0, reqid, fam, mode, 0, 0))
    body = body.ljust(224, b"\0")
    return struct.pack("=IHHII", 16 + len(body), 0x10, 0, 1, 0) + body


def test_recorded_policies_read_as_ip_xfrm_prints_them() -> None:
    policies = xfrm.parse_policies(_recorded_policies())
    texts = sorted(p.text() for p in policies)
    assert texts == sorted([
        "src 198.18.1.2/32 dst 198.18.2.0/24 dir out priority 0 tmpl src 198.18.1.2 "
        "dst 198.18.1.1 proto esp reqid 7 mode tunnel",
        "src 0.0.0.0/0 dst 198.18.6.0/24 proto tcp dport 443 dir out action block priority 10",
        "src ::/0 dst 2001:db8:2::/64 dir out priority 0 tmpl src 2001:db8:1::2 "
        "dst 2001:db8:1::1 proto ah reqid 0 mode tunnel"])


@pytest.mark.parametrize("dst,proto,port,states,outcome", [
    ("198.18.2.10", 6, 22, [], "no_sa"),  # the tunnel never came up
    ("198.18.2.10", 6, 22, [("198.18.1.2", "198.18.1.1", 0x1000, 50, 1, 7)], "protected"),
    ("198.18.2.10", 6, 22, [("198.18.1.2", "198.18.1.1", 0x1000, 50, 1, 8)], "no_sa"),  # reqid
    ("198.18.2.10", 6, 22, [("198.18.1.2", "198.18.1.1", 0, 50, 1, 7)], "no_sa"),  # larval
    ("198.18.6.7", 6, 443, [], "block"),
    ("198.18.6.7", 6, 80, [], "none"),  # the block policy is for port 443 only
    ("198.18.6.7", 17, 443, [], "none"),
    ("198.18.9.9", 6, 22, [], "none"),
    ("2001:db8:2::10", 6, 22, [], "no_sa"),
    ("2001:db8:2::10", 6, 22, [("2001:db8:1::2", "2001:db8:1::1", 0x2000, 51, 1, 3)],
     "protected"),
])
def test_xfrm_policies_judge_the_flow(dst: str, proto: int, port: int,
                                      states: list[tuple[Any, ...]], outcome: str) -> None:
    found = xfrm.Xfrm(policies=xfrm.parse_policies(_recorded_policies()),
                      states=xfrm.parse_states([_sa_message(*s) for s in states]))
    assert len(found.states) == len(states)
    src = "2001:db8:1::2" if ":" in dst else "198.18.1.2"
    verdict = xfrm.judge(found, src, dst, proto, port)
    assert verdict.outcome == outcome, verdict.to_json()
    if outcome == "no_sa":
        assert verdict.missing is not None and verdict.missing.daddr in ("198.18.1.1",
                                                                          "2001:db8:1::1")


# -- replies through the input chains -------------------------------------------------------------

def _ruleset(name: str) -> fw.Ruleset:
    return fw.parse_nft_json((FIXTURES / "firewall" / f"{name}.json").read_text())


@pytest.mark.parametrize("ruleset,flow,action", [
    # policy drop and no `ct state established,related accept`: every reply is dropped
    ("input_policy_drop", fw.reply_flow("198.18.1.1", "198.18.1.2", "icmp", None, "eth0"), "drop"),
    ("input_policy_drop", fw.reply_flow("198.18.2.10", "198.18.1.2", "tcp", 22, "eth0"), "drop"),
    ("input_policy_drop", fw.reply_flow("198.18.3.53", "198.18.1.2", "udp", 53, "eth0"), "drop"),
    ("input_established", fw.reply_flow("198.18.2.10", "198.18.1.2", "tcp", 22, "eth0"),
     "accept"),
    ("input_established", fw.reply_flow("2001:db8:1::1", "2001:db8:1::2", "icmp", None, "eth0"),
     "accept"),
    # neighbour advertisements are not tracked: only the explicit icmpv6 rule lets them in
    ("input_established", fw.neighbour_advert_flow("2001:db8:1::1", "2001:db8:1::2", "eth0"),
     "accept"),
    ("input_policy_drop", fw.neighbour_advert_flow("2001:db8:1::1", "2001:db8:1::2", "eth0"),
     "drop"),
    ("established_only", fw.reply_flow("198.18.2.10", "198.18.1.2", "tcp", 22, "eth0"),
     "no rule matches"),
])
def test_replies_are_walked_as_netfilter_sees_them(ruleset: str, flow: fw.Flow,
                                                   action: str) -> None:
    verdict = fw.evaluate(_ruleset(ruleset), flow)
    assert verdict.action == action, verdict.to_json()
    if action == "drop":
        assert verdict.certain


def test_the_remedy_for_dropped_replies_accepts_established_ones() -> None:
    verdict = fw.evaluate(_ruleset("input_policy_drop"),
                          fw.reply_flow("198.18.1.1", "198.18.1.2", "icmp", None, "eth0"))
    assert verdict.by_policy
    assert fw.remedy_commands(verdict) == [
        "nft add rule inet netcheck_host input ct state established,related accept"]


# -- the root cause: this host's input chain explains the silence below it ----------------------

def test_input_chain_outranks_the_silence_it_causes() -> None:
    dns = CheckOutcome("dns.servers", Layer.NETWORK, "Name servers answer",
                       failed("DNS_RESOLVER_UNREACHABLE", "no answer"))
    fw_in = CheckOutcome("transport.input_firewall", Layer.TRANSPORT, "Replies in",
                         failed("FW_LOCAL_INPUT_BLOCK", "policy drop"))
    fw_out = CheckOutcome("transport.firewall", Layer.TRANSPORT, "Out",
                          failed("FW_LOCAL_OUTPUT_BLOCK", "drop"))
    assert choose_root_cause([dns, fw_in]) is fw_in
    assert choose_root_cause([dns, fw_out]) is dns  # the ladder's order otherwise
    ok = CheckOutcome("x.y", Layer.NETWORK, "t", Result(Status.PASS, "fine"))
    assert choose_root_cause([ok]) is None


# -- loss against the flow's own handshake ----------------------------------------------------

def _burst(received: int, sent: int = 30) -> icmp.BurstResult:
    return icmp.BurstResult("198.18.2.10", sent=sent, rtts_ms=[0.3] * received)


def _silent_connect(syns: int) -> TcpResult:
    return TcpResult("198.18.2.10", 22, "timeout", syns=syns)


@pytest.mark.parametrize("received,syns,lost_to_loss", [
    (4, 10, True),  # 13 % of round trips back: ten silent SYNs are what loss gives (25 %)
    (4, 60, False),  # ... sixty are not: something drops the SYNs themselves
    (27, 10, False),  # 10 % lost: ten silent SYNs are a filter, not chance
    (30, 2, False),  # nothing lost
])
def test_silent_syns_are_loss_only_as_often_as_loss_explains(received: int, syns: int,
                                                              lost_to_loss: bool) -> None:
    assert net_path._syns_lost_to_loss([_silent_connect(syns)], _burst(received)) is lost_to_loss


@pytest.mark.parametrize("state", ["PERMANENT", "NOARP", "STALE"])
def test_without_root_a_neighbour_entry_is_no_proof_once_ip_says_otherwise(state: str) -> None:
    # Not probed (no root): the neighbour entry alone. Nothing back from or through the
    # gateway, and no "time exceeded" from it: it fails; a "time exceeded": it routes.
    silent = net.GatewayFacts("198.18.1.1", "eth0", probed=False, neigh_state=state,
                          neigh_mac="02:00:5e:10:00:01", beyond_silent=True, ttl_hop=False)
    judged = net.judge_gateway(silent)
    assert (judged.status, judged.code, judged.reason) == (
        Status.FAIL, "GATEWAY_UNREACHABLE", "no_ip")
    assert state in judged.text
    routes = net.judge_gateway(replace(silent, ttl_hop=True))
    assert (routes.status, routes.reason) == (Status.PASS, "ttl_hop")
    # Nothing beyond was asked, or no probe could be sent: the entry stands, as before.
    unknown = net.judge_gateway(replace(silent, ttl_hop=None))
    assert unknown.status is Status.PASS
