"""netcheck against a real web server: Debian's nginx, started by the lab in the server namespace.

One lab serves every scenario that only adds an nginx site (each on its own address); the
path-MTU black hole breaks the network itself and gets a lab of its own. netcheck runs through
the CLI in the client namespace with proxy variables stripped. Beyond verdict, code and layer,
the tests check what a person needs from the report — the redirect chain with its timings,
nginx's own pages, the certificate's fields — and what the server side sees: the request id
netcheck prints is in nginx's access log with the client's address.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from netcheck.lab.nginx import (
    BIG_SIZE,
    Site,
    client_certificate,
    nginx_ca_path,
    nginx_problem,
    render_config,
    running_sites,
    start_nginx,
)
from netcheck.lab.pki import Issued
from netcheck.lab.scenarios import SCENARIOS  # first: the library gathers scenarios_nginx
from netcheck.lab.scenarios_nginx import SCENARIOS_LIST, SITE, NginxScenario
from netcheck.lab.topology import CLIENT_V4, CLIENT_V6, Lab

from .conftest import NetcheckRun, lab_required, run_netcheck
from .pasting import assert_commands_paste

SHARED = [s.name for s in SCENARIOS_LIST
          if isinstance(s, NginxScenario) and not s.needs_own_lab]
LOG_LINE = re.compile(r'^(?P<addr>\S+) - (?P<user>\S+) \[[^\]]+\] "(?P<request>[^"]*)" '
                      r'(?P<status>\d{3}) (?P<bytes>\d+) "[^"]*" "(?P<agent>[^"]*)" '
                      r'(?P<request_time>\d+\.\d{3})$')


@pytest.fixture(scope="module")
def nginx_available(lab_support: None) -> None:
    """Skip (or, under CI, fail) when Debian's nginx is not installed."""
    problem = nginx_problem()
    if problem:
        if lab_required():
            pytest.fail(f"nginx lab tests are required here but cannot run: {problem}",
                        pytrace=False)
        pytest.skip(problem)


@pytest.fixture(scope="module")
def nginx_lab(nginx_available: None) -> Iterator[Lab]:
    """One lab with every scenario that only adds a site applied (six nginx instances)."""
    lab = Lab(keep_logs=os.environ.get("NETCHECK_LAB_KEEP_LOGS") == "1")
    lab.build()
    try:
        for name in SHARED:
            SCENARIOS[name].apply(lab)
        yield lab
    finally:
        lab.teardown()


def run(lab: Lab, *args: str, text: bool = False, timeout: float = 30) -> NetcheckRun:
    """``python -m netcheck ARGS`` in the client namespace; JSON validated unless ``text``."""
    result = run_netcheck(lab, *args, fmt="text" if text else "json", timeout=timeout)
    assert "Traceback" not in result.stderr, result.explain()
    return result


_RUNS: dict[tuple[str, str], NetcheckRun] = {}


def diagnose(lab: Lab, name: str) -> NetcheckRun:
    """netcheck run as the scenario says, once per lab and scenario (tests share runs)."""
    key = (lab.prefix, name)
    if key not in _RUNS:
        _RUNS[key] = run(lab, *SCENARIOS[name].netcheck_argv(lab))
    return _RUNS[key]


def _evidence(r: NetcheckRun, check_id: str) -> dict[str, Any]:
    check = r.check(check_id)
    assert check is not None, r.explain()
    return dict(check["evidence"])


# -- the key evidence of each scenario -------------------------------------------------------

def _https_ok(r: NetcheckRun) -> None:
    ev = _evidence(r, "http.response")
    hops = ev["hops"]
    assert [h["url"] for h in hops] == ["http://site.lab.test/to-https", "https://site.lab.test/"]
    assert [h["status"] for h in hops] == [301, 200]
    assert hops[0]["scheme_change"] == "http->https" and hops[1]["connection"] == "new"
    assert hops[1]["tls"]["version"].startswith("TLSv1.")
    assert {"connect_ms", "tls_ms", "ttfb_ms", "transfer_ms"} <= set(hops[1]["timings"])
    assert "tls_ms" not in hops[0]["timings"]
    assert {"dns_ms", "connect_ms", "tls_ms", "ttfb_ms", "transfer_ms"} <= set(ev["timings"])
    assert ev["server"].startswith("nginx/") and ev["status"] == 200 and len(ev["chain"]) == 2


def _expired(r: NetcheckRun) -> None:
    ev = _evidence(r, "tls.certificate")
    assert ev["days_left"] < 0 and ev["verify_message"] == "certificate has expired"
    assert "nginx CA" in ev["issuer"]


def _wrong_name(r: NetcheckRun) -> None:
    ev = _evidence(r, "tls.certificate")
    assert ev["san"] == ["www-other.lab.test"], ev


def _untrusted(r: NetcheckRun) -> None:
    ev = _evidence(r, "tls.certificate")
    assert ev["self_signed"] is True and ev["verified"] is False


def _client_cert_required(r: NetcheckRun) -> None:
    assert _evidence(r, "tls.handshake")["cert_requested"] is True


def _client_cert_given(r: NetcheckRun) -> None:
    ev = _evidence(r, "tls.handshake")
    assert ev["cert_requested"] is True and ev["client_cert"].endswith("pki-nginx/client.crt")
    assert _evidence(r, "http.response")["status"] == 200


def _plain_on_443(r: NetcheckRun) -> None:
    ev = _evidence(r, "tls.handshake")
    assert ev["plaintext"] == "HTTP/1.1 400 Bad Request" and ev["banner_protocol"] == "HTTP"
    assert r.root_cause is not None
    assert "curl -v http://nginx-plain443.lab.test:443/" in r.root_cause["hint"]["commands"]


def _status(code: int, title: str) -> Callable[[NetcheckRun], None]:
    def judge(r: NetcheckRun) -> None:
        ev = _evidence(r, "http.response")
        assert ev["status"] == code and ev["server"].startswith("nginx/"), ev
        assert ev["hops"][0]["title"] == title

    return judge


def _loop(r: NetcheckRun) -> None:
    ev = _evidence(r, "http.response")
    assert ev["outcome"] == "redirect_loop"
    assert [h["url"] for h in ev["hops"]] == ["http://site.lab.test/loop",
                                              "http://site.lab.test/loop-again"]


KEY_EVIDENCE: dict[str, Callable[[NetcheckRun], None]] = {
    "nginx_https_ok": _https_ok,
    "nginx_expired": _expired,
    "nginx_wrong_name": _wrong_name,
    "nginx_untrusted": _untrusted,
    "nginx_client_cert_required": _client_cert_required,
    "nginx_client_cert_given": _client_cert_given,
    "nginx_plain_on_443": _plain_on_443,
    "nginx_503": _status(503, "503 Service Temporarily Unavailable"),
    "nginx_404": _status(404, "404 Not Found"),
    "nginx_redirect_loop": _loop,
}


def test_every_nginx_scenario_is_in_the_library_with_its_evidence() -> None:
    names = {s.name for s in SCENARIOS_LIST}
    assert names <= set(SCENARIOS)
    assert set(SHARED) == set(KEY_EVIDENCE)
    assert names - set(SHARED) == {"nginx_big_pmtu_blackhole"}


@pytest.mark.parametrize("name", [
    n
    for n in SHARED])
def test_nginx_scenario_is_diagnosed(nginx_lab: Lab, name: str) -> None:
    r = diagnose(nginx_lab, name)
    expect = SCENARIOS[name].expect
    rc = r.root_cause
    got = (r.verdict, rc["code"] if rc else None, rc["layer"] if rc else None)
    assert got == tuple(expect), r.explain()
    assert r.rc == {"ok": 0, "degraded": 1, "broken": 2}[expect.verdict]
    assert_commands_paste(r)
    if rc is not None:
        assert rc["hint"] and rc["hint"]["commands"], r.explain()


@pytest.mark.parametrize("name", sorted(KEY_EVIDENCE))
def test_nginx_scenario_shows_the_key_evidence(nginx_lab: Lab, name: str) -> None:
    KEY_EVIDENCE[name](diagnose(nginx_lab, name))


def test_nginx_mutual_tls_refusal_is_visible_today(nginx_lab: Lab) -> None:
    # What the report says until the engine maps nginx's refusal to TLS_CLIENT_CERT_REQUIRED:
    # the handshake asked for a certificate, and nginx's own page says none was sent.
    r = diagnose(nginx_lab, "nginx_client_cert_required")
    assert r.verdict == "broken" and "No required SSL certificate was sent" in r.stdout


# -- the server side: nginx's access log ------------------------------------------------------

def test_request_id_is_in_the_nginx_access_log_with_the_clients_address(nginx_lab: Lab
                                                                         ) -> None:
    r = diagnose(nginx_lab, "nginx_https_ok")
    ev = _evidence(r, "http.response")
    rid = ev["request_id"]
    assert ev["user_agent"].endswith(f"(+{rid})")
    client = CLIENT_V6 if ":" in ev["hops"][0]["address"] else CLIENT_V4
    site = running_sites(nginx_lab)["site"]
    lines = [LOG_LINE.match(line) for line in site.access_lines() if rid in line]
    assert [m and (m["request"], m["status"]) for m in lines] == [
        ("GET /to-https HTTP/1.1", "301"), ("GET / HTTP/1.1", "200")], site.access_lines()
    for m in lines:
        assert m is not None and m["addr"] == client and m["agent"] == ev["user_agent"]
        assert float(m["request_time"]) < 1.0


def test_missing_page_is_in_nginx_error_log(nginx_lab: Lab) -> None:
    diagnose(nginx_lab, "nginx_404")
    site = running_sites(nginx_lab)["site"]
    errors = site.error_log.read_text()
    assert f'open() "{site.root}/missing" failed (2: No such file or directory)' in errors


# -- hostile input still holds with nginx in front ---------------------------------------------

def test_key_path_and_url_password_never_appear(nginx_lab: Lab) -> None:
    issued = client_certificate(nginx_lab)
    secret_dir = Path(nginx_lab.state_dir) / "secret-b7e1d9"
    secret_dir.mkdir(exist_ok=True)
    key = secret_dir / "client.key"
    shutil.copy(issued.key, key)
    key.chmod(0o600)
    url = "https://bob:hunter2@nginx-mtls.lab.test/"
    args = (url, "--cafile", str(nginx_ca_path(nginx_lab)), "--cert", str(issued.cert),
            "--key", str(key))
    as_json = run(nginx_lab, *args)
    assert as_json.verdict == "ok", as_json.explain()
    as_text = run(nginx_lab, *args, "-v", text=True)
    for r in (as_json, as_text):
        for secret in ("secret-b7e1d9", "hunter2"):
            assert secret not in r.stdout and secret not in r.stderr, r.explain()
    log = running_sites(nginx_lab)["nginx-mtls"].access_log.read_text()
    assert "hunter2" not in log


# -- the lab's own nginx: where it runs, what it reads, how it ends ---------------------------

def test_config_listens_only_on_the_sites_addresses(tmp_path: Path) -> None:
    issued = Issued(tmp_path / "server.crt", tmp_path / "server.key")
    site = Site("cfg", 9, client_cert_required=True)
    text = render_config(site, tmp_path, issued, tmp_path / "ca.crt")
    listens = re.findall(r"^\s*listen (\S+?( ssl)?);", text, re.M)
    assert [x[0] for x in listens] == ["198.18.2.59:80", "[2001:db8:2::59]:80",
                                       "198.18.2.59:443 ssl", "[2001:db8:2::59]:443 ssl"]
    assert "ssl_verify_client on;" in text
    paths = re.findall(r'"(/[^"]*)"', text)
    assert paths and all(p.startswith(str(tmp_path)) for p in paths), paths
    assert "daemon off;" in text and "master_process on;" in text
    plain = render_config(Site("cfg", 9, https=False, plain_on_443=True), tmp_path, None,
                          tmp_path / "ca.crt")
    assert "ssl" not in plain and "listen 198.18.2.59:443;" in plain


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def test_nginx_runs_in_the_server_namespace_and_ends_with_the_lab(nginx_available: None
                                                                  ) -> None:
    with Lab() as lab:
        site = start_nginx(lab, SITE)
        assert start_nginx(lab, SITE) is site  # idempotent: scenarios share a site
        pids = [site.pid, *_children(site.pid)]
        assert len(pids) == 2  # the master and its one worker
        for pid in pids:
            where = subprocess.run(["ip", "netns", "identify", str(pid)], capture_output=True,
                                   text=True, check=True).stdout.split()
            assert where == [lab.ns("server")]
        assert site.pid_file.read_text().strip() == str(site.pid)
        assert (site.root / "big").stat().st_size == BIG_SIZE
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or \
            Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


# -- the destructive one: its own lab ----------------------------------------------------------

def test_big_download_over_a_pmtu_black_hole_is_layer_3_not_app_timeout(
        nginx_available: None, lab: Lab) -> None:
    scenario = SCENARIOS["nginx_big_pmtu_blackhole"]
    scenario.apply(lab)
    r = run(lab, *scenario.netcheck_argv(lab))
    rc = r.root_cause
    assert rc is not None and (rc["code"], rc["layer"]) == ("PMTU_BLACKHOLE", 3), r.explain()
    pmtu = _evidence(r, "network.pmtu")
    assert pmtu["normal"]["outcome"] in ("timeout", "stall", "body_stall")
    assert pmtu["small_mss"]["outcome"] == "ok"
    http = r.check("http.response")
    assert http is not None and http["code"] == "APP_TIMEOUT"  # the symptom, not the cause
    assert all(p["state"] != "reply" for p in _evidence(r, "network.target")["ping"])
