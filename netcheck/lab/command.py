"""``netcheck lab list | up SCENARIO | check | down``: break-and-fix exercises for students.

``up`` builds the namespace lab, breaks it the scenario's way and leaves it running; the
student enters the client (``ip netns exec … bash``), finds the fault and repairs it with
ordinary tools; ``check`` runs netcheck in the client and says whether the network is
healthy again; ``down`` removes the lab. The scenarios are the test suite's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import IO, Any, Optional

SCENARIO_FILE = "scenario"


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """The ``lab`` subcommand's own arguments."""
    sub = parser.add_subparsers(dest="lab_command", required=True)
    sub.add_parser("list", help="list the fault scenarios")
    up = sub.add_parser("up", help="build a lab and break it the scenario's way")
    up.add_argument("scenario")
    sub.add_parser("check", help="has the fault of the running lab been fixed?")
    sub.add_parser("down", help="remove the labs left running by `up`")


def run(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """Run one ``lab`` subcommand; returns the exit code."""
    from netcheck.lab.topology import LabError

    try:
        if args.lab_command == "list":
            return _list(out)
        if args.lab_command == "up":
            return _up(args.scenario, out)
        if args.lab_command == "check":
            return _check(out)
        return _down(out)
    except LabError as exc:
        err.write(f"netcheck lab: {exc}\n")
        return 3


def _list(out: IO[str]) -> int:
    from netcheck.lab.scenarios import SCENARIOS

    width = max(len(name) for name in SCENARIOS)
    for scenario in SCENARIOS.values():
        out.write(f"{scenario.name:<{width}}  {scenario.description}\n")
    return 0


def _usage(message: str) -> None:
    from netcheck.cli import UsageError

    raise UsageError(message)


def _up(name: str, out: IO[str]) -> int:
    from netcheck.lab.scenarios import SCENARIOS
    from netcheck.lab.topology import Lab, lab_support_problem

    scenario = SCENARIOS.get(name)
    if scenario is None:
        _usage(f"unknown scenario {name[:40]!r}; see: netcheck lab list")
        return 3
    problem = lab_support_problem()
    if problem:
        _usage(f"cannot build the lab: {problem}")
    lab = Lab(keep=True)
    try:
        lab.build()
        scenario.apply(lab)
        (Path(lab.state_dir) / SCENARIO_FILE).write_text(name)
    except BaseException:
        lab.teardown()
        raise
    role = getattr(scenario, "role", "client")
    host = lab.ns(role)
    out.write(f"Scenario {scenario.name}: {scenario.description}\n")
    out.write(f"Symptom: {scenario.symptom}\n\n")
    out.write(f"Enter the {role} and find the fault (ip, ping, dig, ss, nft, netcheck...):\n")
    out.write(f"  sudo ip netns exec {host} bash\n")
    out.write(f"  netcheck {' '.join(scenario.netcheck_argv(lab))}\n\n")
    out.write("Fixed it?  netcheck lab check        Done?  netcheck lab down\n")
    return 0


def _running_labs() -> list[tuple[Path, dict[str, Any]]]:
    from netcheck.lab.topology import STATE_ROOT

    found = []
    root = STATE_ROOT
    for state in sorted(root.glob("*/state.json"), key=lambda p: p.stat().st_mtime):
        try:
            data = json.loads(state.read_text())
        except (OSError, ValueError):
            continue
        if data.get("keep") and (state.parent / SCENARIO_FILE).exists():
            found.append((state.parent, data))
    return found


def _check(out: IO[str]) -> int:
    from netcheck.lab.scenarios import SCENARIOS

    labs = _running_labs()
    if not labs:
        _usage("no lab is running: start one with netcheck lab up SCENARIO")
    folder, state = labs[-1]
    name = (folder / SCENARIO_FILE).read_text().strip()
    scenario = SCENARIOS.get(name)
    role = getattr(scenario, "role", "client")
    client = _namespace(state, role)
    if scenario is None or client is None:
        _usage(f"the running lab in {folder} is not one netcheck lab up made")
        return 3
    from types import SimpleNamespace

    argv = scenario.netcheck_argv(SimpleNamespace(state_dir=folder))
    proc = subprocess.run(["ip", "netns", "exec", client, sys.executable, "-m", "netcheck",
                           *argv, "--format", "json"],
                          capture_output=True, text=True, timeout=60, check=False)
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        _usage(f"netcheck gave no report: {proc.stderr.strip()[:200]}")
        return 3
    if doc.get("verdict") == "ok":
        out.write(f"Fixed: {scenario.target} is reachable again, every layer passes.\n")
        return 0
    root = doc.get("root_cause") or {}
    out.write(f"Not fixed yet ({doc.get('verdict')}): {root.get('code')} at layer "
              f"{root.get('layer')}: {root.get('summary')}\n")
    return 1


def _namespace(state: dict[str, Any], role: str) -> Optional[str]:
    namespaces = state.get("namespaces")
    if isinstance(namespaces, dict):
        return namespaces.get(role)
    if isinstance(namespaces, list):
        return next((n for n in namespaces if str(n).endswith(f"-{role}")), None)
    return None


def _down(out: IO[str]) -> int:
    from netcheck.lab.topology import cleanup_stale

    removed = cleanup_stale(include_kept=True)
    out.write(f"removed {len(removed)} namespaces\n")
    return 0
