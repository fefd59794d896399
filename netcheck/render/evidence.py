"""``-v`` evidence as the slides' commands print it.

The slides read a route with ``ip route get``, a neighbour with ``ip neigh``, an echo with
``ping``, a name with ``dig`` (its ``status: NXDOMAIN``) and a certificate with ``openssl
x509`` (``notAfter=``). The text view shows the evidence of those shapes the same way, so what
a student sees in netcheck is what the command would have shown; anything else stays JSON.
The JSON document keeps the evidence as it is: only this view changes.

Each view takes the evidence value (and the check's whole evidence, for context such as the
interface) and returns plain lines, or None when the value is not of its shape.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable, Optional

Lines = Optional[list[str]]
# Neighbour states as `ip neigh` prints them.
NUD_STATES = {"REACHABLE", "STALE", "DELAY", "PROBE", "FAILED", "INCOMPLETE", "PERMANENT",
              "NOARP", "NONE"}
MAX_DNS_ANSWERS = 6
CERT_KEYS = ("not_before", "not_after", "subject", "issuer", "san")


def _str(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def route_line(lookup: dict[str, Any]) -> str:
    """One ``ip route get DST`` answer (its first line)."""
    dst = _str(lookup.get("destination", "?"))
    kind = lookup.get("type")
    if kind in ("none", "error", None):
        error = lookup.get("error") or "Network is unreachable"
        return f"RTNETLINK answers: {error}   ({dst})"
    words = [dst] if kind == "unicast" else [_str(kind), dst]
    if lookup.get("gateway"):
        words += ["via", _str(lookup["gateway"])]
    if lookup.get("ifname") or lookup.get("oif") is not None:
        words += ["dev", _str(lookup.get("ifname") or f"if{lookup.get('oif')}")]
    if lookup.get("prefsrc"):
        words += ["src", _str(lookup["prefsrc"])]
    table = lookup.get("table")
    if table not in (None, 254, 255):
        words += ["table", _str(table)]
    return " ".join(words)


def _path(value: Any, evidence: dict[str, Any]) -> Lines:
    if not isinstance(value, dict) or not isinstance(value.get("lookups"), list):
        return None
    lookups = [lk for lk in value["lookups"] if isinstance(lk, dict)]
    if not lookups:
        return None
    return [line for lk in lookups
            for line in (f"$ ip route get {_str(lk.get('destination'))}", route_line(lk))]


def neighbour_line(value: dict[str, Any], ifname: Optional[str]) -> str:
    """One ``ip neigh`` line: ``198.18.1.1 dev eth0 lladdr 02:... REACHABLE``."""
    words = [_str(value.get("address", "?"))]
    if ifname:
        words += ["dev", ifname]
    if value.get("lladdr"):
        words += ["lladdr", _str(value["lladdr"])]
    state = _str(value.get("state", ""))
    words.append(state.upper() if state.upper() in NUD_STATES else f"({state})")
    return " ".join(words)


def _neighbour(value: Any, evidence: dict[str, Any]) -> Lines:
    if not isinstance(value, dict) or "address" not in value or "state" not in value:
        return None
    ifname = evidence.get("interface")
    return [neighbour_line(value, ifname if isinstance(ifname, str) else None)]


def _ms(value: Any) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") if isinstance(value, (int, float)) else "?"


def ping_lines(value: dict[str, Any]) -> list[str]:
    """What ``ping`` prints for one echo, or its statistics for a burst."""
    address = _str(value.get("address", "?"))
    if isinstance(value.get("sent"), int):  # a burst: ping -c N's last two lines
        lines = [f"--- {address} ping statistics ---",
                 f"{value['sent']} packets transmitted, {value.get('received', 0)} received, "
                 f"{_ms(value.get('loss_pct'))}% packet loss"]
        if value.get("rtt_min_ms") is not None:
            lines.append("rtt min/avg/max/mdev = " + "/".join(
                _ms(value.get(k)) for k in ("rtt_min_ms", "rtt_avg_ms", "rtt_max_ms",
                                            "rtt_mdev_ms")) + " ms")
        return lines
    state = value.get("state")
    size = value.get("size") if isinstance(value.get("size"), int) else 56
    if state == "reply":
        return [f"{size + 8} bytes from {address}: icmp_seq=1 time={_ms(value.get('rtt_ms'))} ms"]
    if state == "icmp_error":
        return [f"From {_str(value.get('icmp_from') or address)} icmp_seq=1 "
                f"{_str(value.get('icmp') or 'ICMP error')}"]
    if state == "timeout":
        return [f"PING {address}: no answer (1 packets transmitted, 0 received, "
                "100% packet loss)"]
    detail = value.get("error") or state
    return [f"ping {address}: {_str(detail)}"]


def _ping(value: Any, evidence: dict[str, Any]) -> Lines:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, dict) and "address" in v and (
            "state" in v or "sent" in v) for v in items):
        return None
    return [line for v in items for line in ping_lines(v)]


def dig_lines(answer: dict[str, Any]) -> list[str]:
    """What ``dig @server name TYPE`` says of one question: its header's status and the
    answer section, or the error it met."""
    qname = _str(answer.get("qname", "?")).rstrip(".") + "."
    rdtype = _str(answer.get("type", "A"))
    server = _str(answer.get("server", "?"))
    asked = f"$ dig @{server} {qname.rstrip('.')} {rdtype}"
    rcode = answer.get("rcode")
    if rcode is None:
        error = _str(answer.get("error") or "no answer")
        if "timeout" in error or "timed out" in error:
            return [asked, ";; connection timed out; no servers could be reached"]
        return [asked, f";; communications error to {server}#53: {error}"]
    records = [a for a in answer.get("answers") or [] if isinstance(a, str)]
    lines = [asked,
             f";; ->>HEADER<<- opcode: QUERY, status: {_str(rcode)}, ANSWER: {len(records)}"]
    chain = [c for c in answer.get("cname_chain") or [] if isinstance(c, str)]
    owner = qname
    for target in chain:
        target = target.rstrip(".") + "."
        lines.append(f"{owner}  IN  CNAME  {target}")
        owner = target
    lines += [f"{owner}  IN  {rdtype}  {a}" for a in records]
    if isinstance(answer.get("rtt_ms"), (int, float)):
        lines.append(f";; Query time: {round(answer['rtt_ms'])} msec")
    return lines


def _dns_answers(value: Any, evidence: dict[str, Any]) -> Lines:
    if not isinstance(value, list) or not value or not all(
            isinstance(v, dict) and "server" in v and "qname" in v for v in value):
        return None
    lines = [line for v in value[:MAX_DNS_ANSWERS] for line in dig_lines(v)]
    if len(value) > MAX_DNS_ANSWERS:
        lines.append(f";; (+{len(value) - MAX_DNS_ANSWERS} more questions)")
    return lines


def _resolution(value: Any, evidence: dict[str, Any]) -> Lines:
    if not isinstance(value, dict) or "answers" not in value or "name" not in value:
        return None
    lines = _dns_answers(value.get("answers"), evidence) or []
    addresses = [a for a in value.get("addresses") or [] if isinstance(a, str)]
    source = _str(value.get("source") or "?")
    lines.append(f"$ getent ahosts {_str(value['name'])}   # {source}")
    lines += [f"{a}  {_str(value['name'])}" for a in addresses] or ["(nothing)"]
    return lines


def _bursts(value: Any, evidence: dict[str, Any]) -> Lines:
    """Bursts by address (``ping -c 30``): each one's statistics."""
    if not isinstance(value, dict) or not value or not all(
            isinstance(v, dict) and "sent" in v for v in value.values()):
        return None
    return [line for v in value.values() for line in ping_lines(v)]


def connect_line(value: dict[str, Any]) -> str:
    """One TCP connect as ``nping --tcp-connect`` would report it."""
    address, port = _str(value.get("address", "?")), _str(value.get("port", "?"))
    where = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    state = value.get("state")
    rtt = f" ({_ms(value.get('rtt_ms'))} ms)" if value.get("rtt_ms") is not None else ""
    if state in ("open", "reset"):
        after = {"spoke": "the server spoke first", "closed": "then FIN",
                 "reset": "then RST before any byte", "quiet": "the server waits"}.get(
                     _str(value.get("after")), "")
        return f"Handshake with {where} completed{rtt}" + (f", {after}" if after else "")
    if state == "refused":
        return f"RST from {where}: connection refused{rtt}"
    if state == "timeout":
        syns = value.get("syns")
        return f"no answer from {where}" + (f" ({syns} SYNs sent)" if syns else "")
    if state == "icmp":
        return (f"{_str(value.get('icmp') or 'ICMP error')} from "
                f"{_str(value.get('icmp_from') or '?')} for {where}")
    return f"{where}: {_str(value.get('errno') or state)}"


def _connects(value: Any, evidence: dict[str, Any]) -> Lines:
    if not isinstance(value, list) or not value or not all(
            isinstance(v, dict) and "port" in v and "state" in v and "address" in v
            for v in value):
        return None
    return [connect_line(v) for v in value]


def _gateways(value: Any, evidence: dict[str, Any]) -> Lines:
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        return None
    lines = []
    for family, ev in value.items():
        if "gateway" not in ev:
            return None
        lines.append(f"{family}: gateway {_str(ev['gateway'])}")
        for key, view in (("neighbour", _neighbour), ("ping", _ping)):
            shown = view(ev.get(key), ev) if key in ev else None
            lines += [f"  {line}" for line in shown or []]
    return lines


def openssl_date(stamp: Any) -> str:
    """An RFC 3339 time as ``openssl x509 -dates`` prints it: ``Nov 22 10:00:00 2026 GMT``."""
    try:
        when = datetime.fromisoformat(_str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return _str(stamp)
    when = when.astimezone(timezone.utc)
    return f"{when:%b} {when.day:2d} {when:%H:%M:%S %Y} GMT"


def _san(name: str) -> str:
    """A subjectAltName entry as openssl prints it: ``DNS:www`` or ``IP Address:192.0.2.1``."""
    import ipaddress

    try:
        return f"IP Address:{ipaddress.ip_address(name)}"
    except ValueError:
        return f"DNS:{name}"


def certificate_lines(evidence: dict[str, Any]) -> Lines:
    """``openssl x509 -noout -dates -subject -issuer -ext subjectAltName`` of the served
    certificate, when the evidence describes one."""
    if not all(k in evidence for k in ("not_after", "subject", "issuer")):
        return None
    lines = [f"notBefore={openssl_date(evidence.get('not_before'))}",
             f"notAfter={openssl_date(evidence['not_after'])}",
             f"subject={_str(evidence['subject'])}", f"issuer={_str(evidence['issuer'])}"]
    san = [s for s in evidence.get("san") or [] if isinstance(s, str)]
    if san:
        lines += ["X509v3 Subject Alternative Name:", "    " + ", ".join(_san(s) for s in san)]
    return lines


def _chain(value: Any, evidence: dict[str, Any]) -> Lines:
    """The chain as ``openssl s_client -showcerts`` lists it (``0 s:... i:...``)."""
    if not isinstance(value, list) or not value or not all(
            isinstance(c, dict) and "subject" in c and "issuer" in c for c in value):
        return None
    lines = ["Certificate chain"]
    for i, cert in enumerate(value):
        lines.append(f" {i} s:{_str(cert['subject'])}")
        lines.append(f"   i:{_str(cert['issuer'])}")
        if cert.get("not_after"):
            lines.append(f"   notAfter={openssl_date(cert['not_after'])}")
    return lines


# Evidence keys and the view that shows them as the slide's command would.
VIEWS: dict[str, Callable[[Any, dict[str, Any]], Lines]] = {
    "path": _path, "neighbour": _neighbour, "ping": _ping, "server_ping": _ping,
    "answers": _dns_answers, "upstreams": _dns_answers, "upstream_answers": _dns_answers,
    "resolution": _resolution, "gateways": _gateways, "chain": _chain, "bursts": _bursts,
    "tcp": _connects, "connects": _connects,
}


def evidence_view(evidence: dict[str, Any]) -> list[tuple[str, Optional[list[str]]]]:
    """The evidence in order as ``(key, lines)``: ``lines`` None for a value no view knows
    (shown as before, JSON). A certificate's fields come as one ``certificate`` block."""
    out: list[tuple[str, Optional[list[str]]]] = []
    cert = _safely(lambda _value, ev: certificate_lines(ev), None, evidence)
    for key, value in evidence.items():
        if cert is not None and key in CERT_KEYS:
            if key == "not_after":
                out.append(("certificate", cert))
            continue
        view = VIEWS.get(key)
        out.append((key, _safely(view, value, evidence) if view is not None else None))
    return out


def _safely(view: Callable[[Any, dict[str, Any]], Lines], value: Any,
            evidence: dict[str, Any]) -> Lines:
    """A view, or None (JSON as before) when the value is not what it looked like: evidence
    comes from any check, a third party's too, and the report must print whatever it holds."""
    try:
        return view(value, evidence)
    except (TypeError, ValueError, KeyError, AttributeError):
        return None
