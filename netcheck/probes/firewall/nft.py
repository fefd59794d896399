"""nft's JSON listing (``nft -j list ruleset``) into the rule model, and the tables
iptables-nft manages taken from iptables-nft-save's complete reading."""

from __future__ import annotations

import gc
import json
from typing import Any, Optional

from netcheck.probes.firewall.iptables import IPT_HOOKS, IPT_TABLE_PRIO, parse_iptables_save
from netcheck.probes.firewall.model import Chain, NamedSet, Rule, Ruleset


def parse_nft_json(text: str, rs: Optional[Ruleset] = None) -> Ruleset:
    """Chains, rules and sets from ``nft -j list ruleset`` output."""
    # A big ruleset is millions of small objects: the cyclic collector would rescan them
    # over and over while they are built (five times slower for 100 000 rules).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _parse_nft_json(text, rs if rs is not None else Ruleset())
    finally:
        if was_enabled:
            gc.enable()


def _parse_nft_json(text: str, rs: Ruleset) -> Ruleset:
    doc = json.loads(text) if text.strip() else {"nftables": []}
    items = doc.get("nftables", []) if isinstance(doc, dict) else []
    version = "nft"
    for item in items:
        if not isinstance(item, dict) or len(item) != 1:
            continue
        (kind, body), = item.items()
        if not isinstance(body, dict):
            continue
        if kind == "metainfo":
            version = f"nft {body.get('version', '')}".strip()
        elif kind == "chain":
            key = (body.get("family", ""), body.get("table", ""), body.get("name", ""))
            chain = rs.chains.get(key) or rs.add_chain(Chain(*key))
            chain.hook = body.get("hook")
            chain.prio = _int(body.get("prio", 0))
            chain.policy = body.get("policy", "accept" if chain.hook else None)
            chain.type = body.get("type")
            chain.handle = body.get("handle")
        elif kind == "rule":
            key = (body.get("family", ""), body.get("table", ""), body.get("chain", ""))
            chain = rs.chains.get(key) or rs.add_chain(Chain(*key))
            exprs = body.get("expr") or []
            chain.rules.append(Rule(key[0], key[1], key[2],
                                    exprs if isinstance(exprs, list) else [],
                                    handle=body.get("handle"), position=len(chain.rules) + 1))
        elif kind in ("set", "map"):
            key = (body.get("family", ""), body.get("table", ""), body.get("name", ""))
            elems = body.get("elem") or []
            rs.sets[key] = NamedSet(*key, elements=elems if isinstance(elems, list) else [],
                                    is_map=kind == "map")
    rs.sources.append(version)
    return rs


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _iptables_managed(rs: Ruleset, family: str, table: str) -> bool:
    """A table that iptables-nft made: ``xt`` blobs in its rules, or iptables' chain names."""
    if family not in ("ip", "ip6") or table not in IPT_TABLE_PRIO:
        return False
    chains = [c for c in rs.chains.values() if (c.family, c.table) == (family, table)]
    if any(c.base and c.name in IPT_HOOKS for c in chains):
        return True
    return any("xt" in e for c in chains for r in c.rules for e in r.exprs if isinstance(e, dict))


def merge_iptables_nft(rs: Ruleset, family: str, table: str, save_text: str,
                       command: str) -> None:
    """Take one iptables-nft table's rules from its iptables-save listing.

    Rules correspond one to one, in order, to nft's listing of the same chain, so each
    keeps its nft handle (for ``nft delete rule ... handle N``) next to its -A line.
    """
    for parsed in parse_iptables_save(save_text, 4 if family == "ip" else 6,
                                      source="iptables-nft", command=command):
        if parsed.table != table:
            continue
        current = rs.chains.get((family, table, parsed.name))
        if current is None:
            continue
        handles = [r.handle for r in current.rules]
        if len(handles) == len(parsed.rules):
            for rule, handle in zip(parsed.rules, handles):
                rule.handle = handle
        current.rules = parsed.rules
        current.source, current.command = "iptables-nft", command
    label = f"{'iptables' if family == 'ip' else 'ip6tables'}-nft"
    if label not in rs.sources:
        rs.sources.append(label)
