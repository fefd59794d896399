"""The fault campaign, for real: the fixed seed set (every catalogue entry once, at least 60
generated networks), each built, broken, diagnosed by netcheck in its client and graded.

What issue 10 demands of it: no false alarm on a healthy variant or a trap, and a pass rate of
at least 98 %. Every failure is listed with its seed, fault class, family, what was expected
and what netcheck said, and the one-line reproduction (`netcheck lab up --case SEED`).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from netcheck.lab.campaign import (
    CI_SEEDS,
    DEFAULT_DEADLINE,
    FOUND_SEEDS,
    Result,
    failure_line,
    false_alarms,
    generate,
    rate,
    run_campaign,
    support_problem,
)
from netcheck.lab.topology import list_namespaces

from .conftest import lab_required

PASS_RATE = 98.0


@pytest.fixture(scope="module")
def results() -> list[Result]:
    """The fixed seed set, two cases at a time (about 2 s a case on a 2-core machine)."""
    problem = support_problem()
    if problem:
        if lab_required():
            pytest.fail(f"campaigns are required here but cannot run: {problem}", pytrace=False)
        pytest.skip(f"campaign skipped: {problem}")
    return run_campaign(CI_SEEDS, jobs=2)


def _listing(failed: list[Result]) -> str:
    return "\n".join(failure_line(r, DEFAULT_DEADLINE) for r in failed)


def test_the_campaign_runs_at_least_60_cases(results: list[Result]) -> None:
    assert len(results) >= 60
    errors = [r for r in results if r.error]
    assert not errors, _listing(errors)


def test_every_case_breaks_the_network_where_its_catalogue_entry_says(
        results: list[Result]) -> None:
    # The truth probe (plain DNS queries and connections after netcheck ran) agrees with the
    # flow model: a disagreement is a generator error, never counted against netcheck.
    invalid = [r for r in results if r.invalid]
    assert not invalid, _listing(invalid)


def test_no_false_alarm_on_healthy_variants_and_traps(results: list[Result]) -> None:
    alarms = false_alarms(results)
    assert not alarms, _listing(alarms)


def test_pass_rate_is_at_least_98_percent(results: list[Result]) -> None:
    failed = [r for r in results if not r.passed]
    passed = rate(results)
    assert passed >= PASS_RATE, f"{passed:.1f} % of {len(results)} cases passed:\n" + _listing(
        failed)


@pytest.mark.usefixtures("lab_up_turn")  # `lab down` removes every lab `lab up` left
def test_cases_found_by_wider_campaigns_stay_fixed() -> None:
    problem = support_problem()
    if problem:
        if lab_required():
            pytest.fail(f"campaigns are required here but cannot run: {problem}", pytrace=False)
        pytest.skip(f"campaign skipped: {problem}")
    seeds = [seed for seed, _fault in FOUND_SEEDS]
    assert [generate(seed).fault.name for seed in seeds] == [f for _s, f in FOUND_SEEDS], \
        "the catalogue grew: these seeds name other entries now (find the cases' new seeds)"
    found = run_campaign(seeds, jobs=2)
    failed = [r for r in found if not r.passed]
    assert not failed, _listing(failed)


def test_up_case_rebuilds_a_case_and_check_grades_it() -> None:
    prefix = "not built"
    # A case whose network is broken: `check` must say it is not fixed.
    seed = next(s for s in CI_SEEDS if "ok" not in generate(s).expectation().verdicts)

    def netcheck(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "netcheck", *args], capture_output=True,
                              text=True, timeout=120, check=False)

    up = netcheck("lab", "up", "--case", str(seed))
    try:
        assert up.returncode == 0, up.stderr
        assert f"seed {seed} [" in up.stdout and "ip netns exec" in up.stdout
        client = next(w for w in up.stdout.split() if w.endswith("-client"))
        prefix = client.rsplit("-", 1)[0]
        argv = next(line.split("netcheck ", 1)[1].split()
                    for line in up.stdout.splitlines() if line.startswith("  netcheck "))
        run = subprocess.run(["ip", "netns", "exec", client, sys.executable, "-m", "netcheck",
                              *argv, "--format", "json"], capture_output=True, text=True,
                             timeout=60, check=False)
        assert json.loads(run.stdout)["verdict"] != "ok", run.stdout[-500:]
        check = netcheck("lab", "check")
        assert check.returncode == 1 and "Not fixed yet" in check.stdout, check.stdout
    finally:
        down = netcheck("lab", "down")
    assert down.returncode == 0
    assert not [n for n in list_namespaces() if n.startswith(prefix + "-")]


def test_up_case_refuses_a_seed_below_one() -> None:
    result = subprocess.run([sys.executable, "-m", "netcheck", "lab", "up", "--case", "0"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 3 and "seeds start at 1" in result.stderr
