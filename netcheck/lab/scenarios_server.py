"""Server-side scenarios: the lab seen from the server, with ``netcheck server``.

Each scenario breaks (or serves) something on the server and says how ``netcheck server``
run *in the server namespace* should judge it. ``role`` says where to run it (``server``):
``netcheck_argv()`` gives ``["server", "--port", N, ...]`` with the ``{access_log}`` /
``{error_log}`` placeholders resolved for the lab the scenario was last applied to.

=========================  =====================  ==========================================
what                       where                  fault
=========================  =====================  ==========================================
``srv.lab.test``           198.18.2.56 / ::56     nginx, http 80 + https 443 (nginx lab CA)
``srv-errors.lab.test``    198.18.2.57 / ::57     nginx; the client asked /broken (503) five
                                                  times
port 8080                  127.0.0.1 and ::1      a service bound to loopback only
port 22                    the server's input     ``iifname "eth0" tcp dport 22 drop``
port 8081                  0.0.0.0 and [::]       a docker-proxy for a "container" at
                                                  198.18.2.58:80, dropped in forward
=========================  =====================  ==========================================

Scenarios only add to the lab (their own addresses, ports and nft table), so one lab can
hold them all; the server tests do that to stay fast.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

from netcheck.lab.nginx import Site, nginx_ca, start_nginx
from netcheck.lab.scenarios import Expect, Scenario
from netcheck.lab.topology import CLIENT_V4, Lab, LabError, python_argv

TABLE = "netcheck_server"
SITE = Site("srv", 6)
ERRORS_SITE = Site("srv-errors", 7)
CONTAINER_V4 = "198.18.2.58"  # the "container" docker-proxy forwards to
LOOPBACK_PORT, PROXY_PORT, MISSING_PORT = 8080, 8081, 8443
READY_TIMEOUT = 10.0
PLACEHOLDERS = ("{access_log}", "{error_log}", "{errors_access_log}")


def site_folder(state_dir: Union[str, Path], site: Site) -> Path:
    """Where :func:`netcheck.lab.nginx.start_nginx` keeps a site's files (and logs)."""
    return Path(state_dir) / "nginx" / site.name


def resolve_args(args: tuple[str, ...], state_dir: Optional[str]) -> list[str]:
    """Replace ``{access_log}``, ``{error_log}`` and ``{errors_access_log}`` by the files of
    the lab in ``state_dir``."""
    if not state_dir:
        return list(args)
    files = {"{access_log}": site_folder(state_dir, SITE) / "access.log",
             "{error_log}": site_folder(state_dir, SITE) / "error.log",
             "{errors_access_log}": site_folder(state_dir, ERRORS_SITE) / "access.log"}
    out = []
    for arg in args:
        for marker, path in files.items():
            arg = arg.replace(marker, str(path))
        out.append(arg)
    return out


@dataclass(frozen=True)
class ServerScenario(Scenario):
    """A scenario judged by ``netcheck server`` in the lab's ``role`` namespace."""

    role: str = "server"
    applied: dict[str, str] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def netcheck_argv(self, lab: Any = None) -> list[str]:
        """``["server", "--port", N, ...]``, placeholders resolved for ``lab`` (a Lab, its
        state directory, or by default the lab this scenario was last applied to)."""
        if lab is None:
            state_dir = self.applied.get("state_dir")
        else:
            state_dir = str(lab if isinstance(lab, (str, Path)) else lab.state_dir)
        return [self.target, *resolve_args(self.args, state_dir)]


# -- faults ------------------------------------------------------------------------------------

def _serve(*sites: Site) -> Callable[[Lab], None]:
    def apply(lab: Lab) -> None:
        nginx_ca(lab)
        for site in sites:
            start_nginx(lab, site)

    return apply


def _wait_ready(lab: Lab, label: str, ready: Path, proc: Any) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while not ready.exists():
        if proc.poll() is not None:
            raise LabError(f"{label} exited with {proc.returncode}:\n{lab.log(label)}")
        if time.monotonic() > deadline:
            raise LabError(f"{label} not ready after {READY_TIMEOUT:g} s:\n{lab.log(label)}")
        time.sleep(0.005)


def _loopback_only(lab: Lab) -> None:
    # A service left with its development setting: listening on 127.0.0.1 and ::1.
    label = f"loopback-{LOOPBACK_PORT}"
    ready = Path(lab.state_dir) / f"{label}.ready"
    if ready.exists():
        return
    proc = lab.popen("server", python_argv("-m", "netcheck.lab.servers", "tcp",
                                           "--ports", str(LOOPBACK_PORT),
                                           "--bind", "127.0.0.1,::1", "--ready", str(ready)),
                     name=label, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    _wait_ready(lab, label, ready, proc)


def _input_drop(lab: Lab) -> None:
    lab.nft("server", f"table inet {TABLE} {{\n"
                      "  chain input {\n"
                      "    type filter hook input priority 0; policy accept;\n"
                      '    iifname "eth0" tcp dport 22 counter drop\n'
                      "  }\n"
                      "}\n")


# docker-proxy's own arguments, and what it does: hold the published port on the host. The
# "container" is an address of the server that is routed through its forward chain in real
# Docker (DNAT to a bridge); here only the rule's judgement is at stake.
_PROXY_CODE = """
import socket, sys, time
ready = sys.argv[sys.argv.index('-ready') + 1]
port = int(sys.argv[sys.argv.index('-host-port') + 1])
socks = []
for fam, host in ((socket.AF_INET, '0.0.0.0'), (socket.AF_INET6, '::')):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((host, port)); s.listen(16); socks.append(s)
# Started through a link named docker-proxy, this interpreter is not the venv's and cannot
# import netcheck.safefile: the same rule by hand, a new file that no link can stand in for.
import os
os.close(os.open(ready + '.tmp', os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))
os.replace(ready + '.tmp', ready)
time.sleep(86400)
"""


def _container_forward_drop(lab: Lab) -> None:
    label = "docker-proxy"
    ready = Path(lab.state_dir) / f"{label}.ready"
    if ready.exists():
        return
    # The process must be called docker-proxy (its comm), as Docker's is.
    program = Path(lab.state_dir) / "docker-proxy"
    if not program.exists():
        program.symlink_to(sys.executable)
    # -I as python_argv() gives it: the link is this interpreter under another name.
    proc = lab.popen("server", [str(program), "-I", "-c", _PROXY_CODE, "-proto", "tcp",
                                "-host-ip", "0.0.0.0", "-host-port", str(PROXY_PORT),
                                "-container-ip", CONTAINER_V4, "-container-port", "80",
                                "-ready", str(ready)], name=label)
    _wait_ready(lab, label, ready, proc)
    # What an admin adds to Docker's DOCKER-USER chain, as nft: the container's port dropped.
    lab.nft("server", f"table inet {TABLE}_fwd {{\n"
                      "  chain forward {\n"
                      "    type filter hook forward priority 0; policy accept;\n"
                      f"    ip daddr {CONTAINER_V4} tcp dport 80 counter drop\n"
                      "  }\n"
                      "}\n")


def _burst_of_503(lab: Lab) -> None:
    # The client asks nginx for /broken (503) five times: a burst of server errors in the log.
    _serve(ERRORS_SITE)(lab)
    address = ERRORS_SITE.addresses[0]
    code = ("import urllib.request, urllib.error\n"
            "opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))\n"
            "for _ in range(5):\n"
            "    try:\n"
            f"        opener.open('http://{address}/broken', timeout=3).read()\n"
            "    except urllib.error.HTTPError as e:\n"
            "        assert e.code == 503, e.code\n")
    lab.exec("client", python_argv("-c", code), check=True, timeout=20)
    log = site_folder(lab.state_dir, ERRORS_SITE) / "access.log"
    deadline = time.monotonic() + 5
    while log.read_text(errors="replace").count('" 503 ') < 5:  # written as each one ends
        if time.monotonic() > deadline:
            raise LabError(f"nginx did not log the five 503 answers in {log}")
        time.sleep(0.01)


def _s(name: str, description: str, symptom: str, apply: Callable[[Lab], None],
       args: tuple[str, ...], verdict: str, code: Optional[str] = None,
       layer: Optional[int] = None) -> ServerScenario:
    applied: dict[str, str] = {}

    def record_and_apply(lab: Lab) -> None:
        applied["state_dir"] = str(lab.state_dir)
        apply(lab)

    return ServerScenario(name, description, symptom, "server", record_and_apply,
                          Expect(verdict, code, layer), args, applied=applied)


SCENARIOS_LIST: list[Scenario] = [
    _s("server_ok",
       "nginx serves srv.lab.test on ports 80 and 443; seen from the server, with the "
       "client's address (no fault).",
       "Nothing: the page loads from the client.",
       _serve(SITE), ("--port", "443", "--client", CLIENT_V4, "--log", "{access_log}"), "ok"),
    _s("server_not_listening",
       f"Nothing listens on port {MISSING_PORT}, where the service should be.",
       f"Clients get 'Connection refused' on port {MISSING_PORT}.",
       _serve(SITE), ("--port", str(MISSING_PORT)), "broken", "SRV_NOT_LISTENING", 4),
    _s("server_loopback_only",
       f"The service on port {LOOPBACK_PORT} listens on 127.0.0.1 and ::1 only.",
       f"It works on the server itself (curl localhost:{LOOPBACK_PORT}), while every other "
       "host gets 'Connection refused'.",
       _loopback_only, ("--port", str(LOOPBACK_PORT)), "broken", "SRV_LISTEN_LOOPBACK_ONLY",
       4),
    _s("server_input_drop",
       "The server's own input chain drops TCP port 22 arriving on eth0 (nft).",
       "ssh from the client hangs and times out; on the server, ssh localhost works.",
       _input_drop, ("--port", "22", "--client", CLIENT_V4), "broken", "SRV_FW_INPUT_BLOCK",
       4),
    _s("server_container_forward_drop",
       f"docker-proxy publishes port {PROXY_PORT} for a container at {CONTAINER_V4}:80, and "
       "the forward chain (DOCKER-USER) drops the container's port.",
       f"Clients time out on port {PROXY_PORT}, while docker ps shows the port published.",
       _container_forward_drop, ("--port", str(PROXY_PORT), "--client", CLIENT_V4),
       "broken", "SRV_FW_INPUT_BLOCK", 4),
    _s("server_process_missing",
       "nginx is up on port 80, but the PHP FastCGI workers behind it (php-fpm8.2) are not "
       "running.",
       "Static pages load; PHP pages answer 502 Bad Gateway.",
       _serve(SITE), ("--port", "80", "--process", "php-fpm8.2", "--log", "{access_log}"),
       "broken", "SRV_PROCESS_MISSING", 7),
    _s("server_5xx_burst",
       "nginx answered 503 to five requests of the client in a row (the application behind "
       "it is down).",
       "The browser shows nginx's '503 Service Temporarily Unavailable' page.",
       _burst_of_503, ("--port", "80", "--client", CLIENT_V4, "--log", "{errors_access_log}"),
       "degraded", "SRV_LOG_ERRORS", 7),
]


def _register_late() -> None:
    """Add these scenarios to the library if it was gathered before this module finished
    (when this module is imported first, the gathering saw it half-initialised)."""
    base = sys.modules.get("netcheck.lab.scenarios")
    table = getattr(base, "SCENARIOS", None)
    if isinstance(table, dict):
        for scenario in SCENARIOS_LIST:
            table.setdefault(scenario.name, scenario)


_register_late()
