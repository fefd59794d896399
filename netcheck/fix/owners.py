"""Who owns an interface's configuration and the host's resolver, and how each wants a change.

A change made with ``ip`` under NetworkManager's feet is undone by NetworkManager at the next
DHCP renewal; an edit of a resolv.conf that systemd-resolved writes is lost at its next
restart. So a repair goes through the owner:

==================  ================================================================
NetworkManager      ``nmcli connection modify PROFILE key value`` then ``nmcli device
                    reapply IF`` (kept in the profile: persistent); ``nmcli device
                    connect IF`` to bring it up
systemd-networkd    a drop-in ``/etc/systemd/network/FILE.network.d/netcheck-fix.conf``
                    (what adds: DNS=, MTUBytes=, a [Route] Gateway= where none is set),
                    then ``networkctl reload`` and ``networkctl reconfigure IF``;
                    ``networkctl up IF``
ifupdown / nobody   ``ip`` (runtime only; the plan says how to make it persistent)
systemd-resolved    ``resolvectl dns IF SERVER`` (runtime)
resolvconf          ``resolvconf -a IF.netcheck`` with the servers on stdin
a plain resolv.conf the file itself, edited (its old text journaled and kept)
==================  ================================================================

Reading the owner's state is done once, before the plan (:func:`detect`); building argv is
pure (unit-tested in tests/unit/test_fix_plan.py).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Optional

from netcheck.fix import actions

NM = "NetworkManager"
NETWORKD = "systemd-networkd"
IFUPDOWN = "ifupdown"
NOBODY = "none"
DROPIN_NAME = "netcheck-fix.conf"
NM_KEYS = ("ipv4.method", "ipv4.gateway", "ipv4.dns", "ipv6.method", "ipv6.gateway",
           "ipv6.dns", "802-3-ethernet.mtu")


@dataclass
class Owner:
    """The manager in charge of one interface, and what it holds for it."""

    name: str = NOBODY
    running: bool = False
    connection: Optional[str] = None  # NetworkManager's profile on the device
    network_file: Optional[str] = None  # systemd-networkd's .network file for it
    values: dict[str, str] = field(default_factory=dict)  # the profile's current values
    gateways: list[str] = field(default_factory=list)  # what the manager says it got
    dns: list[str] = field(default_factory=list)

    @property
    def via_nmcli(self) -> bool:
        return self.name == NM and self.running and self.connection is not None

    @property
    def via_networkd(self) -> bool:
        return self.name == NETWORKD and self.running and self.network_file is not None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "running": self.running, "connection": self.connection,
                "network_file": self.network_file}


@dataclass
class DnsOwner:
    """Who writes /etc/resolv.conf: ``file`` (nobody: edit it), ``systemd-resolved``,
    ``resolvconf``, ``NetworkManager``, or ``unknown`` (a link to something else)."""

    kind: str
    path: str = "/etc/resolv.conf"
    text: Optional[str] = None  # the file's text when it is ours to edit
    link: Optional[str] = None
    resolved_servers: list[str] = field(default_factory=list)  # resolvectl dns IF, before


def _nm_unescape(value: str) -> str:
    return value.replace("\\:", ":").replace("\\\\", "\\")


def parse_nmcli_terse(text: str, keys: tuple[str, ...]) -> dict[str, str]:
    """``nmcli -g K1,K2 ...`` prints one value per line, in the order asked."""
    lines = text.split("\n")
    return {k: _nm_unescape(lines[i].strip()) if i < len(lines) else ""
            for i, k in enumerate(keys)}


def _nmcli_device(ifname: str) -> Owner:
    owner = Owner(NM, running=True)
    rc, out, _err = actions.run_argv(["nmcli", "-g", "GENERAL.STATE,GENERAL.CONNECTION",
                                      "device", "show", ifname], timeout=10)
    if rc != 0:
        return owner
    state = parse_nmcli_terse(out, ("state", "connection"))
    if "unmanaged" in state["state"]:
        return Owner(NOBODY)
    owner.connection = state["connection"] or None
    if owner.connection:
        rc, out, _err = actions.run_argv(["nmcli", "-g", ",".join(NM_KEYS), "connection",
                                          "show", owner.connection], timeout=10)
        if rc == 0:
            owner.values = parse_nmcli_terse(out, NM_KEYS)
    rc, out, _err = actions.run_argv(["nmcli", "-g", "IP4.GATEWAY,IP6.GATEWAY,IP4.DNS,IP6.DNS",
                                      "device", "show", ifname], timeout=10)
    if rc == 0:
        got = parse_nmcli_terse(out, ("gw4", "gw6", "dns4", "dns6"))
        owner.gateways = [v for v in (got["gw4"], got["gw6"]) if v and v != "--"]
        owner.dns = [d.strip() for k in ("dns4", "dns6") for d in got[k].split("|")
                     if d.strip() and d.strip() != "--"]
    return owner


_FIELD = re.compile(r"^\s*([A-Za-z][A-Za-z .-]*):\s(.*)$")


def parse_networkctl_status(text: str) -> dict[str, list[str]]:
    """The labelled fields of ``networkctl status IF`` (a value on the lines below its label,
    as DNS servers are listed, belongs to it)."""
    fields: dict[str, list[str]] = {}
    last = None
    for line in text.splitlines():
        match = _FIELD.match(line)
        if match:
            last = match.group(1).strip()
            fields.setdefault(last, []).append(match.group(2).strip())
        elif last is not None and line.strip():
            fields[last].append(line.strip())
    return fields


def _networkd_link(ifname: str) -> Owner:
    owner = Owner(NETWORKD, running=True)
    rc, out, _err = actions.run_argv(["networkctl", "status", "--no-pager", ifname], timeout=10)
    if rc != 0:
        return owner
    fields = parse_networkctl_status(out)
    if any("unmanaged" in v for v in fields.get("State", [])):
        return Owner(NOBODY)
    network_file = (fields.get("Network File") or [""])[0]
    owner.network_file = network_file if network_file.startswith("/") else None
    owner.gateways = [v.split()[0] for v in fields.get("Gateway", []) if v]
    owner.dns = [v.split()[0] for v in fields.get("DNS", []) if v]
    return owner


def detect(ifname: Optional[str], manager: Any) -> Owner:
    """The owner of ``ifname`` (``manager``: :func:`netcheck.hints.detect_manager`'s)."""
    if ifname is None or ifname == "lo":
        return Owner(NOBODY)
    if manager.name == NM:
        return _nmcli_device(ifname) if manager.running else Owner(NM)
    if manager.name == NETWORKD:
        return _networkd_link(ifname) if manager.running else Owner(NETWORKD)
    if manager.name == IFUPDOWN:
        return Owner(IFUPDOWN, running=True)
    return Owner(NOBODY)


def detect_dns(path: str = "/etc/resolv.conf", ifname: Optional[str] = None) -> DnsOwner:
    """Who writes the resolver configuration."""
    try:
        link = os.readlink(path)
    except OSError:
        link = None
    if link is not None:
        target = os.path.realpath(path)
        if "systemd/resolve" in target:
            owner = DnsOwner("systemd-resolved", path, link=link)
            if ifname:
                rc, out, _err = actions.run_argv(["resolvectl", "dns", ifname], timeout=10)
                if rc == 0 and ":" in out:
                    owner.resolved_servers = out.split(":", 1)[1].split()
            return owner
        if "resolvconf" in target:
            return DnsOwner("resolvconf", path, link=link)
        if "NetworkManager" in target:
            return DnsOwner(NM, path, link=link)
        return DnsOwner("unknown", path, link=link)
    try:
        text = actions.read_text(path)
    except OSError:
        return DnsOwner("unknown", path)
    head = (text or "")[:400]
    if "Generated by NetworkManager" in head:
        return DnsOwner(NM, path, text)
    if "systemd-resolved" in head:
        return DnsOwner("systemd-resolved", path, text)
    if "generated by resolvconf" in head:
        return DnsOwner("resolvconf", path, text)
    return DnsOwner("file", path, text)


# -- argv, per owner ---------------------------------------------------------------------------

def nm_modify(owner: Owner, ifname: str, key: str, new: str) -> tuple[list[actions.Action],
                                                                      list[actions.Action]]:
    """Change one key of the device's profile and reapply it; the undo puts the old back."""
    assert owner.connection is not None
    old = owner.values.get(key, "")
    do = [actions.run(["nmcli", "connection", "modify", owner.connection, key, new]),
          actions.run(["nmcli", "device", "reapply", ifname])]
    undo = [actions.run(["nmcli", "connection", "modify", owner.connection, key, old]),
            actions.run(["nmcli", "device", "reapply", ifname])]
    return do, undo


def dropin_path(owner: Owner) -> str:
    """The drop-in file netcheck writes beside the interface's .network file."""
    assert owner.network_file is not None
    base = os.path.basename(owner.network_file)
    return f"/etc/systemd/network/{base}.d/{DROPIN_NAME}"


def networkd_dropin(owner: Owner, ifname: str, section: str, lines: list[str],
                    existing: Optional[str]) -> tuple[list[actions.Action], list[actions.Action]]:
    """Add a drop-in (one section) and make networkd read it; the undo removes it again."""
    path = dropin_path(owner)
    text = (existing or "# " + "written by netcheck fix; remove it to undo\n") + \
        f"[{section}]\n" + "".join(f"{line}\n" for line in lines)
    reload = [actions.run(["networkctl", "reload"]),
              actions.run(["networkctl", "reconfigure", ifname])]
    do = [actions.write(path, text, existing, 0o644), *reload]
    undo = ([actions.write(path, existing, text, 0o644)] if existing is not None
            else [actions.remove(path, text)]) + reload
    return do, undo
