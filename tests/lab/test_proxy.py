"""Proxies for real: Debian's tinyproxy in the lab's server namespace, open, wanting
credentials, refusing CONNECT to 443, cut off from the server, and stopped; netcheck through
the CLI in the client namespace, the proxy given by --proxy or by the variables curl reads.

One lab serves the module (the proxy scenarios only add hosts and processes).
"""

from __future__ import annotations

from typing import Iterator, Optional

import pytest

from netcheck.lab import proxy as proxies
from netcheck.lab.scenarios import SCENARIOS
from netcheck.lab.scenarios_app import app_ca_path
from netcheck.lab.scenarios_portal import SCENARIOS_LIST
from netcheck.lab.topology import Lab

from .conftest import NetcheckRun, lab_with, run_netcheck

PROXY_SCENARIOS = [s for s in SCENARIOS_LIST if s.name.startswith("proxy_")]
WEB = "https://web.lab.test/"


@pytest.fixture(scope="module")
def proxy_lab(lab_support: None) -> Iterator[Lab]:
    problem = proxies.tinyproxy_problem()
    if problem:
        pytest.skip(problem)
    yield from lab_with(PROXY_SCENARIOS)


def run(lab: Lab, *args: str, env: Optional[dict[str, str]] = None) -> NetcheckRun:
    r = run_netcheck(lab, *args, env=env)
    assert "Traceback" not in r.stderr, r.explain()
    return r


# Round trips slowed by a machine busy with other labs are a warning about the path, not
# about proxies: a healthy run is ok, or degraded by that warning alone.
LOAD_WARNINGS = {"PATH_LATENCY"}


def healthy(r: NetcheckRun) -> bool:
    """ok, or degraded only by a timing warning of a loaded machine."""
    if r.verdict == "ok":
        return True
    codes = {c["code"] for c in (r.doc or {}).get("checks", []) if c["status"] != "pass"
             and c["status"] != "skip"}
    return r.verdict == "degraded" and codes <= LOAD_WARNINGS


def _cafile(lab: Lab) -> tuple[str, str]:
    return ("--cafile", str(app_ca_path(lab)))


@pytest.mark.parametrize("name", [s.name for s in PROXY_SCENARIOS])
def test_proxy_scenario_is_diagnosed(proxy_lab: Lab, name: str) -> None:
    scenario = SCENARIOS[name]
    r = run(proxy_lab, *scenario.netcheck_argv(proxy_lab))
    expect = scenario.expect
    if expect.code is None:
        assert healthy(r), r.explain()
        check = r.check("http.proxy")
        assert check is not None and check["status"] == "pass", r.explain()
        assert r.check("http.response")["status"] == "pass", r.explain()  # type: ignore[index]
        return
    assert r.verdict == expect.verdict, r.explain()
    rc = r.root_cause or {}
    assert (rc.get("code"), rc.get("layer"), rc.get("check")) == (
        expect.code, expect.layer, "http.proxy"), r.explain()
    assert "--proxy" in rc["summary"], r.explain()  # which setting made netcheck use it
    assert r.check("http.response")["blocked_by"] == "http.proxy"  # type: ignore[index]


def test_auth_required_names_the_scheme_it_asks_for(proxy_lab: Lab) -> None:
    r = run(proxy_lab, *SCENARIOS["proxy_auth_required"].netcheck_argv(proxy_lab))
    rc = r.root_cause or {}
    assert "407" in rc["summary"] and "Basic" in rc["summary"], r.explain()


def test_dead_proxy_from_https_proxy_is_named_not_unknown(proxy_lab: Lab) -> None:
    # The issue's case: https_proxy pointing at a dead proxy ended 'unknown', exit 3.
    r = run(proxy_lab, WEB, *_cafile(proxy_lab),
            env={"https_proxy": proxies.PROXIES["proxy-down"].url(("bob", "hunter2"))})
    rc = r.root_cause or {}
    assert r.rc == 2 and rc.get("code") == "PROXY_UNREACHABLE", r.explain()
    assert "set by https_proxy" in rc["summary"], r.explain()
    assert "hunter2" not in r.stdout and "bob:***@" in rc["summary"], r.explain()


def test_407_from_the_environment_is_not_http_client_error(proxy_lab: Lab) -> None:
    # The issue's case: a 407 became HTTP_CLIENT_ERROR.
    for url, var in ((WEB, "HTTPS_PROXY"), ("http://web.lab.test/", "http_proxy")):
        r = run(proxy_lab, url, *_cafile(proxy_lab),
                env={var: proxies.PROXIES["proxy-auth"].url()})
        rc = r.root_cause or {}
        assert rc.get("code") == "PROXY_AUTH_REQUIRED", r.explain()
        assert f"set by {var}" in rc["summary"], r.explain()


def test_credentials_from_all_proxy_are_used_and_masked(proxy_lab: Lab) -> None:
    url = proxies.PROXIES["proxy-auth"].url((proxies.AUTH_USER, proxies.AUTH_PASSWORD))
    r = run(proxy_lab, WEB, *_cafile(proxy_lab), env={"all_proxy": url})
    assert healthy(r), r.explain()
    check = r.check("http.proxy") or {}
    assert "set by all_proxy" in check["summary"], r.explain()
    assert proxies.AUTH_PASSWORD not in r.stdout, r.explain()


def test_no_proxy_and_the_option_send_the_request_direct(proxy_lab: Lab) -> None:
    dead = proxies.PROXIES["proxy-down"].url()
    for env, args, why in (({"https_proxy": dead, "no_proxy": ".lab.test"}, (), "no_proxy"),
                           ({"https_proxy": dead}, ("--no-proxy",), "--no-proxy")):
        r = run(proxy_lab, WEB, *_cafile(proxy_lab), *args, env=env)
        assert healthy(r), r.explain()
        check = r.check("http.proxy") or {}
        assert check["status"] == "skip" and why in check["summary"], r.explain()


def test_upper_case_http_proxy_is_ignored_as_curl_ignores_it(proxy_lab: Lab) -> None:
    r = run(proxy_lab, "http://web.lab.test/",
            env={"HTTP_PROXY": proxies.PROXIES["proxy-down"].url()})
    assert healthy(r), r.explain()
    assert "HTTP_PROXY" in (r.check("http.proxy") or {})["summary"], r.explain()


def test_the_request_goes_through_tinyproxy(proxy_lab: Lab) -> None:
    # tinyproxy's own log has the CONNECT: the ladder went through the proxy, not around it.
    r = run(proxy_lab, *SCENARIOS["proxy_ok"].netcheck_argv(proxy_lab))
    assert healthy(r), r.explain()
    log = (proxy_lab.state_dir / "tinyproxy-proxy.access").read_text(errors="replace")
    assert "CONNECT web.lab.test:443" in log, log[-2000:]


def test_where_only_the_proxy_may_reach_out_the_direct_failure_is_not_the_cause(
        proxy_lab: Lab) -> None:
    # The router drops the client's own connections to the web server; the proxy's pass.
    table = "netcheck_lab_proxy_only"
    proxy_lab.nft("router", (
        f"table inet {table} {{\n  chain forward {{\n"
        "    type filter hook forward priority 0; policy accept;\n"
        '    iifname "r-client" ip daddr 198.18.2.30 tcp dport 443 drop\n'
        '    iifname "r-client" ip6 daddr 2001:db8:2::30 tcp dport 443 drop\n  }\n}\n'))
    try:
        r = run(proxy_lab, WEB, *_cafile(proxy_lab), "--timeout", "1",
                env={"https_proxy": proxies.PROXIES["proxy"].url()})
    finally:
        proxy_lab.exec("router", ["nft", "delete", "table", "inet", table], check=True)
    assert r.verdict == "degraded", r.explain()
    assert (r.check("http.proxy") or {})["status"] == "pass", r.explain()
    tcp = r.check("transport.tcp") or {}
    assert (tcp["status"], tcp["code"]) == ("warn", "TCP_FILTERED"), r.explain()
    assert "through the proxy" in tcp["summary"], r.explain()
