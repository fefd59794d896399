"""``netcheck checks`` starts without the probes (issue 17: under 150 ms cold).

Not a timing test (timings belong to ``make bench``, cold-start row): what is imported decides
the start-up, and that does not depend on the machine's load. The command runs as the user
runs it (``python -m netcheck checks``, through ``cli.main``) in a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Each costs 15-120 ms at import (STYLE.md's measures) and none is needed to list the checks.
HEAVY = ("pyroute2", "dns", "rich", "psutil", "cryptography", "asyncio", "ssl",
         "concurrent.futures", "importlib.metadata")
# netcheck's own: the probes (and what a diagnosis builds) load when a check runs, not before.
NETCHECK_HEAVY_PREFIXES = ("netcheck.probes", "netcheck.facts", "netcheck.runner")

# main() leaves through os._exit (a stuck probe thread must not hold the process), so the
# module list is printed from there, after the listing and on a line of its own.
SCRIPT = """
import json, os, runpy, sys
leave = os._exit
def report(code):
    print("MODULES " + json.dumps(sorted(sys.modules)))
    sys.stdout.flush()
    leave(code)
os._exit = report
sys.argv = ["netcheck", "checks"]
runpy.run_module("netcheck", run_name="__main__")
"""


def _modules_of_checks_command() -> tuple[str, list[str]]:
    env = {**os.environ, "NETCHECK_NO_PLUGINS": "1"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=60, cwd=REPO, env=env, stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode == 0, proc.stderr
    listing, _, modules = proc.stdout.rpartition("MODULES ")
    return listing, json.loads(modules)


def test_netcheck_checks_imports_no_probe_and_nothing_heavy() -> None:
    listing, modules = _modules_of_checks_command()
    assert "transport.tcp" in listing and "netcheck.checks.network" in modules
    heavy = [m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY]
    own = [m for m in modules if m.startswith(NETCHECK_HEAVY_PREFIXES)]
    assert heavy == [], f"`netcheck checks` imports {heavy}"
    assert own == [], f"`netcheck checks` imports {own}: import them inside the check"

