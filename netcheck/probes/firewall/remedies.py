"""Remedies: the exact commands that remove a blocking rule, or let the flow through
before it, in the syntax of the tool that made the rule (nft, iptables, ip6tables...).

Commands only: what they mean is said by the checks that show them.
"""

from __future__ import annotations

from typing import Optional

from netcheck.probes.firewall.model import Flow, Verdict


def nft_accept_match(flow: Flow) -> str:
    """The nft match that lets exactly this flow through.

    For a reply, what every input chain needs: the replies of connections this host opened.
    """
    if flow.icmp_type == "nd-neighbor-advert":
        return "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert }"
    if flow.reply:
        return "ct state established,related"
    ip = "ip" if flow.family == 4 else "ip6"
    if flow.protocol == "icmp":
        icmp = "icmp" if flow.family == 4 else "icmpv6"
        return f"{ip} daddr {flow.daddr} {icmp} type echo-request"
    return f"{ip} daddr {flow.daddr} {flow.protocol} dport {flow.dport}"


def iptables_accept_match(flow: Flow) -> str:
    """The iptables options that select exactly this flow (a reply: established ones)."""
    if flow.icmp_type == "nd-neighbor-advert":
        return "-p ipv6-icmp --icmpv6-type neighbour-advertisement"
    if flow.reply:
        return "-m conntrack --ctstate ESTABLISHED,RELATED"
    if flow.protocol == "icmp":
        if flow.family == 4:
            return f"-d {flow.daddr} -p icmp --icmp-type echo-request"
        return f"-d {flow.daddr} -p ipv6-icmp --icmpv6-type echo-request"
    return f"-d {flow.daddr} -p {flow.protocol} --dport {flow.dport}"


def nft_delete_command(v: Verdict) -> Optional[str]:
    """For a rule iptables-nft made: the command that deletes the same rule through nft."""
    r = v.rule
    if r is None or r.source != "iptables-nft" or r.handle is None:
        return None
    return f"nft delete rule {r.family} {r.table} {r.chain} handle {r.handle}"


def remedy_commands(v: Verdict) -> list[str]:
    """Exact commands that remove the blocking rule, or let this flow through before it."""
    flow = v.flow
    if v.rule is not None:
        r = v.rule
        if r.source == "nft":
            where = f"{r.family} {r.table} {r.chain}"
            if r.handle is None:
                return [f"nft -a list chain {where}"]
            return [f"nft delete rule {where} handle {r.handle}",
                    f"nft insert rule {where} position {r.handle} {nft_accept_match(flow)} accept"]
        table = "" if r.table == "filter" else f"-t {r.table} "
        cmds = []
        if r.spec is not None:
            cmds.append(f"{r.command} {table}-D {r.chain} {r.spec}")
        cmds.append(f"{r.command} {table}-I {r.chain} {r.position} "
                    f"{iptables_accept_match(flow)} -j ACCEPT")
        return cmds
    if v.by_policy and v.chain is not None:
        c = v.chain
        if c.source == "nft":
            return [f"nft add rule {c.family} {c.table} {c.name} {nft_accept_match(flow)} accept"]
        table = "" if c.table == "filter" else f"-t {c.table} "
        return [f"{c.command} {table}-A {c.name} {iptables_accept_match(flow)} -j ACCEPT"]
    return []
