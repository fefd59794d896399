"""The firewall probe judges recorded rulesets the way netfilter would.

The fixtures under tests/fixtures/firewall/ were made by loading real rulesets with nft and
iptables into a lab namespace and listing them with the tools (make_fixtures.py): the JSON
the probe reads, nft's own text (what a quoted rule must look like), and iptables-save.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any, Optional

import pytest

from netcheck.probes import firewall as fw
from netcheck.probes.firewall import Flow

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "firewall"


def _load(name: str) -> fw.Ruleset:
    return fw.parse_nft_json((FIXTURES / f"{name}.json").read_text())


def _nft_text_by_handle(name: str) -> dict[tuple[str, str, str, int], str]:
    """Rule text per (family, table, chain, handle) from ``nft -a list ruleset``."""
    found: dict[tuple[str, str, str, int], str] = {}
    table: Optional[tuple[str, str]] = None
    chain: Optional[str] = None
    for line in (FIXTURES / f"{name}.txt").read_text().splitlines():
        if m := re.match(r"^table (\S+) (\S+) \{", line):
            table, chain = (m.group(1), m.group(2)), None
        elif m := re.match(r"^\s*chain (\S+) \{", line):
            chain = m.group(1)
        elif (m := re.match(r"^\s*(.*) # handle (\d+)$", line)) and table and chain:
            found[(table[0], table[1], chain, int(m.group(2)))] = m.group(1)
    return found


def v4(daddr: str, dport: Optional[int] = None, proto: str = "tcp", **kw: Any) -> Flow:
    kw.setdefault("oifname", "eth0")
    return Flow(4, proto, daddr, dport, **kw)


def v6(daddr: str, dport: Optional[int] = None, proto: str = "tcp", **kw: Any) -> Flow:
    kw.setdefault("oifname", "eth0")
    return Flow(6, proto, daddr, dport, **kw)


@pytest.fixture(scope="module")
def complex_rs() -> fw.Ruleset:
    return _load("complex")


# -- rendering ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["complex", "policy_drop", "jumped", "established_only"])
def test_rules_are_quoted_as_nft_list_ruleset_prints_them(name: str) -> None:
    rs = _load(name)
    text = _nft_text_by_handle(name)
    checked = 0
    for chain in rs.chains.values():
        for rule in chain.rules:
            assert rule.quoted == text[(rule.family, rule.table, rule.chain, rule.handle)]
            checked += 1
    assert checked == rs.rule_count > 0


# -- the complex ruleset: one flow per feature ---------------------------------------------------

# (flow, expected action, handle of the deciding rule or None, chain of that rule)
COMPLEX_FLOWS = [
    (v4("198.18.2.5", 80), "drop", 12, "output"),  # named interval set . named port set
    (v4("198.18.9.9", 443), "drop", 12, "output"),
    (v4("198.18.2.20", 80), "no rule matches", None, None),  # outside the /28
    (v4("198.18.9.9", 22), "no rule matches", None, None),  # address in the set, port not
    (v6("2001:db8:9::1", 22), "drop", 13, "output"),
    (v4("198.18.5.5", 25), "reject", 14, "output"),  # concatenation set
    (v4("198.18.5.5", 587), "no rule matches", None, None),
    (v6("2001:db8:2::10", 443), "reject", 16, "output"),
    (v4("198.18.2.10", 22), "no rule matches", None, None),  # ip6 rule never hits IPv4
    (v4("198.18.2.10", 1500), "reject", 17, "output"),  # port range
    (v4("198.18.6.7", 53, "udp"), "reject", 19, "output"),  # anonymous set with a prefix
    (v4("198.18.5.1", 53, "udp"), "reject", 19, "output"),
    (v4("198.18.5.2", 53, "udp"), "no rule matches", None, None),
    (v4("198.18.7.1", 80, oifname="veth3"), "drop", 20, "output"),  # interface wildcard
    (v4("198.18.7.1", 80, oifname="eth0"), "no rule matches", None, None),
    (v4("198.18.8.8", proto="icmp"), "drop", 21, "output"),
    (v4("198.18.8.8", 22), "no rule matches", None, None),
    (v6("2001:db8:8::8", proto="icmp"), "drop", 22, "output"),
    (v4("198.18.2.10", 6000), "drop", 23, "output"),  # verdict map
    (v4("198.18.2.10", 6001), "accept", 23, "output"),
    (v4("198.18.10.5", 22), "no rule matches", None, None),  # jump, then return
    (v4("198.18.10.5", 23), "reject", 36, "deeper"),  # jump, then goto
    (v4("198.18.10.1", 23), "accept", 35, "deeper"),
    (v4("198.18.10.5", 24), "drop", 34, "extra"),
    (v4("198.18.11.11", 22), "drop", 26, "output"),  # mark set, then matched
    (v4("198.18.12.12", 3306), "no rule matches", None, None),  # != address
    (v4("198.18.12.13", 3306), "drop", 27, "output"),
    (v4("198.18.2.10", 7000), "no rule matches", None, None),  # limit rate over: not hit
    (v4("198.18.2.10", 7001), "drop", 31, "output"),  # ct state new
    (v4("198.18.2.10", 9999), "reject", 2, "out"),  # a later base chain, another table
    (v6("2001:db8:2::10", 9999), "no rule matches", None, None),  # that table is ip only
]


@pytest.mark.parametrize("flow,action,handle,chain", COMPLEX_FLOWS,
                         ids=[f"{f.describe()}" for f, *_ in COMPLEX_FLOWS])
def test_complex_ruleset_flows(complex_rs: fw.Ruleset, flow: Flow, action: str,
                               handle: Optional[int], chain: Optional[str]) -> None:
    verdict = fw.evaluate(complex_rs, flow)
    assert verdict.action == action, verdict.to_json()
    assert verdict.certain, verdict.uncertain
    if handle is None:
        assert verdict.rule is None
    else:
        assert verdict.rule is not None
        assert (verdict.rule.handle, verdict.rule.chain) == (handle, chain)


def test_established_accept_does_not_match_a_new_flow(complex_rs: fw.Ruleset) -> None:
    verdict = fw.evaluate(complex_rs, v4("198.18.2.5", 80))
    # The first rule is `ct state established,related accept`: skipped for a NEW flow.
    assert verdict.rule is not None and verdict.rule.handle == 12


def test_loopback_accept_only_for_lo(complex_rs: fw.Ruleset) -> None:
    verdict = fw.evaluate(complex_rs, v4("198.18.2.5", 80, oifname="lo"))
    assert (verdict.action, verdict.rule.handle if verdict.rule else None) == ("accept", 10)


def test_source_port_of_a_client_is_ephemeral(complex_rs: fw.Ruleset) -> None:
    # `tcp sport 1-1023 drop` cannot hit a connect from the ephemeral range...
    assert fw.evaluate(complex_rs, v4("198.18.2.20", 80)).action == "no rule matches"
    # ...but does hit a socket bound to a privileged port.
    verdict = fw.evaluate(complex_rs, v4("198.18.2.20", 80, sport=80))
    assert verdict.action == "drop" and verdict.rule is not None and verdict.rule.handle == 28


def test_unknown_expression_is_never_guessed(complex_rs: fw.Ruleset) -> None:
    # `meta skuid 1000 tcp dport 5432 drop`: whose socket sends is not known.
    verdict = fw.evaluate(complex_rs, v4("198.18.2.10", 5432))
    assert verdict.action == "no rule matches"
    assert not verdict.certain
    assert any("meta skuid" in why and "handle 29" in why for why in verdict.uncertain)


def test_unknown_interface_makes_interface_rules_uncertain(complex_rs: fw.Ruleset) -> None:
    verdict = fw.evaluate(complex_rs, v4("198.18.7.1", 80, oifname=None))
    assert verdict.action == "no rule matches" and not verdict.certain
    assert any("oifname" in why for why in verdict.uncertain)


def test_forward_and_input_hooks_are_parameters(complex_rs: fw.Ruleset) -> None:
    through = Flow(4, "tcp", "198.18.2.10", 22, hook="forward", iifname="eth1", oifname="eth0")
    assert fw.evaluate(complex_rs, through).action == "accept"
    back = Flow(4, "tcp", "198.18.1.2", 22, hook="forward", iifname="eth0", oifname="eth1")
    verdict = fw.evaluate(complex_rs, back)
    assert verdict.action == "drop" and verdict.by_policy
    assert verdict.chain is not None and verdict.chain.label == "inet routerfw forward"
    inbound = Flow(4, "tcp", "198.18.2.10", 22, hook="input", iifname="eth0")
    verdict = fw.evaluate(complex_rs, inbound)
    assert verdict.action == "drop" and verdict.rule is not None and verdict.rule.handle == 4


# -- policies, jumps and the lab's own rulesets --------------------------------------------------

def test_policy_drop_is_the_verdict_when_nothing_accepts() -> None:
    rs = _load("policy_drop")
    verdict = fw.evaluate(rs, v4("198.18.2.10", 22))
    assert verdict.action == "drop" and verdict.by_policy and verdict.rule is None
    assert verdict.describe() == "inet filter output: policy drop"
    assert fw.remedy_commands(verdict) == [
        "nft add rule inet filter output ip daddr 198.18.2.10 tcp dport 22 accept"]
    assert fw.evaluate(rs, v4("198.18.1.1", 22)).action == "accept"
    assert fw.evaluate(rs, v4("198.18.3.53", 53, "udp")).action == "accept"  # th dport
    assert fw.evaluate(rs, v6("2001:db8:2::10", 22)).action == "drop"
    assert fw.evaluate(rs, v6("2001:db8:1::1", 22)).action == "accept"


def test_drop_in_a_jumped_chain_is_quoted_with_its_chain_and_handle() -> None:
    rs = _load("jumped")
    verdict = fw.evaluate(rs, v4("198.18.2.10", 22))
    assert verdict.action == "drop" and verdict.rule is not None
    assert verdict.describe() == ("inet netcheck_lab blocklist: "
                                  "`tcp dport 22 counter packets 0 bytes 0 drop` (handle 4)")
    assert fw.remedy_commands(verdict) == [
        "nft delete rule inet netcheck_lab blocklist handle 4",
        "nft insert rule inet netcheck_lab blocklist position 4 "
        "ip daddr 198.18.2.10 tcp dport 22 accept"]
    assert fw.evaluate(rs, v4("198.18.3.53", 22)).action == "no rule matches"


def test_established_only_chain_drops_new_connections() -> None:
    rs = _load("established_only")
    verdict = fw.evaluate(rs, v4("198.18.2.10", 22))
    assert verdict.action == "drop" and verdict.rule is not None
    assert verdict.rule.quoted == "ct state new drop"
    assert fw.evaluate(rs, v4("198.18.1.1", 53, "udp")).action == "accept"


# -- iptables ------------------------------------------------------------------------------------

def _iptables_nft() -> fw.Ruleset:
    rs = _load("iptables_nft")
    fw.merge_iptables_nft(rs, "ip", "filter",
                          (FIXTURES / "iptables_nft.iptables-save").read_text(), "iptables")
    fw.merge_iptables_nft(rs, "ip6", "filter",
                          (FIXTURES / "iptables_nft.ip6tables-save").read_text(), "ip6tables")
    return rs


def test_iptables_nft_rule_is_quoted_as_iptables_save_and_deleted_with_iptables() -> None:
    verdict = fw.evaluate(_iptables_nft(), v4("198.18.2.10", 22))
    assert verdict.action == "reject" and verdict.certain
    rule = verdict.rule
    assert rule is not None and rule.source == "iptables-nft" and rule.handle == 2
    assert rule.quoted == ("-A OUTPUT -d 198.18.2.10/32 -p tcp -m tcp --dport 22 -j REJECT "
                           "--reject-with icmp-port-unreachable")
    assert fw.remedy_commands(verdict) == [
        "iptables -D OUTPUT -d 198.18.2.10/32 -p tcp -m tcp --dport 22 -j REJECT "
        "--reject-with icmp-port-unreachable",
        "iptables -I OUTPUT 1 -d 198.18.2.10 -p tcp --dport 22 -j ACCEPT"]
    # The same rule through nft: a command from the probe, what it means from the check.
    assert fw.nft_delete_command(verdict) == "nft delete rule ip filter OUTPUT handle 2"
    from netcheck.checks.transport import remedy_commands

    assert remedy_commands(verdict)[2:] == [
        "nft delete rule ip filter OUTPUT handle 2   # the same rule, through nft"]


@pytest.mark.parametrize("flow,action,position", [
    (v4("198.18.3.53", 123, "udp"), "drop", 1),  # multiport, in a chain reached by -o eth+
    (v4("198.18.9.1", 80), "reject", 2),  # conntrack NEW
    (v4("198.18.2.10", 8050), "drop", 3),  # a port range next to a comment
    (v4("198.18.3.53", 123, "udp", oifname="wlan0"), "no rule matches", None),
    (v6("2001:db8:2::10", 22), "drop", None),  # ip6tables policy DROP
    (v6("2001:db8:1::1", 22), "accept", 2),
])
def test_iptables_nft_flows(flow: Flow, action: str, position: Optional[int]) -> None:
    verdict = fw.evaluate(_iptables_nft(), flow)
    assert verdict.action == action, verdict.to_json()
    if position is not None:
        assert verdict.rule is not None and verdict.rule.position == position


def test_iptables_owner_match_is_uncertain() -> None:
    verdict = fw.evaluate(_iptables_nft(), v4("198.18.2.10", 80))
    assert verdict.action == "no rule matches" and not verdict.certain
    assert any("owner" in why for why in verdict.uncertain)


def test_iptables_nft_without_iptables_save_still_sees_the_reject() -> None:
    # nft's JSON alone: the REJECT target is an xt blob, but a known one.
    rs = _load("iptables_nft")
    verdict = fw.evaluate(rs, v4("198.18.2.10", 22))
    assert verdict.action == "reject" and verdict.rule is not None and verdict.rule.handle == 2
    unsure = fw.evaluate(rs, v4("198.18.3.53", 123, "udp"))
    assert not unsure.certain and any("multiport" in why for why in unsure.uncertain)


def test_legacy_iptables_save_is_evaluated_in_priority_order() -> None:
    rs = fw.Ruleset()
    for chain in fw.parse_iptables_save(
            (FIXTURES / "iptables_legacy.iptables-save").read_text(), 4,
            source="iptables-legacy", command="iptables-legacy"):
        rs.add_chain(chain)
    verdict = fw.evaluate(rs, v4("198.18.2.10", 22))
    assert verdict.action == "drop" and verdict.rule is not None
    assert verdict.rule.quoted == "-A OUTPUT -d 198.18.2.10/32 -p tcp -m tcp --dport 22 -j DROP"
    assert fw.remedy_commands(verdict)[0] == (
        "iptables-legacy -D OUTPUT -d 198.18.2.10/32 -p tcp -m tcp --dport 22 -j DROP")
    # mangle OUTPUT (priority -150) runs before filter OUTPUT
    mangle = fw.evaluate(rs, v4("198.18.2.10", 25))
    assert mangle.rule is not None and mangle.rule.table == "mangle"
    assert fw.remedy_commands(mangle)[0].startswith("iptables-legacy -t mangle -D OUTPUT ")
    # `! -d 198.18.0.0/16 -j REJECT`
    assert fw.evaluate(rs, v4("198.19.0.1", 80)).action == "reject"
    assert fw.evaluate(rs, v4("198.18.4.1", 80)).action == "no rule matches"


def test_iptables_options_translate_to_expressions() -> None:
    text = ("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
            ":web - [0:0]\n"
            "-A OUTPUT -o lo -j ACCEPT\n"
            "-A OUTPUT -p tcp -m multiport --dports 80,443,8000:8100 -j web\n"
            "-A OUTPUT -p udp -m udp ! --dport 53 -j DROP\n"
            "-A OUTPUT -m iprange --dst-range 198.18.20.1-198.18.20.9 -j DROP\n"
            "-A web -d 198.18.21.0/255.255.255.0 -j REJECT --reject-with tcp-reset\n"
            "-A web -j RETURN\n"
            "-A OUTPUT -p icmp -m icmp --icmp-type 8 -j DROP\n"
            "COMMIT\n")
    rs = fw.Ruleset()
    for chain in fw.parse_iptables_save(text, 4):
        rs.add_chain(chain)
    assert fw.evaluate(rs, v4("198.18.21.5", 8080)).action == "reject"
    assert fw.evaluate(rs, v4("198.18.22.5", 8080)).action == "no rule matches"
    assert fw.evaluate(rs, v4("198.18.21.5", 8080, oifname="lo")).action == "accept"
    assert fw.evaluate(rs, v4("198.18.22.5", 123, "udp")).action == "drop"
    assert fw.evaluate(rs, v4("198.18.22.5", 53, "udp")).action == "no rule matches"
    assert fw.evaluate(rs, v4("198.18.20.5", 22)).action == "drop"
    assert fw.evaluate(rs, v4("198.18.22.5", proto="icmp")).action == "drop"
    fwd = Flow(4, "tcp", "198.18.2.10", 22, hook="forward", iifname="eth0", oifname="eth1")
    assert fw.evaluate(rs, fwd).by_policy


# -- bounds and hostile input ----------------------------------------------------------------------

def _big_chain(n: int, verdict: str = "drop") -> str:
    """nft's JSON for one output chain of n rules `ip daddr A tcp dport P drop`."""
    rule = ('{{"rule": {{"family": "inet", "table": "t", "chain": "o", "handle": {h}, "expr": ['
            '{{"match": {{"op": "==", "left": {{"payload": {{"protocol": "ip", '
            '"field": "daddr"}}}}, "right": "198.19.{a}.{b}"}}}}, '
            '{{"match": {{"op": "==", "left": {{"payload": {{"protocol": "tcp", '
            '"field": "dport"}}}}, "right": {p}}}}}, {{"{v}": null}}]}}}}')
    head = ('{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}}, '
            '{"table": {"family": "inet", "name": "t", "handle": 1}}, '
            '{"chain": {"family": "inet", "table": "t", "name": "o", "handle": 1, '
            '"type": "filter", "hook": "output", "prio": 0, "policy": "accept"}}, ')
    rules = ", ".join(rule.format(h=i + 2, a=(i >> 8) & 255, b=i & 255, p=1 + i % 60000,
                                  v=verdict) for i in range(n))
    return head + rules + "]}"


@pytest.fixture(scope="module")
def huge_text() -> str:
    return _big_chain(100_000)


def test_a_hundred_thousand_rules_are_capped_and_say_so(huge_text: str) -> None:
    start = time.monotonic()
    rs = fw.parse_nft_json(huge_text)
    # The step cap, not the time budget (which a loaded machine reaches first): a generous
    # budget here; test_time_budget_caps_the_walk_too covers the other cap.
    verdict = fw.evaluate(rs, v4("198.18.2.10", 22), time_budget=60.0)
    elapsed = time.monotonic() - start
    assert rs.rule_count == 100_000
    assert verdict.action == "unknown" and verdict.capped and not verdict.certain
    assert verdict.steps > fw.MAX_STEPS
    assert "too large" in json.dumps(verdict.to_json())
    assert elapsed < 60.0  # bounded: no walk of all 100 000 rules per jump


def test_a_match_early_in_a_huge_chain_is_still_found(huge_text: str) -> None:
    rs = fw.parse_nft_json(huge_text)
    verdict = fw.evaluate(rs, v4("198.19.0.7", 8))
    assert verdict.action == "drop" and verdict.rule is not None and verdict.rule.handle == 9


def test_time_budget_caps_the_walk_too() -> None:
    rs = fw.parse_nft_json(_big_chain(20_000))
    verdict = fw.evaluate(rs, v4("198.18.2.10", 22), max_steps=10**9, time_budget=0.0)
    assert verdict.capped and verdict.action == "unknown"


def test_jump_loop_is_bounded() -> None:
    doc = {"nftables": [
        {"chain": {"family": "inet", "table": "t", "name": "o", "hook": "output", "prio": 0,
                   "policy": "accept", "type": "filter"}},
        {"chain": {"family": "inet", "table": "t", "name": "a"}},
        {"chain": {"family": "inet", "table": "t", "name": "b"}},
        {"rule": {"family": "inet", "table": "t", "chain": "o", "handle": 1,
                  "expr": [{"jump": {"target": "a"}}]}},
        {"rule": {"family": "inet", "table": "t", "chain": "a", "handle": 2,
                  "expr": [{"jump": {"target": "b"}}]}},
        {"rule": {"family": "inet", "table": "t", "chain": "b", "handle": 3,
                  "expr": [{"jump": {"target": "a"}}]}},
    ]}
    verdict = fw.evaluate(fw.parse_nft_json(json.dumps(doc)), v4("198.18.2.10", 22))
    assert verdict.action == "unknown" and not verdict.certain
    assert any("deeper than" in why for why in verdict.uncertain)


def test_huge_named_set_is_indexed() -> None:
    elems = [f"198.19.{i >> 8 & 255}.{i & 255}" for i in range(60_000)] + [
        {"prefix": {"addr": "198.18.2.0", "len": 24}}]
    doc = {"nftables": [
        {"set": {"family": "inet", "table": "t", "name": "bad", "type": "ipv4_addr",
                 "flags": ["interval"], "elem": elems}},
        {"chain": {"family": "inet", "table": "t", "name": "o", "hook": "output", "prio": 0,
                   "policy": "accept", "type": "filter"}},
        *[{"rule": {"family": "inet", "table": "t", "chain": "o", "handle": h, "expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                       "right": "@bad"}},
            {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                       "right": h}}, {"drop": None}]}} for h in range(1, 200)]]}
    rs = fw.parse_nft_json(json.dumps(doc))
    start = time.monotonic()
    assert fw.evaluate(rs, v4("198.19.3.4", 150)).action == "drop"
    assert fw.evaluate(rs, v4("198.18.2.10", 22)).action == "drop"  # via the prefix
    assert fw.evaluate(rs, v4("198.18.3.10", 22)).action == "no rule matches"
    assert time.monotonic() - start < 2.0


@pytest.mark.parametrize("text", ["", "{}", '{"nftables": [1, "x", {"rule": 3}, '
                                          '{"rule": {"expr": "nonsense"}}, {"a": 1, "b": 2}]}',
                                  '{"nftables": [{"chain": {"family": "inet", "table": "t", '
                                  '"name": "o", "hook": "output", "prio": "high"}}, '
                                  '{"rule": {"family": "inet", "table": "t", "chain": "o", '
                                  '"expr": [{"match": {"op": "==", "left": {"weird": 1}, '
                                  '"right": [[{"x": 1}]]}}, {"drop": null}]}}]}'])
def test_malformed_json_never_crashes(text: str) -> None:
    rs = fw.parse_nft_json(text)
    verdict = fw.evaluate(rs, v4("198.18.2.10", 22))
    assert verdict.action in ("no rule matches", "unknown")


def test_garbage_iptables_save_never_crashes() -> None:
    text = ("*filter\n:OUTPUT DROP\n-A OUTPUT -m weird --opt 'unterminated\n-A\n"
            "-A NOCHAIN -j DROP\n-A OUTPUT -p tcp --dport -j\n*\n:\nCOMMIT\n")
    rs = fw.Ruleset()
    for chain in fw.parse_iptables_save(text, 4):
        rs.add_chain(chain)
    assert fw.evaluate(rs, v4("198.18.2.10", 22)).action in ("drop", "unknown")


# -- reading -----------------------------------------------------------------------------------

def test_without_cap_net_admin_the_rules_are_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fw, "has_cap_net_admin", lambda: False)
    rs = fw.read_ruleset()
    assert not rs.readable and rs.error == fw.NEEDS_ROOT
    result = fw.judge([v4("198.18.2.10", 22)], timeout=1.0)
    assert not result.readable and result.reason == fw.NEEDS_ROOT


def test_bounded_run_kills_a_slow_command() -> None:
    start = time.monotonic()
    rc, out, err = fw.run_bounded(["sleep", "5"], timeout=0.2)
    assert rc == -1 and "timed out" in err
    assert time.monotonic() - start < 2.0


def test_bounded_run_caps_the_output() -> None:
    rc, out, err = fw.run_bounded(["yes"], timeout=5.0, max_bytes=1 << 20)
    assert rc == -1 and "larger than" in err and out == ""


def test_judge_on_a_recorded_ruleset_lists_every_flow() -> None:
    flows = fw.target_flows(["198.18.2.10", "2001:db8:2::10"], 22, ("tcp",),
                            {"198.18.2.10": ("eth0", "198.18.1.2")})
    result = fw.judge(flows, timeout=2.0, ruleset=_load("policy_drop"))
    assert result.readable
    assert [v.flow.describe() for v in result.verdicts] == [
        "tcp port 22 to 198.18.2.10", "IPv4 ping to 198.18.2.10",
        "tcp port 22 to 2001:db8:2::10", "IPv6 ping to 2001:db8:2::10"]
    assert result.blocks("198.18.2.10", "tcp") is not None
    doc = result.summary_json()
    json.dumps(doc)  # JSON-native all the way down
    assert doc["flows"][0]["policy"] == {"chain": "inet filter output", "policy": "drop"}


def test_ipv4_mapped_target_is_an_ipv4_flow() -> None:
    flows = fw.target_flows(["::ffff:198.18.2.10"], 22, ("tcp",), {}, with_ping=False)
    assert (flows[0].family, flows[0].daddr) == (4, "198.18.2.10")


# -- the other transport probes (sockets, nmap): the parts that need no lab --------------------

@pytest.mark.skipif(sys.byteorder != "little", reason="the recorded line is from an x86 host")
def test_socket_table_line_is_read_in_the_kernels_spelling() -> None:
    from netcheck.probes import sockets

    # Lines of /proc/net/tcp and tcp6 (x86): 198.18.1.2:45678 -> 198.18.2.10:22 ESTABLISHED,
    # and a dual-stack socket in TIME_WAIT whose peer is ::ffff:198.18.2.10.
    line = (b"   3: 020112C6:B26E 0A0212C6:0016 01 00000000:00000000 00:00000000 00000000"
            b"     0        0 123456 1 0000000000000000 20 4 30 10 -1")
    v6_line = (b"   0: 0000000000000000FFFF0000020112C6:B270 0000000000000000FFFF00000A0212C6:0016"
               b" 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000")
    raw = sockets.RawTables({"tcp": [line], "tcp6": [v6_line], "udp": [], "udp6": []})
    found = sockets.towards(raw, ["198.18.2.10"])
    assert [(s.state, s.local, s.peer) for s in found] == [
        ("ESTABLISHED", "198.18.1.2:45678", "198.18.2.10:22"),
        ("TIME_WAIT", "198.18.1.2:45680", "198.18.2.10:22")]  # a dual-stack socket's peer
    assert sockets.towards(raw, ["198.18.2.11", "2001:db8:2::10"]) == []
    snap = sockets.with_owners([])  # nothing matched: psutil is not even asked
    assert snap.sockets == [] and snap.error is None


def test_nmap_arguments_follow_privilege_and_family() -> None:
    from netcheck.probes import nmapscan

    assert nmapscan.arguments("198.18.2.10", True, 7) == (
        "-sV -Pn -n --version-light --host-timeout 7s -sS")
    assert nmapscan.arguments("2001:db8:2::10", False, 0).endswith("--host-timeout 1s -sT -6")


def test_nmap_port_line_is_printed_as_nmap_does() -> None:
    from netcheck.probes import nmapscan

    scan = nmapscan.ServiceScan("198.18.2.10", 22, state="open", name="ssh", product="OpenSSH",
                                version="9.2p1 Debian 2", extrainfo="protocol 2.0")
    assert scan.line == "22/tcp open  ssh     OpenSSH 9.2p1 Debian 2 (protocol 2.0)"
    bare = nmapscan.ServiceScan("198.18.2.10", 22, state="open", name="ssh",
                                extrainfo="protocol 2.0")
    assert bare.line == "22/tcp open  ssh     (protocol 2.0)"


def test_missing_nmap_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    from netcheck.probes import nmapscan

    monkeypatch.setattr(nmapscan, "nmap_path", lambda: None)
    result = nmapscan.scan("198.18.2.10", 22, privileged=False, time_left=5.0)
    assert result.error == nmapscan.NMAP_MISSING  # a code: checks.transport words it
