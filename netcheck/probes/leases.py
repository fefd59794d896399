"""The DHCP leases this host keeps (systemd-networkd, NetworkManager, dhclient): facts the
diagnosis reads (a family it is meant to use, the router it was given) and ``netcheck fix``
proves its repairs with.

Read-only, small and without following links: a lease file is the host's, but its contents
came from whatever DHCP server answered.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from glob import glob
from typing import Optional

MAX_LEASE_BYTES = 1 << 20  # a lease file is a few hundred bytes; dhclient's grows with renewals


@dataclass
class Lease:
    """What a DHCP lease file says about one interface."""

    file: str
    routers: list[str]
    dns: list[str]


def _read_small(path: str) -> Optional[str]:
    """A regular file's text, read without following a link; None when it cannot be."""
    from netcheck.untrusted import read_regular

    try:
        data = read_regular(path, MAX_LEASE_BYTES)
    except OSError:
        return None
    if data is None or len(data) > MAX_LEASE_BYTES:
        return None
    return data.decode("utf-8", "surrogateescape")


def _addresses(words: list[str]) -> list[str]:
    found = []
    for word in words:
        word = word.strip().strip(",;\"")
        try:
            found.append(str(ipaddress.ip_address(word)))
        except ValueError:
            continue
    return found


def parse_key_value_lease(text: str) -> tuple[list[str], list[str]]:
    """systemd-networkd's (and NetworkManager's internal client's) lease: ``ROUTER=``,
    ``DNS=``; returns (routers, name servers)."""
    routers: list[str] = []
    dns: list[str] = []
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key.strip() == "ROUTER":
            routers += _addresses(value.split())
        elif key.strip() == "DNS":
            dns += _addresses(value.split())
    return routers, dns


def parse_dhclient_leases(text: str, ifname: str) -> tuple[list[str], list[str]]:
    """ISC dhclient's lease file: the last ``lease { ... }`` of the interface; returns
    (``option routers``, ``option domain-name-servers``)."""
    routers: list[str] = []
    dns: list[str] = []
    for block in text.split("lease {")[1:]:
        body = block.split("}")[0]
        statements = [s.strip() for s in body.split(";")]
        iface = next((s.split(None, 1)[1].strip('"') for s in statements
                      if s.startswith("interface ") and len(s.split(None, 1)) == 2), None)
        if iface is not None and iface != ifname:
            continue
        for s in statements:
            words = s.replace(",", " ").split()
            if words[:2] == ["option", "routers"]:
                routers = _addresses(words[2:])
            elif words[:2] == ["option", "domain-name-servers"]:
                dns = _addresses(words[2:])
    return routers, dns


def leases(ifname: str, ifindex: int) -> list[Lease]:
    """The DHCP leases this host keeps for an interface (networkd, NetworkManager, dhclient)."""
    found: list[Lease] = []
    key_value = [f"/run/systemd/netif/leases/{ifindex}",
                 *sorted(glob(f"/var/lib/NetworkManager/internal-*-{ifname}.lease"))]
    for path in key_value:
        text = _read_small(path)
        if text:
            routers, dns = parse_key_value_lease(text)
            if routers or dns:
                found.append(Lease(path, routers, dns))
    dhclient = [*sorted(glob("/var/lib/dhcp/dhclient*.leases")),
                *sorted(glob("/var/lib/dhclient/*.lease*")),
                *sorted(glob(f"/var/lib/NetworkManager/dhclient-*-{ifname}.lease"))]
    for path in dhclient:
        text = _read_small(path)
        if text:
            routers, dns = parse_dhclient_leases(text, ifname)
            if routers or dns:
                found.append(Lease(path, routers, dns))
    return found
