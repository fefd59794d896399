"""Loss and latency on the path judged as a pure function (bursts to the gateway and the
target in, (status, code, text, where) out), the burst statistics as ping prints them, and a
real burst on loopback."""

from __future__ import annotations

import asyncio
import socket
from typing import Optional

import pytest
from netcheck.checks import network
from netcheck.checks.network import PathSample

from netcheck.model import Status
from netcheck.probes import icmp


def gw(received: int = 30, avg: float = 0.4, mdev: float = 0.1, sent: int = 30) -> PathSample:
    return PathSample("198.18.1.1", "gateway", sent, received, avg / 2, avg, avg * 2, mdev)


def tg(received: int = 30, avg: float = 20.0, mdev: float = 1.0, sent: int = 30) -> PathSample:
    return PathSample("198.18.2.10", "target", sent, received, avg / 2, avg, avg * 2, mdev)


@pytest.mark.parametrize(("gateway", "target", "expect", "words"), [
    (gw(), tg(), None, []),  # healthy
    (gw(), tg(received=29), None, []),  # one lost probe in 30 is chance
    (None, None, None, []),  # nothing measured
    (gw(), tg(received=0), None, []),  # no echo back at all: not loss (TARGET_* judge it)
    (gw(), tg(received=11), (Status.WARN, "PATH_LOSS", "beyond"),  # 40 % each way
     ["beyond the gateway 198.18.1.1", "19 of 30 lost (63 %)", "each way"]),
    (gw(), tg(received=2), (Status.FAIL, "PATH_LOSS", "beyond"), ["28 of 30"]),
    (gw(), tg(received=5), (Status.WARN, "PATH_LOSS", "beyond"), []),  # could be chance
    (gw(received=15), tg(received=14), (Status.WARN, "PATH_LOSS", "link"),
     ["between this host and its gateway 198.18.1.1"]),
    (None, tg(received=20), (Status.WARN, "PATH_LOSS", "target"), ["packets to 198.18.2.10"]),
    (gw(received=0), tg(received=20), (Status.WARN, "PATH_LOSS", "target"), []),
    (gw(), tg(avg=600.0), (Status.WARN, "PATH_LATENCY", "beyond"), ["far slower"]),
    (gw(), tg(avg=40.0, mdev=45.0), (Status.WARN, "PATH_LATENCY", "beyond"), ["mdev"]),
    # Jitter the gateway already has is the link's, not the path's beyond it.
    (gw(avg=60.0, mdev=20.0), tg(avg=80.0, mdev=35.0), None, []),
    (gw(avg=150.0, mdev=5.0), tg(avg=170.0), (Status.WARN, "PATH_LATENCY", "link"),
     ["local link"]),
    (gw(), tg(avg=250.0, mdev=8.0), None, []),  # the other side of the world, steady
    (gw(), tg(received=3, avg=900.0), (Status.WARN, "PATH_LOSS", "beyond"), []),  # loss first
])
def test_judge_path(gateway: Optional[PathSample], target: Optional[PathSample],
                    expect: Optional[tuple[Status, str, str]], words: list[str]) -> None:
    got = network.judge_path(gateway, target)
    if expect is None:
        assert got is None, got
        return
    assert got is not None
    assert (got[0], got[1], got[3]) == expect, got
    for word in words:
        assert word in got[2], got


def test_forty_percent_loss_each_way_is_never_a_failure_by_chance() -> None:
    # 40 % lost each way leaves 36 % of round trips: a failure needs 95 % confidence that
    # fewer than 25 % come back, so even the unlucky bursts (1 in 1000) stay warnings.
    assert not tg(received=4).surely_down
    assert tg(received=2).surely_down
    assert not tg(received=30).surely_down


def test_burst_stats_as_ping_prints_them() -> None:
    stats = icmp.burst_stats(5, [1.0, 2.0, 3.0, 4.0])
    assert stats["sent"] == 5 and stats["received"] == 4 and stats["loss_pct"] == 20.0
    assert (stats["rtt_min_ms"], stats["rtt_avg_ms"], stats["rtt_max_ms"]) == (1.0, 2.5, 4.0)
    assert stats["rtt_mdev_ms"] == pytest.approx(1.118, abs=0.001)  # ping's mdev
    assert icmp.burst_stats(3, []) == {"sent": 3, "received": 0, "loss_pct": 100.0}
    assert icmp.burst_stats(0, [])["loss_pct"] is None


def test_a_burst_on_loopback_counts_every_reply() -> None:
    if icmp.available_method(socket.AF_INET) is None:
        pytest.skip("ICMP needs root, CAP_NET_RAW or ping_group_range here")
    result = asyncio.run(icmp.burst("127.0.0.1", 1.0, count=10, interval=0.002))
    assert result.state == "done" and (result.sent, result.received) == (10, 10), result
    assert result.to_json()["loss_pct"] == 0.0
    assert result.duration_ms < 500  # the stragglers' wait ends when all are back



def _sample(address: str, role: str, rtts: list[float]) -> PathSample:
    return PathSample.of(address, role, icmp.burst_stats(len(rtts), rtts))


def test_a_busy_host_is_not_a_slow_path() -> None:
    # This host's CPU was busy for a moment: five replies of thirty sat in its queues for
    # 80-200 ms. avg and mdev would call the link slow and uneven; the path is healthy.
    spiky = [0.4] * 30
    for i, late in zip((3, 9, 14, 21, 27), (80.0, 200.0, 120.0, 150.0, 90.0)):
        spiky[i] = late
    gateway = _sample("198.18.1.1", "gateway", spiky)
    assert (gateway.rtt_mdev_ms or 0) > 30 and (gateway.rtt_avg_ms or 0) > 20
    assert network.judge_path(gateway, _sample("198.18.2.10", "target", spiky)) is None


def test_a_path_whose_queues_swing_is_latency_beyond_the_gateway() -> None:
    import random

    rng = random.Random(7)
    swinging = [150.0 + rng.uniform(-120.0, 120.0) for _ in range(30)]
    got = network.judge_path(_sample("198.18.1.1", "gateway", [0.4] * 30),
                             _sample("198.18.2.10", "target", swinging))
    assert got is not None and (got[0], got[1], got[3]) == (Status.WARN, "PATH_LATENCY",
                                                              "beyond"), got


def test_burst_stats_give_the_median_and_the_jitter() -> None:
    stats = icmp.burst_stats(5, [1.0, 9.0, 2.0, 3.0, 4.0])
    assert stats["rtt_median_ms"] == 3.0
    assert stats["jitter_ms"] == 4.0  # |8|, |7|, |1|, |1| -> median 4
