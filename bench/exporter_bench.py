"""Exporter speed: ``netcheck serve`` beside blackbox_exporter, a real Prometheus over 1 000 lab
targets, and ``netcheck batch --ladder on-failure`` over 10 000.

Run as root: ``.venv/bin/python bench/exporter_bench.py [--quick] [--json FILE]``.

One lab, one run, four sections (every figure measured in this run):

1. **Side by side.** Both exporters in the client namespace, the same healthy targets on the
   server's sweep addresses (:mod:`tests.lab.scale`), 16 concurrent scrapers for 15 s per
   exporter and module (tcp, then http), interleaved: probes per second, p50 and p99 of the
   scrape, and each exporter's CPU time per probe (from /proc). blackbox_exporter is Debian's
   ``prometheus-blackbox-exporter``, installed here through ``tools/ensure_debs.py`` (the
   bench's own dependency, not the lab's). Targets: netcheck's rate at least half blackbox's,
   its p99 under 100 ms.
2. **Failing targets.** A refused port, a silently dropped one and an application answering
   503, each scraped with Prometheus' 15 s timeout: the whole diagnosis and its root cause
   must come back within it.
3. **Prometheus, 1 000 targets at 15 s for 5 minutes** (healthy tcp and http, slow, refused,
   failing): no missed scrape (``up`` 1 at every round, ``scrape_duration_seconds`` under the
   timeout), the right root causes, and the exporter's resident memory (now and peak) under
   200 MB. Its CPU time over the run gives the sizing figure: targets per core at 15 s.
4. **batch --ladder on-failure** over 10 000 healthy tcp targets (1 000 addresses × 10 ports):
   at least 1 000 targets a second, and its peak memory; ``--ladder always`` over 300 of them
   for comparison.

``--quick`` shortens everything (5 s scrapers, 1 minute of Prometheus, 2 000 batch targets) for
trying the bench out; its figures are not the ones to report. PASS/MISS is printed, never
raised; the JSON goes to ``bench/results/exporter.json``.

Safety: every address is in 198.18.0.0/15, every packet stays inside lab namespaces, no shell,
and every process started here is stopped by PID (the lab's teardown as a backstop).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

from batch_bench import Figures, netcheck_ok, render, run_in_client

if TYPE_CHECKING:
    from netcheck.lab.topology import Lab

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests.lab.scale: the lab's sweep helpers
RESULTS = REPO / "bench" / "results" / "exporter.json"
NETCHECK_LISTEN = "127.0.0.1:9115"
BLACKBOX_LISTEN = "127.0.0.1:9116"
PROMETHEUS_LISTEN = "127.0.0.1:9090"
SCRAPERS = 16
SCRAPE_SECONDS = 15.0
SCRAPE_TIMEOUT = 15.0  # what the side-by-side scrapers and the failing probes send
POOL = 64  # healthy addresses the side-by-side scrapers go round
N_PROMETHEUS = 1000
PROM_INTERVAL = 15.0
PROM_TIMEOUT = 10.0
PROM_MINUTES = 5.0
N_BATCH = 10_000
BATCH_PORTS = 10
BATCH_PORT = 9000
N_BATCH_ALWAYS = 300
TARGET_RATIO = 0.5
TARGET_P99_MS = 100.0
TARGET_RSS_MB = 200.0
TARGET_BATCH_RATE = 1000.0
DROPPED_PORT = 8083
PROM_MIX = {"tcp": 450, "http": 400, "slow": 100, "refused": 30, "http_error": 20}

BLACKBOX_CONFIG = """\
modules:
  tcp:
    prober: tcp
    timeout: 15s
  http:
    prober: http
    timeout: 15s
    http:
      preferred_ip_protocol: ip4
"""

# Runs in the client namespace. argv: host, port, JSON list of request paths, scrapers,
# seconds, the exporter's PID. GET with Prometheus' timeout header, one connection each, as
# many as the scrapers manage; prints rate, latencies, failures and the CPU time per probe.
SCRAPER = r"""
import asyncio, json, re, sys, time
host, port, paths = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
scrapers, seconds, pid = int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
def cpu():
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100
lat, bad, turn = [], [], [0]
async def one(path):
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nX-Prometheus-Scrape-Timeout-Seconds:"
                 f" 15\r\nConnection: close\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    lat.append(time.perf_counter() - t0)
    body = re.sub(rb"\r\n[0-9a-fA-F]+\r\n", b"", data)  # blackbox answers chunked
    if not data.startswith(b"HTTP/1.1 200") or b"\nprobe_success 1" not in body:
        bad.append(data[:200].decode("latin-1"))
async def scraper(end):
    while time.monotonic() < end:
        turn[0] += 1
        try:
            await one(paths[turn[0] % len(paths)])
        except OSError as exc:
            bad.append(str(exc))
async def main():
    c0, t0 = cpu(), time.monotonic()
    await asyncio.gather(*(scraper(t0 + seconds) for _ in range(scrapers)))
    wall, used = time.monotonic() - t0, cpu() - c0
    lat.sort()
    p50, p99 = lat[len(lat) // 2] * 1000, lat[int(len(lat) * .99)] * 1000
    print(json.dumps({"probes": len(lat), "rate": len(lat) / wall, "p50_ms": p50, "p99_ms": p99,
                      "cpu_ms_per_probe": used / max(1, len(lat)) * 1000, "bad": len(bad),
                      "first_bad": bad[:2]}))
asyncio.run(main())
"""

# Runs in the server namespace. argv: first port, ports, ready file. Accepts on every sweep
# address and closes at once: the batch's 10 000 targets are 1 000 addresses x 10 ports.
BATCH_LISTENER = r"""
import asyncio, sys
first, count, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
async def shut(reader, writer):
    writer.close()
async def main():
    servers = [await asyncio.start_server(shut, "0.0.0.0", first + i, backlog=4096)
               for i in range(count)]
    open(ready, "w").close()
    await asyncio.gather(*(s.serve_forever() for s in servers))
asyncio.run(main())
"""

# Runs in the client namespace. argv: URL, seconds. GET with Prometheus' 15 s timeout header.
PROBE = r"""
import json, sys, time, urllib.request
request = urllib.request.Request(sys.argv[1], headers={
    "X-Prometheus-Scrape-Timeout-Seconds": sys.argv[2]})
start = time.monotonic()
with urllib.request.urlopen(request, timeout=float(sys.argv[2]) + 5) as r:
    body = r.read().decode()
print(json.dumps({"seconds": time.monotonic() - start, "body": body}))
"""

NO_PROXY_ENV = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}


def blackbox_binary() -> str:
    """Debian's blackbox_exporter, installed through tools/ensure_debs.py when missing."""
    from tests.lab import scale

    subprocess.run([sys.executable, str(REPO / "tools" / "ensure_debs.py"),
                    "prometheus-blackbox-exporter"], check=False, timeout=900)
    try:
        return scale.tool("prometheus-blackbox-exporter")
    except RuntimeError:
        raise SystemExit("prometheus-blackbox-exporter missing (apt-get install "
                         "prometheus-blackbox-exporter)") from None


def wait_log(lab: Lab, name: str, needle: str, proc: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while needle not in lab.log(name):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{name} did not start:\n{lab.log(name)[-2000:]}")
        time.sleep(0.05)


def start_netcheck(lab: Lab, *args: str) -> Any:
    name = f"netcheck-serve-{len(lab.pids)}"  # a log of its own: "listening on" is its own
    proc = lab.popen("client", [sys.executable, "-m", "netcheck", "serve", "--listen",
                                NETCHECK_LISTEN, *args], name=name, env=NO_PROXY_ENV)
    wait_log(lab, name, "listening on", proc)
    return proc


def start_blackbox(lab: Lab, folder: Path) -> Any:
    config = folder / "blackbox.yml"
    config.write_text(BLACKBOX_CONFIG)
    proc = lab.popen("client", [blackbox_binary(), f"--config.file={config}",
                                f"--web.listen-address={BLACKBOX_LISTEN}"], name="blackbox",
                     env=NO_PROXY_ENV)
    wait_log(lab, "blackbox", "Listening on", proc)
    return proc


def stop(proc: Any) -> None:
    from tests.canary import stop as stop_by_pid

    stop_by_pid(proc)


def scrape(lab: Lab, listen: str, paths: Sequence[str], pid: int,
           seconds: float) -> dict[str, Any]:
    host, port = listen.rsplit(":", 1)
    proc = lab.exec("client", [sys.executable, "-c", SCRAPER, host, port, json.dumps(list(paths)),
                               str(SCRAPERS), str(seconds), str(pid)], timeout=seconds + 120,
                    check=True, env=NO_PROXY_ENV)
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def side_by_side(lab: Lab, figures: Figures, addrs: Sequence[str], folder: Path,
                 seconds: float) -> None:
    """Section 1: the same targets, the same scrapers, both exporters, interleaved."""
    from tests.lab import scale

    pool = addrs[:POOL]
    paths = {
        ("blackbox", "tcp"): [f"/probe?module=tcp&target={a}:{scale.FAST_PORT}" for a in pool],
        ("netcheck", "tcp"): [f"/probe?target=tcp://{a}:{scale.FAST_PORT}" for a in pool],
        ("blackbox", "http"): [f"/probe?module=http&target=http://{a}:{scale.FAST_PORT}/"
                               for a in pool],
        ("netcheck", "http"): [f"/probe?target=http://{a}:{scale.FAST_PORT}/" for a in pool],
    }
    netcheck = start_netcheck(lab, "--allow", str(scale.SWEEP))
    blackbox = start_blackbox(lab, folder)
    results: dict[tuple[str, str], list[dict[str, Any]]] = {k: [] for k in paths}
    try:
        pids = {"netcheck": netcheck.pid, "blackbox": blackbox.pid}
        listen = {"netcheck": NETCHECK_LISTEN, "blackbox": BLACKBOX_LISTEN}
        for module in ("tcp", "http"):  # warm-up: neighbour entries, imports, caches
            for who in ("netcheck", "blackbox"):
                scrape(lab, listen[who], paths[who, module], pids[who], 1.0)
        for module in ("tcp", "http"):
            for who in ("blackbox", "netcheck"):
                results[who, module].append(scrape(lab, listen[who], paths[who, module],
                                                   pids[who], seconds))
    finally:
        stop(netcheck)
        stop(blackbox)
    for module in ("tcp", "http"):
        bb, nc = results["blackbox", module][0], results["netcheck", module][0]
        ratio = nc["rate"] / bb["rate"] if bb["rate"] else 0.0
        for who, r in (("blackbox_exporter", bb), ("netcheck serve", nc)):
            figures.row(f"{who}, {module} module ({SCRAPERS} scrapers, {seconds:g} s)",
                        f"{r['rate']:.0f}/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
                        f"{r['cpu_ms_per_probe']:.2f} ms CPU/probe, {r['bad']} failed")
        figures.row(f"  netcheck / blackbox, {module}: probe rate", f"{ratio:.2f}",
                    f">= {TARGET_RATIO}", ratio >= TARGET_RATIO and nc["bad"] == 0,
                    f"{ratio:.2f}x blackbox")
        figures.row(f"  netcheck, {module}: p99", f"{nc['p99_ms']:.1f} ms",
                    f"< {TARGET_P99_MS:.0f} ms", nc["p99_ms"] < TARGET_P99_MS)
    figures.raw["side_by_side"] = {f"{w}/{m}": v for (w, m), v in results.items()}


def failing(lab: Lab, figures: Figures, addrs: Sequence[str]) -> None:
    """Section 2: a failing target's whole diagnosis within Prometheus' timeout."""
    from tests.lab import scale

    lab.nft("server", "table inet bench {\n chain input {\n  type filter hook input priority 0;"
                      f"\n  tcp dport {DROPPED_PORT} drop\n }}\n}}\n")
    address = addrs[-1]
    cases = [(f"tcp://{address}:{scale.CLOSED_PORT}", "TCP_REFUSED"),
             (f"tcp://{address}:{DROPPED_PORT}", "TCP_FILTERED"),
             (f"http://{address}:{scale.FAST_PORT}/broken", "HTTP_SERVER_ERROR")]
    netcheck = start_netcheck(lab, "--allow", str(scale.SWEEP))
    found = []
    try:
        for url, code in cases:
            proc = lab.exec("client", [sys.executable, "-c", PROBE,
                                       f"http://{NETCHECK_LISTEN}/probe?target={url}",
                                       f"{SCRAPE_TIMEOUT:g}"], timeout=SCRAPE_TIMEOUT + 20,
                            check=True, env=NO_PROXY_ENV)
            answer = json.loads(proc.stdout)
            got = [line for line in answer["body"].splitlines()
                   if line.startswith("netcheck_root_cause{")]
            ok = answer["seconds"] < SCRAPE_TIMEOUT and any(f'code="{code}"' in g for g in got)
            found.append({"url": url, "seconds": round(answer["seconds"], 3), "root": got})
            figures.row(f"failing target, full diagnosis: {url.split('//')[1]}",
                        f"{answer['seconds']:.2f} s, {code if ok else got or 'no root cause'}",
                        f"< {SCRAPE_TIMEOUT:g} s, {code}", ok)
    finally:
        stop(netcheck)
    figures.raw["failing"] = found


def prometheus_run(lab: Lab, figures: Figures, addrs: Sequence[str], folder: Path,
                   minutes: float) -> None:
    """Section 3: a real Prometheus, 1 000 targets every 15 s, for minutes."""
    from tests.lab import scale

    targets = scale.mix(addrs, PROM_MIX)
    netcheck = start_netcheck(lab, "--allow", str(scale.SWEEP))
    config = scale.prometheus_config(NETCHECK_LISTEN, [t.url for t in targets], PROM_INTERVAL,
                                     PROM_TIMEOUT)
    prometheus = scale.start_prometheus(lab, folder, config, PROMETHEUS_LISTEN)
    rss: list[float] = []
    try:
        cpu0, t0 = _cpu_seconds(netcheck.pid), time.monotonic()
        end = t0 + minutes * 60 + PROM_INTERVAL
        while time.monotonic() < end:
            time.sleep(5)
            rss.append(scale.rss_mb(netcheck.pid)[0])
        cpu, wall = _cpu_seconds(netcheck.pid) - cpu0, time.monotonic() - t0
        peak = scale.rss_mb(netcheck.pid)[1]
        up_min, rounds, slowest = scale.round_queries(minutes * 60)
        ladders = "netcheck_exporter_ladders_total"
        busy = 'netcheck_exporter_rejections_total{reason="busy"}'
        seen = scale.query(lab, f"http://{PROMETHEUS_LISTEN}", [
            up_min, rounds, slowest, "probe_success", "netcheck_root_cause", ladders, busy])
    finally:
        stop(prometheus)
        stop(netcheck)
    up = scale.by_instance(seen[up_min])
    missed = sum(1 for t in targets if up.get(t.url) != 1.0)
    count = scale.by_instance(seen[rounds])
    durations = scale.by_instance(seen[slowest])
    success = scale.by_instance(seen["probe_success"])
    wrong = [t.url for t in targets if success.get(t.url) != (0.0 if t.code else 1.0)]
    causes = {m.get("instance"): m.get("code") for m, _ in seen["netcheck_root_cause"]}
    bad_causes = [t.url for t in targets if causes.get(t.url) != t.code]
    n = len(targets)
    expected_rounds = minutes * 60 / PROM_INTERVAL
    figures.row(f"Prometheus, {n} targets every {PROM_INTERVAL:g} s for {minutes:g} min: "
                "targets with a missed scrape", f"{missed} (rounds per target: "
                f"{min(count.values(), default=0):.0f}-{max(count.values(), default=0):.0f}, "
                f"about {expected_rounds:.0f} expected)", "0", missed == 0)
    worst = max(durations.values(), default=float("nan"))
    figures.row("  slowest scrape (scrape_duration_seconds)", f"{worst:.2f} s",
                f"< {PROM_TIMEOUT:g} s (the timeout)", worst < PROM_TIMEOUT)
    figures.row("  probe_success and root causes as expected",
                f"{n - len(wrong)}/{n} success right, {n - len(bad_causes)}/{n} causes right",
                "all", not wrong and not bad_causes)
    figures.row("  exporter memory: resident now / peak", f"{rss[-1] if rss else 0:.0f} MB / "
                f"{peak:.0f} MB", f"< {TARGET_RSS_MB:.0f} MB", peak < TARGET_RSS_MB)
    per_core = n / (cpu / wall) if cpu > 0 else float("inf")
    figures.row("  exporter CPU over the run (sizing)", f"{cpu / wall * 100:.1f} % of one core "
                f"= {per_core:.0f} targets per core at {PROM_INTERVAL:g} s", "reported")
    figures.raw["prometheus"] = {
        "targets": n, "minutes": minutes, "missed": missed, "wrong_success": wrong[:10],
        "wrong_causes": bad_causes[:10], "slowest_s": worst, "rss_mb": rss, "peak_mb": peak,
        "cpu_s": cpu, "wall_s": wall, "ladders": seen[ladders], "busy": seen[busy],
        "top_durations": sorted(durations.items(), key=lambda x: -x[1])[:10]}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def batch_run(lab: Lab, figures: Figures, addrs: Sequence[str], n: int) -> None:
    """Section 4: batch --ladder on-failure over n healthy tcp targets."""
    from tests.lab import scale

    scale.start_server(lab, "batch-listener", BATCH_LISTENER, str(BATCH_PORT),
                       str(BATCH_PORTS))
    targets = [f"tcp://{a}:{BATCH_PORT + p}" for p in range(BATCH_PORTS) for a in addrs][:n]
    batch = [sys.executable, "-m", "netcheck", "batch", "-", "--format", "json", "--timeout",
             "2"]
    # The whole ladder first: after 10 000 connects in a few seconds its path rungs would
    # measure the flood's own traffic.
    always = run_in_client(lab, [*batch, "--ladder", "always", "--concurrency", "64"],
                           "".join(t + "\n" for t in targets[:N_BATCH_ALWAYS]))
    fast = run_in_client(lab, [*batch, "--ladder", "on-failure", "--concurrency", "512"],
                         "".join(t + "\n" for t in targets))
    ok_fast, _, fast_problem = netcheck_ok(fast.stdout)
    ok_always, _, always_problem = netcheck_ok(always.stdout)
    rate, rate_always = n / fast.seconds, N_BATCH_ALWAYS / always.seconds
    figures.row(f"batch --ladder on-failure, {n} healthy tcp targets",
                f"{fast.seconds:.2f} s = {rate:.0f}/s, {ok_fast}/{n} ok",
                f">= {TARGET_BATCH_RATE:.0f}/s", rate >= TARGET_BATCH_RATE and ok_fast == n,
                f"{rate / rate_always:.1f}x --ladder always")
    figures.row(f"  --ladder always, {N_BATCH_ALWAYS} of them (concurrency 64)",
                f"{always.seconds:.2f} s = {rate_always:.0f}/s, {ok_always}/{N_BATCH_ALWAYS} ok")
    figures.row("  batch --ladder on-failure: peak RSS", f"{fast.rss_mb or 0:.0f} MB",
                f"< {TARGET_RSS_MB:.0f} MB", (fast.rss_mb or 0) < TARGET_RSS_MB)
    figures.raw["batch"] = {"targets": n, "seconds": fast.seconds, "rss_mb": fast.rss_mb,
                            "rc": fast.rc, "stderr": fast.stderr[-500:],
                            "first_problem": fast_problem, "always_seconds": always.seconds,
                            "always_first_problem": always_problem}


def bench(quick: bool) -> Figures:
    """Build the lab, measure every section in one run, tear the lab down."""
    from netcheck.lab.topology import Lab
    from tests.lab import scale

    figures = Figures(targets=N_PROMETHEUS)
    seconds = 5.0 if quick else SCRAPE_SECONDS
    minutes = 1.0 if quick else PROM_MINUTES
    n_batch = 2000 if quick else N_BATCH
    with Lab() as lab, tempfile.TemporaryDirectory() as tmp:
        addrs = scale.prepare(lab, N_PROMETHEUS + 1)
        side_by_side(lab, figures, addrs, Path(tmp), seconds)
        failing(lab, figures, addrs)
        prometheus_run(lab, figures, addrs, Path(tmp), minutes)
        batch_run(lab, figures, addrs[:N_PROMETHEUS], n_batch)
    figures.raw["load_average"] = os.getloadavg()
    figures.raw["cpus"] = os.cpu_count()
    return figures


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true",
                        help="shorter runs, to try the bench out (not the figures to report)")
    parser.add_argument("--json", metavar="FILE", default=str(RESULTS),
                        help=f"where the figures go as JSON (default {RESULTS})")
    args = parser.parse_args(argv)
    from netcheck.lab.topology import lab_support_problem

    problem = lab_support_problem()
    if problem:
        print(f"exporter bench skipped: {problem}")
        return 0
    figures = bench(args.quick)
    print(render(figures))
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on "
          f"{os.cpu_count()} CPUs")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(asdict(figures), indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
