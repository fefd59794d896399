"""`netcheck lab`: a student breaks nothing, finds the fault, fixes it, and checks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from netcheck.lab.topology import list_namespaces

# `lab up/check/down` act on every lab `lab up` left: one such test at a time.
pytestmark = pytest.mark.usefixtures("lab_up_turn")


def _netcheck(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netcheck", *args], capture_output=True,
                          text=True, timeout=120, check=False)


def test_up_check_fix_check_down() -> None:
    up = _netcheck("lab", "up", "wrong_gateway")
    try:
        assert up.returncode == 0, up.stderr
        client = next(w for w in up.stdout.split() if w.endswith("-client"))
        assert "ip netns exec" in up.stdout
        broken = _netcheck("lab", "check")
        assert broken.returncode == 1 and "GATEWAY_UNREACHABLE" in broken.stdout
        # The student's fix, with the command netcheck's hint points to.
        subprocess.run(["ip", "netns", "exec", client, "ip", "route", "replace", "default",
                        "via", "198.18.1.1"], check=True, timeout=10)
        fixed = _netcheck("lab", "check")
        assert fixed.returncode == 0 and "Fixed" in fixed.stdout, fixed.stdout + fixed.stderr
    finally:
        down = _netcheck("lab", "down")
    assert down.returncode == 0
    # Only this lab's namespaces must be gone: other processes' labs may come and go meanwhile.
    prefix = client.rsplit("-", 1)[0] + "-"
    assert not [n for n in list_namespaces() if n.startswith(prefix)]


def test_unknown_scenario_is_a_clear_error() -> None:
    result = _netcheck("lab", "up", "no_such_fault")
    assert result.returncode == 3 and "unknown scenario" in result.stderr
    assert "Traceback" not in result.stderr
