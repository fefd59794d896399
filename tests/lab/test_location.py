"""Where packets stop, for real: a lab of two routers (client -> r1 -> r2 -> server), a fault
at one hop at a time, and ``root_cause.location`` must name that hop — and never a router that
only rate-limits its ICMP errors; a reset forged by r1 is named as a middlebox's."""

from __future__ import annotations

import json
from typing import Any, Iterator

import pytest

from netcheck.lab import scenarios_path2 as p2
from netcheck.lab.compose import ComposedLab
from tests.lab.conftest import NetcheckRun, run_netcheck

SERVER_V4, SERVER_V6 = p2.SERVER
R1_V4, R1_V6 = p2.HOP_ADDRESSES[1]
R2_V4, R2_V6 = p2.HOP_ADDRESSES[2]
TARGET = f"tcp://{SERVER_V4}:22"


@pytest.fixture(scope="module")
def two_routers(lab_support: None) -> Iterator[ComposedLab]:
    lab = p2.two_routers()
    lab.build()
    try:
        yield lab
    finally:
        lab.teardown()


@pytest.fixture
def lab(two_routers: ComposedLab) -> Iterator[ComposedLab]:
    """The two-router lab, every fault of this module removed after each test."""
    yield two_routers
    for role in (p2.R1, p2.R2):
        for table in (p2.TABLE, f"{p2.TABLE}_limit", "count"):
            two_routers.exec(role, ["nft", "delete", "table", "inet", table])


def location(run: NetcheckRun) -> dict[str, Any]:
    root = run.root_cause
    assert root is not None and "location" in root, run.explain()
    return dict(root["location"])


def path_trace(run: NetcheckRun) -> dict[str, Any]:
    root = run.root_cause
    assert root is not None
    check = run.check(root["check"])
    assert check is not None
    return dict(check["evidence"]["path_trace"])


V6_TARGET = f"tcp://[{SERVER_V6}]:22"


@pytest.mark.parametrize("router,hop,family,target,hop_address", [
    (p2.R1, 1, "-4", TARGET, R1_V4), (p2.R1, 1, "-6", V6_TARGET, R1_V6),
    (p2.R2, 2, "-4", TARGET, R2_V4), (p2.R2, 2, "-6", V6_TARGET, R2_V6)])
def test_a_drop_is_located_at_the_hop_that_drops(lab: ComposedLab, router: str, hop: int,
                                                 family: str, target: str,
                                                 hop_address: str) -> None:
    p2.drop_port(lab, router, 22)
    run = run_netcheck(lab, target, family)
    assert run.root_cause["code"] == "TCP_FILTERED", run.explain()
    where = location(run)
    assert (where["last_hop"], where["address"], where["method"]) == (hop, hop_address,
                                                                      "tcp-syn")
    assert f"the SYN gets as far as {hop_address} (hop {hop})" in where["text"]
    assert "ping" in where["text"] and "at hop 3" in where["text"]  # the server: 3 hops away


def test_a_host_cut_off_at_r2_is_located_at_hop_2(lab: ComposedLab) -> None:
    p2.drop_host(lab, p2.R2)
    run = run_netcheck(lab, TARGET, "-4")
    assert run.root_cause["code"] == "TARGET_UNREACHABLE", run.explain()
    assert (location(run)["last_hop"], location(run)["address"]) == (2, R2_V4)


def test_a_router_that_rate_limits_its_icmp_errors_is_not_blamed(lab: ComposedLab) -> None:
    # r1 lets one "time exceeded" through per minute; a TTL-1 ping spends it, so r1 is
    # silent to every TTL-limited probe of the run, while r2 answers and drops port 22.
    p2.limit_icmp_errors(lab, p2.R1, "1/minute", 1)
    lab.exec("client", ["ping", "-c", "1", "-W", "1", "-t", "1", SERVER_V4])
    p2.drop_port(lab, p2.R2, 22)
    run = run_netcheck(lab, TARGET, "-4")
    where = location(run)
    assert (where["last_hop"], where["address"]) == (2, R2_V4), run.explain()
    assert R1_V4 not in where["text"]
    hops = path_trace(run)["flow"]["hops"]
    assert hops[0]["received"] == 0 and hops[0]["sent"] >= 2  # r1 was retried, silent
    assert hops[0].get("rate_limited") is True
    assert hops[1]["received"] >= 1


def test_path_shows_a_rate_limiting_hop_without_a_loss_of_the_flow(lab: ComposedLab) -> None:
    p2.limit_icmp_errors(lab, p2.R1, "1/minute", 1)
    run = run_netcheck(lab, "path", TARGET, "-4", "--count", "3", fmt="text")
    assert run.rc == 0, run.explain()
    assert "limits its ICMP answers: later hops answer, no loss of the flow" in run.stdout
    doc = json.loads(run_netcheck(lab, "path", TARGET, "-4", "--count", "3", "--format",
                                  "json", fmt="text").stdout)  # netcheck-path/1
    hops = doc["flow"]["hops"]
    assert hops[0]["rate_limited"] is True and hops[0]["loss_pct"] > 0
    assert hops[1]["loss_pct"] == 0 and hops[2]["answers"] == ["syn-ack"]
    assert doc["location"] is None


def test_a_reset_forged_by_r1_is_named_as_a_middlebox(lab: ComposedLab) -> None:
    p2.forge_reset(lab, p2.R1, 22)
    run = run_netcheck(lab, TARGET, "-4")
    assert run.root_cause["code"] == "TCP_REFUSED", run.explain()
    where = location(run)
    # As root, the reset's own TTL (64: sent by the box next to us) says how far it is.
    assert "the reset comes from 1 hop away, not from the server 3 hops away" in where["text"]
    assert "middlebox" in where["text"]
    assert (where["last_hop"], where["address"]) == (1, R1_V4)


def test_without_root_the_forged_reset_is_named_from_ttl_limited_syns(
        lab: ComposedLab) -> None:
    p2.forge_reset(lab, p2.R1, 22)
    run = run_netcheck(lab, TARGET, "-4", user="nobody")
    assert run.doc["host"]["privileged"] is False
    where = location(run)
    assert ("the reset comes from at most 2 hops away (a SYN with TTL 2 already gets it), "
            "not from the server 3 hops away") in where["text"], run.explain()
    assert (where["last_hop"], where["address"]) == (1, R1_V4)


def test_the_servers_own_reset_is_its_own(lab: ComposedLab) -> None:
    run = run_netcheck(lab, f"tcp://{SERVER_V4}:23", "-4")  # nothing listens on 23
    assert run.root_cause["code"] == "TCP_REFUSED", run.explain()
    where = location(run)
    assert where["text"] == f"the reset comes from {SERVER_V4} itself, 3 hops away"
    assert "middlebox" not in where["text"]


def test_a_silent_name_server_is_located(lab: ComposedLab) -> None:
    p2.drop_port(lab, p2.R2, 53, "udp")
    run = run_netcheck(lab, "tcp://www.lab.test:22", "-4")
    assert run.root_cause["code"] == "DNS_RESOLVER_UNREACHABLE", run.explain()
    where = location(run)
    assert (where["last_hop"], where["address"], where["method"]) == (2, R2_V4, "udp-dns")
    assert f"the DNS query gets as far as {R2_V4} (hop 2)" in where["text"]


def test_a_path_mtu_black_hole_is_located(lab: ComposedLab) -> None:
    p2.pmtu_blackhole(lab)
    try:
        run = run_netcheck(lab, TARGET, "-4")
        assert run.root_cause["code"] == "PMTU_BLACKHOLE", run.explain()
        where = location(run)
        assert (where["last_hop"], where["address"], where["method"]) == (
            2, R2_V4, "icmp-echo-df")
    finally:
        lab.ip(p2.R2, "link", "set", "srv0", "mtu", "1500")


def test_locating_stays_within_the_deadline(lab: ComposedLab) -> None:
    p2.drop_port(lab, p2.R2, 22)
    run = run_netcheck(lab, TARGET, "-4", "--deadline", "4")
    assert run.elapsed < 4.5, run.explain()  # ip netns exec and the interpreter included
    assert location(run)["last_hop"] == 2


def time_exceeded_sent(lab: ComposedLab) -> int:
    """How many "time exceeded" errors r1 has sent (its own ICMP, counted as it leaves)."""
    listing = json.loads(lab.exec(p2.R1, ["nft", "-j", "list", "table", "inet", "count"],
                                  check=True).stdout)
    return sum(expr["counter"]["packets"] for item in listing["nftables"]
               if "rule" in item for expr in item["rule"]["expr"] if "counter" in expr)


def test_a_healthy_run_sends_no_ttl_limited_probe(lab: ComposedLab) -> None:
    lab.nft(p2.R1, p2.ruleset("output", "icmp type time-exceeded counter",
                              "icmpv6 type time-exceeded counter", table="count"))
    run = run_netcheck(lab, TARGET)
    assert run.verdict == "ok", run.explain()
    assert time_exceeded_sent(lab) == 0
    # The counter does count: a silent port makes the run trace the path.
    p2.drop_port(lab, p2.R2, 22)
    run_netcheck(lab, TARGET, "-4")
    assert time_exceeded_sent(lab) > 0


def test_the_probes_wait_what_the_path_shows(lab: ComposedLab) -> None:
    # The target answers echoes in well under a millisecond: a probe's silence is sure after
    # locate.MIN_PROBE_WAIT, not after the run's whole timeout, and the hop is still found.
    from netcheck import locate

    p2.drop_port(lab, p2.R2, 22)
    run = run_netcheck(lab, TARGET, "-4", "--timeout", "2")
    assert (location(run)["last_hop"], location(run)["address"]) == (2, R2_V4)
    assert path_trace(run)["flow"]["wait_ms"] == locate.MIN_PROBE_WAIT * 1000
    # A target that answers no echo leaves nothing to size the wait by: the whole timeout
    # (at most locate.PROBE_WAIT), and the hop is found all the same.
    p2.drop_host(lab, p2.R2)
    run = run_netcheck(lab, TARGET, "-4", "--timeout", "2")
    assert path_trace(run)["flow"]["wait_ms"] == locate.PROBE_WAIT * 1000, run.explain()
