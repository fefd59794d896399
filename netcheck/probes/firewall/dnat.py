"""Where the nat chains send a flow: Docker's published ports (DNAT in nat PREROUTING or
OUTPUT), so the inbound walk can follow the flow into the container's FORWARD chains."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Optional

from netcheck.probes.firewall.model import Flow, Rule, Ruleset
from netcheck.probes.firewall.walk import MAX_STEPS, _run_chain, _Walk


@dataclass
class Dnat:
    """Where a nat chain sends a flow: the rule, and the new destination (port None: same)."""

    rule: Rule
    addr: str
    port: Optional[int]

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule.to_json(), "to": self.addr, "port": self.port}


def dnat_of(rs: Ruleset, flow: Flow, hook: str = "prerouting",
            time_budget: float = 0.5) -> Optional[Dnat]:
    """The DNAT the nat chains of ``hook`` (prerouting for what arrives, output for what this
    host sends) apply to a new flow — Docker's published ports: ``-A PREROUTING -m addrtype
    --dst-type LOCAL -j DOCKER``, ``-A DOCKER ! -i docker0 -p tcp --dport 8081 -j DNAT
    --to-destination 172.17.0.2:80`` — or None (no DNAT, or one whose target is not known)."""
    walk = _Walk(dataclasses.replace(flow, hook=hook), rs, MAX_STEPS,
                 time.monotonic() + time_budget)
    for chain in rs.base_chains(hook, flow.family):
        if chain.type != "nat":
            continue
        outcome, rule, _where = _run_chain(walk, chain, 0)
        if outcome != "accept" or rule is None:
            continue
        for expr in rule.exprs:
            body = expr.get("dnat") if isinstance(expr, dict) else None
            if isinstance(body, dict) and isinstance(body.get("addr"), str):
                port = body.get("port")
                return Dnat(rule, body["addr"], port if isinstance(port, int) else None)
        return None  # the first nat decision is final (snat, redirect, an accept)
    return None
