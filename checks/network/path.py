"""Loss and latency on the path to the gateway and the target: the thresholds and the pure
judging of the echo bursts (:func:`judge_path`) that ``network.target`` reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from netcheck import hints
from netcheck.i18n import _
from netcheck.lazy import lazy
from netcheck.model import Hint, Status

if TYPE_CHECKING:
    from netcheck.probes import icmp
else:  # imported at first use: `netcheck checks` lists the checks without the probes
    icmp = lazy("netcheck.probes.icmp")


# -- loss and latency on the path ------------------------------------------------------

# 3 of 30 echo round trips lost is more than chance on a healthy path; 1 of 30 is not.
LOSS_WARN_PCT = 10.0
# Above this share of packets lost each way (the round trips back below 25 %), the path is
# down for practical purposes: TCP backs off for seconds at a time. A failure needs the
# numbers to show it with 95 % confidence (Wilson's interval), not one unlucky burst.
LOSS_FAIL_ONE_WAY = 0.5
CONFIDENCE_Z = 1.96
LINK_RTT_MS = 100.0  # a LAN or Wi-Fi gateway answers far faster than this when healthy
JITTER_MS = 30.0  # a round-trip spread (ping's mdev) beyond this hurts voice and video
JITTER_RATIO = 5.0  # ... and it counts beyond the gateway only if that much worse than to it
TARGET_RTT_MS = 400.0  # beyond the farthest continents by fibre: queues, satellites, loops
MIN_SAMPLES = 5  # fewer answered probes say nothing about jitter


@dataclass(frozen=True)
class PathSample:
    """What a burst of echo requests to one address measured (recorded facts)."""

    address: str
    role: str  # gateway | target
    sent: int
    received: int
    rtt_min_ms: Optional[float] = None
    rtt_avg_ms: Optional[float] = None
    rtt_max_ms: Optional[float] = None
    rtt_mdev_ms: Optional[float] = None
    rtt_median_ms: Optional[float] = None
    jitter_ms: Optional[float] = None  # median change between consecutive round trips

    @classmethod
    def of(cls, address: str, role: str, stats: dict[str, Any]) -> PathSample:
        """From :func:`icmp.burst_stats` (or a burst's ``to_json()``)."""
        return cls(address, role, int(stats.get("sent") or 0), int(stats.get("received") or 0),
                   stats.get("rtt_min_ms"), stats.get("rtt_avg_ms"), stats.get("rtt_max_ms"),
                   stats.get("rtt_mdev_ms"), stats.get("rtt_median_ms"), stats.get("jitter_ms"))

    @property
    def typical_ms(self) -> float:
        """The usual round trip: the median (a few slow replies do not make a path slow)."""
        return (self.rtt_median_ms if self.rtt_median_ms is not None else self.rtt_avg_ms) or 0.0

    @property
    def spread_ms(self) -> float:
        """How much round trips swing from one to the next (mdev when not measured)."""
        return (self.jitter_ms if self.jitter_ms is not None else self.rtt_mdev_ms) or 0.0

    @property
    def loss_pct(self) -> float:
        return 100.0 * (self.sent - self.received) / self.sent if self.sent else 0.0

    @property
    def lossy(self) -> bool:
        """Some answers back, and more lost than chance explains."""
        return self.sent >= MIN_SAMPLES and self.received > 0 and self.loss_pct >= LOSS_WARN_PCT

    @property
    def surely_down(self) -> bool:
        """Even the most the round trips could succeed (upper bound of Wilson's 95 % interval)
        means more than LOSS_FAIL_ONE_WAY of the packets lost each way."""
        if not self.sent:
            return False
        n, z = self.sent, CONFIDENCE_Z
        p = self.received / n
        upper = (p + z * z / (2 * n) + z * ((p * (1 - p) + z * z / (4 * n)) / n) ** 0.5) / (
            1 + z * z / n)
        return upper < (1.0 - LOSS_FAIL_ONE_WAY) ** 2

    @property
    def one_way_loss(self) -> float:
        """The share of packets lost each way if loss is the same both ways (an echo round
        trip needs two packets to pass)."""
        return 1.0 - (self.received / self.sent) ** 0.5 if self.sent else 0.0

    def numbers(self) -> str:
        """``13 of 20 lost (65 %), RTT min/avg/max/mdev 0.1/0.2/0.4/0.1 ms``."""
        text = _("{lost} of {sent} lost ({loss} %)").format(
            lost=self.sent - self.received, sent=self.sent, loss=f"{self.loss_pct:.0f}")
        if self.rtt_avg_ms is not None:
            text += ", RTT min/avg/max/mdev " + "/".join(
                f"{v:.1f}" for v in (self.rtt_min_ms, self.rtt_avg_ms, self.rtt_max_ms,
                                     self.rtt_mdev_ms or 0.0)) + " ms"
        return text


def judge_path(gateway: Optional[PathSample], target: Optional[PathSample]
               ) -> Optional[tuple[Status, str, str, str]]:
    """Loss and latency on the way: bursts to the gateway and the target in,
    ``(status, code, text, where)`` out — None when nothing is wrong or measurable.

    ``where`` is ``link`` (already to the gateway), ``beyond`` (the gateway is clean, the
    target is not) or ``target`` (no gateway measured). Loss comes first: a lossy path is
    also a slow one.
    """
    for s in (gateway, target):
        if s is None or not s.lossy:
            continue
        where = ("link" if s.role == "gateway"
                 else "beyond" if gateway is not None and gateway.received else "target")
        down = any(x is not None and x.lossy and x.surely_down for x in (gateway, target))
        status = Status.FAIL if down else Status.WARN
        each_way = f"{100 * s.one_way_loss:.0f}"
        if where == "link":
            text = _("packets are lost between this host and its gateway {gateway}: {numbers} "
                     "(about {each} % each way)").format(gateway=s.address,
                                                         numbers=s.numbers(), each=each_way)
        elif where == "beyond":
            assert gateway is not None
            text = _("packets are lost beyond the gateway {gateway} (none lost to it): to "
                     "{target} {numbers} (about {each} % each way)").format(
                         gateway=gateway.address, target=s.address, numbers=s.numbers(),
                         each=each_way)
        else:
            text = _("packets to {target} are lost: {numbers} (about {each} % each way)").format(
                target=s.address, numbers=s.numbers(), each=each_way)
        return status, "PATH_LOSS", text, where
    # Typical values, not averages: a busy CPU on this host delays a few replies by tens of
    # milliseconds, which is no fault of the path (and no reason to warn on a healthy one).
    if gateway is not None and gateway.received >= MIN_SAMPLES and (
            gateway.typical_ms >= LINK_RTT_MS or gateway.spread_ms >= JITTER_MS):
        return Status.WARN, "PATH_LATENCY", _(
            "round trips to the gateway {gateway} are slow or uneven for a local link: "
            "{numbers}").format(gateway=gateway.address, numbers=gateway.numbers()), "link"
    if target is None or target.received < MIN_SAMPLES:
        return None
    base_jitter = max(gateway.spread_ms, 1.0) if gateway and gateway.received else 1.0
    jitter = target.spread_ms
    if target.typical_ms >= TARGET_RTT_MS or (
            jitter >= JITTER_MS and jitter >= JITTER_RATIO * base_jitter):
        where = "beyond" if gateway is not None and gateway.received else "target"
        base = (_(" (to the gateway {gateway}: RTT avg {avg} ms, mdev {mdev} ms)").format(
            gateway=gateway.address, avg=f"{gateway.rtt_avg_ms or 0:.1f}",
            mdev=f"{gateway.rtt_mdev_ms or 0:.1f}") if where == "beyond" and gateway else "")
        return Status.WARN, "PATH_LATENCY", _(
            "round trips to {target} are far slower or more uneven than the path should give: "
            "{numbers}{base}").format(target=target.address, numbers=target.numbers(),
                                      base=base), where
    return None


def _path_finding(bursts: dict[str, Any]) -> Optional[tuple[Status, str, str, str, str]]:
    """The worst loss or latency finding over the families measured, with its family."""
    found = []
    gateways = bursts.get("gateways", {})
    for address, result in bursts.get("targets", {}).items():
        gw = next((g for g in gateways if (":" in g) == (":" in address)), None)
        gw_sample = (PathSample.of(gw, "gateway", gateways[gw].stats())
                     if gw and gateways[gw].measured else None)
        tg_sample = PathSample.of(address, "target", result.stats()) if result.measured else None
        judged = judge_path(gw_sample, tg_sample)
        if judged is not None:
            found.append((*judged, "ipv6" if ":" in address else "ipv4"))
    rank = {Status.FAIL: 0, Status.WARN: 1}
    found.sort(key=lambda f: (rank.get(f[0], 2), f[1] != "PATH_LOSS"))
    return found[0] if found else None


def _syns_lost_to_loss(conns: list[Any], burst: Optional[icmp.BurstResult]) -> bool:
    """Would the echoes' loss lose every SYN the connects sent (odds over 1 %)?"""
    if burst is None or not burst.measured:
        return False
    back = burst.received / burst.sent
    syns = sum(c.syns or 1 for c in conns)
    return back < 1.0 and (1.0 - back) ** syns > 0.01


def _path_hint(code: str, where: str, gateway: Optional[str], target: str,
               ifname: Optional[str]) -> Hint:
    if code == "PATH_LOSS" and where == "link":
        return Hint(_("Packets are lost on the local link: look at the cable, the switch port "
                      "or the Wi-Fi signal, and at the interface's error counters."),
                    [*([f"ip -s link show dev {ifname}"] if ifname else []),
                     f"ping -c 50 -i 0.2 {gateway or target}", hints.count_loss(target)])
    if code == "PATH_LOSS":
        return Hint(_("Packets are lost after the gateway: find the hop where the loss starts "
                      "with mtr, and report it to whoever runs that network."),
                    [hints.count_loss(target), f"ping -c 50 -i 0.2 {target}"])
    return Hint(_("Round trips are slow or uneven: a queue fills up (bufferbloat, a "
                  "saturated link) or the path is long. Find where the delay grows with mtr."),
                [hints.count_loss(target), f"ping -c 20 {gateway or target}"])
