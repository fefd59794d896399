"""The hand-written entry-point reader finds what importlib.metadata finds (issue 17).

netcheck reads ``entry_points.txt`` itself because importing importlib.metadata costs more
than the whole reader (measured in the registry's docstring); these tests hold the two to
the same answer on a site that has the cases where they could differ.
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import pytest

from netcheck import registry


def _dist(folder: Path, stem: str, body: str) -> None:
    info = folder / f"{stem}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {stem.split('-')[0]}\n"
                                   "Version: 1\n")
    (info / "entry_points.txt").write_text(body)


def _by_metadata() -> list[tuple[str, str]]:
    return [(ep.name, ep.value.split()[0])
            for ep in importlib.metadata.entry_points(group=registry.ENTRY_POINT_GROUP)]


@pytest.fixture
def two_sites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    monkeypatch.setattr(sys, "path", [str(first), str(second)])
    monkeypatch.delenv("NETCHECK_NO_PLUGINS", raising=False)
    return first, second


def test_first_distribution_on_the_path_wins_whatever_its_spelling(
        two_sites: tuple[Path, Path]) -> None:
    first, second = two_sites
    # One project, spelled two ways (PEP 503 names): only the first on sys.path counts.
    _dist(first, "Acme_Checks-2.0", "[netcheck.checks]\nnew = acme.new:checks\n")
    _dist(second, "acme.checks-1.0", "[netcheck.checks]\nold = acme.old\n")
    _dist(second, "other-1.0", "[netcheck.checks]\n# a comment\nextra = other.mod:x [fast]\n"
                               "[console_scripts]\nnot = this:one\n")
    found = sorted(registry._third_party_modules())
    assert found == sorted(_by_metadata())
    assert found == [("extra", "other.mod:x"), ("new", "acme.new:checks")]


def test_loading_the_checks_never_imports_importlib_metadata() -> None:
    # The reason the reader exists (30-60 ms measured, see registry._third_party_modules): a
    # deterministic stand-in for a timing test, which a loaded machine would make flaky.
    import subprocess

    code = ("import sys; from netcheck import registry; registry.load(); "
            "print(sorted(m for m in sys.modules if m.startswith('importlib.metadata')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    assert proc.stdout.strip() == "[]", proc.stdout
