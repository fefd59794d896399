"""The container engine, read-only: its API over a real unix socket, its containers' state,
their log (json-file, read from its end) and what a stopped engine leaves on disk."""

from __future__ import annotations

import http.server
import json
import os
import socket
import socketserver
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from netcheck.probes import docker

CID = "57da4b51f0fb574fc89a751e3fecc0cd079e37d1c6dd1c41c8aecd031413838c"
NOW = 1_800_000_000.0


def rfc3339(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + ".000000000Z"


def inspect(**state: Any) -> dict[str, Any]:
    """``docker inspect`` of a container publishing 8081 -> 80 (fields as Docker 20.10 has them)."""
    base = {"Status": "running", "Running": True, "Paused": False, "Restarting": False,
            "OOMKilled": False, "Dead": False, "Pid": 4242, "ExitCode": 0, "Error": "",
            "StartedAt": rfc3339(NOW - 300), "FinishedAt": "0001-01-01T00:00:00Z"}
    restart_count = state.pop("RestartCount", 0)
    base.update(state)
    return {"Id": CID, "Name": "/web", "RestartCount": restart_count, "State": base,
            "Config": {"Image": "wordpress", "ExposedPorts": {"80/tcp": {}}},
            "HostConfig": {"PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8081"}]},
                           "RestartPolicy": {"Name": "always"},
                           "LogConfig": {"Type": "json-file"}},
            "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "172.17.0.2"}}},
            "LogPath": f"/var/lib/docker/containers/{CID}/{CID}-json.log"}


@pytest.mark.parametrize("state,down,text", [
    ({}, False, "Up 5 min"),
    ({"Status": "exited", "Running": False, "ExitCode": 1, "Pid": 0,
      "FinishedAt": rfc3339(NOW - 5)}, True, "Exited (1) 5 s ago"),
    ({"Status": "restarting", "Restarting": True, "ExitCode": 1, "RestartCount": 7,
      "FinishedAt": rfc3339(NOW - 35)}, True, "Restarting (1) 35 s ago"),
    ({"RestartCount": 5, "StartedAt": rfc3339(NOW - 2)}, True, "Up 2 s"),  # a loop, caught up
    ({"RestartCount": 5}, False, "Up 5 min"),  # restarted long ago, steady since
    ({"Status": "paused", "Paused": True}, True, "Up (Paused)"),
    ({"Status": "created", "Running": False, "Pid": 0}, True, "Created"),
    ({"Health": {"Status": "unhealthy", "Log": [{"Output": "curl: (7) refused"}]}}, False,
     "Up 5 min (unhealthy)"),
], ids=["running", "exited", "restarting", "looping", "restarted-long-ago", "paused",
        "created", "unhealthy"])
def test_container_state(state: dict[str, Any], down: bool, text: str) -> None:
    c = docker.Container.from_inspect(inspect(**state))
    assert (c.down(NOW), c.state_text(NOW)) == (down, text)
    assert c.label == "web" and c.addresses == ["172.17.0.2"]
    assert [b.text() for b in c.publishes(8081, "tcp")] == ["0.0.0.0:8081->80/tcp"]
    assert c.publishes(8081, "udp") == [] and c.publishes(80, "tcp") == []


def test_bindings_on_loopback_only() -> None:
    found = docker.parse_bindings({"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8086"}],
                                   "443/tcp": None, "bad": [{}]})
    assert [(b.text(), b.loopback_only) for b in found] == [("127.0.0.1:8086->80/tcp", True)]


@pytest.mark.parametrize("text,epoch", [
    ("2026-12-07T16:11:53.123456789Z", 1796659913.123457),
    ("2026-12-07T17:11:53+01:00", 1796659913.0),
    ("0001-01-01T00:00:00Z", None), ("yesterday", None), (None, None)])
def test_parse_time(text: Any, epoch: Any) -> None:
    got = docker.parse_time(text)
    assert got == pytest.approx(epoch) if epoch is not None else got is None


def test_host_flags() -> None:
    argv = ["/usr/bin/dockerd", "-H", "fd://", "--host=unix:///run/a.sock", "-Hunix:///b.sock"]
    assert docker.host_flags(argv) == ["fd://", "unix:///run/a.sock", "unix:///b.sock"]


def test_candidate_sockets_in_order(tmp_path: Path) -> None:
    config = tmp_path / "daemon.json"
    config.write_text(json.dumps({"hosts": ["unix:///srv/docker.sock", "tcp://0.0.0.0:2375"]}))
    found = docker.candidate_sockets(str(tmp_path / "noproc"), {
        "DOCKER_HOST": "unix:///tmp/mine.sock", "XDG_RUNTIME_DIR": "/run/user/1000"},
        str(config))
    assert found[:3] == [("/tmp/mine.sock", "DOCKER_HOST"),
                         ("/srv/docker.sock", str(config)),
                         ("/run/docker.sock", "the default socket")]
    assert ("/run/user/1000/podman/podman.sock", "the default socket") in found
    # A TCP DOCKER_HOST is never asked (read-only means local).
    assert all(not p.startswith("tcp") for p, _ in docker.candidate_sockets(
        str(tmp_path), {"DOCKER_HOST": "tcp://10.0.0.1:2375"}, str(config)))


# -- the API over a real unix socket --------------------------------------------------------------

class _Engine(http.server.BaseHTTPRequestHandler):
    answers: dict[str, Any] = {}

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = self.answers.get(self.path)
        if body is None:
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b'{"message":"page not found"}')
            return
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self) -> Any:
        conn, _ = self.socket.accept()
        return conn, ("local", 0)


@pytest.fixture
def engine_socket(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "docker.sock"
    _Engine.answers = {
        "/version": {"Version": "20.10.24", "ApiVersion": "1.41"},
        "/containers/json?all=1": [{"Id": CID}],
        f"/containers/{CID}/json": inspect(),
    }
    server = _UnixServer(str(path), _Engine)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        server.shutdown()
        server.server_close()


def test_read_engine_over_its_socket(engine_socket: Path, tmp_path: Path) -> None:
    view = docker.read_engine("/proc", 2.0, {"DOCKER_HOST": f"unix://{engine_socket}"},
                              str(tmp_path / "none.json"))
    assert view.reachable and view.socket == str(engine_socket) and view.how == "DOCKER_HOST"
    assert view.version == "20.10.24" and view.product == "Docker"
    assert [c.label for c in view.publishing(8081, "tcp")] == ["web"]


def test_api_refuses_an_oversized_answer(engine_socket: Path) -> None:
    _Engine.answers["/big"] = b"[" + b"0," * (docker.MAX_BODY // 2) + b"0]"
    with pytest.raises(docker.EngineError, match="larger than"):
        docker.Api(str(engine_socket)).get("/big")
    with pytest.raises(docker.EngineError, match="404"):
        docker.Api(str(engine_socket)).get("/nothing")


def test_a_stopped_engine_is_told_from_an_absent_one(tmp_path: Path) -> None:
    # A socket file nobody listens on: what a killed dockerd leaves.
    dead = tmp_path / "dead.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(dead))
    s.close()
    view = docker.read_engine("/proc", 1.0, {"DOCKER_HOST": f"unix://{dead}"},
                              str(tmp_path / "none.json"))
    assert not view.reachable and "refuses connections" in (view.down_socket or "")
    absent = docker.read_engine("/proc", 1.0, {"DOCKER_HOST": f"unix://{tmp_path}/x.sock"},
                                str(tmp_path / "none.json"))
    assert absent.down_socket is None and "does not exist" in absent.problems[0]


def test_stored_containers_of_a_stopped_engine(tmp_path: Path) -> None:
    """dockerd stopped cleanly removes its socket; its data root still names the container."""
    folder = tmp_path / "data" / "containers" / CID
    folder.mkdir(parents=True)
    data = inspect(Status="exited", Running=False, ExitCode=0)
    host = data.pop("HostConfig")
    data["ID"] = data.pop("Id")
    (folder / "config.v2.json").write_text(json.dumps(data))
    (folder / "hostconfig.json").write_text(json.dumps(host))
    config = tmp_path / "daemon.json"
    config.write_text(json.dumps({"data-root": str(tmp_path / "data"),
                                  "hosts": [f"unix://{tmp_path}/docker.sock"]}))
    view = docker.read_engine("/proc", 1.0, {}, str(config))
    assert view.stored and [c.label for c in view.publishing(8081, "tcp")] == ["web"]
    assert view.down_socket is not None and "not running" in view.down_socket


# -- the log ---------------------------------------------------------------------------------------

def write_log(path: Path, rows: list[tuple[float, str]]) -> None:
    with open(path, "w") as fh:
        for when, text in rows:
            fh.write(json.dumps({"log": text + "\n", "stream": "stderr",
                                 "time": rfc3339(when)}) + "\n")


def access(client: str, rid: str, status: int = 200) -> str:
    return (f'{client} - - [07/Dec/2026:16:18:29 +0000] "GET / HTTP/1.1" {status} 63 "-" '
            f'"netcheck/0.1.0 (+{rid})"')


def test_json_file_log_finds_the_request(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    write_log(log, [(NOW - 7200, access("198.18.1.2", "old000000000")),  # before --since
                    (NOW - 60, access("198.18.1.20", "aaaaaaaaaaaa")),  # another client
                    (NOW - 50, "[::ffff:198.18.1.2]:41234: url:/"),  # busybox httpd -v
                    (NOW - 40, access("198.18.1.2", "abc123def456")),
                    (NOW - 30, access("198.18.1.2", "ffffffffffff", 503))])
    scan = docker.scan_json_file(str(log), "web", NOW - 3600, None, "198.18.1.2")
    assert (scan.lines, scan.matched, scan.matched_5xx) == (4, 3, 1)
    scan = docker.scan_json_file(str(log), "web", NOW - 3600, "abc123def456", "198.18.1.2")
    assert scan.matched == 1 and "abc123def456" in scan.matches[0]
    assert docker.scan_json_file(str(log), "web", NOW - 3600, "old000000000", None).matched == 0
    assert scan.statuses == {"2xx": 2, "5xx": 1}


def test_json_file_log_is_read_from_its_end_only(tmp_path: Path) -> None:
    log = tmp_path / "big-json.log"
    write_log(log, [(NOW - 10, access("198.18.1.2", f"{i:012d}")) for i in range(2000)])
    scan = docker.scan_json_file(str(log), "web", 0, None, "198.18.1.2", max_bytes=20_000)
    assert 0 < scan.lines < 200 and "read the last" in scan.stopped
    assert scan.matches[-1].find("000000001999") > 0


def test_listeners_inside_a_process_namespace() -> None:
    """/proc/PID/net/tcp is the namespace of PID: here, this test's own."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        found = docker.listeners_inside(os.getpid(), "tcp")
    assert ("127.0.0.1", port) in found and docker.is_loopback("127.0.0.1")
    assert docker.is_loopback("::ffff:127.0.0.1") and not docker.is_loopback("0.0.0.0")


def test_since_flag() -> None:
    assert [docker.since_flag(s) for s in (600, 3600, 5400, 30)] == ["10m", "1h", "90m", "1m"]


def test_engine_found_through_the_dockerd_of_this_namespace(tmp_path: Path) -> None:
    """A dockerd started with ``--config-file`` and no -H (the lab's, or a packaged one):
    its configuration names the socket; a dockerd of another namespace is not asked."""
    config = tmp_path / "lab-daemon.json"
    config.write_text(json.dumps({"hosts": ["unix:///run/lab/docker.sock"]}))
    procfs = tmp_path / "proc"
    for pid, netns, argv in (("self", "net:[4026531840]", []),
                             ("100", "net:[4026531840]", ["dockerd", "--config-file",
                                                          str(config)]),
                             ("200", "net:[4026532000]", ["dockerd", "-H",
                                                          "unix:///other.sock"])):
        (procfs / pid / "ns").mkdir(parents=True)
        (procfs / pid / "ns" / "net").symlink_to(netns)
        (procfs / pid / "comm").write_text("dockerd\n")
        (procfs / pid / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv))
    found = docker.candidate_sockets(str(procfs), {}, str(tmp_path / "none.json"))
    assert found[0] == ("/run/lab/docker.sock", f"dockerd (pid 100) --config-file {config}")
    assert all(p != "/other.sock" for p, _ in found)
