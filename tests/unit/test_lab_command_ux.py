"""`netcheck lab` as a student meets it: lists that do not give the answer away, commands
that enter the namespaces with netcheck on PATH, and "did you mean" for a typo."""

from __future__ import annotations

import io
import os
import shlex
import subprocess

import pytest

from netcheck import cli
from netcheck.lab import command
from netcheck.lab.scenarios import BASE_SCENARIOS, SCENARIOS, Expect, Scenario

# Words that name the fault of a scenario (its fix): none may appear in what `lab list` says.
GIVEAWAYS = {
    "client_interface_down": ["eth0", "down", "switched off", "ip link"],
    "carrier_lost": ["cable", "unplugged", "carrier", "router"],
    "no_address": ["address", "DHCP"],
    "wrong_gateway": ["198.18.1.99", "gateway", "route"],
    "no_default_route": ["default route", "route"],
    "blackhole_route": ["blackhole", "route"],
    "resolver_config_empty": ["resolv.conf", "name server"],
    "resolver_dropped": ["firewall", "port 53", "drops"],
    "hosts_override": ["/etc/hosts", "198.18.2.99", "stale"],
    "port_dropped": ["firewall", "drops"],
    "pmtu_blackhole": ["MTU", "fragmentation"],
    "loopback_down": ["lo ", "loopback", "127.0.0.1"],
}


def netcheck(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return cli.run(list(args), out, err), out.getvalue(), err.getvalue()


def test_lab_list_never_names_a_fault() -> None:
    rc, out, _err = netcheck("lab", "list")
    assert rc == 0
    listed = " ".join(out.split())
    for scenario in SCENARIOS.values():
        assert scenario.name in listed
        assert " ".join(scenario.answer.split()) not in listed, scenario.name
    for name, words in GIVEAWAYS.items():
        teaser = BASE_SCENARIOS[name].teaser
        assert not [w for w in words if w.lower() in teaser.lower()], (name, teaser)


def test_every_base_scenario_has_a_fix_with_its_repair() -> None:
    for scenario in BASE_SCENARIOS.values():
        assert scenario.fix and scenario.description != scenario.fix, scenario.name
        assert scenario.teaser == scenario.description
    assert "ip route replace default via 198.18.1.1" in BASE_SCENARIOS["wrong_gateway"].fix
    # Bringing a link up again does not bring back what taking it down removed.
    assert "ip route add default" in BASE_SCENARIOS["client_interface_down"].fix


def test_a_scenario_without_fix_keeps_working_and_lists_its_symptom() -> None:
    """Scenarios written before ``fix`` existed: their description is the answer."""
    old = Scenario("old_style", "The server's firewall drops port 22.", "ssh hangs.",
                   "tcp://198.18.2.10:22", lambda lab: None, Expect("broken", "TCP_FILTERED", 4))
    assert old.fix == ""
    assert old.answer == "The server's firewall drops port 22."
    assert old.teaser == "ssh hangs."


def test_lab_list_fits_80_columns() -> None:
    _rc, out, _err = netcheck("lab", "list")
    assert max(len(line) for line in out.splitlines()) <= 80


@pytest.mark.parametrize("typo, suggested", [
    ("wrong_gatewy", "wrong_gateway"),
    ("port_dropt", "port_dropped"),
    ("nxdomian", "nxdomain"),
])
def test_a_mistyped_scenario_gets_did_you_mean(typo: str, suggested: str) -> None:
    rc, out, err = netcheck("lab", "up", typo)
    assert rc == 3 and out == ""
    assert f"unknown scenario '{typo}'" in err
    assert f"did you mean {suggested}" in err


def test_nothing_close_gets_no_suggestion() -> None:
    rc, _out, err = netcheck("lab", "up", "zzzz")
    assert rc == 3 and "did you mean" not in err and "netcheck lab list" in err


def test_enter_command_puts_this_netcheck_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUDO_USER", raising=False)
    argv = command.enter_argv("nc1-1-client")
    assert argv[:5] == ["ip", "netns", "exec", "nc1-1-client", "env"] or \
        argv[:6] == ["sudo", "ip", "netns", "exec", "nc1-1-client", "env"]
    assert argv[-1] == "bash"
    path = next(a for a in argv if a.startswith("PATH="))
    assert "$" not in path  # written out: nothing for a shell to expand, pastes anywhere
    # The PATH finds the netcheck this very Python runs (the namespace part aside).
    found = subprocess.run(["env", path, "sh", "-c", "command -v netcheck"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert found and os.path.dirname(found) == command.netcheck_bindir()
    # What is printed is what the shell will run.
    assert shlex.split(shlex.join(argv)) == argv


def test_enter_command_through_sudo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUDO_USER", "student")
    assert command.enter_argv("nc1-1-server")[0] == "sudo"
