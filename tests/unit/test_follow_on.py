"""runner.judge_follow_ons: which failures follow from a lower rung of the path they took.

Facts in (the outcomes, the path, the kernel's route lookups of the silent addresses), the
outcomes out: a failure resting on silence becomes a skip blocked by the rung its packets
crossed, and only then.
"""

from __future__ import annotations

from typing import Any, Optional

import pytest

from netcheck.facts import RouteLookup
from netcheck.model import CheckOutcome, Layer, Result, Status, failed, passed
from netcheck.registry import Check
from netcheck.runner import PathInfo, judge_follow_ons

RESOLVER = "198.18.3.53"
PATH = PathInfo(lookups=[RouteLookup(RESOLVER, "unicast", 2, "eth0", "198.18.1.99",
                                     "198.18.1.2")],
                interface="eth0", ifindex=2, gateway="198.18.1.99", basis="name server",
                by_family={})
PATH.by_family[2] = PATH.lookups[0]  # AF_INET


async def _run(ctx: Any) -> Result:
    """Synthetic."""
    raise AssertionError("not run here")


def _check(check_id: str, layer: Layer, order: int, part: str = "") -> Check:
    return Check(id=check_id, layer=layer, run=_run, order=order, path_part=part)


CHECKS = [
    _check("link.admin_up", Layer.LINK, 1, "interface"),
    _check("network.address", Layer.NETWORK, 2, "address"),
    _check("network.route", Layer.NETWORK, 3, "route"),
    _check("network.gateway", Layer.NETWORK, 4, "gateway"),
    _check("dns.servers", Layer.NETWORK, 5),
    _check("dns.resolution", Layer.NETWORK, 6),
]


def _silent_dns(*addresses: str) -> CheckOutcome:
    result = failed("DNS_RESOLVER_UNREACHABLE", f"name server {addresses[0]}: timeout")
    result.unanswered = addresses
    return CheckOutcome("dns.servers", Layer.NETWORK, "Name servers answer", result)


def _outcomes(failing: str, dns: CheckOutcome, family: Optional[str] = None) -> list[CheckOutcome]:
    out = []
    for c in CHECKS[:4]:
        if c.id == failing:
            r = failed("X", f"{c.id} broke", **({"family": family} if family else {}))
        else:
            r = passed("fine")
        out.append(CheckOutcome(c.id, c.layer, c.id, r))
    out.append(dns)
    out.append(CheckOutcome("dns.resolution", Layer.NETWORK, "Name resolves", Result(
        Status.SKIP, "not checked: dns.servers failed", blocked_by="dns.servers")))
    return out


def _by_id(outcomes: list[CheckOutcome]) -> dict[str, CheckOutcome]:
    return {o.id: o for o in outcomes}


def _lookup(dest: str, kind: str = "unicast", oif: Optional[int] = 2,
            gateway: Optional[str] = "198.18.1.99") -> dict[str, RouteLookup]:
    return {dest: RouteLookup(dest, kind, oif if kind == "unicast" else None,
                              "eth0" if oif == 2 else "eth1",
                              gateway if kind == "unicast" else None)}


@pytest.mark.parametrize("rung", ["link.admin_up", "network.address", "network.route"])
def test_no_route_to_the_resolver_follows_from_interface_address_or_route(rung: str) -> None:
    out = _by_id(judge_follow_ons(_outcomes(rung, _silent_dns(RESOLVER)), CHECKS, PATH,
                                  _lookup(RESOLVER, "none")))
    dns = out["dns.servers"].result
    assert (dns.status, dns.blocked_by, dns.hint) == (Status.SKIP, rung, None)
    assert dns.summary == f"not tried: {rung} broke"
    assert dns.evidence["follow_on"]["code"] == "DNS_RESOLVER_UNREACHABLE"
    # what the follow-on blocked now names the real cause
    assert out["dns.resolution"].result.blocked_by == rung


def test_no_route_to_the_resolver_is_not_a_wrong_gateways_doing() -> None:
    out = _by_id(judge_follow_ons(_outcomes("network.gateway", _silent_dns(RESOLVER)), CHECKS,
                                  PATH, _lookup(RESOLVER, "none")))
    assert out["dns.servers"].result.status is Status.FAIL


def test_silence_through_the_failed_gateway_follows_from_it() -> None:
    out = _by_id(judge_follow_ons(_outcomes("network.gateway", _silent_dns(RESOLVER)), CHECKS,
                                  PATH, _lookup(RESOLVER)))
    assert out["dns.servers"].result.blocked_by == "network.gateway"


def test_a_resolver_on_the_link_does_not_go_through_the_gateway() -> None:
    out = _by_id(judge_follow_ons(_outcomes("network.gateway", _silent_dns("198.18.1.53")),
                                  CHECKS, PATH, _lookup("198.18.1.53", gateway=None)))
    assert out["dns.servers"].result.status is Status.FAIL


def test_a_resolver_behind_another_interface_is_another_path() -> None:
    out = _by_id(judge_follow_ons(_outcomes("link.admin_up", _silent_dns("198.18.4.1")), CHECKS,
                                  PATH, _lookup("198.18.4.1", oif=3, gateway=None)))
    assert out["dns.servers"].result.status is Status.FAIL
    assert out["dns.resolution"].result.blocked_by == "dns.servers"


def test_a_stub_on_loopback_is_this_host() -> None:
    out = _by_id(judge_follow_ons(_outcomes("link.admin_up", _silent_dns("127.0.0.53")), CHECKS,
                                  PATH, _lookup("127.0.0.53", "local")))
    assert out["dns.servers"].result.status is Status.FAIL


def test_every_silent_address_must_be_on_the_broken_path() -> None:
    lookups = {**_lookup(RESOLVER, "none"), **_lookup("198.18.4.1", oif=3, gateway=None)}
    out = _by_id(judge_follow_ons(_outcomes("link.admin_up", _silent_dns(RESOLVER, "198.18.4.1")),
                                  CHECKS, PATH, lookups))
    assert out["dns.servers"].result.status is Status.FAIL


def test_an_address_failure_of_the_other_family_explains_nothing() -> None:
    lookups = _lookup("2001:db8:3::53")
    out = _by_id(judge_follow_ons(_outcomes("network.address", _silent_dns("2001:db8:3::53"),
                                            family="ipv4"), CHECKS, PATH, lookups))
    assert out["dns.servers"].result.status is Status.FAIL
    out = _by_id(judge_follow_ons(_outcomes("network.address", _silent_dns(RESOLVER),
                                            family="ipv4"), CHECKS, PATH, _lookup(RESOLVER)))
    assert out["dns.servers"].result.blocked_by == "network.address"


def test_a_failure_that_got_answers_stays() -> None:
    # SERVFAIL came back: the path works, whatever a lower rung says.
    answered = CheckOutcome("dns.servers", Layer.NETWORK, "Name servers answer",
                            failed("DNS_SERVFAIL", f"{RESOLVER} answers SERVFAIL"))
    out = _by_id(judge_follow_ons(_outcomes("link.admin_up", answered), CHECKS, PATH,
                                  _lookup(RESOLVER, "none")))
    assert out["dns.servers"].result.status is Status.FAIL


def test_a_rung_above_the_silent_check_is_no_cause() -> None:
    checks = [*CHECKS[:4], _check("dns.servers", Layer.LINK, 0), CHECKS[5]]
    out = _by_id(judge_follow_ons(_outcomes("link.admin_up", _silent_dns(RESOLVER)), checks,
                                  PATH, _lookup(RESOLVER, "none")))
    assert out["dns.servers"].result.status is Status.FAIL
