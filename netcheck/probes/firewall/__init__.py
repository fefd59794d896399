"""This host's own firewall: read the rules, and say what they do to one flow.

The rules come from ``nft -j list ruleset`` (JSON: every table, chain, set and rule with its
handle), from ``iptables-nft-save`` for the tables iptables manages through nf_tables (their
matches are opaque ``xt`` blobs in nft's JSON), and from ``iptables-legacy-save`` /
``ip6tables-legacy-save`` when the legacy backend holds tables. Reading needs CAP_NET_ADMIN.
No command runs through a shell; each has a timeout and a cap on its output.

:func:`evaluate` walks the base chains of one hook (output, forward, input) in priority
order for one flow, the way netfilter would: rules in order, jump/goto into regular chains,
return, the chain policy at the end. It understands the common expressions (addresses with
prefixes and sets, l4proto, ports with ranges and sets, interface names, conntrack state —
the flow is NEW, so ``ct state established,related accept`` does not match it — marks, vmaps)
and nothing else: an expression it does not understand is never guessed. The rule is
skipped, and the verdict says it is *uncertain* and which expression was not understood.
The work is capped (rules visited, jump depth, time), and a capped walk says so.

The package, by concern: ``model`` (Flow, Rule, Chain, Ruleset, Verdict), ``read`` (running the
tools), ``nft`` and ``iptables`` (their listings into the model), ``walk`` and ``match`` (the
evaluation), ``render`` (quoting a rule as nft prints it), ``flows`` (the flows netcheck sends
and their replies), ``dnat`` (Docker's published ports), ``remedies`` (the commands that fix
a block). Here: the run's one reading and judgement, which the checks await, and every name
importable from ``netcheck.probes.firewall`` as before the split.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from netcheck.probes.firewall.dnat import Dnat, dnat_of
from netcheck.probes.firewall.flows import (
    _ephemeral_range,
    _is_mapped,
    neighbour_advert_flow,
    reply_flow,
    target_flows,
)
from netcheck.probes.firewall.iptables import (
    IPT_HOOKS,
    IPT_NAT_PRIO,
    IPT_TABLE_PRIO,
    NAT_TARGETS,
    PASSIVE_TARGETS,
    REJECT_WITH,
    _iptables_exprs,
    parse_iptables_save,
)
from netcheck.probes.firewall.match import ICMP_TYPE_NUMBERS, PROTO_NUMBERS
from netcheck.probes.firewall.model import BLOCKING, Chain, Flow, NamedSet, Rule, Ruleset, Verdict
from netcheck.probes.firewall.nft import merge_iptables_nft, parse_nft_json
from netcheck.probes.firewall.read import (
    CAP_NET_ADMIN,
    MAX_OUTPUT_BYTES,
    NEEDS_ROOT,
    NO_TARGET,
    NO_TOOL,
    SBIN,
    _rule_text_from_nft,
    _which,
    has_cap_net_admin,
    read_ruleset,
    run_bounded,
)
from netcheck.probes.firewall.remedies import (
    iptables_accept_match,
    nft_accept_match,
    nft_delete_command,
    remedy_commands,
)
from netcheck.probes.firewall.render import (
    BARE_META,
    IFNAME_KEYS,
    NAT_STATEMENTS,
    VERDICTS,
    render_expr,
    render_rule,
    render_stmt,
    render_value,
)
from netcheck.probes.firewall.walk import MAX_DEPTH, MAX_STEPS, PASSIVE_STATEMENTS, evaluate

if TYPE_CHECKING:
    from netcheck.runner import Context

# Every name the module had before it became a package. judge(), rules() and judge_flows()
# below look up read_ruleset, has_cap_net_admin and _rule_text_from_nft here, at call time,
# so replacing them on this package (as tests do) replaces them for the whole run.
__all__ = [
    "BARE_META", "BLOCKING", "CAP_NET_ADMIN", "Chain", "Dnat", "Flow", "ICMP_TYPE_NUMBERS",
    "IFNAME_KEYS", "IPT_HOOKS", "IPT_NAT_PRIO", "IPT_TABLE_PRIO", "LocalFirewall", "MAX_DEPTH",
    "MAX_OUTPUT_BYTES", "MAX_STEPS", "NAT_STATEMENTS", "NAT_TARGETS", "NEEDS_ROOT", "NO_TARGET",
    "NO_TOOL", "NamedSet", "PASSIVE_STATEMENTS", "PASSIVE_TARGETS", "PROTO_NUMBERS",
    "REJECT_WITH", "Rule", "Ruleset", "SBIN", "VERDICTS", "Verdict", "blocked_addresses",
    "dnat_of", "evaluate", "for_target", "has_cap_net_admin", "iptables_accept_match", "judge",
    "judge_flows", "merge_iptables_nft", "neighbour_advert_flow", "nft_accept_match",
    "nft_delete_command", "parse_iptables_save", "parse_nft_json", "read_ruleset",
    "remedy_commands", "render_expr", "render_rule", "render_stmt",
    "render_value", "reply_flow", "rules", "run_bounded", "target_flows",
    # private, kept where they were for what reaches them (tests patch _rule_text_from_nft)
    "_ephemeral_range", "_is_mapped", "_iptables_exprs", "_rule_text_from_nft", "_which",
]


@dataclass
class LocalFirewall:
    """This host's rules, judged for every flow netcheck sends to the target."""

    readable: bool
    # Why the rules could not be read: NEEDS_ROOT, NO_TOOL, NO_TARGET, or the tools' own words.
    reason: Optional[str] = None
    hook: str = "output"
    ruleset: Optional[Ruleset] = None
    verdicts: list[Verdict] = field(default_factory=list)
    duration_ms: float = 0.0

    def blocking(self, address: Optional[str] = None,
                 protocol: Optional[str] = None) -> list[Verdict]:
        """Verdicts that drop or reject (for one address / protocol when given)."""
        return [v for v in self.verdicts if v.blocked
                and (address is None or v.flow.daddr == address)
                and (protocol is None or v.flow.protocol == protocol)]

    def blocks(self, address: str, protocol: Optional[str] = None) -> Optional[Verdict]:
        """The first verdict that blocks a flow to ``address``, or None."""
        found = self.blocking(address, protocol)
        return found[0] if found else None

    def summary_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"readable": self.readable, "hook": self.hook}
        if self.reason:
            out["reason"] = self.reason
        if self.ruleset is not None:
            out["ruleset"] = self.ruleset.summary()
        out["flows"] = [v.to_json() for v in self.verdicts]
        return out


def judge(flows: list[Flow], timeout: float, hook: str = "output",
          ruleset: Optional[Ruleset] = None, live_text: Optional[bool] = None) -> LocalFirewall:
    """Read the rules (unless given) and evaluate each flow; blocking, for ctx.blocking().

    live_text (default: when the rules are read here): quote a blocking nft rule as nft
    itself prints it (``nft -a list chain``) rather than rendered from the JSON.
    """
    start = time.monotonic()
    live = ruleset is None if live_text is None else live_text
    rs = ruleset if ruleset is not None else read_ruleset(timeout)
    if not rs.readable:
        return LocalFirewall(False, rs.error, hook, rs)
    budget = max(0.2, timeout - (time.monotonic() - start))
    verdicts = []
    for flow in flows:
        per_flow = max(0.05, budget / max(1, len(flows)))
        verdicts.append(evaluate(rs, dataclasses.replace(flow, hook=hook),
                                 time_budget=per_flow))
    for v in verdicts if live else []:
        if v.rule is not None and v.rule.source == "nft" and v.rule.text is None \
                and v.rule.handle is not None:
            v.rule.text = _rule_text_from_nft(v.rule, timeout=1.0)
    return LocalFirewall(True, None, hook, rs, verdicts, (time.monotonic() - start) * 1000)


def _read_timeout(ctx: Context) -> float:
    return max(1.0, min(max(ctx.options.timeout, 2.0), ctx.time_left() - 0.5))


def rules(ctx: Context) -> Any:
    """The run's one reading of this host's rules (memoised; an awaitable :class:`Ruleset`)."""
    return ctx.memo_shared(("firewall", "rules"),
                           lambda: ctx.blocking(read_ruleset, _read_timeout(ctx)))


async def judge_flows(ctx: Context, flows: list[Flow], hook: str = "output") -> LocalFirewall:
    """Judge any flows against the run's one reading of the rules.

    For other checks too: e.g. the DNS checks could ask about ``udp 53`` to each resolver.
    """
    if not has_cap_net_admin():
        return LocalFirewall(False, NEEDS_ROOT, hook)
    rs = await rules(ctx)
    if not rs.readable:
        return LocalFirewall(False, rs.error, hook, rs)
    return await ctx.blocking(judge, flows, _read_timeout(ctx), hook, rs, True)


def for_target(ctx: Context, hook: str = "output") -> Any:
    """This host's rules judged for the target's flows (memoised: an awaitable LocalFirewall).

    Any check may await it: the transport checks do, and ``network.target`` can, to tell
    its own silence from this host's block.
    """
    return ctx.memo(("firewall", hook), lambda: _for_target(ctx, hook))


async def _for_target(ctx: Context, hook: str) -> LocalFirewall:
    if not has_cap_net_admin():
        return LocalFirewall(False, NEEDS_ROOT, hook)
    if ctx.target is None:
        return LocalFirewall(False, NO_TARGET, hook)
    addresses = (await ctx.addresses())[:8]
    paths: dict[str, tuple[Optional[str], Optional[str]]] = {}
    try:
        path = await ctx.path()
        for lookup in path.lookups:
            paths[lookup.destination] = (lookup.ifname, lookup.prefsrc)
    except Exception:  # the route lookup failing only makes interface rules uncertain
        pass
    protocols = ("tcp", "udp") if ctx.target.scheme == "dns" else ("tcp",)
    return await judge_flows(ctx, target_flows(addresses, ctx.target.port, protocols, paths),
                             hook)


async def blocked_addresses(ctx: Context) -> dict[str, str]:
    """Target addresses this host's own output rules block (any flow), with the rule.

    Empty when the rules cannot be read (no CAP_NET_ADMIN) or block nothing: for
    ``network.target``, which must not call a locally dropped target unreachable.
    """
    fw = await for_target(ctx)
    out: dict[str, str] = {}
    for v in fw.blocking():
        out.setdefault(v.flow.daddr, f"{v.flow.describe()}: {v.action} by {v.describe()}")
    return out
