"""``netcheck serve`` in the lab's client, scraped by a real Prometheus in the same namespace.

The exporter listens on the client's own 127.0.0.1 and probes the lab's server; Prometheus
(Debian's package, its own config and data in a temporary folder, started and stopped by
PID) scrapes it every second, and its HTTP API must then hold the values: probe_success 1
for the open port, 0 and the root cause for the refused one. The exporter also refuses a
target outside its allow-list before any packet, and answers a dropped port within its
deadline. A redirect from an allowed server to a canary outside the allow-list sends not
one packet there (tcpdump in the canary's namespace), and the report says the hop was refused.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from netcheck.lab.topology import DNS_V4, SERVER_V4, Lab
from tests import canary
from tests.canary import stop
from tests.schema import validate_report

from . import scale
from .conftest import lab_required
from .scale import POLL

pytestmark = pytest.mark.lab

EXPORTER = "127.0.0.1:9115"
PROMETHEUS = "127.0.0.1:9090"

# Runs inside the client namespace: GET a URL, print status, elapsed time and body as JSON.
FETCH = r"""
import json, sys, time, urllib.error, urllib.request
start = time.monotonic()
try:
    with urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])) as r:
        status, body = r.status, r.read().decode()
except urllib.error.HTTPError as exc:
    status, body = exc.code, exc.read().decode()
except OSError as exc:
    status, body = 0, str(exc)
print(json.dumps({"status": status, "elapsed": time.monotonic() - start, "body": body}))
"""

# The machine's proxy settings must never steer lab traffic (nor the exporter's own fetches).
NO_PROXY_ENV = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}


def fetch(lab: Lab, url: str, timeout: float = 20) -> dict[str, Any]:
    proc = lab.exec("client", [sys.executable, "-c", FETCH, url, str(timeout)],
                    timeout=timeout + 10, check=True, env=NO_PROXY_ENV)
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def start_exporter(lab: Lab, *args: str) -> subprocess.Popen:  # type: ignore[type-arg]
    proc = lab.popen("client", [sys.executable, "-m", "netcheck", "serve", "--listen", EXPORTER,
                                *args], name="exporter", env=NO_PROXY_ENV)
    deadline = time.monotonic() + 15
    while "listening on" not in lab.log("exporter"):
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"exporter did not start:\n{lab.log('exporter')}")
        time.sleep(0.05)
    return proc


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        if lab_required():
            pytest.fail("prometheus missing: apt-get install prometheus (Makefile LAB_DEBS)")
        pytest.skip("prometheus not installed (Debian package prometheus)")
    return found


def test_prometheus_scrapes_the_exporter_in_the_lab(lab: Lab, tmp_path: Path) -> None:
    binary = prometheus_binary()
    config = tmp_path / "netcheck.toml"
    config.write_text('[modules.connect]\nonly = ["network.target", "transport.tcp"]\n'
                      "timeout = 0.4\n")
    exporter = start_exporter(lab, "--allow", "198.18.2.0/24", "--config", str(config))
    prom_config = tmp_path / "prometheus.yml"
    prom_config.write_text(scale.prometheus_config(
        EXPORTER, ["tcp://198.18.2.10:22", "tcp://198.18.2.10:2222"], 1, 1, module="connect"))
    data = tmp_path / "data"
    data.mkdir()
    prometheus = lab.popen("client", [binary, f"--config.file={prom_config}",
                                      f"--storage.tsdb.path={data}",
                                      f"--web.listen-address={PROMETHEUS}"], name="prometheus")
    try:
        wanted = {"probe_success": 2, "netcheck_root_cause": 1,
                  'up{job="netcheck_exporter"}': 1}
        proc = lab.exec("client", [sys.executable, "-c", POLL, f"http://{PROMETHEUS}",
                                   json.dumps(wanted), "25"], timeout=40, check=True)
        seen = json.loads(proc.stdout)
        success = {m["instance"]: v for m, v in seen["probe_success"]}
        assert success == {"tcp://198.18.2.10:22": "1", "tcp://198.18.2.10:2222": "0"}, (
            seen, lab.log("prometheus")[-2000:], lab.log("exporter")[-2000:])
        (metric, value), = seen["netcheck_root_cause"]
        assert (metric["instance"], metric["code"], metric["layer"], value) == (
            "tcp://198.18.2.10:2222", "TCP_REFUSED", "4", "1")
        assert [v for _, v in seen['up{job="netcheck_exporter"}']] == ["1"]
    finally:
        stop(prometheus)
        stop(exporter)
    assert prometheus.returncode is not None and exporter.returncode == 0


def test_exporter_refuses_outside_targets_before_any_packet(lab: Lab) -> None:
    ready = lab.state_dir / "listener.ready"
    hits = lab.state_dir / "listener.hits"
    # A listener we control in the DNS namespace, outside the allow-list: it records
    # every connection that reaches it.
    listener = lab.popen("dns", [sys.executable, "-c", (
        "import socket, sys\n"
        "s = socket.socket(); s.bind(('0.0.0.0', 7000)); s.listen(16)\n"
        "open(sys.argv[1], 'w').close()\n"
        "while True:\n"
        "    c, peer = s.accept(); open(sys.argv[2], 'a').write(peer[0] + '\\n'); c.close()\n"),
        str(ready), str(hits)], name="listener")
    exporter = start_exporter(lab, "--allow", "198.18.2.0/24")
    try:
        deadline = time.monotonic() + 10
        while not ready.exists():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        got = fetch(lab, f"http://{EXPORTER}/probe?target=tcp://198.18.3.53:7000")
        assert got["status"] == 400 and "not in the allow-list" in got["body"]
        got = fetch(lab, f"http://{EXPORTER}/probe?target=tcp://198.18.3.53:7000&format=json")
        assert got["status"] == 400
        validate_report(json.loads(got["body"]))
        time.sleep(0.3)
        assert not hits.exists() or hits.read_text() == ""
        # The same listener, reached from the client directly, is recorded: the check works.
        lab.exec("client", [sys.executable, "-c", "import socket; socket.create_connection("
                            "('198.18.3.53', 7000), timeout=2).close()"], check=True)
        deadline = time.monotonic() + 5
        while not (hits.exists() and hits.read_text()):
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        stop(exporter)
        stop(listener)


def test_a_port_that_drops_syns_answers_within_the_deadline(lab: Lab) -> None:
    lab.nft("server", "table inet t {\n chain input {\n type filter hook input priority 0;\n"
            " tcp dport 22 drop\n }\n}\n")
    exporter = start_exporter(lab, "--allow", "198.18.2.0/24", "--deadline", "2")
    try:
        got = fetch(lab, f"http://{EXPORTER}/probe?target=tcp://198.18.2.10:22")
        assert got["status"] == 200, got
        assert got["elapsed"] < 2.6, got["elapsed"]
        assert "probe_success 0.0" in got["body"]
        got = fetch(lab, f"http://{EXPORTER}/probe?target=tcp://198.18.2.10:22&format=json")
        doc = json.loads(got["body"])
        validate_report(doc)
        assert got["elapsed"] < 2.6 and doc["verdict"] in ("broken", "unknown")
    finally:
        stop(exporter)


TCPDUMP = shutil.which("tcpdump") or shutil.which("tcpdump", path="/usr/sbin:/usr/bin")


def syns_in(capture: Path) -> list[str]:
    """The connection attempts (SYN without ACK) a capture holds, as tcpdump prints them."""
    assert TCPDUMP
    proc = subprocess.run([TCPDUMP, "-n", "-r", str(capture),
                           "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn"],
                          capture_output=True, text=True, timeout=10, check=True)
    return proc.stdout.splitlines()


def test_a_redirect_outside_the_allow_list_sends_not_one_packet_there(
        lab: Lab, tmp_path: Path) -> None:
    """An allowed server (198.18.2.10) answers 302 to a canary in the DNS namespace, once by
    address and once by a name that resolves there: the exporter refuses both hops, and the
    capture on the canary's own interface holds only the control connection made by hand."""
    if TCPDUMP is None:
        pytest.skip("tcpdump not installed")
    lab.add_dns_records(("canary.lab.test.", "A", [DNS_V4]))
    hits, capture = lab.state_dir / "canary.hits", lab.state_dir / "canary.pcap"
    helpers = [lab.popen("dns", [sys.executable, "-I", "-c", canary.CANARY, "0.0.0.0", "7000",
                                 str(hits), str(lab.state_dir / "canary.ready")], name="canary")]
    for port, location in ((8080, f"http://{DNS_V4}:7000/secret"),
                           (8081, "http://canary.lab.test:7000/")):
        helpers.append(lab.popen("server", [
            sys.executable, "-I", "-c", canary.REDIRECTOR, SERVER_V4, str(port), location,
            str(lab.state_dir / f"redirector{port}.ready")], name=f"redirector{port}"))
    for proc, ready in zip(helpers, ("canary", "redirector8080", "redirector8081")):
        canary.wait_ready(lab.state_dir / f"{ready}.ready", proc)
    tcpdump = lab.popen("dns", [TCPDUMP, "-i", "eth0", "-n", "-U", "--immediate-mode", "-w",
                                str(capture), "tcp port 7000"], name="canary-tcpdump")
    deadline = time.monotonic() + 5
    while "listening on" not in lab.log("canary-tcpdump"):
        assert tcpdump.poll() is None and time.monotonic() < deadline, lab.log("canary-tcpdump")
        time.sleep(0.02)
    exporter = start_exporter(lab, "--allow", "198.18.2.0/24")
    try:
        refusals = {
            8080: f"redirect to http://{DNS_V4}:7000/secret refused: outside the exporter's "
                  "allow-list",
            8081: f"redirect to http://canary.lab.test:7000/ refused: canary.lab.test resolves "
                  f"to {DNS_V4}: outside the exporter's allow-list"}
        for port, refusal in refusals.items():
            got = fetch(lab, f"http://{EXPORTER}/probe?target=http://{SERVER_V4}:{port}/"
                             "&format=json")
            assert got["status"] == 200, got
            doc = json.loads(got["body"])
            validate_report(doc)
            (result,) = [c for c in doc["checks"] if c["id"] == "http.response"]
            assert result["status"] == "skip" and refusal in result["summary"], result
        assert canary.hits(hits) == []
        # The control: the same canary, reached from the client by hand, is seen twice over.
        lab.exec("client", [sys.executable, "-c", "import socket; socket.create_connection("
                            f"('{DNS_V4}', 7000), timeout=2).close()"], check=True)
        assert canary.hits(hits) == ["198.18.1.2"]
    finally:
        stop(exporter)
        tcpdump.send_signal(signal.SIGINT)  # it flushes the capture and exits
        tcpdump.wait(timeout=5)
        for proc in helpers:
            stop(proc)
    syns = syns_in(capture)
    assert len(syns) == 1 and "198.18.1.2" in syns[0], syns
    assert "redirect to" in lab.log("exporter") and "refused" in lab.log("exporter")
