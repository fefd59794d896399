"""The flows to judge: what netcheck sends to the target (a connect per address and
protocol, a ping), and the replies to them as this host's input chains see them."""

from __future__ import annotations

import ipaddress
from typing import Optional

from netcheck.probes.firewall.model import Flow


def target_flows(addresses: list[str], port: int, protocols: tuple[str, ...],
                 paths: dict[str, tuple[Optional[str], Optional[str]]],
                 with_ping: bool = True) -> list[Flow]:
    """The flows netcheck itself sends: a connect per address and protocol, and a ping."""
    flows: list[Flow] = []
    for address in addresses:
        fam = 6 if ":" in address and not _is_mapped(address) else 4
        daddr = address.split("%")[0]
        if fam == 4 and ":" in daddr:
            daddr = str(ipaddress.IPv6Address(daddr).ipv4_mapped)  # ::ffff:a.b.c.d
        oif, src = paths.get(address, (None, None))
        for proto in protocols:
            flows.append(Flow(fam, proto, daddr, port, saddr=src, oifname=oif,
                              sport=_ephemeral_range()))
        if with_ping:
            flows.append(Flow(fam, "icmp", daddr, None, saddr=src, oifname=oif, sport=None))
    return flows


def reply_flow(remote: str, local: Optional[str], protocol: str, remote_port: Optional[int],
               iifname: Optional[str]) -> Flow:
    """The reply a probe to ``remote`` gets, as this host's input chains see it.

    ``local``: the source address the probe left with (None: unknown, rules on it are
    uncertain); ``remote_port``: the port probed (the reply's source port). The reply goes
    to the probe's own port: somewhere in the ephemeral range.
    """
    fam = 6 if ":" in remote and not _is_mapped(remote) else 4
    daddr = (local or ("::" if fam == 6 else "0.0.0.0")).split("%")[0]
    ports = protocol != "icmp"
    return Flow(fam, protocol, daddr, saddr=remote.split("%")[0],
                dport=_ephemeral_range() if ports else None,
                sport=remote_port if ports else None, iifname=iifname, hook="input",
                reply=True)


def neighbour_advert_flow(remote: str, local: Optional[str], iifname: Optional[str]) -> Flow:
    """The neighbour advertisement an IPv6 neighbour answers a solicitation with, as this
    host's input chains see it: ICMPv6 type 136, not tracked (``ct state untracked``), so a
    ``ct state established,related accept`` does not let it in."""
    return Flow(6, "icmp", (local or "::").split("%")[0], saddr=remote.split("%")[0],
                sport=None, iifname=iifname, hook="input", reply=True,
                icmp_type="nd-neighbor-advert", ct_state="untracked")


def _is_mapped(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    return ip.version == 6 and ip.ipv4_mapped is not None  # type: ignore[union-attr]


def _ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
            lo, hi = fh.read().split()[:2]
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999
