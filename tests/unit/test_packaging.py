"""What `pip install .` ships: every package of the tree, listed by hand in pyproject.toml."""

from __future__ import annotations

from pathlib import Path

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_of_the_tree_is_shipped() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for p in (ROOT / "netcheck").rglob("__init__.py")}
    # checks/ is installed as netcheck.checks (package-dir), with its subpackages
    found |= {".".join(("netcheck", *p.parent.relative_to(ROOT).parts))
              for p in (ROOT / "checks").rglob("__init__.py")}
    assert found - listed == set(), "packages missing from pyproject.toml"
    assert listed - found == set(), "pyproject.toml lists packages that do not exist"
