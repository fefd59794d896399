"""Shell completions and the man page match netcheck's parsers, and work (issue 17).

The committed files under share/ are what ``pip install .`` installs; the generator
(tools/gen_completions.py) rebuilds them from the parsers, so a parser change without a
regeneration fails here. Bash completion runs for real in bash; zsh, fish and groff check
their files when installed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


sys.path.insert(0, str(REPO / "tools"))
import gen_completions as GEN  # noqa: E402  (tools/ is not a package)


@pytest.mark.parametrize("kind", ["bash", "zsh", "fish", "man"])
def test_committed_file_matches_the_parsers(kind: str) -> None:
    path = GEN.OUTPUTS[kind]
    assert path.read_text() == GEN.render_all()[kind], (
        f"{path.relative_to(REPO)} is stale: run python tools/gen_completions.py")


def test_every_command_and_option_is_offered() -> None:
    root = GEN.model()
    bash_text = GEN.render_all()["bash"]
    assert {c.name for c in root.subcommands} >= {"diagnose", "checks", "batch", "serve"}
    for command in root.subcommands:
        for opt in command.options:
            for flag in opt.flags:
                assert f" {flag}" in bash_text or f'"{flag}' in bash_text, (command.name, flag)


def test_pyproject_installs_every_generated_file() -> None:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    installed = {f for files in data["data-files"].values() for f in files}
    assert installed == {str(p.relative_to(REPO)) for p in GEN.OUTPUTS.values()}
    for folder, files in data["data-files"].items():
        assert all(str(Path(f).parent) == folder for f in files)


def _bash_complete(*words: str) -> list[str]:
    """What bash offers after ``netcheck WORDS`` (the last word is the one being typed)."""
    script = GEN.OUTPUTS["bash"]
    line = " ".join(["netcheck", *words])
    program = (f'source "{script}"; COMP_WORDS=({line}); COMP_CWORD={len(words)}; '
               '_netcheck; printf "%s\\n" "${COMPREPLY[@]}"')
    proc = subprocess.run(["bash", "--norc", "-c", program], capture_output=True, text=True,
                          check=True, timeout=10)
    return [w for w in proc.stdout.splitlines() if w]


def test_bash_completes_commands_options_and_values() -> None:
    assert _bash_complete("la") == ["lab"]
    assert "--portal-url" in _bash_complete("diagnose", "--po")
    assert _bash_complete("checks", "--format", "js") == ["json"]
    assert _bash_complete("lab", "camp") == ["campaign"]


@pytest.mark.parametrize("shell, flag", [("zsh", "-n"), ("fish", "--no-execute")])
def test_shell_parses_its_file(shell: str, flag: str) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} not installed")
    subprocess.run([shell, flag, str(GEN.OUTPUTS[shell])], check=True, timeout=10)


def test_man_page_renders_without_warnings() -> None:
    if shutil.which("groff") is None:
        pytest.skip("groff not installed")
    proc = subprocess.run(["groff", "-man", "-ww", "-z", str(GEN.OUTPUTS["man"])],
                          capture_output=True, text=True, timeout=10, check=False)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
