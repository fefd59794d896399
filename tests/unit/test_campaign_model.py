"""The fault campaign's generator, flow model and oracle, without building a network.

The lab test (tests/lab/test_campaign.py) runs the cases for real; these pin down that a seed
always means the same case, that the flow model gives the verdict a network engineer would,
and that the oracle refuses what it must refuse (a wrong code, a missing family, a false alarm,
an overrun deadline).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import pytest

from netcheck.lab.campaign import (
    ALL,
    CATALOGUE,
    CI_SEEDS,
    DEADLINE_SLACK,
    OK,
    Case,
    Expectation,
    Result,
    Target,
    flow,
    generate,
    grade,
    truth_problems,
    with_table,
)
from netcheck.lab.compose import Parts, links, routes


def _case(parts: Parts, target: Target, family: Optional[int] = None,
          name: str = "default_route_deleted") -> Case:
    fault = next(f for f in CATALOGUE if f.name == name)
    return Case(1, fault, parts, target, family)


NAMED = Target("tcp", "svc.lab.test", 22, None)
V4 = Target("tcp", "198.18.2.10", 22, 4)
V6 = Target("tcp", "2001:db8:2::10", 22, 6)
DUAL_NS4 = Parts(family="dual", nameservers=(4,))
DUAL_NS46 = Parts(family="dual", nameservers=(4, 6))
CODE = frozenset({"ADDR_NONE"})


@pytest.mark.parametrize("parts,target,broken,verdict,family", [
    # IPv4 gone, the only name server is IPv4: the name cannot be resolved at all.
    (DUAL_NS4, NAMED, {("dns", 4): CODE, ("target", 4): CODE}, "broken", None),
    # IPv4 gone, a name server of each family: IPv6 carries the whole flow.
    (DUAL_NS46, NAMED, {("dns", 4): CODE, ("target", 4): CODE}, "degraded", "ipv4"),
    # An IPv4 literal needs IPv4, whatever the name servers.
    (DUAL_NS46, V4, {("dns", 4): CODE, ("target", 4): CODE}, "broken", None),
    # An IPv6 literal does not care about IPv4 at all.
    (DUAL_NS46, V6, {("dns", 4): CODE, ("target", 4): CODE}, "ok", None),
    # A literal target needs no name server.
    (DUAL_NS4, V4, {("dns", 4): CODE, ("dns", 6): CODE}, "ok", None),
    # The IPv6 path to the target fails, IPv4 works: degraded, naming IPv6.
    (DUAL_NS4, NAMED, {("target", 6): CODE}, "degraded", "ipv6"),
    # Both target families fail.
    (DUAL_NS4, NAMED, {("target", 4): CODE, ("target", 6): CODE}, "broken", None),
    # An IPv4-only network with a broken IPv6 path: nothing the flow needs.
    (Parts(family="v4", nameservers=(4,)), NAMED, {("target", 6): CODE}, "ok", None),
])
def test_flow_model(parts: Parts, target: Target, broken: dict, verdict: str,
                    family: Optional[str]) -> None:
    expected = flow(_case(parts, target), {k: frozenset(v) for k, v in broken.items()})
    assert expected.verdicts == {verdict}
    assert expected.family == family
    assert expected.codes == (frozenset() if verdict == "ok" else CODE)


def test_a_seed_is_always_the_same_case() -> None:
    first = [generate(seed).describe() for seed in range(1, 40)]
    assert [generate(seed).describe() for seed in range(1, 40)] == first


def test_the_ci_seeds_cover_every_catalogue_entry_and_at_least_60_cases() -> None:
    assert len(CI_SEEDS) >= 60
    assert {generate(seed).fault.name for seed in CI_SEEDS} == {f.name for f in CATALOGUE}


def test_catalogue_names_are_unique_and_every_entry_says_how() -> None:
    names = [f.name for f in CATALOGUE]
    assert len(names) == len(set(names))
    assert all(f.how and f.kind in ("fault", "trap", "healthy") for f in CATALOGUE)


def test_generated_networks_are_consistent() -> None:
    for seed in range(1, 400):
        case = generate(seed)
        parts = case.parts
        assert set(parts.nameservers) <= set(parts.families), case.describe()
        assert not (parts.nat and 4 not in parts.families), case.describe()
        assert case.family in (None, ALL, *parts.families), case.describe()
        if not case.target.named:
            assert case.target.family in parts.families, case.describe()
        # Every namespace a link names exists; every route is for a namespace that exists.
        roles = set(parts.roles())
        assert {lk.ns_a for lk in links(parts)} | {lk.ns_b for lk in links(parts)} <= roles
        assert set(routes(parts)) <= roles


def test_docs_table_is_the_catalogue() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "campaigns.md").read_text()
    assert with_table(page) == page, (
        "docs/campaigns.md's catalogue table is stale: "
        "python -m netcheck.lab.campaign table --write docs/campaigns.md")
    assert all(f"`{f.name}`" in page for f in CATALOGUE)


def test_traps_and_healthy_networks_never_accept_a_failure() -> None:
    for seed in CI_SEEDS:
        case = generate(seed)
        if case.fault.kind in ("trap", "healthy"):
            expected = case.expectation()
            assert expected.no_fail and "broken" not in expected.verdicts, case.describe()


def _doc(verdict: str, code: Optional[str] = None, family: Optional[str] = None,
         failed: tuple[str, ...] = (), duration_ms: float = 900.0) -> str:
    checks: list[dict[str, Any]] = [
        {"id": cid, "status": "fail", "code": "X", "evidence": {}} for cid in failed]
    root = None
    if code:
        root = {"check": "network.route", "layer": 3, "code": code, "summary": "s"}
        checks.append({"id": "network.route", "status": "fail" if verdict == "broken"
                       else "warn", "code": code,
                       "evidence": {"family": family} if family else {}})
    return json.dumps({"verdict": verdict, "root_cause": root, "checks": checks,
                       "duration_ms": duration_ms})


def _graded(expected: Expectation, stdout: str, elapsed: float = 1.0) -> Result:
    result = Result(_case(DUAL_NS4, NAMED), expected, elapsed=elapsed)
    grade(result, stdout, 10.0)
    return result


BROKEN_ROUTE = Expectation(frozenset({"broken"}), frozenset({"ROUTE_NO_DEFAULT"}))
DEGRADED_V6 = Expectation(frozenset({"degraded"}), frozenset({"ROUTE_NO_DEFAULT"}), "ipv6")


def test_oracle_accepts_the_expected_diagnosis() -> None:
    assert _graded(BROKEN_ROUTE, _doc("broken", "ROUTE_NO_DEFAULT")).passed
    assert _graded(DEGRADED_V6, _doc("degraded", "ROUTE_NO_DEFAULT", "ipv6")).passed
    assert _graded(OK, _doc("ok")).passed


def test_oracle_refuses_a_wrong_code_or_verdict() -> None:
    assert "root cause" in _graded(BROKEN_ROUTE, _doc("broken", "GATEWAY_UNREACHABLE")
                                   ).problems[0]
    assert "verdict degraded" in _graded(BROKEN_ROUTE, _doc("degraded", "ROUTE_NO_DEFAULT")
                                         ).problems[0]


def test_oracle_wants_the_family_named_when_one_family_fails() -> None:
    result = _graded(DEGRADED_V6, _doc("degraded", "ROUTE_NO_DEFAULT"))
    assert not result.passed and "family" in result.problems[0]


def test_oracle_counts_any_failed_check_on_a_healthy_network_as_a_false_alarm() -> None:
    result = _graded(OK, _doc("ok", failed=("link.others",)))
    assert not result.passed and "false alarm" in result.problems[0]
    trap = Expectation(frozenset({"ok", "degraded"}), frozenset({"TARGET_NO_ICMP"}),
                       no_fail=True)
    assert _graded(trap, _doc("degraded", "TARGET_NO_ICMP")).passed
    assert not _graded(trap, _doc("broken", "TARGET_NO_ICMP")).passed


def test_oracle_enforces_the_deadline() -> None:
    assert not _graded(OK, _doc("ok", duration_ms=10_500)).passed
    assert not _graded(OK, _doc("ok"), elapsed=10 + DEADLINE_SLACK + 0.1).passed
    assert "no JSON" in _graded(OK, "Traceback ...").problems[0]


def test_truth_probe_disagreeing_with_the_catalogue_marks_the_case_invalid() -> None:
    case = _case(DUAL_NS4, V4, 4)
    said_broken = flow(case, {("target", 4): frozenset({"ROUTE_NO_DEFAULT"})})
    plan = [{"path": "target", "family": 4, "address": "198.18.2.10"}]
    assert truth_problems(case, said_broken, ["TimeoutError: timed out"], plan) == []
    problems = truth_problems(case, said_broken, ["ok"], plan)
    assert problems and "target/ipv4 works but the catalogue says it fails" in problems[0]


def test_reproduction_line_names_the_seed_and_the_command() -> None:
    case = generate(7)
    assert case.reproduce().startswith("netcheck lab up --case 7")
    assert f"netcheck {case.target.url()} --deadline" in case.reproduce()

