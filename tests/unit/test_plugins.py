"""Third-party checks load through the same path as the built-in ones (entry points)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from netcheck import registry

PLUGIN = '''
from netcheck.model import Layer, passed
from netcheck.registry import check


@check("link.plugin_probe", Layer.LINK, codes=())
async def plugin_probe(ctx):
    """A third-party check."""
    return passed("plugin ran")
'''


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("NETCHECK_NO_PLUGINS", raising=False)
    yield tmp_path
    sys.modules.pop("netcheck_test_plugin", None)


def _install(site: Path, entry: str) -> None:
    dist = site / "netcheck_test_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "entry_points.txt").write_text(
        f"[console_scripts]\nother = x:y\n\n[netcheck.checks]\n{entry}\n")


def test_entry_point_check_is_loaded_next_to_the_builtins(site: Path) -> None:
    (site / "netcheck_test_plugin.py").write_text(PLUGIN)
    _install(site, "probe = netcheck_test_plugin")
    reg = registry.load()
    ids = [c.id for c in reg.checks]
    assert "link.plugin_probe" in ids and "network.gateway" in ids
    assert reg.warnings == []


def test_broken_plugin_is_a_warning_not_a_crash(site: Path) -> None:
    (site / "netcheck_test_plugin.py").write_text("raise RuntimeError('boom')\n")
    _install(site, "broken = netcheck_test_plugin")
    reg = registry.load()
    assert any("boom" in w for w in reg.warnings)
    assert "network.gateway" in [c.id for c in reg.checks]


def test_plugins_can_be_turned_off(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _install(site, "probe = netcheck_test_plugin")
    monkeypatch.setenv("NETCHECK_NO_PLUGINS", "1")
    assert registry._third_party_modules() == []


def test_only_the_netcheck_section_is_read() -> None:
    text = "[console_scripts]\na = b:c\n[netcheck.checks]\n# note\nx = pkg.mod:attr\n[other]\nq=r\n"
    assert registry._entry_points_in(text) == [("x", "pkg.mod:attr")]
