"""The walk: what the base chains of one hook do to one flow.

:func:`evaluate` walks the base chains of one hook (output, forward, input) in priority
order for one flow, the way netfilter would: rules in order, jump/goto into regular chains,
return, the chain policy at the end. A rule whose expression is not understood is skipped, and
the verdict says it is *uncertain* and why. The work is capped (rules visited, jump depth,
time), and a capped walk says so.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from netcheck.probes.firewall.iptables import PASSIVE_TARGETS
from netcheck.probes.firewall.match import _match_expr, _Unknown, _vmap
from netcheck.probes.firewall.model import BLOCKING, Chain, Flow, Rule, Ruleset, Verdict
from netcheck.probes.firewall.render import NAT_STATEMENTS, VERDICTS

MAX_STEPS = 50_000  # rules (and anonymous-set elements) visited per flow
MAX_DEPTH = 16  # nested jumps, as the kernel's own jump stack
# Statements that neither match nor decide: they only count, log or tag the packet.
PASSIVE_STATEMENTS = ("counter", "log", "notrack", "ct helper", "ct timeout", "ct expectation",
                      "set", "flow", "dup", "mangle", "synproxy", "tproxy", "secmark",
                      "ct count", "last", "meter")


@dataclass
class _Walk:
    flow: Flow
    rs: Ruleset
    max_steps: int
    deadline: float
    steps: int = 0
    capped: bool = False
    mark: int = 0
    uncertain: list[str] = field(default_factory=list)
    # kinds of verdict a skipped (not understood) rule could have given
    maybe: set[str] = field(default_factory=set)


def evaluate(rs: Ruleset, flow: Flow, max_steps: int = MAX_STEPS,
             time_budget: float = 2.0) -> Verdict:
    """What the base chains of ``flow.hook`` do to the flow (see the module docstring)."""
    walk = _Walk(flow, rs, max_steps, time.monotonic() + time_budget)
    verdict = Verdict(flow, "no rule matches")
    matched_any = False
    for chain in rs.base_chains(flow.hook, flow.family):
        verdict.walked.append(chain.label)
        outcome, rule, where = _run_chain(walk, chain, 0)
        if outcome == "capped":
            verdict.action = "unknown"
            break
        if outcome in ("end", "return"):  # fell off the end of the base chain: its policy
            policy = chain.policy or "accept"
            if policy in BLOCKING:
                verdict.action, verdict.chain, verdict.by_policy = policy, chain, True
                break
            continue
        matched_any = True
        if outcome in BLOCKING or outcome in ("unknown", "queue"):
            verdict.action, verdict.rule, verdict.chain = (
                outcome if outcome != "queue" else "unknown"), rule, where
            break
        # accept: this base chain lets it through; the next base chain still judges it
        verdict.action, verdict.rule, verdict.chain = "accept", rule, where
    if verdict.action == "accept" and not matched_any:
        verdict.action = "no rule matches"
    verdict.steps, verdict.capped = walk.steps, walk.capped
    # A rule skipped because it was not understood matters only if it could have decided
    # otherwise: an accept (or a jump) before a drop, a drop before an accept.
    relevant = walk.maybe & ({"accept", "jump", "goto", "return", "unknown"} if verdict.blocked
                             else {"drop", "reject", "jump", "goto", "unknown"})
    if relevant or verdict.action == "unknown":
        verdict.uncertain = walk.uncertain
    return verdict


def _run_chain(walk: _Walk, chain: Chain, depth: int) -> tuple[str, Optional[Rule], Chain]:
    """Run one chain; outcome is accept|drop|reject|return|end|unknown|queue|capped."""
    if depth > MAX_DEPTH:
        walk.uncertain.append(f"jumps nested deeper than {MAX_DEPTH} at {chain.label} (a loop?)")
        return "unknown", None, chain
    for rule in chain.rules:
        walk.steps += 1
        if walk.steps > walk.max_steps or (walk.steps % 1024 == 0
                                           and time.monotonic() > walk.deadline):
            walk.capped = True
            return "capped", None, chain
        matched, verdict, target, unknown = _run_rule(walk, rule)
        if matched is False:
            continue
        if matched is None:
            if verdict is not None:
                walk.maybe.add(verdict)
                walk.uncertain.append(
                    f"{chain.label} rule `{rule.quoted}`"
                    + (f" (handle {rule.handle})" if rule.handle is not None else "")
                    + f" would {verdict}{' ' + target if target else ''} but {unknown} "
                    "is not understood: skipped")
            continue
        if verdict is None or verdict == "continue":
            continue
        if verdict in ("accept", "drop", "reject", "unknown", "queue"):
            if verdict == "unknown":
                walk.uncertain.append(f"{chain.label} rule `{rule.quoted}`: {unknown}")
            return verdict, rule, chain
        if verdict == "return":
            return "return", rule, chain
        sub = walk.rs.chains.get((chain.family, chain.table, target or ""))
        if sub is None:
            walk.uncertain.append(f"{chain.label}: {verdict} to missing chain {target}")
            continue
        outcome, hit, where = _run_chain(walk, sub, depth + 1)
        if outcome in ("end", "return"):
            if verdict == "goto":  # goto does not come back: the caller's caller continues
                return "return", rule, chain
            continue
        return outcome, hit, where
    return "end", None, chain


def _run_rule(walk: _Walk, rule: Rule) -> tuple[Optional[bool], Optional[str], Optional[str],
                                                 Optional[str]]:
    """(matched: True/False/None=unknown, verdict, jump target, what was not understood)."""
    unknown: Optional[str] = None
    for expr in rule.exprs:
        if not isinstance(expr, dict) or len(expr) != 1:
            unknown = unknown or f"expression {json.dumps(expr)[:80]}"
            continue
        (kind, body), = expr.items()
        if kind == "match":
            result = _match_expr(walk, body, rule)
            if result is False:
                return False, None, None, None
            if isinstance(result, _Unknown):
                unknown = unknown or result.reason
            continue
        if kind in VERDICTS:
            if kind == "reject" and not _reject_applies(body, walk.flow):
                return False, None, None, None
            target = body.get("target") if isinstance(body, dict) else None
            return (None if unknown else True), kind, target, unknown
        if kind == "vmap":
            got = _vmap(walk, body, rule)
            if isinstance(got, _Unknown):
                return None, "unknown", None, unknown or got.reason
            if not isinstance(got, tuple):  # False: no element matches
                return (None if unknown else True), None, None, unknown
            verdict, target = got
            return (None if unknown else True), verdict, target, unknown
        if kind in NAT_STATEMENTS:
            # NAT decides in nat chains: the packet is accepted there (and may be rewritten).
            return (None if unknown else True), "accept", None, unknown
        if kind == "limit":
            if isinstance(body, dict) and body.get("inv"):
                return False, None, None, None  # "rate over": a single new flow is under it
            continue
        if kind == "quota":
            unknown = unknown or "quota (how much was used decides)"
            continue
        if kind == "xt":
            xt_verdict, reason = _xt(body)
            if xt_verdict is None:  # a match (never understood) or a passive target
                unknown = unknown or reason
                continue
            return (None if unknown else True), xt_verdict, None, unknown or reason
        if kind == "mangle" and not unknown:
            key = body.get("key", {}) if isinstance(body, dict) else {}
            if key == {"meta": {"key": "mark"}} and isinstance(body.get("value"), int):
                walk.mark = body["value"]
            continue
        if kind in PASSIVE_STATEMENTS or kind == "comment":
            continue
        if kind in ("fwd", "synproxy"):
            return (None if unknown else True), "unknown", None, unknown or f"statement {kind}"
        unknown = unknown or f"expression {kind!r}"
    return (None if unknown else True), None, None, unknown


def _xt(body: Any) -> tuple[Optional[str], Optional[str]]:
    """An iptables match or target nft lists as an opaque ``xt`` blob: (verdict, what is not
    understood). A match is never understood; a passive target neither matches nor decides."""
    name = body.get("name", "?") if isinstance(body, dict) else "?"
    if not (isinstance(body, dict) and body.get("type") == "target"):
        return None, f"iptables match {name!r}"
    verdict = {"REJECT": "reject", "DROP": "drop", "ACCEPT": "accept",
               "RETURN": "return"}.get(name)
    if verdict is None and name in PASSIVE_TARGETS:
        return None, None
    if verdict is None:
        return "unknown", f"iptables target {name}"
    return verdict, None


def _reject_applies(body: Any, flow: Flow) -> bool:
    """``reject with icmp`` hides an IPv4-only match, icmpv6 an IPv6-only one, tcp reset TCP."""
    kind = body.get("type") if isinstance(body, dict) else None
    if kind == "icmp":
        return flow.family == 4
    if kind == "icmpv6":
        return flow.family == 6
    if kind == "tcp reset":
        return flow.protocol == "tcp"
    return True
