"""A container as ``docker inspect`` shows it (:class:`Container`): its state, restarts and
health, its published ports (:class:`Binding`), and the text ``docker ps`` would print.
"""

from __future__ import annotations

import ipaddress
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Optional

MAX_SHOWN = 400
# A container that has restarted this often and keeps dying within a minute is looping.
LOOP_RESTARTS = 3
LOOP_WINDOW_S = 60.0


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


def names(containers: Iterable[Container]) -> str:
    """``web (Exited (1) 5 s ago), db (Up 3 min)``."""
    return ", ".join(f"{c.label} ({c.state_text()})" for c in containers)
