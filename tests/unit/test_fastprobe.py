"""The exchange first, the ladder when it fails: ``netcheck.fastprobe`` and what uses it.

- :func:`fastprobe.healthy` is a pure function: one row per recorded state, judged by the
  rungs' own rules (a warning is as good as a failure: the ladder must explain it);
- served on loopback, a healthy target is answered by the exchange alone (``netcheck_ladder
  0``, blackbox's metrics), a refused port by the ladder with its root cause, and a module
  with ``ladder = "always"`` always walks the ladder;
- an https exchange judges the certificate the request met (one handshake), and a chain
  that expires soon sends the probe to the ladder;
- a redirect outside the allow-list is refused in the exchange as in the ladder: the canary
  counts no connection;
- the host state forgets what is too old and never hands a failure on; name resolutions
  live as long as their TTL;
- ``netcheck batch --ladder on-failure`` answers healthy targets with the exchange's report
  and diagnoses the others.

Every probe here goes to 127.0.0.0/8: listeners the test owns, or a port nobody listens on.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

from netcheck import fastprobe
from netcheck.hoststate import HostState, resolution_ttl
from netcheck.probes.dns import DnsAnswer, Resolution, ResolverConfig
from netcheck.probes.http import Hop, HttpResult
from netcheck.probes.tcp import TcpResult
from netcheck.probes.tls import CertSummary
from netcheck.target import parse_target
from tests import canary
from tests.schema import validate_report

from .test_exporter import Exporters, Listener, SilentPort, get
from .test_exporter_hardening import redirect_to_canary  # noqa: F401 - a fixture
from .test_render_junit_prom import check_metrics


@pytest.fixture
def serve() -> Iterator[Any]:
    with Exporters() as make:
        yield make


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- healthy(): facts in, answer out ---------------------------------------------------------

def cert(days_left: int, self_signed: bool = False) -> CertSummary:
    return CertSummary("CN=www.lab.test", "CN=lab CA", ["www.lab.test"], "2026-01-01T00:00:00Z",
                       "2027-01-01T00:00:00Z", days_left, "01", "sha256", self_signed, False,
                       "EC secp256r1", "00")


def http_result(outcome: str = "ok", status: Optional[int] = 200, tls: bool = False,
                from_proxy: bool = False) -> HttpResult:
    hop = Hop("http://www.lab.test/", address="198.18.2.10", port=80, status=status,
              connect_ms=0.2, from_proxy=from_proxy,
              tls={"version": "TLSv1.3", "cipher": "TLS_AES_128_GCM_SHA256"} if tls else None)
    return HttpResult(hop.url, outcome, hops=[hop], status=status)


def resolved(ms: float = 3.0, addresses: tuple[str, ...] = ("198.18.2.10",),
             rcode: str = "NOERROR") -> Resolution:
    config = ResolverConfig(path="/etc/resolv.conf", nameservers=["198.18.3.53"])
    answer = DnsAnswer("198.18.3.53", "www.lab.test", "A", rcode, list(addresses), rtt_ms=ms,
                       ttl=60)
    return Resolution("www.lab.test", config, answers=[answer], dns_addresses=list(addresses),
                      addresses=list(addresses), source="dns" if addresses else "none",
                      duration_ms=ms, fqdn="www.lab.test" if rcode == "NOERROR" else None)


def exchange(url: str, connects: tuple[TcpResult, ...] = (),
             http: Optional[HttpResult] = None, chain: tuple[CertSummary, ...] = (),
             resolution: Optional[Resolution] = None) -> fastprobe.Exchange:
    target = parse_target(url)
    addresses = ([target.host] if target.ip is not None else
                 list(resolution.addresses) if resolution else [])
    return fastprobe.Exchange(target, fastprobe.families_for(None), resolution=resolution,
                              addresses=addresses, judged=addresses, connects=list(connects),
                              http=http, chain=list(chain))


OPEN = TcpResult("198.18.2.10", 22, "open", rtt_ms=0.3, after="spoke")
QUIET = TcpResult("198.18.2.10", 22, "open", rtt_ms=0.3, after="quiet")
RESET = TcpResult("198.18.2.10", 22, "reset", rtt_ms=0.3, after="reset")
REFUSED = TcpResult("198.18.2.10", 22, "refused", rtt_ms=0.3)
V6_SILENT = TcpResult("2001:db8:2::10", 22, "timeout", syns=3)

ROWS = [
    ("tcp open, the server speaks", exchange("tcp://198.18.2.10:22", (OPEN,)), True, ""),
    ("tcp open, the server waits", exchange("tcp://198.18.2.10:22", (QUIET,)), True, ""),
    ("tcp reset before a byte", exchange("tcp://198.18.2.10:22", (RESET,)), False, "app.banner"),
    ("tcp refused", exchange("tcp://198.18.2.10:22", (REFUSED,)), False, "transport.tcp"),
    ("one family silent while the other works",
     fastprobe.Exchange(parse_target("tcp://www.lab.test:22"), fastprobe.families_for(None),
                        addresses=["198.18.2.10", "2001:db8:2::10"],
                        judged=["198.18.2.10", "2001:db8:2::10"], connects=[OPEN, V6_SILENT],
                        resolution=resolved(addresses=("198.18.2.10", "2001:db8:2::10"))),
     False, "transport.tcp"),
    ("http 200", exchange("http://198.18.2.10/", http=http_result()), True, ""),
    ("http 404", exchange("http://198.18.2.10/", http=http_result(status=404)), False,
     "http.response"),
    ("http 503", exchange("http://198.18.2.10/", http=http_result(status=503)), False,
     "http.response"),
    ("a proxy refusing CONNECT",
     exchange("http://198.18.2.10/", http=http_result(status=200, from_proxy=True)), False,
     "http.response"),
    ("the body stalls", exchange("http://198.18.2.10/", http=http_result("body_stall")),
     False, "http.response"),
    ("a redirect the allow-list refused",
     exchange("http://198.18.2.10/", http=http_result("not_allowed", status=302)), False,
     "http.response"),
    ("https, a certificate good for months",
     exchange("https://198.18.2.10/", http=http_result(tls=True), chain=(cert(200),)), True,
     ""),
    ("https, a certificate that expires in five days",
     exchange("https://198.18.2.10/", http=http_result(tls=True), chain=(cert(5),)), False,
     "tls.certificate"),
    ("https, no certificate read", exchange("https://198.18.2.10/", http=http_result(tls=True)),
     False, "tls.certificate"),
    ("a name that resolves quickly",
     exchange("http://www.lab.test/", http=http_result(), resolution=resolved()), True, ""),
    ("a name that resolves slowly (DNS_SLOW is a warning)",
     exchange("http://www.lab.test/", http=http_result(), resolution=resolved(ms=900)), False,
     "dns.resolution"),
    ("a name that does not exist",
     exchange("http://www.lab.test/", resolution=resolved(addresses=(), rcode="NXDOMAIN")),
     False, "dns.resolution"),
]


@pytest.mark.parametrize("what, ex, ok, rung", ROWS, ids=[r[0] for r in ROWS])
def test_healthy_is_the_rungs_own_judgement(what: str, ex: fastprobe.Exchange, ok: bool,
                                            rung: str) -> None:
    health = fastprobe.healthy(ex)
    assert (health.ok, health.rung) == (ok, rung), health


def test_only_tcp_http_and_https_have_an_exchange() -> None:
    assert fastprobe.why_no_exchange(parse_target("tcp://198.18.2.10:22")) is None
    assert fastprobe.why_no_exchange(parse_target("https://www.lab.test/")) is None
    for url in ("ssh://198.18.2.10", "smtp://198.18.2.10", "dns://198.18.3.53"):
        assert fastprobe.why_no_exchange(parse_target(url)) is not None
    tcp = parse_target("tcp://198.18.2.10:23")
    assert "closed" in (fastprobe.why_no_exchange(tcp, expect="closed") or "")
    assert fastprobe.why_no_exchange(tcp, only=("transport.tcp",)) is not None
    assert fastprobe.why_no_exchange(tcp, ladder="always") is not None


# -- served on loopback ----------------------------------------------------------------------

def metric(body: str, name: str) -> Optional[str]:
    """The value of an unlabelled sample, or None."""
    for line in body.splitlines():
        if line.startswith(name + " "):
            return line.split()[1]
    return None


def test_a_healthy_port_is_answered_by_the_exchange_alone(serve: Any) -> None:
    listener = Listener()
    try:
        base = serve("", "127.0.0.1")
        status, _, body, _ = get(f"{base}/probe?target=tcp://127.0.0.1:{listener.port}")
        assert status == 200
        check_metrics(body)
        assert (metric(body, "probe_success"), metric(body, "netcheck_ladder"),
                metric(body, "probe_ip_protocol")) == ("1.0", "0.0", "4.0"), body
        assert float(metric(body, "netcheck_tcp_connect_seconds") or -1) >= 0
        assert "netcheck_root_cause{" not in body and "netcheck_check_status{" not in body
        _, _, own, _ = get(f"{base}/metrics")
        assert 'netcheck_exporter_exchanges_total{result="healthy"} 1.0' in own
        assert 'netcheck_exporter_ladders_total{reason="exchange"} 0.0' in own
    finally:
        listener.close()


def test_a_refused_port_gets_the_ladder_and_its_root_cause(serve: Any) -> None:
    base = serve("", "127.0.0.1")
    status, _, body, _ = get(f"{base}/probe?target=tcp://127.0.0.1:{closed_port()}")
    assert status == 200
    check_metrics(body)
    assert (metric(body, "probe_success"), metric(body, "netcheck_ladder")) == ("0.0", "1.0")
    assert 'code="TCP_REFUSED",layer="4"' in body
    _, _, own, _ = get(f"{base}/metrics")
    assert 'netcheck_exporter_ladders_total{reason="exchange"} 1.0' in own


def test_a_module_that_asks_for_the_ladder_always_gets_it(serve: Any) -> None:
    listener = Listener()
    try:
        base = serve('[modules.full]\nladder = "always"\n', "127.0.0.1")
        _, _, body, _ = get(f"{base}/probe?target=tcp://127.0.0.1:{listener.port}&module=full")
        assert (metric(body, "probe_success"), metric(body, "netcheck_ladder")) == ("1.0", "1.0")
        assert 'netcheck_check_status{check="transport.tcp",layer="4"} 0.0' in body
    finally:
        listener.close()


def test_a_silent_port_gets_its_ladder_halfway_through_the_deadline(serve: Any) -> None:
    """The exchange waits for the silent port as long as it may; halfway through the
    deadline the ladder starts beside it, and its root cause is the answer, in time."""
    silent = SilentPort()
    try:
        base = serve("[exporter]\ndeadline = 4\n[modules.patient]\ntimeout = 2.5\n",
                     "127.0.0.1")
        status, _, body, elapsed = get(f"{base}/probe?target=tcp://127.0.0.1:{silent.port}"
                                       "&module=patient")
        assert status == 200 and elapsed < 4 + 0.6, elapsed
        assert metric(body, "probe_success") == "0.0" and metric(body, "netcheck_ladder") == "1.0"
        assert "netcheck_root_cause{" in body, body
        _, _, own, _ = get(f"{base}/metrics")
        assert 'netcheck_exporter_ladders_total{reason="slow"} 1.0' in own
    finally:
        silent.close()


def test_an_overloaded_exporter_answers_503_at_once(serve: Any) -> None:
    """One ladder slot, four probes waiting for it: the next one is told 503 at once, not
    after its deadline; with every exchange in use, so is a healthy target's probe."""
    silent = SilentPort()
    try:
        base = serve('[exporter]\nconcurrency = 1\ndeadline = 4\n'
                     '[modules.full]\nladder = "always"\n', "127.0.0.1")
        url = f"{base}/probe?target=tcp://127.0.0.1:{silent.port}&module=full"
        waiting = [threading.Thread(target=get, args=(url,)) for _ in range(5)]
        for thread in waiting:
            thread.start()
            time.sleep(0.05)
        time.sleep(0.3)
        status, _, body, elapsed = get(url)
        assert status == 503 and "waiting: overloaded" in body, body
        assert elapsed < 0.5, elapsed
        for thread in waiting:
            thread.join()
    finally:
        silent.close()


def test_when_every_exchange_is_in_use_a_probe_is_told_503_at_once() -> None:
    from netcheck import registry
    from netcheck.exporter import config as configs
    from netcheck.exporter.server import Exporter, start

    silent = SilentPort()
    listener = Listener()
    config = configs.parse("[exporter]\ndeadline = 3\n")
    config.allow.add("127.0.0.1")
    server, _ = start(Exporter(config, registry.load().for_mode("diagnose"), exchanges=1))
    try:
        first = threading.Thread(target=get, args=(
            f"{server.url}/probe?target=tcp://127.0.0.1:{silent.port}",))
        first.start()
        time.sleep(0.3)
        status, _, body, elapsed = get(f"{server.url}/probe?target=tcp://127.0.0.1:"
                                       f"{listener.port}")
        assert status == 503 and "exchanges already under way" in body, body
        assert elapsed < 0.5
        first.join()
    finally:
        server.shutdown()
        server.server_close()
        silent.close()
        listener.close()


def test_a_bad_ladder_value_is_a_config_error() -> None:
    from netcheck.exporter import config as configs

    with pytest.raises(configs.ConfigError, match='ladder must be "on-failure" or "always"'):
        configs.parse('[modules.x]\nladder = "sometimes"\n', "exporter.toml")


class Web:
    """A loopback web server answering every GET with ``status`` (https with ``context``)."""

    def __init__(self, status: int = 200, context: Optional[ssl.SSLContext] = None) -> None:
        code = status

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                body = b"<html><title>lab</title></html>"
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if context is not None:
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_an_http_exchange_gives_blackbox_s_phases(serve: Any) -> None:
    web = Web()
    try:
        base = serve("", "127.0.0.1")
        _, _, body, _ = get(f"{base}/probe?target=http://127.0.0.1:{web.port}/")
        check_metrics(body)
        assert metric(body, "probe_http_status_code") == "200.0"
        assert metric(body, "netcheck_ladder") == "0.0" and metric(body, "probe_success") == "1.0"
        for phase in ("resolve", "connect", "tls", "processing", "transfer"):
            assert f'probe_http_duration_seconds{{phase="{phase}"}}' in body
        assert metric(body, "probe_http_redirects") == "0.0"
        # A 404 is the ladder's: the HTTP rung names it.
        missing = Web(404)
        try:
            _, _, body, _ = get(f"{base}/probe?target=http://127.0.0.1:{missing.port}/")
            assert metric(body, "netcheck_ladder") == "1.0"
            assert 'code="HTTP_CLIENT_ERROR"' in body
        finally:
            missing.close()
    finally:
        web.close()


def https_server(tmp_path: Path, days_valid: float) -> tuple[Web, Path]:
    from netcheck.lab.pki import LabCA

    ca = LabCA(tmp_path / f"pki-{days_valid}")
    issued = ca.issue("server", ["localhost", "127.0.0.1"], days_valid=days_valid)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(issued.cert), str(issued.key))
    return Web(context=context), ca.files.cert


def run_exchange(url: str, **options: Any) -> fastprobe.Exchange:
    async def go() -> fastprobe.Exchange:
        return await fastprobe.exchange(parse_target(url), HostState(), timeout=2, deadline=5,
                                         **options)

    return asyncio.run(go())


def test_an_https_exchange_judges_the_certificate_it_met(tmp_path: Path) -> None:
    good, good_ca = https_server(tmp_path, 200)
    soon, soon_ca = https_server(tmp_path, 5)
    try:
        ex = run_exchange(f"https://127.0.0.1:{good.port}/", cafile=str(good_ca))
        assert fastprobe.healthy(ex).ok, fastprobe.healthy(ex)
        assert len(ex.http.hops) == 1 and ex.chain  # type: ignore[union-attr]
        expiry = fastprobe.probe_values(ex).ssl_expiry
        assert expiry is not None and expiry > 0
        ex = run_exchange(f"https://127.0.0.1:{soon.port}/", cafile=str(soon_ca))
        health = fastprobe.healthy(ex)
        assert (health.ok, health.rung) == (False, "tls.certificate")
        assert health.why.startswith("TLS_CERT_EXPIRING"), health
    finally:
        good.close()
        soon.close()


def test_the_exchange_refuses_a_redirect_outside_the_allow_list_before_any_packet(
        serve: Any, redirect_to_canary: tuple[int, int, Path]) -> None:  # noqa: F811
    from netcheck.exporter import config as configs

    port, canary_port, hits = redirect_to_canary
    policy = configs.Config()
    policy.allow.add("127.0.0.1/32")
    ex = run_exchange(f"http://127.0.0.1:{port}/", hop_refusal=policy.hop_refusal)
    assert ex.http is not None and ex.http.outcome == "not_allowed"
    assert not fastprobe.healthy(ex).ok
    # Through the exporter: the exchange and then the ladder refuse it, nothing reaches it.
    base = serve("", "127.0.0.1/32")
    _, _, body, _ = get(f"{base}/probe?target=http://127.0.0.1:{port}/")
    assert metric(body, "netcheck_ladder") == "1.0"
    assert canary.hits(hits) == []


# -- the host state --------------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_host_state_forgets_what_is_too_old_and_never_shares_a_failure() -> None:
    clock = Clock()
    state = HostState(max_age=5.0, clock=clock)

    async def scenario() -> None:
        async def ok() -> str:
            return "rules"

        async def broken() -> str:
            raise OSError("netlink went away")

        state[("firewall", "rules")] = asyncio.ensure_future(ok())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert (await state[("firewall", "rules")]) == "rules"
        clock.now += 4.9
        assert ("firewall", "rules") in state
        clock.now += 0.2
        assert ("firewall", "rules") not in state  # older than max_age
        failing = state["hardware"] = asyncio.ensure_future(broken())
        with pytest.raises(OSError):
            await failing
        assert "hardware" not in state  # a failure is not handed to the next probe
        state[("sockets", "tables")] = [1, 2]  # a plain value (value_shared)
        clock.now += 5.0
        assert ("sockets", "tables") not in state

    asyncio.run(scenario())


def test_a_resolution_lives_as_long_as_its_ttl() -> None:
    assert resolution_ttl(resolved()) == 60.0
    slow = resolved()
    slow.answers[0].ttl = 100_000
    assert resolution_ttl(slow) == 300.0  # capped
    assert resolution_ttl(resolved(addresses=(), rcode="NXDOMAIN")) == 0.0  # never kept
    hosts = resolved()
    hosts.source = "hosts"
    assert resolution_ttl(hosts, max_age=5.0) == 5.0
    clock = Clock()
    state = HostState(max_names=2, clock=clock)
    key = ("resolution", "www.lab.test", (2,), "/etc/resolv.conf", "/etc/hosts")
    state[key] = resolved()
    clock.now += 59
    assert key in state
    clock.now += 2
    assert key not in state
    for n in range(3):  # bounded: the least recently used name goes first
        state[("resolution", f"n{n}", (2,), "r", "h")] = resolved()
    assert ("resolution", "n0", (2,), "r", "h") not in state
    assert ("resolution", "n2", (2,), "r", "h") in state


def test_dns_ttl_is_read_from_the_answer_or_the_soa() -> None:
    import dns.message
    import dns.rrset

    from netcheck.probes.dns import _ttl

    query = dns.message.make_query("www.lab.test", "A")
    answer = dns.message.make_response(query)
    answer.answer.append(dns.rrset.from_text("www.lab.test.", 60, "IN", "A", "198.18.2.10"))
    answer.answer.append(dns.rrset.from_text("www.lab.test.", 30, "IN", "A", "198.18.2.11"))
    assert _ttl(answer) == 30
    nodata = dns.message.make_response(dns.message.make_query("www.lab.test", "AAAA"))
    nodata.authority.append(dns.rrset.from_text(
        "lab.test.", 3600, "IN", "SOA", "ns.lab.test. h.lab.test. 1 3600 600 86400 45"))
    assert _ttl(nodata) == 45  # RFC 2308: min(SOA TTL, MINIMUM)
    assert _ttl(dns.message.make_response(query)) is None


# -- batch --ladder on-failure ---------------------------------------------------------------

def test_batch_on_failure_answers_healthy_targets_with_the_exchange(tmp_path: Path) -> None:
    listener = Listener(backlog=64)
    web = Web()
    try:
        lines = (f"tcp://127.0.0.1:{listener.port}\nhttp://127.0.0.1:{web.port}/\n"
                 f"tcp://127.0.0.1:{closed_port()}\n")
        proc = subprocess.run([sys.executable, "-m", "netcheck", "batch", "-", "--ladder",
                               "on-failure", "--format", "json", "--timeout", "1"],
                              input=lines, capture_output=True, text=True, timeout=60)
        doc = json.loads(proc.stdout)
        assert proc.returncode == 2, proc.stderr
        results = doc["results"]
        for result in results:
            validate_report(result)
        fast = [r for r in results if r["verdict"] == "ok"]
        assert len(fast) == 2
        for r in fast:  # the exchange's report: the rungs it stands for, each passed
            assert all(c["status"] == "pass" and c["evidence"]["phase"] == "exchange"
                       for c in r["checks"]), r["checks"]
        assert [c["id"] for c in fast[0]["checks"]] == ["transport.tcp"]
        assert [c["id"] for c in fast[1]["checks"]] == ["transport.tcp", "http.response"]
        broken = results[2]
        assert broken["root_cause"]["code"] == "TCP_REFUSED"
        assert len(broken["checks"]) > 5  # the whole ladder
    finally:
        listener.close()
        web.close()


def test_batch_ladder_choices_are_checked() -> None:
    proc = subprocess.run([sys.executable, "-m", "netcheck", "batch", "-", "--ladder", "never"],
                          input="", capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0 and "--ladder" in proc.stderr
