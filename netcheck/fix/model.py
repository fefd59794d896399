"""What a repair plan is made of, and what it is made from.

:class:`Step` (do, undo, why), :class:`Plan` and :class:`Advice` come out of planning;
:class:`Host` (what was read from this host) and :class:`Proofs` (what was proved) go in,
with the netcheck/1 document. The planners live in ``repair_net``, ``repair_dns`` and
``repair_fw``; :mod:`netcheck.fix.plan` chooses among them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Optional

from netcheck.fix import owners
from netcheck.fix.actions import Action
from netcheck.fix.owners import DnsOwner, Owner
from netcheck.fix.prove import GatewayProof, ResolverProof


class Local(str):
    """A planner's reason for no plan, when the fault is on this host all the same (a local
    service down, a setting it will not guess): the advice is for this host's administrator,
    not the network's."""


NO_SUCH = ["No such process", "No such file or directory", "Cannot assign requested address",
           "does a matching rule exist", "Bad rule"]
ALREADY = ["File exists"]


@dataclass
class Step:
    """One change: what it does, how it is undone, and the evidence that justifies it."""

    do: list[Action]
    undo: list[Action]
    why: str
    owner: str = owners.NOBODY
    persistent: bool = False  # it survives a reboot (a profile, a file)
    note: Optional[str] = None  # how to make a runtime change persistent, and the like

    @property
    def runtime(self) -> bool:
        return not self.persistent

    def to_json(self) -> dict[str, Any]:
        return {"do": "; ".join(a.text() for a in self.do),
                "undo": "; ".join(a.text() for a in self.undo),
                "why": self.why, "owner": self.owner, "persistent": self.persistent,
                "note": self.note}


@dataclass
class Plan:
    """The steps that repair one root cause."""

    code: str
    check: str
    layer: int
    steps: list[Step]
    proofs: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> list[dict[str, Any]]:
        return [s.to_json() for s in self.steps]


@dataclass
class Advice:
    """No plan: why, whom to ask, and what to tell them."""

    code: Optional[str]
    reason: str
    whom: Optional[str] = None
    ticket: Optional[str] = None
    proofs: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "reason": self.reason, "whom": self.whom,
                "ticket": self.ticket}


@dataclass
class Host:
    """What was read from this host before planning."""

    mode: str = "diagnose"
    systemd: bool = False  # systemd is PID 1
    owners: dict[str, Owner] = field(default_factory=dict)  # per interface
    dns: DnsOwner = field(default_factory=lambda: DnsOwner("unknown"))
    hosts_path: str = "/etc/hosts"
    hosts_text: Optional[str] = None
    defaults: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # ip -j route
    mtus: dict[str, int] = field(default_factory=dict)
    nft_rules: dict[tuple[str, str, str, int], str] = field(default_factory=dict)  # live text
    sysctls: dict[str, str] = field(default_factory=dict)
    dropins: dict[str, Optional[str]] = field(default_factory=dict)  # drop-in path -> text
    tag: str = "netcheck-fix"  # comment of the firewall rules a plan inserts
    server: dict[str, Any] = field(default_factory=dict)  # port, proto, client (server mode)

    def owner(self, ifname: Optional[str]) -> Owner:
        return self.owners.get(ifname or "", Owner())


@dataclass
class Proofs:
    """What was proved before planning (see :mod:`netcheck.fix.prove`)."""

    gateways: dict[int, list[GatewayProof]] = field(default_factory=dict)
    neighbour: Optional[GatewayProof] = None
    resolvers: list[ResolverProof] = field(default_factory=list)

    def gateway(self, family: int) -> Optional[GatewayProof]:
        return next((g for g in self.gateways.get(family, []) if g.proven), None)

    def to_json(self) -> list[dict[str, Any]]:
        out = [{"kind": "gateway", **g.to_json()} for fam in sorted(self.gateways)
               for g in self.gateways[fam]]
        if self.neighbour is not None:
            out.append({"kind": "neighbour", **self.neighbour.to_json()})
        out += [{"kind": "resolver", **r.to_json()} for r in self.resolvers]
        return out


def check_of(doc: dict[str, Any], check_id: str) -> dict[str, Any]:
    """One check of the report by id ({} when absent)."""
    return next((c for c in doc.get("checks", []) if c.get("id") == check_id), {})


def root_check(doc: dict[str, Any]) -> tuple[Optional[str], dict[str, Any]]:
    """(code, the root cause's check) of a report."""
    rc = doc.get("root_cause")
    if not rc:
        return None, {}
    return rc.get("code"), check_of(doc, str(rc.get("check")))


def family_of_check(check: dict[str, Any], fallback: Optional[str] = None) -> int:
    """4 or 6: ``evidence.family`` when given, else the family of ``fallback``."""
    fam = (check.get("evidence") or {}).get("family")
    if fam in ("ipv4", "ipv6"):
        return 4 if fam == "ipv4" else 6
    return 6 if fallback and ":" in fallback else 4


def ip_argv(family: int) -> list[str]:
    return ["ip", "-6"] if family == 6 else ["ip", "-4"]


def wire_mac(ev: dict[str, Any]) -> Optional[str]:
    mac = ev.get("arp_probe", ev.get("ndp_probe"))
    return mac if isinstance(mac, str) and re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}",
                                                        mac.lower()) else None


def pinned(ev: dict[str, Any]) -> bool:
    """A static neighbour entry (PERMANENT, NOARP) whose MAC is not the one that answers."""
    neigh = ev.get("neighbour") or {}
    wire = wire_mac(ev)
    return (neigh.get("state") in ("PERMANENT", "NOARP") and wire is not None
            and isinstance(neigh.get("lladdr"), str)
            and neigh["lladdr"].lower() != wire.lower())
