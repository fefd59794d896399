"""The exporter: safe to expose (allow-list before any packet, bounded concurrency, a
deadline it never overruns) and blackbox-compatible answers, served for real on loopback.

Every probe here targets 127.0.0.1: a listener the test owns, a port nobody listens on,
or a listener whose full accept queue makes the kernel drop SYNs (a silent firewall).
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

from netcheck import registry
from netcheck.exporter import config as configs
from netcheck.exporter.command import parse_listen
from netcheck.exporter.server import Exporter, Server, start
from tests.schema import validate_report

from .test_render_junit_prom import check_metrics

CONFIG = """\
[exporter]
allow = ["198.18.2.0/24", "www.lab.test", "*.example.lab.test"]
concurrency = 4
deadline = 5

[targets]
web = "https://intranet.lab.test/"
ssh = { target = "198.18.9.9", port = 22, scheme = "tcp" }

[modules.connect]
only = ["transport.tcp"]
timeout = 1

[modules.telnet_shut]
scheme = "tcp"
port = 23
expect = "closed"
"""


# -- config and allow-list ------------------------------------------------------------------

def test_config_reads_modules_targets_and_allow_list() -> None:
    config = configs.parse(CONFIG, "exporter.toml")
    assert set(config.modules) == {"default", "connect", "telnet_shut"}
    assert config.modules["telnet_shut"].expect == "closed"
    assert config.modules["connect"].only == ("transport.tcp",)
    assert (config.concurrency, config.deadline) == (4, 5.0)
    assert config.targets["ssh"].url == "tcp://198.18.9.9:22"


@pytest.mark.parametrize("text, needle", [
    ("[exporter]\nallw = []\n", "unknown key 'allw'"),
    ("[modules.x]\nprot = 1\n", "did you mean 'port'"),
    ("[modules.x]\nonly = [\"nothing\"]\n", "matches no check"),
    ("[exporter]\nallow = [\"not a host!\"]\n", "allow entry"),
    ("[targets]\nx = \"exa mple\"\n", "white space"),
    ("[other]\n", r"unknown table \[other\]"),
    ("[exporter\n", "exporter.toml"),
])
def test_config_errors_name_the_problem(text: str, needle: str) -> None:
    with pytest.raises(configs.ConfigError, match=needle):
        config = configs.parse(text, "exporter.toml")
        configs.resolve_checks(config, registry.load().for_mode("diagnose"))


def refused(config: configs.Config, text: str, module: str = "default") -> Optional[str]:
    return config.why_refused(config.target_for(text, config.modules[module]))


def test_the_allow_list_is_judged_on_the_target_as_written() -> None:
    config = configs.parse(CONFIG)
    assert refused(config, "tcp://198.18.2.10:22") is None
    assert refused(config, "https://www.lab.test/") is None
    assert refused(config, "a.b.example.lab.test") is None
    assert refused(config, "example.lab.test") is not None  # *.domain: subdomains only
    assert refused(config, "tcp://198.18.3.53:53") is not None
    assert refused(config, "[::ffff:198.18.2.10]:22") is not None  # no mapped-address detour
    assert refused(config, "tcp://198.18.9.9:22") is None  # named in [targets]
    assert refused(config, "198.18.9.9", "telnet_shut") is not None  # named port 22, not 23
    assert "not in the allow-list" in (refused(config, "127.0.0.1:22") or "")


def test_without_an_allow_list_only_named_targets_pass() -> None:
    config = configs.parse('[targets]\nweb = "https://intranet.lab.test/"\n')
    assert refused(config, "https://intranet.lab.test/") is None
    assert "not named in the config" in (refused(config, "https://intranet.lab.test:8443/")
                                         or "")
    assert "not named" in (refused(configs.Config(), "tcp://127.0.0.1:22") or "")


def test_scrape_timeout_shortens_the_deadline() -> None:
    exporter = Exporter(configs.parse(CONFIG), registry.load().for_mode("diagnose"))
    module = exporter.config.modules["default"]
    assert exporter.deadline_for(module, None) == 5.0
    assert exporter.deadline_for(module, "3") == 2.5
    assert exporter.deadline_for(module, "0.1") == 0.5
    assert exporter.deadline_for(module, "nonsense") == 5.0


def test_listen_addresses() -> None:
    from netcheck.cli import UsageError

    assert parse_listen("127.0.0.1:9115") == ("127.0.0.1", 9115)
    assert parse_listen("[::1]:0") == ("::1", 0)
    assert parse_listen("localhost:9115") == ("127.0.0.1", 9115)
    for bad in ("9115", "example.org:80", "127.0.0.1:99999", "[::1]9115"):
        with pytest.raises(UsageError):
            parse_listen(bad)


# -- served on loopback ---------------------------------------------------------------------

class Listener:
    """A loopback listener that counts every connection attempt that reaches it."""

    def __init__(self, backlog: int = 16) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]

    def attempts(self, wait: float = 0.2) -> int:
        count = 0
        while select.select([self.sock], [], [], wait)[0]:
            conn, _ = self.sock.accept()
            conn.close()
            count += 1
            wait = 0.05
        return count

    def close(self) -> None:
        self.sock.close()


class SilentPort:
    """A loopback port that drops SYNs: its one-slot accept queue is full and never drained."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.filler = socket.create_connection(("127.0.0.1", self.port), timeout=1)

    def close(self) -> None:
        self.filler.close()
        self.sock.close()


class Exporters:
    """In-process exporters on 127.0.0.1, stopped on exit: ``make(config_text, *allow,
    expose=False, **connection_limits)`` -> the base URL of a new one."""

    def __init__(self) -> None:
        self.servers: list[Server] = []

    def make(self, text: str, *allow: str, expose: bool = False, **limits: Any) -> str:
        config = configs.parse(text)
        for entry in allow:
            config.allow.add(entry)
        exporter = Exporter(config, registry.load().for_mode("diagnose"),
                            expose_local_details=expose)
        server, _ = start(exporter, "127.0.0.1", **limits)
        self.servers.append(server)
        return server.url

    def __enter__(self) -> Any:
        return self.make

    def __exit__(self, *exc: object) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


@pytest.fixture
def serve() -> Iterator[Any]:
    with Exporters() as make:
        yield make


def get(url: str, headers: Optional[dict[str, str]] = None,
        timeout: float = 20) -> tuple[int, str, str, float]:
    start_ = time.monotonic()
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode(), \
                time.monotonic() - start_
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode(), \
            time.monotonic() - start_


def test_a_target_outside_the_allow_list_gets_400_before_any_packet(serve: Any) -> None:
    listener = Listener()
    try:
        base = serve("", "198.18.0.0/15")
        status, _, body, _ = get(f"{base}/probe?target=tcp://127.0.0.1:{listener.port}")
        assert status == 400 and "not in the allow-list" in body
        # Also through a module that supplies the port, and as JSON.
        status, ctype, body, _ = get(f"{base}/probe?target=127.0.0.1&module=default"
                                     f"&format=json")
        assert status == 400 and ctype.startswith("application/json")
        validate_report(json.loads(body))
        assert listener.attempts() == 0  # not one SYN reached the listener
        _, _, metrics, _ = get(f"{base}/metrics")
        assert 'netcheck_exporter_rejections_total{reason="not_allowed"} 2.0' in metrics
    finally:
        listener.close()


def test_with_no_allow_list_and_no_config_every_probe_is_refused(serve: Any) -> None:
    listener = Listener()
    try:
        base = serve("")
        status, _, body, _ = get(f"{base}/probe?target=tcp://127.0.0.1:{listener.port}")
        assert status == 400 and "not named in the config" in body
        assert listener.attempts() == 0
    finally:
        listener.close()


def test_an_allowed_probe_answers_blackbox_style_metrics(serve: Any) -> None:
    listener = Listener()
    try:
        base = serve("[modules.connect]\nonly = [\"transport.tcp\"]\n", "127.0.0.1")
        status, ctype, body, _ = get(f"{base}/probe?target=tcp://127.0.0.1:{listener.port}"
                                     "&module=connect")
        assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
        check_metrics(body)
        assert "probe_success 1.0" in body and "probe_ip_protocol 4.0" in body
        assert 'netcheck_check_status{check="transport.tcp",layer="4"} 0.0' in body
        assert listener.attempts() >= 1
        status, ctype, body, _ = get(f"{base}/probe?target=tcp://127.0.0.1:{listener.port}"
                                     "&module=connect&format=json")
        assert status == 200 and json.loads(body)["verdict"] == "ok"
        validate_report(json.loads(body))
    finally:
        listener.close()


def test_a_refused_port_names_its_root_cause(serve: Any) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    base = serve("", "127.0.0.0/8")
    status, _, body, _ = get(f"{base}/probe?target=tcp://127.0.0.1:{port}")
    assert status == 200
    check_metrics(body)
    assert "probe_success 0.0" in body
    assert 'netcheck_root_cause{check="transport.tcp",code="TCP_REFUSED",layer="4"} 1.0' in body


def test_a_module_that_expects_the_port_closed(serve: Any) -> None:
    # The transport check judges the module's expectation; the exporter only renders.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    shut = s.getsockname()[1]
    s.close()
    listener = Listener()
    try:
        base = serve('[modules.shut]\nscheme = "tcp"\nexpect = "closed"\n', "127.0.0.1")
        status, _, body, _ = get(f"{base}/probe?target=127.0.0.1:{shut}&module=shut")
        assert status == 200 and "probe_success 1.0" in body
        assert "netcheck_root_cause{" not in body
        status, _, body, _ = get(f"{base}/probe?target=127.0.0.1:{listener.port}&module=shut")
        assert status == 200 and "probe_success 0.0" in body
        assert ('netcheck_root_cause{check="transport.tcp",code="TCP_OPEN_UNEXPECTED",'
                'layer="4"} 1.0') in body
        status, _, body, _ = get(f"{base}/probe?target=127.0.0.1:{shut}&module=shut"
                                 "&format=json")
        doc = json.loads(body)
        validate_report(doc)
        tcp = next(c for c in doc["checks"] if c["id"] == "transport.tcp")
        assert doc["verdict"] == "ok" and tcp["evidence"]["observed"] == "TCP_REFUSED"
    finally:
        listener.close()


def test_a_silent_port_answers_within_the_deadline(serve: Any) -> None:
    silent = SilentPort()
    try:
        base = serve("[exporter]\ndeadline = 1.5\n[modules.slow]\ntimeout = 10\n", "127.0.0.1")
        status, _, body, elapsed = get(f"{base}/probe?target=tcp://127.0.0.1:{silent.port}"
                                       "&module=slow")
        assert status == 200 and "probe_success 0.0" in body
        assert elapsed < 1.5 + 0.6, elapsed
        # Prometheus' own scrape timeout shortens it further (minus blackbox's 0.5 s).
        status, _, body, elapsed = get(
            f"{base}/probe?target=tcp://127.0.0.1:{silent.port}&module=slow",
            {"X-Prometheus-Scrape-Timeout-Seconds": "1.5"})
        assert status == 200 and elapsed < 1.0 + 0.6, elapsed
    finally:
        silent.close()


def test_busy_exporter_answers_503_within_the_deadline(serve: Any) -> None:
    silent = SilentPort()
    try:
        # The one ladder slot is taken at once (a silent port's exchange would give it up
        # only when it fails, its probes waiting at most half the 4 s left): the second
        # probe finds it busy.
        base = serve("[exporter]\nconcurrency = 1\ndeadline = 4\n"
                     "[modules.default]\nladder = \"always\"\n", "127.0.0.1")
        url = f"{base}/probe?target=tcp://127.0.0.1:{silent.port}"
        first = threading.Thread(target=get, args=(url,))
        first.start()
        time.sleep(0.3)
        status, _, body, elapsed = get(url, {"X-Prometheus-Scrape-Timeout-Seconds": "1.2"})
        first.join()
        assert status == 503 and "probes already running" in body
        assert elapsed < 0.7 + 0.4
    finally:
        silent.close()


@pytest.mark.parametrize("path, status, needle", [
    ("/probe", 400, "target parameter is missing"),
    ("/probe?target=127.0.0.1&module=nope", 400, "unknown module"),
    ("/probe?target=127.0.0.1&target=127.0.0.2", 400, "more than once"),
    ("/probe?target=exa%20mple", 400, "white space"),
    ("/probe?target=127.0.0.1&format=xml", 400, "unknown format"),
    ("/nowhere", 404, "not found"),
    ("/", 200, "/probe?target="),
])
def test_bad_requests(serve: Any, path: str, status: int, needle: str) -> None:
    base = serve("", "127.0.0.1")
    got, _, body, _ = get(base + path)
    assert (got, needle in body) == (status, True), body


def test_own_metrics_pass_promtool_and_post_is_refused(serve: Any) -> None:
    base = serve("", "127.0.0.1")
    status, _, body, _ = get(f"{base}/metrics")
    assert status == 200
    check_metrics(body)
    assert "netcheck_exporter_build_info" in body and "process_resident_memory_bytes" in body
    request = urllib.request.Request(f"{base}/probe?target=127.0.0.1", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(request, timeout=5)
    assert exc.value.code == 405


def test_netcheck_serve_starts_and_stops_on_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "netcheck", "serve", "--listen",
                             "127.0.0.1:0", "--allow", "127.0.0.1"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()  # type: ignore[union-attr]
        assert "listening on http://127.0.0.1:" in line, line
        base = line.split("listening on ")[1].split()[0]
        assert get(f"{base}/metrics")[0] == 200
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0


def test_netcheck_serve_bad_input_is_exit_3() -> None:
    proc = subprocess.run([sys.executable, "-m", "netcheck", "serve", "--listen", "nowhere"],
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode == 3 and "--listen" in proc.stderr
