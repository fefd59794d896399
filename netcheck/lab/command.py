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
from pathlib import Path
from typing import IO, Any, Optional

from netcheck.redact import mask_secrets, printable, shown

SCENARIO_FILE = "scenario"


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """The ``lab`` subcommand's own arguments."""
    sub = parser.add_subparsers(dest="lab_command", required=True)
    sub.add_parser("list", help="list the fault scenarios")
    up = sub.add_parser("up", help="build a lab and break it the scenario's way")
    up.add_argument("scenario", nargs="?")
    up.add_argument("--case", type=int, metavar="SEED",
                    help="build the fault campaign's case SEED instead (see docs/campaigns.md)")
    sub.add_parser("check", help="has the fault of the running lab been fixed?")
    sub.add_parser("down", help="remove the labs left running by `up`")
    camp = sub.add_parser("campaign", help="generated networks, one fault each, graded")
    camp.add_argument("--seed", type=int, default=1, help="first seed (default 1)")
    camp.add_argument("-n", "--count", type=int,
                      help="how many cases (default: the fixed set, every fault once)")
    camp.add_argument("--jobs", type=int, default=2, help="cases run at once (default 2)")
    camp.add_argument("--deadline", type=float, default=10.0,
                      help="netcheck's --deadline for every case (default 10)")
    camp.add_argument("--no-truth", action="store_true",
                      help="skip the independent probes that check each case's network")
    camp.add_argument("--json", metavar="FILE", help="also write every result to FILE")
    camp.add_argument("-v", "--verbose", action="store_true", help="a line for every case")


def run(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """Run one ``lab`` subcommand; returns the exit code."""
    from netcheck.lab.topology import LabError

    try:
        if args.lab_command == "list":
            return _list(out)
        if args.lab_command == "up":
            if (args.case is None) == (args.scenario is None):
                _usage("give a SCENARIO or --case SEED (not both)")
            if args.case is not None:
                return _up_case(args.case, out)
            return _up(args.scenario, out)
        if args.lab_command == "campaign":
            return _campaign(args, out)
        if args.lab_command == "check":
            return _check(out)
        return _down(out)
    except LabError as exc:
        # A LabError may quote a server's log or a tool's stderr: controls shown, not obeyed.
        err.write(f"netcheck lab: {printable(mask_secrets(str(exc)), keep_newlines=True)}\n")
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
        _write_scenario(lab, name)
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


def _up_case(seed: int, out: IO[str]) -> int:
    from netcheck.lab.campaign import build_lab, generate, support_problem

    if seed < 1:
        _usage("campaign seeds start at 1")
    problem = support_problem()
    if problem:
        _usage(f"cannot build the lab: {problem}")
    case = generate(seed)
    lab = build_lab(case, keep=True)
    _write_scenario(lab, f"case:{seed}")
    out.write(f"Case {case.describe()}\n")
    out.write(f"Fault: {case.fault.how}\n")
    out.write(f"Expected diagnosis: {case.expectation().text()}\n\n")
    out.write("Enter the client and diagnose:\n")
    out.write(f"  sudo ip netns exec {lab.ns('client')} bash\n")
    out.write(f"  netcheck {' '.join(case.argv())}\n\n")
    out.write("Fixed it?  netcheck lab check        Done?  netcheck lab down\n")
    return 0


def _campaign(args: argparse.Namespace, out: IO[str]) -> int:
    from netcheck.lab.campaign import CI_SEEDS, main_campaign, support_problem
    from netcheck.lab.topology import cleanup_stale

    count = len(CI_SEEDS) if args.count is None else args.count
    if args.seed < 1 or not 0 < count <= 100000 or not 0 < args.jobs <= 16:
        _usage("--seed starts at 1; --count 1..100000; --jobs 1..16")
    if not 0 < args.deadline <= 600:
        _usage("--deadline must be between 0 and 600 seconds")
    problem = support_problem()
    if problem:
        _usage(f"cannot build the lab: {problem}")
    cleanup_stale()
    return main_campaign(args.seed, count, args.jobs, args.deadline, not args.no_truth,
                         out, args.json, args.verbose)


def _case_argv(name: str) -> Optional[list[str]]:
    """netcheck's arguments for a lab that `up --case` made (``case:SEED``)."""
    if not name.startswith("case:") or not name[5:].isdigit():
        return None
    from netcheck.lab.campaign import generate

    return generate(int(name[5:])).argv()


def _write_scenario(lab: Any, text: str) -> None:
    """Name the scenario in the lab's directory (written as root: never through a link)."""
    from netcheck.safefile import open_for_write

    with open_for_write(Path(lab.state_dir) / SCENARIO_FILE, 0o644) as fh:
        fh.write(text.encode())


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
    argv = _case_argv(name)
    if (scenario is None and argv is None) or client is None:
        _usage(f"the running lab in {folder} is not one netcheck lab up made")
        return 3
    from types import SimpleNamespace

    if argv is None:
        argv = scenario.netcheck_argv(SimpleNamespace(state_dir=folder))
    from netcheck.lab.topology import python_argv

    proc = subprocess.run(["ip", "netns", "exec", client,
                           *python_argv("-m", "netcheck", *argv, "--format", "json")],
                          capture_output=True, text=True, timeout=60, check=False)
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        _usage(f"netcheck gave no report: {proc.stderr.strip()[:200]}")
        return 3
    if doc.get("verdict") == "ok":
        out.write(f"Fixed: {argv[0]} is reachable again, every layer passes.\n")
        return 0
    root = doc.get("root_cause") or {}
    out.write(f"Not fixed yet ({shown(str(doc.get('verdict')))}): {shown(str(root.get('code')))} "
              f"at layer {shown(str(root.get('layer')))}: {shown(str(root.get('summary')))}\n")
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
