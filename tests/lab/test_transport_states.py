"""What the transport rung saw, for real: silence, RST, an ICMP error and who sent it, a reset
after the handshake, silence after it; one family carrying the flow; and a namespace that has
nothing but loopback, where a loopback target walks lo's ladder and is ok.

The scenarios of :mod:`netcheck.lab.scenarios_l4` only add hosts, servers and rules of their
own, so one lab serves them all. The loopback-only namespace is a lab's ``stub`` namespace with
its only veth deleted: the lab's machinery creates, names and removes it.
"""

from __future__ import annotations

import json
import re
import sys
import time
import xml.etree.ElementTree as ET
from typing import Any, Iterator

import pytest

from netcheck.lab.scenarios import SCENARIOS  # first: the library gathers scenarios_l4
from netcheck.lab.scenarios_l4 import ROUTER_V4, ROUTER_V6, SCENARIOS_LIST
from netcheck.lab.topology import Lab

from .conftest import NetcheckRun, lab_with, run_netcheck
from .pasting import assert_commands_paste
from .test_exporter_lab import FETCH

L4_NAMES = [s.name for s in SCENARIOS_LIST]
LO_PORT = 8080


@pytest.fixture(scope="module")
def l4_lab(lab_support: None) -> Iterator[Lab]:
    """One lab with every scenario of scenarios_l4 applied."""
    yield from lab_with(SCENARIOS_LIST)


_RUNS: dict[tuple[str, str], NetcheckRun] = {}


def diagnose(lab: Lab, name: str) -> NetcheckRun:
    """The scenario's run, once per lab (several tests read the same run)."""
    key = (lab.prefix, name)
    if key not in _RUNS:
        run = run_netcheck(lab, *SCENARIOS[name].netcheck_argv(lab))
        assert "Traceback" not in run.stderr, run.explain()
        _RUNS[key] = run
    return _RUNS[key]


def tcp_check(run: NetcheckRun) -> dict[str, Any]:
    found = run.check("transport.tcp")
    assert found is not None, run.explain()
    return found


@pytest.mark.parametrize("name", L4_NAMES)
def test_scenario_is_diagnosed(l4_lab: Lab, name: str) -> None:
    run = diagnose(l4_lab, name)
    rc = run.root_cause
    got = (run.verdict, rc["code"] if rc else None, rc["layer"] if rc else None)
    assert got == tuple(SCENARIOS[name].expect), run.explain()
    assert run.rc == {"ok": 0, "degraded": 1, "broken": 2}[run.verdict or ""]
    assert_commands_paste(run)


# -- handshake, then RST before any byte ------------------------------------------------------

@pytest.mark.parametrize("name", ["l4_reset_tcp", "l4_reset_http", "l4_reset_https",
                                  "l4_reset_smtp"])
def test_reset_after_the_handshake_is_not_called_filtered(l4_lab: Lab, name: str) -> None:
    run = diagnose(l4_lab, name)
    tcp = tcp_check(run)
    # The SYN was answered: the transport rung passes and says what came after.
    assert tcp["status"] == "pass", run.explain()
    assert "no answer to SYN" not in tcp["summary"]
    assert "reset the connection before sending a byte" in tcp["summary"], tcp
    assert {c["state"] for c in tcp["evidence"]["connects"]} == {"reset"}, tcp["evidence"]
    rc = run.root_cause
    assert rc is not None and rc["code"] == "APP_CONNECTION_RESET", run.explain()
    assert "resets it before sending a byte" in rc["summary"]
    assert "/etc/hosts.deny" in rc["hint"]["text"]
    # Nothing is sent to a server that throws every client out: no request, no TLS.
    tls = run.check("tls.handshake")
    assert tls is None or tls["status"] == "skip", run.explain()


def test_reset_server_saw_the_connections_and_nothing_else(l4_lab: Lab) -> None:
    diagnose(l4_lab, "l4_reset_http")
    log = l4_lab.log("app-l4-reset-reset-25-80-443-7000")
    assert "accepted and reset at once" in log, log


# -- handshake, then silence -----------------------------------------------------------------

@pytest.mark.parametrize("name", ["l4_quiet_http", "l4_quiet_smtp", "l4_quiet_https",
                                  "l4_quiet_tcp_is_fine"])
def test_silence_after_the_handshake_is_seen_by_the_transport_rung(l4_lab: Lab,
                                                                   name: str) -> None:
    run = diagnose(l4_lab, name)
    tcp = tcp_check(run)
    assert tcp["status"] == "pass", run.explain()
    connects = tcp["evidence"]["connects"]
    assert {c["state"] for c in connects} == {"open"}
    assert {c["after"] for c in connects} == {"quiet"}, connects
    assert all(c["watched_ms"] > 0 for c in connects)


def test_silent_tcp_port_is_ok_and_says_it_waits(l4_lab: Lab) -> None:
    run = diagnose(l4_lab, "l4_quiet_tcp_is_fine")
    banner = run.check("app.banner")
    assert banner is not None and banner["status"] == "pass", run.explain()
    assert "waits for the client" in banner["summary"]


# -- RST to the SYN, silence to the SYN --------------------------------------------------------

@pytest.mark.parametrize("name", ["l4_refused_http", "l4_refused_https", "l4_refused_smtp"])
def test_rst_to_the_syn_is_refused(l4_lab: Lab, name: str) -> None:
    run = diagnose(l4_lab, name)
    tcp = tcp_check(run)
    assert {c["state"] for c in tcp["evidence"]["connects"]} == {"refused"}
    assert "refused (RST: nothing listens)" in tcp["summary"]
    assert tcp["evidence"]["working"] == [], tcp["evidence"]


@pytest.mark.parametrize("name", ["l4_filtered_http", "l4_filtered_https", "l4_filtered_smtp"])
def test_silence_to_the_syn_is_filtered_and_counts_the_syns(l4_lab: Lab, name: str) -> None:
    run = diagnose(l4_lab, name)
    tcp = tcp_check(run)
    connects = tcp["evidence"]["connects"]
    assert {c["state"] for c in connects} == {"timeout"}, connects
    assert all(c["syns"] >= 1 for c in connects), connects
    assert "no answer to SYN" in tcp["summary"]
    # The target answers ping: the finding is the port, not the host.
    target = run.check("network.target")
    assert target is not None and target["status"] == "pass", run.explain()


# -- an ICMP error, and from whom ----------------------------------------------------------------

@pytest.mark.parametrize("name", ["l4_router_prohibits_tcp", "l4_router_prohibits_http",
                                  "l4_router_prohibits_smtp"])
def test_icmp_error_names_the_router_that_sent_it(l4_lab: Lab, name: str) -> None:
    run = diagnose(l4_lab, name)
    tcp = tcp_check(run)
    by_address = {c["address"]: c for c in tcp["evidence"]["connects"]}
    v4 = by_address["198.18.2.44"]
    v6 = by_address["2001:db8:2::44"]
    assert (v4["state"], v4["icmp"], v4["icmp_from"]) == (
        "icmp", "administratively prohibited", ROUTER_V4), v4
    assert (v6["state"], v6["icmp"], v6["icmp_from"]) == (
        "icmp", "administratively prohibited", ROUTER_V6), v6
    rc = run.root_cause
    assert rc is not None and "(a router or firewall on the way)" in rc["summary"], rc
    assert ROUTER_V4 in rc["summary"] or ROUTER_V6 in rc["summary"]
    # hop by hop with the flow's own SYNs, by the tool this host has (traceroute -T, else
    # netcheck path or mtr)
    assert any(c.startswith(("traceroute -n -T -p", "netcheck path --port", "mtr -n -r"))
               for c in rc["hint"]["commands"]), rc


def test_icmp_error_from_the_target_itself_says_so(lab: Lab) -> None:
    scenario = SCENARIOS["port_admin_prohibited"]
    scenario.apply(lab)
    run = run_netcheck(lab, *scenario.netcheck_argv(), "-4")
    rc = run.root_cause
    assert rc is not None and rc["code"] == "TCP_ADMIN_PROHIBITED", run.explain()
    assert "198.18.2.10 itself sent 'administratively prohibited'" in rc["summary"], rc


# -- one family carries the flow -------------------------------------------------------------------

@pytest.mark.parametrize("name,state", [("l4_ipv4_port_dropped", "timeout"),
                                        ("l4_ipv4_refused_service_on_ipv6_only", "refused")])
def test_one_family_failing_is_degraded_and_names_it(l4_lab: Lab, name: str, state: str) -> None:
    run = diagnose(l4_lab, name)
    tcp = tcp_check(run)
    assert tcp["status"] == "warn", run.explain()
    ev = tcp["evidence"]
    assert ev["family"] == "ipv4"
    v4 = [a for a in ev["failing"] if ":" not in a]
    v6 = [a for a in ev["working"] if ":" in a]
    assert len(v4) == 1 and len(v6) == 1 and not [a for a in ev["failing"] if ":" in a], ev
    assert {c["address"]: c["state"] for c in ev["connects"]}[v4[0]] == state
    assert tcp["summary"].startswith("IPv4 fails") and "IPv6 works" in tcp["summary"]
    # The page itself loads over IPv6: the application rung passes.
    http = run.check("http.response")
    assert http is not None and http["status"] == "pass", run.explain()


# -- top-down sanity with the lab's remote flow --------------------------------------------

def test_loopback_down_off_the_path_of_a_working_flow_is_a_warning(lab: Lab) -> None:
    lab.ip("client", "link", "set", "lo", "down")
    run = run_netcheck(lab, "tcp://www.lab.test:22")
    assert run.verdict == "degraded", run.explain()
    lo = run.check("network.loopback")
    assert lo is not None and lo["status"] == "warn" and lo["code"] == "LOOPBACK_DOWN"
    assert lo["evidence"]["top_down"] == {"was": "fail", "proved_by": "transport.tcp"}
    assert "transport.tcp proved it works" in lo["summary"]
    assert [c["id"] for c in run.doc["checks"] if c["status"] == "fail"] == []  # type: ignore


# -- a namespace with nothing but loopback ------------------------------------------------

LISTENER = f"""
import socket, sys, time
servers = [socket.create_server(("127.0.0.1", {LO_PORT})),
           socket.create_server(("::1", {LO_PORT}), family=socket.AF_INET6)]
for s in servers:
    s.settimeout(0.2)
print("listening", flush=True)
end = time.monotonic() + 120
while time.monotonic() < end:
    for s in servers:
        try:
            c, _ = s.accept()
            c.close()
        except OSError:
            pass
"""


@pytest.fixture(scope="module")
def lo_only(lab_support: None) -> Iterator[Lab]:
    """A lab whose ``stub`` namespace keeps only ``lo``, with a listener on port 8080 there."""
    lab = Lab(servers=False)
    lab.build()
    try:
        lab.ip("stub", "link", "del", "eth0")  # its veth pair: the client's eth1 goes too
        links = lab.ip("stub", "-o", "link", "show").stdout.splitlines()
        assert [re.split(r":\s+", line)[1] for line in links] == ["lo"], links
        lab.popen("stub", [sys.executable, "-c", LISTENER], name="lo-listener")
        deadline = time.monotonic() + 10
        while "listening" not in lab.log("lo-listener"):
            assert time.monotonic() < deadline, lab.log("lo-listener")
            time.sleep(0.02)
        yield lab
    finally:
        lab.teardown()


def in_lo_only(lab: Lab, *args: str, fmt: str = "json") -> NetcheckRun:
    run = run_netcheck(lab, *args, role="stub", fmt=fmt)
    assert "Traceback" not in run.stderr, run.explain()
    return run


@pytest.mark.parametrize("target", [f"tcp://127.0.0.1:{LO_PORT}", f"tcp://[::1]:{LO_PORT}"])
def test_loopback_target_with_only_loopback_is_ok(lo_only: Lab, target: str) -> None:
    run = in_lo_only(lo_only, target)
    assert (run.verdict, run.rc, run.root_cause) == ("ok", 0, None), run.explain()
    nic = run.check("physical.nic")
    assert nic is not None and nic["status"] == "skip", run.explain()
    assert "stay on lo (loopback)" in nic["summary"]
    # lo's ladder: the interface, its address of the family, the connect.
    assert run.check("link.exists")["summary"].startswith("lo exists (loopback")  # type: ignore
    address = run.check("network.address")
    assert address is not None and address["status"] == "pass"
    assert ("::1" if "[" in target else "127.0.0.1") in address["summary"]
    tcp = tcp_check(run)
    assert tcp["status"] == "pass" and tcp["evidence"]["working"], run.explain()


def test_closed_loopback_port_is_refused_not_nic_missing(lo_only: Lab) -> None:
    run = in_lo_only(lo_only, f"tcp://127.0.0.1:{LO_PORT + 1}")
    rc = run.root_cause
    assert rc is not None and (rc["code"], rc["layer"]) == ("TCP_REFUSED", 4), run.explain()


def test_remote_target_with_only_loopback_is_still_nic_missing(lo_only: Lab) -> None:
    # No route leaves this namespace: nothing is sent, and no NIC is the real cause.
    run = in_lo_only(lo_only, "tcp://198.18.2.10:22")
    rc = run.root_cause
    assert run.verdict == "broken" and rc is not None, run.explain()
    assert (rc["code"], rc["layer"]) == ("NIC_MISSING", 1), run.explain()


def _batch(lab: Lab, fmt: str) -> tuple[int, str]:
    proc = lab.exec("stub", [sys.executable, "-m", "netcheck", "batch", "-", "--format", fmt],
                    input=f"tcp://127.0.0.1:{LO_PORT}\ntcp://[::1]:{LO_PORT}\n", timeout=60)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stdout


def test_batch_junit_passes_a_healthy_loopback_target(lo_only: Lab) -> None:
    rc, out = _batch(lo_only, "junit")
    assert rc == 0, out
    suites = ET.fromstring(out)
    cases = suites.findall(".//testcase")
    assert len(cases) == 2, out
    assert not suites.findall(".//failure") and not suites.findall(".//error"), out


def test_batch_prometheus_says_success_for_a_healthy_loopback_target(lo_only: Lab) -> None:
    rc, out = _batch(lo_only, "prometheus")
    assert rc == 0, out
    success = [line for line in out.splitlines() if line.startswith("probe_success{")]
    assert len(success) == 2 and all(float(line.split()[-1]) == 1 for line in success), out
    assert not [line for line in out.splitlines() if line.startswith("netcheck_root_cause{")]


def test_exporter_probe_of_a_healthy_loopback_target_succeeds(lo_only: Lab) -> None:
    listen = "127.0.0.1:9116"
    proc = lo_only.popen("stub", [sys.executable, "-m", "netcheck", "serve", "--listen", listen,
                                  "--allow", "127.0.0.1"], name="lo-exporter")
    try:
        deadline = time.monotonic() + 15
        while "listening on" not in lo_only.log("lo-exporter"):
            assert proc.poll() is None and time.monotonic() < deadline, lo_only.log("lo-exporter")
            time.sleep(0.05)
        url = f"http://{listen}/probe?target=tcp://127.0.0.1:{LO_PORT}"
        got = lo_only.exec("stub", [sys.executable, "-c", FETCH, url, "20"], timeout=30,
                           check=True)
        answer = json.loads(got.stdout)
        assert answer["status"] == 200, answer
        lines = answer["body"].splitlines()
        assert "probe_success 1" in lines or "probe_success 1.0" in lines, answer["body"]
        assert not [line for line in lines if line.startswith("netcheck_root_cause{")]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
