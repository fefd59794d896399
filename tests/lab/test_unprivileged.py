"""Without root, everything that can run does; the rest skips saying why, never crashes."""

from __future__ import annotations

from netcheck.lab.scenarios import SCENARIOS
from netcheck.lab.topology import Lab
from tests.schema import validate_report

from .conftest import run_netcheck

NOBODY = "nobody"


def _no_icmp_for_users(lab: Lab) -> None:
    # A new namespace's default: unprivileged ICMP sockets are not allowed.
    lab.exec("client", ["sysctl", "-w", "net.ipv4.ping_group_range=1 0"], check=True)


def test_healthy_network_is_ok_without_root(lab: Lab) -> None:
    run = run_netcheck(lab, "tcp://www.lab.test:22", user=NOBODY)
    assert run.doc is not None, run.explain()
    validate_report(run.doc)
    assert "Traceback" not in run.stderr
    assert run.doc["host"]["privileged"] is False
    assert run.verdict == "ok", run.explain()


def test_wrong_gateway_is_found_without_root(lab: Lab) -> None:
    SCENARIOS["wrong_gateway"].apply(lab)
    run = run_netcheck(lab, *SCENARIOS["wrong_gateway"].netcheck_argv(), user=NOBODY)
    rc = run.root_cause
    assert rc is not None and rc["code"] == "GATEWAY_UNREACHABLE", run.explain()


def test_dropped_port_is_found_without_root(lab: Lab) -> None:
    SCENARIOS["port_dropped"].apply(lab)
    run = run_netcheck(lab, *SCENARIOS["port_dropped"].netcheck_argv(), user=NOBODY)
    rc = run.root_cause
    assert rc is not None and rc["code"] == "TCP_FILTERED", run.explain()


def test_no_icmp_at_all_is_a_skip_not_a_false_alarm(lab: Lab) -> None:
    _no_icmp_for_users(lab)
    run = run_netcheck(lab, "tcp://198.18.2.10:22", user=NOBODY, no_net_raw=True)
    assert run.doc is not None, run.explain()
    validate_report(run.doc)
    assert "Traceback" not in run.stderr
    assert run.verdict == "ok", run.explain()
    pmtu = run.check("network.pmtu")
    assert pmtu is not None and pmtu["status"] == "skip" and "root" in pmtu["summary"]
    target = run.check("network.target")
    assert target is not None and target["status"] == "pass", run.explain()


def test_no_icmp_and_a_silent_port_is_not_blamed_on_the_host(lab: Lab) -> None:
    _no_icmp_for_users(lab)
    SCENARIOS["port_dropped"].apply(lab)
    run = run_netcheck(lab, "tcp://198.18.2.10:22", user=NOBODY, no_net_raw=True)
    target = run.check("network.target")
    assert target is not None and target["status"] == "skip", run.explain()
    assert "root" in target["summary"]
    rc = run.root_cause
    assert rc is not None and rc["code"] == "TCP_FILTERED", run.explain()


def test_a_stale_static_neighbour_is_found_without_root(lab: Lab) -> None:
    # No ARP probe without root: the static entry (the old router's MAC) is never checked by
    # the kernel, so only IP can tell, and nothing comes back from or through the gateway,
    # not even the "time exceeded" of a probe whose TTL runs out there.
    scenario = SCENARIOS["gateway_static_neighbour"]
    scenario.apply(lab)
    run = run_netcheck(lab, *scenario.netcheck_argv(), user=NOBODY)
    rc = run.root_cause
    assert rc is not None and rc["code"] == "GATEWAY_UNREACHABLE", run.explain()
    gateway = run.check("network.gateway")
    assert gateway is not None and gateway["evidence"]["ttl_1_probe"] == "no answer"
    assert "PERMANENT" in rc["summary"] and "needs root" in rc["summary"], run.explain()
    assert any(c.startswith("ip neigh del 198.18.1.1") for c in rc["hint"]["commands"])


def test_arp_switched_off_is_found_without_root(lab: Lab) -> None:
    lab.ip("client", "link", "set", "dev", "eth0", "arp", "off")
    run = run_netcheck(lab, "tcp://198.18.2.10:22", user=NOBODY)
    rc = run.root_cause
    assert rc is not None and rc["code"] == "GATEWAY_UNREACHABLE", run.explain()
    assert "NOARP" in rc["summary"], run.explain()
    assert "ip link set dev eth0 arp on" in rc["hint"]["commands"], run.explain()


def test_a_gateway_that_drops_ping_is_not_blamed_without_root(lab: Lab) -> None:
    # The other side of the same rule: the gateway answers nothing itself, but routes the
    # packets (the target answers through it).
    lab.exec("router", ["nft", "-f", "-"], check=True, input=(
        "table inet nc_noping {\n  chain input {\n    type filter hook input priority 0;\n"
        "    icmp type echo-request drop\n  }\n}\n"))
    run = run_netcheck(lab, "tcp://198.18.2.10:22", user=NOBODY)
    assert run.verdict in ("ok", "degraded"), run.explain()
    gateway = run.check("network.gateway")
    assert gateway is not None and gateway["status"] == "pass", run.explain()


def test_an_ipsec_tunnel_that_is_not_up_is_found_without_root(lab: Lab) -> None:
    # The policies need CAP_NET_ADMIN to be read; what they drop of the flow is counted in
    # /proc/net/xfrm_stat for anyone (a policy whose tunnel has no SA: XfrmOutNoStates).
    lab.ip("client", "xfrm", "policy", "add", "src", "198.18.1.2/32", "dst", "198.18.2.0/24",
           "dir", "out", "tmpl", "src", "198.18.1.2", "dst", "198.18.1.1", "proto", "esp",
           "mode", "tunnel")
    run = run_netcheck(lab, "tcp://198.18.2.10:22", user=NOBODY)
    rc = run.root_cause
    assert rc is not None and rc["code"] == "IPSEC_NO_SA", run.explain()
    assert "XfrmOutNoStates" in rc["summary"] and "ip xfrm state" in rc["hint"]["commands"]


def test_ipsec_counters_blame_nothing_when_the_flow_works_without_root(lab: Lab) -> None:
    run = run_netcheck(lab, "tcp://198.18.2.10:22", user=NOBODY)
    ipsec = run.check("network.ipsec")
    assert ipsec is not None and ipsec["status"] == "skip", run.explain()
    assert "needs root" in ipsec["summary"] and run.verdict == "ok", run.explain()


def test_a_local_output_drop_is_found_without_root(lab: Lab) -> None:
    # The output rules need CAP_NET_ADMIN to be read; a SYN they drop fails its
    # retransmission inside the kernel (TcpExt TCPRetransFail), which anyone can read.
    lab.nft("client", "table inet t {\n chain o {\n type filter hook output priority 0;\n"
            " tcp dport 22 drop\n }\n}\n")
    run = run_netcheck(lab, "tcp://198.18.2.10:22", user=NOBODY)
    rc = run.root_cause
    assert rc is not None and rc["code"] == "FW_LOCAL_OUTPUT_BLOCK", run.explain()
    assert "TCPRetransFail" in rc["summary"], run.explain()

