"""``netcheck lab list | up SCENARIO | check | down``: break-and-fix exercises for students.

``up`` builds the namespace lab, breaks it the scenario's way and leaves it running; the
student enters the client (the banner prints the exact command, with netcheck on PATH), finds
the fault and repairs it with ordinary tools; ``check`` runs netcheck in the client and says
whether the network is healthy again — and, once it is, what was broken; ``down`` removes the
lab. The scenarios are the test suite's.

Nothing printed before the fault is fixed gives it away: ``lab list`` and ``up`` say what a
student would meet, ``up --exercise`` only the symptom; the answer comes with ``check`` after
the repair, or with ``up --spoil``.

``campaign`` runs generated networks, one fault each, and grades netcheck's answers
(docs/campaigns.md); ``up --case SEED`` rebuilds one of its cases for a developer, who is
told the fault and the expected diagnosis at once.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import IO, Any, Optional

from netcheck.i18n import _, ngettext
from netcheck.redact import mask_secrets, printable, shown

SCENARIO_FILE = "scenario"
# The PATH a root shell gets on Debian, after the directory netcheck itself is installed in.
SYSTEM_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """The ``lab`` subcommand's own arguments."""
    sub = parser.add_subparsers(dest="lab_command", required=True)
    sub.add_parser("list", help="list the fault scenarios")
    up = sub.add_parser("up", help="build a lab and break it the scenario's way")
    up.add_argument("scenario", nargs="?")
    up.add_argument("--case", type=int, metavar="SEED",
                    help="build the fault campaign's case SEED instead (see docs/campaigns.md)")
    shown_part = up.add_mutually_exclusive_group()
    shown_part.add_argument("--exercise", action="store_true",
                            help="say only the symptom (the answer comes with lab check)")
    shown_part.add_argument("--spoil", action="store_true",
                            help="also say what is broken and how to repair it")
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
                _usage(_("give a SCENARIO or --case SEED (not both)"))
            if args.case is not None:
                return _up_case(args.case, out)
            shows = "exercise" if args.exercise else "spoil" if args.spoil else "normal"
            return _up(args.scenario, out, shows)
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
    """Every scenario with what a student meets there (never its fault), fit to the width."""
    import textwrap

    from netcheck.lab.scenarios import SCENARIOS
    from netcheck.render import columns

    width = max(len(name) for name in SCENARIOS)
    room = columns(out)
    for scenario in SCENARIOS.values():
        line = f"{scenario.name:<{width}}  {scenario.teaser}"
        out.write("\n".join(textwrap.wrap(line, room, subsequent_indent=" " * (width + 2),
                                          break_long_words=False, break_on_hyphens=False))
                  + "\n")
    return 0


def netcheck_bindir() -> Optional[str]:
    """The directory of the ``netcheck`` command this Python runs (a venv's bin), if any."""
    beside = Path(sys.executable).parent / "netcheck"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside.parent)
    found = shutil.which("netcheck")
    return str(Path(found).parent) if found else None


def netcheck_command() -> list[str]:
    """How to run netcheck inside a namespace entered with :func:`enter_argv`."""
    return ["netcheck"] if netcheck_bindir() else [sys.executable, "-m", "netcheck"]


def enter_argv(namespace: str) -> list[str]:
    """The command that opens a shell in ``namespace`` with netcheck on its PATH.

    The PATH is written out in full (nothing for the shell to expand: it pastes the same in
    any shell), and ``sudo`` comes first when the lab was built through sudo.
    """
    bindir = netcheck_bindir()
    path = ":".join(dict.fromkeys([*([bindir] if bindir else []), *SYSTEM_PATH]))
    argv = ["ip", "netns", "exec", namespace, "env", f"PATH={path}", "bash"]
    if os.geteuid() != 0 or os.environ.get("SUDO_USER"):
        argv.insert(0, "sudo")
    return argv


def did_you_mean(name: str, known: Any) -> str:
    """``unknown scenario 'x'`` with the closest names, for a usage error."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    text = _("unknown scenario {name}").format(name=repr(shown(name[:40])))
    if close:
        text += ": " + _("did you mean {names}?").format(names=", ".join(close))
    return text + " " + _("(netcheck lab list shows them all)")


def _enter_lines(lab_ns: Any, out: IO[str]) -> None:
    """How to enter the client and the server, as commands to paste."""
    for role, text in (("client", _("Enter the client:")), ("server", _("Enter the server:"))):
        out.write(f"{text}\n  {shlex.join(enter_argv(lab_ns(role)))}\n")


def _usage(message: str) -> None:
    from netcheck.cli import UsageError

    raise UsageError(message)


def _up(name: str, out: IO[str], shows: str = "normal") -> int:
    from netcheck.lab.scenarios import SCENARIOS
    from netcheck.lab.topology import Lab, lab_support_problem

    scenario = SCENARIOS.get(name)
    if scenario is None:
        _usage(did_you_mean(name, SCENARIOS))
        return 3
    problem = lab_support_problem()
    if problem:
        _usage(_("cannot build the lab: {problem}").format(problem=problem))
    lab = Lab(keep=True)
    try:
        lab.build()
        scenario.apply(lab)
        _write_scenario(lab, name)
    except BaseException:
        lab.teardown()
        raise
    role = getattr(scenario, "role", "client")
    if shows != "exercise" and scenario.teaser != scenario.symptom:
        out.write(_("Scenario {name}: {description}").format(
            name=scenario.name, description=scenario.teaser) + "\n")
    out.write(_("Symptom: {symptom}").format(symptom=scenario.symptom) + "\n")
    if shows == "spoil":
        out.write(_("Fault: {answer}").format(answer=scenario.answer) + "\n")
    out.write("\n")
    _enter_lines(lab.ns, out)
    out.write(_("Then, in the {role}, find the fault (ip, ping, dig, ss, nft, netcheck...):")
              .format(role=_("client") if role == "client" else _("server")) + "\n")
    out.write(f"  {shlex.join([*netcheck_command(), *scenario.netcheck_argv(lab)])}\n\n")
    out.write(_("Fixed it?  netcheck lab check        Done?  netcheck lab down") + "\n")
    return 0


def _up_case(seed: int, out: IO[str]) -> int:
    from netcheck.lab.campaign import build_lab, generate, support_problem

    if seed < 1:
        _usage(_("campaign seeds start at 1"))
    problem = support_problem()
    if problem:
        _usage(_("cannot build the lab: {problem}").format(problem=problem))
    case = generate(seed)
    lab = build_lab(case, keep=True)
    _write_scenario(lab, f"case:{seed}")
    out.write(_("Case {case}").format(case=case.describe()) + "\n")
    out.write(_("Fault: {answer}").format(answer=case.fault.how) + "\n")
    out.write(_("Expected diagnosis: {expected}").format(expected=case.expectation().text())
              + "\n\n")
    _enter_lines(lab.ns, out)
    out.write(_("Then, in the {role}, find the fault (ip, ping, dig, ss, nft, netcheck...):")
              .format(role=_("client")) + "\n")
    out.write(f"  {shlex.join([*netcheck_command(), *case.argv()])}\n\n")
    out.write(_("Fixed it?  netcheck lab check        Done?  netcheck lab down") + "\n")
    return 0


def _campaign(args: argparse.Namespace, out: IO[str]) -> int:
    from netcheck.lab.campaign import CI_SEEDS, main_campaign, support_problem
    from netcheck.lab.topology import cleanup_stale

    count = len(CI_SEEDS) if args.count is None else args.count
    if args.seed < 1 or not 0 < count <= 100000 or not 0 < args.jobs <= 16:
        _usage(_("--seed starts at 1; --count 1..100000; --jobs 1..16"))
    if not 0 < args.deadline <= 600:
        _usage(_("--deadline must be between 0 and 600 seconds"))
    problem = support_problem()
    if problem:
        _usage(_("cannot build the lab: {problem}").format(problem=problem))
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
        _usage(_("no lab is running: start one with netcheck lab up SCENARIO"))
    folder, state = labs[-1]
    name = (folder / SCENARIO_FILE).read_text().strip()
    scenario = SCENARIOS.get(name)
    role = getattr(scenario, "role", "client")
    client = _namespace(state, role)
    argv = _case_argv(name)
    if (scenario is None and argv is None) or client is None:
        _usage(_("the running lab in {folder} is not one netcheck lab up made").format(
            folder=folder))
        return 3
    from types import SimpleNamespace

    if argv is None:
        argv = scenario.netcheck_argv(SimpleNamespace(state_dir=folder))
    from netcheck.i18n import get_language
    from netcheck.lab.topology import python_argv

    proc = subprocess.run(["ip", "netns", "exec", client,
                           *python_argv("-m", "netcheck", *argv, "--format", "json",
                                        "--lang", get_language())],
                          capture_output=True, text=True, timeout=60, check=False)
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        _usage(_("netcheck gave no report: {error}").format(error=proc.stderr.strip()[:200]))
        return 3
    if doc.get("verdict") == "ok":
        out.write(_("Fixed: {target} is reachable again, every layer passes.").format(
            target=argv[0]) + "\n")
        if scenario is not None and scenario.answer:
            out.write(_("What was broken: {answer}").format(answer=scenario.answer) + "\n")
        return 0
    root = doc.get("root_cause") or {}
    out.write(_("Not fixed yet ({verdict}): {code} at layer {layer}: {summary}").format(
        verdict=shown(str(doc.get("verdict"))), code=shown(str(root.get("code"))),
        layer=shown(str(root.get("layer"))), summary=shown(str(root.get("summary")))) + "\n")
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
    out.write(ngettext("removed {n} namespace", "removed {n} namespaces", len(removed)).format(
        n=len(removed)) + "\n")
    return 0
