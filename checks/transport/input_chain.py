"""``transport.input_firewall``: this host's input chains let the replies in."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from netcheck.checks.transport.common import firewall_unreadable, remedy_commands

from netcheck.i18n import _
from netcheck.lazy import lazy
from netcheck.model import Hint, Layer, Result, failed, passed, skipped, warned
from netcheck.registry import check

if TYPE_CHECKING:
    from netcheck import family
    from netcheck.probes import firewall, replies
    from netcheck.runner import Context
else:  # imported at first use: `netcheck checks` lists the checks without the probes
    family = lazy("netcheck.family")

INPUT_CODE = "FW_LOCAL_INPUT_BLOCK"


def _peer(role: str, address: str) -> str:
    return {"gateway": _("the gateway {address}"),
            "name server": _("the name server {server}"),
            "target": _("the target {address}")}[role].format(address=address, server=address)


def _input_hint(finding: replies.InputFinding, verdict: firewall.Verdict) -> Hint:
    """Let the replies in: ``ct state established,related accept`` first (and neighbour
    discovery for IPv6), with the commands for the chain that drops them."""
    text = _("This host's own input chain drops the replies to the connections it opens, so "
             "everything looks silent although the packets go out and the network answers "
             "(ARP still works: it is not IP). A chain with policy drop needs `ct state "
             "established,related accept` before anything else.")
    commands = remedy_commands(verdict)
    chain = verdict.rule.chain if verdict.rule else (verdict.chain.name if verdict.chain else "")
    table = verdict.rule or verdict.chain
    if any(not e.answered and e.family == family.V6 for e in finding.expected):
        text += " " + _("IPv6 also needs neighbour discovery, which conntrack does not track: "
                        "{rule}.").format(
            rule="`icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept`")
        if table is not None and table.source == "nft" and table.family in ("inet", "ip6"):
            commands.append(f"nft insert rule {table.family} {table.table} {chain} icmpv6 type "
                            "{ nd-neighbor-solicit, nd-neighbor-advert } accept")
    if table is not None and table.source == "nft":
        commands.append(f"nft -a list chain {table.family} {table.table} {chain}")
    return Hint(text, commands)


# No requires: when this host drops every reply, the gateway, the name servers and the
# target all look silent, and the runner must still hear this check (it outranks them).
@check("transport.input_firewall", Layer.TRANSPORT, codes=(INPUT_CODE,))
async def input_firewall(ctx: Context) -> Result:
    """This host's firewall lets the replies in.

    For each probe of this run that got no answer (the gateway's ping, a name server, the
    target's SYN or ping), the reply it should have had is walked through this host's input
    chains as netfilter sees it: ``ct state established``, a SYN-ACK or an echo reply,
    arriving on the egress interface. A chain with ``policy drop`` and no ``ct state
    established,related accept`` drops them all while ARP still works. Replies that came
    back prove the chain lets them in. Needs root (CAP_NET_ADMIN) to read the rules.
    """
    from netcheck.probes import firewall, replies

    if not firewall.has_cap_net_admin():
        return skipped(firewall_unreadable(firewall.NEEDS_ROOT))
    finding = await replies.dropped_replies(ctx)
    if not finding.readable:
        return skipped(_("cannot read the firewall rules: {reason}").format(
            reason=firewall_unreadable(finding.reason)))
    evidence: dict[str, Any] = finding.to_json()
    judged = replies.judge_input(finding)
    if judged is None:
        silent = [e for e in finding.expected if not e.answered]
        if not silent:
            return passed(_("every reply this run waited for came in"), **evidence)
        peers = dict.fromkeys(_peer(e.role, e.remote) for e in silent)
        return passed(_("no rule of this host's input chains drops the replies that did not "
                        "come ({peers})").format(peers=", ".join(list(peers)[:3])), **evidence)
    breaks, expected, verdict = judged
    if not breaks:
        evidence["family"] = family.name(expected.family)
    # A rule half understood is no proof: said as "probably", and only a warning.
    summary = (_("this host's firewall drops the replies from {peer} on their way in: {rule}")
               if verdict.certain else
               _("this host's firewall probably drops the replies from {peer} on their way in: "
                 "{rule}")).format(peer=_peer(expected.role, expected.remote),
                                   rule=verdict.describe())
    breaks = breaks and verdict.certain
    return (failed if breaks else warned)(INPUT_CODE, summary, _input_hint(finding, verdict),
                                          **evidence)
