"""netcheck diagnoses every lab scenario for real: verdict, root cause, layer and hint.

Each test builds a fresh lab, breaks it the scenario's way, runs the real CLI inside the
client namespace and reads its JSON, which must also validate against the schema.
"""

from __future__ import annotations

import pytest

from netcheck.lab.scenarios import BASE_SCENARIOS as SCENARIOS
from netcheck.lab.topology import Lab
from tests.schema import validate_report

from .conftest import NetcheckRun, run_netcheck
from .pasting import assert_commands_paste

# What the root cause's summary + hint must name for this host: the real interface,
# gateway, resolver, route or port. (Scenario name -> strings.)
MUST_NAME = {
    "client_interface_down": ["eth0", "ip link set dev eth0 up"],
    "carrier_lost": ["eth0", "r-client", "ip -n "],  # the peer and its namespace, by name
    "no_address": ["eth0"],
    "link_local_only": ["eth0", "169.254"],
    "duplicate_address": ["eth0", "2001:db8:1::1"],
    "no_default_route": ["eth0", "ip route"],
    "wrong_gateway": ["198.18.1.99", "eth0"],
    "gateway_off_link": ["198.18.9.1", "eth0"],
    "blackhole_route": ["blackhole 198.18.2.0/24", "ip route del"],
    "unreachable_route": ["unreachable 198.18.2.0/24", "ip route del"],
    "nothing_beyond_gateway": ["198.18.2.10", "last hop"],
    "loopback_down": ["ip link set dev lo up"],
    "resolver_config_empty": ["/etc/resolv.conf"],
    "resolver_dropped": ["198.18.3.53"],
    "resolver_rejected": ["198.18.3.53", "port unreachable"],
    "dns_refused": ["198.18.3.53", "www.lab.test"],
    "dns_servfail": ["198.18.3.53", "www.lab.test"],
    "nxdomain": ["missing.lab.test"],
    "name_without_address": ["noaddr.lab.test"],
    "slow_resolver": ["www.lab.test"],
    "hosts_override": ["198.18.2.99", "/etc/hosts"],
    "port_closed": ["198.18.2.10", "2222"],
    "port_dropped": ["198.18.2.10", "22"],
    "port_admin_prohibited": ["198.18.2.10", "administratively prohibited"],
    "pmtu_blackhole": ["eth0", "mtu 1280"],
    "ping_dropped_port_open": ["198.18.2.10"],
    "narrow_link_pmtud_works": ["eth0", "mtu 1280"],
}


def _root_text(run: NetcheckRun) -> str:
    rc = run.root_cause or {}
    hint = rc.get("hint") or {}
    return " ".join([rc.get("summary", ""), hint.get("text", ""), *hint.get("commands", [])])


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_is_diagnosed(lab: Lab, name: str) -> None:
    scenario = SCENARIOS[name]
    scenario.apply(lab)
    run = run_netcheck(lab, *scenario.netcheck_argv())
    assert run.doc is not None, run.explain()
    validate_report(run.doc)
    assert "Traceback" not in run.stderr, run.explain()
    expect = scenario.expect
    rc = run.root_cause
    got = (run.verdict, rc["code"] if rc else None, rc["layer"] if rc else None)
    assert got == tuple(expect), run.explain()
    assert run.rc == {"ok": 0, "degraded": 1, "broken": 2}[expect.verdict]
    assert_commands_paste(run)
    if expect.code is not None:
        assert rc is not None and rc["hint"] is not None, run.explain()
        text = _root_text(run)
        for needle in MUST_NAME.get(name, []):
            assert needle in text, f"root cause does not name {needle!r}: {text}"


def test_dependants_of_the_root_cause_are_blocked(lab: Lab) -> None:
    SCENARIOS["wrong_gateway"].apply(lab)
    run = run_netcheck(lab, *SCENARIOS["wrong_gateway"].netcheck_argv())
    for dependant in ("network.target", "transport.tcp"):
        check = run.check(dependant)
        assert check is not None and check["status"] == "skip", run.explain()
        assert check["blocked_by"] == "network.gateway"


def test_unused_interface_down_is_reported_but_not_blamed(lab: Lab) -> None:
    SCENARIOS["second_interface_down"].apply(lab)
    run = run_netcheck(lab, *SCENARIOS["second_interface_down"].netcheck_argv())
    assert run.verdict == "ok", run.explain()
    others = run.check("link.others")
    assert others is not None and "eth1" in others["summary"]
    assert others["evidence"]["interfaces"][0]["problem"] == "LINK_ADMIN_DOWN"
    assert run.doc is not None and run.doc["host"]["egress_interface"] == "eth0"


def test_healthy_dual_stack_connects_every_address(lab: Lab) -> None:
    run = run_netcheck(lab, "tcp://www.lab.test:22")
    tcp = run.check("transport.tcp")
    assert tcp is not None and tcp["status"] == "pass", run.explain()
    states = {c["address"]: c["state"] for c in tcp["evidence"]["connects"]}
    assert states == {"198.18.2.10": "open", "2001:db8:2::10": "open"}
    assert run.doc is not None and run.doc["target"]["addresses"] == ["198.18.2.10",
                                                                      "2001:db8:2::10"]


def test_ipv6_broken_while_ipv4_works_names_the_family(lab: Lab) -> None:
    lab.exec("router", ["sysctl", "-w", "net.ipv6.conf.all.forwarding=0"], check=True)
    run = run_netcheck(lab, "tcp://www.lab.test:22")
    assert run.verdict == "degraded", run.explain()
    rc = run.root_cause
    assert rc is not None and rc["code"] == "TARGET_UNREACHABLE" and "IPv6" in rc["summary"]


def test_gateway_gone_after_use_is_not_hidden_by_the_neighbour_cache(lab: Lab) -> None:
    first = run_netcheck(lab, "tcp://198.18.2.10:22", "-4")
    assert first.verdict == "ok", first.explain()
    lab.ip("router", "addr", "flush", "dev", "r-client")
    run = run_netcheck(lab, "tcp://198.18.2.10:22", "-4")
    rc = run.root_cause
    assert rc is not None and rc["code"] == "GATEWAY_UNREACHABLE", run.explain()


def test_router_reject_with_host_unreachable_is_a_firewall(lab: Lab) -> None:
    lab.nft("router", "table inet t {\n chain f {\n type filter hook forward priority 0;\n"
            " tcp dport 22 reject with icmpx type host-unreachable\n }\n}\n")
    run = run_netcheck(lab, "tcp://198.18.2.10:22", "-4")
    rc = run.root_cause
    assert rc is not None and rc["code"] == "TCP_ADMIN_PROHIBITED", run.explain()


def test_local_output_firewall_is_blamed_on_this_host(lab: Lab) -> None:
    lab.nft("client", "table inet t {\n chain o {\n type filter hook output priority 0;\n"
            " ip daddr 198.18.2.10 drop\n }\n}\n")
    run = run_netcheck(lab, "tcp://198.18.2.10:22", "-4")
    rc = run.root_cause
    assert rc is not None and rc["code"] == "FW_LOCAL_OUTPUT_BLOCK", run.explain()


def test_deadline_bounds_the_run_whatever_the_network_does(lab: Lab) -> None:
    SCENARIOS["port_dropped"].apply(lab)
    run = run_netcheck(lab, "tcp://198.18.2.10:22", "--timeout", "10", "--deadline", "1")
    assert run.doc is not None, run.explain()
    validate_report(run.doc)
    assert run.elapsed < 2.0, run.explain()
    assert run.doc["duration_ms"] <= 1000


def test_dropped_port_with_short_timeout_is_quick(lab: Lab) -> None:
    SCENARIOS["port_dropped"].apply(lab)
    run = run_netcheck(lab, "tcp://198.18.2.10:22", "--timeout", "1")
    rc = run.root_cause
    assert rc is not None and rc["code"] == "TCP_FILTERED", run.explain()
    # The SYN retries, the pings, the firewall walk and the TTL-limited trace that locates the
    # drop all overlap the one-second connect: one timeout plus the trace's last wait, never
    # the sum of the timeouts (which passes 4 s).
    assert rc.get("location"), run.explain()
    assert run.doc is not None and run.doc["duration_ms"] < 2500, run.explain()


def test_interface_that_does_not_exist_is_link_missing(lab: Lab) -> None:
    run = run_netcheck(lab, "tcp://198.18.2.10:22", "--interface", "wlan9")
    rc = run.root_cause
    assert rc is not None and (rc["code"], rc["layer"]) == ("LINK_MISSING", 2), run.explain()
    assert "wlan9" in rc["summary"]


def test_frames_dropped_on_a_cut_cable_show_as_link_errors(lab: Lab) -> None:
    # veth counts what it could not send while its peer is down as tx_dropped: real
    # counters, growing during the run (the DNS queries go nowhere), next to the carrier
    # loss that explains them.
    SCENARIOS["carrier_lost"].apply(lab)
    run = run_netcheck(lab, "tcp://www.lab.test:22")
    errors = run.check("link.errors")
    assert errors is not None and errors["status"] == "warn", run.explain()
    assert errors["code"] == "LINK_ERRORS"
    assert run.root_cause is not None and run.root_cause["code"] == "LINK_NO_CARRIER"


def test_a_tight_deadline_still_finds_the_cause(lab: Lab) -> None:
    # Each probe waits at most half the time left: the gateway rung's unanswered ping leaves
    # time for the probes that say why, instead of the deadline ending the run unknown.
    lab.ip("client", "neigh", "replace", "198.18.1.1", "lladdr", "02:00:5e:10:00:01",
           "dev", "eth0", "nud", "permanent")  # the old router's MAC, pinned
    run = run_netcheck(lab, "tcp://198.18.2.10:22", "-4", "--deadline", "2")
    rc = run.root_cause
    assert rc is not None and rc["code"] == "GATEWAY_UNREACHABLE", run.explain()
    assert run.doc is not None and run.doc["duration_ms"] <= 2000, run.explain()


def test_a_gateway_that_drops_ping_is_ok_within_a_tight_deadline(lab: Lab) -> None:
    # A trap: the gateway answers no echo (its burst waits for nothing), the flow works.
    lab.nft("router", "table inet noping {\n chain i {\n type filter hook input priority 0;\n"
            " icmp type echo-request drop\n }\n}\n")
    run = run_netcheck(lab, "tcp://198.18.2.10:22", "-4", "--deadline", "2")
    assert run.verdict == "ok", run.explain()
    assert run.doc is not None and run.doc["duration_ms"] <= 2000, run.explain()
