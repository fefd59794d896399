"""The transport rung for real: this host's own firewall, families, sockets and nmap.

Each test builds a fresh lab, breaks it with nft or iptables inside a lab namespace, runs
the real CLI in the client namespace and reads its JSON (validated against the schema).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import pytest

# The aggregator first: it gathers scenarios_fw.SCENARIOS_LIST into SCENARIOS.
from netcheck.lab.scenarios import SCENARIOS
from netcheck.lab.scenarios_fw import SCENARIOS_LIST
from netcheck.lab.topology import SERVER_V4, Lab
from netcheck.probes import nmapscan

from .conftest import NetcheckRun, run_netcheck
from .pasting import assert_commands_paste

FW_SCENARIOS = [s.name for s in SCENARIOS_LIST]
# The rule text each scenario's finding must quote, and what its hint must name.
QUOTED = {
    "local_output_drop_port": ("ip daddr 198.18.2.10 tcp dport 22 counter packets",
                               "nft delete rule inet netcheck_lab output handle"),
    "local_output_reject": ("ip daddr 198.18.2.10 tcp dport 22 reject with icmp admin-prohibited",
                            "nft delete rule inet netcheck_lab output handle"),
    "local_output_drop_all": ("ip daddr 198.18.2.10 drop",
                              "nft delete rule inet netcheck_lab output handle"),
    "local_rule_in_jumped_chain": ("tcp dport 22 counter packets",
                                   "nft delete rule inet netcheck_lab blocklist handle"),
    "local_iptables_rule": ("-A OUTPUT -d 198.18.2.10/32 -p tcp -m tcp --dport 22 -j REJECT",
                            "iptables -D OUTPUT -d 198.18.2.10/32 -p tcp -m tcp --dport 22"),
    "local_established_only": ("ct state new drop",
                               "nft delete rule inet netcheck_lab output handle"),
}


def _firewall_rule(run: NetcheckRun) -> dict[str, Any]:
    """The blocking rule transport.firewall found for the TCP flow."""
    fw = run.check("transport.firewall")
    assert fw is not None, run.explain()
    for flow in fw["evidence"]["flows"]:
        if flow["flow"].startswith("tcp ") and flow["verdict"] in ("drop", "reject"):
            return dict(flow["rule"])
    pytest.fail(f"no blocking rule in the evidence\n{run.explain()}")


@pytest.mark.parametrize("name", FW_SCENARIOS)
def test_transport_scenario(lab: Lab, name: str) -> None:
    scenario = SCENARIOS[name]
    scenario.apply(lab)
    run = run_netcheck(lab, *scenario.netcheck_argv())
    assert "Traceback" not in run.stderr, run.explain()
    rc = run.root_cause
    got = (run.verdict, rc["code"] if rc else None, rc["layer"] if rc else None)
    assert got == tuple(scenario.expect), run.explain()
    assert_commands_paste(run)
    if name in QUOTED:
        quoted, command = QUOTED[name]
        assert rc is not None and rc["check"] == "transport.firewall", run.explain()
        rule = _firewall_rule(run)
        assert quoted in rule["rule"], rule
        assert quoted in rc["summary"]
        commands = rc["hint"]["commands"]
        assert any(command in c for c in commands), commands
        if rule["source"] == "nft":  # the handle the evidence names is the one to delete
            assert any(c.endswith(f"handle {rule['handle']}") for c in commands), commands
        tcp = run.check("transport.tcp")
        assert tcp is not None and tcp["code"] == "FW_LOCAL_OUTPUT_BLOCK", run.explain()


def test_drop_all_is_not_called_unreachable(lab: Lab) -> None:
    SCENARIOS["local_output_drop_all"].apply(lab)
    run = run_netcheck(lab, *SCENARIOS["local_output_drop_all"].netcheck_argv())
    target = run.check("network.target")
    assert target is not None and target["status"] != "fail", run.explain()
    assert target["code"] != "TARGET_UNREACHABLE"
    fw = run.check("transport.firewall")
    assert fw is not None
    pings = [f for f in fw["evidence"]["flows"] if "ping" in f["flow"]]
    assert pings and pings[0]["verdict"] == "drop", fw["evidence"]


def test_rule_for_another_port_is_not_blamed(lab: Lab) -> None:
    SCENARIOS["local_rule_other_port"].apply(lab)
    run = run_netcheck(lab, *SCENARIOS["local_rule_other_port"].netcheck_argv())
    assert run.verdict == "ok", run.explain()
    fw = run.check("transport.firewall")
    assert fw is not None and fw["status"] == "pass", run.explain()
    assert "2222" not in fw["summary"]
    assert {f["verdict"] for f in fw["evidence"]["flows"]} == {"no rule matches"}


def test_ipv6_only_rejection_names_the_family(lab: Lab) -> None:
    SCENARIOS["ipv6_only_rejected"].apply(lab)
    run = run_netcheck(lab, *SCENARIOS["ipv6_only_rejected"].netcheck_argv())
    rc = run.root_cause
    assert rc is not None and rc["check"] == "transport.tcp", run.explain()
    assert "IPv6" in rc["summary"] and "IPv4 works" in rc["summary"]
    assert "administratively prohibited" in rc["summary"]


def test_local_ipv6_rule_is_a_warning_naming_ipv6(lab: Lab) -> None:
    lab.nft("client", "table inet t {\n chain o {\n type filter hook output priority 0;\n"
            " ip6 daddr 2001:db8:2::10 tcp dport 22 drop\n }\n}\n")
    run = run_netcheck(lab, "tcp://www.lab.test:22")
    assert run.verdict == "degraded", run.explain()
    rc = run.root_cause
    assert rc is not None and rc["code"] == "FW_LOCAL_OUTPUT_BLOCK", run.explain()
    assert rc["summary"].startswith("IPv6") and "ip6 daddr 2001:db8:2::10" in rc["summary"]
    tcp = run.check("transport.tcp")
    assert tcp is not None and tcp["status"] == "warn" and "IPv6" in tcp["summary"]


def test_local_tcp_reset_is_not_taken_for_a_closed_port(lab: Lab) -> None:
    # An RST made by this host's own output chain looks like "nothing listens" to connect().
    lab.nft("client", "table inet t {\n chain o {\n type filter hook output priority 0;\n"
            f" ip daddr {SERVER_V4} tcp dport 22 reject with tcp reset\n }}\n}}\n")
    run = run_netcheck(lab, f"tcp://{SERVER_V4}:22")
    rc = run.root_cause
    assert rc is not None and rc["code"] == "FW_LOCAL_OUTPUT_BLOCK", run.explain()
    assert "reject with tcp reset" in rc["summary"]
    tcp = run.check("transport.tcp")
    assert tcp is not None and tcp["code"] == "FW_LOCAL_OUTPUT_BLOCK", run.explain()
    assert tcp["evidence"]["connects"][0]["state"] == "refused"


def test_firewall_check_runs_beside_the_connect(lab: Lab) -> None:
    # A drop costs the connect its whole timeout; the rules are read meanwhile, not after.
    SCENARIOS["local_output_drop_port"].apply(lab)
    run = run_netcheck(lab, *SCENARIOS["local_output_drop_port"].netcheck_argv(),
                       "--timeout", "1.5")
    fw, tcp = run.check("transport.firewall"), run.check("transport.tcp")
    assert fw is not None and tcp is not None, run.explain()
    assert fw["evidence"]["duration_ms"] < 1000, fw["evidence"]
    assert run.doc is not None and run.doc["duration_ms"] < 2500, run.explain()


def test_local_drop_behind_a_remote_ping_filter_is_not_unreachable(lab: Lab) -> None:
    # The server drops ping, this host drops the port: silence on both, but the rule is ours.
    lab.nft("server", "table inet s {\n chain i {\n type filter hook input priority 0;\n"
            " icmp type echo-request drop\n }\n}\n")
    SCENARIOS["local_output_drop_port"].apply(lab)
    run = run_netcheck(lab, f"tcp://{SERVER_V4}:22")
    rc = run.root_cause
    assert rc is not None and rc["code"] == "FW_LOCAL_OUTPUT_BLOCK", run.explain()


def test_local_reject_all_without_icmp_is_not_unreachable(lab: Lab) -> None:
    # No ICMP socket for users: the only answer is this host's own "admin prohibited".
    lab.exec("client", ["sysctl", "-w", "net.ipv4.ping_group_range=1 0"], check=True)
    lab.nft("client", "table inet t {\n chain o {\n type filter hook output priority 0;\n"
            f" ip daddr {SERVER_V4} reject with icmp type admin-prohibited\n }}\n}}\n")
    run = run_netcheck(lab, f"tcp://{SERVER_V4}:22", user="nobody", no_net_raw=True)
    rc = run.root_cause
    assert rc is not None and rc["code"] == "FW_LOCAL_OUTPUT_BLOCK", run.explain()


# -- without root ------------------------------------------------------------------------------

def test_unprivileged_firewall_check_skips_and_eperm_is_still_diagnosed(lab: Lab) -> None:
    SCENARIOS["local_output_drop_all"].apply(lab)
    run = run_netcheck(lab, *SCENARIOS["local_output_drop_all"].netcheck_argv(), user="nobody")
    assert "Traceback" not in run.stderr, run.explain()
    fw = run.check("transport.firewall")
    assert fw is not None and fw["status"] == "skip", run.explain()
    assert "needs root" in fw["summary"] and "CAP_NET_ADMIN" in fw["summary"]
    rc = run.root_cause
    assert rc is not None and rc["code"] == "FW_LOCAL_OUTPUT_BLOCK", run.explain()
    assert rc["check"] == "transport.tcp" and "EPERM" in rc["summary"]


def test_unprivileged_local_reject_is_told_by_its_sender(lab: Lab) -> None:
    # The ICMP error comes from this host's own address: no rule reading needed.
    SCENARIOS["local_output_reject"].apply(lab)
    run = run_netcheck(lab, *SCENARIOS["local_output_reject"].netcheck_argv(), user="nobody")
    rc = run.root_cause
    assert rc is not None and rc["code"] == "FW_LOCAL_OUTPUT_BLOCK", run.explain()
    assert "198.18.1.2" in rc["summary"]


def test_unprivileged_silent_local_drop_is_found_and_says_root_would_name_the_rule(
        lab: Lab) -> None:
    # Without root the rule cannot be read (this was TCP_FILTERED, "needs root" to tell), but
    # the SYN retransmissions it drops fail inside the kernel: TcpExt TCPRetransFail grows.
    SCENARIOS["local_output_drop_port"].apply(lab)
    run = run_netcheck(lab, *SCENARIOS["local_output_drop_port"].netcheck_argv(), user="nobody")
    assert "Traceback" not in run.stderr, run.explain()
    rc = run.root_cause
    assert rc is not None and rc["code"] == "FW_LOCAL_OUTPUT_BLOCK", run.explain()
    assert "TCPRetransFail" in rc["summary"]
    assert "as root" in rc["hint"]["text"]
    fw = run.check("transport.firewall")
    assert fw is not None and fw["status"] == "skip" and "needs root" in fw["summary"]


# -- sockets -------------------------------------------------------------------------------------

HOLD_PORT = 9022


def _hold_connection(lab: Lab) -> Any:
    """A listener on the server and a client process holding one connection to it open."""
    lab.popen("server", [sys.executable, "-c",
                         "import socket, time\n"
                         f"s = socket.create_server(('{SERVER_V4}', {HOLD_PORT}))\n"
                         "print('listening', flush=True)\n"
                         "c, _ = s.accept()\n"
                         "time.sleep(60)\n"], name="hold-server")
    _wait_for(lab, "hold-server", "listening")
    holder = lab.popen("client", [sys.executable, "-c",
                                  "import socket, time\n"
                                  f"s = socket.create_connection(('{SERVER_V4}', {HOLD_PORT}))\n"
                                  "print('connected', s.getsockname()[1], flush=True)\n"
                                  "time.sleep(60)\n"], name="holder")
    _wait_for(lab, "holder", "connected")
    return holder


def _wait_for(lab: Lab, log: str, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in lab.log(log):
        if time.monotonic() > deadline:
            pytest.fail(f"{log} never said {text!r}: {lab.log(log)!r}")
        time.sleep(0.02)


def test_sockets_evidence_shows_a_held_connection(lab: Lab) -> None:
    holder = _hold_connection(lab)
    try:
        local_port = int(lab.log("holder").split()[1])
        run = run_netcheck(lab, f"tcp://{SERVER_V4}:{HOLD_PORT}")
        socks = run.check("transport.sockets")
        assert socks is not None and socks["status"] == "pass", run.explain()
        entries = socks["evidence"]["sockets"]
        mine = [e for e in entries if e["local"] == f"198.18.1.2:{local_port}"]
        assert mine, json.dumps(socks, indent=1)
        assert mine[0]["state"] == "ESTABLISHED"
        assert mine[0]["peer"] == f"{SERVER_V4}:{HOLD_PORT}"
        assert mine[0]["pid"] == holder.pid and mine[0]["process"].startswith("python")
        # netcheck's own probe to the same port is not mistaken for the user's connection
        assert len(entries) == 1, entries
        assert "ESTABLISHED" in socks["summary"]
    finally:
        holder.terminate()
        holder.wait(timeout=5)


def test_sockets_without_root_are_listed_without_their_owner(lab: Lab) -> None:
    holder = _hold_connection(lab)
    try:
        run = run_netcheck(lab, f"tcp://{SERVER_V4}:{HOLD_PORT}", user="nobody")
        socks = run.check("transport.sockets")
        assert socks is not None and socks["status"] == "pass", run.explain()
        assert socks["evidence"]["owners_visible"] is False
        assert "not visible" in socks["evidence"]["note"]
        entries = socks["evidence"]["sockets"]
        assert len(entries) == 1 and entries[0]["state"] == "ESTABLISHED", entries
        assert "pid" not in entries[0]
    finally:
        holder.terminate()
        holder.wait(timeout=5)


# -- nmap ----------------------------------------------------------------------------------------

def test_scan_shows_nmaps_service_line(lab: Lab) -> None:
    if nmapscan.nmap_path() is None:
        pytest.skip("nmap is not installed")
    run = run_netcheck(lab, f"tcp://{SERVER_V4}:22", "--scan")
    svc = run.check("transport.service")
    assert svc is not None and svc["status"] == "pass", run.explain()
    ev = svc["evidence"]
    assert ev["state"] == "open" and ev["name"] == "ssh", ev
    assert ev["scan_type"] == "syn" and "-sS" in ev["command"]
    assert ev["line"].startswith("22/tcp open  ssh")
    assert "protocol 2.0" in ev["line"]  # the extra information nmap read in the banner
    assert "22/tcp open ssh" in svc["summary"]
    assert run.verdict == "ok", run.explain()


def test_scan_without_root_uses_a_connect_scan(lab: Lab) -> None:
    if nmapscan.nmap_path() is None:
        pytest.skip("nmap is not installed")
    run = run_netcheck(lab, f"tcp://{SERVER_V4}:22", "--scan", user="nobody")
    svc = run.check("transport.service")
    assert svc is not None and svc["status"] == "pass", run.explain()
    assert svc["evidence"]["scan_type"] == "connect" and "-sT" in svc["evidence"]["command"]


def test_scan_is_not_run_unless_asked(lab: Lab) -> None:
    run = run_netcheck(lab, f"tcp://{SERVER_V4}:22")
    svc = run.check("transport.service")
    assert svc is not None and svc["status"] == "skip", run.explain()
    assert svc["summary"] == "not asked (use --scan)"
