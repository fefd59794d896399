"""The slides' server in Docker: a real engine in the server namespace, broken the usual ways.

Every scenario runs one container of the lab's engine (:mod:`netcheck.lab.docker`, started on
first use) on its own host port, so one lab can hold them all; only ``docker_engine_stopped``
takes the engine down, and must come last. Each is diagnosed from both ends: ``netcheck
server --port N`` in the server namespace (the scenario's own target and expectation) and
``netcheck CLIENT_TARGET`` in the client (``client_target``, ``client_expect``).

=========================  =====  =============================================================
scenario                   port   what the container does
=========================  =====  =============================================================
docker_ok                  8081   busybox httpd, published 8081->80, logs each request
docker_exited              8082   the app died at start (exit 1): ``docker ps -a`` says Exited
docker_restarting          8083   the same, with ``--restart always``: a restart loop
docker_loopback_inside     8084   published, but httpd listens on the container's 127.0.0.1
docker_not_published       8085   httpd on 8085 inside, no ``-p``: nothing on the host
docker_published_loopback  8086   published as ``-p 127.0.0.1:8086:80`` only
docker_user_drop           8088   published; a DOCKER-USER rule drops the client's packets
docker_engine_stopped      8087   published with ``--restart always``; then dockerd is stopped
=========================  =====  =============================================================
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Callable, Optional

from netcheck.lab import docker
from netcheck.lab.scenarios import Expect, Scenario, register_late
from netcheck.lab.scenarios_server import ServerScenario
from netcheck.lab.topology import CLIENT_V4, SERVER_V4, Lab, LabError

OK_PORT, EXITED_PORT, LOOP_PORT, INSIDE_PORT = 8081, 8082, 8083, 8084
UNPUBLISHED_PORT, LOCAL_PORT, STOPPED_PORT, FILTERED_PORT = 8085, 8086, 8087, 8088
# An application that cannot start: busybox httpd with a document root that does not exist
# ("httpd: can't change directory to '/srv/www'", exit 1).
CRASH = ("httpd", "-f", "-p", "80", "-h", "/srv/www")


@dataclass(frozen=True)
class DockerScenario(ServerScenario):
    """A server scenario with a container, and what the client sees of it."""

    client_target: str = ""
    client_expect: Expect = field(default=Expect("ok", None, None))
    client_args: tuple[str, ...] = ()
    last: bool = False  # takes the engine down: apply after every other one

    def client_argv(self) -> list[str]:
        """``netcheck`` arguments for the client end of the scenario."""
        return [self.client_target, *self.client_args]


def _container(name: str, command: tuple[str, ...] = docker.HTTPD, publish: tuple[str, ...] = (),
               restart: str = "no", expose: tuple[str, ...] = (),
               then: Optional[Callable[[Lab], None]] = None) -> Callable[[Lab], None]:
    def apply(lab: Lab) -> None:
        if docker.inspect(docker.engine(lab), name):
            return  # applied before, in this lab
        docker.run(lab, name, command, publish=publish, restart=restart, expose=expose)
        if then is not None:
            then(lab)

    return apply


def _running(name: str) -> Callable[[Lab], None]:
    def wait(lab: Lab) -> None:
        docker.wait_state(lab, name, lambda st: st.get("Running") and not st.get("Restarting"),
                          what="running")
        # The listening socket comes a moment after the process: wait until it accepts.
        port = {"web": OK_PORT, "web-filtered": FILTERED_PORT}.get(name)
        if port is not None:
            code = ("import socket,time\nend=time.time()+10\nwhile True:\n"
                    "  try:\n"
                    f"    socket.create_connection(('{SERVER_V4}', {port}), 1).close(); break\n"
                    "  except OSError:\n"
                    "    if time.time()>end: raise\n"
                    "    time.sleep(0.05)\n")
            lab.exec("server", [sys.executable, "-c", code], check=True, timeout=15)

    return wait


def _exited(name: str) -> Callable[[Lab], None]:
    def wait(lab: Lab) -> None:
        docker.wait_state(lab, name, lambda st: st.get("Status") == "exited", what="exited")

    return wait


def _looping(name: str) -> Callable[[Lab], None]:
    def wait(lab: Lab) -> None:
        # Docker doubles its delay after each failed start (100 ms, 200 ms...): a few restarts
        # take about a second, and the container is then "Restarting" most of the time.
        info = docker.wait_state(lab, name, lambda st: st.get("Restarting") is True,
                                 what="restarting")
        if not isinstance(info.get("RestartCount"), int):
            raise LabError(f"container {name}: no restart count")

    return wait


def _drop_client(lab: Lab) -> None:
    """``iptables -I DOCKER-USER -s CLIENT -d CONTAINER -j DROP``: what an admin adds to keep
    one client out of one container (Docker's own chain for user rules)."""
    _running("web-filtered")(lab)
    address = docker.inspect(lab, "web-filtered")["NetworkSettings"]["IPAddress"]
    lab.exec("server", [_iptables(), "-I", "DOCKER-USER", "-s", f"{CLIENT_V4}/32", "-d",
                        f"{address}/32", "-p", "tcp", "-j", "DROP"], check=True)


def _iptables() -> str:
    from netcheck.lab.topology import _tool

    return _tool("iptables")


def _stop_engine(lab: Lab) -> None:
    _running("web-engine")(lab)
    docker.stop_engine(lab)


def _s(name: str, description: str, symptom: str, apply: Callable[[Lab], None], port: int,
       server_args: tuple[str, ...], expect: Expect, client_target: str,
       client_expect: Expect, last: bool = False) -> DockerScenario:
    applied: dict[str, str] = {}

    def record_and_apply(lab: Lab) -> None:
        applied["state_dir"] = str(lab.state_dir)
        apply(lab)

    return DockerScenario(name, description, symptom, "server", record_and_apply, expect,
                          ("--port", str(port), *server_args), applied=applied,
                          client_target=client_target, client_expect=client_expect, last=last)


def _tcp(port: int) -> str:
    return f"tcp://{SERVER_V4}:{port}"


REFUSED = Expect("broken", "TCP_REFUSED", 4)

SCENARIOS_LIST: list[Scenario] = [
    _s("docker_ok",
       f"A container (busybox httpd) publishes port {OK_PORT} -> 80 through a real Docker "
       "engine on the server: docker-proxy, DNAT and Docker's FORWARD chains (no fault).",
       "Nothing: the page loads; docker logs shows the request.",
       _container("web", publish=(f"{OK_PORT}:80",), then=_running("web")), OK_PORT,
       ("--client", CLIENT_V4), Expect("ok", None, None),
       f"http://{SERVER_V4}:{OK_PORT}/", Expect("ok", None, None)),
    _s("docker_exited",
       f"The container publishing port {EXITED_PORT} died at start (its application exits "
       "with status 1): Docker released the port.",
       f"Clients get 'Connection refused' on port {EXITED_PORT}; docker ps does not list the "
       "container (docker ps -a says Exited (1)).",
       _container("web-exited", CRASH, publish=(f"{EXITED_PORT}:80",),
                  then=_exited("web-exited")), EXITED_PORT, (),
       Expect("broken", "SRV_CONTAINER_DOWN", 7), _tcp(EXITED_PORT), REFUSED),
    _s("docker_restarting",
       f"The container publishing port {LOOP_PORT} keeps crashing and Docker keeps restarting "
       "it (--restart always): a restart loop.",
       f"Clients get 'Connection refused' (or a reset) on port {LOOP_PORT}; docker ps says "
       "Restarting (1).",
       _container("web-loop", CRASH, publish=(f"{LOOP_PORT}:80",), restart="always",
                  then=_looping("web-loop")), LOOP_PORT, (),
       Expect("broken", "SRV_CONTAINER_DOWN", 7), _tcp(LOOP_PORT), REFUSED),
    _s("docker_loopback_inside",
       f"Port {INSIDE_PORT} is published to the container's port 80, but the application "
       "inside listens on the container's own 127.0.0.1 (the most common container mistake).",
       f"docker ps shows 0.0.0.0:{INSIDE_PORT}->80/tcp, yet clients get 'Connection refused'; "
       "inside the container, wget localhost works.",
       _container("web-local", ("httpd", "-f", "-v", "-p", "127.0.0.1:80", "-h", "/www"),
                  publish=(f"{INSIDE_PORT}:80",), then=_running("web-local")), INSIDE_PORT, (),
       Expect("broken", "SRV_CONTAINER_NOT_LISTENING", 4), _tcp(INSIDE_PORT), REFUSED),
    _s("docker_not_published",
       f"The application runs in a container listening on {UNPUBLISHED_PORT}, but the port "
       "was never published (no -p): nothing on the host forwards it.",
       f"Clients get 'Connection refused' on port {UNPUBLISHED_PORT}; docker ps shows the "
       f"container with {UNPUBLISHED_PORT}/tcp and no arrow.",
       _container("web-unpublished",
                  ("httpd", "-f", "-v", "-p", str(UNPUBLISHED_PORT), "-h", "/www"),
                  expose=(f"{UNPUBLISHED_PORT}/tcp",), then=_running("web-unpublished")),
       UNPUBLISHED_PORT, (), Expect("broken", "SRV_PORT_NOT_PUBLISHED", 4),
       _tcp(UNPUBLISHED_PORT), REFUSED),
    _s("docker_published_loopback",
       f"The container's port is published on the host's 127.0.0.1 only (-p "
       f"127.0.0.1:{LOCAL_PORT}:80).",
       f"curl localhost:{LOCAL_PORT} works on the server; every other host gets 'Connection "
       "refused'.",
       _container("web-local-publish", publish=(f"127.0.0.1:{LOCAL_PORT}:80",),
                  then=_running("web-local-publish")), LOCAL_PORT, (),
       Expect("broken", "SRV_PORT_NOT_PUBLISHED", 4), _tcp(LOCAL_PORT), REFUSED),
    _s("docker_user_drop",
       f"A rule in Docker's DOCKER-USER chain drops the client's packets to the container "
       f"published on {FILTERED_PORT}.",
       f"The client's connections to port {FILTERED_PORT} time out; other hosts connect; the "
       "container is up.",
       _container("web-filtered", publish=(f"{FILTERED_PORT}:80",), then=_drop_client),
       FILTERED_PORT, ("--client", CLIENT_V4), Expect("broken", "SRV_FW_INPUT_BLOCK", 4),
       _tcp(FILTERED_PORT), Expect("broken", "TCP_FILTERED", 4)),
    _s("docker_engine_stopped",
       f"dockerd itself is stopped: the container publishing {STOPPED_PORT} (restart policy "
       "always) is down with it.",
       f"Clients get 'Connection refused' on port {STOPPED_PORT}; docker ps says 'Cannot "
       "connect to the Docker daemon'.",
       _container("web-engine", publish=(f"{STOPPED_PORT}:80",), restart="always",
                  then=_stop_engine), STOPPED_PORT, (),
       Expect("broken", "SRV_CONTAINER_DOWN", 7), _tcp(STOPPED_PORT), REFUSED, last=True),
]


register_late(SCENARIOS_LIST)
