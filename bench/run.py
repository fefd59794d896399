"""netcheck benchmarks: cold start, healthy diagnosis vs. the manual sequence, a dropped port,
healthy https:// against nginx vs. curl and the manual sequence.

Run with ``make bench`` (or ``.venv/bin/python bench/run.py``, as root for the lab sections).
Every figure is measured in this one run, side by side with its baseline, and printed as one
table (figure, value, target, PASS/MISS, ratio); the same data, raw samples included, goes to
``bench/results/latest.json``. A MISS is reported, never raised: this is a benchmark, not a test.

Safety: the cold-start section runs only ``--version`` and ``checks`` (no network at all); every
diagnosis and every manual command runs inside a lab namespace through ``lab.exec``. No shell.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

if TYPE_CHECKING:
    from netcheck.lab.topology import Lab

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "latest.json"
PYTHON = sys.executable
# System tools only: a pyenv/asdf shim earlier on PATH would add its own start-up to every step.
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"

N_COLD = 15
N_HEALTHY = 10
N_DROPPED = 5
N_HTTPS = 10
TARGET_COLD_MS = 150.0
TARGET_HEALTHY_MS = 300.0
TARGET_RATIO = 0.5
TARGET_DROPPED_MS = 1500.0
TARGET_HTTPS_MS = 400.0
# Issue 17's side-by-side targets: a healthy tcp:// no slower than the slides' commands, a
# healthy https:// within 1.5 x those commands followed by curl.
TARGET_TCP443_RATIO = 1.0
TARGET_HTTPS_MANUAL_RATIO = 1.5

SERVER = "198.18.2.10"
GATEWAY = "198.18.1.1"
DNS = "198.18.3.53"
TARGET = f"tcp://{SERVER}:22"
# Everything a diagnosis imports before it can measure anything (facts imports its netlink
# client, netcheck.rtnl, lazily). The imports a diagnosis cannot avoid, made as netcheck does.
IMPORT_FLOOR = ("import asyncio; from netcheck import cli, registry, runner, facts; "
                "registry.load(); facts.iproute_class()")
HTTPS_URL = "https://site.lab.test/"  # the nginx site of netcheck.lab.scenarios_nginx
CURL_FORMAT = "%{time_total}"
TCP_CONNECT = ("import socket, sys; "
               "socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()")


# -- results -----------------------------------------------------------------------------------

@dataclass
class Row:
    """One line of the result table (and of the JSON file)."""

    section: str
    figure: str
    value: str
    target: str = ""
    status: str = ""  # PASS, MISS, or "" for figures without a target
    ratio: str = ""
    data: dict[str, Any] = field(default_factory=dict)  # numbers and raw samples for the JSON


@dataclass
class Results:
    """Everything one bench run measured."""

    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def add(self, row: Row) -> None:
        """Append a row to the table."""
        self.rows.append(row)


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 1)


def _summary(samples: Sequence[float]) -> dict[str, Any]:
    """Median, min and max (ms) of wall-time samples given in seconds, plus the samples."""
    return {
        "median_ms": _ms(statistics.median(samples)),
        "min_ms": _ms(min(samples)),
        "max_ms": _ms(max(samples)),
        "n": len(samples),
        "samples_ms": [_ms(s) for s in samples],
    }


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _tool(name: str) -> str:
    """Absolute path of a system tool, ignoring shims earlier on PATH."""
    return shutil.which(name, path=SYSTEM_PATH) or name


# -- timing primitives -------------------------------------------------------------------------

def time_local(argv: Sequence[str], timeout: float = 30.0) -> tuple[float, int]:
    """Wall time (s) and exit status of one subprocess in this namespace (no shell)."""
    start = time.perf_counter()
    proc = subprocess.run(list(argv), stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=timeout, check=False)
    return time.perf_counter() - start, proc.returncode


def time_exec(lab: Lab, argv: Sequence[str], timeout: float = 30.0,
              env: Optional[dict[str, str]] = None
              ) -> tuple[float, Optional[subprocess.CompletedProcess[str]]]:
    """Wall time (s) of ``lab.exec("client", argv)``; the process is None if it timed out."""
    start = time.perf_counter()
    try:
        proc: Optional[subprocess.CompletedProcess[str]] = lab.exec(
            "client", list(argv), timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        proc = None
    return time.perf_counter() - start, proc


# -- 1. cold start -----------------------------------------------------------------------------

IMPORT_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S+)")


def parse_importtime(stderr: str) -> dict[str, tuple[int, Optional[str], int]]:
    """Top-level imports of one ``-X importtime`` log: name -> (cumulative us, biggest child, us).

    The log is post-order (children are printed before their parent, one level deeper), so the
    depth-1 lines seen since the previous top-level line are that top-level import's children.
    """
    top: dict[str, tuple[int, Optional[str], int]] = {}
    children: list[tuple[int, str]] = []
    for text in stderr.splitlines():
        match = IMPORT_LINE.match(text)
        if not match:
            continue
        depth = (len(match[3]) - 1) // 2
        if depth == 1:
            children.append((int(match[2]), match[4]))
        elif depth == 0:
            child_us, child = max(children, default=(0, None))
            top[match[4]] = (int(match[2]), child, child_us)
            children = []
    return top


def importtime_top(logs: Sequence[str], top: int = 5) -> list[dict[str, Any]]:
    """The ``top`` top-level imports by cumulative time, median over several logs."""
    cumulative: dict[str, list[int]] = {}
    child_of: dict[str, dict[str, list[int]]] = {}
    for log in logs:
        for name, (total, child, child_us) in parse_importtime(log).items():
            cumulative.setdefault(name, []).append(total)
            if child is not None:
                child_of.setdefault(name, {}).setdefault(child, []).append(child_us)
    ranked = sorted(cumulative, key=lambda n: statistics.median(cumulative[n]), reverse=True)
    rows = []
    for name in ranked[:top]:
        kids = child_of.get(name, {})
        child = max(kids, key=lambda c: statistics.median(kids[c]) * len(kids[c]), default=None)
        rows.append({
            "module": name,
            "cumulative_ms": round(statistics.median(cumulative[name]) / 1000.0, 1),
            "biggest_child": child,
            "biggest_child_ms": (round(statistics.median(kids[child]) / 1000.0, 1)
                                 if child is not None else None),
        })
    return rows


def importtime_logs(run: Callable[[], str], runs: int = 3) -> list[str]:
    """``runs`` stderr logs of a command started with ``-X importtime``."""
    return [run() for _ in range(runs)]


def write_bytecode() -> None:
    """Bring the bytecode caches of netcheck's sources up to date before timing start-up.

    A cache older than its source (a file just edited, in a shell with PYTHONDONTWRITEBYTECODE
    set, where no run rewrites it) costs a compile on every start: 30 ms and more for a large
    check module, measured as start-up though an installed package never pays it.
    """
    subprocess.run([PYTHON, "-m", "compileall", "-q", str(REPO / "netcheck"), str(REPO / "checks")],
                   stdin=subprocess.DEVNULL, capture_output=True, timeout=120, check=False)


def bench_cold_start(results: Results) -> None:
    """Section 1: start-up of --version and checks against a bare interpreter."""
    section = "1 cold start"
    write_bytecode()
    commands: dict[str, list[str]] = {
        "python -c pass (baseline)": [PYTHON, "-c", "pass"],
        "python -m netcheck --version": [PYTHON, "-m", "netcheck", "--version"],
        "python -m netcheck checks": [PYTHON, "-m", "netcheck", "checks"],
    }
    script = Path(sys.prefix) / "bin" / "netcheck"
    if not script.exists():
        script = REPO / ".venv" / "bin" / "netcheck"
    if script.exists():
        commands["netcheck --version (console script)"] = [str(script), "--version"]
        commands["netcheck checks (console script)"] = [str(script), "checks"]
    samples: dict[str, list[float]] = {name: [] for name in commands}
    failures: Counter[str] = Counter()
    for argv in commands.values():  # warm-up: bytecode caches, page cache
        time_local(argv)
    for _ in range(N_COLD):  # interleaved rounds: drift hits every command alike
        for name, argv in commands.items():
            seconds, rc = time_local(argv)
            samples[name].append(seconds)
            if rc != 0:
                failures[name] += 1
    base = statistics.median(samples["python -c pass (baseline)"])
    for name, values in samples.items():
        stats = _summary(values)
        stats["overhead_vs_baseline_ms"] = _ms(statistics.median(values) - base)
        stats["nonzero_exits"] = failures[name]
        value = f"med {stats['median_ms']:.1f} ms, min {stats['min_ms']:.1f} ms"
        if name.endswith("(baseline)"):
            results.add(Row(section, name, value, data=stats))
            continue
        results.add(Row(section, name, value, f"< {TARGET_COLD_MS:.0f} ms",
                        _verdict(stats["median_ms"] < TARGET_COLD_MS),
                        f"{statistics.median(values) / base:.2f}x base", stats))
        if failures[name]:
            results.errors.append(f"{name}: {failures[name]} non-zero exit(s)")
    def checks_log() -> str:
        return subprocess.run([PYTHON, "-X", "importtime", "-m", "netcheck", "checks"],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=30, check=False).stderr

    results.details["importtime_checks_top5"] = importtime_top(importtime_logs(checks_log))


# -- 2. healthy lab: netcheck vs. the manual sequence ------------------------------------------

def manual_sequence(server: str = SERVER, name: str = "www.lab.test",
                    port: int = 22) -> list[tuple[str, list[str]]]:
    """The commands a student types from the slides, in order, each its own process."""
    ip, ping, dig = _tool("ip"), _tool("ping"), _tool("dig")
    python3 = _tool("python3")
    return [
        ("ip -br link", [ip, "-br", "link"]),
        ("ip -br addr", [ip, "-br", "addr"]),
        ("ping 127.0.0.1", [ping, "-c1", "-W1", "127.0.0.1"]),
        ("ping gateway", [ping, "-c1", "-W1", GATEWAY]),
        ("ping server", [ping, "-c1", "-W1", server]),
        ("ip route get", [ip, "route", "get", server]),
        (f"dig {name}", [dig, "+time=1", "+tries=1", f"@{DNS}", name]),
        ("ping -M do -s 1472", [ping, "-M", "do", "-s", "1472", "-c1", "-W1", server]),
        (f"tcp connect :{port}", [python3, "-c", TCP_CONNECT, server, str(port)]),
    ]


def netcheck_argv(*extra: str, target: str = TARGET) -> list[str]:
    """``python -m netcheck TARGET ... --format json`` with this interpreter."""
    return [PYTHON, "-m", "netcheck", target, *extra, "--format", "json"]


def _parse(proc: Optional[subprocess.CompletedProcess[str]]) -> Optional[dict[str, Any]]:
    if proc is None:
        return None
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _slowest_checks(docs: Sequence[dict[str, Any]], top: int = 5) -> list[dict[str, Any]]:
    """Median duration per check id over several reports, slowest first."""
    per_check: dict[str, list[float]] = {}
    for doc in docs:
        for check in doc.get("checks", []):
            per_check.setdefault(check["id"], []).append(float(check.get("duration_ms", 0.0)))
    ranked = sorted(per_check, key=lambda c: statistics.median(per_check[c]), reverse=True)
    return [{"check": c, "median_ms": round(statistics.median(per_check[c]), 1)}
            for c in ranked[:top]]


def bench_healthy(results: Results, lab: Lab) -> None:
    """Section 2: healthy diagnosis against the manual sequence, both through lab.exec."""
    section = "2 healthy lab"
    steps = manual_sequence()
    argv = netcheck_argv()
    nc_wall: list[float] = []
    nc_inproc: list[float] = []
    nc_docs: list[dict[str, Any]] = []
    verdicts: Counter[str] = Counter()
    manual_total: list[float] = []
    per_step: dict[str, list[float]] = {label: [] for label, _ in steps}
    step_failures: Counter[str] = Counter()

    def run_netcheck() -> None:
        seconds, proc = time_exec(lab, argv)
        nc_wall.append(seconds)
        doc = _parse(proc)
        if doc is None:
            verdicts["no JSON" if proc is not None else "timeout"] += 1
            return
        nc_docs.append(doc)
        verdicts[str(doc.get("verdict"))] += 1
        nc_inproc.append(float(doc.get("duration_ms", 0.0)) / 1000.0)

    def run_manual() -> None:
        total = 0.0
        for label, step in steps:
            seconds, proc = time_exec(lab, step, timeout=10)
            per_step[label].append(seconds)
            total += seconds
            if proc is None or proc.returncode != 0:
                step_failures[label] += 1
        manual_total.append(total)

    # Reference floors, same path (lab.exec): the bare exec, a bare interpreter, and the
    # imports every diagnosis pays before and during its run (the netlink client is lazy).
    floors: dict[str, list[str]] = {
        "ip netns exec true (lab.exec floor)": [_tool("true")],
        "python -c pass in client ns": [PYTHON, "-c", "pass"],
        "netcheck import floor (cli+runner+checks+netlink)": [PYTHON, "-c", IMPORT_FLOOR],
    }
    floor_samples: dict[str, list[float]] = {name: [] for name in floors}
    # Warm-up (not counted): bytecode, page cache, neighbour entries for both contenders.
    for floor in floors.values():
        time_exec(lab, floor)
    time_exec(lab, argv)
    for _label, step in steps:
        time_exec(lab, step, timeout=10)
    for i in range(N_HEALTHY):
        for name, floor in floors.items():
            floor_samples[name].append(time_exec(lab, floor)[0])
        first, second = (run_netcheck, run_manual) if i % 2 == 0 else (run_manual, run_netcheck)
        first()
        second()

    nc = _summary(nc_wall)
    manual = _summary(manual_total)
    ratio = statistics.median(nc_wall) / statistics.median(manual_total)
    for name, values in floor_samples.items():
        floor_stats = _summary(values)
        results.add(Row(section, name, f"med {floor_stats['median_ms']:.1f} ms, "
                        f"min {floor_stats['min_ms']:.1f} ms",
                        ratio=f"{statistics.median(values) / statistics.median(manual_total):.2f}"
                              "x manual", data=floor_stats))
    results.add(Row(section, f"manual sequence, {len(steps)} commands (baseline)",
                    f"med {manual['median_ms']:.1f} ms, min {manual['min_ms']:.1f} ms",
                    data={**manual, "steps_failed": dict(step_failures)}))
    nc["verdicts"] = dict(verdicts)
    results.add(Row(section, f"netcheck {TARGET} wall",
                    f"med {nc['median_ms']:.1f} ms, min {nc['min_ms']:.1f} ms",
                    f"< {TARGET_HEALTHY_MS:.0f} ms",
                    _verdict(nc["median_ms"] < TARGET_HEALTHY_MS),
                    f"{ratio:.2f}x manual", nc))
    if nc_inproc:
        inproc = _summary(nc_inproc)
        startup = statistics.median(nc_wall) - statistics.median(nc_inproc)
        inproc["wall_minus_inprocess_ms"] = _ms(startup)
        inproc_ratio = statistics.median(nc_inproc) / statistics.median(manual_total)
        results.add(Row(section, "netcheck duration_ms (in-process)",
                        f"med {inproc['median_ms']:.1f} ms, min {inproc['min_ms']:.1f} ms",
                        ratio=f"{inproc_ratio:.2f}x manual", data=inproc))
        results.add(Row(section, "netcheck wall - duration_ms (start/exit)",
                        f"med {_ms(startup):.1f} ms", data={"median_ms": _ms(startup)}))
    results.add(Row(section, "ratio netcheck / manual (wall medians)", f"{ratio:.2f}",
                    f"<= {TARGET_RATIO}", _verdict(ratio <= TARGET_RATIO), f"{ratio:.2f}",
                    {"ratio": round(ratio, 3)}))
    results.details["manual_steps_median_ms"] = {
        label: _ms(statistics.median(values)) for label, values in per_step.items()}
    results.details["healthy_verdicts"] = dict(verdicts)
    results.details["healthy_slowest_checks"] = _slowest_checks(nc_docs)

    def diagnose_log() -> str:
        proc = lab.exec("client", [PYTHON, "-X", "importtime", *argv[1:]], timeout=30)
        return proc.stderr

    results.details["importtime_diagnose_top5"] = importtime_top(importtime_logs(diagnose_log))
    if set(verdicts) != {"ok"}:
        results.errors.append(f"healthy diagnosis verdicts: {dict(verdicts)} (expected all ok)")
    if step_failures:
        results.errors.append(f"manual steps that failed: {dict(step_failures)}")


# -- 3. port dropped: timeouts must overlap ----------------------------------------------------

def bench_dropped(results: Results, lab: Lab) -> None:
    """Section 3: a silently dropped port, --timeout 1: probes overlap, timeouts never add up."""
    from netcheck.lab.scenarios import SCENARIOS

    section = "3 port_dropped"
    scenario = SCENARIOS["port_dropped"]
    scenario.apply(lab)
    argv = netcheck_argv("--timeout", "1")
    wall: list[float] = []
    inproc: list[float] = []
    codes: Counter[str] = Counter()
    docs: list[dict[str, Any]] = []
    for _ in range(N_DROPPED):
        seconds, proc = time_exec(lab, argv, timeout=20)
        wall.append(seconds)
        doc = _parse(proc)
        if doc is None:
            codes["timeout" if proc is None else "no JSON"] += 1
            continue
        docs.append(doc)
        inproc.append(float(doc.get("duration_ms", 0.0)) / 1000.0)
        root = doc.get("root_cause") or {}
        codes[str(root.get("code"))] += 1
    stats = _summary(wall)
    results.add(Row(section, f"netcheck {TARGET} --timeout 1 wall",
                    f"med {stats['median_ms']:.1f} ms, min {stats['min_ms']:.1f} ms",
                    f"< {TARGET_DROPPED_MS:.0f} ms",
                    _verdict(stats["median_ms"] < TARGET_DROPPED_MS),
                    f"{statistics.median(wall):.2f}x timeout", stats))
    if inproc:
        inp = _summary(inproc)
        results.add(Row(section, "netcheck duration_ms (in-process)",
                        f"med {inp['median_ms']:.1f} ms, min {inp['min_ms']:.1f} ms", data=inp))
    expected = scenario.expect.code or "none"
    seen = ", ".join(f"{code} x{count}" for code, count in codes.most_common())
    results.add(Row(section, "root cause code", seen, expected,
                    _verdict(set(codes) == {expected}), data={"codes": dict(codes)}))
    results.details["dropped_slowest_checks"] = _slowest_checks(docs)


# -- 4. healthy https:// in the lab: netcheck vs. curl and the manual sequence ----------------

def _no_proxy_env() -> dict[str, str]:
    """This environment without proxy variables: the machine's proxy must not steer lab
    traffic, for netcheck and curl alike."""
    return {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}


def bench_https(results: Results, lab: Lab) -> None:
    """Section 4: ``netcheck https://site.lab.test/`` against nginx (valid certificate from the
    lab's nginx CA) vs. one ``curl -w`` and vs. the slides' sequence ending with that curl."""
    from netcheck.lab.nginx import nginx_ca_path, nginx_problem, start_nginx
    from netcheck.lab.scenarios_nginx import SITE

    section = "4 healthy https"
    problem = nginx_problem()
    if problem:
        results.add(Row(section, "section skipped", problem, status="SKIP"))
        results.errors.append(f"{section}: skipped: {problem}")
        return
    curl = shutil.which("curl", path=SYSTEM_PATH)
    if curl is None:
        results.add(Row(section, "section skipped", "curl not installed (make deps)",
                        status="SKIP"))
        return
    start_nginx(lab, SITE)
    ca = str(nginx_ca_path(lab))
    env = _no_proxy_env()
    argv = netcheck_argv("--cafile", ca, target=HTTPS_URL)
    # The same server's port 443 as a bare tcp:// target: a port whose client speaks first.
    tcp_target = f"tcp://{SITE.addresses[0]}:443"
    tcp_argv = netcheck_argv(target=tcp_target)
    curl_argv = [curl, "-s", "-o", "/dev/null", "-w", CURL_FORMAT, "--cacert", ca, HTTPS_URL]
    v4 = SITE.addresses[0]
    steps = [*manual_sequence(v4, SITE.fqdn, 443), ("curl https://", curl_argv)]
    nc_wall: list[float] = []
    nc_inproc: list[float] = []
    nc_docs: list[dict[str, Any]] = []
    verdicts: Counter[str] = Counter()
    curl_wall: list[float] = []
    curl_total: list[float] = []
    manual_total: list[float] = []
    manual_no_curl: list[float] = []  # the slides' commands alone: tcp://'s baseline
    tcp_wall: list[float] = []
    tcp_verdicts: Counter[str] = Counter()
    per_step: dict[str, list[float]] = {label: [] for label, _ in steps}
    failures: Counter[str] = Counter()

    def run_netcheck() -> None:
        seconds, proc = time_exec(lab, argv, env=env)
        nc_wall.append(seconds)
        doc = _parse(proc)
        if doc is None:
            verdicts["no JSON" if proc is not None else "timeout"] += 1
            return
        nc_docs.append(doc)
        verdicts[str(doc.get("verdict"))] += 1
        nc_inproc.append(float(doc.get("duration_ms", 0.0)) / 1000.0)

    def run_tcp() -> None:
        seconds, proc = time_exec(lab, tcp_argv, env=env)
        tcp_wall.append(seconds)
        doc = _parse(proc)
        tcp_verdicts[str(doc.get("verdict")) if doc else "no JSON"] += 1

    def run_curl() -> None:
        seconds, proc = time_exec(lab, curl_argv, timeout=10, env=env)
        curl_wall.append(seconds)
        try:
            curl_total.append(float(proc.stdout) if proc and proc.returncode == 0 else 0.0)
        except ValueError:
            failures["curl -w output"] += 1
        if proc is None or proc.returncode != 0:
            failures["curl"] += 1

    def run_manual() -> None:
        total = 0.0
        for label, step in steps:
            seconds, proc = time_exec(lab, step, timeout=10, env=env)
            per_step[label].append(seconds)
            total += seconds
            if proc is None or proc.returncode != 0:
                failures[label] += 1
        manual_total.append(total)
        manual_no_curl.append(total - per_step["curl https://"][-1])

    # Warm-up (not counted): bytecode, page cache, neighbour entries, nginx's first worker.
    time_exec(lab, argv, env=env)
    time_exec(lab, tcp_argv, env=env)
    for _label, step in steps:
        time_exec(lab, step, timeout=10, env=env)
    rounds = (run_netcheck, run_curl, run_manual, run_tcp)
    for i in range(N_HTTPS):  # rotate who goes first: drift hits every contender alike
        for runner in rounds[i % 4:] + rounds[:i % 4]:
            runner()

    nc = _summary(nc_wall)
    nc["verdicts"] = dict(verdicts)
    cw = _summary(curl_wall)
    manual = _summary(manual_total)
    nc_med = statistics.median(nc_wall)
    ratio_curl = nc_med / statistics.median(curl_wall)
    ratio_manual = nc_med / statistics.median(manual_total)
    if curl_total:
        ct = _summary(curl_total)
        results.add(Row(section, "curl -w %{time_total} (curl's own figure)",
                        f"med {ct['median_ms']:.1f} ms, min {ct['min_ms']:.1f} ms", data=ct))
    results.add(Row(section, "curl --cacert CA https://site.lab.test/ wall (baseline)",
                    f"med {cw['median_ms']:.1f} ms, min {cw['min_ms']:.1f} ms", data=cw))
    results.add(Row(section, f"manual sequence + curl, {len(steps)} commands (baseline)",
                    f"med {manual['median_ms']:.1f} ms, min {manual['min_ms']:.1f} ms",
                    data={**manual, "steps_failed": dict(failures)}))
    results.add(Row(section, f"netcheck {HTTPS_URL} --cafile wall",
                    f"med {nc['median_ms']:.1f} ms, min {nc['min_ms']:.1f} ms",
                    f"< {TARGET_HTTPS_MS:.0f} ms", _verdict(nc["median_ms"] < TARGET_HTTPS_MS),
                    f"{ratio_curl:.2f}x curl", nc))
    if nc_inproc:
        inproc = _summary(nc_inproc)
        results.add(Row(section, "netcheck duration_ms (in-process)",
                        f"med {inproc['median_ms']:.1f} ms, min {inproc['min_ms']:.1f} ms",
                        ratio=f"{statistics.median(nc_inproc) / statistics.median(curl_wall):.2f}"
                              "x curl", data=inproc))
    results.add(Row(section, "ratio netcheck / curl (wall medians)", f"{ratio_curl:.2f}",
                    ratio=f"{ratio_curl:.2f}", data={"ratio": round(ratio_curl, 3)}))
    results.add(Row(section, "ratio netcheck / (manual sequence + curl)", f"{ratio_manual:.2f}",
                    f"<= {TARGET_HTTPS_MANUAL_RATIO}",
                    _verdict(ratio_manual <= TARGET_HTTPS_MANUAL_RATIO), f"{ratio_manual:.2f}",
                    {"ratio": round(ratio_manual, 3)}))
    bare = _summary(manual_no_curl)
    results.add(Row(section, f"manual sequence to :443, {len(steps) - 1} commands (baseline)",
                    f"med {bare['median_ms']:.1f} ms, min {bare['min_ms']:.1f} ms", data=bare))
    tw = _summary(tcp_wall)
    tw["verdicts"] = dict(tcp_verdicts)
    ratio_tcp = statistics.median(tcp_wall) / statistics.median(manual_no_curl)
    results.add(Row(section, f"netcheck {tcp_target} wall",
                    f"med {tw['median_ms']:.1f} ms, min {tw['min_ms']:.1f} ms",
                    f"<= {TARGET_TCP443_RATIO}x manual",
                    _verdict(ratio_tcp <= TARGET_TCP443_RATIO), f"{ratio_tcp:.2f}x manual", tw))
    if set(tcp_verdicts) != {"ok"}:
        results.errors.append(f"healthy {tcp_target} verdicts: {dict(tcp_verdicts)}")
    results.details["https_manual_steps_median_ms"] = {
        label: _ms(statistics.median(values)) for label, values in per_step.items()}
    results.details["https_slowest_checks"] = _slowest_checks(nc_docs)
    if set(verdicts) != {"ok"}:
        results.errors.append(f"healthy https verdicts: {dict(verdicts)} (expected all ok)")
    if failures:
        results.errors.append(f"https: steps that failed: {dict(failures)}")


# -- driver ------------------------------------------------------------------------------------

def with_lab(results: Results, name: str, body: Callable[[Results, Lab], None]) -> None:
    """Build one lab, run ``body`` in it, always tear it down; record (never raise) problems."""
    try:
        from netcheck.lab.topology import Lab, lab_support_problem
    except ImportError as exc:
        results.errors.append(f"{name}: netcheck.lab not importable: {exc}")
        return
    problem = lab_support_problem()
    if problem:
        results.add(Row(name, "lab section skipped", problem, status="SKIP"))
        results.errors.append(f"{name}: skipped: {problem}")
        return
    try:
        with Lab() as lab:
            results.details.setdefault("lab_build_s", {})[name] = round(lab.build_seconds or 0, 2)
            body(results, lab)
    except Exception as exc:  # a benchmark reports, it does not crash half-way
        results.add(Row(name, "section failed", f"{type(exc).__name__}: {exc}", status="ERROR"))
        results.errors.append(f"{name}: {traceback.format_exc(limit=3)}")


def render_table(rows: Sequence[Row]) -> str:
    """The result table as fixed-width text."""
    header = ("section", "figure", "value", "target", "result", "ratio")
    lines = [header] + [(r.section, r.figure, r.value, r.target, r.status, r.ratio)
                        for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        out.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def render_details(details: dict[str, Any]) -> str:
    """Where the time goes: import profile, manual steps, slowest checks."""
    out: list[str] = []
    for key, title in (("importtime_checks_top5", "`python -m netcheck checks`"),
                       ("importtime_diagnose_top5", f"healthy diagnosis of {TARGET} in the lab")):
        if details.get(key):
            out.append(f"-X importtime, {title}: top 5 top-level imports by cumulative time "
                       "(median of 3 runs; importtime inflates absolute figures):")
            for item in details[key]:
                child = (f"  (biggest child: {item['biggest_child']} "
                         f"{item['biggest_child_ms']:.1f} ms)" if item["biggest_child"] else "")
                out.append(f"  {item['cumulative_ms']:7.1f} ms  {item['module']}{child}")
    for key, title in (("manual_steps_median_ms", ""),
                       ("https_manual_steps_median_ms", f" to {HTTPS_URL}")):
        if details.get(key):
            out.append(f"manual sequence{title}, median per step (each through lab.exec):")
            for label, value in details[key].items():
                out.append(f"  {value:7.1f} ms  {label}")
    for key, title in (("healthy_slowest_checks", "healthy"),
                       ("dropped_slowest_checks", "port_dropped"),
                       ("https_slowest_checks", "healthy https")):
        if details.get(key):
            out.append(f"netcheck checks, slowest by median duration_ms ({title}):")
            for item in details[key]:
                out.append(f"  {item['median_ms']:7.1f} ms  {item['check']}")
    if details.get("lab_build_s"):
        builds = ", ".join(f"{k}: {v:.2f} s" for k, v in details["lab_build_s"].items())
        out.append(f"lab build time: {builds}")
    return "\n".join(out)


def main(argv: Sequence[str] = ()) -> int:
    """Run every section (or those whose numbers are given: ``run.py 1 4``), print the table,
    write bench/results/latest.json."""
    wanted = set(argv) or {"1", "2", "3", "4"}
    started = time.perf_counter()
    load_before = os.getloadavg()
    results = Results()
    if "1" in wanted:
        try:
            bench_cold_start(results)
        except Exception as exc:
            results.add(Row("1 cold start", "section failed", f"{type(exc).__name__}: {exc}",
                            status="ERROR"))
            results.errors.append(traceback.format_exc(limit=3))
    for number, name, body in (("2", "2 healthy lab", bench_healthy),
                               ("3", "3 port_dropped", bench_dropped),
                               ("4", "4 healthy https", bench_https)):
        if number in wanted:
            with_lab(results, name, body)
    total = time.perf_counter() - started

    print(render_table(results.rows))
    print()
    print(render_details(results.details))
    for error in results.errors:
        print(f"note: {error.rstrip()}")
    load_after = os.getloadavg()
    print(f"bench took {total:.1f} s on {os.cpu_count()} CPUs; 1-min load average "
          f"{load_before[0]:.2f} before, {load_after[0]:.2f} after")

    document = {
        "started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "bench_seconds": round(total, 2),
        "python": sys.version.split()[0],
        "executable": PYTHON,
        "kernel": platform.release(),
        "cpu_count": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "rows": [asdict(row) for row in results.rows],
        "details": results.details,
        "errors": results.errors,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    print(f"results: {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
