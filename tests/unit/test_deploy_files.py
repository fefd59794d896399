"""docs/deploy: the systemd unit and the Prometheus scrape config for ``netcheck serve``.

The unit's command line must be one ``netcheck serve`` accepts, its hardening must hold
(systemd's own exposure score, when systemd-analyze is here), and Prometheus must accept the
scrape config and send its probes to the address the unit listens on.
"""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from netcheck import cli

DEPLOY = Path(__file__).resolve().parents[2] / "docs" / "deploy"
UNIT = DEPLOY / "netcheck-serve.service"
SCRAPE = DEPLOY / "prometheus.yml"


def _service() -> configparser.SectionProxy:
    unit = configparser.ConfigParser(interpolation=None, strict=True)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    unit.read_string(UNIT.read_text())
    return unit["Service"]


def _serve_args() -> list[str]:
    argv = shlex.split(_service()["ExecStart"])
    assert Path(argv[0]).name == "netcheck" and argv[1] == "serve", argv
    return argv[1:]


def test_unit_command_line_is_one_netcheck_serve_accepts() -> None:
    args = cli.build_parser("serve").parse_args(_serve_args())
    assert args.command == "serve"


@pytest.mark.parametrize("key, value", [
    ("DynamicUser", "yes"), ("AmbientCapabilities", "CAP_NET_RAW"),
    ("CapabilityBoundingSet", "CAP_NET_RAW"), ("ProtectSystem", "strict"),
    ("NoNewPrivileges", "yes"), ("ProtectHome", "yes"), ("PrivateTmp", "yes")])
def test_unit_is_hardened(key: str, value: str) -> None:
    assert _service()[key] == value


def test_unit_exposure_is_low() -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed")
    proc = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(UNIT)],
                          capture_output=True, text=True, timeout=30, check=False)
    score = re.search(r"Overall exposure level for \S+: ([\d.]+)", proc.stdout)
    assert score is not None, proc.stdout + proc.stderr
    assert float(score.group(1)) <= 3.0, proc.stdout


def test_scrape_config_probes_through_the_units_listen_address() -> None:
    listen = _serve_args()[_serve_args().index("--listen") + 1]
    text = SCRAPE.read_text()
    assert text.count(f"replacement: {listen}") == 2 and f"targets: [{listen}]" in text
    assert text.count("target_label: __param_target") == 2


def test_prometheus_accepts_the_scrape_config() -> None:
    if shutil.which("promtool") is None:
        pytest.skip("promtool not installed")
    proc = subprocess.run(["promtool", "check", "config", "--syntax-only", str(SCRAPE)],
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
