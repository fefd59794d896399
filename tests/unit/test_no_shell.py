"""No subprocess ever runs through a shell: the source never asks for one."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = re.compile(r"shell\s*=\s*True|os\.system\(|os\.popen\(|subprocess\.getoutput|"
                       r"create_subprocess_shell|commands\.getoutput")


def test_no_shell_anywhere_in_the_code() -> None:
    offenders = []
    for folder in ("netcheck", "checks", "tools", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if FORBIDDEN.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert offenders == []
