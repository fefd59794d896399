"""netcheck diagnoses every application-layer scenario for real, through the CLI in the
client namespace.

One lab serves the whole module: the application scenarios only add hosts and servers (each
on its own address), so all of them are applied once and each test runs netcheck against
its own. Beyond verdict, code and layer, the tests assert what a person needs: the hint names
the URL or host and port, the redirect chain has its hops, the request id netcheck prints is in
the server's log, the timings are there, and hostile servers cost bounded time.

netcheck runs with an environment stripped of proxy variables (the machine's own must never
leak into a lab run); the proxy tests set them explicitly.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional

import pytest

from netcheck.lab.scenarios import SCENARIOS  # first: the library gathers scenarios_app
from netcheck.lab.scenarios_app import (
    BINARY_80,
    SCENARIOS_LIST,
    SILENT_80,
    WEB_HTTP,
    WEB_SSH,
    AppScenario,
    app_ca_path,
    start_services,
)
from netcheck.lab.topology import Lab

from .conftest import NetcheckRun, lab_with, run_netcheck
from .pasting import assert_commands_paste

APP_NAMES = [s.name for s in SCENARIOS_LIST]
PROXY_VARIABLES = ("http_proxy", "https_proxy", "no_proxy", "all_proxy")


@pytest.fixture(scope="module")
def app_lab(lab_support: None) -> Iterator[Lab]:
    """One lab with every application scenario applied."""
    yield from lab_with(SCENARIOS_LIST)


def run(lab: Lab, *args: str, env: Optional[dict[str, str]] = None, text: bool = False,
        timeout: float = 30) -> NetcheckRun:
    """``python -m netcheck ARGS`` in the client namespace, JSON validated (unless ``text``)."""
    result = run_netcheck(lab, *args, env=env, fmt="text" if text else "json", timeout=timeout)
    assert "Traceback" not in result.stderr, result.explain()
    return result


_RUNS: dict[tuple[str, str], NetcheckRun] = {}


def diagnose(lab: Lab, name: str) -> NetcheckRun:
    """netcheck run as the scenario says; once per lab and scenario (the tests share runs)."""
    key = (lab.prefix, name)
    if key not in _RUNS:
        scenario = SCENARIOS[name]
        assert isinstance(scenario, AppScenario)
        _RUNS[key] = run(lab, *scenario.netcheck_argv(lab))
    return _RUNS[key]


def _root_text(r: NetcheckRun) -> str:
    rc = r.root_cause or {}
    hint = rc.get("hint") or {}
    return " ".join([rc.get("summary", ""), hint.get("text", ""), *hint.get("commands", [])])


def _app_check(r: NetcheckRun) -> dict[str, Any]:
    for check_id in ("http.response", "app.protocol", "app.banner"):
        found = r.check(check_id)
        if found is not None and found["status"] != "skip":
            return found
    pytest.fail(f"no application check ran\n{r.explain()}")


def _host(name: str) -> str:
    return SCENARIOS[name].target.split("//", 1)[1].split("/", 1)[0]


def test_every_application_scenario_is_in_the_library() -> None:
    assert set(APP_NAMES) <= set(SCENARIOS)
    for scenario in SCENARIOS_LIST:
        assert scenario.expect.layer in (None, 7), scenario.name


@pytest.mark.parametrize("name", APP_NAMES)
def test_application_scenario_is_diagnosed(app_lab: Lab, name: str) -> None:
    r = diagnose(app_lab, name)
    expect = SCENARIOS[name].expect
    rc = r.root_cause
    got = (r.verdict, rc["code"] if rc else None, rc["layer"] if rc else None)
    assert got == tuple(expect), r.explain()
    assert r.rc == {"ok": 0, "degraded": 1, "broken": 2}[expect.verdict]
    assert_commands_paste(r)
    check = _app_check(r)
    if expect.code is None:
        assert check["status"] == "pass", r.explain()
        return
    assert rc is not None and rc["hint"] is not None and rc["hint"]["commands"], r.explain()
    assert _host(name) in _root_text(r), _root_text(r)


# -- HTTP: the chain, the timings, the request id --------------------------------------------

def test_redirect_chain_is_shown_hop_by_hop_like_wget(app_lab: Lab) -> None:
    r = diagnose(app_lab, "http_redirect_to_https")
    ev = r.check("http.response")["evidence"]  # type: ignore[index]
    hops = ev["hops"]
    assert [h["url"] for h in hops] == ["http://web.lab.test/to-https",
                                        "https://web.lab.test/old", "https://web.lab.test/"]
    assert [h["status"] for h in hops] == [301, 301, 200]
    assert [h["connection"] for h in hops] == ["new", "new", "reused"]
    assert hops[0]["location"] == "https://web.lab.test/old"
    assert hops[0]["scheme_change"] == "http->https"
    assert hops[1]["tls"]["version"].startswith("TLSv1.")
    assert {"connect_ms", "tls_ms", "ttfb_ms"} <= set(hops[1]["timings"])
    assert "dns_ms" in hops[0]["timings"]
    assert ev["final_url"] == "https://web.lab.test/" and ev["status"] == 200
    assert len(ev["chain"]) == 3 and "reused connection" in ev["chain"][2]
    assert {"dns_ms", "connect_ms", "tls_ms", "ttfb_ms", "transfer_ms"} <= set(ev["timings"])


def test_request_id_is_printed_and_found_in_the_server_log(app_lab: Lab) -> None:
    r = diagnose(app_lab, "http_404")
    ev = r.check("http.response")["evidence"]  # type: ignore[index]
    rid = ev["request_id"]
    assert ev["user_agent"].endswith(f"(+{rid})")
    assert rid in _root_text(r)  # "search the server's log for request id ..."
    log = app_lab.log(WEB_HTTP.label)
    lines = [line for line in log.splitlines() if rid in line]
    assert lines and '"GET /missing HTTP/1.1" 404' in lines[0], log[-2000:]
    text = run(app_lab, "http://web.lab.test/", text=True)
    assert "request id " in text.stdout, text.stdout


def test_request_of_an_application_that_never_answers_is_still_in_its_log(app_lab: Lab
                                                                           ) -> None:
    r = run(app_lab, "http://web.lab.test/slow", "--timeout", "1")
    assert r.root_cause is not None and r.root_cause["code"] == "APP_TIMEOUT", r.explain()
    rid = r.check("http.response")["evidence"]["request_id"]  # type: ignore[index]
    assert any(rid in line and "/slow" in line for line in app_lab.log(WEB_HTTP.label)
               .splitlines())


def test_healthy_page_has_status_size_server_and_timings(app_lab: Lab) -> None:
    r = diagnose(app_lab, "http_ok")
    check = r.check("http.response")
    assert check is not None and check["status"] == "pass"
    ev = check["evidence"]
    assert (ev["status"], ev["server"], ev["truncated"]) == (200, "netcheck-lab-app/1.0", False)
    assert ev["size"] > 0 and ev["hops"][0]["address"] == "198.18.2.30"
    assert {"connect_ms", "ttfb_ms", "transfer_ms", "total_ms"} <= set(ev["timings"])
    assert "200 OK" in check["summary"] and "web.lab.test" in check["summary"]


def test_redirect_to_another_host_resolves_it_on_the_way(app_lab: Lab) -> None:
    r = run(app_lab, "http://web.lab.test/elsewhere")
    ev = r.check("http.response")["evidence"]  # type: ignore[index]
    assert r.verdict == "ok", r.explain()
    second = ev["hops"][1]
    assert second["url"] == "http://www.lab.test/" and second["address"] == "198.18.2.10"
    assert "dns_ms" in second["timings"] and second["connection"] == "new"


def test_redirect_to_a_file_url_is_not_followed(app_lab: Lab) -> None:
    r = run(app_lab, "http://web.lab.test/to-file")
    rc = r.root_cause
    assert rc is not None and rc["code"] == "HTTP_REDIRECT_LOOP", r.explain()
    assert "file:///etc/passwd" in rc["summary"]
    ev = r.check("http.response")["evidence"]  # type: ignore[index]
    assert ev["outcome"] == "redirect_refused" and len(ev["hops"]) == 1


def test_https_target_passes_tls_then_http(app_lab: Lab) -> None:
    r = run(app_lab, "https://web.lab.test/old", "--cafile", str(app_ca_path(app_lab)))
    assert r.verdict == "ok", r.explain()
    assert r.check("tls.handshake")["status"] == "pass"  # type: ignore[index]
    hops = r.check("http.response")["evidence"]["hops"]  # type: ignore[index]
    assert [h["connection"] for h in hops] == ["new", "reused"]


def test_protocol_mismatch_quotes_what_the_port_says(app_lab: Lab) -> None:
    r = diagnose(app_lab, "http_protocol_mismatch")
    rc = r.root_cause
    assert rc is not None and "SSH-2.0-OpenSSH_9.2p1" in rc["summary"], r.explain()
    assert any("ss -tlnp" in c for c in rc["hint"]["commands"])


# -- hostile servers: bounded time, bounded reads --------------------------------------------

@pytest.mark.parametrize("name, limit", [
    ("http_hostile_headers", 3.0), ("http_endless_body", 3.0), ("http_binary", 3.0),
    ("http_silent", 3.5), ("http_drip", 3.5),
])
def test_hostile_servers_cost_bounded_time(app_lab: Lab, name: str, limit: float) -> None:
    r = diagnose(app_lab, name)
    assert r.elapsed < limit, r.explain()
    ev = r.check("http.response")["evidence"]  # type: ignore[index]
    assert ev["bytes_received"] <= (1 << 20) + 128 * 1024
    assert ev["elapsed_ms"] < limit * 1000


def test_endless_body_is_read_to_the_limit_and_said_so(app_lab: Lab) -> None:
    r = diagnose(app_lab, "http_endless_body")
    check = r.check("http.response")
    assert check is not None and check["evidence"]["truncated_reason"] == "size"
    assert "then stopped" in check["summary"]


def test_deadline_bounds_a_silent_application(app_lab: Lab) -> None:
    r = run(app_lab, "http://silent.lab.test/", "--timeout", "10", "--deadline", "2")
    assert r.elapsed < 3.0, r.explain()
    assert r.root_cause is not None and r.root_cause["code"] == "APP_TIMEOUT", r.explain()


# -- proxies -----------------------------------------------------------------------------------

def test_proxy_from_the_environment_is_used_and_masked(app_lab: Lab) -> None:
    # The web server accepts absolute-form requests, so it stands in for a proxy: its log
    # shows the form a proxy receives.
    env = {"http_proxy": "http://alice:hunter2@198.18.2.30:80"}
    r = run(app_lab, "http://web.lab.test/chunked", env=env)
    assert r.verdict == "ok", r.explain()
    ev = r.check("http.response")["evidence"]  # type: ignore[index]
    assert ev["proxy"] == "http://alice:***@198.18.2.30:80"
    assert "via proxy" in r.check("http.response")["summary"]  # type: ignore[index]
    assert "hunter2" not in r.stdout
    rid = ev["request_id"]
    line = next(x for x in app_lab.log(WEB_HTTP.label).splitlines() if rid in x)
    assert '"GET http://web.lab.test/chunked HTTP/1.1"' in line


def test_no_proxy_sends_the_request_direct(app_lab: Lab) -> None:
    env = {"http_proxy": "http://198.18.2.99:3128", "no_proxy": ".lab.test"}
    r = run(app_lab, "http://web.lab.test/", env=env)
    assert r.verdict == "ok", r.explain()
    assert "proxy" not in r.check("http.response")["evidence"]  # type: ignore[index]


def test_password_in_the_url_never_appears(app_lab: Lab) -> None:
    r = run(app_lab, "http://bob:hunter2@web.lab.test/")
    assert r.verdict == "ok", r.explain()
    assert "hunter2" not in r.stdout and "hunter2" not in r.stderr
    assert "hunter2" not in app_lab.log(WEB_HTTP.label)


# -- tcp:// : service identification ------------------------------------------------------------

def test_tcp_banner_identifies_an_ssh_server(app_lab: Lab) -> None:
    start_services(app_lab, WEB_SSH)
    r = run(app_lab, "tcp://web.lab.test:22")
    check = r.check("app.banner")
    assert r.verdict == "ok" and check is not None and check["status"] == "pass", r.explain()
    assert check["evidence"]["heard"] == "ssh" and "SSH-2.0-OpenSSH" in check["summary"]


@pytest.mark.parametrize("target, heard", [("tcp://silent.lab.test:80", "empty"),
                                           ("tcp://binary.lab.test:80", "binary")])
def test_tcp_banner_never_fails(app_lab: Lab, target: str, heard: str) -> None:
    start_services(app_lab, SILENT_80, BINARY_80)
    r = run(app_lab, target)
    check = r.check("app.banner")
    assert check is not None and check["status"] == "pass", r.explain()
    assert check["evidence"]["heard"] == heard and r.verdict == "ok"
