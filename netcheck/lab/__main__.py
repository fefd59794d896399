"""Try the lab by hand: ``python -m netcheck.lab list | up SCENARIO [--wait] | down``.

``up`` builds a lab, breaks it the way the scenario says and leaves it running (servers
included) so you can diagnose it from the client namespace; ``down`` removes every lab left
running that way, and any lab whose creating process has died. With ``--wait`` the lab lives
only until you press Enter or Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from netcheck.lab.scenarios import SCENARIOS
from netcheck.lab.topology import Lab, LabError, cleanup_stale, describe, lab_support_problem


def _list() -> int:
    width = max(len(name) for name in SCENARIOS)
    for scenario in SCENARIOS.values():
        print(f"{scenario.name:<{width}}  {scenario.description}")
    return 0


def _up(name: str, wait: bool) -> int:
    scenario = SCENARIOS.get(name)
    if scenario is None:
        print(f"unknown scenario {name!r}; try: python -m netcheck.lab list", file=sys.stderr)
        return 2
    problem = lab_support_problem()
    if problem:
        print(f"cannot build the lab: {problem}", file=sys.stderr)
        return 2
    lab = Lab(keep=not wait)
    try:
        lab.build()
        scenario.apply(lab)
    except BaseException:
        lab.teardown()
        raise
    client = lab.ns("client")
    print(describe())
    print(f"scenario   {scenario.name}: {scenario.description}")
    print(f"symptom    {scenario.symptom}")
    print("namespaces " + " ".join(lab.namespaces.values()))
    print(f"built in   {lab.build_seconds:.2f} s; logs in {lab.state_dir}")
    print("\nDiagnose it from the client:")
    print(f"  ip netns exec {client} {sys.executable} -m netcheck "
          f"{' '.join(scenario.netcheck_argv())}")
    print(f"  ip netns exec {client} bash      # a shell on the client (ping, ip, dig, ssh...)")
    if not wait:
        print("\nWhen done:  python -m netcheck.lab down")
        return 0
    try:
        input("\nPress Enter (or Ctrl-C) to tear the lab down... ")
    except (KeyboardInterrupt, EOFError):
        print()
    finally:
        lab.teardown()
    return 0


def _down() -> int:
    removed = cleanup_stale(include_kept=True)
    print(f"removed {len(removed)} namespaces" + (": " + " ".join(removed) if removed else ""))
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point of ``python -m netcheck.lab``."""
    parser = argparse.ArgumentParser(prog="python -m netcheck.lab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the fault scenarios")
    up = sub.add_parser("up", help="build a lab and apply one scenario")
    up.add_argument("scenario")
    up.add_argument("--wait", action="store_true",
                    help="stay in the foreground and tear down on Enter / Ctrl-C")
    sub.add_parser("down", help="remove labs left running by `up` and by dead processes")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            return _list()
        if args.command == "up":
            return _up(args.scenario, args.wait)
        return _down()
    except LabError as exc:
        print(f"netcheck.lab: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
