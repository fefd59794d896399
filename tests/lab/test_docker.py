"""The slides' server in Docker, for real: Debian's dockerd in the lab's server namespace.

One lab and one engine hold every docker scenario (each is a container on its own port):
starting dockerd takes about a second, each container well under one. Every scenario is
diagnosed from both ends — ``netcheck server --port N`` in the server namespace and ``netcheck
TARGET`` in the client — and the request-id round trip finds the client's request in the
container's log. ``docker_engine_stopped`` takes the engine down, so it runs last, after
which the teardown must leave nothing of the engine behind.

Where no engine can run here (no docker.io, no overlay, not root) these tests skip saying
why; under CI (``CI=true``) that is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from typing import Any, Iterator

import pytest

from netcheck.lab import docker
from netcheck.lab.scenarios import SCENARIOS  # first: the library gathers scenarios_docker
from netcheck.lab.scenarios_docker import (
    FILTERED_PORT,
    OK_PORT,
    SCENARIOS_LIST,
    DockerScenario,
)
from netcheck.lab.topology import CLIENT_V4, NETNS_RUN, SERVER_V4, Lab

from .conftest import NetcheckRun, lab_required, run_netcheck

NAMES = [s.name for s in SCENARIOS_LIST if isinstance(s, DockerScenario) and not s.last]
LAST = [s.name for s in SCENARIOS_LIST if isinstance(s, DockerScenario) and s.last]


@pytest.fixture(scope="module")
def docker_lab(lab_support: None) -> Iterator[Lab]:
    """One lab, one engine, every docker scenario but the last applied."""
    problem = docker.docker_problem()
    if problem:
        if lab_required():
            pytest.fail(f"docker lab tests are required here but cannot run: {problem}",
                        pytrace=False)
        pytest.skip(problem)
    lab = Lab(keep_logs=os.environ.get("NETCHECK_LAB_KEEP_LOGS") == "1")
    lab.build()
    try:
        for name in NAMES:
            SCENARIOS[name].apply(lab)
        yield lab
    finally:
        lab.teardown()


def server_run(lab: Lab, *args: str, timeout: float = 40) -> NetcheckRun:
    """``netcheck server ARGS --format json`` in the server namespace."""
    words = list(args) if args[:1] == ("server",) else ["server", *args]
    run = run_netcheck(lab, *words, role="server", timeout=timeout)
    assert "Traceback" not in run.stderr, run.explain()
    assert run.doc is not None and run.doc["mode"] == "server", run.explain()
    return run


_RUNS: dict[tuple[str, str, str], NetcheckRun] = {}


def end_run(lab: Lab, name: str, end: str) -> NetcheckRun:
    """The scenario's run from one end (``server`` or ``client``), once per lab."""
    key = (lab.prefix, name, end)
    if key not in _RUNS:
        scenario = SCENARIOS[name]
        assert isinstance(scenario, DockerScenario)
        if end == "server":
            _RUNS[key] = server_run(lab, *scenario.netcheck_argv(lab))
        else:
            _RUNS[key] = run_netcheck(lab, *scenario.client_argv(), timeout=40)
    return _RUNS[key]


def _commands(run: NetcheckRun) -> str:
    rc = run.root_cause or {}
    hint = rc.get("hint") or {}
    return (hint.get("text") or "") + "\n" + "\n".join(hint.get("commands") or [])


@pytest.mark.parametrize("name", NAMES)
def test_server_end(docker_lab: Lab, name: str) -> None:
    """``netcheck server --port N`` reaches the scenario's verdict, code and layer, with a
    hint in the slides' own tools."""
    scenario = SCENARIOS[name]
    run = end_run(docker_lab, name, "server")
    assert run.verdict == scenario.expect.verdict, run.explain()
    if scenario.expect.code is None:
        assert run.root_cause is None, run.explain()
        return
    rc = run.root_cause or {}
    assert (rc.get("code"), rc.get("layer")) == (scenario.expect.code, scenario.expect.layer), \
        run.explain()
    text = _commands(run)
    if scenario.expect.code == "SRV_FW_INPUT_BLOCK":
        assert "DOCKER-USER" in text and "iptables -D DOCKER-USER" in text, run.explain()
    else:
        assert re.search(r"docker (ps|logs|inspect|exec|restart|run|start)", text), run.explain()


@pytest.mark.parametrize("name", NAMES)
def test_client_end(docker_lab: Lab, name: str) -> None:
    """``netcheck TARGET`` from the client: what a user of the site sees."""
    scenario = SCENARIOS[name]
    assert isinstance(scenario, DockerScenario)
    run = end_run(docker_lab, name, "client")
    expect = scenario.client_expect
    assert run.verdict == expect.verdict, run.explain()
    rc = run.root_cause or {}
    assert (rc.get("code"), rc.get("layer")) == (expect.code, expect.layer), run.explain()
    if expect.code == "TCP_REFUSED":
        # The server-side command that follows the port into a container.
        assert "netcheck server --port" in _commands(run), run.explain()


def test_healthy_docker_host_has_no_false_alarm(docker_lab: Lab) -> None:
    """Docker's FORWARD policy is drop: the walk follows DNAT into DOCKER-USER,
    DOCKER-ISOLATION-STAGE-1 and DOCKER, where the container's port is accepted."""
    run = end_run(docker_lab, "docker_ok", "server")
    fw = run.check("transport.inbound_firewall")
    assert fw is not None and fw["status"] == "pass", run.explain()
    flows = fw["evidence"]["flows"]
    forward = [f for f in flows if "ip filter DOCKER" in " ".join(f.get("chains", []))
               or (f.get("rule") or {}).get("chain") == "DOCKER"]
    assert forward and all(f["verdict"] == "accept" and f["certain"] for f in forward), \
        run.explain()
    assert fw["evidence"]["dnat"][0]["rule"]["chain"] == "DOCKER", run.explain()
    assert all(c["status"] in ("pass", "skip") for c in run.doc["checks"]), run.explain()


def test_request_id_round_trip_through_a_container(docker_lab: Lab) -> None:
    """The slides' last step: the client's request, by its id, in ``docker logs``."""
    client = run_netcheck(docker_lab, f"http://{SERVER_V4}:{OK_PORT}/", timeout=40)
    assert client.verdict == "ok", client.explain()
    http = client.check("http.response")
    assert http is not None, client.explain()
    request_id = http["evidence"]["request_id"]
    run = server_run(docker_lab, "--port", str(OK_PORT), "--client", CLIENT_V4,
                     "--request-id", request_id)
    log = run.check("app.request_log")
    assert log is not None and log["status"] == "pass", run.explain()
    assert f"request {request_id} from {CLIENT_V4} found in container web's log" \
        in log["summary"], run.explain()
    assert log["evidence"]["container_log"]["source"].endswith("-json.log"), run.explain()
    # The same line docker logs shows (the slides' grep).
    cli = docker.docker(docker.Engine.of(docker_lab), "logs", "web")
    assert request_id in cli.stderr + cli.stdout
    # An id that was never sent is not found, and the check says where it looked.
    missing = server_run(docker_lab, "--port", str(OK_PORT), "--request-id", "0123456789ab")
    assert missing.check("app.request_log")["summary"].startswith("NOT found"), missing.explain()


def test_unprivileged_server_run_skips_what_needs_root(docker_lab: Lab) -> None:
    """Without root the engine's socket refuses (it belongs to root): nothing crashes, the
    container checks skip, and the verdict stays honest."""
    run = run_netcheck(docker_lab, "server", "--port", str(OK_PORT), role="server",
                       user="nobody", timeout=40)
    assert "Traceback" not in run.stderr, run.explain()
    assert run.check("app.container")["status"] == "skip", run.explain()


# -- the kernel's own opinion -------------------------------------------------------------------

def _trace_verdict(lab: Lab, port: int) -> tuple[str, str, list[str]]:
    """What netfilter itself does to a client's SYN to ``port``: ``nft monitor trace`` of one
    real packet (``meta nftrace set 1`` in a raw prerouting chain), the filter verdict."""
    nft = shutil.which("nft") or "/usr/sbin/nft"
    table = f"netcheck_trace_{port}"
    lab.nft("server", f"table ip {table} {{\n"
                      "  chain pre {\n"
                      "    type filter hook prerouting priority -350; policy accept;\n"
                      f"    ip saddr {CLIENT_V4} tcp dport {port} tcp flags syn"
                      " meta nftrace set 1\n"
                      "  }\n}\n")
    ns = NETNS_RUN / lab.ns("server")
    monitor = subprocess.Popen([shutil.which("nsenter") or "nsenter", f"--net={ns}", "--",
                                nft, "monitor", "trace"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(monitor.stdout or []), daemon=True)
    reader.start()
    try:
        time.sleep(0.5)  # the monitor subscribes before the packet is sent
        lab.exec("client", [sys.executable, "-c",
                            "import socket\ns=socket.socket()\ns.settimeout(1.5)\n"
                            f"try:\n  s.connect(('{SERVER_V4}', {port}))\nexcept OSError:\n"
                            "  pass\n"], timeout=10)
        time.sleep(0.5)
    finally:
        monitor.terminate()
        monitor.wait(timeout=5)
        reader.join(timeout=5)
        lab.exec("server", [nft, "delete", "table", "ip", table])
    # The last decision of the filter table: "(verdict accept)" after a rule, or "policy drop"
    # at the end of a base chain (jump, return and continue decide nothing).
    final, where = "unknown", ""
    for ln in lines:
        m = re.search(r" ip filter (\S+) .*(?:\(verdict (accept|drop)\)|policy (accept|drop))", ln)
        if m:
            final, where = m.group(2) or m.group(3), m.group(1)
    return final, where, lines


@pytest.mark.parametrize("name,port", [("docker_ok", OK_PORT),
                                       ("docker_user_drop", FILTERED_PORT)])
def test_firewall_walk_agrees_with_the_kernel_trace(docker_lab: Lab, name: str,
                                                     port: int) -> None:
    """For each firewall of the docker lab, nft's own trace of a real SYN and netcheck's
    walk of the same flow reach the same verdict, in the same chain."""
    run = end_run(docker_lab, name, "server")
    fw = run.check("transport.inbound_firewall")
    assert fw is not None, run.explain()
    forward = [f for f in fw["evidence"]["flows"] if f["flow"].startswith("tcp port 80 to")]
    assert forward, run.explain()
    walked = forward[0]["verdict"]
    kernel, where, lines = _trace_verdict(docker_lab, port)
    assert kernel == walked, f"kernel {kernel}, netcheck {walked}\n" + "".join(lines)
    chain = (forward[0].get("rule") or {}).get("chain")
    assert chain == where, f"kernel decided in {where}, netcheck in {chain}\n" + "".join(lines)


# -- the engine stopped, then nothing left ------------------------------------------------------

def test_engine_stopped_then_teardown_leaves_nothing(docker_lab: Lab) -> None:
    """dockerd stopped (the last scenario): SRV_CONTAINER_DOWN from the data root it left;
    then the lab's teardown removes every container, mount, image store, cgroup and
    process of the engine (the bridge goes with the namespace)."""
    for name in LAST:
        SCENARIOS[name].apply(docker_lab)
        scenario = SCENARIOS[name]
        run = end_run(docker_lab, name, "server")
        rc: dict[str, Any] = run.root_cause or {}
        assert (run.verdict, rc.get("code"), rc.get("layer")) == tuple(scenario.expect), \
            run.explain()
        assert "systemctl start docker" in _commands(run), run.explain()
        client = end_run(docker_lab, name, "client")
        assert (client.root_cause or {}).get("code") == "TCP_REFUSED", client.explain()
    docker.start(docker_lab)  # running again, with containers, so teardown has work to do
    assert docker.mounts_under(docker.Engine.of(docker_lab).root), "no mount to clean up?"
    docker_lab.teardown()
    assert docker.leftovers(docker_lab.state_dir) == []
    assert docker.mounts_under(docker_lab.state_dir) == []
    assert lab_namespace_gone(docker_lab)


def lab_namespace_gone(lab: Lab) -> bool:
    """The server namespace (and with it docker0 and every veth) no longer exists."""
    return not (NETNS_RUN / lab.ns("server")).exists()
