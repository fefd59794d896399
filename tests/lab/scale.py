"""Many lab targets for the exporter at scale: the CI test and ``bench/exporter_bench.py``.

The server namespace answers on N addresses of 198.19.0.0/22 (one ``ip -batch``; the router
routes the /22 to the server, the client reaches it through its default route), with ONE
asyncio server (:data:`TARGETS`) on three ports of every address:

- ``FAST_PORT``: an HTTP server that answers at once: ``/`` 200, ``/broken`` 503;
- ``SLOW_PORT``: the same, but every answer comes ``SLOW_S`` seconds after the request;
- ``CLOSED_PORT``: nothing listens (the kernel answers RST).

:func:`mix` turns addresses into the kinds of target a monitoring system has: healthy tcp and
http, slow but healthy http, a refused port (TCP_REFUSED) and a failing application
(HTTP_SERVER_ERROR). :func:`prometheus_config` scrapes them through one exporter, and
:func:`query` asks Prometheus' HTTP API from inside the client namespace.

Safety: every address is in 198.18.0.0/15, every packet stays inside lab namespaces, no shell,
and the lab's teardown ends the servers by PID.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from netcheck.lab.topology import SERVER_V4, Lab

Network = ipaddress.IPv4Network
SWEEP = ipaddress.IPv4Network("198.19.0.0/22")
LAB_RANGE = ipaddress.IPv4Network("198.18.0.0/15")
FAST_PORT, SLOW_PORT, CLOSED_PORT = 8080, 8081, 8082
SLOW_S = 1.5
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
KINDS = ("tcp", "http", "slow", "refused", "http_error")
# The root cause each failing kind must carry.
EXPECTED_CODE = {"refused": "TCP_REFUSED", "http_error": "HTTP_SERVER_ERROR"}

# argv: fast port, slow port, seconds the slow one waits, ready file.
TARGETS = r"""
import asyncio, sys
fast, slow, wait, ready = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
def answer(status, body):
    return (f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode() + body
OK, BROKEN = answer("200 OK", b"ok\n"), answer("503 Service Unavailable", b"down\n")
async def serve(reader, writer, delay):
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        if delay:
            await asyncio.sleep(delay)
        writer.write(BROKEN if b" /broken " in head.split(b"\r\n", 1)[0] else OK)
        await writer.drain()
    except (OSError, EOFError, asyncio.LimitOverrunError, asyncio.TimeoutError):
        pass
    finally:
        writer.close()
async def main():
    servers = [await asyncio.start_server(lambda r, w, d=d: serve(r, w, d), "0.0.0.0", port,
                                          backlog=4096)
               for port, d in ((fast, 0.0), (slow, wait))]
    open(ready, "w").close()
    await asyncio.gather(*(s.serve_forever() for s in servers))
asyncio.run(main())
"""

# Runs inside the client namespace: poll Prometheus' query API until every expected series
# has its value (or the time is up); print what the last queries returned.
POLL = r"""
import json, sys, time, urllib.parse, urllib.request
base, wanted, limit = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + limit
seen = {}
while True:
    seen = {}
    for query in wanted:
        url = base + "/api/v1/query?" + urllib.parse.urlencode({"query": query})
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                data = json.load(r)["data"]["result"]
        except OSError:
            data = []
        seen[query] = [[s["metric"], s["value"][1]] for s in data]
    if all(len(seen[q]) >= n for q, n in wanted.items()) or time.monotonic() > deadline:
        break
    time.sleep(0.25)
print(json.dumps(seen))
"""


@dataclass(frozen=True)
class Target:
    """One scraped target and what it is."""

    url: str
    kind: str  # one of KINDS

    @property
    def code(self) -> Optional[str]:
        """The root cause it must carry (None: it must work)."""
        return EXPECTED_CODE.get(self.kind)


def tool(name: str) -> str:
    found = shutil.which(name, path=SYSTEM_PATH) or shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found")
    return found


def addresses(n: int, network: Network = SWEEP) -> list[str]:
    """n addresses of the sweep network (or ``network``, inside 198.18.0.0/15), skipping .0
    and .255 of each /24."""
    if not network.subnet_of(LAB_RANGE):
        raise ValueError(f"{network} is outside the lab's {LAB_RANGE}")
    found = [str(a) for a in network.hosts() if not str(a).endswith((".0", ".255"))]
    if n > len(found):
        raise ValueError(f"at most {len(found)} targets fit in {network}")
    return found[:n]


def add_addresses(lab: Lab, addrs: Sequence[str], network: Network = SWEEP) -> None:
    """The server answers on every address (one ip -batch), the router routes the sweep
    network (or ``network``) to it, and the server's accept backlog and SYN queue have room
    for a burst."""
    batch = "".join(f"addr add {a}/32 dev eth0\n" for a in addrs)
    lab.exec("server", [tool("ip"), "-batch", "-"], input=batch, check=True, timeout=120)
    lab.ip("router", "route", "add", str(network), "via", SERVER_V4)
    lab.exec("server", [tool("sysctl"), "-q", "-w", "net.core.somaxconn=4096",
                        "net.ipv4.tcp_max_syn_backlog=8192"], check=True)


def start_server(lab: Lab, name: str, script: str, *args: str) -> None:
    """``python -c script *args READY`` in the server namespace, waited for until it writes
    its ready file (its last argument)."""
    ready = lab.state_dir / f"{name}.ready"
    proc = lab.popen("server", [sys.executable, "-c", script, *args, str(ready)], name=name)
    deadline = time.monotonic() + 15
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start: {lab.log(name)}")
        time.sleep(0.02)


def prepare(lab: Lab, n: int, slow_s: float = SLOW_S) -> list[str]:
    """n sweep addresses on the server (:func:`add_addresses`), the target server listening
    on every one of them; returns the addresses."""
    addrs = addresses(n)
    add_addresses(lab, addrs)
    start_server(lab, "scale-targets", TARGETS, str(FAST_PORT), str(SLOW_PORT), str(slow_s))
    return addrs


def mix(addrs: Sequence[str], counts: dict[str, int]) -> list[Target]:
    """``counts[kind]`` targets of each kind, on consecutive addresses, in KINDS' order."""
    urls = {"tcp": ("tcp", FAST_PORT, ""), "http": ("http", FAST_PORT, "/"),
            "slow": ("http", SLOW_PORT, "/"), "refused": ("tcp", CLOSED_PORT, ""),
            "http_error": ("http", FAST_PORT, "/broken")}
    out: list[Target] = []
    free = iter(addrs)
    for kind in KINDS:
        scheme, port, path = urls[kind]
        for _ in range(counts.get(kind, 0)):
            out.append(Target(f"{scheme}://{next(free)}:{port}{path}", kind))
    return out


def prometheus_config(exporter: str, targets: Sequence[str], interval: float,
                      timeout: float, module: Optional[str] = None) -> str:
    """One netcheck job scraping every target through the exporter (with ``module`` when
    given), one for the exporter itself."""
    listed = json.dumps(list(targets))
    params = f"\n    params:\n      module: [{module}]" if module else ""
    return f"""\
global:
  scrape_interval: {interval:g}s
  scrape_timeout: {timeout:g}s
scrape_configs:
  - job_name: netcheck
    metrics_path: /probe{params}
    static_configs:
      - targets: {listed}
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: {exporter}
  - job_name: netcheck_exporter
    static_configs:
      - targets: ["{exporter}"]
"""


def start_prometheus(lab: Lab, folder: Path, config: str, listen: str) -> Any:
    """Debian's Prometheus in the client namespace, its config and data in ``folder``."""
    path = folder / "prometheus.yml"
    path.write_text(config)
    data = folder / "data"
    data.mkdir(exist_ok=True)
    return lab.popen("client", [tool("prometheus"), f"--config.file={path}",
                                f"--storage.tsdb.path={data}", f"--web.listen-address={listen}",
                                "--log.level=warn"], name="prometheus")


def round_queries(seconds: float, job: str = "netcheck") -> tuple[str, str, str]:
    """PromQL over the last ``seconds``, per target: its lowest ``up`` (1: no scrape missed),
    how many scrapes it had, and its slowest scrape."""
    window = f"{{job=\"{job}\"}}[{seconds:g}s]"
    return (f"min_over_time(up{window})", f"count_over_time(up{window})",
            f"max_over_time(scrape_duration_seconds{window})")


def query(lab: Lab, base: str, queries: Sequence[str]) -> dict[str, list[tuple[dict[str, str],
                                                                             str]]]:
    """Each PromQL query's instant result: [(labels, value)] (asked once, inside the client)."""
    wanted = json.dumps({q: 0 for q in queries})
    proc = lab.exec("client", [sys.executable, "-c", POLL, base, wanted, "0"], timeout=60,
                    check=True)
    return {q: [(m, v) for m, v in rows] for q, rows in json.loads(proc.stdout).items()}


def by_instance(rows: Sequence[tuple[dict[str, str], str]]) -> dict[str, float]:
    """{instance: value} of a query's rows."""
    return {m.get("instance", ""): float(v) for m, v in rows}


def rss_mb(pid: int) -> tuple[float, float]:
    """(resident now, peak resident) of a process, in MB, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()

    def mb(key: str) -> float:
        return float(fields.get(key, "0 kB").split()[0]) / 1024

    return mb("VmRSS"), mb("VmHWM")
