"""NET_SERVICE_INACTIVE, judged on recorded /proc and /etc trees (systemd does not run here)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Optional

from netcheck import registry
from netcheck.facts import Facts
from netcheck.model import Status
from netcheck.runner import Context, Options
from netcheck.target import parse_target

WANTS = "etc/systemd/system/multi-user.target.wants"


def _machine(root: Path, pid1: str, running: list[str], enabled: list[str],
             interfaces: Optional[str] = None) -> Facts:
    for pid, comm in enumerate([pid1, *running], start=1):
        (root / "proc" / str(pid)).mkdir(parents=True)
        (root / "proc" / str(pid) / "comm").write_text(comm + "\n")
    (root / WANTS).mkdir(parents=True)
    for unit in enabled:
        (root / WANTS / unit).write_text("")
    if interfaces is not None:
        (root / "etc/network").mkdir(parents=True)
        (root / "etc/network/interfaces").write_text(interfaces)
    return Facts(sysroot=str(root))


def _run(facts: Facts):  # type: ignore[no-untyped-def]
    check = registry.load(third_party=False).by_id()["network.service"]
    ctx = Context(parse_target("tcp://198.18.2.10:22"), Options(), facts)
    return asyncio.run(check.run(ctx))


def test_networkmanager_enabled_but_stopped_fails_with_restart_hint(tmp_path: Path) -> None:
    facts = _machine(tmp_path, "systemd", ["sshd"], ["NetworkManager.service"])
    result = _run(facts)
    assert result.status is Status.FAIL and result.code == "NET_SERVICE_INACTIVE"
    assert result.hint is not None
    assert "systemctl restart NetworkManager.service" in result.hint.commands


def test_networkd_running_passes(tmp_path: Path) -> None:
    facts = _machine(tmp_path, "systemd", ["systemd-network"], ["systemd-networkd.service"])
    assert _run(facts).status is Status.PASS


def test_stopped_manager_without_systemd_is_not_judged(tmp_path: Path) -> None:
    facts = _machine(tmp_path, "bash", [], ["NetworkManager.service"])
    result = _run(facts)
    assert result.status is Status.SKIP and "PID 1" in result.summary


def test_no_manager_skips(tmp_path: Path) -> None:
    assert _run(_machine(tmp_path, "systemd", [], [])).status is Status.SKIP


def test_ifupdown_has_no_daemon_and_passes(tmp_path: Path) -> None:
    facts = _machine(tmp_path, "systemd", [], [], "auto eth0\niface eth0 inet dhcp\n")
    result = _run(facts)
    assert result.status is Status.PASS and "ifupdown" in result.summary
