"""``netcheck server`` in the lab's server namespace, against real servers (Debian's nginx).

One lab holds every server scenario (they only add: their own sites, ports and nft tables).
The round trip of the slides is tested for real: ``netcheck diagnose`` from the client sends
its request id in the User-Agent, and ``netcheck server --request-id`` finds it in nginx's
access log. systemd does not run in these machines: its logic is tested on recorded outputs
(tests/unit/test_server_systemd.py), and here the unit check must skip saying why.
"""

from __future__ import annotations

import os
from typing import Any, Iterator, Optional

import pytest

from netcheck.lab.nginx import nginx_ca_path, nginx_problem
from netcheck.lab.scenarios import SCENARIOS  # first: the library gathers scenarios_server
from netcheck.lab.scenarios_server import (
    CONTAINER_V4,
    LOOPBACK_PORT,
    PROXY_PORT,
    SCENARIOS_LIST,
    SITE,
    ServerScenario,
    site_folder,
)
from netcheck.lab.topology import CLIENT_V4, GATEWAY_V4, SERVER_V4, Lab

from .conftest import NetcheckRun, lab_required, run_netcheck
from .pasting import assert_commands_paste

NAMES = [s.name for s in SCENARIOS_LIST if isinstance(s, ServerScenario)]


@pytest.fixture(scope="module")
def server_lab(lab_support: None) -> Iterator[Lab]:
    """One lab with every server scenario applied (two nginx sites, a loopback-only service,
    a docker-proxy, two nft tables in the server)."""
    problem = nginx_problem()
    if problem:
        if lab_required():
            pytest.fail(f"server lab tests are required here but cannot run: {problem}",
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


def run_netcheck_server(lab: Lab, *args: str, user: Optional[str] = None, fmt: str = "json",
                        timeout: float = 30) -> NetcheckRun:
    """``python -m netcheck server ARGS --format FMT`` in the lab's server namespace.

    With ``fmt="json"`` stdout must be one valid netcheck/1 document (``mode: "server"``).
    ``user``: run unprivileged as this user (through setpriv).
    """
    words = list(args)
    if words[:1] != ["server"]:
        words = ["server", *words]
    result = run_netcheck(lab, *words, user=user, fmt=fmt, timeout=timeout, role="server")
    assert "Traceback" not in result.stderr, result.explain()
    if fmt == "json":
        assert result.doc is not None and result.doc["mode"] == "server", result.explain()
    return result


_RUNS: dict[tuple[str, str], NetcheckRun] = {}


def scenario_run(lab: Lab, name: str) -> NetcheckRun:
    """The scenario's own server run, once per lab (tests share runs)."""
    key = (lab.prefix, name)
    if key not in _RUNS:
        _RUNS[key] = run_netcheck_server(lab, *SCENARIOS[name].netcheck_argv(lab))
    return _RUNS[key]


def evidence(run: NetcheckRun, check_id: str) -> dict[str, Any]:
    found = run.check(check_id)
    assert found is not None, run.explain()
    return dict(found["evidence"])


# -- every scenario's diagnosis ----------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_server_scenario_diagnosis(server_lab: Lab, name: str) -> None:
    scenario = SCENARIOS[name]
    run = scenario_run(server_lab, name)
    rc = run.root_cause or {}
    got = (run.verdict, rc.get("code"), rc.get("layer"))
    assert got == tuple(scenario.expect), run.explain()
    assert run.rc == {"ok": 0, "degraded": 1, "broken": 2}[scenario.expect.verdict]
    assert run.elapsed < 10, run.explain()
    assert_commands_paste(run)


# -- the request-id round trip -----------------------------------------------------------------

@pytest.fixture(scope="module")
def client_request(server_lab: Lab) -> str:
    """``netcheck diagnose https://srv.lab.test/`` from the client; the request id it sent."""
    run = run_netcheck(server_lab, f"https://{SITE.fqdn}/", "--cafile",
                       str(nginx_ca_path(server_lab)))
    assert run.verdict == "ok", run.explain()
    http = run.check("http.response")
    assert http is not None, run.explain()
    request_id = http["evidence"].get("request_id")
    assert isinstance(request_id, str) and request_id, run.explain()
    return request_id


def test_client_request_is_found_by_its_id(server_lab: Lab, client_request: str) -> None:
    access = site_folder(server_lab.state_dir, SITE) / "access.log"
    run = run_netcheck_server(server_lab, "--port", "443", "--request-id", client_request,
                              "--log", str(access))
    log = run.check("app.request_log")
    assert log is not None and log["status"] == "pass", run.explain()
    assert f"request {client_request} found in" in log["summary"]
    lines = log["evidence"]["access"]["lines"]
    assert len(lines) == 1, run.explain()
    assert lines[0]["client"] == CLIENT_V4 and lines[0]["status"] == 200
    assert lines[0]["agent"].endswith(f"(+{client_request})")
    assert run.verdict == "ok", run.explain()


def test_client_request_is_found_without_naming_the_log(server_lab: Lab,
                                                        client_request: str) -> None:
    # nginx holds its logs open: netcheck finds them among the listening processes' files
    # (both sites on port 443 have one; the request is in srv's).
    run = run_netcheck_server(server_lab, "--port", "443", "--request-id", client_request,
                              "--client", CLIENT_V4)
    log = run.check("app.request_log")
    assert log is not None and log["status"] == "pass", run.explain()
    assert log["evidence"]["found_by"] == "held open by the service"
    assert log["evidence"]["access"]["matched"] == 1
    assert log["evidence"]["access"]["lines"][0]["file"].endswith("/srv/access.log")


def test_a_request_that_never_came_is_not_found(server_lab: Lab) -> None:
    run = run_netcheck_server(server_lab, "--port", "443", "--request-id", "0123456789ab")
    log = run.check("app.request_log")
    assert log is not None and log["summary"].startswith("NOT found"), run.explain()


# -- what each finding shows -------------------------------------------------------------------

def test_listeners_owners_and_families(server_lab: Lab) -> None:
    run = scenario_run(server_lab, "server_ok")
    ev = evidence(run, "transport.listen")
    site = next(s for s in ev["listeners"] if s["address"] == SITE.addresses[0])
    assert site["family"] == "IPv4" and site["serves"] == "this address only"
    assert {o["process"] for o in site["owners"]} == {"nginx"}, ev
    assert len(site["owners"]) == 2  # the master and its worker share the socket
    assert any(line.startswith("LISTEN") and '("nginx",pid=' in line for line in ev["ss"])
    assert SITE.addresses[1] in run.doc["target"]["addresses"]  # type: ignore[index]
    hs = evidence(run, "transport.local_handshake")
    row = next(r for r in hs["handshakes"] if r["address"] == SITE.addresses[0])
    assert row["state"] == "open" and 0 < row["rtt_ms"] < 20
    assert run.doc["target"]["port"] == 443  # type: ignore[index]


def test_the_way_back_to_the_client_is_checked(server_lab: Lab) -> None:
    run = scenario_run(server_lab, "server_ok")
    assert run.doc["host"]["egress_interface"] == "eth0"  # type: ignore[index]
    gateway = run.check("network.gateway")
    assert gateway is not None and gateway["status"] == "pass", run.explain()
    assert gateway["evidence"]["gateway"] == "198.18.2.1"
    route = run.check("network.route")
    assert route is not None and route["summary"].startswith(f"{CLIENT_V4} via 198.18.2.1")
    assert GATEWAY_V4 != gateway["evidence"]["gateway"]  # the server's own, not the client's


def test_loopback_only_shows_who_is_refused(server_lab: Lab) -> None:
    run = scenario_run(server_lab, "server_loopback_only")
    rc = run.root_cause or {}
    assert f"127.0.0.1:{LOOPBACK_PORT}" in rc["summary"] and f"[::1]:{LOOPBACK_PORT}" in \
        rc["summary"]
    assert any("0.0.0.0" in text for text in [rc["hint"]["text"]]), rc


def test_input_drop_quotes_the_rule_and_the_client_times_out(server_lab: Lab) -> None:
    run = scenario_run(server_lab, "server_input_drop")
    rc = run.root_cause or {}
    assert 'iifname "eth0" tcp dport 22' in rc["summary"], run.explain()
    assert any(c.startswith("nft delete rule inet netcheck_server input handle ")
               for c in rc["hint"]["commands"]), rc
    flows = evidence(run, "transport.inbound_firewall")["flows"]
    assert flows[0]["verdict"] == "drop" and "iifname" in flows[0]["rule"]["rule"]
    # The same fault from the client: its SYNs vanish.
    client = run_netcheck(server_lab, f"tcp://{SERVER_V4}:22", "--timeout", "1")
    assert (client.root_cause or {}).get("code") == "TCP_FILTERED", client.explain()


def test_docker_proxy_is_named_and_the_forward_chain_judged(server_lab: Lab) -> None:
    run = scenario_run(server_lab, "server_container_forward_drop")
    listen = run.check("transport.listen")
    assert listen is not None and "docker-proxy" in listen["summary"]
    assert f"container {CONTAINER_V4}:80" in listen["summary"], run.explain()
    container = listen["evidence"]["containers"][0]
    assert container["program"] == "docker-proxy" and container["host_port"] == PROXY_PORT
    fw = run.check("transport.inbound_firewall")
    assert fw is not None and "(forward)" in fw["summary"] and CONTAINER_V4 in fw["summary"]


def test_missing_process_names_who_holds_the_port(server_lab: Lab) -> None:
    run = scenario_run(server_lab, "server_process_missing")
    rc = run.root_cause or {}
    assert "php-fpm8.2" in rc["summary"] and "nginx" in rc["summary"], run.explain()
    assert "pgrep -a php-fpm8.2" in rc["hint"]["commands"]


def test_5xx_burst_shows_the_lines(server_lab: Lab) -> None:
    run = scenario_run(server_lab, "server_5xx_burst")
    ev = evidence(run, "app.request_log")
    assert ev["access"]["matched"] == 5 and ev["access"]["statuses"] == {"5xx": 5}
    assert all(line["status"] == 503 for line in ev["access"]["lines"])


def test_without_systemd_the_unit_check_says_why(server_lab: Lab) -> None:
    run = scenario_run(server_lab, "server_ok")
    unit = run.check("app.service_unit")
    assert unit is not None and unit["status"] == "skip"
    assert "systemd is not the init system here" in unit["summary"]
    named = run_netcheck_server(server_lab, "--port", "443", "--service", "nginx")
    assert "nginx.service" in (named.check("app.service_unit") or {}).get("summary", "")


# -- formats and privileges --------------------------------------------------------------------

def test_text_and_nagios_reports(server_lab: Lab) -> None:
    text = run_netcheck_server(server_lab, "--port", str(LOOPBACK_PORT), fmt="text")
    assert text.rc == 2 and "server mode" in text.stdout and "SRV_LISTEN_LOOPBACK_ONLY" in \
        text.stdout, text.explain()
    nagios = run_netcheck_server(server_lab, "--port", str(LOOPBACK_PORT), fmt="nagios")
    assert nagios.rc == 2 and nagios.stdout.startswith("NETCHECK CRITICAL"), nagios.explain()


def test_without_root_what_needs_root_skips(server_lab: Lab) -> None:
    access = site_folder(server_lab.state_dir, SITE) / "access.log"
    run = run_netcheck_server(server_lab, "--port", "443", "--log", str(access),
                              user="nobody")
    assert run.doc["host"]["privileged"] is False  # type: ignore[index]
    fw = run.check("transport.inbound_firewall")
    assert fw is not None and fw["status"] == "skip" and "needs root" in fw["summary"]
    listen = run.check("transport.listen")
    assert listen is not None and listen["status"] == "pass", run.explain()
    assert "owners_note" in listen["evidence"]
    assert run.verdict == "ok", run.explain()
