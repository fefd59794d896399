"""Probes that overlap instead of adding up, for real in the lab: network.pmtu's full-size
proof leaves with the path's bursts, and a path that fails it is still probed as before."""

from __future__ import annotations

from netcheck.lab.topology import Lab

from .conftest import run_netcheck


def test_the_full_size_proof_leaves_with_the_path_bursts(lab: Lab) -> None:
    run = run_netcheck(lab, "tcp://198.18.2.10:22", "-4")
    assert run.verdict == "ok", run.explain()
    pmtu = run.check("network.pmtu")
    assert pmtu is not None and pmtu["status"] == "pass"
    assert pmtu["evidence"]["sent_early"] is True
    assert pmtu["evidence"]["full"]["received"] > 0
    # It only read what had come back while network.target counted its echoes.
    assert pmtu["duration_ms"] < 20, pmtu


def test_a_path_that_drops_full_size_packets_is_probed_again(lab: Lab) -> None:
    # The router's link to the server takes 1400 bytes; the router tells nobody (its
    # "fragmentation needed" dropped): the early full-size probes prove nothing, and the
    # rung searches the size as it always did.
    lab.ip("router", "link", "set", "dev", "r-server", "mtu", "1400")
    lab.ip("server", "link", "set", "dev", "eth0", "mtu", "1400")
    lab.nft("router", "table inet quiet {\n chain out {\n"
                      "  type filter hook output priority 0;\n"
                      "  icmp type destination-unreachable icmp code frag-needed drop\n"
                      " }\n}\n")
    # The veth would hand the router offloaded super-frames that bypass the MTU check.
    lab.exec("client", ["ethtool", "-K", "eth0", "tso", "off", "gso", "off"], check=True)
    run = run_netcheck(lab, "tcp://198.18.2.10:22", "-4")
    pmtu = run.check("network.pmtu")
    assert pmtu is not None and pmtu["code"] == "PMTU_BLACKHOLE", run.explain()
    assert pmtu["evidence"]["sent_early"] is False
    assert pmtu["evidence"]["path_mtu"] == 1400
