"""``transport.firewall``: this host's output chains let the traffic out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from netcheck.checks.transport.common import FW_CODE, _flow, firewall_unreadable, remedy_commands

from netcheck.i18n import _
from netcheck.lazy import lazy
from netcheck.model import Hint, Layer, Result, failed, passed, skipped, warned
from netcheck.registry import check

if TYPE_CHECKING:
    from netcheck import family
    from netcheck.probes import firewall, shared
    from netcheck.runner import Context
else:  # imported at first use: `netcheck checks` lists the checks without the probes
    family, shared = lazy("netcheck.family"), lazy("netcheck.probes.shared")


def unique_remedies(blocks: list[firewall.Verdict]) -> list[str]:
    """The remedy commands of every blocking verdict, each once, in order."""
    return list(dict.fromkeys(cmd for v in blocks for cmd in remedy_commands(v)))


def _fw_hint(blocks: list[firewall.Verdict]) -> Hint:
    """Remove the rule, or let the port through before it: the exact commands, deduplicated."""
    commands = unique_remedies(blocks)
    first = blocks[0]
    if first.rule is not None:
        r = first.rule
        tag = f" (handle {r.handle})" if r.handle is not None else ""  # nft's own words
        text = (_("This host's own firewall rejects the traffic before it leaves: the rule "
                  "`{rule}`{handle} in chain {chain} of table {family} {table}. Delete the rule "
                  "if it is not wanted, or insert an accept for this port before it:")
                if first.action == "reject" else
                _("This host's own firewall drops the traffic before it leaves: the rule "
                  "`{rule}`{handle} in chain {chain} of table {family} {table}. Delete the rule "
                  "if it is not wanted, or insert an accept for this port before it:")).format(
                      rule=r.quoted, handle=tag, chain=r.chain, family=r.family, table=r.table)
        commands.append(f"nft -a list chain {r.family} {r.table} {r.chain}"
                        if r.source == "nft" else f"{r.command} -L {r.chain} -n -v --line-numbers")
    else:
        c = first.chain
        label = c.label if c else _("an output chain")
        text = _("The policy of {chain} is {policy} and no rule accepts this traffic before "
                 "it: add an accept rule for it (or change the policy).").format(
                     chain=label, policy=first.action)
    return Hint(text, commands)


def _flow_line(v: firewall.Verdict) -> str:
    line = _("{flow}: {action} by {rule}").format(flow=_flow(v.flow), action=v.action,
                                                  rule=v.describe())
    if not v.certain:
        line += " " + _("(uncertain: {why})").format(why="; ".join(v.uncertain[:2]))
    return line


async def _blocks_not_contradicted(ctx: Context, blocks: list[firewall.Verdict]
                                   ) -> tuple[list[firewall.Verdict], list[str]]:
    """The blocking verdicts the connects do not contradict, and a line for each they do.

    The evaluation is checked against what the connect met: a rule "matching" a port that
    opened was misread (an expression half understood), never a reason to fail.
    """
    assert ctx.target is not None
    kept: list[firewall.Verdict] = []
    contradicted: list[str] = []
    for v in blocks:
        if v.flow.protocol == "tcp":
            conn = await shared.tcp_connect(ctx, v.flow.daddr, ctx.target.port)
            if conn.state == "open":
                contradicted.append(f"{_flow_line(v)}, yet the connect went through: this "
                                    "rule was misread")
                continue
        kept.append(v)
    return kept, contradicted


def _blocked(blocks: list[firewall.Verdict], main: Sequence[firewall.Verdict],
             evidence: dict[str, Any]) -> Result:
    """The finding for the flows the output chains stop: a failure, or a warning naming the
    family when the other family's flows pass."""
    first = blocks[0]
    summary = {
        ("drop", True): _("this host's firewall drops {flow}: {rule}"),
        ("drop", False): _("this host's firewall probably drops {flow}: {rule}"),
        ("reject", True): _("this host's firewall rejects {flow}: {rule}"),
        ("reject", False): _("this host's firewall probably rejects {flow}: {rule}"),
    }[(first.action, first.certain)].format(flow=_flow(first.flow), rule=first.describe())
    blocked_addrs = {v.flow.daddr for v in blocks}
    if len(blocked_addrs) < len({v.flow.daddr for v in main}):
        passing = {family.family_of(v.flow.daddr) for v in main
                   if v.flow.daddr not in blocked_addrs}
        bad_fam = family.family_of(first.flow.daddr)
        if bad_fam not in passing:  # the contract's name for the family that fails
            evidence["family"] = family.name(bad_fam)
        return warned(FW_CODE, _("{family}: {problem}; {others} may pass").format(
            family=family.label(bad_fam), problem=summary,
            others=" and ".join(family.label(f) for f in sorted(passing))),
                      _fw_hint(blocks), **evidence)
    return failed(FW_CODE, summary, _fw_hint(blocks), **evidence)


def _unjudged(unknown: firewall.Verdict, evidence: dict[str, Any]) -> Result:
    """A flow the walk could not decide: no finding either way, and why."""
    why = "; ".join(unknown.uncertain[:2]) or _("the evaluation was capped")
    if unknown.capped:
        why = _("the ruleset is too large to walk within the bounds ({steps} rules "
                "visited)").format(steps=unknown.steps)
    return skipped(_("could not judge the rules for {flow}: {why}").format(
        flow=_flow(unknown.flow), why=why), **evidence)


def _nothing_blocks(main: Sequence[firewall.Verdict], pings: Sequence[firewall.Verdict],
                    port: int, addrs: Sequence[str]) -> str:
    """The passing summary: no output rule stops the flows (the pings are only mentioned)."""
    summary = (_("no rule of this host's output chains blocks tcp port {port} to {addresses}")
               if all(v.flow.protocol == "tcp" for v in main) else
               _("no rule of this host's output chains blocks port {port} to {addresses}")
               ).format(port=port, addresses=", ".join(addrs))
    if any(not v.certain for v in main):
        summary += " " + _("(uncertain: some rules were not understood, see the evidence)")
    if pings:
        summary += "; " + _("but {flow}").format(flow=_flow_line(pings[0]))
    return summary


@check("transport.firewall", Layer.TRANSPORT, requires=("dns.resolution",), codes=(FW_CODE,))
async def local_firewall(ctx: Context) -> Result:
    """This host's firewall lets the traffic out.

    Reads this host's own rules (``nft -j list ruleset``; iptables-save for legacy tables)
    and walks the output chains, as netfilter would, for the connect and the ping netcheck
    sends to every address of the target. A drop or reject is quoted with its table, chain
    and handle, and the hint gives the command that removes it or lets the port through.
    Runs beside the connect, not after it; needs CAP_NET_ADMIN to read the rules.
    """
    from netcheck.probes import firewall

    assert ctx.target is not None
    if not firewall.has_cap_net_admin():
        return skipped(firewall_unreadable(firewall.NEEDS_ROOT))
    addrs = (await ctx.addresses())[:8]
    if not addrs:
        return skipped(_("the target has no address: no traffic to judge"))
    fw = await firewall.for_target(ctx)
    if not fw.readable:
        return skipped(_("cannot read the firewall rules: {reason}").format(
            reason=firewall_unreadable(fw.reason)))
    evidence: dict[str, Any] = fw.summary_json()
    evidence["duration_ms"] = round(fw.duration_ms, 1)
    main = [v for v in fw.verdicts if v.flow.protocol != "icmp"]
    blocks, contradicted = await _blocks_not_contradicted(ctx, [v for v in main if v.blocked])
    if contradicted:
        evidence["contradicted"] = contradicted
    if blocks:
        return _blocked(blocks, main, evidence)
    unknown = [v for v in main if v.action == "unknown"]
    if unknown:
        return _unjudged(unknown[0], evidence)
    pings = [v for v in fw.verdicts if v.flow.protocol == "icmp" and v.blocked]
    return passed(_nothing_blocks(main, pings, ctx.target.port, addrs), **evidence)
