"""Matching one expression of a rule against the flow: the flow's value for the left side
(payload, meta, ct, concatenations), and membership in the right side (values, prefixes,
ranges, anonymous and named sets, verdict maps). What the flow does not determine is an
``_Unknown`` with the reason, never a guess.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from typing import TYPE_CHECKING, Any, Iterable, Optional, Union

from netcheck.probes.firewall.model import Flow, NamedSet, Rule
from netcheck.probes.firewall.render import render_expr, render_value

if TYPE_CHECKING:
    from netcheck.probes.firewall.walk import _Walk

PROTO_NUMBERS = {"tcp": 6, "udp": 17, "icmp": 1, "ipv6-icmp": 58, "icmpv6": 58, "sctp": 132,
                 "dccp": 33, "udplite": 136, "gre": 47, "esp": 50, "ah": 51, "igmp": 2,
                 "comp": 108, "ipip": 4, "ipv6": 41}
ICMP_TYPE_NUMBERS = {("icmp", "echo-request"): 8, ("icmp", "echo-reply"): 0,
                     ("icmpv6", "echo-request"): 128, ("icmpv6", "echo-reply"): 129,
                     ("icmpv6", "nd-neighbor-advert"): 136}


class _Unknown:
    """A value the flow does not determine (the reason says which expression)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


_NA = object()  # the expression cannot apply to this flow (ip daddr on an IPv6 packet)


def _proto_number(flow: Flow) -> int:
    if flow.protocol == "icmp":
        return 1 if flow.family == 4 else 58
    return PROTO_NUMBERS.get(flow.protocol, -1)


def _key(walk: _Walk, left: Any) -> Any:
    """The flow's value for a match's left side: (kind, value), _NA or _Unknown."""
    flow = walk.flow
    if not isinstance(left, dict) or len(left) != 1:
        return _Unknown(f"expression {json.dumps(left)[:60]}")
    (kind, body), = left.items()
    if kind == "payload" and isinstance(body, dict):
        return _payload_key(flow, body.get("protocol"), body.get("field"))
    if kind == "meta" and isinstance(body, dict):
        return _meta_key(walk, body.get("key"))
    if kind == "ct" and isinstance(body, dict):
        key = body.get("key")
        if key == "state":
            return ("flags", {flow.ct_state or ("established" if flow.reply else "new")})
        if key == "direction":
            return ("str", "reply" if flow.reply else "original")
        if key in ("l3proto",):
            return ("str", "ipv4" if flow.family == 4 else "ipv6")
        if key == "protocol":
            return ("proto", _proto_number(flow))
        return _Unknown(f"ct {key}")
    if kind == "concat" and isinstance(body, list):
        parts = [_key(walk, part) for part in body]
        if any(p is _NA for p in parts):
            return _NA
        bad = next((p for p in parts if isinstance(p, _Unknown)), None)
        if bad is not None:
            return bad
        return ("concat", parts)
    if kind == "fib" and isinstance(body, dict) and body.get("result") == "type" \
            and body.get("flags") in (["daddr"], "daddr") and flow.local_daddr is not None:
        return ("str", "local" if flow.local_daddr else "unicast")
    return _Unknown(render_expr(left))


def _payload_key(flow: Flow, proto: Any, fld: Any) -> Any:
    """The flow's value for a header field (``ip daddr``, ``tcp dport``, ``icmp type``...)."""
    if proto in ("ip", "ip6"):
        if (proto == "ip") != (flow.family == 4):
            return _NA
        if fld == "daddr":
            return ("addr", _addr(flow.daddr))
        if fld == "saddr":
            if flow.saddr is None:
                return _Unknown(f"{proto} saddr (source address not known)")
            return ("addr", _addr(flow.saddr))
        if fld in ("protocol", "nexthdr"):
            return ("proto", _proto_number(flow))
        if fld == "version":
            return ("int", flow.family)
        return _Unknown(f"{proto} {fld}")
    if proto in ("tcp", "udp", "th", "udplite", "sctp", "dccp"):
        if proto == "th":
            if flow.protocol not in ("tcp", "udp"):
                return _NA
        elif proto != flow.protocol:
            return _NA
        if fld == "dport":
            return ("port", flow.dport)
        if fld == "sport":
            if flow.sport is None:
                return _Unknown(f"{proto} sport (source port not known)")
            return ("port", flow.sport)
        if fld == "flags" and proto == "tcp":
            # the first packet of a new connection, or the answer to it
            return ("flags", {"syn", "ack"} if flow.reply else {"syn"})
        return _Unknown(f"{proto} {fld}")
    if proto in ("icmp", "icmpv6"):
        if flow.protocol != "icmp" or (proto == "icmp") != (flow.family == 4):
            return _NA
        if fld == "type":
            return ("icmp_type", (proto, flow.icmp_type or (
                "echo-reply" if flow.reply else "echo-request")))
        if fld == "code":
            return ("int", 0)
        return _Unknown(f"{proto} {fld}")
    return _Unknown(f"{proto} {fld}")


def _meta_key(walk: _Walk, key: Any) -> Any:
    """The flow's value for a ``meta`` key (l4proto, interfaces, the mark a rule set)."""
    flow = walk.flow
    if key == "l4proto":
        return ("proto", _proto_number(flow))
    if key == "nfproto":
        return ("str", "ipv4" if flow.family == 4 else "ipv6")
    if key == "protocol":
        return ("str", "ip" if flow.family == 4 else "ip6")
    if key in ("oifname", "oif"):
        if flow.hook in ("input", "prerouting"):
            return ("ifname", "")
        return ("ifname", flow.oifname) if flow.oifname else _Unknown(
            f"{key} (the egress interface is not known)")
    if key in ("iifname", "iif"):
        if flow.hook in ("output", "postrouting") and flow.iifname is None:
            return ("ifname", "")  # locally generated: no input interface
        return ("ifname", flow.iifname) if flow.iifname else _Unknown(f"{key}")
    if key == "mark":
        return ("int", walk.mark)
    if key == "nftrace":
        return ("int", 0)
    return _Unknown(f"meta {key}")


def _keyed(walk: _Walk, body: Any, side: str, what: str) -> Any:
    """The flow's (kind, value) for the key of a match or vmap; False when the key cannot
    apply to the flow (ip daddr on an IPv6 packet); an _Unknown when the flow does not tell."""
    if not isinstance(body, dict):
        return _Unknown(f"a malformed {what}")
    key = _key(walk, body.get(side))
    return False if key is _NA else key


def _match_expr(walk: _Walk, body: Any, rule: Rule) -> Union[bool, _Unknown]:
    key = _keyed(walk, body, "left", "match")
    if key is False or isinstance(key, _Unknown):
        return key
    op = body.get("op", "==")
    right = body.get("right")
    kind, value = key
    if op in ("<", ">", "<=", ">="):
        if kind not in ("port", "int", "proto") or not isinstance(right, int) \
                or not isinstance(value, int):
            return _Unknown(f"{render_expr(body.get('left'))} {op} {render_value(right)}")
        return {"<": value < right, ">": value > right, "<=": value <= right,
                ">=": value >= right}[op]
    if op not in ("==", "!=", "in"):
        return _Unknown(f"operator {op!r}")
    hit = _member(walk, kind, value, right, rule)
    if isinstance(hit, _Unknown):
        return hit
    return (not hit) if op == "!=" else hit


def _elements(walk: _Walk, right: Any, rule: Rule) -> Union[list[Any], _Unknown, None]:
    """The elements a right-hand side stands for, or None when it is a single value."""
    if isinstance(right, str) and right.startswith("@"):
        named = walk.rs.sets.get((rule.family, rule.table, right[1:]))
        if named is None:
            return _Unknown(f"set {right} (not in the listing)")
        return named.elements
    if isinstance(right, dict) and "set" in right:
        elems = right["set"]
        return elems if isinstance(elems, list) else [elems]
    if isinstance(right, list):
        return right
    return None


def _member(walk: _Walk, kind: str, value: Any, right: Any, rule: Rule) -> Union[bool, _Unknown]:
    elems = _elements(walk, right, rule)
    if isinstance(elems, _Unknown):
        return elems
    if elems is None:
        return _element_hit(kind, value, right)
    if kind == "flags":
        names: set[str] = set()
        for e in elems:
            names.update(_flag_names(e))
        return bool(value & names)
    if isinstance(right, str) and len(elems) > 64 and kind in ("addr", "port", "proto", "ifname",
                                                                "str"):
        named = walk.rs.sets[(rule.family, rule.table, right[1:])]
        return _indexed_hit(named, kind, value)
    walk.steps += len(elems) // 16  # large anonymous sets count as work too
    # a map element is [key, value]: the key is what the flow matches
    return _any_hit(kind, value, (e[0] if isinstance(e, list) and len(e) == 2 else e
                                  for e in elems))


def _any_hit(kind: str, value: Any, elems: Iterable[Any]) -> Union[bool, _Unknown]:
    """True when an element holds the value; else the last element that could not tell, or
    False."""
    result: Union[bool, _Unknown] = False
    for e in elems:
        hit = _element_hit(kind, value, e)
        if hit is True:
            return True
        if isinstance(hit, _Unknown):
            result = hit
    return result


def _flag_names(e: Any) -> set[str]:
    if isinstance(e, str):
        return {s.strip() for s in e.split(",")}
    if isinstance(e, list):
        return {str(x) for x in e}
    return {str(e)}


def _indexed_hit(named: NamedSet, kind: str, value: Any) -> Union[bool, _Unknown]:
    """Membership in a big named set, through an index built once per set and kind."""
    index = named._index.get(kind)
    if index is None:
        exact: set[Any] = set()
        rest: list[Any] = []
        for e in named.elements:
            if isinstance(e, list) and len(e) == 2:
                e = e[0]
            if isinstance(e, dict) and "elem" in e:
                e = e["elem"].get("val") if isinstance(e["elem"], dict) else e["elem"]
            norm = _normal(kind, e)
            if norm is not None and not isinstance(norm, _Unknown) and not (
                    kind == "ifname" and isinstance(e, str) and e.endswith("*")):
                exact.add(norm)
            else:
                rest.append(e)
        index = named._index[kind] = (exact, rest)
    exact, rest = index
    if not isinstance(value, tuple) and value in exact:
        return True
    return _any_hit(kind, value, rest)


def _normal(kind: str, e: Any) -> Any:
    """A scalar element in the form the flow's values have, or None when it is not a scalar."""
    if isinstance(e, dict) or isinstance(e, list):
        return None
    try:
        if kind == "addr":
            return _addr(str(e))
        if kind == "port":
            return e if isinstance(e, int) else socket.getservbyname(str(e))
        if kind == "proto":
            return e if isinstance(e, int) else PROTO_NUMBERS.get(str(e), None)
    except (ValueError, OSError):
        return _Unknown(f"value {e!r}")
    return e


def _element_hit(kind: str, value: Any, e: Any) -> Union[bool, _Unknown]:
    """Does one element (scalar, prefix, range, concatenation) hold the flow's value?"""
    if isinstance(e, dict) and "elem" in e:
        inner = e["elem"]
        e = inner.get("val") if isinstance(inner, dict) else inner
    if kind == "concat":
        parts = e.get("concat") if isinstance(e, dict) else None
        if not isinstance(parts, list) or len(parts) != len(value):
            return _Unknown("a concatenation of another shape")
        result: Union[bool, _Unknown] = True
        for (k, v), part in zip(value, parts):
            hit = _element_hit(k, v, part)
            if hit is False:
                return False
            if isinstance(hit, _Unknown):
                result = hit
        return result
    if kind == "port" and isinstance(value, tuple):
        return _port_range_hit(value, e)
    if isinstance(e, dict) and "prefix" in e:
        if kind != "addr":
            return _Unknown(f"a prefix on {kind}")
        try:
            p = e["prefix"]
            return value in ipaddress.ip_network(f"{p['addr']}/{p['len']}", strict=False)
        except (KeyError, TypeError, ValueError):
            return _Unknown(f"prefix {e!r}")
    if isinstance(e, dict) and "range" in e:
        try:
            lo, hi = (_normal(kind, x) for x in e["range"])
            if isinstance(lo, _Unknown) or isinstance(hi, _Unknown) or lo is None or hi is None:
                return _Unknown(f"range {e!r}")
            if kind == "addr" and value.version != lo.version:
                return False
            return bool(lo <= value <= hi)
        except (TypeError, ValueError):
            return _Unknown(f"range {e!r}")
    if isinstance(e, (dict, list)):
        return _Unknown(f"value {render_value(e)}")
    if kind == "ifname":
        name = str(e)
        if name.endswith("*") and not name.endswith("\\*"):
            return value.startswith(name[:-1])
        return value == name.replace("\\*", "*")
    if kind == "icmp_type":
        proto, name = value
        if isinstance(e, int):
            return ICMP_TYPE_NUMBERS.get((proto, name)) == e
        return str(e) == name
    if kind == "flags":
        return bool(value & _flag_names(e))
    if kind == "str":
        return str(e) == str(value)
    norm = _normal(kind, e)
    if isinstance(norm, _Unknown):
        return norm
    if kind == "addr" and norm.version != value.version:
        return False
    return norm == value


def _port_range_hit(span: tuple[int, int], e: Any) -> Union[bool, _Unknown]:
    """A source port somewhere in ``span`` (the ephemeral range) against one element."""
    lo, hi = span
    if isinstance(e, dict) and "range" in e:
        a, b = (_normal("port", x) for x in e["range"])
    else:
        a = b = _normal("port", e)
    if not isinstance(a, int) or not isinstance(b, int):
        return _Unknown(f"port {render_value(e)}")
    if a <= lo and hi <= b:
        return True
    if b < lo or a > hi:
        return False
    return _Unknown(f"source port {render_value(e)} (only part of the ephemeral range "
                    f"{lo}-{hi})")


def _vmap(walk: _Walk, body: Any, rule: Rule) -> Union[bool, _Unknown, tuple[str, Optional[str]]]:
    """The verdict a ``vmap`` statement gives the flow (False: no element matches)."""
    key = _keyed(walk, body, "key", "vmap")
    if key is False or isinstance(key, _Unknown):
        return key
    kind, value = key
    data = body.get("data")
    elems = _elements(walk, data, rule)
    if isinstance(elems, _Unknown):
        return elems
    for pair in elems or []:
        if isinstance(pair, dict) and "elem" in pair:
            pair = pair["elem"].get("val") if isinstance(pair["elem"], dict) else pair
        if not isinstance(pair, list) or len(pair) != 2:
            continue
        hit = _element_hit(kind, value, pair[0])
        if isinstance(hit, _Unknown):
            return hit
        if hit:
            verdict = pair[1]
            if isinstance(verdict, dict) and len(verdict) == 1:
                (name, arg), = verdict.items()
                target = arg.get("target") if isinstance(arg, dict) else None
                return name, target
            return _Unknown(f"vmap verdict {verdict!r}")
    return False


def _addr(text: str) -> Any:
    return ipaddress.ip_address(text.split("%")[0])
