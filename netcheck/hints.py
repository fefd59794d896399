"""Remedies in the words of the network manager that is in charge of this host.

The slides fix things with ``ip`` and ``ifup``; a laptop under NetworkManager wants
``nmcli``, a server under systemd-networkd wants ``networkctl``. Checks ask here for the
commands so that every hint names the real interface and the manager actually in use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from netcheck.i18n import _

if TYPE_CHECKING:
    from netcheck.facts import Facts

NETWORKMANAGER = "NetworkManager"
NETWORKD = "systemd-networkd"
IFUPDOWN = "ifupdown"
NO_MANAGER = "none"

_UNIT_WANTS = "etc/systemd/system/multi-user.target.wants"


@dataclass(frozen=True)
class Manager:
    """The network manager configured on this host, and whether it runs."""

    name: str
    unit: Optional[str] = None
    enabled: bool = False
    running: bool = False
    systemd: bool = False  # systemd is PID 1

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "unit": self.unit, "enabled": self.enabled,
                "running": self.running, "systemd_pid1": self.systemd}


def _running_commands(facts: Facts) -> set[str]:
    names: set[str] = set()
    proc = facts.sys("proc")
    try:
        entries = os.listdir(proc)
    except OSError:
        return names
    for pid in entries:
        if pid.isdigit():
            comm = facts.read_sys("proc", pid, "comm")
            if comm:
                names.add(comm)
    return names


def detect_manager(facts: Facts) -> Manager:
    """Which manager is in use: the one enabled (or running), in the usual order of precedence."""
    pid1 = facts.read_sys("proc", "1", "comm") or ""
    systemd = pid1 == "systemd"
    running = _running_commands(facts)
    nm_enabled = facts.sys(_UNIT_WANTS, "NetworkManager.service").exists()
    nd_enabled = facts.sys(_UNIT_WANTS, "systemd-networkd.service").exists()
    if nm_enabled or "NetworkManager" in running:
        return Manager(NETWORKMANAGER, "NetworkManager.service", nm_enabled,
                       "NetworkManager" in running, systemd)
    if nd_enabled or "systemd-network" in running:  # comm is cut at 15 characters
        return Manager(NETWORKD, "systemd-networkd.service", nd_enabled,
                       "systemd-network" in running, systemd)
    interfaces = facts.read_sys("etc/network/interfaces") or ""
    if any(line.split()[:1] == ["iface"] for line in interfaces.splitlines()):
        return Manager(IFUPDOWN, "networking.service",
                       facts.sys(_UNIT_WANTS, "networking.service").exists(), True, systemd)
    return Manager(NO_MANAGER, systemd=systemd)


def link_up(ifname: str, mgr: Manager) -> list[str]:
    """Commands that bring an interface up."""
    if mgr.name == NETWORKMANAGER:
        return [f"nmcli device connect {ifname}", f"ip link set dev {ifname} up"]
    if mgr.name == NETWORKD:
        return [f"networkctl up {ifname}", f"ip link set dev {ifname} up"]
    if mgr.name == IFUPDOWN:
        return [f"ifup {ifname}", f"ip link set dev {ifname} up"]
    return [f"ip link set dev {ifname} up"]


def get_address(ifname: str, mgr: Manager) -> list[str]:
    """Commands that (re)acquire an address by DHCP/SLAAC."""
    if mgr.name == NETWORKMANAGER:
        return [f"nmcli device reapply {ifname}", f"nmcli device show {ifname}"]
    if mgr.name == NETWORKD:
        return [f"networkctl renew {ifname}", f"networkctl status {ifname}"]
    if mgr.name == IFUPDOWN:
        return [f"ifdown {ifname} && ifup {ifname}", "cat /etc/network/interfaces"]
    return [f"dhclient -v {ifname}", f"ip -br addr show dev {ifname}"]


def default_route(gateway: str, ifname: str, mgr: Manager) -> list[str]:
    """Commands that set a default route through ``gateway``."""
    v6 = ":" in gateway
    ip = "ip -6" if v6 else "ip"
    cmds = [f"{ip} route replace default via {gateway} dev {ifname}"]
    if mgr.name == NETWORKMANAGER:
        key = "ipv6.gateway" if v6 else "ipv4.gateway"
        cmds.append(f"nmcli -g GENERAL.CONNECTION device show {ifname}")
        cmds.append(f"nmcli connection modify <connection> {key} {gateway}")
    elif mgr.name == NETWORKD:
        cmds.append("# " + _("make it permanent: Gateway={gateway} in "
                             "/etc/systemd/network/*.network").format(gateway=gateway))
    elif mgr.name == IFUPDOWN:
        cmds.append("# " + _("make it permanent: 'gateway {gateway}' under 'iface {ifname}' "
                             "in /etc/network/interfaces").format(gateway=gateway, ifname=ifname))
    return cmds


def restart_manager(mgr: Manager) -> list[str]:
    """Commands that start the network manager again."""
    if mgr.unit:
        return [f"systemctl restart {mgr.unit}", f"systemctl status {mgr.unit}"]
    return []


def server_side_command(port: int, request_id: Optional[str] = None) -> str:
    """``netcheck server --port N`` to run on the server, with its comment: it follows a
    published port into a container too (Docker, Podman), where a refused or reset
    connection often comes from."""
    rid = f" --request-id {request_id}" if request_id else ""
    return (f"netcheck server --port {port}{rid}   # "
            + _("on the server: it follows the port into a container too (docker ps, docker "
                "logs)"))
