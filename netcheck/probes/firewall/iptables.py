"""``iptables-save`` listings into the rule model: each rule translated into nft's JSON
expressions; an option netcheck does not know becomes an ``xt`` match, never a guess."""

from __future__ import annotations

import ipaddress
import shlex
from typing import Any, Optional, Union

from netcheck.probes.firewall.model import Chain, Rule

# What iptables' built-in chains hook into, and at which nf_tables priority.
IPT_TABLE_PRIO = {"raw": -300, "mangle": -150, "nat": -100, "filter": 0, "security": 50}
IPT_HOOKS = {"PREROUTING": "prerouting", "INPUT": "input", "FORWARD": "forward",
             "OUTPUT": "output", "POSTROUTING": "postrouting"}
IPT_NAT_PRIO = {"PREROUTING": -100, "OUTPUT": -100, "INPUT": 100, "POSTROUTING": 100}
REJECT_WITH = {
    "icmp-net-unreachable": ("icmp", "net-unreachable"),
    "icmp-host-unreachable": ("icmp", "host-unreachable"),
    "icmp-port-unreachable": ("icmp", "port-unreachable"),
    "icmp-proto-unreachable": ("icmp", "prot-unreachable"),
    "icmp-net-prohibited": ("icmp", "net-prohibited"),
    "icmp-host-prohibited": ("icmp", "host-prohibited"),
    "icmp-admin-prohibited": ("icmp", "admin-prohibited"),
    "icmp6-no-route": ("icmpv6", "no-route"),
    "icmp6-adm-prohibited": ("icmpv6", "admin-prohibited"),
    "icmp6-addr-unreachable": ("icmpv6", "addr-unreachable"),
    "icmp6-port-unreachable": ("icmpv6", "port-unreachable"),
    "tcp-reset": ("tcp reset", None),
}
PASSIVE_TARGETS = ("LOG", "NFLOG", "ULOG", "MARK", "CONNMARK", "TCPMSS", "CT", "NOTRACK",
                   "TRACE", "CLASSIFY", "DSCP", "TOS", "TTL", "HL", "SECMARK", "CONNSECMARK",
                   "AUDIT", "CHECKSUM", "SET", "IDLETIMER", "LED")
NAT_TARGETS = ("MASQUERADE", "SNAT", "DNAT", "REDIRECT", "NETMAP")


def parse_iptables_save(text: str, family: int, source: str = "iptables-legacy",
                        command: Optional[str] = None) -> list[Chain]:
    """Chains and rules from ``iptables-save`` (or ``ip6tables-save``) output.

    Each rule is translated into nft's JSON expressions so one evaluator judges both;
    options it does not know become an ``xt`` match, which the evaluator never guesses.
    """
    fam = "ip" if family == 4 else "ip6"
    cmd = command or ("iptables" if family == 4 else "ip6tables")
    chains: dict[tuple[str, str], Chain] = {}
    order: list[Chain] = []
    table = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith(":") and table:
            parts = line[1:].split()
            if not parts:
                continue
            name = parts[0]
            policy = parts[1].lower() if len(parts) > 1 and parts[1] != "-" else None
            hook = IPT_HOOKS.get(name) if policy else None
            prio = IPT_NAT_PRIO.get(name, 0) if table == "nat" else IPT_TABLE_PRIO.get(table, 0)
            chain = Chain(fam, table, name, hook=hook, prio=prio, policy=policy, type=table,
                          source=source, command=cmd)
            chains[(table, name)] = chain
            order.append(chain)
        elif line.startswith("-A ") and table:
            try:
                tokens = shlex.split(line)
            except ValueError:
                tokens = line.split()
            if len(tokens) < 2:
                continue
            if (table, tokens[1]) not in chains:  # a rule for a chain never declared: keep it
                order.append(Chain(fam, table, tokens[1], source=source, command=cmd))
                chains[(table, tokens[1])] = order[-1]
            chain = chains[(table, tokens[1])]
            exprs = _iptables_exprs(tokens[2:], fam, {n for (t, n) in chains if t == table})
            spec = line.split(None, 2)[2] if len(line.split(None, 2)) > 2 else ""
            chain.rules.append(Rule(fam, table, chain.name, exprs, position=len(chain.rules) + 1,
                                    text=line, spec=spec, source=source, command=cmd))
    return order


def _match(left: Any, right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def _payload(protocol: str, fieldname: str) -> dict[str, Any]:
    return {"payload": {"protocol": protocol, "field": fieldname}}


def _ipt_addr(value: str) -> Any:
    if "/" in value:
        addr, _, length = value.partition("/")
        try:
            bits = int(length)
        except ValueError:  # an old-style dotted mask
            bits = ipaddress.ip_network(f"0.0.0.0/{length}").prefixlen
        net = ipaddress.ip_network(f"{addr}/{bits}", strict=False)
        if net.prefixlen == net.max_prefixlen:
            return str(net.network_address)
        return {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}
    return value


def _ipt_port(value: str) -> Any:
    if ":" in value:
        lo, _, hi = value.partition(":")
        return {"range": [_port_value(lo or "0"), _port_value(hi or "65535")]}
    return _port_value(value)


def _port_value(value: str) -> Any:
    return int(value) if value.isdigit() else value


class _Tokens:
    """One iptables rule's tokens, read left to right."""

    def __init__(self, tokens: list[str], fam: str) -> None:
        self.tokens = tokens
        self.fam = fam
        self.i = 0
        self.proto: Optional[str] = None  # the rule's -p: what its port options are about
        self.module = ""  # the latest -m: the options that follow are its own

    def arg(self) -> str:
        """The value of the option at the cursor (the cursor moves onto it)."""
        self.i += 1
        return self.tokens[self.i] if self.i < len(self.tokens) else ""

    def unknown(self, tok: str) -> dict[str, Any]:
        """An option of a match netcheck does not know, with its values: kept, never guessed."""
        name = f"{self.module} {tok}".strip()
        while self.i + 1 < len(self.tokens) and not self.tokens[self.i + 1].startswith("-") \
                and self.tokens[self.i + 1] != "!":
            self.i += 1
            name += f" {self.tokens[self.i]}"
        return {"xt": {"type": "match", "name": name}}


def _iptables_exprs(tokens: list[str], fam: str, chain_names: set[str]) -> list[Any]:
    """One iptables rule (the tokens after ``-A CHAIN``) as nft JSON expressions."""
    exprs: list[Any] = []
    t = _Tokens(tokens, fam)
    negate = False
    while t.i < len(tokens):
        tok = tokens[t.i]
        if tok == "!":
            negate = True
            t.i += 1
            continue
        op = "!=" if negate else "=="
        negate = False
        if tok in ("-j", "--jump", "-g", "--goto"):
            target = t.arg()
            exprs.extend(_iptables_target(target, tokens[t.i + 1:], tok in ("-g", "--goto"),
                                          chain_names))
            break
        found = _core_option(t, tok, op)
        exprs.extend(found if found is not None else _match_option(t, tok, op))
        t.i += 1
    return exprs


def _core_option(t: _Tokens, tok: str, op: str) -> Optional[list[Any]]:
    """iptables' own options (-s, -d, -p, -i, -o, -m) as expressions; None for any other."""
    if tok in ("-s", "--source", "-d", "--destination"):
        field_ = "saddr" if tok in ("-s", "--source") else "daddr"
        return [_match(_payload(t.fam, field_), _ipt_addr(t.arg()), op)]
    if tok in ("-p", "--protocol"):
        t.proto = t.arg().lower()
        if t.proto in ("all", "0"):
            return []
        proto = "ipv6-icmp" if t.proto in ("icmpv6", "ipv6-icmp") else t.proto
        return [_match({"meta": {"key": "l4proto"}}, proto, op)]
    if tok in ("-i", "--in-interface", "-o", "--out-interface"):
        key = "iifname" if tok in ("-i", "--in-interface") else "oifname"
        name = t.arg()
        name = name[:-1] + "*" if name.endswith("+") else name
        return [_match({"meta": {"key": key}}, name, op)]
    if tok in ("-m", "--match"):
        t.module = t.arg()
        return []
    return None


def _match_option(t: _Tokens, tok: str, op: str) -> list[Any]:
    """An option of a match module (tcp/udp, multiport, conntrack, icmp, iprange, comment,
    addrtype, limit) as expressions; any other becomes an ``xt`` match."""
    if tok in ("--dport", "--destination-port", "--sport", "--source-port"):
        field_ = "dport" if tok in ("--dport", "--destination-port") else "sport"
        return [_match(_payload(t.proto or t.module or "th", field_), _ipt_port(t.arg()), op)]
    if tok in ("--dports", "--destination-ports", "--sports", "--source-ports", "--ports"):
        values = {"set": [_ipt_port(p) for p in t.arg().split(",") if p]}
        if tok == "--ports":  # either port: not expressible as one match
            return [{"xt": {"type": "match", "name": "multiport --ports"}}]
        field_ = "dport" if "d" in tok[2:4] else "sport"
        return [_match(_payload(t.proto or "th", field_), values, op)]
    if tok in ("--ctstate", "--state"):
        states = [s.lower() for s in t.arg().split(",") if s]
        return [_match({"ct": {"key": "state"}}, states, "!=" if op == "!=" else "in")]
    if tok in ("--icmp-type", "--icmpv6-type"):
        kind = "icmp" if tok == "--icmp-type" else "icmpv6"
        raw = t.arg()
        number = raw.split("/")[0]
        value: Union[int, str] = int(number) if number.isdigit() else raw
        return [_match(_payload(kind, "type"), value, op)]
    if tok in ("--dst-range", "--src-range"):
        lo, _, hi = t.arg().partition("-")
        field_ = "daddr" if tok == "--dst-range" else "saddr"
        return [_match(_payload(t.fam, field_), {"range": [lo, hi or lo]}, op)]
    if tok == "--comment":
        return [{"comment": t.arg()}]
    if tok == "--dst-type" and t.module == "addrtype":
        kinds = [k.lower() for k in t.arg().split(",") if k]
        return [_match({"fib": {"result": "type", "flags": ["daddr"]}},
                       kinds[0] if len(kinds) == 1 else {"set": kinds}, op)]
    if tok in ("--limit", "--limit-burst"):
        t.arg()
        return [{"limit": {"rate": 0, "per": "", "inv": False}}] if tok == "--limit" else []
    return [t.unknown(tok)]


def _iptables_target(target: str, rest: list[str], goto: bool,
                     chain_names: set[str]) -> list[Any]:
    if target == "ACCEPT":
        return [{"accept": None}]
    if target == "DROP":
        return [{"drop": None}]
    if target == "RETURN":
        return [{"return": None}]
    if target == "REJECT":
        how = "icmp-port-unreachable"
        if "--reject-with" in rest and rest.index("--reject-with") + 1 < len(rest):
            how = rest[rest.index("--reject-with") + 1]
        kind, expr = REJECT_WITH.get(how, ("icmpx", how))
        body: dict[str, Any] = {"type": kind}
        if expr:
            body["expr"] = expr
        return [{"reject": body}]
    if target in PASSIVE_TARGETS:
        return [{"log": {"target": target}}]
    if target == "DNAT" and "--to-destination" in rest[:-1]:
        # Where Docker sends a published port: --to-destination ADDR[:PORT] (IPv6 in [])
        to = rest[rest.index("--to-destination") + 1]
        addr, port = to, None
        if to.startswith("["):
            addr, _, tail = to[1:].partition("]")
            port = tail[1:] if tail.startswith(":") else None
        elif to.count(":") == 1:
            addr, port = to.split(":")
        body = {"addr": addr}
        if port and port.isdigit():
            body["port"] = int(port)
        return [{"dnat": body}]
    if target in NAT_TARGETS:
        return [{target.lower() if target != "NETMAP" else "snat": {}}]
    if target in chain_names:
        return [{"goto" if goto else "jump": {"target": target}}]
    return [{"xt": {"type": "target", "name": target}}]
