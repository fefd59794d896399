"""Batch speed: netcheck over 10 000 TCP targets side by side with nmap -sT and fping.

Run as root: ``.venv/bin/python bench/batch_bench.py [--targets N] [--json FILE]``.

In a fresh lab, the server namespace answers on N addresses of 198.19.0.0/18 (added with one
``ip -batch``; the router routes the /18 to the server, the client reaches it through its
default route) with ONE wildcard listener. Then, in one run, from the client namespace:

- ``nmap -sT -n -p PORT`` over the N addresses (the baseline for the connect rate);
- ``fping -a`` over the same addresses (the ICMP baseline);
- ``netcheck batch - --only transport.tcp`` (the light connect sweep compared with nmap);
- ``netcheck batch -`` with the full diagnosis over the first ``--full-targets`` of them
  (1 000 by default: at tens a second, 10 000 would take minutes; its rate is reported, not
  compared).

Each netcheck run's peak memory is the process's own ru_maxrss (``os.wait4`` on its PID:
``ip netns exec`` execs in place). Targets: connect rate at least nmap's, peak memory under
200 MB. PASS/MISS is printed as measured; a MISS is never hidden.

Safety: every address is in 198.18.0.0/15, every packet stays inside lab namespaces, no
shell anywhere, and the lab's teardown ends the listener by PID.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

if TYPE_CHECKING:
    from netcheck.lab.topology import Lab

# The lab's sweep helpers live with the lab tests (tests/lab/scale.py).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SERVER = "198.18.2.10"
PORT = 9000
N_TARGETS = 10000
# 16 256 usable addresses (.0 and .255 of each /24 skipped), inside the lab's 198.18.0.0/15.
SWEEP = ipaddress.IPv4Network("198.19.0.0/18")
REPEATS = 3
FULL_TARGETS = 1000
TARGET_RSS_MB = 200.0
LIGHT_CONCURRENCY = 256
FULL_CONCURRENCY = 64
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"

# The one listener: accept and close at once, as fast as the kernel hands connections over.
LISTENER = r"""
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(4096)
open(sys.argv[2], "w").close()
while True:
    try:
        c, _ = s.accept()
        c.close()
    except OSError:
        pass
"""


@dataclass
class Run:
    """One timed command in the client namespace."""

    seconds: float
    rc: int
    stdout: str
    stderr: str
    rss_mb: Optional[float] = None


@dataclass
class Figures:
    """What the bench measured (also written as JSON with --json)."""

    targets: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    def row(self, figure: str, value: str, target: str = "", ok: Optional[bool] = None,
            ratio: str = "") -> None:
        self.rows.append({"figure": figure, "value": value, "target": target,
                          "status": "" if ok is None else ("PASS" if ok else "MISS"),
                          "ratio": ratio})


def _tool(name: str) -> str:
    found = shutil.which(name, path=SYSTEM_PATH) or shutil.which(name)
    if found is None:
        package = "iproute2" if name == "ip" else name
        raise SystemExit(f"{name} not found: apt-get install {package}")
    return found


def addresses(n: int) -> list[str]:
    """n addresses of the sweep network (tests.lab.scale's), a SystemExit when they do not fit."""
    from tests.lab import scale

    try:
        return scale.addresses(n, SWEEP)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None


def prepare(lab: Lab, addrs: Sequence[str]) -> None:
    """Server answers on every address (one ip -batch), router routes them, one listener."""
    from tests.lab import scale

    scale.add_addresses(lab, addrs, SWEEP)
    try:
        scale.start_server(lab, "sweep-listener", LISTENER, str(PORT))
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None


def run_in_client(lab: Lab, argv: Sequence[str], stdin_text: str = "",
                  timeout: float = 600) -> Run:
    """Run argv in the client namespace; wall time, exit status, output, peak RSS of argv."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = {name: Path(tmp, name) for name in ("in", "out", "err")}
        paths["in"].write_text(stdin_text)
        with open(paths["in"], "rb") as fin, open(paths["out"], "wb") as fout, \
                open(paths["err"], "wb") as ferr:
            start = time.perf_counter()
            proc = subprocess.Popen([_tool("ip"), "netns", "exec", lab.ns("client"), *argv],
                                    stdin=fin, stdout=fout, stderr=ferr)
            # wait4 rather than wait: the rusage of exactly this process (ip netns exec
            # execs the program in place, so the PID is the program's).
            deadline = start + timeout
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid == proc.pid:
                    break
                if time.perf_counter() > deadline:
                    proc.kill()
                    pid, status, usage = os.wait4(proc.pid, 0)
                    break
                time.sleep(0.005)
            seconds = time.perf_counter() - start
            proc.returncode = os.waitstatus_to_exitcode(status)
        return Run(seconds, proc.returncode, paths["out"].read_text(errors="replace"),
                   paths["err"].read_text(errors="replace"), usage.ru_maxrss / 1024)


def _median(runs: Sequence[Run]) -> Run:
    return sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]


def nmap_open(stdout: str) -> int:
    """Hosts nmap reports with the port open (greppable output)."""
    return sum(1 for line in stdout.splitlines() if f"{PORT}/open/tcp" in line)


def netcheck_ok(stdout: str) -> tuple[int, int, Optional[str]]:
    """(ok, total, first problem) from a netcheck-batch/1 document."""
    try:
        doc = json.loads(stdout)
    except ValueError as exc:
        return 0, 0, f"not JSON: {exc}"
    results = doc.get("results", [])
    bad = next((r for r in results if r.get("verdict") != "ok"), None)
    problem = None
    if bad is not None:
        rc = bad.get("root_cause") or {}
        problem = f"{bad['target']['input']}: {bad['verdict']} {rc.get('code') or bad.get('error')}"
    return doc.get("summary", {}).get("ok", 0), len(results), problem


def bench(n: int = N_TARGETS, repeats: int = REPEATS, n_full: int = FULL_TARGETS) -> Figures:
    """Build the lab, measure everything in one run, tear the lab down."""
    from netcheck.lab.topology import Lab

    figures = Figures(targets=n)
    addrs = addresses(n)
    targets_text = "".join(f"tcp://{a}:{PORT}\n" for a in addrs)
    n_full = min(n, n_full)
    full_text = "".join(f"tcp://{a}:{PORT}\n" for a in addrs[:n_full])
    load_before = os.getloadavg()
    addr_text = "".join(f"{a}\n" for a in addrs)
    python = sys.executable
    with Lab() as lab:
        prepare(lab, addrs)
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
            fh.write(addr_text)
            addr_file = fh.name
        try:
            nmap = [_tool("nmap"), "-sT", "-n", "-p", str(PORT), "-iL", addr_file, "-oG", "-"]
            # -i 1: one echo a millisecond (fping's default waits 10 ms between targets).
            fping = [_tool("fping"), "-a", "-i", "1", "-f", addr_file]
            light = [python, "-m", "netcheck", "batch", "-", "--only", "transport.tcp",
                     "--concurrency", str(LIGHT_CONCURRENCY), "--timeout", "2",
                     "--format", "json"]
            full = [python, "-m", "netcheck", "batch", "-", "--concurrency",
                    str(FULL_CONCURRENCY), "--timeout", "2", "--format", "json"]
            # Warm-up: ARP/neighbour entries, page cache, bytecode; not measured.
            run_in_client(lab, [_tool("fping"), "-q", "-c", "1", SERVER])
            run_in_client(lab, light, "".join(f"tcp://{a}:{PORT}\n" for a in addrs[:20]))
            nmap_runs, fping_runs, light_runs = [], [], []
            for _ in range(repeats):  # interleaved, so drift hits all three alike
                nmap_runs.append(run_in_client(lab, nmap))
                fping_runs.append(run_in_client(lab, fping))
                light_runs.append(run_in_client(lab, light, targets_text))
            full_run = run_in_client(lab, full, full_text)
        finally:
            os.unlink(addr_file)

    nm, fp, li = _median(nmap_runs), _median(fping_runs), _median(light_runs)
    n_open = nmap_open(nm.stdout)
    n_alive = len(fp.stdout.split())
    li_ok, li_total, li_problem = netcheck_ok(li.stdout)
    fu_ok, fu_total, fu_problem = netcheck_ok(full_run.stdout)
    load_after = os.getloadavg()
    rate = lambda run: n / run.seconds  # noqa: E731 - one formula for every tool
    li_rate, nm_rate, fp_rate = rate(li), rate(nm), rate(fp)
    fu_rate = n_full / full_run.seconds
    peak_light = max(r.rss_mb or 0 for r in light_runs)
    figures.row(f"nmap -sT -p {PORT} ({n} addresses)", f"{nm.seconds:.2f} s = {nm_rate:.0f}/s, "
                f"{n_open} open")
    figures.row(f"fping ({n} addresses)", f"{fp.seconds:.2f} s = {fp_rate:.0f}/s, "
                f"{n_alive} alive")
    figures.row("netcheck batch --only transport.tcp (connect check)",
                f"{li.seconds:.2f} s = {li_rate:.0f}/s, {li_ok}/{li_total} ok", ">= nmap's rate",
                li_rate >= nm_rate and li_ok == n, f"{li_rate / nm_rate:.2f}x nmap")
    figures.row("  vs fping (ICMP only)", "", "", None, f"{li_rate / fp_rate:.2f}x fping")
    figures.row("netcheck batch, connect check: peak RSS", f"{peak_light:.0f} MB",
                f"< {TARGET_RSS_MB:.0f} MB", peak_light < TARGET_RSS_MB)
    figures.row(f"netcheck batch, full diagnosis ({n_full} addresses, concurrency "
                f"{FULL_CONCURRENCY})",
                f"{full_run.seconds:.2f} s = {fu_rate:.0f}/s, {fu_ok}/{fu_total} ok", "reported",
                None, f"{fu_rate / nm_rate:.3f}x nmap")
    figures.row("netcheck batch, full diagnosis: peak RSS", f"{full_run.rss_mb or 0:.0f} MB",
                f"< {TARGET_RSS_MB:.0f} MB", (full_run.rss_mb or 0) < TARGET_RSS_MB)
    figures.raw = {
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load_after], "cpus": os.cpu_count(),
        "full_targets": n_full,
        "nmap_s": [round(r.seconds, 3) for r in nmap_runs],
        "fping_s": [round(r.seconds, 3) for r in fping_runs],
        "light_s": [round(r.seconds, 3) for r in light_runs],
        "light_rss_mb": [round(r.rss_mb or 0, 1) for r in light_runs],
        "light_median_s": round(statistics.median(r.seconds for r in light_runs), 3),
        "full_s": round(full_run.seconds, 3), "full_rss_mb": round(full_run.rss_mb or 0, 1),
        "full_rc": full_run.rc, "light_rc": li.rc,
        "light_first_problem": li_problem, "full_first_problem": fu_problem,
        "full_stderr_tail": full_run.stderr[-500:], "light_stderr_tail": li.stderr[-500:],
    }
    return figures


def render(figures: Figures) -> str:
    """The figures as a plain table."""
    head = ("figure", "value", "target", "", "ratio")
    rows = [head] + [(r["figure"], r["value"], r["target"], r["status"], r["ratio"])
                     for r in figures.rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                     for row in rows)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--targets", type=int, default=N_TARGETS, help="addresses to sweep")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="runs of each tool")
    parser.add_argument("--full-targets", type=int, default=FULL_TARGETS,
                        help="addresses the full diagnosis runs over (the first ones)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    from netcheck.lab.topology import lab_support_problem

    problem = lab_support_problem()
    if problem:
        print(f"batch bench skipped: {problem}")
        return 0
    for tool in ("nmap", "fping"):
        _tool(tool)
    figures = bench(args.targets, args.repeats, args.full_targets)
    print(render(figures))
    print("load average (1, 5, 15 min): before {}, after {}; {} CPUs".format(
        *(", ".join(f"{x:.2f}" for x in figures.raw[k]) for k in ("load_before", "load_after")),
        figures.raw["cpus"]))
    for key in ("light_first_problem", "full_first_problem"):
        if figures.raw.get(key):
            print(f"note: {key.replace('_', ' ')}: {figures.raw[key]}")
    if args.json:
        Path(args.json).write_text(json.dumps(asdict(figures), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
