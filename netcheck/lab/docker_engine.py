"""What a lab Docker engine is (:mod:`netcheck.lab.docker`): whether this host can run one
(dockerd, nsenter, the CLI, a static busybox, overlayfs, cgroups), where its folders, socket
and ``daemon.json`` are under ``<lab.state_dir>/docker``, and its state file.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from netcheck.lab.topology import _pid_alive
from netcheck.safefile import open_for_write

BRIDGE_IP = "198.19.0.1/24"  # docker0's address: containers get 198.19.0.2, .3 ...
ADDRESS_POOL = "198.19.0.0/16"  # user-defined networks (none by default) come from here
DOCKER_CLI = ("/usr/bin/docker", "/usr/sbin/docker")  # Debian's docker.io, never another one


def _which(name: str, candidates: Sequence[str] = ()) -> Optional[str]:
    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")


def docker_cli() -> Optional[str]:
    """Debian's docker CLI (the one that comes with dockerd), else any on PATH."""
    return _which("docker", DOCKER_CLI)


def _is_static(path: str) -> bool:
    """An ELF file without a program interpreter (PT_INTERP): it runs in an empty root."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit ELF only
                return False
            phoff = int.from_bytes(head[32:40], "little")
            phentsize = int.from_bytes(head[54:56], "little")
            phnum = int.from_bytes(head[56:58], "little")
            fh.seek(phoff)
            table = fh.read(phentsize * phnum)
    except OSError:
        return False
    return not any(int.from_bytes(table[i:i + 4], "little") == 3  # PT_INTERP
                   for i in range(0, len(table), phentsize))


def docker_problem() -> Optional[str]:
    """Why a Docker engine cannot run in a lab here, or None."""
    if os.geteuid() != 0:
        return "a lab Docker engine needs root"
    for name in ("dockerd", "nsenter"):
        if _which(name) is None:
            return f"{name} not found (Debian: apt-get install docker.io util-linux)"
    if docker_cli() is None:
        return "the docker CLI is not found (Debian: apt-get install docker.io)"
    busybox = _which("busybox")
    if busybox is None:
        return "busybox not found (Debian: apt-get install busybox-static)"
    if not _is_static(os.path.realpath(busybox)):
        return f"{busybox} is not statically linked (Debian: apt-get install busybox-static)"
    try:
        with open("/proc/filesystems") as fh:
            if "overlay" not in fh.read().split():
                return "this kernel has no overlay filesystem (dockerd's overlay2 needs it)"
    except OSError as exc:
        return f"cannot read /proc/filesystems: {exc}"
    if not os.path.isdir("/sys/fs/cgroup"):
        return "no cgroup file system at /sys/fs/cgroup"
    return None


# -- the engine ----------------------------------------------------------------------------------

@dataclass
class Engine:
    """The paths of one lab's engine (all under ``<state_dir>/docker``)."""

    root: Path

    @classmethod
    def of(cls, lab_or_dir: Any) -> Engine:
        state_dir = Path(getattr(lab_or_dir, "state_dir", lab_or_dir))
        return cls(state_dir / "docker")

    @property
    def data_root(self) -> Path:
        return self.root / "data"

    @property
    def exec_root(self) -> Path:
        return self.root / "exec"

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def pidfile(self) -> Path:
        return self.root / "dockerd.pid"

    @property
    def config(self) -> Path:
        return self.root / "daemon.json"

    @property
    def state_file(self) -> Path:
        return self.root / "engine.json"

    @property
    def log_file(self) -> Path:
        return self.root / "dockerd.log"

    @property
    def host(self) -> str:
        """``DOCKER_HOST`` for this engine."""
        return f"unix://{self.socket}"

    def cgroup_parent(self) -> str:
        return f"/{self.root.parent.name}-docker"

    def daemon_json(self) -> dict[str, Any]:
        """What dockerd is told (and what ``netcheck server`` finds in /etc/docker/daemon.json)."""
        return {
            "hosts": [self.host],
            "data-root": str(self.data_root),
            "exec-root": str(self.exec_root),
            "pidfile": str(self.pidfile),
            "bip": BRIDGE_IP,
            "default-address-pools": [{"base": ADDRESS_POOL, "size": 24}],
            "storage-driver": "overlay2",
            "log-driver": "json-file",
            "cgroup-parent": self.cgroup_parent(),
            "iptables": True,
            "ip-forward": True,
            "userland-proxy": True,
            "live-restore": False,
            "features": {"buildkit": False},
            "group": "root",
        }

    def env(self) -> dict[str, str]:
        """The environment of a docker CLI call: this engine's socket, nothing of the host's."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("DOCKER_") and not k.lower().endswith("_proxy")}
        env["DOCKER_HOST"] = self.host
        env["DOCKER_CONFIG"] = str(self.root / "cli")  # no ~/.docker of the host's user
        return env

    def running_pid(self) -> Optional[int]:
        """dockerd's PID while it runs (from the state file, checked against its start time)."""
        state = _read_json(self.state_file)
        pid, start = state.get("dockerd_pid"), state.get("dockerd_start")
        if isinstance(pid, int) and _pid_alive(pid, start):
            return pid
        return None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with open_for_write(path, 0o644) as fh:
        fh.write(json.dumps(data, indent=1).encode())
