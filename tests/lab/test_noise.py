"""Noisy paths and real resolver shapes, for real: loss made by nft on the lab's router, a
stub resolver on 127.0.0.53 / 127.0.0.1 inside the client, a search list, nsswitch.conf."""

from __future__ import annotations

import pytest

from netcheck.lab.scenarios import SCENARIOS
from netcheck.lab.scenarios_noise import SCENARIOS_LIST
from netcheck.lab.topology import Lab
from tests.lab.conftest import NetcheckRun, run_netcheck
from tests.lab.pasting import assert_commands_paste

RUNS_UNDER_LOSS = 5
# Loss has tests of its own below (repeated runs); every other scenario of the module here.
SHAPES = [s.name for s in SCENARIOS_LIST if "loss" not in s.name]


def _dns_codes(run: NetcheckRun) -> list[str]:
    return [c["code"] for c in run.doc["checks"] if (c["code"] or "").startswith("DNS_")]


def test_forty_percent_loss_is_degraded_path_loss_every_time(lab: Lab) -> None:
    SCENARIOS["path_loss_40"].apply(lab)
    for i in range(RUNS_UNDER_LOSS):
        run = run_netcheck(lab, *SCENARIOS["path_loss_40"].netcheck_argv(), timeout=40)
        # One lost datagram must never become a dead resolver, or anything broken.
        assert not _dns_codes(run), f"run {i}: {run.explain()}"
        assert run.verdict == "degraded", f"run {i}: {run.explain()}"
        assert run.root_cause["code"] == "PATH_LOSS", f"run {i}: {run.explain()}"
        target = run.check("network.target")
        assert target["status"] == "warn" and target["code"] == "PATH_LOSS"
        # Either family's numbers may be the worst (and one A or AAAA answer in a hundred is
        # lost all ten times it is sent: then the name has that family only, this run).
        assert any(f"beyond the gateway {gw}" in target["summary"]
                   for gw in ("198.18.1.1", "2001:db8:1::1")), target["summary"]
        burst = target["evidence"]["bursts"][target["evidence"]["location"]["address"]]
        assert burst["sent"] == 30 and burst["received"] == 30  # the gateway itself is clean
        lossy = [b for b in target["evidence"]["bursts"].values() if b["loss_pct"] >= 10]
        assert lossy and all(k in lossy[0] for k in ("received", "loss_pct", "rtt_min_ms",
                                                     "rtt_avg_ms", "rtt_max_ms",
                                                     "rtt_mdev_ms"))
        assert run.check("dns.servers")["status"] == "pass"


def test_loss_on_the_clients_own_link_is_named_at_the_gateway(lab: Lab) -> None:
    SCENARIOS["link_loss_20"].apply(lab)
    run = run_netcheck(lab, *SCENARIOS["link_loss_20"].netcheck_argv(), timeout=40)
    assert run.verdict == "degraded" and run.root_cause["code"] == "PATH_LOSS", run.explain()
    target = run.check("network.target")
    assert "between this host and its gateway 198.18.1.1" in target["summary"], run.explain()
    assert target["hint"]["commands"][0].startswith("ip -s link show dev eth0")


def test_without_icmp_loss_is_not_measured_and_nothing_breaks(lab: Lab) -> None:
    # No ping_group_range, no CAP_NET_RAW: no burst can be sent. DNS and TCP are retried,
    # so the verdict is still right ("ok": nothing measurable), and the run says why.
    SCENARIOS["path_loss_40"].apply(lab)
    lab.exec("client", ["sysctl", "-q", "-w", "net.ipv4.ping_group_range=1 0"], check=True)
    run = run_netcheck(lab, *SCENARIOS["path_loss_40"].netcheck_argv(), user="nobody",
                       no_net_raw=True, timeout=40)
    assert not _dns_codes(run), run.explain()
    assert run.verdict in ("ok", "degraded"), run.explain()
    bursts = run.check("network.target")["evidence"]["bursts"]
    assert bursts and all(b["state"] == "unavailable" for b in bursts.values())


@pytest.mark.parametrize("name", SHAPES)
def test_scenario_diagnosis(lab: Lab, name: str) -> None:
    scenario = SCENARIOS[name]
    scenario.apply(lab)
    run = run_netcheck(lab, *scenario.netcheck_argv())
    expect = scenario.expect
    assert run.verdict == expect.verdict, run.explain()
    assert_commands_paste(run)
    if expect.code is not None:
        assert run.root_cause["code"] == expect.code, run.explain()
        assert run.root_cause["layer"] == expect.layer


def test_jitter_beyond_the_gateway_is_path_latency_not_loss(lab: Lab) -> None:
    SCENARIOS["path_jitter"].apply(lab)
    run = run_netcheck(lab, *SCENARIOS["path_jitter"].netcheck_argv())
    target = run.check("network.target")
    assert target["code"] == "PATH_LATENCY", run.explain()
    assert "to the gateway 198.18.1.1" in target["summary"]
    burst = target["evidence"]["bursts"]["198.18.2.10"]
    assert burst["received"] == burst["sent"] and burst["rtt_mdev_ms"] >= 30
    assert run.check("dns.resolution")["status"] == "pass"  # the name server is not delayed


def test_dead_stub_with_working_upstream_blames_the_stub(lab: Lab) -> None:
    SCENARIOS["resolved_stub_down"].apply(lab)
    run = run_netcheck(lab, "tcp://www.lab.test:22")
    config = run.check("dns.config")
    assert config["evidence"]["upstreams"] == ["198.18.3.53"]
    assert config["evidence"]["upstream_source"] == "/run/systemd/resolve/resolv.conf"
    servers = run.check("dns.servers")
    assert "the stub is the problem" in servers["summary"], run.explain()
    assert "systemctl restart systemd-resolved" in servers["hint"]["commands"]


def test_stub_failing_with_its_upstream_blames_the_upstream(lab: Lab) -> None:
    SCENARIOS["resolved_upstream_dead"].apply(lab)
    run = run_netcheck(lab, "tcp://www.lab.test:22")
    summary = run.check("dns.servers")["summary"]
    assert "the upstream is the problem" in summary and "198.18.3.53" in summary, run.explain()


def test_local_stub_upstreams_come_from_its_configuration(lab: Lab) -> None:
    SCENARIOS["local_stub_ok"].apply(lab)
    run = run_netcheck(lab, "tcp://www.lab.test:22")
    config = run.check("dns.config")
    assert config["evidence"]["stub"] == "127.0.0.1", run.explain()
    assert config["evidence"]["upstreams"] == ["198.18.3.53"]
    assert config["evidence"]["upstream_source"] == "/etc/dnsmasq.conf"


def test_short_name_goes_through_the_search_list(lab: Lab) -> None:
    run = run_netcheck(lab, "tcp://www:22")
    resolution = run.check("dns.resolution")
    assert resolution["evidence"]["resolution"]["fqdn"] == "www.lab.test", run.explain()
    assert "search list" in resolution["summary"]
    lab.write_client_file("resolv.conf", "nameserver 198.18.3.53\n")  # the search line lost
    run = run_netcheck(lab, "tcp://www:22")
    assert run.verdict == "broken", run.explain()


def test_nsswitch_without_dns_says_why_dns_is_never_asked(lab: Lab) -> None:
    SCENARIOS["nsswitch_without_dns"].apply(lab)
    run = run_netcheck(lab, "tcp://www.lab.test:22")
    assert "without dns" in run.root_cause["summary"], run.explain()
    # A name in the hosts file still works: files is on the line.
    lab.write_client_file("hosts", "127.0.0.1 localhost\n198.18.2.10 www.lab.test\n")
    run = run_netcheck(lab, "tcp://www.lab.test:22")
    assert run.verdict == "ok", run.explain()
