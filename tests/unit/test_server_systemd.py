"""systemd in server mode, on `systemctl show` outputs recorded from a real systemd 252
(tests/fixtures/systemd/, see record.py there): states, unit names, cgroups, and the check."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from netcheck.facts import Facts
from netcheck.model import Status
from netcheck.probes import systemd
from netcheck.probes.systemd import (
    SystemdError,
    UnitNameError,
    normalise_unit,
    parse_show,
    unit_of_cgroup,
    unit_state,
)
from netcheck.runner import Context
from netcheck.server.options import ServerOptions

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "systemd"


def recorded(name: str) -> systemd.UnitState:
    text = (FIXTURES / name).read_text()
    return unit_state("x.service", parse_show(text))


# -- unit names: systemd's grammar, nothing else reaches systemctl ---------------------------

@pytest.mark.parametrize("name,expected", [
    ("nginx", "nginx.service"),
    ("nginx.service", "nginx.service"),
    ("php8.2-fpm", "php8.2-fpm.service"),
    ("getty@tty1.service", "getty@tty1.service"),
    ("docker.socket", "docker.socket"),
    ("system-serial\\x2dgetty.slice", "system-serial\\x2dgetty.slice"),
])
def test_valid_unit_names_are_kept_or_get_service(name: str, expected: str) -> None:
    assert normalise_unit(name) == expected


@pytest.mark.parametrize("name", [
    "nginx; rm -rf /", "nginx && reboot", "$(reboot)", "`id`", "nginx|cat", "a b",
    "nginx\nreboot", "--help", "-nginx", "", "x" * 300, "../../etc/passwd", "@.service",
    "nginx@a@b.service", ".service", "ngïnx",
])
def test_unit_names_with_metacharacters_are_refused(name: str) -> None:
    with pytest.raises(UnitNameError):
        normalise_unit(name)


def test_show_passes_the_unit_after_double_dash_as_one_argv_word(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    def fake_run(argv: list[str], timeout: float, max_bytes: int) -> tuple[int, str, str]:
        seen.append(argv)
        return 0, (FIXTURES / "active.txt").read_text(), ""

    monkeypatch.setattr("netcheck.probes.firewall.run_bounded", fake_run)
    monkeypatch.setattr(systemd, "_tool", lambda name: f"/usr/bin/{name}")
    state = systemd.show("nginx.service")
    assert state.active
    argv = seen[0]
    assert argv[0] == "/usr/bin/systemctl" and argv[1] == "show"
    assert argv[-2:] == ["--", "nginx.service"]
    assert any(a.startswith("--property=Id,") for a in argv)


def test_systemctl_where_systemd_is_not_pid1_is_a_clear_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    stderr = (FIXTURES / "no-systemd.stderr.txt").read_text()
    monkeypatch.setattr("netcheck.probes.firewall.run_bounded",
                        lambda argv, timeout, max_bytes: (1, "", stderr))
    monkeypatch.setattr(systemd, "_tool", lambda name: f"/usr/bin/{name}")
    with pytest.raises(SystemdError, match="not been booted with systemd"):
        systemd.show("nginx.service")


def test_not_running_reason_names_pid1(tmp_path: Path) -> None:
    from netcheck.checks.server.common import systemd_unavailable

    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "comm").write_text("process_api\n")
    reason = systemd.not_running_reason(str(tmp_path), str(tmp_path / "no-such-dir"))
    assert reason == systemd.Unavailable(systemd.NOT_INIT, "process_api")
    assert "PID 1 is process_api" in systemd_unavailable(reason)
    assert systemd_unavailable(reason).endswith(": there is no unit to ask")
    assert systemd_unavailable(reason, journal=True).endswith(": there is no journal to read")


def test_journal_reason_without_journalctl(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from netcheck.checks.server.common import systemd_unavailable

    monkeypatch.setattr(systemd, "not_running_reason", lambda procfs="/proc": None)
    monkeypatch.setattr(systemd, "_tool", lambda name: None)
    reason = systemd.journal_reason(str(tmp_path))
    assert reason == systemd.Unavailable(systemd.NO_JOURNALCTL)
    assert systemd_unavailable(reason, journal=True) == "journalctl is not installed"


# -- the recorded states -----------------------------------------------------------------------

def test_active_running_enabled() -> None:
    st = recorded("active.txt")
    assert st.unit == "nginx.service" and st.active and st.exists and not st.masked
    assert st.sub_state == "running" and st.starts_at_boot is True and st.main_pid > 0
    assert st.active_line().startswith("active (running) since ")
    assert st.failure() is None


def test_failed_with_exit_status() -> None:
    st = recorded("failed.txt")
    assert not st.active and st.active_state == "failed"
    assert st.failure() == "result exit-code, main process exited with status 1"


def test_activating_auto_restart_counts_restarts() -> None:
    st = recorded("activating-auto-restart.txt")
    assert st.active_state == "activating" and st.sub_state == "auto-restart"
    assert st.restarts >= 1 and not st.active


def test_activating_start_pre() -> None:
    st = recorded("activating-start-pre.txt")
    assert (st.active_state, st.sub_state) == ("activating", "start-pre")


def test_inactive_dead_disabled() -> None:
    st = recorded("inactive-dead.txt")
    assert (st.active_state, st.sub_state) == ("inactive", "dead")
    assert st.boot == "disabled" and st.starts_at_boot is False


def test_not_found() -> None:
    st = recorded("not-found.txt")
    assert not st.exists and st.load_error == "Unit php-fpm8.2.service not found."


def test_masked() -> None:
    st = recorded("masked.txt")
    assert st.masked and st.exists
    assert st.load_error == "Unit lighttpd.service is masked."


def test_full_show_output_parses_the_same() -> None:
    full = recorded("active-full.txt")
    short = recorded("active.txt")
    assert (full.unit, full.active_state, full.sub_state, full.boot) == (
        short.unit, short.active_state, short.sub_state, short.boot)


# -- which unit a process belongs to --------------------------------------------------------------

@pytest.mark.parametrize("text,unit,user", [
    ("0::/system.slice/nginx.service\n", "nginx.service", None),
    ("12:pids:/system.slice/docker.service\n1:name=systemd:/system.slice/docker.service\n",
     "docker.service", None),
    ("0::/user.slice/user-1000.slice/user@1000.service/app.slice/web.service\n", "web.service",
     1000),
    ("0::/system.slice/docker-4f1c.scope\n", "docker-4f1c.scope", None),
    ("0::/system.slice/nginx.service/worker\n", "nginx.service", None),
])
def test_unit_of_cgroup(text: str, unit: str, user: Any) -> None:
    ref = unit_of_cgroup(text)
    assert ref is not None and ref.unit == unit and ref.user == user


@pytest.mark.parametrize("text", ["0::/\n", "0::/init.scope/../\n", "", "garbage"])
def test_no_unit_in_cgroup(text: str) -> None:
    ref = unit_of_cgroup(text)
    assert ref is None or ref.unit.endswith(".scope")


# -- the check, fed the recordings -------------------------------------------------------------

def _run_unit_check(monkeypatch: pytest.MonkeyPatch, fixture: str,
                    journal: list[str] | None = None) -> Any:
    from netcheck.checks import server as srv

    monkeypatch.setattr(systemd, "not_running_reason", lambda procfs="/proc", **_: None)
    monkeypatch.setattr(systemd, "journal_reason", lambda procfs="/proc": None)
    monkeypatch.setattr(systemd, "show", lambda unit, timeout=2.0, user=False: unit_state(
        unit, parse_show((FIXTURES / fixture).read_text())))
    monkeypatch.setattr(systemd, "journal", lambda *a, **k: list(journal or []))
    opts = ServerOptions(port=443, service="nginx.service")
    ctx = Context(None, opts, Facts())

    async def go() -> Any:
        return await srv.service_unit(ctx)

    return asyncio.run(go())


def test_check_active_unit_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run_unit_check(monkeypatch, "active.txt")
    assert result.status is Status.PASS
    assert "active (running)" in result.summary and "enabled at boot" in result.summary


def test_check_failed_unit_is_srv_service_inactive_with_the_log(
        monkeypatch: pytest.MonkeyPatch) -> None:
    log = ["2026-11-22T02:41:49+0000 www nginx[41]: nginx: [emerg] bind() to 127.0.0.1:8080 "
           "failed (98: Address already in use)"]
    result = _run_unit_check(monkeypatch, "failed.txt", log)
    assert result.status is Status.FAIL and result.code == "SRV_SERVICE_INACTIVE"
    assert "exited with status 1" in result.summary and "bind()" in result.summary
    assert "systemctl start nginx-broken.service" in result.hint.commands
    assert result.evidence["log"] == log


def test_check_restarting_unit_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run_unit_check(monkeypatch, "activating-auto-restart.txt")
    assert result.status is Status.FAIL and result.code == "SRV_SERVICE_INACTIVE"
    assert "restart" in result.summary


def test_check_starting_unit_is_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run_unit_check(monkeypatch, "activating-start-pre.txt")
    assert result.status is Status.WARN and result.code == "SRV_SERVICE_INACTIVE"


def test_check_disabled_dead_unit_says_start_and_enable(monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run_unit_check(monkeypatch, "inactive-dead.txt")
    assert result.status is Status.FAIL
    assert {"systemctl start apache2.service", "systemctl enable apache2.service"} <= set(
        result.hint.commands)


def test_check_masked_unit_says_unmask(monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run_unit_check(monkeypatch, "masked.txt")
    assert result.status is Status.FAIL and "masked" in result.summary
    assert result.hint.commands[0] == "systemctl unmask lighttpd.service"


def test_check_missing_unit(monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run_unit_check(monkeypatch, "not-found.txt")
    assert result.status is Status.FAIL and "not installed" in result.summary


def test_check_skips_where_systemd_is_not_pid1(tmp_path: Path) -> None:
    from netcheck.checks import server as srv

    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "comm").write_text("sh\n")
    opts = ServerOptions(port=443, service="nginx.service", procfs=str(tmp_path))
    ctx = Context(None, opts, Facts())
    original = systemd.not_running_reason

    async def go() -> Any:
        return await srv.service_unit(ctx)

    try:
        systemd.not_running_reason = (  # type: ignore[assignment]
            lambda procfs="/proc", runtime_dir="": original(procfs, str(tmp_path / "none")))
        result = asyncio.run(go())
    finally:
        systemd.not_running_reason = original  # type: ignore[assignment]
    assert result.status is Status.SKIP and "PID 1 is sh" in result.summary
