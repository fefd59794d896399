"""Address families: which one an address is, what to call it, and which ones a flow needs.

One place for what every layer asks: "is this IPv4 or IPv6?" (an IPv4-mapped IPv6 address
travels as IPv4, a zone index ``%eth0`` is not part of the address), the names the contract
uses in ``evidence.family`` (``"ipv4"`` / ``"ipv6"``), the labels people read (IPv4 / IPv6),
and the families one flow needs: its target's, and for a name, its name servers' — a host
whose only name server is IPv4 needs IPv4 even when the target has an AAAA record.

Families are the ``socket.AF_INET`` / ``socket.AF_INET6`` integers throughout.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any, Iterable, Sequence, Union

V4, V6 = socket.AF_INET, socket.AF_INET6
BOTH = (V4, V6)
# The values of ``evidence.family`` (the contract's words).
IPV4, IPV6 = "ipv4", "ipv6"

Family = int
_NAMES = {V4: IPV4, V6: IPV6}
_LABELS = {V4: "IPv4", V6: "IPv6"}


def bare(address: str) -> str:
    """The address without a zone index (``fe80::1%eth0`` -> ``fe80::1``)."""
    return address.split("%", 1)[0]


def family_of(address: str) -> Family:
    """``AF_INET`` or ``AF_INET6`` as the packets go: an IPv4-mapped IPv6 address is IPv4.

    Anything that does not parse is judged by its colon, as the socket calls would.
    """
    if ":" not in address:  # IPv4, or not an address at all: judged as IPv4 either way
        return V4
    try:
        ip = ipaddress.ip_address(bare(address))
    except ValueError:
        return V6
    if ip.version == 6 and ip.ipv4_mapped is None:  # type: ignore[union-attr]
        return V6
    return V4


def version_of(address: str) -> int:
    """4 or 6 (the family of :func:`family_of` as IP version numbers count it)."""
    return 6 if family_of(address) == V6 else 4


def name(family: Family) -> str:
    """``"ipv4"`` or ``"ipv6"``: the contract's value of ``evidence.family``."""
    return _NAMES[family]


def label(family: Family) -> str:
    """``"IPv4"`` or ``"IPv6"``: what a person reads."""
    return _LABELS[family]


def from_name(value: Union[str, int]) -> Family:
    """The family of ``"ipv4"``, ``"IPv6"``, ``"4"``, ``6``, ``AF_INET``...; ValueError else."""
    if value in (V4, V6) and not isinstance(value, str):
        return int(value)
    text = str(value).strip().lower()
    if text in ("ipv4", "inet", "4", "v4"):
        return V4
    if text in ("ipv6", "inet6", "6", "v6"):
        return V6
    raise ValueError(f"not an address family: {value!r}")


def families_of(addresses: Iterable[str]) -> tuple[Family, ...]:
    """The families of some addresses, each once, in the order first seen."""
    found: list[Family] = []
    for a in addresses:
        fam = family_of(a)
        if fam not in found:
            found.append(fam)
    return tuple(found)


def by_family(addresses: Iterable[str]) -> dict[Family, list[str]]:
    """The addresses grouped by family (order kept inside each group)."""
    groups: dict[Family, list[str]] = {}
    for a in addresses:
        groups.setdefault(family_of(a), []).append(a)
    return groups


def of_family(addresses: Iterable[str], family: Family) -> list[str]:
    """Only the addresses of one family."""
    return [a for a in addresses if family_of(a) == family]


def is_link_local(address: str) -> bool:
    """169.254.0.0/16 or fe80::/10."""
    try:
        return ipaddress.ip_address(bare(address)).is_link_local
    except ValueError:
        return False


def default_probe_address(family: Family) -> str:
    """A documentation-range address to look a route up for, never to send to."""
    return "2001:db8::1" if family == V6 else "198.18.0.1"


# -- the host ----------------------------------------------------------------------------

def configured(facts: Any, family: Family) -> bool:
    """Does this host use ``family`` at all (anything beyond what the kernel adds itself)?

    True when an interface other than loopback holds an address of it that is not
    link-local — or, for IPv4, a 169.254.x.x one (IPv4LL is only assigned when a DHCP
    client tried and got no answer: someone wanted IPv4 there) — or when a route of the
    family leads beyond a link (a default or a route through a gateway, in any table).
    fe80:: alone is what every IPv6-capable interface gets by itself: an IPv4-only host.
    ``facts``: a :class:`netcheck.facts.Facts` (duck-typed: links, addresses, routes).
    """
    loopbacks = {lk.index for lk in getattr(facts, "links", []) if lk.is_loopback}
    for a in getattr(facts, "addresses", []):
        if a.family != family or a.ifindex in loopbacks:
            continue
        if not is_link_local(a.address) or family == V4:
            return True
    for r in getattr(facts, "routes", []):
        if r.family == family and r.type == "unicast" and (r.dst_len == 0 or r.gateway):
            return True
    return False


def configured_families(facts: Any, asked: Sequence[Family] = BOTH) -> tuple[Family, ...]:
    """The families of ``asked`` this host uses (see :func:`configured`)."""
    return tuple(f for f in asked if configured(facts, f))


def used(facts: Any, addresses: Sequence[str]) -> list[str]:
    """The addresses of the families this host uses (all of them if that leaves none).

    An IPv4-only host (fe80:: only, no IPv6 route) cannot reach a target's AAAA address and
    never tries to: that address is no failure of the target, nor of its port.
    """
    mine = [a for a in addresses if configured(facts, family_of(a))]
    return mine or list(addresses)


# -- the flow ----------------------------------------------------------------------------

@dataclass(frozen=True)
class FlowFamilies:
    """The families one flow needs, per part of it.

    ``target``: the families of the target's addresses (of those asked for with -4/-6);
    when the name does not resolve, the families asked for. ``resolver``: the families of
    the name servers that must answer first — empty for an address target or a name that
    resolved (the resolver has done its part). A part whose families all fail breaks the
    flow; a part with one family failing and another working is degraded.
    """

    target: tuple[Family, ...]
    resolver: tuple[Family, ...] = ()

    @property
    def all(self) -> tuple[Family, ...]:
        """Every family some part needs, target's first."""
        out = list(self.target)
        out += [f for f in self.resolver if f not in out]
        return tuple(out)

    def parts(self) -> list[tuple[str, tuple[Family, ...]]]:
        """``[("resolver", fams), ("target", fams)]``, resolver first (it is asked first)."""
        out = []
        if self.resolver:
            out.append(("resolver", self.resolver))
        if self.target:
            out.append(("target", self.target))
        return out

    def to_json(self) -> dict[str, list[str]]:
        return {"target": [name(f) for f in self.target],
                "resolver": [name(f) for f in self.resolver]}


def flow_families(target_addresses: Sequence[str], nameservers: Sequence[str] = (),
                  asked: Sequence[Family] = BOTH, resolved: bool = True) -> FlowFamilies:
    """The families a flow needs (see :class:`FlowFamilies`).

    ``target_addresses``: what the target is or resolved to; ``nameservers``: the
    configured servers, counted only when the target is a name that did not resolve
    (``resolved`` False); ``asked``: the families of -4/-6 (both by default).
    """
    target = tuple(f for f in families_of(target_addresses) if f in asked)
    if not target:
        target = tuple(asked)
    resolver = () if resolved else families_of(bare(s) for s in nameservers)
    return FlowFamilies(target=target, resolver=tuple(resolver))
