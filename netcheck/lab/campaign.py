"""Fault campaigns: generated networks, exactly one fault each, graded by an oracle.

Hand-written scenarios test what their authors thought of. A campaign case is drawn from an
integer *seed*: the seed picks one entry of :data:`CATALOGUE` (``(seed - 1) % len``, so seeds
1..len cover every entry once), then — from a random generator seeded with the seed — the
network's parts (:class:`netcheck.lab.compose.Parts`: one or two routers, dual-stack, IPv4- or
IPv6-only, one or two uplinks, a VPN with policy routing, a stub resolver, NAT, a firewall on
either end), the address family the fault acts on, and the target (a name or a literal, tcp://,
ssh:// or http://).

Each catalogue entry says how it breaks the network (``apply``) and what a senior network
engineer diagnosing that host would conclude (``expect``): the verdict and the root-cause codes
accepted, the family named when one family fails and the other carries the flow. Most entries
say which *path* of which family they break (the name servers, or the target); the flow model
(:func:`flow`) turns that into the verdict for the case's target — a fault off the path of the
flow at hand expects ``ok``. Traps (ICMP filtered, loss under the threshold, a lower MTU with
working ICMP, one of two addresses dead, search domains, a stale policy rule...) and healthy
networks expect no failed check at all.

The oracle grades a run: verdict accepted, code accepted, the family named, no ``fail`` on
healthy variants and traps, finished inside ``--deadline``. Independently of netcheck, a
*truth probe* (plain DNS queries and connections from the client, after netcheck ran) checks
that the network really is broken where the entry says and works elsewhere; a case where it is
not is reported as a generator error, never counted against netcheck.

The catalogue, the flow model and the generator live in :mod:`netcheck.lab.faults`; this
module runs cases, probes the truth, grades and reports. ``netcheck lab up --case SEED``
rebuilds one case and leaves it running.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any, Callable, Optional, Sequence

from netcheck.lab.compose import ComposedLab
from netcheck.lab.faults import (  # noqa: F401 - the catalogue's names, re-exported
    ALL,
    CATALOGUE,
    CI_SEEDS,
    DEADLINE_SLACK,
    DEFAULT_DEADLINE,
    FAMILY_NAME,
    FOUND_SEEDS,
    NAME,
    OK,
    Case,
    Expectation,
    Fault,
    Target,
    flow,
    generate,
)
from netcheck.lab.topology import python_argv

# -- the truth probe -----------------------------------------------------------------------------

def truth_plan(case: Case) -> list[dict[str, Any]]:
    """Independent probes for the paths the flow model reasons about."""
    plan: list[dict[str, Any]] = []
    if case.target.named:
        if case.parts.stub:
            plan.append({"path": "dns", "family": ALL, "server": "127.0.0.53"})
        else:
            plan += [{"path": "dns", "family": f, "server": a}
                     for f, a in case.nameserver_addresses()]
        plan.append({"path": "resolve", "family": ALL, "host": case.target.host})
        addresses = case.records()
        for fam in case.target_families():
            plan += [{"path": "target", "family": fam, "address": a}
                     for a in addresses.get(fam, [])]
    else:
        plan.append({"path": "target", "family": case.target.family,
                     "address": case.target.host})
    for probe in plan:
        probe.update(scheme=case.target.scheme, port=case.target.port, name=NAME)
    return plan


def run_truth(plan: list[dict[str, Any]], timeout: float = 2.5) -> list[str]:
    """Run the probes concurrently (inside the client); "ok" or why not, per probe.

    The system resolver cannot be given a timeout: a probe still running after twice
    ``timeout`` counts as failed (the caller exits without waiting for it).
    """
    import socket
    import threading

    results: list[str] = [f"no answer within {2 * timeout:g}s"] * len(plan)

    def one(i: int) -> None:
        probe = plan[i]
        try:
            if probe["path"] == "dns":
                results[i] = _query(probe["server"], probe["name"], timeout)
            elif probe["path"] == "resolve":
                socket.getaddrinfo(probe["host"], probe["port"], type=socket.SOCK_STREAM,
                                   flags=socket.AI_ADDRCONFIG)
                results[i] = "ok"
            else:
                results[i] = _exchange(probe["address"], probe["port"], probe["scheme"],
                                       timeout)
        except Exception as exc:  # a probe's own failure is a result, never a crash
            results[i] = f"{type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(plan))]
    for thread in threads:
        thread.start()
    end = time.monotonic() + 2 * timeout
    for thread in threads:
        thread.join(max(0.0, end - time.monotonic()))
    return list(results)


def _query(server: str, name: str, timeout: float) -> str:
    import dns.message
    import dns.query
    import dns.rcode

    query = dns.message.make_query(name, "A")
    for _ in range(2):
        try:
            answer = dns.query.udp(query, server, timeout=timeout / 2)
        except Exception as exc:  # timeout, refused, unreachable
            error = f"{type(exc).__name__}"
            continue
        rcode = dns.rcode.to_text(answer.rcode())
        return "ok" if rcode in ("NOERROR", "NXDOMAIN") else rcode
    return error


def _exchange(host: str, port: int, scheme: str, timeout: float) -> str:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect((host, port))
        if scheme == "tcp":
            return "ok"
        if scheme == "http":
            sock.sendall(b"HEAD / HTTP/1.0\r\nHost: " + NAME.encode() + b"\r\n\r\n")
        data = sock.recv(64)
        return "ok" if data.startswith((b"SSH-", b"HTTP/")) else f"answer {data[:20]!r}"


def truth_problems(case: Case, expected: Expectation, results: list[str],
                   plan: list[dict[str, Any]]) -> list[str]:
    """Where the network does not behave as the catalogue entry says (a generator error)."""
    works: dict[tuple[str, int], bool] = {}
    for probe, result in zip(plan, results):
        key = (probe["path"], probe["family"])
        works[key] = works.get(key, False) or result == "ok"
    problems = []
    dead = [("dns", f) in expected.broken_paths for f in case.parts.nameservers]
    for (path, fam), ok in sorted(works.items()):
        if path == "resolve" and any(dead) and not all(dead):
            continue  # the resolver waits out a dead first server (5 s a try): not timed here
        if fam == ALL:  # the stub or the system resolver: work if any name server does
            said = not all(dead)
        else:
            said = (path, fam) not in expected.broken_paths
        if ok != said:
            detail = "; ".join(f"{p.get('server') or p.get('address') or p.get('host')}: {r}"
                               for p, r in zip(plan, results)
                               if (p["path"], p["family"]) == (path, fam))
            problems.append(f"{path}/{FAMILY_NAME.get(fam, 'any')} "
                            f"{'works' if ok else 'fails'} but the catalogue says it "
                            f"{'works' if said else 'fails'} ({detail})")
    return problems


# -- running and grading -------------------------------------------------------------------------

@dataclass
class Result:
    """One case run and graded."""

    case: Case
    expected: Expectation
    verdict: Optional[str] = None
    code: Optional[str] = None
    family: Optional[str] = None
    failed_checks: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    build_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)  # netcheck's: the oracle said no
    invalid: list[str] = field(default_factory=list)  # the generator's: the truth probe
    error: Optional[str] = None  # the case could not be run

    @property
    def passed(self) -> bool:
        """The oracle accepted the run (and the case itself was sound)."""
        return not self.problems and not self.invalid and self.error is None

    def got(self) -> str:
        """What netcheck said: ``broken GATEWAY_UNREACHABLE (ipv4)``."""
        words = [self.verdict or "no report"]
        if self.code:
            words.append(self.code)
        if self.family:
            words.append(f"({self.family})")
        return " ".join(words)

    def to_json(self) -> dict[str, Any]:
        """A JSON-native summary (for --json reports and CI artefacts)."""
        case = self.case
        return {"seed": case.seed, "fault": case.fault.name, "class": case.fault.klass,
                "kind": case.fault.kind, "network": case.parts.family,
                "fault_family": case.family_label, "parts": case.parts.describe(),
                "target": case.target.url(), "expected": self.expected.text(),
                "got": self.got(), "failed_checks": self.failed_checks,
                "elapsed": round(self.elapsed, 2), "passed": self.passed,
                "problems": self.problems, "invalid": self.invalid, "error": self.error,
                "reproduce": case.reproduce()}


def support_problem() -> Optional[str]:
    """Why campaigns cannot run here (the lab's needs, and dnsmasq for the stub), or None."""
    from netcheck.lab.topology import LabError, _tool, lab_support_problem

    problem = lab_support_problem()
    if problem:
        return problem
    try:
        _tool("dnsmasq")
    except LabError:
        return "dnsmasq not found: install it (Debian: apt-get install dnsmasq-base; make deps)"
    return None


def build_lab(case: Case, *, keep: bool = False) -> ComposedLab:
    """Build the case's network and apply its fault (tears down again if that fails)."""
    lab = ComposedLab(case.parts, case.services(), keep=keep)
    lab.build()
    try:
        case.fault.apply(case, lab)
    except BaseException:
        lab.teardown()
        raise
    return lab


def _environment() -> dict[str, str]:
    # The machine's proxy settings must never steer lab traffic.
    return {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}


def run_case(seed: int, deadline: float = DEFAULT_DEADLINE, truth: bool = True) -> Result:
    """Build, break, diagnose, probe the truth, tear down and grade one case."""
    case = generate(seed)
    result = Result(case, case.expectation())
    try:
        lab = build_lab(case)
    except Exception as exc:
        result.error = f"building the case failed: {exc}"
        return result
    try:
        result.build_seconds = lab.build_seconds or 0.0
        argv = python_argv("-m", "netcheck", *case.argv(deadline), "--format", "json")
        start = time.monotonic()
        try:
            proc = lab.exec("client", argv, timeout=deadline + 20, env=_environment())
            stdout = proc.stdout
        except subprocess.TimeoutExpired:
            stdout = ""
        result.elapsed = time.monotonic() - start
        grade(result, stdout, deadline)
        if truth and case.fault.truth and result.expected.modelled:
            plan = truth_plan(case)
            probe = lab.exec("client", python_argv("-m", "netcheck.lab.campaign", "truth",
                                              json.dumps(plan)), timeout=30, env=_environment())
            try:
                results = json.loads(probe.stdout)
            except ValueError:
                results = [f"truth probe failed: {probe.stderr.strip()[-200:]}"] * len(plan)
            result.invalid = truth_problems(case, result.expected, results, plan)
    except Exception as exc:
        result.error = f"running the case failed: {type(exc).__name__}: {exc}"
    finally:
        try:
            lab.teardown()
        except Exception as exc:
            result.error = result.error or f"teardown failed: {exc}"
    return result


def grade(result: Result, stdout: str, deadline: float) -> None:
    """The oracle: verdict, code, family, no fail where nothing is broken, the deadline."""
    expected = result.expected
    try:
        doc = json.loads(stdout)
    except ValueError:
        result.problems.append("netcheck gave no JSON document (or ran past every timeout)")
        return
    result.verdict = doc.get("verdict")
    root = doc.get("root_cause") or {}
    result.code = root.get("code")
    checks = doc.get("checks") or []
    result.failed_checks = [f"{c.get('id')}:{c.get('code')}" for c in checks
                            if c.get("status") == "fail"]
    for check in checks:
        if check.get("id") == root.get("check"):
            evidence = check.get("evidence") or {}
            family = evidence.get("family") if isinstance(evidence, dict) else None
            result.family = family if isinstance(family, str) else None
    if result.verdict not in expected.verdicts:
        result.problems.append(f"verdict {result.verdict}, expected "
                               f"{'|'.join(sorted(expected.verdicts))}")
    elif result.verdict != "ok" and expected.codes and result.code not in expected.codes:
        result.problems.append(f"root cause {result.code}, expected "
                               f"{'/'.join(sorted(expected.codes))}")
    elif result.verdict != "ok" and not expected.codes:
        result.problems.append(f"root cause {result.code} on a network with nothing broken")
    if (expected.family and result.verdict == "degraded" and not result.problems
            and result.family != expected.family):
        result.problems.append(f"the root cause names family {result.family}, expected "
                               f"{expected.family}")
    if expected.no_fail and result.failed_checks:
        result.problems.append("false alarm: failed " + ", ".join(result.failed_checks))
    duration = float(doc.get("duration_ms") or 0) / 1000
    if duration > deadline or result.elapsed > deadline + DEADLINE_SLACK:
        result.problems.append(f"took {max(duration, result.elapsed):.1f}s, deadline "
                               f"{deadline:g}s")


def run_campaign(seeds: Sequence[int], *, jobs: int = 2, deadline: float = DEFAULT_DEADLINE,
                 truth: bool = True,
                 progress: Optional[Callable[[Result], None]] = None) -> list[Result]:
    """Run every seed, ``jobs`` cases at a time; results in seed order."""
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(run_case, seed, deadline, truth) for seed in seeds]
        results = []
        for future in futures:
            result = future.result()
            if progress:
                progress(result)
            results.append(result)
    return results


# -- reporting -----------------------------------------------------------------------------------

def failure_line(result: Result, deadline: float = DEFAULT_DEADLINE) -> str:
    """A failure: its seed, fault, family, expected vs got, and the reproduction."""
    case = result.case
    why = result.error or "; ".join(result.invalid or result.problems)
    label = "INVALID CASE" if result.invalid else "ERROR" if result.error else "FAIL"
    return (f"{label} {case.describe()}\n  expected {result.expected.text()}, got "
            f"{result.got()}: {why}\n  reproduce: {case.reproduce(deadline)}")


def _rate_table(title: str, groups: dict[str, list[Result]]) -> list[str]:
    lines = [f"{title:<30} {'cases':>5} {'passed':>6} {'rate':>7}"]
    for key in sorted(groups):
        members = groups[key]
        passed = sum(r.passed for r in members)
        lines.append(f"  {key:<28} {len(members):>5} {passed:>6} "
                     f"{100.0 * passed / len(members):>6.1f}%")
    return lines


def summary(results: Sequence[Result], wall: float, jobs: int) -> str:
    """Pass rate per fault class, network family and fault family; time per case."""
    def by(key: Callable[[Result], str]) -> dict[str, list[Result]]:
        groups: dict[str, list[Result]] = {}
        for r in results:
            groups.setdefault(key(r), []).append(r)
        return groups

    total = len(results)
    passed = sum(r.passed for r in results)
    healthy = [r for r in results if r.expected.no_fail]
    alarms = [r for r in healthy if r.failed_checks or r.verdict == "broken"]
    invalid = [r for r in results if r.invalid]
    elapsed = sorted(r.elapsed for r in results) or [0.0]
    builds = [r.build_seconds for r in results] or [0.0]
    lines = [f"campaign: {total} cases, {passed} passed ({rate(results):.1f} %), "
             f"{len(alarms)} false alarms on {len(healthy)} healthy variants and traps, "
             f"{len(invalid)} invalid cases",
             f"time: {wall:.0f} s wall with {jobs} at a time ({wall / max(total, 1):.2f} s per "
             f"case); netcheck per case mean {statistics.mean(elapsed):.2f} s, median "
             f"{statistics.median(elapsed):.2f} s, max {elapsed[-1]:.2f} s; network build "
             f"mean {statistics.mean(builds):.2f} s", ""]
    lines += _rate_table("fault class", by(lambda r: r.case.fault.klass))
    lines += _rate_table("network", by(lambda r: r.case.parts.family))
    lines += _rate_table("fault family", by(lambda r: r.case.family_label))
    lines += _rate_table("kind", by(lambda r: r.case.fault.kind))
    return "\n".join(lines) + "\n"


def rate(results: Sequence[Result]) -> float:
    """Pass rate in percent."""
    return 100.0 * sum(r.passed for r in results) / max(len(results), 1)


def false_alarms(results: Sequence[Result]) -> list[Result]:
    """Healthy variants and traps where a check failed or the verdict was broken."""
    return [r for r in results if r.expected.no_fail
            and (r.failed_checks or r.verdict == "broken")]


def main_campaign(seed: int, count: int, jobs: int, deadline: float, truth: bool,
                  out: IO[str], json_path: Optional[str] = None, verbose: bool = False) -> int:
    """``netcheck lab campaign``: run, print failures as they come and the summary."""
    seeds = range(seed, seed + count)
    start = time.monotonic()

    def progress(result: Result) -> None:
        if not result.passed:
            out.write(failure_line(result, deadline) + "\n")
        elif verbose:
            out.write(f"ok   {result.case.describe()}: {result.got()} "
                      f"({result.elapsed:.1f}s)\n")
        out.flush()

    results = run_campaign(seeds, jobs=jobs, deadline=deadline, truth=truth,
                           progress=progress)
    wall = time.monotonic() - start
    out.write("\n" + summary(results, wall, jobs))
    if json_path:
        with open(json_path, "w", encoding="utf-8") as fh:
            json.dump({"seeds": [seed, seed + count - 1], "deadline": deadline,
                       "pass_rate": round(rate(results), 2),
                       "false_alarms": len(false_alarms(results)),
                       "results": [r.to_json() for r in results]}, fh, indent=1)
    return 0 if all(r.passed for r in results) else 1


TABLE_BEGIN = "<!-- catalogue table: python -m netcheck.lab.campaign table --write FILE -->"
TABLE_END = "<!-- end of catalogue table -->"


def catalogue_table() -> str:
    """The catalogue as a Markdown table, each entry with the case its first seed draws."""
    rows = ["| seed | entry | class | kind | what is done to the network | "
            "that seed's case expects |", "| --- | --- | --- | --- | --- | --- |"]
    for seed in range(1, len(CATALOGUE) + 1):
        case = generate(seed)
        fault = case.fault
        target = "name" if case.target.named else f"IPv{case.target.family} literal"
        rows.append(f"| {seed} | `{fault.name}` | {fault.klass} | {fault.kind} | "
                    f"{fault.how.replace('|', chr(92) + '|')} | {case.parts.family}, {target}: "
                    f"{case.expectation().text()} |")
    return "\n".join(rows) + "\n"


def with_table(page: str) -> str:
    """``page`` with the text between the table markers replaced by :func:`catalogue_table`."""
    head, rest = page.split(TABLE_BEGIN, 1)
    _, tail = rest.split(TABLE_END, 1)
    return f"{head}{TABLE_BEGIN}\n{catalogue_table()}{TABLE_END}{tail}"


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m netcheck.lab.campaign truth PLAN`` (run by the campaign in a client), or
    ``table [--write FILE]``: the catalogue table (docs/campaigns.md holds it)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "truth":
        print(json.dumps(run_truth(json.loads(args[1]))), flush=True)
        os._exit(0)  # a resolver call still blocked in its thread must not hold us
    if args == ["table"]:
        print(catalogue_table(), end="")
        return 0
    if len(args) == 3 and args[:2] == ["table", "--write"]:
        with open(args[2], encoding="utf-8") as fh:
            page = fh.read()
        with open(args[2], "w", encoding="utf-8") as fh:
            fh.write(with_table(page))
        return 0

    print("usage: python -m netcheck.lab.campaign truth PLAN-JSON | table [--write FILE] "
          "(campaigns run with: netcheck lab campaign)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
