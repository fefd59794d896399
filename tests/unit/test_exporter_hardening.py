"""The exporter against hostile requests and hostile servers, for real on loopback.

- an allowed server that redirects outside the allow-list: the hop is refused before any
  packet (a canary listener on 127.0.0.2 counts connections), and the report says so;
- passwords in refused targets reach neither the log nor the answer;
- slow clients, bodies, descriptor exhaustion: scrapes still answer, no traceback;
- [targets] entries match scheme and path, the query string is parsed, not searched;
- socket tables and process names stay out of format=json unless allowed.

Every address here is loopback (127.0.0.1 allowed, 127.0.0.2 the canary); a Location that
names a lab address is recorded but never followed (max_redirects=0).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

from netcheck.exporter import config as configs
from netcheck.exporter.server import without_local_details
from netcheck.probes import http
from tests import canary
from tests.schema import validate_report

from .test_exporter import Exporters, Listener, get

SECRET = "hunter2"


@pytest.fixture
def serve() -> Iterator[Any]:
    with Exporters() as make:
        yield make


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


@pytest.fixture
def redirect_to_canary(tmp_path: Path) -> Iterator[tuple[int, int, Path]]:
    """A redirector on 127.0.0.1 answering 302 to a canary on 127.0.0.2: (ports, hits file)."""
    canary_port = free_port("127.0.0.2")
    hits = tmp_path / "hits"
    bird = canary.start_local(canary.CANARY, "127.0.0.2", str(canary_port), str(hits),
                              ready=tmp_path / "canary.ready")
    port = free_port()
    redirector = canary.start_local(canary.REDIRECTOR, "127.0.0.1", str(port),
                                    f"http://127.0.0.2:{canary_port}/", ready=tmp_path / "r.ready")
    try:
        yield port, canary_port, hits
    finally:
        canary.stop(redirector)
        canary.stop(bird)


def check(doc: dict[str, Any], check_id: str) -> dict[str, Any]:
    found = [c for c in doc["checks"] if c["id"] == check_id]
    assert found, [c["id"] for c in doc["checks"]]
    return found[0]  # type: ignore[no-any-return]


# -- redirects: one policy for every hop ------------------------------------------------------

def test_a_redirect_outside_the_allow_list_is_refused_before_any_packet(
        serve: Any, redirect_to_canary: tuple[int, int, Path]) -> None:
    port, canary_port, hits = redirect_to_canary
    base = serve("", "127.0.0.1/32")
    status, _, body, _ = get(f"{base}/probe?target=http://127.0.0.1:{port}/&format=json")
    assert status == 200
    doc = json.loads(body)
    validate_report(doc)
    assert canary.hits(hits) == []  # not one connection reached the canary
    result = check(doc, "http.response")
    assert result["status"] == "skip", result
    assert (f"redirect to http://127.0.0.2:{canary_port}/ refused: outside the exporter's "
            "allow-list") in result["summary"]
    assert result["evidence"]["outcome"] == "not_allowed"
    assert [h["status"] for h in result["evidence"]["hops"]] == [302]  # the allowed hop only
    _, _, metrics, _ = get(f"{base}/metrics")
    assert "netcheck_exporter_redirects_refused_total 1.0" in metrics


def test_the_canary_does_count_a_redirect_the_allow_list_covers(
        serve: Any, redirect_to_canary: tuple[int, int, Path]) -> None:
    """The control: with 127.0.0.2 allowed the same probe reaches the canary."""
    port, _, hits = redirect_to_canary
    base = serve("", "127.0.0.1/32", "127.0.0.2/32")
    status, _, body, _ = get(f"{base}/probe?target=http://127.0.0.1:{port}/&format=json")
    assert status == 200
    assert canary.hits(hits) == ["127.0.0.1"]
    assert check(json.loads(body), "http.response")["evidence"]["outcome"] != "not_allowed"


def fetch(url: str, policy: configs.Config, names: dict[str, list[str]]) -> http.HttpResult:
    async def resolve(name: str) -> list[str]:
        return names[name]

    return asyncio.run(http.fetch(url, timeout=2, deadline=5, resolve=resolve,
                                  hop_refusal=policy.hop_refusal))


def test_a_name_in_a_redirect_is_judged_by_the_addresses_it_resolves_to(
        redirect_to_canary: tuple[int, int, Path], tmp_path: Path) -> None:
    """A name the allow-list does not list is followed only when every address it resolves
    to is allowed; the resolver is asked, the hop is not."""
    _, canary_port, hits = redirect_to_canary
    policy = configs.Config()
    policy.allow.add("127.0.0.1/32")
    to_canary, to_itself = free_port(), free_port()
    servers = [canary.start_local(canary.REDIRECTOR, "127.0.0.1", str(port), location,
                                  ready=tmp_path / f"{port}.ready")
               for port, location in ((to_canary, f"http://canary.lab.test:{canary_port}/"),
                                      (to_itself, f"http://canary.lab.test:{to_itself}/"))]
    try:
        r = fetch(f"http://127.0.0.1:{to_canary}/", policy, {"canary.lab.test": ["127.0.0.2"]})
        assert r.outcome == "not_allowed", r.to_json()
        assert r.detail == (f"redirect to http://canary.lab.test:{canary_port}/ refused: "
                            "canary.lab.test resolves to 127.0.0.2: outside the exporter's "
                            "allow-list")
        assert canary.hits(hits) == []
        # The name resolving into the allowed network is followed: back to the redirector
        # itself, which sends it there once more — the loop is then the finding.
        r = fetch(f"http://127.0.0.1:{to_itself}/", policy, {"canary.lab.test": ["127.0.0.1"]})
        assert r.outcome == "redirect_loop" and len(r.hops) == 2, r.to_json()
    finally:
        for server in servers:
            canary.stop(server)


def test_named_targets_match_scheme_host_port_and_path() -> None:
    config = configs.parse('[targets]\nssh = { target = "198.18.9.9", port = 22, '
                           'scheme = "tcp" }\nweb = "https://intranet.lab.test/status"\n')

    def refused(text: str) -> Optional[str]:
        return config.why_refused(config.target_for(text, config.modules["default"]))

    assert refused("tcp://198.18.9.9:22") is None
    assert refused("http://198.18.9.9:22/any/path") is not None  # a tcp entry is no web page
    assert refused("https://intranet.lab.test/status") is None
    assert refused("https://intranet.lab.test/admin") is not None
    assert refused("http://intranet.lab.test:443/status") is not None
    # Redirect hops are judged by the same rule.
    assert config.hop_refusal("intranet.lab.test", 443, "https", "/status") is None
    assert config.hop_refusal("intranet.lab.test", 443, "https", "/admin") is not None
    assert config.hop_refusal("198.18.9.9", 22, "http", "/") is not None


def test_a_password_in_a_location_is_masked_in_the_evidence(tmp_path: Path) -> None:
    port = free_port()
    location = f"http://u:{SECRET}@198.18.2.77/private?token={SECRET}"
    server = canary.start_local(canary.REDIRECTOR, "127.0.0.1", str(port), location,
                                ready=tmp_path / "r.ready")
    try:
        # max_redirects=0: the Location is read and recorded, never followed (a lab address
        # must not be reached from the host's own namespace).
        r = asyncio.run(http.fetch(f"http://127.0.0.1:{port}/", timeout=2, deadline=5,
                                   max_redirects=0))
    finally:
        canary.stop(server)
    hop = r.hops[0]
    assert hop.status == 302 and hop.location is not None and hop.next_url is not None
    assert SECRET not in json.dumps(r.to_json()) and SECRET not in hop.wget_line()
    assert "u:***@198.18.2.77" in hop.location and "u:***@198.18.2.77" in hop.wget_line()


# -- passwords in requests ----------------------------------------------------------------------

@pytest.fixture
def exporter_process() -> Iterator[Any]:
    """``netcheck serve -v`` in a subprocess on loopback; yields (base URL, stop -> stderr)."""
    procs: list[subprocess.Popen] = []  # type: ignore[type-arg]

    def run(*args: str, limit_files: Optional[int] = None) -> tuple[str, Any]:
        def limit() -> None:
            if limit_files is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit_files, limit_files))

        proc = subprocess.Popen([sys.executable, "-m", "netcheck", "serve", "--listen",
                                 "127.0.0.1:0", *args], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, preexec_fn=limit)
        procs.append(proc)
        line = proc.stderr.readline()  # type: ignore[union-attr]
        assert "listening on http://127.0.0.1:" in line, line
        base = line.split("listening on ")[1].split()[0]

        def stop() -> str:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                _, err = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate(timeout=5)
            return line + err

        return base, stop

    yield run
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


REFUSED_WITH_SECRETS = [
    f"target=http%3A%2F%2Fann%3A{SECRET}%40127.0.0.1%2F&format=json",  # not allowed
    f"target=http%3A%2F%2Fann%3A{SECRET}%40127.0.0.1%2F",
    f"target=http%3A%2F%2Fann%3A{SECRET}%40exa%20mple%2F&format=json",  # bad target
    f"target=ann%3A{SECRET}%40somewhere",  # credentials without a scheme
    f"target=http%253A%252F%252Fann%253A{SECRET}%2540127.0.0.1%252F",  # encoded twice
    f"target=http://ann:{SECRET}@127.0.0.1/&module=nope&format=json",
    f"target=https%3A%2F%2F127.0.0.1%2F%3Ftoken%3D{SECRET}&format=json",
    f"target=http%3A%2F%2Fann%3A{SECRET}%40127.0.0.1%2F&xformat=json",
]


def test_passwords_in_refused_targets_reach_neither_the_log_nor_the_answer(
        exporter_process: Any) -> None:
    base, stop = exporter_process("-v", "--allow", "198.18.0.0/15")
    answers = [get(f"{base}/probe?{query}") for query in REFUSED_WITH_SECRETS]
    log = stop()
    for query, (status, _, body, _) in zip(REFUSED_WITH_SECRETS, answers):
        assert status == 400 and SECRET not in body, (query, body)
        if "format=json" in query and "xformat" not in query:
            validate_report(json.loads(body))
    assert SECRET not in log, log
    # Refusals are still logged, with the target readable and masked.
    assert "refused /probe target=http://ann:***@127.0.0.1/" in log, log
    assert log.count("refused /probe") == len(REFUSED_WITH_SECRETS)


# -- connections --------------------------------------------------------------------------------

class Loris:
    """Slow clients: each opens a connection, starts a request and sends one more header
    line now and then, never finishing it. Connections the server's accept queue could not
    take at once complete later (the kernel retries the SYN): each starts its request as
    soon as it is connected."""

    REQUEST = b"GET /metrics HTTP/1.1\r\nHost: x\r\n"

    def __init__(self, url: str, count: int, every: float = 1.0) -> None:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self.socks: list[socket.socket] = []
        self.started: set[int] = set()
        self.every = every
        self.stopped = threading.Event()
        for _ in range(count):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex((host, int(port)))
            self.socks.append(s)
        self._round()
        self.thread = threading.Thread(target=self._trickle, daemon=True)
        self.thread.start()

    def _round(self) -> None:
        for i, s in enumerate(self.socks):
            try:
                s.send(b"X-Slow: 1\r\n" if i in self.started else self.REQUEST)
            except OSError:
                continue
            self.started.add(i)

    def _trickle(self) -> None:
        while not self.stopped.wait(self.every):
            self._round()

    def wait_started(self, count: int, timeout: float) -> int:
        """Wait until ``count`` connections have started their request; how many did."""
        deadline = time.monotonic() + timeout
        while len(self.started) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        return len(self.started)

    def received(self) -> list[bytes]:
        """What each connection got back so far (b"" for nothing yet)."""
        out = []
        for s in self.socks:
            try:
                out.append(s.recv(4096))
            except OSError:
                out.append(b"")
        return out

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        for s in self.socks:
            s.close()


@pytest.fixture
def enough_descriptors() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1024:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))


@pytest.mark.parametrize("extra", [(), ("--max-connections", "2000")],
                         ids=["default-cap", "cap-above-the-descriptor-limit"])
def test_slow_clients_with_few_descriptors_do_not_lock_out_a_scrape(
        exporter_process: Any, enough_descriptors: None, extra: tuple[str, ...]) -> None:
    base, stop = exporter_process("--allow", "127.0.0.1", *extra, limit_files=256)
    loris = Loris(base, 300)
    try:
        assert loris.wait_started(300, 15) == 300  # every slow client connected, trickling
        time.sleep(1)
        status, _, body, elapsed = get(f"{base}/metrics", timeout=10)
        assert status == 200 and elapsed < 3, (status, elapsed)
        assert "netcheck_exporter_connections " in body
    finally:
        loris.close()
    log = stop()
    assert "Traceback" not in log, log
    assert log.count("out of file descriptors") <= 1, log  # one line, not one per accept


def test_a_request_must_arrive_within_a_total_deadline(serve: Any) -> None:
    base = serve("", "127.0.0.1", read_timeout=1.0)
    loris = Loris(base, 1, every=0.2)  # a header line every 0.2 s: no read ever waits long
    try:
        deadline = time.monotonic() + 4
        got = b""
        while not got and time.monotonic() < deadline:
            got = loris.received()[0]
            time.sleep(0.1)
    finally:
        loris.close()
    assert got.startswith(b"HTTP/1.1 408 "), got


def test_at_the_connection_cap_the_oldest_unfinished_request_makes_room(serve: Any) -> None:
    base = serve("", "127.0.0.1", max_connections=4)
    loris = Loris(base, 4)
    try:
        status, _, _, elapsed = get(f"{base}/metrics", timeout=5)
        assert status == 200 and elapsed < 2
        time.sleep(0.2)
        first = loris.received()[0]
        assert first.startswith(b"HTTP/1.1 503 "), first
        _, _, metrics, _ = get(f"{base}/metrics")
        assert 'netcheck_exporter_connections_dropped_total{reason="evicted"}' in metrics
    finally:
        loris.close()


def raw_request(base: str, data: bytes, timeout: float = 5) -> bytes:
    """Send raw bytes, read everything until the server closes."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


def test_a_get_body_is_read_and_dropped_never_parsed_as_a_request(serve: Any) -> None:
    base = serve("", "127.0.0.1")
    smuggled = b"GET /probe?target=127.0.0.1 HTTP/1.1\r\nHost: x\r\n\r\n"
    answer = raw_request(base, b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: "
                         + str(len(smuggled)).encode() + b"\r\n\r\n" + smuggled)
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.count(b"HTTP/1.1 ") == 1
    assert b"Connection: close" in answer


@pytest.mark.parametrize("headers, status", [
    (b"Content-Length: 100000000\r\n", b"413"),
    (b"Transfer-Encoding: chunked\r\n", b"411"),
    (b"Content-Length: 5, 6\r\n", b"400"),
])
def test_bodies_too_large_or_without_length_are_refused(serve: Any, headers: bytes,
                                                       status: bytes) -> None:
    base = serve("", "127.0.0.1")
    start_ = time.monotonic()
    answer = raw_request(base, b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 " + status), answer
    assert time.monotonic() - start_ < 2


# -- the query string ---------------------------------------------------------------------------

@pytest.mark.parametrize("query, needle", [
    ("target=127.0.0.1&xformat=json", "unknown parameter 'xformat'"),
    ("target=127.0.0.1&format=json&format=json", "more than once"),
    ("target=127.0.0.1&junk", "bad query string"),
])
def test_the_query_string_is_parsed_not_searched(serve: Any, query: str, needle: str) -> None:
    base = serve("", "127.0.0.1")
    status, ctype, body, _ = get(f"{base}/probe?{query}")
    assert status == 400 and needle in body and ctype.startswith("text/plain"), body


# -- what format=json reveals -------------------------------------------------------------------

def test_socket_tables_and_process_names_stay_out_unless_allowed(serve: Any) -> None:
    listener = Listener()
    held = socket.create_connection(("127.0.0.1", listener.port))  # owned by this process
    try:
        text = '[modules.sockets]\nonly = ["transport.sockets"]\n'
        hidden = serve(text, "127.0.0.1")
        shown_ = serve(text, "127.0.0.1", expose=True)
        query = f"/probe?target=tcp://127.0.0.1:{listener.port}&module=sockets&format=json"
        _, _, body, _ = get(hidden + query)
        doc = json.loads(body)
        validate_report(doc)
        result = check(doc, "transport.sockets")
        assert "sockets" not in result["evidence"] and result["evidence"]["total"] >= 1
        assert f"pid {os.getpid()}" not in body and f'"pid": {os.getpid()}' not in body
        _, _, body, _ = get(shown_ + query)
        result = check(json.loads(body), "transport.sockets")
        assert os.getpid() in [s.get("pid") for s in result["evidence"]["sockets"]], result
    finally:
        held.close()
        listener.close()


def test_without_local_details_drops_nested_keys_and_owner_text() -> None:
    doc = {"checks": [{"id": "transport.sockets", "summary": "1 open, 0 closing: tcp "
                       "ESTABLISHED 127.0.0.1:5 -> 127.0.0.1:6 (secretd, pid 42) (+1 more)",
                       "evidence": {"total": 2, "sockets": [{"pid": 42, "process": "secretd"}],
                                    "nested": {"owners": [{"pid": 42}], "kept": 1}}}]}
    out = without_local_details(doc)["checks"][0]
    assert "secretd" not in json.dumps(out) and "pid 42" not in out["summary"]
    assert out["evidence"]["nested"] == {"kept": 1} and out["evidence"]["total"] == 2
