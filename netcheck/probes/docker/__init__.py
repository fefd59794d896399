"""The containers behind a published port, as the container engine and the kernel show them.

The slides' server is a WordPress in Docker: ``ss -tlp`` shows ``docker-proxy`` on the ports,
``docker ps`` the containers, ``docker logs CONTAINER | grep CLIENT`` the requests. This
module reads the same from the engine's API, read-only (``GET`` only: ``/version``,
``/containers/json``, ``/containers/ID/json``), over its unix socket — Docker's, or Podman's
compatible one — and from the kernel:

- the engine is found the way a host names it: ``DOCKER_HOST`` (unix sockets only),
  ``/etc/docker/daemon.json``'s ``hosts``, the ``-H`` of a ``dockerd`` running in this
  network namespace, then the usual sockets (``/run/docker.sock``, Podman's
  ``/run/podman/podman.sock``). An engine whose daemon runs in another network namespace
  (SO_PEERCRED gives its PID) publishes ports there, not here: it is set aside;
- a container's state, restart count and health come from ``docker inspect``'s fields; who
  listens inside it from ``/proc/PID/net/tcp`` of its main process (its network namespace's
  table, as ``docker exec CONTAINER ss -tlnp`` would show, without entering it);
- with the engine stopped, the containers it keeps in its data root
  (``config.v2.json``, ``hostconfig.json``) still say which one publishes the port;
- its log, as ``docker logs --since`` reads it: the json-file driver's file read directly
  from its end, bounded in bytes and time; the journald driver through ``journalctl
  CONTAINER_ID_FULL=ID``.

Everything is bounded: the answer of the engine (8 MiB), the containers inspected (64), the
log read (16 MiB from the end), each call's time.
"""

from __future__ import annotations

import collections
import errno
import http.client
import ipaddress
import json
import os
import re
import socket
import struct
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping, Optional

DEFAULT_SOCKETS = ("/run/docker.sock", "/var/run/docker.sock", "/run/podman/podman.sock",
                   "/var/run/podman/podman.sock")
DAEMON_JSON = "/etc/docker/daemon.json"
DEFAULT_DATA_ROOT = "/var/lib/docker"
ENGINE_PROGRAMS = ("dockerd", "podman")
MAX_BODY = 8 << 20
MAX_CONTAINERS = 64
MAX_CONFIG_BYTES = 1 << 20
MAX_LOG_BYTES = 16 << 20
MAX_MATCHES = 20
MAX_SHOWN = 400
# A container that has restarted this often and keeps dying within a minute is looping.
LOOP_RESTARTS = 3
LOOP_WINDOW_S = 60.0


class EngineError(Exception):
    """The engine could not be asked (its text says why, for the report)."""


# -- finding the engine ------------------------------------------------------------------------

def _read_small(path: str, limit: int = MAX_CONFIG_BYTES) -> Optional[str]:
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError:
        return None
    if len(data) > limit:
        return None
    return data.decode("utf-8", "replace")


def daemon_config(path: str = DAEMON_JSON) -> dict[str, Any]:
    """``/etc/docker/daemon.json`` (empty when absent, unreadable or not a JSON object)."""
    text = _read_small(path)
    if text is None:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _unix_path(host: Any) -> Optional[str]:
    if isinstance(host, str) and host.startswith("unix://") and len(host) > len("unix://"):
        return host[len("unix://"):]
    return None


def _argv(procfs: str, pid: int) -> list[str]:
    try:
        with open(f"{procfs}/{pid}/cmdline", "rb") as fh:
            raw = fh.read(64 << 10)
    except OSError:
        return []
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]


def _netns(procfs: str, pid: Any) -> Optional[str]:
    try:
        return os.readlink(f"{procfs}/{pid}/ns/net")
    except OSError:
        return None


def host_flags(argv: list[str]) -> list[str]:
    """The ``-H``/``--host`` values of a dockerd command line."""
    found = []
    for i, arg in enumerate(argv):
        if arg in ("-H", "--host") and i + 1 < len(argv):
            found.append(argv[i + 1])
        elif arg.startswith(("--host=", "-H=")):
            found.append(arg.split("=", 1)[1])
        elif arg.startswith("-H") and len(arg) > 2 and not arg.startswith("-H="):
            found.append(arg[2:])
    return found


def engine_processes(procfs: str = "/proc", limit: int = 8) -> list[tuple[int, list[str]]]:
    """(pid, argv) of the container engines running in this network namespace."""
    own = _netns(procfs, "self")
    found: list[tuple[int, list[str]]] = []
    try:
        entries = os.listdir(procfs)
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"{procfs}/{entry}/comm") as fh:
                comm = fh.read().strip()
        except OSError:
            continue
        if comm not in ENGINE_PROGRAMS or _netns(procfs, entry) != own:
            continue
        found.append((int(entry), _argv(procfs, int(entry))))
        if len(found) >= limit:
            break
    return found


def candidate_sockets(procfs: str = "/proc", environ: Optional[Mapping[str, str]] = None,
                      config_path: str = DAEMON_JSON) -> list[tuple[str, str]]:
    """(socket path, how it was found), most specific first, each path once."""
    env = os.environ if environ is None else environ
    found: list[tuple[str, str]] = []

    def add(path: Optional[str], how: str) -> None:
        if path and path not in (p for p, _ in found):
            found.append((path, how))

    add(_unix_path(env.get("DOCKER_HOST")), "DOCKER_HOST")
    hosts = daemon_config(config_path).get("hosts")
    for host in hosts if isinstance(hosts, list) else []:
        add(_unix_path(host), config_path)
    for pid, argv in engine_processes(procfs):
        name = f"{os.path.basename(argv[0]) if argv else 'dockerd'} (pid {pid})"
        for host in host_flags(argv):
            add(_unix_path(host), f"{name} -H")
        for i, arg in enumerate(argv):  # dockerd --config-file FILE: its "hosts"
            path = argv[i + 1] if arg == "--config-file" and i + 1 < len(argv) else (
                arg.split("=", 1)[1] if arg.startswith("--config-file=") else None)
            if path:
                more = daemon_config(path).get("hosts")
                for host in more if isinstance(more, list) else []:
                    add(_unix_path(host), f"{name} --config-file {path}")
    runtime = env.get("XDG_RUNTIME_DIR")
    defaults = list(DEFAULT_SOCKETS)
    if runtime:
        defaults += [f"{runtime}/docker.sock", f"{runtime}/podman/podman.sock"]
    for path in defaults:
        add(path, "the default socket")
    return found


# -- the API -----------------------------------------------------------------------------------

class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path
        self.peer_pid: Optional[int] = None

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.unix_path)
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                    struct.calcsize("3i"))
            self.peer_pid = struct.unpack("3i", creds)[0]
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _why(exc: OSError, path: str) -> str:
    if exc.errno == errno.ECONNREFUSED:
        return f"unix://{path} refuses connections: the engine is not running"
    if exc.errno == errno.ENOENT:
        return f"unix://{path} does not exist"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"unix://{path}: permission denied (root or the docker group can ask it)"
    if isinstance(exc, socket.timeout):
        return f"unix://{path} did not answer in time"
    return f"unix://{path}: {exc.strerror or exc}"


class Api:
    """GET requests to one engine socket; each answer bounded in size and time."""

    def __init__(self, path: str, timeout: float = 2.0) -> None:
        self.path = path
        self.timeout = timeout
        self.peer_pid: Optional[int] = None

    def get(self, url: str) -> Any:
        """The JSON answer of ``GET url``; EngineError when it cannot be had."""
        conn = _UnixConnection(self.path, self.timeout)
        try:
            conn.request("GET", url, headers={"Host": "docker", "Accept": "application/json"})
            self.peer_pid = conn.peer_pid
            resp = conn.getresponse()
            body = resp.read(MAX_BODY + 1)
        except OSError as exc:
            raise EngineError(_why(exc, self.path)) from exc
        except http.client.HTTPException as exc:
            raise EngineError(f"unix://{self.path}: not an engine's answer ({exc})") from exc
        finally:
            conn.close()
        if len(body) > MAX_BODY:
            raise EngineError(f"GET {url}: answer larger than {MAX_BODY >> 20} MiB")
        if resp.status != 200:
            raise EngineError(f"GET {url}: {resp.status} {body[:200].decode(errors='replace')}")
        try:
            return json.loads(body)
        except ValueError as exc:
            raise EngineError(f"GET {url}: not JSON") from exc


# -- containers --------------------------------------------------------------------------------

def parse_time(text: Any) -> Optional[float]:
    """Epoch seconds of an RFC 3339 time with nanoseconds (None for Docker's zero time)."""
    if not isinstance(text, str) or not text or text.startswith("0001-"):
        return None
    m = re.match(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$", text)
    if m is None:
        return None
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    try:
        base = datetime.fromisoformat(m.group(1) + zone)
    except ValueError:
        return None
    frac = float("0" + m.group(2)) if m.group(2) else 0.0
    return base.timestamp() + frac


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{int(seconds)} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} days"


@dataclass
class Binding:
    """One published port: ``host_ip:host_port -> container_port/proto``."""

    container_port: int
    proto: str
    host_port: Optional[int]
    host_ip: str = ""  # "" or 0.0.0.0 / :: : every address

    @property
    def loopback_only(self) -> bool:
        try:
            return ipaddress.ip_address(self.host_ip).is_loopback
        except ValueError:
            return False

    def text(self) -> str:
        host = self.host_ip or "0.0.0.0"
        host = f"[{host}]" if ":" in host else host
        return f"{host}:{self.host_port}->{self.container_port}/{self.proto}"


def _port_key(key: Any) -> Optional[tuple[int, str]]:
    if not isinstance(key, str):
        return None
    port, _, proto = key.partition("/")
    if not port.isdigit():
        return None
    return int(port), (proto or "tcp")


def parse_bindings(port_map: Any) -> list[Binding]:
    """``{"80/tcp": [{"HostIp": "", "HostPort": "8081"}]}`` (HostConfig.PortBindings or
    NetworkSettings.Ports) as bindings; an unpublished exposed port has none."""
    found: list[Binding] = []
    if not isinstance(port_map, dict):
        return found
    for key, hosts in port_map.items():
        parsed = _port_key(key)
        if parsed is None or not isinstance(hosts, list):
            continue
        for h in hosts:
            if not isinstance(h, dict):
                continue
            hp = str(h.get("HostPort") or "")
            found.append(Binding(parsed[0], parsed[1], int(hp) if hp.isdigit() else None,
                                 str(h.get("HostIp") or "")))
    return found


@dataclass
class Container:
    """What ``docker inspect`` says about one container, the fields netcheck judges."""

    id: str
    name: str
    image: str = ""
    status: str = ""  # created | running | paused | restarting | removing | exited | dead
    running: bool = False
    paused: bool = False
    restarting: bool = False
    exit_code: Optional[int] = None
    error: str = ""
    oom_killed: bool = False
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
    restart_count: int = 0
    restart_policy: str = ""
    health: Optional[str] = None  # starting | healthy | unhealthy
    health_log: str = ""
    pid: int = 0
    addresses: list[str] = field(default_factory=list)
    bindings: list[Binding] = field(default_factory=list)  # configured (HostConfig)
    exposed: list[tuple[int, str]] = field(default_factory=list)
    log_path: str = ""
    log_driver: str = ""

    @classmethod
    def from_inspect(cls, data: dict[str, Any]) -> Container:
        """From ``GET /containers/ID/json`` (or a data root's config.v2.json + hostconfig)."""
        state = data.get("State") if isinstance(data.get("State"), dict) else {}
        config = data.get("Config") if isinstance(data.get("Config"), dict) else {}
        host = data.get("HostConfig") if isinstance(data.get("HostConfig"), dict) else {}
        nets = (data.get("NetworkSettings") or {}).get("Networks") or {}
        health = state.get("Health") if isinstance(state.get("Health"), dict) else None
        c = cls(id=str(data.get("Id") or data.get("ID") or ""),
                name=str(data.get("Name") or "").lstrip("/"),
                image=str(config.get("Image") or data.get("Image") or ""))
        c.running = bool(state.get("Running"))
        c.paused = bool(state.get("Paused"))
        c.restarting = bool(state.get("Restarting"))
        c.status = str(state.get("Status") or (
            "restarting" if c.restarting else "paused" if c.paused
            else "running" if c.running else "exited"))
        code = state.get("ExitCode")
        c.exit_code = code if isinstance(code, int) else None
        c.error = str(state.get("Error") or "")
        c.oom_killed = bool(state.get("OOMKilled"))
        c.started_at = parse_time(state.get("StartedAt"))
        c.finished_at = parse_time(state.get("FinishedAt"))
        count = data.get("RestartCount")
        c.restart_count = count if isinstance(count, int) else 0
        c.restart_policy = str((host.get("RestartPolicy") or {}).get("Name") or "")
        if health is not None:
            c.health = str(health.get("Status") or "") or None
            logs = health.get("Log") if isinstance(health.get("Log"), list) else []
            if logs and isinstance(logs[-1], dict):
                c.health_log = str(logs[-1].get("Output") or "").strip()[:MAX_SHOWN]
        pid = state.get("Pid")
        c.pid = pid if isinstance(pid, int) else 0
        if isinstance(nets, dict):
            for net in nets.values():
                if isinstance(net, dict):
                    for key in ("IPAddress", "GlobalIPv6Address"):
                        if net.get(key):
                            c.addresses.append(str(net[key]))
        c.bindings = parse_bindings(host.get("PortBindings"))
        exposed = config.get("ExposedPorts")
        c.exposed = [p for p in (_port_key(k) for k in (exposed or {})) if p is not None] \
            if isinstance(exposed, dict) else []
        c.log_path = str(data.get("LogPath") or "")
        c.log_driver = str((host.get("LogConfig") or {}).get("Type") or "")
        return c

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def label(self) -> str:
        return self.name or self.short_id

    def publishes(self, port: int, proto: str) -> list[Binding]:
        """Its bindings of host port ``port``."""
        return [b for b in self.bindings if b.host_port == port and b.proto == proto]

    def looping(self, now: Optional[float] = None) -> bool:
        """Restarting over and over: restarting now, or restarted often and died lately."""
        if self.restarting:
            return True
        now = time.time() if now is None else now
        recent = self.started_at is not None and now - self.started_at < LOOP_WINDOW_S
        return self.restart_count >= LOOP_RESTARTS and recent

    def down(self, now: Optional[float] = None) -> bool:
        """Not serving: exited, dead, created, paused, restarting (or looping)."""
        return not self.running or self.paused or self.looping(now)

    def state_text(self, now: Optional[float] = None) -> str:
        """As ``docker ps -a`` says it: ``Up 3 min``, ``Exited (1) 5 s ago``..."""
        now = time.time() if now is None else now
        if self.restarting:
            when = f" {_ago(now - self.finished_at)} ago" if self.finished_at else ""
            return f"Restarting ({self.exit_code}){when}"
        if self.paused:
            return "Up (Paused)"
        if self.running:
            up = f"Up {_ago(now - self.started_at)}" if self.started_at else "Up"
            return up + (f" ({self.health})" if self.health else "")
        if self.status == "created":
            return "Created"
        when = f" {_ago(now - self.finished_at)} ago" if self.finished_at else ""
        return f"Exited ({self.exit_code}){when}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.short_id, "name": self.name, "image": self.image, "state": self.status,
            "status": self.state_text(), "restart_count": self.restart_count,
            "restart_policy": self.restart_policy, "addresses": list(self.addresses),
            "ports": [b.text() for b in self.bindings], "log_driver": self.log_driver}
        if self.exit_code is not None and not self.running:
            out["exit_code"] = self.exit_code
        if self.error:
            out["error"] = self.error
        if self.oom_killed:
            out["oom_killed"] = True
        if self.health:
            out["health"] = self.health
            if self.health_log:
                out["health_log"] = self.health_log
        if self.pid:
            out["pid"] = self.pid
        return out


@dataclass
class EngineView:
    """The engine netcheck found (or why none answered), and its containers."""

    socket: Optional[str] = None
    how: str = ""
    reachable: bool = False
    version: str = ""
    product: str = "Docker"
    containers: list[Container] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # sockets tried that did not answer
    elsewhere: list[str] = field(default_factory=list)  # engines of other namespaces
    truncated: bool = False
    data_root: Optional[str] = None  # read directly when the engine does not answer
    stored: bool = False  # containers read from the data root, not from the engine

    stopped: Optional[str] = None  # why the engine is taken for stopped (not just absent)

    @property
    def down_socket(self) -> Optional[str]:
        """Why an engine that exists here does not answer (a stopped engine), or None."""
        return self.stopped

    def publishing(self, port: int, proto: str) -> list[Container]:
        """The containers configured to publish host port ``port``."""
        return [c for c in self.containers if c.publishes(port, proto)]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"socket": self.socket, "found_by": self.how,
                               "reachable": self.reachable}
        if self.version:
            out["version"] = f"{self.product} {self.version}"
        if self.problems:
            out["problems"] = list(self.problems)
        if self.elsewhere:
            out["other_namespaces"] = list(self.elsewhere)
        if self.stored:
            out["read_from"] = self.data_root
        if self.truncated:
            out["truncated"] = f"only the first {MAX_CONTAINERS} containers were read"
        return out


def read_engine(procfs: str = "/proc", timeout: float = 2.0,
                environ: Optional[Mapping[str, str]] = None,
                config_path: str = DAEMON_JSON) -> EngineView:
    """Find this namespace's engine and read its containers (blocking, bounded)."""
    deadline = time.monotonic() + max(timeout, 0.5) * 2
    view = EngineView()
    own = _netns(procfs, "self")
    for path, how in candidate_sockets(procfs, environ, config_path):
        if not os.path.exists(path):
            if how != "the default socket":
                view.problems.append(f"unix://{path} ({how}) does not exist")
            continue
        api = Api(path, timeout)
        try:
            version = api.get("/version")
        except EngineError as exc:
            view.problems.append(f"{exc} ({how})")
            continue
        if api.peer_pid and own and _netns(procfs, api.peer_pid) not in (own, None):
            view.elsewhere.append(f"unix://{path} (pid {api.peer_pid})")
            continue
        view.socket, view.how, view.reachable = path, how, True
        if isinstance(version, dict):
            view.version = str(version.get("Version") or "")
            comps = version.get("Components") or []
            if any(isinstance(c, dict) and "podman" in str(c.get("Name", "")).lower()
                   for c in comps):
                view.product = "Podman"
        try:
            listing = api.get("/containers/json?all=1")
        except EngineError as exc:
            view.problems.append(str(exc))
            return view
        items = [i for i in listing if isinstance(i, dict)] if isinstance(listing, list) else []
        view.truncated = len(items) > MAX_CONTAINERS
        for item in items[:MAX_CONTAINERS]:
            if time.monotonic() > deadline:
                view.truncated = True
                break
            try:
                data = api.get(f"/containers/{item.get('Id')}/json")
            except EngineError as exc:
                view.problems.append(str(exc))
                continue
            if isinstance(data, dict):
                view.containers.append(Container.from_inspect(data))
        return view
    # No engine answers. A socket that refuses connections is a stopped engine's; a stopped
    # dockerd removes its socket, but what it keeps on disk still names its containers.
    refused = next((p for p in view.problems if "refuses connections" in p), None)
    cfg = daemon_config(config_path)
    root = cfg.get("data-root") or cfg.get("graph") or DEFAULT_DATA_ROOT
    if isinstance(root, str):
        view.data_root = root
        view.containers = stored_containers(root)
        view.stored = bool(view.containers)
    if refused:
        view.stopped = refused
    elif view.stored:
        hosts = [p for p, how in candidate_sockets(procfs, environ, config_path)
                 if how != "the default socket"] or [DEFAULT_SOCKETS[0]]
        view.stopped = (f"the engine is not running: nothing answers at unix://{hosts[0]} "
                        f"(its data root {root} keeps {len(view.containers)} container"
                        f"{'s' if len(view.containers) != 1 else ''})")
    return view


def stored_containers(data_root: str, limit: int = MAX_CONTAINERS) -> list[Container]:
    """The containers a (stopped) Docker keeps in ``DATA_ROOT/containers/ID/``."""
    folder = os.path.join(data_root, "containers")
    try:
        ids = sorted(os.listdir(folder))[:limit]
    except OSError:
        return []
    found = []
    for cid in ids:
        text = _read_small(os.path.join(folder, cid, "config.v2.json"))
        if text is None:
            continue
        try:
            data = json.loads(text)
            host = json.loads(_read_small(os.path.join(folder, cid, "hostconfig.json")) or "{}")
        except ValueError:
            continue
        if not isinstance(data, dict):
            continue
        data["HostConfig"] = host if isinstance(host, dict) else {}
        found.append(Container.from_inspect(data))
    return found


def listeners_inside(pid: int, proto: str, procfs: str = "/proc") -> list[tuple[str, int]]:
    """(address, port) of the sockets listening in the network namespace of ``pid``
    (``/proc/PID/net/tcp`` and ``tcp6``: that process's namespace's tables)."""
    from netcheck.server.listeners import parse_proc_net

    found: list[tuple[str, int]] = []
    for suffix, family in (("", 4), ("6", 6)):
        text = _read_small(f"{procfs}/{pid}/net/{proto}{suffix}", 16 << 20)
        if text is None:
            continue
        found += [(s.address, s.port) for s in parse_proc_net(text, proto, family)]
    return found


def is_loopback(address: str) -> bool:
    """127.0.0.0/8, ::1 or ::ffff:127.x."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


# -- the container's log -----------------------------------------------------------------------

@dataclass
class LogScan:
    """``docker logs --since`` of one container, searched for a request id or a client."""

    container: str
    source: str = ""
    lines: int = 0  # in the window
    matched: int = 0
    matches: list[str] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    matched_5xx: int = 0
    last_lines: list[str] = field(default_factory=list)
    stopped: str = ""
    error: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"container": self.container, "source": self.source,
                               "lines": self.lines, "matched": self.matched,
                               "matching_lines": list(self.matches)}
        if self.statuses:
            out["statuses"] = dict(self.statuses)
        if self.stopped:
            out["stopped"] = self.stopped
        if self.error:
            out["error"] = self.error
        return out


def _client_pattern(client: Optional[str]) -> Optional[re.Pattern[str]]:
    if not client:
        return None
    from netcheck.probes.logs import normal_address

    # 198.18.1.2 alone, or as an IPv4-mapped IPv6 address ([::ffff:198.18.1.2]:41234, as
    # busybox httpd writes it), never inside 198.18.1.20 or 10.198.18.1.2.
    return re.compile(rf"(?:(?<![0-9A-Za-z.:])|(?<=::ffff:))"
                      rf"{re.escape(normal_address(client))}(?![0-9A-Za-z]|\.[0-9])")


def _judge_line(scan: LogScan, text: str, request_id: Optional[str],
                client: Optional[re.Pattern[str]], kept: collections.deque[str],
                tail: collections.deque[str]) -> None:
    from netcheck.probes.logs import parse_access
    from netcheck.redact import shown

    scan.lines += 1
    line = shown(text.rstrip("\r\n"), MAX_SHOWN)
    tail.append(line)
    status = parse_access(text.encode("utf-8", "replace")).status
    if status is not None:
        key = f"{status // 100}xx"
        scan.statuses[key] = scan.statuses.get(key, 0) + 1
    if not (request_id or client):
        return
    if request_id and request_id not in text:
        return
    if client is not None and not client.search(text):
        return
    scan.matched += 1
    if status is not None and status >= 500:
        scan.matched_5xx += 1
    kept.append(line)


def scan_json_file(path: str, container: str, since: float, request_id: Optional[str],
                   client: Optional[str], max_bytes: int = MAX_LOG_BYTES,
                   deadline: Optional[float] = None) -> LogScan:
    """The json-file driver's log (one JSON object a line: ``log``, ``stream``, ``time``),
    read from its end: at most ``max_bytes``, lines older than ``since`` left out."""
    scan = LogScan(container, source=path)
    kept: collections.deque[str] = collections.deque(maxlen=MAX_MATCHES)
    tail: collections.deque[str] = collections.deque(maxlen=5)
    pattern = _client_pattern(client)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            start = max(0, size - max_bytes)
            fh.seek(start)
            if start:
                fh.readline()  # a cut line
                scan.stopped = f"read the last {max_bytes >> 20} MiB of {size >> 20} MiB"
            for n, raw in enumerate(fh):
                if deadline is not None and n % 4096 == 0 and time.monotonic() > deadline:
                    scan.stopped = "stopped at its time bound"
                    break
                try:
                    entry = json.loads(raw[:1 << 20])
                except ValueError:
                    continue
                if not isinstance(entry, dict):
                    continue
                when = parse_time(entry.get("time"))
                if when is not None and when < since:
                    continue
                _judge_line(scan, str(entry.get("log") or ""), request_id, pattern, kept, tail)
    except OSError as exc:
        scan.error = f"{path}: {exc.strerror or exc}"
    scan.matches, scan.last_lines = list(kept), list(tail)
    return scan


def scan_journald(container_id: str, container: str, since: float, request_id: Optional[str],
                  client: Optional[str], timeout: float = 2.0,
                  max_lines: int = 20000) -> LogScan:
    """The journald driver: ``journalctl CONTAINER_ID_FULL=ID --since ... -o cat``."""
    from netcheck.probes.logs import journal_since_text

    scan = LogScan(container, source=f"journalctl CONTAINER_ID_FULL={container_id[:12]}...")
    argv = ["journalctl", "--no-pager", "-q", "-o", "cat", "-n", str(max_lines),
            "--since", journal_since_text(since), f"CONTAINER_ID_FULL={container_id}"]
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        scan.error = f"journalctl: {exc}"
        return scan
    if proc.returncode != 0:
        scan.error = f"journalctl: {proc.stderr.decode(errors='replace').strip()[:200]}"
        return scan
    kept: collections.deque[str] = collections.deque(maxlen=MAX_MATCHES)
    tail: collections.deque[str] = collections.deque(maxlen=5)
    pattern = _client_pattern(client)
    for raw in proc.stdout[:MAX_LOG_BYTES].splitlines():
        _judge_line(scan, raw.decode("utf-8", "replace"), request_id, pattern, kept, tail)
    scan.matches, scan.last_lines = list(kept), list(tail)
    return scan


def scan_log(c: Container, since: float, request_id: Optional[str], client: Optional[str],
             deadline: float) -> LogScan:
    """The container's log as ``docker logs --since`` reads it, by its log driver."""
    if c.log_driver in ("json-file", "") and c.log_path:
        return scan_json_file(c.log_path, c.label, since, request_id, client,
                              deadline=deadline)
    if c.log_driver == "journald":
        return scan_journald(c.id, c.label, since, request_id, client,
                             timeout=max(0.5, deadline - time.monotonic()))
    scan = LogScan(c.label, source=c.log_driver)
    scan.error = (f"the {c.log_driver or 'unknown'} log driver is not read directly "
                  "(json-file and journald are)")
    return scan


def since_flag(seconds: float) -> str:
    """``--since`` as docker logs takes it (``10m``, ``2h``)."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    return f"{max(1, int(round(seconds / 60)))}m"


def names(containers: Iterable[Container]) -> str:
    """``web (Exited (1) 5 s ago), db (Up 3 min)``."""
    return ", ".join(f"{c.label} ({c.state_text()})" for c in containers)

