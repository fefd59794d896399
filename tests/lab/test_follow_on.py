"""Follow-on failures: a rung that failed because a lower rung of its path failed is a skip.

With eth0 down (or without carrier, without an address, behind a wrong gateway) the name
server's silence is what the broken path gives: "Name servers answer" must be blocked by the
rung that broke, never a ✖ with a hint that sends the student after a DNS server that works.
A name server on another path (a stub on loopback, a resolver behind another interface) is not
on the broken path: its failure stays its own.
"""

from __future__ import annotations

import pytest

from netcheck.lab.scenarios import BASE_SCENARIOS as SCENARIOS
from netcheck.lab.topology import STUB_V4, Lab

from .conftest import NetcheckRun, run_netcheck

NAME = "tcp://www.lab.test:22"

# Scenario -> the rung that breaks the path to the name server.
BROKEN_PATH = {
    "client_interface_down": "link.admin_up",
    "carrier_lost": "link.carrier",
    "no_address": "network.address",
    "wrong_gateway": "network.gateway",
}


def _dns_servers(run: NetcheckRun) -> dict:
    check = run.check("dns.servers")
    assert check is not None, run.explain()
    return check


@pytest.mark.parametrize("name", sorted(BROKEN_PATH))
def test_name_server_silence_follows_from_the_broken_path(lab: Lab, name: str) -> None:
    SCENARIOS[name].apply(lab)
    run = run_netcheck(lab, NAME)
    rung = BROKEN_PATH[name]
    servers = _dns_servers(run)
    assert servers["status"] == "skip", run.explain()
    assert servers["blocked_by"] == rung and servers["hint"] is None and servers["code"] is None
    blocker = run.check(rung)
    assert blocker is not None and blocker["status"] == "fail"
    assert servers["summary"] == f"not tried: {blocker['summary']}"
    # what the check saw is kept, for whoever wants to look
    assert servers["evidence"]["follow_on"]["code"] == "DNS_RESOLVER_UNREACHABLE"
    assert servers["evidence"]["follow_on"]["unanswered"] == ["198.18.3.53"]
    # the checks it blocked name the real cause too, and the only ✖ left is the rung itself
    resolution = run.check("dns.resolution")
    assert resolution is not None and resolution["blocked_by"] == rung, run.explain()
    failures = [c["id"] for c in run.doc["checks"] if c["status"] == "fail"]  # type: ignore
    assert failures == [rung], run.explain()
    assert run.root_cause is not None and run.root_cause["check"] == rung


def test_text_report_shows_no_second_cross_for_the_name_servers(lab: Lab) -> None:
    SCENARIOS["client_interface_down"].apply(lab)
    run = run_netcheck(lab, NAME, fmt="text")
    line = next(ln for ln in run.stdout.splitlines() if "Name servers answer" in ln)
    assert "✖" not in line and "network unreachable" not in run.stdout, run.stdout
    assert "firewall drops port 53" not in run.stdout, run.stdout


def test_a_stub_on_loopback_is_not_blocked_by_eth0_down(lab: Lab) -> None:
    # Nothing listens on 127.0.0.1:53: the stub is down. That is this host's own fault on lo,
    # whatever eth0 does.
    lab.write_client_file("resolv.conf", "nameserver 127.0.0.1\n")
    SCENARIOS["client_interface_down"].apply(lab)
    run = run_netcheck(lab, NAME)
    servers = _dns_servers(run)
    assert servers["status"] == "fail" and servers["blocked_by"] is None, run.explain()
    assert servers["code"] == "DNS_RESOLVER_UNREACHABLE"


def test_a_resolver_behind_another_interface_is_not_blocked_by_eth0_down(lab: Lab) -> None:
    # 198.18.4.1 is reached through eth1, which is up; nothing answers DNS there. Its silence
    # is not eth0's doing.
    lab.write_client_file("resolv.conf", f"nameserver {STUB_V4}\n")
    SCENARIOS["client_interface_down"].apply(lab)
    run = run_netcheck(lab, NAME)
    servers = _dns_servers(run)
    assert servers["status"] == "fail" and servers["blocked_by"] is None, run.explain()
    assert servers["hint"] is not None

