"""Quoting: a rule's nft JSON in the syntax ``nft list ruleset`` prints, so a finding quotes
the rule as the user's own tool shows it."""

from __future__ import annotations

import json
from typing import Any, Iterable

VERDICTS = ("accept", "drop", "reject", "return", "continue", "jump", "goto", "queue")
NAT_STATEMENTS = ("snat", "dnat", "masquerade", "redirect")
# meta keys nft prints without the word "meta" (nft's meta_key_is_unqualified()).
BARE_META = ("iif", "oif", "iifname", "oifname", "iifgroup", "oifgroup")
IFNAME_KEYS = ("iifname", "oifname", "iif", "oif", "ibrname", "obrname")


def render_rule(exprs: Iterable[Any]) -> str:
    """A rule's JSON expressions in the syntax ``nft list ruleset`` prints."""
    return " ".join(part for part in (render_stmt(e) for e in exprs) if part)


def render_expr(expr: Any) -> str:
    """The left side of a match (payload, meta, ct, concatenation...)."""
    if not isinstance(expr, dict) or len(expr) != 1:
        return render_value(expr)
    (kind, body), = expr.items()
    if kind == "payload" and isinstance(body, dict):
        if "protocol" in body:
            return f"{body['protocol']} {body.get('field', '')}".strip()
        return f"@{body.get('base', '')},{body.get('offset', '')},{body.get('len', '')}"
    if kind == "meta" and isinstance(body, dict):
        key = body.get("key", "")
        return key if key in BARE_META else f"meta {key}"
    if kind == "ct" and isinstance(body, dict):
        parts = ["ct"]
        if body.get("dir"):
            parts.append(str(body["dir"]))
        if body.get("family"):
            parts.append(str(body["family"]))
        parts.append(str(body.get("key", "")))
        return " ".join(parts)
    if kind == "concat" and isinstance(body, list):
        return " . ".join(render_expr(e) for e in body)
    if kind == "fib" and isinstance(body, dict):
        flags = body.get("flags", [])
        flags = [flags] if isinstance(flags, str) else flags
        return f"fib {' . '.join(flags)} {body.get('result', '')}".strip()
    if kind in ("&", "|", "^", "<<", ">>") and isinstance(body, list) and len(body) == 2:
        return f"{render_expr(body[0])} {kind} {render_value(body[1])}"
    if kind == "tcp option" and isinstance(body, dict):
        return f"tcp option {body.get('name', '')} {body.get('field', '')}".strip()
    return f"{kind} {json.dumps(body, separators=(',', ':'))}"


def render_value(value: Any, quote: bool = False) -> str:
    """A right-hand value: scalars, prefixes, ranges, sets, flag lists."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"' if quote else value
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return ",".join(render_value(v, quote) for v in value)
    if isinstance(value, dict):
        if "prefix" in value and isinstance(value["prefix"], dict):
            return f"{value['prefix'].get('addr')}/{value['prefix'].get('len')}"
        if "range" in value and isinstance(value["range"], list):
            return "-".join(render_value(v, quote) for v in value["range"])
        if "set" in value:
            elems = value["set"] if isinstance(value["set"], list) else [value["set"]]
            return "{ " + ", ".join(_render_elem(e, quote) for e in elems) + " }"
        if "concat" in value and isinstance(value["concat"], list):
            return " . ".join(render_value(v, quote) for v in value["concat"])
        if "elem" in value and isinstance(value["elem"], dict):
            return render_value(value["elem"].get("val"), quote)
        if len(value) == 1:
            (kind, body), = value.items()
            if kind in VERDICTS:
                return render_stmt(value)
        return render_expr(value)
    return json.dumps(value)


def _render_right(left: Any, right: Any, quote: bool) -> str:
    """Marks print as 32-bit hex (0x00000007), as nft does; everything else as a value."""
    is_mark = isinstance(left, dict) and any(
        isinstance(left.get(k), dict) and left[k].get("key") == "mark" for k in ("meta", "ct"))
    if is_mark and isinstance(right, int):
        return f"0x{right:08x}"
    return render_value(right, quote)


def _render_elem(e: Any, quote: bool) -> str:
    if isinstance(e, list) and len(e) == 2:  # a map element
        return f"{render_value(e[0], quote)} : {render_value(e[1], quote)}"
    return render_value(e, quote)


def render_stmt(expr: Any) -> str:
    """One expression of a rule (a match or a statement) as nft prints it."""
    if not isinstance(expr, dict) or len(expr) != 1:
        return json.dumps(expr)
    (kind, body), = expr.items()
    if kind == "match" and isinstance(body, dict):
        left = body.get("left")
        quote = isinstance(left, dict) and "meta" in left and isinstance(left["meta"], dict) \
            and left["meta"].get("key") in IFNAME_KEYS
        op = body.get("op", "==")
        right = body.get("right")
        sep = " " if op in ("==", "in") else f" {op} "
        return f"{render_expr(left)}{sep}{_render_right(left, right, quote)}"
    if kind in ("accept", "drop", "return", "continue"):
        return kind
    if kind in ("jump", "goto") and isinstance(body, dict):
        return f"{kind} {body.get('target', '')}"
    if kind == "reject":
        if not isinstance(body, dict) or not body:
            return "reject"
        kind_ = body.get("type")
        if kind_ == "tcp reset":
            return "reject with tcp reset"
        if body.get("expr") is None:
            return "reject"
        return f"reject with {kind_} {body['expr']}"
    if kind == "counter":
        if isinstance(body, dict) and "packets" in body:
            return f"counter packets {body['packets']} bytes {body.get('bytes', 0)}"
        return "counter" if not isinstance(body, str) else f"counter name {body}"
    if kind == "log":
        if isinstance(body, dict) and body.get("target"):
            return f"# {body['target']}"
        if isinstance(body, dict) and body.get("prefix") is not None:
            return f'log prefix "{body["prefix"]}"'
        return "log"
    if kind == "limit" and isinstance(body, dict):
        if not body.get("per"):
            return "limit"
        over = "over " if body.get("inv") else ""
        return f"limit rate {over}{body.get('rate')}/{body.get('per')}"
    if kind == "vmap" and isinstance(body, dict):
        return f"{render_expr(body.get('key'))} vmap {render_value(body.get('data'))}"
    if kind == "xt" and isinstance(body, dict):
        return f"xt {body.get('type', '')} \"{body.get('name', '')}\""
    if kind == "comment":
        return f'comment "{body}"'
    if kind in NAT_STATEMENTS:
        if isinstance(body, dict) and body.get("addr") is not None:
            return f"{kind} to {render_value(body['addr'])}"
        return kind
    if kind == "mangle" and isinstance(body, dict):
        key = body.get("key")
        return f"{render_expr(key)} set {_render_right(key, body.get('value'), False)}"
    if kind == "notrack":
        return "notrack"
    return f"{kind} {json.dumps(body, separators=(',', ':'))}"
