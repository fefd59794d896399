"""Remedies in the words of the network manager that is in charge of this host.

The slides fix things with ``ip`` and ``ifup``; a laptop under NetworkManager wants
``nmcli``, a server under systemd-networkd wants ``networkctl``. Checks ask here for the
commands so that every hint names the real interface and the manager actually in use.
"""

from __future__ import annotations

import functools
import os
import shutil
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
    """Commands that bring an interface up — through its manager when there is one, which
    then configures it again (addresses, routes) as a plain ``ip link set up`` does not."""
    if mgr.name == NETWORKMANAGER:
        return [f"nmcli device connect {ifname}"]
    if mgr.name == NETWORKD:
        return [f"networkctl up {ifname}"]
    if mgr.name == IFUPDOWN:
        # ifupdown still counts the interface as configured: down first, then the stanza again
        return [f"ifdown --force {ifname}", f"ifup {ifname}"]
    return [f"ip link set dev {ifname} up"]


def get_address(ifname: str, mgr: Manager) -> list[str]:
    """Commands that (re)acquire an address by DHCP/SLAAC."""
    if mgr.name == NETWORKMANAGER:
        return [f"nmcli device reapply {ifname}", f"nmcli device show {ifname}"]
    if mgr.name == NETWORKD:
        return [f"networkctl renew {ifname}", f"networkctl status {ifname}"]
    if mgr.name == IFUPDOWN:
        return [f"ifdown {ifname} && ifup {ifname}", "cat /etc/network/interfaces"]
    return [usable(f"dhclient -v {ifname}", f"dhcpcd {ifname}", f"udhcpc -i {ifname}"),
            f"ip -br addr show dev {ifname}"]


def default_route(gateway: str, ifname: str, mgr: Manager, add: bool = False) -> list[str]:
    """Commands that set a default route through ``gateway`` (``add``: there is none yet,
    so ``ip route add``, which fails rather than replace one that appeared meanwhile)."""
    v6 = ":" in gateway
    ip = "ip -6" if v6 else "ip"
    cmds = [f"{ip} route {'add' if add else 'replace'} default via {gateway} dev {ifname}"]
    if mgr.name == NETWORKMANAGER:
        key = "ipv6.gateway" if v6 else "ipv4.gateway"
        # the device's connection profile, named by nmcli itself: nothing to fill in
        cmds.append(f'nmcli connection modify "$(nmcli -g GENERAL.CONNECTION device show '
                    f'{ifname})" {key} {gateway}')
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


# -- tools that exist on this host -------------------------------------------------------------

# The Debian package of each tool a hint may name (apt install PACKAGE), for a tool that is
# not installed here. A tool not listed is its own package.
PACKAGES = {
    "arping": "iputils-arping", "dhclient": "isc-dhcp-client", "dig": "bind9-dnsutils",
    "host": "bind9-host", "nslookup": "bind9-dnsutils", "mtr": "mtr-tiny",
    "tracepath": "iputils-tracepath", "ping": "iputils-ping", "nping": "nmap",
    "nstat": "iproute2", "ss": "iproute2", "ip": "iproute2", "bridge": "iproute2",
    "nc": "netcat-openbsd", "iw": "iw", "swanctl": "strongswan-swanctl",
    "ipsec": "strongswan-starter", "resolvectl": "systemd-resolved", "udhcpc": "udhcpc",
    "nmcli": "network-manager", "iptables": "iptables", "ip6tables": "iptables",
}
# Where root finds programs even when the caller's PATH lacks the sbin directories.
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


@functools.cache
def have(tool: str) -> bool:
    """Whether the program ``tool`` is installed on this host (``shutil.which``, plus the
    sbin directories root has on its PATH). ``netcheck`` itself always is."""
    if tool == "netcheck":
        return True
    path = os.pathsep.join([os.environ.get("PATH", os.defpath), *_SBIN])
    return shutil.which(tool, path=path) is not None


def _program(command: str) -> str:
    """The program a command line runs (its first word after variable assignments)."""
    for word in command.split():
        if "=" not in word.split("/")[0]:
            return word.rsplit("/", 1)[-1]
    return ""


def install_note(tool: str) -> str:
    """``not installed here: apt install PACKAGE`` (the words of a comment)."""
    return _("not installed here: {install}").format(
        install=f"apt install {PACKAGES.get(tool, tool)}")


def with_note(command: str, note: str) -> str:
    """A command with its comment, as hints write them (the text view puts the comment on
    a line of its own above the command)."""
    return f"{command}   # {note}" if note else command


def usable(*commands: str) -> str:
    """The first of ``commands`` (alternatives, best first) whose program is installed here;
    when none is, the first, with a comment naming the package to install."""
    for command in commands:
        if have(_program(command)):
            return command
    return with_note(commands[0], install_note(_program(commands[0])))


def _path_command() -> bool:
    """Whether this netcheck has ``netcheck path`` (hop by hop, as mtr)."""
    import importlib.util

    try:
        return importlib.util.find_spec("netcheck.path_command") is not None
    except (ImportError, ValueError):
        return False


def trace(address: str, port: Optional[int] = None) -> str:
    """Hop by hop towards ``address`` with a tool this host has: traceroute (a TCP SYN to
    ``port`` with ``-T``), tracepath, mtr, or ``netcheck path``."""
    if port is not None:
        options = [f"traceroute -n -T -p {port} {address}"]
        if _path_command():
            options.append(f"netcheck path --port {port} {address}")
        options.append(f"mtr -n -r -c 5 -T -P {port} {address}")
    else:
        options = [f"traceroute -n {address}", f"tracepath -n {address}",
                   f"mtr -n -r -c 5 {address}"]
        if _path_command():
            options.append(f"netcheck path --proto icmp {address}")
    return usable(*options)


def count_loss(address: str, count: int = 50) -> str:
    """Loss and round trips per hop towards ``address`` (mtr; without it, ping's count)."""
    options = [f"mtr -n -r -c {count} {address}"]
    if _path_command():
        options.append(f"netcheck path --proto icmp --count {min(count, 20)} {address}")
    options.append(f"ping -c {count} -i 0.2 {address}")
    return usable(*options)



def talk(host: str, port: int, crlf: bool = False) -> str:
    """Open the port and show what the service says, with a tool this host has (nc, ncat,
    telnet, or curl's telnet://); ``crlf``: lines end in CRLF, as mail protocols want."""
    flag = "-C" if crlf else "-v"
    return usable(f"nc {flag} {host} {port}", f"ncat {flag} {host} {port}",
                  f"telnet {host} {port}", f"curl -v telnet://{host}:{port}")


def mtu_probe(address: str, size: int) -> str:
    """Find the path MTU towards ``address``: tracepath, or the slide's ``ping -M do`` with
    packets of ``size`` bytes (headers included) that must not be fragmented."""
    header = 48 if ":" in address else 28
    return usable(f"tracepath -n {address}",
                  f"ping -c 3 -M do -s {max(0, size - header)} {address}")


def dig(name: str, server: Optional[str] = None, rdtype: str = "", *flags: str) -> str:
    """The slides' ``dig`` question (``@server``, a type, ``+flags``); where dig is not
    installed, the same question with ``host -v`` or ``nslookup`` (the flags are dig's)."""
    at = [f"@{server}"] if server else []
    by = [server] if server else []
    typed = [rdtype] if rdtype else []
    return usable(" ".join(["dig", *at, name, *typed, *flags]),
                  " ".join(["host", "-v", *(["-t", rdtype] if rdtype else []), name, *by]),
                  " ".join(["nslookup", *([f"-type={rdtype}"] if rdtype else []), name, *by]))
