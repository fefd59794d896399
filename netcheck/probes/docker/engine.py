"""Finding the engine the way a host names it: ``DOCKER_HOST``, ``/etc/docker/daemon.json``'s
``hosts``, the ``-H`` (or ``--config-file``) of a container engine running in this network
namespace, then the usual sockets. Only files under /proc and /etc are read here.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Optional

DEFAULT_SOCKETS = ("/run/docker.sock", "/var/run/docker.sock", "/run/podman/podman.sock",
                   "/var/run/podman/podman.sock")
DAEMON_JSON = "/etc/docker/daemon.json"
ENGINE_PROGRAMS = ("dockerd", "podman")
MAX_CONFIG_BYTES = 1 << 20


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
