"""Real-host shapes at layer 3, diagnosed for real in the lab (netcheck/lab/scenarios_host.py).

Each scenario is built the way a real machine gets there; netcheck runs inside the client
namespace and must reach the scenario's verdict and root cause, name this host's real
interface, addresses and rules, and say which family fails. The healthy shapes (policy
routing as wg-quick leaves it, defaults by metric, a route on a dead link the kernel ignores,
a second uplink, defaults in a table of their own, an IPv4-only host) must give ``ok``.
"""

from __future__ import annotations

import pytest

from netcheck.lab.scenarios_host import SCENARIOS_LIST
from netcheck.lab.topology import Lab

from .conftest import NetcheckRun, run_netcheck
from .pasting import assert_commands_paste

SCENARIOS = {s.name: s for s in SCENARIOS_LIST}

# What the root cause's summary + hint must name on this host.
MUST_NAME = {
    "ipv4_lease_lost_dns_v4": ["eth0", "IPv4", "198.18.3.53"],
    "ipv4_link_local_dns_v4": ["eth0", "169.254", "198.18.3.53"],
    "ipv4_lease_lost_a_only": ["eth0", "IPv4"],
    "ipv4_link_local_dual_stack_target": ["eth0", "169.254", "IPv6 carries"],
    "input_chain_drops_replies": ["policy drop", "netcheck_host",
                                  "ct state established,related accept"],
    "gateway_static_neighbour": ["198.18.1.1", "02:00:5e:10:00:01", "ip neigh del 198.18.1.1"],
    "address_taken": ["198.18.1.2", "eth0", "arping -D"],
    "reverse_path_filtered": ["198.18.1.1", "reverse-path", "rp_filter=2", "eth1"],
    "ipsec_no_sa": ["198.18.2.10", "198.18.1.1", "ip xfrm state"],
    "ipsec_policy_block": ["198.18.2.0/24", "ip xfrm policy delete"],
    "wg_quick_tunnel_dead": ["wg0"],
    "preferred_uplink_dead_end": ["198.18.2.10", "198.18.4.1"],
    "linkdown_default_used": ["eth1"],
}
# The family the root cause names (evidence.family) where one family fails.
FAMILY = {
    "ipv4_lease_lost_dns_v4": "ipv4",
    "ipv4_link_local_dns_v4": "ipv4",
    "ipv4_lease_lost_a_only": "ipv4",
    "ipv4_link_local_dual_stack_target": "ipv4",
}


def _root_text(run: NetcheckRun) -> str:
    rc = run.root_cause or {}
    hint = rc.get("hint") or {}
    return " ".join([rc.get("summary", ""), hint.get("text", ""), *hint.get("commands", [])])


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_host_shape_is_diagnosed(lab: Lab, name: str) -> None:
    scenario = SCENARIOS[name]
    scenario.apply(lab)
    run = run_netcheck(lab, *scenario.netcheck_argv())
    assert "Traceback" not in run.stderr, run.explain()
    rc = run.root_cause
    got = (run.verdict, rc["code"] if rc else None, rc["layer"] if rc else None)
    assert got == tuple(scenario.expect), run.explain()
    assert_commands_paste(run)
    text = _root_text(run)
    for needle in MUST_NAME.get(name, []):
        assert needle in text, f"root cause does not name {needle!r}: {text}"
    if name in FAMILY:
        assert rc is not None
        check = run.check(rc["check"])
        assert check is not None and check["evidence"].get("family") == FAMILY[name], \
            run.explain()


def test_arp_reply_alone_does_not_pass_the_gateway(lab: Lab) -> None:
    # The gateway answers ARP, but this host's input chain drops every IP reply: the gateway
    # rung must not claim it answers, and must say why nothing comes back.
    SCENARIOS["input_chain_drops_replies"].apply(lab)
    run = run_netcheck(lab, "tcp://198.18.2.10:22", "-4")
    gateway = run.check("network.gateway")
    assert gateway is not None and gateway["status"] == "skip", run.explain()
    assert "input chain" in gateway["summary"] and gateway["evidence"]["state"] == "link_only"
    rc = run.root_cause
    assert rc is not None and rc["code"] == "FW_LOCAL_INPUT_BLOCK", run.explain()


def test_route_follows_policy_rules_into_the_vpn_table(lab: Lab) -> None:
    SCENARIOS["wg_quick_full_tunnel"].apply(lab)
    run = run_netcheck(lab, "tcp://198.18.2.10:22", "-4")
    assert run.verdict == "ok", run.explain()
    route = run.check("network.route")
    assert route is not None and "dev wg0" in route["summary"] and "table 51820" in \
        route["summary"], run.explain()
    assert run.doc is not None and run.doc["host"]["egress_interface"] == "wg0"


def test_default_in_another_table_is_no_missing_default(lab: Lab) -> None:
    SCENARIOS["default_in_own_table"].apply(lab)
    run = run_netcheck(lab, "tcp://198.18.2.10:22", "-4")
    route = run.check("network.route")
    assert route is not None and route["status"] == "pass", run.explain()
    assert "table 100" in route["summary"]


def test_missing_default_names_the_table_no_rule_reaches(lab: Lab) -> None:
    # wg-quick went down half way: its table keeps a default, its rule is gone, and the main
    # table has none.
    lab.ip("client", "-4", "route", "del", "0.0.0.0/0")
    lab.ip("client", "-4", "route", "add", "0.0.0.0/0", "via", "198.18.1.1", "dev", "eth0",
           "table", "51820")
    run = run_netcheck(lab, "tcp://198.18.2.10:22", "-4")
    rc = run.root_cause
    assert rc is not None and rc["code"] == "ROUTE_NO_DEFAULT", run.explain()
    assert "table 51820" in rc["summary"] and "ip rule show" in rc["hint"]["commands"]


def test_address_conflict_probe_needs_root(lab: Lab) -> None:
    run = run_netcheck(lab, "tcp://198.18.2.10:22", "-4", user="nobody")
    conflict = run.check("network.address_conflict")
    assert conflict is not None and conflict["status"] == "skip", run.explain()
    assert "root" in conflict["summary"]
    assert run.verdict == "ok", run.explain()
