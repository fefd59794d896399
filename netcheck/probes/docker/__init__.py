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

The package, by concern: ``engine`` (finding the engine's socket), ``api`` (asking it),
``containers`` (Container, Binding, what ``docker ps`` shows), ``log`` (the container's log).
Here: the engine's view of this namespace (:func:`read_engine`, or the containers a stopped
engine keeps on disk), who listens inside a container, and every name importable from
``netcheck.probes.docker`` as before the split.
"""

from __future__ import annotations

import ipaddress
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from netcheck.probes.docker.api import MAX_BODY, Api, EngineError
from netcheck.probes.docker.containers import (
    LOOP_RESTARTS,
    LOOP_WINDOW_S,
    MAX_SHOWN,
    Binding,
    Container,
    names,
    parse_bindings,
    parse_time,
)
from netcheck.probes.docker.engine import (
    DAEMON_JSON,
    DEFAULT_SOCKETS,
    ENGINE_PROGRAMS,
    MAX_CONFIG_BYTES,
    _netns,
    _read_small,
    candidate_sockets,
    daemon_config,
    engine_processes,
    host_flags,
)
from netcheck.probes.docker.log import (
    MAX_LOG_BYTES,
    MAX_MATCHES,
    LogScan,
    scan_journald,
    scan_json_file,
    scan_log,
    since_flag,
)

# Every public name the module had before it became a package.
__all__ = [
    "Api", "Binding", "Container", "DAEMON_JSON", "DEFAULT_DATA_ROOT", "DEFAULT_SOCKETS",
    "ENGINE_PROGRAMS", "EngineError", "EngineView", "LOOP_RESTARTS", "LOOP_WINDOW_S", "LogScan",
    "MAX_BODY", "MAX_CONFIG_BYTES", "MAX_CONTAINERS", "MAX_LOG_BYTES", "MAX_MATCHES",
    "MAX_SHOWN", "candidate_sockets", "daemon_config", "engine_processes", "host_flags",
    "is_loopback", "listeners_inside", "names", "parse_bindings", "parse_time", "read_engine",
    "scan_journald", "scan_json_file", "scan_log", "since_flag", "stored_containers",
]


DEFAULT_DATA_ROOT = "/var/lib/docker"
MAX_CONTAINERS = 64


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
        _note_version(view, version)
        _read_containers(view, api, deadline)
        return view
    _read_stopped_engine(view, procfs, environ, config_path)
    return view


def _note_version(view: EngineView, version: Any) -> None:
    """The engine's version, and whether it is Podman (its ``/version`` names a component)."""
    if isinstance(version, dict):
        view.version = str(version.get("Version") or "")
        comps = version.get("Components") or []
        if any(isinstance(c, dict) and "podman" in str(c.get("Name", "")).lower()
               for c in comps):
            view.product = "Podman"


def _read_containers(view: EngineView, api: Api, deadline: float) -> None:
    """``docker ps -a`` then ``docker inspect`` of each, within MAX_CONTAINERS and the time."""
    try:
        listing = api.get("/containers/json?all=1")
    except EngineError as exc:
        view.problems.append(str(exc))
        return
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


def _read_stopped_engine(view: EngineView, procfs: str, environ: Optional[Mapping[str, str]],
                         config_path: str) -> None:
    """No engine answers. A socket that refuses connections is a stopped engine's; a stopped
    dockerd removes its socket, but what it keeps on disk still names its containers."""
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
