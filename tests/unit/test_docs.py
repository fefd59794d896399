"""The docs tell the truth: the checks page is the registry, the README commands exist."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_checks_page_is_generated_from_the_registry() -> None:
    spec = importlib.util.spec_from_file_location("gen", ROOT / "tools" / "gen_checks_doc.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    page = (ROOT / "docs" / "checks.md").read_text()
    assert page == gen.render(), "docs/checks.md is stale: python tools/gen_checks_doc.py"


def test_readme_shows_the_two_commands_and_makefile_has_them() -> None:
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for target in ("test", "demo", "bench"):
        assert f"make {target}" in readme
        assert f"\n{target}:" in makefile
