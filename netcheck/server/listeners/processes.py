"""The processes behind a port: ``ps aux`` for one of them (:class:`ProcessInfo`), the ones
called by a name, and the programs that hold a port on behalf of a container.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Optional

# A program that holds a port on behalf of a container: named, with where it forwards to.
CONTAINER_PROXIES = {
    "docker-proxy": "Docker's userland proxy (a container's published port)",
    "rootlessport": "Podman's rootless port forwarder (a container's published port)",
    "rootlesskit": "RootlessKit (rootless Docker) port forwarder",
    "slirp4netns": "slirp4netns (a rootless container's network)",
    "conmon": "Podman's container monitor (a container's published port)",
    "kube-proxy": "Kubernetes kube-proxy (a NodePort service)",
}


# -- the processes -----------------------------------------------------------------------------

@dataclass
class ProcessInfo:
    """``ps aux`` for one process: who runs it, since when, with which command line."""

    pid: int
    name: str
    user: Optional[str] = None
    uptime_s: Optional[float] = None
    cmdline: str = ""  # for people: shortened
    argv: list[str] = field(default_factory=list)  # for parsing: whole (bounded) arguments
    ppid: Optional[int] = None
    status: Optional[str] = None
    error: Optional[str] = None

    def uptime_text(self) -> str:
        """How long it has run, in words (``3 days 2 h``)."""
        if self.uptime_s is None:
            return "?"
        return human_duration(self.uptime_s)

    def uptime_words(self) -> str:
        """:meth:`uptime_text` in the reader's language, for a summary."""
        if self.uptime_s is None:
            return "?"
        return human_duration(self.uptime_s, translated=True)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"pid": self.pid, "name": self.name, "user": self.user,
                               "uptime": self.uptime_text(), "cmdline": self.cmdline}
        if self.uptime_s is not None:
            out["uptime_s"] = round(self.uptime_s, 1)
        if self.ppid is not None:
            out["ppid"] = self.ppid
        if self.status:
            out["status"] = self.status
        if self.error:
            out["error"] = self.error
        return out


def human_duration(seconds: float, translated: bool = False) -> str:
    """``3 days 2 h``, ``4 min 10 s``: the way ``systemctl status`` says how long ago
    (``translated``: the days in the reader's language; h, min and s are units)."""
    s = int(max(0, seconds))
    for unit, size, sub, subsize in (("day", 86400, "h", 3600), ("h", 3600, "min", 60),
                                     ("min", 60, "s", 1)):
        if s >= size:
            main, rest = divmod(s, size)
            label = f"{main} {unit}{'s' if unit == 'day' and main != 1 else ''}"
            if translated and unit == "day":
                from netcheck.i18n import ngettext

                label = ngettext("{n} day", "{n} days", main).format(n=main)
            return f"{label} {rest // subsize} {sub}" if rest // subsize else label
    return f"{s} s"


def process_info(pid: int) -> ProcessInfo:
    """User, start time and command line of one process (psutil; never raises)."""
    import psutil

    info = ProcessInfo(pid, "?")
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            info.name = proc.name()
            info.ppid = proc.ppid()
            info.status = proc.status()
            info.uptime_s = max(0.0, time.time() - proc.create_time())
            try:
                info.user = proc.username()
            except (KeyError, psutil.Error):  # a uid with no passwd entry
                info.user = str(proc.uids().real)
            try:
                info.argv = [a[:1024] for a in proc.cmdline()[:256]]
                info.cmdline = " ".join(info.argv)[:300]
            except psutil.AccessDenied:
                info.cmdline = ""
    except psutil.NoSuchProcess:
        info.error = "the process has ended"
    except psutil.AccessDenied:
        info.error = "access denied (run as root to see other users' processes)"
    except psutil.Error as exc:
        info.error = str(exc)
    return info


def matching_processes(name: str, limit: int = 50) -> list[ProcessInfo]:
    """Running processes called ``name`` (as ``ps`` or ``pgrep`` would find them).

    A match on the process name (``comm``), on the program's file name, or, for a name
    with a ``/``, on the program's path.
    """
    import psutil

    found: list[ProcessInfo] = []
    base = os.path.basename(name)
    for proc in psutil.process_iter(["pid", "name", "exe", "cmdline"]):
        try:
            pname = proc.info.get("name") or ""
            exe = proc.info.get("exe") or ""
            argv0 = (proc.info.get("cmdline") or [""])[0] if proc.info.get("cmdline") else ""
        except psutil.Error:
            continue
        if "/" in name:
            hit = name in (exe, argv0)
        else:
            hit = base in (pname, pname[:15], os.path.basename(exe), os.path.basename(argv0)) \
                or (len(base) > 15 and pname == base[:15])
        if hit and proc.pid != os.getpid():
            found.append(process_info(proc.pid))
            if len(found) >= limit:
                break
    return found


def container_proxy(name: str, argv: list[str]) -> Optional[dict[str, Any]]:
    """When the owner forwards the port to a container: what it is and where it forwards.

    docker-proxy's own arguments name the container's side: ``-container-ip 172.18.0.3
    -container-port 443``.
    """
    what = CONTAINER_PROXIES.get(name)
    if what is None:
        return None
    out: dict[str, Any] = {"program": name, "what": what}
    args = list(argv)
    for flag, key in (("-container-ip", "container_ip"), ("-container-port", "container_port"),
                      ("-host-ip", "host_ip"), ("-host-port", "host_port"),
                      ("-proto", "proto")):
        if flag in args:
            i = args.index(flag)
            if i + 1 < len(args):
                value = args[i + 1]
                out[key] = int(value) if key.endswith("port") and value.isdigit() else value
    return out
