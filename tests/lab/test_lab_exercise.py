"""`netcheck lab up --exercise`: only the symptom; the printed command enters the client with
netcheck on PATH; the answer comes with `lab check` once the fault is repaired."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest

from netcheck.lab.scenarios import BASE_SCENARIOS
from netcheck.lab.topology import list_namespaces

# `lab up/check/down` act on every lab `lab up` left: one such test at a time.
pytestmark = pytest.mark.usefixtures("lab_up_turn")


def _netcheck(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netcheck", *args], capture_output=True,
                          text=True, timeout=120, check=False)


def _printed_commands(text: str) -> list[list[str]]:
    """The indented command lines of the banner, as argv lists."""
    return [shlex.split(line) for line in text.splitlines() if line.startswith("  ")]


def test_exercise_shows_the_symptom_and_check_reveals_the_fault() -> None:
    scenario = BASE_SCENARIOS["wrong_gateway"]
    up = _netcheck("lab", "up", "wrong_gateway", "--exercise")
    prefix = "-"
    try:
        assert up.returncode == 0, up.stderr
        assert scenario.symptom in up.stdout
        assert scenario.description not in up.stdout
        for giveaway in ("198.18.1.99", scenario.fix):
            assert giveaway not in up.stdout
        enter_client, enter_server, run = _printed_commands(up.stdout)
        assert enter_client[-1] == enter_server[-1] == "bash"
        assert enter_client[enter_client.index("exec") + 1].endswith("-client")
        assert enter_server[enter_server.index("exec") + 1].endswith("-server")
        # Pasted as printed (the shell replaced by a one-line script): netcheck is on PATH
        # inside the namespace and diagnoses the fault.
        inside = subprocess.run([*enter_client[:-1], "bash", "-c", shlex.join([*run, "-q"])],
                                capture_output=True, text=True, timeout=60, check=False)
        assert inside.stdout.startswith("BROKEN GATEWAY_UNREACHABLE L3 "), inside.stderr
        in_server = subprocess.run([*enter_server[:-1], "bash", "-c", "command -v netcheck"],
                                   capture_output=True, text=True, timeout=30, check=False)
        assert in_server.returncode == 0 and in_server.stdout.strip().endswith("/netcheck")

        broken = _netcheck("lab", "check")
        assert broken.returncode == 1 and scenario.fix not in broken.stdout
        client = enter_client[enter_client.index("exec") + 1]
        prefix = client.rsplit("-", 1)[0] + "-"
        subprocess.run(["ip", "netns", "exec", client, "ip", "route", "replace", "default",
                        "via", "198.18.1.1"], check=True, timeout=10)
        fixed = _netcheck("lab", "check")
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        assert f"What was broken: {scenario.fix}" in fixed.stdout
    finally:
        down = _netcheck("lab", "down")
    assert down.returncode == 0
    # Only this lab's namespaces are looked at: other labs may come and go meanwhile.
    assert [ns for ns in list_namespaces() if ns.startswith(prefix)] == []


def test_spoil_says_the_fault_up_front() -> None:
    scenario = BASE_SCENARIOS["no_default_route"]
    up = _netcheck("lab", "up", "no_default_route", "--spoil")
    try:
        assert up.returncode == 0, up.stderr
        assert f"Scenario no_default_route: {scenario.description}" in up.stdout
        assert f"Fault: {scenario.fix}" in " ".join(up.stdout.split())
    finally:
        assert _netcheck("lab", "down").returncode == 0
