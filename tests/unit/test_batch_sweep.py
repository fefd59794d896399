"""The light sweep (``--only transport.tcp``): a handshake judged by the sweep is the report
the transport check itself gives for the same connect; anything else goes to the check.

No packet leaves: the check's connect probe is replaced by one that returns a given result
(the route lookups are netlink questions to this host's kernel, nothing sent).
"""

from __future__ import annotations

import asyncio
import io
from typing import Any, Optional

import pytest

from netcheck import registry
from netcheck.batch import sweep
from netcheck.batch.profile import Entry, read_target_lines
from netcheck.batch.run import Settings, _options
from netcheck.facts import Facts
from netcheck.model import Report
from netcheck.probes import shared
from netcheck.probes.tcp import TcpResult
from netcheck.registry import Check
from netcheck.runner import diagnose
from tests.schema import validate_report

ADDRESS = "192.0.2.7"  # documentation range: only a route lookup ever asks about it


def tcp_check() -> Check:
    reg = registry.load(builtin=("netcheck.checks.transport",))
    return next(c for c in reg.checks if c.id == "transport.tcp")


def entry_of(text: str, **defaults: Any) -> Entry:
    return read_target_lines(io.StringIO(text + "\n"), defaults=defaults).entries[0]


def given_connect(monkeypatch: pytest.MonkeyPatch, result: TcpResult) -> list[str]:
    asked: list[str] = []

    async def connect(address: str, port: int, timeout: float, stagger: float = 0.25
                      ) -> TcpResult:
        asked.append(address)
        return result

    monkeypatch.setattr(shared, "connect_retrying", connect)
    return asked


def comparable(report: Report) -> dict[str, Any]:
    doc = report.to_json()
    validate_report(doc)
    for key in ("started_at", "duration_ms"):
        doc.pop(key)
    for check in doc["checks"]:
        check.pop("duration_ms")
    return doc


def both(entry: Entry, check: Check) -> tuple[Optional[Report], Report]:
    """(the sweep's report, the check's own report through the runner) for one entry."""
    options = _options(entry, Settings(timeout=1, deadline=5))
    assert entry.target is not None

    async def go() -> tuple[Optional[Report], Report]:
        light = sweep.Sweep(check, state=None, facts=Facts())
        address = light.address(entry, options.family)
        assert address == ADDRESS
        swept = await light.report(entry, address, options)
        own = await diagnose(entry.target, options, [check], facts=Facts())
        return swept, own

    return asyncio.run(go())


@pytest.mark.parametrize("expect", ["open", "closed"])
@pytest.mark.parametrize("result", [
    TcpResult(ADDRESS, 9000, "open", rtt_ms=1.234, local="192.0.2.1", after="closed",
              watched_ms=15.0),
    TcpResult(ADDRESS, 9000, "open", rtt_ms=0.5, local="192.0.2.1", after="spoke",
              watched_ms=3.2),
    TcpResult(ADDRESS, 9000, "reset", rtt_ms=0.8, errno="ECONNRESET", after="reset",
              watched_ms=0.0),
], ids=["closed-at-once", "spoke", "reset"])
def test_a_handshake_gets_the_checks_own_report(monkeypatch: pytest.MonkeyPatch,
                                                result: TcpResult, expect: str) -> None:
    check = tcp_check()
    given_connect(monkeypatch, result)
    swept, own = both(entry_of(f"tcp://{ADDRESS}:9000", expect=expect), check)
    assert swept is not None
    assert comparable(swept) == comparable(own)
    assert swept.verdict.value == ("ok" if expect == "open" else "broken")


@pytest.mark.parametrize("state", ["refused", "timeout", "icmp", "local"])
def test_no_handshake_goes_to_the_check(monkeypatch: pytest.MonkeyPatch, state: str) -> None:
    given_connect(monkeypatch, TcpResult(ADDRESS, 9000, state))
    entry = entry_of(f"tcp://{ADDRESS}:9000")
    light = sweep.Sweep(tcp_check(), state=None, facts=Facts())
    options = _options(entry, Settings(timeout=1, deadline=5))
    assert asyncio.run(light.report(entry, ADDRESS, options)) is None


def test_names_and_left_out_families_are_not_swept() -> None:
    light = sweep.Sweep(tcp_check(), state=None, facts=Facts())
    assert light.address(entry_of("tcp://www.example.test:22"), None) is None
    assert light.address(entry_of(f"tcp://{ADDRESS}:22"), 6) is None
    assert light.address(entry_of("tcp://[2001:db8::7]:22"), 4) is None
    assert light.address(entry_of(f"tcp://{ADDRESS}:22"), 4) == ADDRESS


def test_the_sweep_applies_to_the_transport_check_alone() -> None:
    reg = registry.load(builtin=("netcheck.checks.transport",))
    check = tcp_check()
    assert sweep.applies([check]) is check
    assert sweep.applies([c for c in reg.checks if c.id.startswith("transport.")]) is None
    assert sweep.applies([]) is None


def test_route_lookups_are_asked_in_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    rounds: list[list[str]] = []

    def route_get(destinations: list[str], oif: Any, names: Any) -> list[Any]:
        rounds.append(list(destinations))
        return []

    monkeypatch.setattr("netcheck.facts.route_get", route_get)

    async def go() -> list[Any]:
        routes = sweep.Routes({})
        return list(await asyncio.gather(*(routes.lookup(f"192.0.2.{i}") for i in range(1, 40))))

    assert asyncio.run(go()) == [None] * 39
    assert rounds == [[f"192.0.2.{i}" for i in range(1, 40)]]
