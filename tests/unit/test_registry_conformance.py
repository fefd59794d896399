"""Conformance over every loaded check (sosreport's idea): the declarations are data, so check
them all at once — ids, layers, titles, requirements and the codes the contract promises.

Also: the loader stays light (no heavy imports) and a broken third-party plugin is a warning.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from netcheck import registry
from netcheck.model import Layer, Result, passed
from netcheck.registry import Check
from netcheck.runner import _topological

REPO = Path(__file__).resolve().parents[2]
# The repo's own docs first; CI keeps the shared contract beside the repo (../shared).
CONTRACT_PATHS = (REPO / "docs" / "contract.md", REPO.parent / "shared" / "CONTRACT.md")

ID_PATTERN = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$")
# The layer each id prefix belongs to. A new family of checks adds its prefix here.
FAMILY_LAYER = {
    "physical": Layer.PHYSICAL,
    "link": Layer.LINK,
    "network": Layer.NETWORK,
    "dns": Layer.NETWORK,
    "transport": Layer.TRANSPORT,
    "tls": Layer.PRESENTATION,
    "app": Layer.APPLICATION,
    "http": Layer.APPLICATION,
}
HEAVY_MODULES = ("rich", "pyroute2", "dns", "psutil")


def _contract_text() -> str:
    for path in CONTRACT_PATHS:
        if path.is_file():
            return path.read_text(encoding="utf-8")
    pytest.fail(f"no contract found at {', '.join(map(str, CONTRACT_PATHS))}")


def contract_codes() -> dict[str, int]:
    """Problem code -> layer, from the contract's problem-code table(s).

    Handles both layouts: one table with a ``layer`` column, or one table per
    ``### Layer N`` heading.
    """
    codes: dict[str, int] = {}
    in_section = False
    layer = 0
    for line in _contract_text().splitlines():
        if line.startswith("## "):
            in_section = line.strip().lower() == "## problem codes"
            continue
        if not in_section:
            continue
        heading = re.match(r"^###\s+Layer\s+(\d)", line)
        if heading:
            layer = int(heading.group(1))
            continue
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        row_layer, code_cell = layer, cells[0]
        if cells[0].isdigit() and len(cells) > 1:
            row_layer, code_cell = int(cells[0]), cells[1]
        for code in re.findall(r"`([A-Z][A-Z0-9_]+)`", code_cell):
            codes[code] = row_layer
    return codes


@pytest.fixture(scope="module")
def checks() -> list[Check]:
    reg = registry.load(third_party=False)
    assert reg.checks, "no checks loaded"
    return reg.checks


# -- the contract table itself -------------------------------------------------------------

def test_contract_table_parses() -> None:
    codes = contract_codes()
    assert len(codes) >= 40
    for code in ("NIC_MISSING", "LINK_NO_CARRIER", "GATEWAY_UNREACHABLE", "TCP_REFUSED",
                 "TLS_CERT_EXPIRED", "IMAP_REJECTED", "WIFI_RFKILL_HARD", "SRV_LOG_ERRORS"):
        assert code in codes
    assert codes["NIC_MISSING"] == 1
    assert codes["DNS_NXDOMAIN"] == 3
    assert codes["TLS_CERT_EXPIRED"] == 6
    assert codes["SRV_NOT_LISTENING"] == 4


# -- every check -----------------------------------------------------------------------------

def test_ids_are_unique(checks: list[Check]) -> None:
    ids = [c.id for c in checks]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def test_ids_are_family_dot_subject(checks: list[Check]) -> None:
    bad = [c.id for c in checks if not ID_PATTERN.match(c.id)]
    assert not bad


def test_each_check_has_a_layer(checks: list[Check]) -> None:
    for c in checks:
        assert isinstance(c.layer, Layer), c.id


def test_id_prefix_matches_the_layer(checks: list[Check]) -> None:
    for c in checks:
        family = c.id.split(".")[0]
        assert family in FAMILY_LAYER, f"{c.id}: unknown family {family!r}; add it to FAMILY_LAYER"
        assert c.layer == FAMILY_LAYER[family], f"{c.id} is declared at layer {int(c.layer)}"


def test_each_check_has_a_docstring_whose_first_line_is_a_title(checks: list[Check]) -> None:
    for c in checks:
        doc = (c.run.__doc__ or "").strip()
        assert doc, f"{c.id} has no docstring"
        first = doc.splitlines()[0].strip()
        assert c.title == first.rstrip("."), c.id
        assert c.title != c.id, c.id
        assert first[0].isupper(), f"{c.id}: title {first!r} should start with a capital"
        assert 3 <= len(c.title) <= 60, f"{c.id}: title {c.title!r}"


def test_requirements_resolve_to_loaded_checks(checks: list[Check]) -> None:
    ids = {c.id for c in checks}
    for c in checks:
        missing = [r for r in c.requires if r not in ids]
        assert not missing, f"{c.id} requires unknown {missing}"
        assert c.id not in c.requires, f"{c.id} requires itself"


def test_requirements_have_no_cycle(checks: list[Check]) -> None:
    order = [c.id for c in _topological(checks)]
    assert sorted(order) == sorted(c.id for c in checks)
    for c in checks:
        for req in c.requires:
            assert order.index(req) < order.index(c.id), f"{req} must come before {c.id}"


def test_requirements_point_down_or_across_the_ladder(checks: list[Check]) -> None:
    by_id = {c.id: c for c in checks}
    for c in checks:
        for req in c.requires:
            assert by_id[req].layer <= c.layer, f"{c.id} (L{int(c.layer)}) requires {req}"


def test_every_code_is_in_the_contract(checks: list[Check]) -> None:
    known = contract_codes()
    for c in checks:
        unknown = [code for code in c.codes if code not in known]
        assert not unknown, f"{c.id} emits codes missing from the contract: {unknown}"


def test_every_code_belongs_to_the_checks_layer(checks: list[Check]) -> None:
    known = contract_codes()
    for c in checks:
        for code in c.codes:
            assert known.get(code) == int(c.layer), (
                f"{c.id} (L{int(c.layer)}) emits {code}, a layer-{known.get(code)} code")


def test_modes_are_known(checks: list[Check]) -> None:
    for c in checks:
        assert c.modes and set(c.modes) <= {"diagnose", "server"}, c.id


def test_registry_is_in_ladder_order(checks: list[Check]) -> None:
    # The registry's order is the ladder: by layer, then as declared.
    keys = [(int(c.layer), c.order) for c in checks]
    assert keys == sorted(keys)


def test_topological_rejects_a_cycle() -> None:
    async def run(ctx: object) -> Result:
        """Synthetic."""
        return passed("ok")

    a = Check("test.a", Layer.LINK, run, requires=("test.b",))  # type: ignore[arg-type]
    b = Check("test.b", Layer.LINK, run, requires=("test.a",))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cycle"):
        _topological([a, b])


# -- loading stays light ---------------------------------------------------------------------

def _modules_after(code: str) -> list[str]:
    script = (
        "import json, sys\n"
        f"{code}\n"
        f"print(json.dumps([m for m in {HEAVY_MODULES!r} if m in sys.modules]))\n"
    )
    env = {**os.environ, "NETCHECK_NO_PLUGINS": "1"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_importing_the_cli_and_loading_the_registry_stays_light() -> None:
    heavy = _modules_after("import netcheck.cli\nfrom netcheck import registry\nregistry.load()")
    assert heavy == []


def test_listing_the_checks_stays_light() -> None:
    heavy = _modules_after(
        "import io\nfrom netcheck.cli import run\n"
        "assert run(['checks'], out=io.StringIO(), err=io.StringIO()) == 0")
    assert heavy == []


# -- third-party plugins ----------------------------------------------------------------------

def test_broken_plugin_is_a_warning_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_third_party_modules",
                        lambda: [("broken", "netcheck_no_such_module")])
    reg = registry.load()
    assert any("broken" in w and "netcheck_no_such_module" in w for w in reg.warnings)
    assert reg.checks  # the built-in checks are all still there
    assert {c.id for c in reg.checks} == {c.id for c in registry.load(third_party=False).checks}


def test_plugin_raising_on_import_is_a_warning(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    (tmp_path / "netcheck_plugin_that_raises.py").write_text(
        "raise RuntimeError('plugin exploded')\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_third_party_modules",
                        lambda: [("exploding", "netcheck_plugin_that_raises:checks")])
    reg = registry.load()
    assert any("exploding" in w and "plugin exploded" in w for w in reg.warnings), reg.warnings
    assert "\n" not in "".join(reg.warnings)


def test_broken_plugin_warning_reaches_stderr_of_checks(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    from io import StringIO

    from netcheck.cli import run

    monkeypatch.setattr(registry, "_third_party_modules",
                        lambda: [("broken", "netcheck_no_such_module")])
    out = StringIO()
    assert run(["checks"], out=out, err=StringIO()) == 0
    assert "L1 Physical" in out.getvalue()
    assert "netcheck: warning:" in capsys.readouterr().err


def test_no_plugins_variable_turns_third_party_loading_off(monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    monkeypatch.setenv("NETCHECK_NO_PLUGINS", "1")
    assert registry._third_party_modules() == []


def test_third_party_modules_is_a_list_of_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NETCHECK_NO_PLUGINS", raising=False)
    found = registry._third_party_modules()
    assert isinstance(found, list)
    assert all(isinstance(name, str) and isinstance(value, str) for name, value in found)
