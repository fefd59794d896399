"""The lab runs as root: what it starts and what it writes must not be steerable by others.

Two attacks, for real. A directory anyone can write holds a planted ``netcheck`` package (and a
``socket.py``) that would leave a marker when imported; the lab is built and its helpers run
from there: the marker must never appear. And links planted where the lab writes its files
point at a file that must stay as it was.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from netcheck.lab import nginx, scenarios_app
from netcheck.lab.topology import Lab, LabError, python_argv

PLANTED = ("netcheck/__init__.py", "netcheck/__main__.py", "netcheck/lab/__init__.py",
           "netcheck/lab/servers.py", "netcheck/lab/appserver.py", "socket.py")


@pytest.fixture
def hostile_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A world-writable directory with a planted netcheck package, made the current one."""
    marker = tmp_path / "marker"
    planted = tmp_path / "shared"
    for name in PLANTED:
        path = planted / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"open({str(marker)!r}, 'a').write(__name__ + '\\n')\n"
                        "raise SystemExit('planted code ran')\n")
    for directory in (planted, planted / "netcheck", planted / "netcheck" / "lab"):
        directory.chmod(0o777)
    monkeypatch.chdir(planted)
    return marker


def test_helpers_started_from_a_shared_directory_never_import_from_it(
        hostile_cwd: Path) -> None:
    lab = Lab()
    try:
        lab.build()  # the TCP and DNS servers: python -m netcheck.lab.servers
        scenarios_app.start_services(lab, scenarios_app.WEB_HTTP)  # -m appserver
        assert nginx.connect_from_server(lab, "198.18.2.10", 22)  # python -c "import socket"
        # A helper written the plain way still goes through the lab's isolation.
        plain = lab.exec("server", [sys.executable, "-c", "import socket, netcheck"])
        assert plain.returncode == 0, plain.stderr
    finally:
        lab.teardown()
        assert not hostile_cwd.exists(), f"planted code ran as root: {hostile_cwd.read_text()}"


def test_netcheck_run_the_way_the_lab_runs_it_resolves_the_installed_package(
        hostile_cwd: Path) -> None:
    # `netcheck lab check` and the campaign start `python -I -m netcheck`: the editable install
    # (checks mapped from the top-level checks/ included) must still resolve.
    proc = subprocess.run(python_argv("-m", "netcheck", "checks"), capture_output=True,
                          text=True, timeout=30, env={**os.environ, "PYTHONPATH": "."})
    assert proc.returncode == 0, proc.stderr
    assert "transport.tcp" in proc.stdout
    assert not hostile_cwd.exists()


def _prepared_lab(tmp_path: Path, links: dict[str, Path]) -> Lab:
    """A lab whose directory exists before the build, with ``links`` planted in it."""
    lab = Lab()
    lab.state_dir.mkdir(parents=True)
    for name, target in links.items():
        (lab.state_dir / name).symlink_to(target)
    return lab


def test_links_at_the_labs_temporary_names_are_never_written_through(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    canary.write_text("precious\n")
    # The names the lab used for write-then-rename: predictable, so plantable.
    lab = _prepared_lab(tmp_path, {name: canary for name in (
        "state.json.tmp", "dns-mode.tmp", "tcp.ready.tmp", "dns.ready.tmp")})
    try:
        lab.build()
        lab.set_dns_mode("refused")
    finally:
        lab.teardown()
    assert canary.read_text() == "precious\n"


def test_a_link_where_the_lab_writes_a_file_is_refused(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    canary.write_text("precious\n")
    lab = _prepared_lab(tmp_path, {"client.batch": canary})
    try:
        with pytest.raises((LabError, OSError), match="symbolic link"):
            lab.build()
    finally:
        lab.teardown()
    assert canary.read_text() == "precious\n"


def test_a_client_file_link_is_refused(tmp_path: Path, lab: Lab) -> None:
    canary = tmp_path / "canary"
    canary.write_text("precious\n")
    hosts = Path("/etc/netns") / lab.ns("client") / "hosts"
    hosts.unlink()
    hosts.symlink_to(canary)
    with pytest.raises(OSError, match="symbolic link"):
        lab.write_client_file("hosts", "198.18.2.10 www.lab.test\n")
    assert canary.read_text() == "precious\n"


def test_a_lab_directory_others_may_write_is_refused(tmp_path: Path) -> None:
    lab = Lab()
    lab.state_dir.mkdir(parents=True)
    lab.state_dir.chmod(0o777)
    try:
        with pytest.raises(LabError, match="only it may write"):
            lab.build()
    finally:
        lab.teardown()
