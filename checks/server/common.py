"""What the server rungs share: the port they are about, and the commands and owners their
hints name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from netcheck.i18n import _
from netcheck.server.measure import UnitInfo, server_options

if TYPE_CHECKING:
    from netcheck.probes.docker import Container, EngineView
    from netcheck.probes.systemd import Unavailable
    from netcheck.runner import Context
    from netcheck.server.listeners import Listener


SERVER = ("server",)


def _proto_port(ctx: Context) -> str:
    opts = server_options(ctx)
    return _("{proto} port {port}").format(proto=opts.proto, port=opts.port)


def _ss(ctx: Context) -> str:
    opts = server_options(ctx)
    flag = "-tlnp" if opts.proto == "tcp" else "-ulnp"
    return f"ss {flag} 'sport = :{opts.port}'"


# -- shared measurements -----------------------------------------------------------------------


def _cli(view: EngineView) -> str:
    return "podman" if view.product == "Podman" else "docker"


def _container_commands(ctx: Context, view: EngineView, c: Container) -> list[str]:
    """The slides' tools for one container: its state, its log, its configuration."""
    from netcheck.probes.docker import since_flag

    cli, opts = _cli(view), server_options(ctx)
    logs = f"{cli} logs --since {since_flag(min(opts.since_s, 600.0))} {c.label}"
    return [f"{cli} ps -a --filter name={c.label}", logs, f"{cli} inspect {c.label}"]


def _owners_text(s: Listener, containers: dict[int, dict[str, Any]]) -> str:
    if not s.owners:
        return ""
    names: dict[str, list[int]] = {}
    for o in s.owners:
        names.setdefault(o.name, []).append(o.pid)
    parts = []
    for name, pids in names.items():
        shown = ", ".join(map(str, pids[:4])) + (" ..." if len(pids) > 4 else "")
        text = f"{name} (pid {shown})"
        proxy = next((containers[p] for p in pids if p in containers), None)
        if proxy and proxy.get("container_ip"):
            text += " -> " + _("container {address}").format(
                address=f"{proxy['container_ip']}:{proxy.get('container_port', '?')}")
        parts.append(text)
    return ", ".join(parts)


def _all_owners(socks: list[Listener]) -> str:
    """Every process holding one of the sockets: ``python (pid 7), nginx (pid 8, 9)``."""
    names: dict[str, list[int]] = {}
    for s in socks:
        for o in s.owners:
            pids = names.setdefault(o.name, [])
            if o.pid not in pids:
                pids.append(o.pid)
    return ", ".join(f"{name} (pid {', '.join(map(str, pids[:4]))}"
                     f"{' ...' if len(pids) > 4 else ''})" for name, pids in names.items())


def systemd_unavailable(reason: Unavailable, journal: bool = False) -> str:
    """Why there is no systemd to ask (:class:`netcheck.probes.systemd.Unavailable`), in words;
    ``journal``: what was wanted was the unit's journal, not the unit."""
    from netcheck.probes import systemd

    if reason.code == systemd.NOT_INIT:
        return _("systemd is not the init system here (PID 1 is {pid1}: a container, a chroot "
                 "or another init)").format(pid1=reason.pid1 or "unknown") + ": " + (
                     _("there is no journal to read") if journal else
                     _("there is no unit to ask"))
    if reason.code == systemd.NO_SYSTEMCTL:
        return _("systemctl is not installed")
    if reason.code == systemd.NO_JOURNALCTL:
        return _("journalctl is not installed")
    return reason.code


def _unit_commands(info: UnitInfo, start: bool = True) -> list[str]:
    if info.name is None or info.reason:
        return []
    st = info.state
    # The unit's own Id: systemctl resolves an alias (httpd -> apache2.service).
    name = st.unit if st is not None and st.unit else info.name
    cmds = []
    if st is not None and st.masked:
        cmds.append(f"systemctl unmask {name}")
    if start:
        cmds.append(f"systemctl start {name}")
    if st is not None and st.starts_at_boot is False and not st.masked:
        cmds.append(f"systemctl enable {name}")
    cmds += [f"systemctl status {name}", f"journalctl -u {name} -n 50 --no-pager"]
    return cmds
