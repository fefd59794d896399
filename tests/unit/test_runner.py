"""The runner on synthetic checks: blocking, errors, the deadline, concurrency, the root cause
and the verdict. No check here touches the network; the target is a loopback literal, so
nothing is resolved either."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Awaitable, Callable, Optional

import pytest

from netcheck.facts import Facts
from netcheck.model import Layer, Result, Status, Verdict, failed, passed, skipped, warned
from netcheck.registry import Check
from netcheck.runner import Context, Options, diagnose
from netcheck.target import parse_target
from tests.schema import validate_report

TARGET = parse_target("127.0.0.1")
RunFn = Callable[[Context], Awaitable[Result]]

_FAMILY = {Layer.PHYSICAL: "physical", Layer.LINK: "link", Layer.NETWORK: "network",
           Layer.TRANSPORT: "transport", Layer.PRESENTATION: "tls",
           Layer.APPLICATION: "app"}


class Clock:
    """Records when each synthetic check started and ended (monotonic seconds)."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.ended: dict[str, float] = {}
        self.calls: list[str] = []


def make(
    name: str,
    layer: Layer,
    result: Optional[Result] = None,
    *,
    sleep: float = 0.0,
    raises: Optional[BaseException] = None,
    requires: tuple[str, ...] = (),
    order: int = 0,
    runs_last: bool = False,
    needs_root: bool = False,
    applies: Optional[Callable[[Context], Optional[str]]] = None,
    clock: Optional[Clock] = None,
) -> Check:
    """A check ``<family>.<name>`` that sleeps, then returns ``result`` or raises."""
    check_id = f"{_FAMILY[layer]}.{name}"

    async def run(ctx: Context) -> Result:
        """Synthetic check."""
        if clock is not None:
            clock.calls.append(check_id)
            clock.started[check_id] = time.monotonic()
        try:
            if sleep:
                await asyncio.sleep(sleep)
            if raises is not None:
                raise raises
            return result if result is not None else passed(f"{check_id} fine")
        finally:
            if clock is not None:
                clock.ended[check_id] = time.monotonic()

    return Check(id=check_id, layer=layer, run=run, requires=requires, order=order,
                 runs_last=runs_last, needs_root=needs_root, applies=applies,
                 module="tests.synthetic")


def diagnose_now(checks: list[Check], deadline: float = 5.0,
                 facts: Optional[Facts] = None) -> Any:
    return asyncio.run(diagnose(TARGET, Options(deadline=deadline), checks,
                                facts=facts if facts is not None else Facts()))


def outcome(report: Any, check_id: str) -> Any:
    return next(o for o in report.checks if o.id == check_id)


# -- blocked dependants ----------------------------------------------------------------------

def test_dependant_of_a_failed_check_is_skipped_with_blocked_by() -> None:
    clock = Clock()
    report = diagnose_now([
        make("carrier", Layer.LINK, failed("LINK_NO_CARRIER", "no carrier"), clock=clock),
        make("address", Layer.NETWORK, requires=("link.carrier",), clock=clock),
    ])
    address = outcome(report, "network.address")
    assert address.status is Status.SKIP
    assert address.result.blocked_by == "link.carrier"
    assert "network.address" not in clock.calls  # it never ran


def test_blocked_by_names_the_original_failure_transitively() -> None:
    clock = Clock()
    report = diagnose_now([
        make("carrier", Layer.LINK, failed("LINK_NO_CARRIER", "no carrier"), order=0),
        make("address", Layer.NETWORK, requires=("link.carrier",), order=1),
        make("route", Layer.NETWORK, requires=("network.address",), order=2),
        make("tcp", Layer.TRANSPORT, requires=("network.route",), order=3, clock=clock),
    ])
    for check_id in ("network.address", "network.route", "transport.tcp"):
        o = outcome(report, check_id)
        assert o.status is Status.SKIP, check_id
        assert o.result.blocked_by == "link.carrier", check_id
    assert clock.calls == []
    assert report.to_json()["checks"][3]["blocked_by"] == "link.carrier"


def test_blocked_by_names_the_failed_one_of_several_requirements() -> None:
    report = diagnose_now([
        make("gateway", Layer.NETWORK, order=0),
        make("resolution", Layer.NETWORK, failed("DNS_NXDOMAIN", "no such name"), order=1),
        make("target", Layer.NETWORK, requires=("network.gateway", "network.resolution"),
             order=2),
    ])
    assert outcome(report, "network.target").result.blocked_by == "network.resolution"


def test_dependants_of_a_warning_or_a_pass_run() -> None:
    clock = Clock()
    report = diagnose_now([
        make("errors", Layer.LINK, warned("LINK_ERRORS", "drops"), order=0),
        make("carrier", Layer.LINK, order=1),
        make("address", Layer.NETWORK, requires=("link.errors", "link.carrier"), clock=clock),
    ])
    assert outcome(report, "network.address").status is Status.PASS
    assert clock.calls == ["network.address"]


def test_independent_check_runs_despite_a_failure_elsewhere() -> None:
    report = diagnose_now([
        make("carrier", Layer.LINK, failed("LINK_NO_CARRIER", "no carrier")),
        make("loopback", Layer.NETWORK),
    ])
    assert outcome(report, "network.loopback").status is Status.PASS


# -- errors ----------------------------------------------------------------------------------

def test_check_that_raises_becomes_error_with_the_message() -> None:
    report = diagnose_now([
        make("broken", Layer.NETWORK, raises=RuntimeError("netlink said no")),
        make("fine", Layer.NETWORK, order=1),
    ])
    broken = outcome(report, "network.broken")
    assert broken.status is Status.ERROR
    assert "netlink said no" in broken.result.summary
    assert "RuntimeError" in broken.result.summary
    assert outcome(report, "network.fine").status is Status.PASS
    assert report.verdict is Verdict.UNKNOWN


def test_dependant_of_an_error_is_not_blocked_by_it() -> None:
    # blocked_by names a *failed* check; a crashed check proves nothing either way.
    report = diagnose_now([
        make("broken", Layer.NETWORK, raises=ValueError("bad")),
        make("after", Layer.NETWORK, requires=("network.broken",), order=1),
    ])
    assert outcome(report, "network.after").result.blocked_by is None


# -- the deadline ----------------------------------------------------------------------------

def test_check_past_the_deadline_is_an_error_and_the_run_ends_in_time() -> None:
    deadline = 1.0
    t0 = time.monotonic()
    report = diagnose_now([
        make("slow", Layer.NETWORK, sleep=30.0),
        make("quick", Layer.LINK),
    ], deadline=deadline)
    elapsed = time.monotonic() - t0
    assert elapsed < deadline + 0.5, elapsed
    slow = outcome(report, "network.slow")
    assert slow.status is Status.ERROR
    assert "not finished within the deadline" in slow.result.summary
    assert outcome(report, "link.quick").status is Status.PASS
    assert report.duration_ms < (deadline + 0.5) * 1000


def test_dependants_of_a_check_past_the_deadline_are_reported_too() -> None:
    report = diagnose_now([
        make("slow", Layer.NETWORK, sleep=30.0),
        make("after", Layer.TRANSPORT, requires=("network.slow",)),
    ], deadline=0.6)
    assert [o.id for o in report.checks] == ["network.slow", "transport.after"]
    assert outcome(report, "transport.after").status is Status.ERROR


def test_blocking_probe_stuck_in_a_thread_does_not_hold_the_run(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The late thread's crash is the subject of the xfail test below; keep it quiet here.
    monkeypatch.setattr(threading, "excepthook", lambda args: None)

    async def stuck(ctx: Context) -> Result:
        """Probe stuck in a system call."""
        await ctx.blocking(time.sleep, 1.5)
        return passed("woke up")

    t0 = time.monotonic()
    report = diagnose_now([Check("network.stuck", Layer.NETWORK, stuck)], deadline=0.6)
    assert time.monotonic() - t0 < 0.6 + 0.5
    assert outcome(report, "network.stuck").status is Status.ERROR
    _join_probe_threads()


def _join_probe_threads() -> None:
    for thread in threading.enumerate():
        if thread.daemon and thread.name == "sleep":
            thread.join(timeout=5)


def test_late_probe_thread_ends_quietly_after_the_loop_closed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    crashes: list[str] = []
    monkeypatch.setattr(threading, "excepthook",
                        lambda args: crashes.append(f"{args.exc_type.__name__}: {args.exc_value}"))

    async def stuck(ctx: Context) -> Result:
        """Probe stuck in a system call."""
        await ctx.blocking(time.sleep, 0.8)
        return passed("woke up")

    diagnose_now([Check("network.stuck", Layer.NETWORK, stuck)], deadline=0.5)
    _join_probe_threads()
    assert crashes == []


# -- concurrency and order -------------------------------------------------------------------

def test_independent_checks_run_concurrently() -> None:
    t0 = time.monotonic()
    report = diagnose_now([
        make("one", Layer.NETWORK, sleep=0.3, order=0),
        make("two", Layer.NETWORK, sleep=0.3, order=1),
    ])
    elapsed = time.monotonic() - t0
    assert elapsed < 0.5, elapsed
    assert all(o.status is Status.PASS for o in report.checks)


def test_a_check_starts_after_what_it_requires_has_ended() -> None:
    clock = Clock()
    diagnose_now([
        make("route", Layer.NETWORK, sleep=0.1, order=0, clock=clock),
        make("gateway", Layer.NETWORK, requires=("network.route",), order=1, clock=clock),
    ])
    assert clock.started["network.gateway"] >= clock.ended["network.route"]


def test_runs_last_check_starts_after_all_others_finished() -> None:
    clock = Clock()
    report = diagnose_now([
        make("errors", Layer.LINK, runs_last=True, order=0, clock=clock),
        make("carrier", Layer.LINK, sleep=0.1, order=1, clock=clock),
        make("route", Layer.NETWORK, sleep=0.2, clock=clock),
        make("tcp", Layer.TRANSPORT, sleep=0.3, clock=clock),
    ])
    others = [v for k, v in clock.ended.items() if k != "link.errors"]
    assert len(others) == 3
    assert clock.started["link.errors"] >= max(others)
    assert outcome(report, "link.errors").status is Status.PASS


def test_report_lists_checks_in_ladder_order() -> None:
    report = diagnose_now([
        make("tcp", Layer.TRANSPORT),
        make("route", Layer.NETWORK, order=2),
        make("address", Layer.NETWORK, order=1),
        make("nic", Layer.PHYSICAL),
    ])
    assert [o.id for o in report.checks] == [
        "physical.nic", "network.address", "network.route", "transport.tcp"]


# -- root cause ------------------------------------------------------------------------------

def test_root_cause_is_the_lowest_layer_failure() -> None:
    report = diagnose_now([
        make("tcp", Layer.TRANSPORT, failed("TCP_REFUSED", "refused")),
        make("gateway", Layer.NETWORK, failed("GATEWAY_UNREACHABLE", "no gateway"), order=3),
        make("carrier", Layer.LINK, failed("LINK_NO_CARRIER", "no carrier"), order=9),
    ])
    assert report.root_cause.id == "link.carrier"
    root = report.to_json()["root_cause"]
    assert (root["check"], root["layer"], root["code"]) == ("link.carrier", 2, "LINK_NO_CARRIER")


def test_root_cause_within_a_layer_is_the_first_declared() -> None:
    # Listed out of order on purpose: the declaration order decides, not the list.
    report = diagnose_now([
        make("gateway", Layer.NETWORK, failed("GATEWAY_UNREACHABLE", "no gateway"), order=5),
        make("address", Layer.NETWORK, failed("ADDR_NONE", "no address"), order=2),
        make("route", Layer.NETWORK, failed("ROUTE_NO_DEFAULT", "no route"), order=3),
    ])
    assert report.root_cause.id == "network.address"


def test_warning_is_not_the_root_cause_when_something_failed() -> None:
    report = diagnose_now([
        make("errors", Layer.LINK, warned("LINK_ERRORS", "drops")),
        make("tcp", Layer.TRANSPORT, failed("TCP_FILTERED", "filtered")),
    ])
    assert report.root_cause.id == "transport.tcp"
    assert report.verdict is Verdict.BROKEN


def test_warning_is_the_root_cause_when_nothing_failed() -> None:
    report = diagnose_now([
        make("carrier", Layer.LINK),
        make("resolution", Layer.NETWORK, warned("DNS_SLOW", "slow")),
    ])
    assert report.root_cause.id == "network.resolution"
    assert report.verdict is Verdict.DEGRADED


def _silent_on(result: Result, *addresses: str) -> Result:
    result.unanswered = addresses
    return result


def test_a_wait_for_a_silent_server_gives_way_to_what_breaks_its_family() -> None:
    # The resolver waits for the IPv4 name server because IPv4 does not get through: the
    # finding that names IPv4 is the cause, declared later in the layer or not.
    report = diagnose_now([
        make("resolution", Layer.NETWORK, _silent_on(warned("DNS_SLOW", "waits 5 s for "
                                                             "198.18.3.53"), "198.18.3.53"),
             order=1),
        make("target", Layer.NETWORK, warned("TARGET_UNREACHABLE", "IPv4 silent",
                                             family="ipv4"), order=2),
    ])
    assert report.root_cause.id == "network.target"


def test_a_silent_server_of_another_family_is_not_explained() -> None:
    report = diagnose_now([
        make("resolution", Layer.NETWORK, _silent_on(warned("DNS_SLOW", "waits"),
                                                     "2001:db8:3::53"), order=1),
        make("target", Layer.NETWORK, warned("TARGET_UNREACHABLE", "IPv4 silent",
                                             family="ipv4"), order=2),
    ])
    assert report.root_cause.id == "network.resolution"


def test_slowness_gives_way_to_loss_on_the_path() -> None:
    report = diagnose_now([
        make("resolution", Layer.NETWORK, warned("DNS_SLOW", "1400 ms"), order=1),
        make("target", Layer.NETWORK, warned("PATH_LOSS", "4 of 30 lost", family="ipv6"),
             order=2),
    ])
    assert report.root_cause.id == "network.target"


def test_a_higher_layer_never_explains_a_lower_one() -> None:
    report = diagnose_now([
        make("resolution", Layer.NETWORK, _silent_on(warned("DNS_SLOW", "waits"),
                                                     "198.18.3.53")),
        make("tcp", Layer.TRANSPORT, warned("TCP_FILTERED", "IPv4 silent", family="ipv4")),
    ])
    assert report.root_cause.id == "network.resolution"


def test_skips_and_errors_are_never_the_root_cause() -> None:
    report = diagnose_now([
        make("nic", Layer.PHYSICAL, skipped("needs root")),
        make("broken", Layer.LINK, raises=RuntimeError("boom")),
        make("tcp", Layer.TRANSPORT, failed("TCP_REFUSED", "refused")),
    ])
    assert report.root_cause.id == "transport.tcp"


# -- verdicts --------------------------------------------------------------------------------

@pytest.mark.parametrize(("results", "verdict"), [
    ([passed("a"), passed("b")], Verdict.OK),
    ([passed("a"), skipped("not applicable")], Verdict.OK),
    ([passed("a"), warned("DNS_SLOW", "slow")], Verdict.DEGRADED),
    ([warned("DNS_SLOW", "slow"), failed("TCP_REFUSED", "refused")], Verdict.BROKEN),
    ([passed("a"), failed("TCP_REFUSED", "refused")], Verdict.BROKEN),
    ([passed("a"), None], Verdict.UNKNOWN),  # None: the check raises
    ([warned("DNS_SLOW", "slow"), None], Verdict.DEGRADED),
    ([failed("TCP_REFUSED", "refused"), None], Verdict.BROKEN),
])
def test_verdict(results: list[Optional[Result]], verdict: Verdict) -> None:
    checks = [
        make(f"c{i}", Layer.NETWORK, r, order=i,
             raises=RuntimeError("crash") if r is None else None)
        for i, r in enumerate(results)
    ]
    report = diagnose_now(checks)
    assert report.verdict is verdict
    assert report.verdict.exit_code == {"ok": 0, "degraded": 1, "broken": 2, "unknown": 3}[
        verdict.value]
    if verdict is Verdict.OK:
        assert report.root_cause is None


# -- skips the runner decides -----------------------------------------------------------------

def test_check_needing_root_is_skipped_when_unprivileged() -> None:
    clock = Clock()
    report = diagnose_now([make("ping", Layer.NETWORK, needs_root=True, clock=clock)],
                          facts=Facts(privileged=False))
    o = outcome(report, "network.ping")
    assert o.status is Status.SKIP
    assert "root" in o.result.summary
    assert clock.calls == []


def test_check_needing_root_runs_when_privileged() -> None:
    report = diagnose_now([make("ping", Layer.NETWORK, needs_root=True)],
                          facts=Facts(privileged=True))
    assert outcome(report, "network.ping").status is Status.PASS


def test_check_that_does_not_apply_is_skipped_with_the_reason() -> None:
    report = diagnose_now([make("resolution", Layer.NETWORK,
                                applies=lambda ctx: "the target is an address")])
    o = outcome(report, "network.resolution")
    assert o.status is Status.SKIP
    assert o.result.summary == "the target is an address"


# -- the report ------------------------------------------------------------------------------

def test_report_from_synthetic_checks_matches_the_schema() -> None:
    report = diagnose_now([
        make("nic", Layer.PHYSICAL, skipped("needs root")),
        make("carrier", Layer.LINK, failed("LINK_NO_CARRIER", "no carrier")),
        make("address", Layer.NETWORK, requires=("link.carrier",)),
        make("broken", Layer.NETWORK, raises=RuntimeError("boom"), order=1),
        make("slow", Layer.TRANSPORT, warned("TCP_FILTERED", "slow")),
    ])
    doc = report.to_json()
    validate_report(doc)
    assert doc["target"]["host"] == "127.0.0.1"
    assert doc["target"]["addresses"] == ["127.0.0.1"]
    assert doc["verdict"] == "broken"
    assert doc["root_cause"]["check"] == "link.carrier"
