"""Repairs of this host's firewall: an accept for exactly the flow (or its replies) placed
right before the rule the diagnosis quoted — by its handle, checked against the live rule —
or before the chain's policy. No rule is ever deleted; the accept carries a comment by which
its undo finds it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from netcheck.fix import actions
from netcheck.fix.model import NO_SUCH, Host, Proofs, Step, check_of
from netcheck.i18n import _

COUNTER = re.compile(r"\bcounter packets \d+ bytes \d+")


def normal_rule(text: str) -> str:
    """A rule's text without its counters' values (they change while it is read)."""
    return " ".join(COUNTER.sub("counter", text).split())


@dataclass
class Block:
    """A rule (or a chain's policy) that blocks flows, and the accepts that let them by."""

    family: str
    table: str
    chain: str
    source: str
    handle: Optional[int]  # None: the chain's policy decides
    position: Optional[int]  # iptables' rule number
    command: str
    quoted: str
    matches: list[str] = field(default_factory=list)  # nft matches, one accept rule each


def _location(v: dict[str, Any]) -> Optional[tuple[str, str, str, Optional[int], str, Optional[
        int], str]]:
    rule = v.get("rule")
    if isinstance(rule, dict):
        return (str(rule.get("family")), str(rule.get("table")), str(rule.get("chain")),
                rule.get("handle"), str(rule.get("source", "nft")), rule.get("position"),
                str(rule.get("rule", "")))
    policy = v.get("policy")
    if isinstance(policy, dict) and isinstance(policy.get("chain"), str):
        parts = policy["chain"].split()
        if len(parts) == 3:
            return (parts[0], parts[1], parts[2], None, "nft", None,
                    f"policy {policy.get('policy')}")
    return None


def _verified(host: Host, loc: tuple[str, str, str, Optional[int], str, Optional[int], str]
              ) -> Optional[str]:
    """Why the rule quoted in the report is not (any more) the live one, or None."""
    family, table, chain, handle, source, _pos, quoted = loc
    if source != "nft" or handle is None:
        return None
    live = host.nft_rules.get((family, table, chain, handle))
    if live is None:
        return _("the rule with handle {handle} in {family} {table} {chain} is gone").format(
            handle=handle, family=family, table=table, chain=chain)
    if normal_rule(live) != normal_rule(quoted):
        return _("handle {handle} in {family} {table} {chain} is now `{live}`, not the rule the "
                 "diagnosis quoted").format(handle=handle, family=family, table=table,
                                           chain=chain, live=live)
    return None


def _accept_steps(blocks: list[Block], host: Host, reason: str) -> list[Step]:
    steps = []
    for n, b in enumerate(blocks, 1):
        for m, match in enumerate(b.matches, 1):
            tag = f"{host.tag}-{n}-{m}"
            if b.source == "nft":
                where = [b.family, b.table, b.chain]
                place = ["insert", "rule", *where, "position", str(b.handle)] \
                    if b.handle is not None else ["add", "rule", *where]
                do = actions.run(["nft", *place, *match.split(), "accept", "comment",
                                  f'"{tag}"'])
                undo = actions.nft_delete_tagged(*where, tag)
            else:
                table = [] if b.table == "filter" else ["-t", b.table]
                spec = [*_iptables_match(match).split(), "-m", "comment", "--comment", tag,
                        "-j", "ACCEPT"]
                at = ["-I", b.chain, str(b.position)] if b.position else ["-A", b.chain]
                do = actions.run([b.command, *table, *at, *spec])
                undo = actions.run([b.command, *table, "-D", b.chain, *spec], tolerate=NO_SUCH)
            where_text = (_("right before it (handle {handle})").format(handle=b.handle)
                          if b.handle is not None else
                          _("right before it (rule {position})").format(position=b.position)
                          if b.position else _("at the end, right before the policy"))
            why = _("{reason}; the accept goes {where}").format(reason=reason, where=where_text)
            steps.append(Step([do], [undo], why,
                              "nft" if b.source == "nft" else b.command,
                              note=_("runtime only: save the ruleset where this host loads it "
                                     "at boot (/etc/nftables.conf, iptables-save) to keep "
                                     "it")))
    return steps


def _flow_match(flow: str, family_name: str, extra: str = "") -> Optional[str]:
    """The nft match of ``tcp port 22 to 198.18.2.10`` / ``udp port 53 to ...``."""
    words = flow.split()
    if len(words) == 5 and words[0] in ("tcp", "udp") and words[1] == "port" and words[3] == "to":
        ip = "ip6" if ":" in words[4] else "ip"
        if family_name == ("ip" if ip == "ip6" else "ip6"):
            return None
        return f"{extra}{ip} daddr {words[4]} {words[0]} dport {words[2]}"
    return None


def _iptables_match(match: str) -> str:
    """An nft match of the kinds this module writes, as iptables options."""
    words = match.split()
    out: list[str] = []
    i = 0
    while i < len(words):
        w = words[i]
        if w in ("ip", "ip6") and words[i + 1] in ("daddr", "saddr"):
            value = words[i + 2].strip("{},")
            out += ["-d" if words[i + 1] == "daddr" else "-s", value]
            i += 3
        elif w in ("tcp", "udp") and words[i + 1] == "dport":
            out += ["-p", w, "--dport", words[i + 2]]
            i += 3
        elif w == "iifname":
            out += ["-i", words[i + 1].strip('"')]
            i += 2
        elif w == "ct" and words[i + 1] == "state":
            out += ["-m", "conntrack", "--ctstate", words[i + 2].upper()]
            i += 3
        else:
            i += 1
    return " ".join(out)


def _group(verdicts: list[dict[str, Any]], host: Host) -> tuple[dict[Any, Block], Optional[str]]:
    groups: dict[Any, Block] = {}
    for v in verdicts:
        if v.get("verdict") not in ("drop", "reject"):
            continue
        loc = _location(v)
        if loc is None:
            continue
        problem = _verified(host, loc)
        if problem:
            return {}, problem
        family, table, chain, handle, source, position, quoted = loc
        if source != "nft" and not source.startswith("iptables"):
            continue
        command = (v.get("rule") or {}).get("command") or (
            "ip6tables" if family == "ip6" else "iptables")
        if source == "iptables-legacy":
            command += "-legacy"
        key = loc[:4]
        groups.setdefault(key, Block(family, table, chain, source, handle, position, command,
                                     quoted))
    return groups, None


def _certain_blocks(check: dict[str, Any], key: str = "flows") -> list[dict[str, Any]]:
    """The verdicts of a firewall check that surely drop or reject (a rule half understood
    is no ground for a change)."""
    return [v for v in (check.get("evidence") or {}).get(key, [])
            if isinstance(v, dict) and v.get("verdict") in ("drop", "reject") and v.get("certain")]


def output_block(doc: dict[str, Any], check: dict[str, Any], host: Host,
                  proofs: Proofs) -> Union[list[Step], str]:
    fw = check_of(doc, "transport.firewall")
    flows = _certain_blocks(fw)
    groups, problem = _group(flows, host)
    if problem:
        return problem
    for v in flows:
        loc = _location(v)
        block = groups.get(loc[:4]) if loc else None
        if block is None:
            continue
        match = _flow_match(str(v.get("flow")), block.family)
        if match and match not in block.matches:
            block.matches.append(match)
    blocks = [b for b in groups.values() if b.matches]
    if not blocks:
        return _("the blocking rule could not be told exactly (see transport.firewall): "
                 "netcheck does not change a firewall on a guess")
    return _accept_steps(blocks, host, str(fw.get("summary") or check.get("summary")))


def input_block(doc: dict[str, Any], check: dict[str, Any], host: Host,
                 proofs: Proofs) -> Union[list[Step], str]:
    dropped = _certain_blocks(check, "dropped")
    groups, problem = _group(dropped, host)
    if problem:
        return problem
    families: dict[Any, set[int]] = {}
    for v in dropped:
        loc = _location(v)
        words = str(v.get("flow", "")).split(" from ")
        if loc is not None and len(words) == 2:
            families.setdefault(loc[:4], set()).add(6 if ":" in words[1].split()[0] else 4)
    ifname = (doc.get("host") or {}).get("egress_interface")
    iif = f'iifname "{ifname}" ' if isinstance(ifname, str) else ""
    for key, block in groups.items():
        fams = families.get(key, set())
        # The replies to what this host opens, on the path's interface: not one peer at a
        # time (the target's replies are dropped too, only not yet seen while the name
        # server's were), and nothing new can come in through it.
        if fams:
            block.matches.append(f"{iif}ct state established,related")
        if 6 in fams and block.family in ("inet", "ip6"):
            # neighbour discovery is not tracked: let it in on this link only
            block.matches.append(f"{iif}icmpv6 type {{ nd-neighbor-solicit, "
                                 "nd-neighbor-advert }")
    blocks = [b for b in groups.values() if b.matches and b.source == "nft"]
    if not blocks:
        return _("the rule that drops the replies could not be told exactly (see "
                 "transport.input_firewall): netcheck does not change a firewall on a guess")
    return _accept_steps(blocks, host, str(check.get("summary")))


def server_block(doc: dict[str, Any], check: dict[str, Any], host: Host,
                  proofs: Proofs) -> Union[list[Step], str]:
    # transport.local_handshake quotes no flows: the inbound check's verdicts hold the rule
    flows = _certain_blocks(check) or _certain_blocks(
        check_of(doc, "transport.inbound_firewall"))
    groups, problem = _group(flows, host)
    if problem:
        return problem
    port, proto, client = host.server.get("port"), host.server.get("proto", "tcp"), \
        host.server.get("client")
    if not isinstance(port, int):
        return _("the port is not known")
    for block in groups.values():
        if block.source != "nft":
            continue
        if isinstance(client, str):
            ip = "ip6" if ":" in client else "ip"
            if block.family in ("inet", ip):
                block.matches.append(f"{ip} saddr {client} {proto} dport {port}")
        else:
            block.matches.append(f"{proto} dport {port}")
        if check.get("id") == "transport.local_handshake":
            block.matches = [f'iifname "lo" {proto} dport {port}']
    blocks = [b for b in groups.values() if b.matches]
    if not blocks:
        return _("the rule that blocks the port is not an nft rule netcheck can place an "
                 "accept before (see transport.inbound_firewall)")
    return _accept_steps(blocks, host, str(check.get("summary")))
