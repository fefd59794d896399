"""Layer 4: does the port answer, and does this host's own firewall let it?

Declared in the order the packet meets them: this host's output chain first (its finding is
the root cause when it drops or rejects the traffic: a silent SYN is then no remote
firewall's doing), then the connect, the connections already open, and with ``--scan``
nmap's identification of the service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

from netcheck import hints, i18n
from netcheck.hints import server_side_command
from netcheck.i18n import N_, _, ngettext
from netcheck.lazy import lazy
from netcheck.model import Hint, Layer, Result, Status, failed, passed, skipped, warned
from netcheck.registry import check

if TYPE_CHECKING:
    from netcheck import family
    from netcheck.probes import firewall, nmapscan, shared, sockets
    from netcheck.probes.tcp import TcpResult
    from netcheck.runner import Context
    from netcheck.target import Target
else:  # imported at first use: `netcheck checks` lists the checks without the probes
    family, shared = lazy("netcheck.family"), lazy("netcheck.probes.shared")

FW_CODE = "FW_LOCAL_OUTPUT_BLOCK"
# expect = "closed": a port that must stay shut accepts connections.
OPEN_UNEXPECTED = "TCP_OPEN_UNEXPECTED"
# What "this port takes no connections from here" looks like: what expect = "closed" wants.
CLOSED_CODES = ("TCP_REFUSED", "TCP_FILTERED", "TCP_ADMIN_PROHIBITED", FW_CODE)


def _flow(flow: firewall.Flow) -> str:
    """``Flow.describe()`` in the reader's language (the same words in English)."""
    if flow.protocol == "icmp":
        return _("{family} ping to {address}").format(
            family="IPv6" if flow.family == 6 else "IPv4", address=flow.daddr)
    return _("{protocol} port {port} to {address}").format(
        protocol=flow.protocol, port=flow.dport, address=flow.daddr)


def firewall_unreadable(reason: Optional[str], english: bool = False) -> str:
    """Why the rules could not be read, in the reader's language (``english``: as the JSON
    evidence keeps it): the firewall probe's reason code, or the tools' own words."""
    from netcheck.probes import firewall

    words = {firewall.NEEDS_ROOT: N_("needs root (CAP_NET_ADMIN) to read the firewall rules"),
             firewall.NO_TOOL: N_("neither nft nor iptables-save is installed"),
             firewall.NO_TARGET: N_("no target")}
    text = words.get(reason or "")
    if text is None:
        return reason or ""
    return text if english else _(text)


def remedy_commands(v: firewall.Verdict) -> list[str]:
    """The commands that remove the blocking rule or let the flow through before it; for a rule
    iptables-nft made, also its deletion through nft, said to be the same rule."""
    from netcheck.probes import firewall

    commands = firewall.remedy_commands(v)
    same = firewall.nft_delete_command(v)
    if same is not None:
        commands.append(same + "   # " + _("the same rule, through nft"))
    return commands


def _own_addresses(ctx: Context) -> set[str]:
    """This host's addresses: an ICMP error "from" one of them was made by this host."""
    return {a.address.split("%")[0] for a in ctx.facts.addresses if getattr(a, "address", None)}


# -- transport.firewall ----------------------------------------------------------------------

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
    port = ctx.target.port
    main = [v for v in fw.verdicts if v.flow.protocol != "icmp"]
    blocks = [v for v in main if v.blocked]
    # The evaluation is checked against what the connect met: a rule "matching" a port that
    # opened was misread (an expression half understood), never a reason to fail.
    contradicted = []
    for v in list(blocks):
        if v.flow.protocol != "tcp":
            continue
        conn = await shared.tcp_connect(ctx, v.flow.daddr, port)
        if conn.state == "open":
            blocks.remove(v)
            contradicted.append(f"{_flow_line(v)}, yet the connect went through: this rule "
                                "was misread")
    if contradicted:
        evidence["contradicted"] = contradicted
    pings = [v for v in fw.verdicts if v.flow.protocol == "icmp" and v.blocked]
    if blocks:
        blocked_addrs = {v.flow.daddr for v in blocks}
        first = blocks[0]
        summary = {
            ("drop", True): _("this host's firewall drops {flow}: {rule}"),
            ("drop", False): _("this host's firewall probably drops {flow}: {rule}"),
            ("reject", True): _("this host's firewall rejects {flow}: {rule}"),
            ("reject", False): _("this host's firewall probably rejects {flow}: {rule}"),
        }[(first.action, first.certain)].format(flow=_flow(first.flow), rule=first.describe())
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
    unknown = [v for v in main if v.action == "unknown"]
    if unknown:
        why = "; ".join(unknown[0].uncertain[:2]) or _("the evaluation was capped")
        if unknown[0].capped:
            why = _("the ruleset is too large to walk within the bounds ({steps} rules "
                    "visited)").format(steps=unknown[0].steps)
        return skipped(_("could not judge the rules for {flow}: {why}").format(
            flow=_flow(unknown[0].flow), why=why), **evidence)
    summary = (_("no rule of this host's output chains blocks tcp port {port} to {addresses}")
               if all(v.flow.protocol == "tcp" for v in main) else
               _("no rule of this host's output chains blocks port {port} to {addresses}")
               ).format(port=port, addresses=", ".join(addrs))
    if any(not v.certain for v in main):
        summary += " " + _("(uncertain: some rules were not understood, see the evidence)")
    if pings:
        summary += "; " + _("but {flow}").format(flow=_flow_line(pings[0]))
    return passed(summary, **evidence)


# -- transport.input_firewall ---------------------------------------------------------------

INPUT_CODE = "FW_LOCAL_INPUT_BLOCK"


def _peer(role: str, address: str) -> str:
    return {"gateway": _("the gateway {address}"),
            "name server": _("the name server {server}"),
            "target": _("the target {address}")}[role].format(address=address, server=address)


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
    return (failed if breaks else warned)(INPUT_CODE, summary, Hint(text, commands), **evidence)


# -- transport.tcp ---------------------------------------------------------------------------

def _local_block(r: TcpResult, own: set[str], eperm_pings: set[str],
                 fw: Optional[firewall.LocalFirewall]) -> Optional[str]:
    """Why a failed connect was stopped by this host itself (None: it was not, as far as known).

    EPERM/EACCES from connect(), an ICMP error whose sender is this host's own address (its
    output chain's ``reject``), a rule of its output chains that matches, or a silent SYN to
    an address this host even refuses to ping (EPERM).
    """
    if r.handshake:
        return None
    if r.state == "local":
        return _("connect() got {errno}").format(errno=r.errno)
    verdict = fw.blocks(r.address, "tcp") if fw is not None else None
    if verdict is not None and (r.state in ("timeout", "error")
                                or verdict.action == "reject"):
        return _("{action} by {rule}").format(action=verdict.action, rule=verdict.describe())
    sender = family.bare(r.icmp_from or "")
    if r.state == "icmp" and sender in own and sender != r.address:
        return _("this host itself ({sender}) answered '{icmp}': an output rule rejects "
                 "it").format(sender=sender, icmp=r.icmp_name)
    if r.state == "timeout" and r.address in eperm_pings:
        return _("even its pings are refused with EPERM")
    return None


def _code(r: TcpResult, local_reason: Optional[str]) -> str:
    """The problem code one failed connect amounts to.

    The network check already established that the host answers, so any ICMP error to a
    SYN is a firewall's reject (port unreachable, prohibited, even "host unreachable").
    Anything this host stopped itself is its own firewall's doing, not the remote one's.
    """
    if local_reason is not None:
        return FW_CODE
    if r.state == "refused":
        return "TCP_REFUSED"
    if r.state == "icmp":
        return "TCP_ADMIN_PROHIBITED"
    return "TCP_FILTERED"


def _icmp_sender(r: TcpResult) -> str:
    """Who sent the ICMP error, in words: the target itself or a router on the way."""
    sender = family.bare(r.icmp_from or "")
    if not sender:  # the error was not queued: "No route to host" came from some router
        return _("router")
    if sender == family.bare(r.address):
        return _("{address} itself").format(address=sender)
    return _("{router} (a router or firewall on the way)").format(router=sender)


def _hint(code: str, r: TcpResult, local_reason: Optional[str],
          fw: Optional[firewall.LocalFirewall]) -> Hint:
    where = {"address": r.address, "port": r.port}
    if code == "TCP_REFUSED":
        return Hint(_("The host answers but nothing listens on {address} port {port}: start "
                      "the service, or use the right port. On the server:").format(**where),
                    [f"ss -tlnp 'sport = :{r.port}'   # " + _("on the server"),
                     server_side_command(r.port),
                     f"nmap -sT -p {r.port} {r.address}   # " + _("from here")])
    if code == "TCP_ADMIN_PROHIBITED":
        sender = family.bare(r.icmp_from or "")
        if sender and sender != family.bare(r.address):
            return Hint(_("The router or firewall at {router} rejects {address} port {port} "
                          "(it sent '{icmp}'): the SYN never reaches the server. Open the port "
                          "on that firewall. Find the hop, then on that host:").format(
                              router=sender, icmp=r.icmp_name, **where),
                        [hints.trace(r.address, r.port),
                         "nft list ruleset   # " + _("on {router}").format(router=sender),
                         "iptables -S FORWARD   # " + _("on {router}").format(router=sender),
                         f"nping --tcp -p {r.port} {r.address}"])
        return Hint(_("A firewall rejects {address} port {port} ({router} sent '{icmp}'). Open "
                      "the port on the server's or the router's firewall. On that "
                      "host:").format(router=r.icmp_from or _("a router"), icmp=r.icmp_name,
                                      **where),
                    ["nft list ruleset", "iptables -S", f"nping --tcp -p {r.port} {r.address}"])
    if code == FW_CODE:
        blocks = fw.blocking(r.address, "tcp") if fw is not None else []
        if blocks:
            return _fw_hint(blocks)
        text = _("This host's own firewall blocks {address} port {port} ({how}): find the "
                 "output rule.").format(how=local_reason or _("blocked locally"), **where)
        if fw is None or not fw.readable:
            text += " " + _("Run netcheck as root to see the exact rule.")
        return Hint(text, ["nft -a list ruleset", "iptables -S OUTPUT", "ip6tables -S OUTPUT"])
    text = _("The host answers ping but its SYNs to {address} port {port} get no answer at "
             "all: a firewall drops them (on the server or a router on the way).").format(
                 **where)
    if fw is None or not fw.readable:
        text += " " + _("This host's own output rules could not be read (needs root): if it "
                        "filters outgoing traffic, `nft list ruleset` as root shows it.")
    return Hint(text, [f"nping --tcp -p {r.port} {r.address}",
                       f"nmap -Pn -sT -p {r.port} {r.address}",
                       f"tcpdump -ni any host {r.address} and port {r.port}   # "
                       + _("on the server")])


def describe_connect(r: TcpResult, local_reason: Optional[str] = None) -> str:
    """What one connect met, in the reader's language: what was sent, what came back."""
    where = {"address": r.address, "port": r.port}
    if r.state == "open":
        text = _("{address} port {port} open ({ms} ms)").format(ms=f"{r.rtt_ms:.1f}", **where)
        if r.after == "closed":
            text += "; " + _("the server closed it at once without a word")
        return text
    if r.state == "reset":
        return _("{address} port {port}: handshake completed ({ms} ms), then the server reset "
                 "the connection before sending a byte").format(ms=f"{r.rtt_ms or 0:.1f}",
                                                               **where)
    if local_reason is not None:
        return _("{address} port {port}: blocked on this host ({reason})").format(
            reason=local_reason, **where)
    if r.state == "refused":
        return _("{address} port {port} refused (RST: nothing listens)").format(**where)
    if r.state == "icmp":
        return _("{address} port {port}: {router} sent '{icmp}'").format(
            router=_icmp_sender(r), icmp=r.icmp_name or r.errno, **where)
    if r.state == "noroute":
        return _("{address} port {port}: no route ({errno})").format(errno=r.errno, **where)
    if r.state == "error":
        return _("{address} port {port}: connect failed ({errno})").format(errno=r.errno,
                                                                            **where)
    text = _("{address} port {port}: no answer to SYN").format(**where)
    if r.syns and r.syns > 1:
        text += " " + ngettext("({n} SYN sent)", "({n} SYNs sent)", r.syns).format(n=r.syns)
    return text


@dataclass(frozen=True)
class Judgement:
    """What the connects to the target amount to (a pure function's answer).

    ``subject``: the connect the finding is about (its hint is built from it); ``family``:
    the contract's ``"ipv4"``/``"ipv6"`` when that family fails while the other works.
    """

    status: Status
    summary: str
    code: Optional[str] = None
    subject: Optional[TcpResult] = None
    family: Optional[str] = None


def judge_connects(results: Sequence[TcpResult],
                   local: Optional[Mapping[str, Optional[str]]] = None) -> Judgement:
    """Judge the connects to every address of the target: facts in, finding out.

    ``local``: address -> why this host stopped that connect itself (None: it did not).
    A completed handshake passes the rung whatever came after it (a reset before any byte
    is the application's finding, layer 7); one family failing while the other completes
    handshakes is a warning naming the family; otherwise the failure that explains the most
    (a local block, an ICMP reject, a refusal, then silence) is the finding.
    """
    why = dict(local or {})
    reason = {r.address: why.get(r.address) for r in results}
    through = [r for r in results if r.handshake]
    if through:
        shown = next((r for r in through if r.state == "open"), through[0])
        failing = [r for r in results if not r.handshake]
        good = {family.family_of(r.address) for r in through}
        bad_fams = {family.family_of(r.address) for r in failing} - good
        if not bad_fams:
            return Judgement(Status.PASS, describe_connect(shown))
        bad = sorted((r for r in failing if family.family_of(r.address) in bad_fams),
                     key=lambda r: _precedence(r, reason[r.address]))[0]
        fam = family.family_of(bad.address)
        summary = _("{family} fails ({problem}) while {working} works").format(
            family=family.label(fam), problem=describe_connect(bad, reason[bad.address]),
            working=" and ".join(family.label(f) for f in sorted(good)))
        return Judgement(Status.WARN, summary, _code(bad, reason[bad.address]), bad,
                         family.name(fam))
    if not results:
        return Judgement(Status.SKIP, _("the target has no address to connect to"))
    ranked = sorted(results, key=lambda r: _precedence(r, reason[r.address]))
    first = ranked[0]
    code = _code(first, reason[first.address])
    summary = describe_connect(first, reason[first.address])
    # Both families failing, each its own way: name the other one too.
    other = next((r for r in ranked
                  if family.family_of(r.address) != family.family_of(first.address)), None)
    if other is not None and _code(other, reason[other.address]) != code:
        summary += (f"; {family.label(family.family_of(other.address))}: "
                    f"{describe_connect(other, reason[other.address])}")
    return Judgement(Status.FAIL, summary, code, first)


@check("transport.tcp", Layer.TRANSPORT, requires=("network.target",), proves_flow=True,
       codes=(*CLOSED_CODES, OPEN_UNEXPECTED))
async def tcp_connect(ctx: Context) -> Result:
    """Port accepts TCP connections.

    A connect to every resolved address, each told apart: SYN-ACK (open), RST to the SYN
    (nothing listens), an ICMP error and who sent it (the target or a router on the way),
    or silence (the SYNs sent are counted). An open connection is watched for a few round
    trips without sending anything: the server speaks first, closes, resets before any byte
    (a TCP-wrappers or fail2ban-style block: the application rung's finding), or waits.
    What this host stops itself (EPERM, a reject from its own address, a rule of its output
    chains) is its own firewall's doing; one address family failing while the other works
    is a warning naming the family. A port expected closed (batch profile, exporter module:
    ``expect = "closed"``) passes when it refuses, drops or rejects the connection and fails
    when it accepts it.
    """
    from netcheck.probes import firewall

    assert ctx.target is not None
    every = await ctx.addresses()
    if not every:
        return skipped(_("the target has no address to connect to"))
    from netcheck.checks.network import families_judged_below

    network = ctx.result("network.target")
    skip_fams = set(network.evidence.get("unreachable_families", [])) if network else set()
    below = await families_judged_below(ctx)
    # A family the network check already found unreachable is its finding, not ours, and so
    # is one whose address or route failed; its connects are still shown (every resolved
    # address is tried once, shared with it).
    addrs = [a for a in family.used(ctx.facts, every)
             if family.label(family.family_of(a)) not in skip_fams
             and family.family_of(a) not in below] or every
    results = await shared.tcp_all(ctx, every, ctx.target.port)
    judged = [r for r in results if r.address in addrs]
    # Pings only tell something about a connect that got no answer (this host refusing to
    # send them is the sign of its own firewall); a sweep of open ports sends none.
    silent = [r.address for r in judged if r.state == "timeout"]
    pings = await shared.ping_all(ctx, silent) if silent else []
    eperm = {p.address for p in pings
             if p.state == "send_error" and p.error in ("EPERM", "EACCES")}
    fw: Optional[firewall.LocalFirewall] = None
    if any(not r.handshake for r in judged):
        # Already read by transport.firewall in parallel: only the wait for it is shared.
        fw = await firewall.for_target(ctx)
    own = _own_addresses(ctx)
    local = {r.address: _local_block(r, own, eperm, fw) for r in judged}
    verdict = judge_connects(judged, local)
    evidence: dict[str, Any] = {
        "port": ctx.target.port, "connects": [r.to_json() for r in results],
        "working": [r.address for r in results if r.handshake],
        "failing": [r.address for r in results if not r.handshake]}
    if fw is not None and not fw.readable:
        evidence["local_firewall"] = firewall_unreadable(fw.reason, english=True)
    through = [r for r in judged if r.handshake]
    if through:
        evidence["rtt_ms"] = round(min(r.rtt_ms or 0 for r in through), 3)
    expect = ctx.options.expect
    if verdict.status is Status.PASS:
        return judge_expectation(passed(verdict.summary, **evidence), expect, ctx.target)
    bad = verdict.subject
    assert bad is not None and verdict.code is not None
    hint = _hint(verdict.code, bad, local[bad.address], fw)
    if verdict.status is Status.WARN:
        evidence["family"] = verdict.family
        fam = family.label(family.family_of(bad.address))
        return judge_expectation(warned(verdict.code, verdict.summary, Hint(
            _("Clients that prefer {family} will fail or wait.").format(family=fam) + " "
            + hint.text, hint.commands), **evidence), expect, ctx.target)
    return judge_expectation(failed(verdict.code, verdict.summary, hint, **evidence), expect,
                             ctx.target)


def judge_expectation(result: Result, expect: str, target: Target) -> Result:
    """The connects' result judged against what the port is expected to be.

    ``expect = "closed"`` (a port that must stay shut): a refused, dropped or rejected
    connect (CLOSED_CODES) passes, with ``evidence.observed`` naming what it met; one that
    got through (on every family or one) fails with TCP_OPEN_UNEXPECTED and a hint to shut
    it. What was measured stays in ``Result.measured``: the runner skips the checks above a
    port shut as expected (nothing to look at, nothing failed) and lets them look at an open
    one. ``"open"``, or anything else met (no address), is the result as it is.
    """
    if expect != "closed":
        return result
    port, host = target.port, target.host
    evidence = {**result.evidence, "expected": "closed"}
    if result.status in (Status.PASS, Status.WARN):
        return Result(Status.FAIL, _("{found}, but port {port} should be closed").format(
            found=result.summary, port=port), code=OPEN_UNEXPECTED, evidence=evidence,
            hint=Hint(_("Something listens on {host} port {port}, which should be closed: "
                        "stop the service or block the port on that host.").format(
                            host=host, port=port),
                      [f"ss -tlnp 'sport = :{port}'   # " + _("on {host}").format(host=host),
                       "nft list ruleset",
                       f"nmap -sT -p {port} {host}   # " + _("from here")]),
            measured=result.status)
    if result.status is Status.FAIL and result.code in CLOSED_CODES:
        evidence["observed"] = result.code
        return Result(Status.PASS, _("closed, as expected: {found}").format(
            found=result.summary), evidence=evidence, measured=Status.FAIL)
    return result


def _precedence(r: TcpResult, local_reason: Optional[str] = None) -> int:
    """Which failure explains the most: a local block, a reject, a refusal, then silence."""
    if local_reason is not None:
        return -1
    order = ["local", "icmp", "refused", "noroute", "timeout", "error"]
    return order.index(r.state) if r.state in order else len(order)


# -- transport.sockets -----------------------------------------------------------------------

def _owners_error(snap: sockets.Snapshot) -> str:
    """Why the sockets' owners are not named (``sockets.Snapshot.error``), in words."""
    from netcheck.probes import sockets

    if snap.error == sockets.OWNERS_UNREADABLE:
        return _("cannot map sockets to processes: {error}").format(error=snap.error_detail)
    return _("install psutil to name the processes that own these sockets")


@check("transport.sockets", Layer.TRANSPORT)
async def current_sockets(ctx: Context) -> Result:
    """Connections this host has to the target now.

    What ``ss -tunap`` shows for the target's addresses: state, local and remote address,
    and the owning process. The socket tables are copied when the run starts, before
    netcheck's own probes; without root, other users' processes are not named.
    """
    from netcheck.probes import sockets

    # Copied now, before this run's probes open sockets of their own (no parsing yet).
    raw = ctx.value_shared(("sockets", "tables"), sockets.read_tables)
    assert ctx.target is not None
    addrs = await ctx.addresses()
    if raw is None:
        return skipped(_("the kernel's socket tables (/proc/net/tcp) are not readable here"))
    if not addrs:
        return skipped(_("the target has no address: no connection to look for"))
    found = sockets.towards(raw, addrs)
    # psutil (slow: every process's descriptors) only when there is something to name.
    # Owners come from psutil (slow: every process's descriptors); a socket in TIME_WAIT
    # belongs to no process any more, so only live ones make it worth asking.
    live = [s for s in found if s.state != "TIME_WAIT"]
    snap = await ctx.blocking(sockets.with_owners, found) if live else sockets.Snapshot()
    on_port = [s for s in found if s.peer_port == ctx.target.port]
    live = [s for s in found if s.state not in ("TIME_WAIT", "CLOSE")]
    evidence: dict[str, Any] = {
        "sockets": [s.to_json() for s in found[:sockets.MAX_LISTED]],
        "total": len(found), "on_port": len(on_port),
        "owners_visible": snap.owners_visible,
    }
    if len(found) > sockets.MAX_LISTED:
        evidence["truncated"] = True
    if snap.error:
        with i18n.language("en"):  # evidence is never translated (netcheck.i18n)
            evidence["error"] = _owners_error(snap)
    if not snap.owners_visible:
        evidence["note"] = ("without root, the processes of other users are not visible "
                            "(their sockets are listed without pid)")
    if not found:
        return passed(_("no connection to {addresses} right now").format(
            addresses=", ".join(addrs[:2])), **evidence)
    head = (live or found)[0]
    summary = _("{open} open, {closing} closing: {socket}").format(
        open=len(live), closing=len(found) - len(live), socket=head.describe())
    if len(found) > 1:
        summary += " " + _("(+{n} more)").format(n=len(found) - 1)
    return passed(summary, **evidence)


# -- transport.service ----------------------------------------------------------------------

def _scan_asked(ctx: Context) -> Optional[str]:
    return None if ctx.options.scan else _("not asked (use --scan)")


def _scan_error(result: nmapscan.ServiceScan) -> str:
    """Why nmap gave no port line (``nmapscan.ServiceScan.error``), in words."""
    from netcheck.probes import nmapscan

    code, detail = result.error, result.error_detail
    if code == nmapscan.NMAP_MISSING:
        return _("nmap is not installed")
    if code == nmapscan.PYTHON_NMAP_MISSING:
        return _("python-nmap is not installed")
    if code == nmapscan.TIMED_OUT:
        return _("nmap did not finish within {seconds} s").format(
            seconds=f"{result.time_limit_s or 0:.1f}")
    if code == nmapscan.NMAP_FAILED:
        return _("nmap failed: {error}").format(error=detail)
    if code == nmapscan.NO_RESULT:
        host = result.address.split("%")[0]
        if detail is None:
            return _("nmap reported no result for {host}").format(host=host)
        return _("nmap reported no result for {host}: {errors}").format(host=host, errors=detail)
    return _("nmap gave no state for the port (host timeout?)")


@check("transport.service", Layer.TRANSPORT, requires=("transport.tcp",), applies=_scan_asked)
async def service_scan(ctx: Context) -> Result:
    """Service on the port identified by nmap.

    With ``--scan``: real nmap service/version detection on the open port (``-sV
    --version-light``, a SYN scan as root, a connect scan otherwise), its product, version
    and extra information shown as ``nmap -sS -A`` prints them. Bounded by the deadline.
    """
    from netcheck.probes import nmapscan

    assert ctx.target is not None
    if nmapscan.nmap_path() is None:
        return skipped(_("install nmap (Debian: apt install nmap) to identify the service"))
    # The run's own connects (shared, typed): no new probe, no reading of another's evidence.
    connects = await shared.tcp_all(ctx, await ctx.addresses(), ctx.target.port)
    opened = [r.address for r in connects if r.state == "open"]
    if not opened:
        return skipped(_("the port is not open: nothing to identify"))
    left = ctx.time_left() - 0.5
    if left < 1.5:
        return skipped(_("not enough time left before the deadline for nmap (use --deadline)"))
    result = await ctx.blocking(nmapscan.scan, opened[0], ctx.target.port,
                                ctx.facts.privileged, left)
    if result.error:
        with i18n.language("en"):  # evidence is never translated (netcheck.i18n)
            english = _scan_error(result)
        return skipped(_scan_error(result), **result.to_json(english))
    evidence = result.to_json()
    return passed(f"nmap: {' '.join(result.line.split())}", **evidence)
