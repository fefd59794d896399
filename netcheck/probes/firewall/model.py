"""The firewall's rules as one model, whichever tool made them, and the verdict on a flow.

nft's JSON is the common form: iptables rules are translated into it (``iptables.py``), so one
walk (``walk.py``) judges both and one renderer (``render.py``) quotes both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Union

from netcheck.probes.firewall.render import render_rule

BLOCKING = ("drop", "reject")


@dataclass(frozen=True)
class Flow:
    """One flow to judge: what a connect() or an echo request from this host would send."""

    family: int  # 4 or 6
    protocol: str  # tcp | udp | icmp
    daddr: str
    # A reply's destination port is the probe's own: somewhere in the ephemeral range.
    dport: Union[int, tuple[int, int], None] = None
    saddr: Optional[str] = None  # unknown (None) makes rules on the source uncertain
    # An unbound client socket gets a port from ip_local_port_range: rules on the source
    # port match, do not match, or cannot be told, depending on how they cut that range.
    sport: Union[int, tuple[int, int], None] = (32768, 60999)
    oifname: Optional[str] = None
    iifname: Optional[str] = None
    hook: str = "output"
    # A reply coming back to this host (input hook): conntrack has seen the request, so it
    # is ``ct state established``, ``ct direction reply``, a SYN-ACK or an echo reply.
    reply: bool = False
    # Set for what is neither a request nor its reply: a neighbour advertisement is not
    # tracked by conntrack (ct state untracked) and is no echo.
    icmp_type: Optional[str] = None
    ct_state: Optional[str] = None
    # Is the destination one of this host's addresses (``fib daddr type local``, iptables'
    # ``-m addrtype --dst-type LOCAL``, how Docker's nat chains pick its traffic)? None: unknown.
    local_daddr: Optional[bool] = None

    def describe(self) -> str:
        fam = "IPv6" if self.family == 6 else "IPv4"
        if self.icmp_type is not None:
            return f"{fam} {self.icmp_type} from {self.saddr}"
        if self.reply:
            if self.protocol == "icmp":
                return f"{fam} ping reply from {self.saddr}"
            return f"{self.protocol} reply from {self.saddr} port {self.sport}"
        if self.protocol == "icmp":
            return f"{fam} ping to {self.daddr}"
        return f"{self.protocol} port {self.dport} to {self.daddr}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"family": self.family, "protocol": self.protocol,
                               "daddr": self.daddr, "hook": self.hook}
        for key in ("dport", "saddr", "oifname", "iifname"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.reply:
            out["reply"] = True
            out["sport"] = self.sport
        return out


@dataclass
class Rule:
    """One rule, whichever tool made it; ``exprs`` is in nft's JSON form either way."""

    family: str
    table: str
    chain: str
    exprs: list[Any]
    handle: Optional[int] = None
    position: int = 0  # 1-based place in its chain (iptables' rule number)
    text: Optional[str] = None  # as its own tool lists it (nft syntax, or an -A line)
    spec: Optional[str] = None  # iptables: the rule after "-A CHAIN", for "-D CHAIN spec"
    source: str = "nft"  # nft | iptables-nft | iptables-legacy | iptables
    command: str = "nft"  # the command that edits it (nft, iptables, ip6tables-legacy...)

    @property
    def quoted(self) -> str:
        return self.text if self.text is not None else render_rule(self.exprs)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"family": self.family, "table": self.table, "chain": self.chain,
                               "rule": self.quoted, "source": self.source}
        if self.handle is not None:
            out["handle"] = self.handle
        if self.source.startswith("iptables"):
            out["position"] = self.position
        return out


@dataclass
class Chain:
    """A chain; a base chain has a hook, a priority and a policy."""

    family: str
    table: str
    name: str
    hook: Optional[str] = None
    prio: int = 0
    policy: Optional[str] = None
    type: Optional[str] = None
    handle: Optional[int] = None
    source: str = "nft"
    command: str = "nft"
    rules: list[Rule] = field(default_factory=list)
    order: int = 0  # place in the listing: ties of priority keep the listing's order

    @property
    def base(self) -> bool:
        return self.hook is not None

    @property
    def label(self) -> str:
        return f"{self.family} {self.table} {self.name}"


@dataclass
class NamedSet:
    """A named set or map with its elements (maps: ``[key, value]`` pairs)."""

    family: str
    table: str
    name: str
    elements: list[Any]
    is_map: bool = False
    _index: dict[str, Any] = field(default_factory=dict)


@dataclass
class Ruleset:
    """Everything read from this host's firewall tools."""

    chains: dict[tuple[str, str, str], Chain] = field(default_factory=dict)
    sets: dict[tuple[str, str, str], NamedSet] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)  # "nft 1.0.6", "iptables-legacy"...
    notes: list[str] = field(default_factory=list)  # what could not be read, and why
    readable: bool = True
    error: Optional[str] = None  # a reason code of read.py (NEEDS_ROOT, NO_TOOL) or the notes

    @property
    def rule_count(self) -> int:
        return sum(len(c.rules) for c in self.chains.values())

    def add_chain(self, chain: Chain) -> Chain:
        key = (chain.family, chain.table, chain.name)
        chain.order = len(self.chains)
        self.chains[key] = chain
        return chain

    def base_chains(self, hook: str, family: int) -> list[Chain]:
        """Base chains of a hook that see this address family, in the order netfilter runs them."""
        fams = ("inet", "ip") if family == 4 else ("inet", "ip6")
        found = [c for c in self.chains.values() if c.hook == hook and c.family in fams]
        return sorted(found, key=lambda c: (c.prio, c.order))

    def summary(self) -> dict[str, Any]:
        return {"sources": list(self.sources), "tables": len({(c.family, c.table)
                                                             for c in self.chains.values()}),
                "chains": len(self.chains), "rules": self.rule_count, "notes": list(self.notes)}


@dataclass
class Verdict:
    """What the rules do to one flow."""

    flow: Flow
    action: str  # drop | reject | accept | no rule matches | unknown
    rule: Optional[Rule] = None  # the rule that decided (None: a policy, or nothing)
    chain: Optional[Chain] = None  # the chain holding that rule, or whose policy decided
    by_policy: bool = False
    uncertain: list[str] = field(default_factory=list)  # why the verdict may be wrong
    capped: bool = False
    steps: int = 0
    walked: list[str] = field(default_factory=list)  # base chains seen, in order

    @property
    def blocked(self) -> bool:
        return self.action in BLOCKING

    @property
    def certain(self) -> bool:
        return not self.uncertain and not self.capped and self.action != "unknown"

    def describe(self) -> str:
        """One line: what blocks the flow (or lets it through), quoting the rule."""
        if self.rule is not None:
            where = f"{self.rule.family} {self.rule.table} {self.rule.chain}"
            tag = f" (handle {self.rule.handle})" if self.rule.handle is not None else ""
            return f"{where}: `{self.rule.quoted}`{tag}"
        if self.by_policy and self.chain is not None:
            return f"{self.chain.label}: policy {self.chain.policy}"
        return self.action

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"flow": self.flow.describe(), "verdict": self.action,
                               "certain": self.certain}
        if self.rule is not None:
            out["rule"] = self.rule.to_json()
        if self.by_policy and self.chain is not None:
            out["policy"] = {"chain": self.chain.label, "policy": self.chain.policy}
        if self.uncertain:
            out["uncertain"] = list(self.uncertain)
        if self.capped:
            out["capped"] = f"stopped after {self.steps} rules: the ruleset is too large to " \
                            "evaluate completely"
        if self.walked:
            out["chains"] = list(self.walked)
        return out
