"""``netcheck path TARGET``: the hops to TARGET as tracepath and mtr show them, with the flow's
own protocol and port, and where the packets stop.

A TCP SYN to the target's port (``tcp://``, ``https://``, ``ssh://``...), a DNS query to port
53 for ``dns://``, or with ``--proto`` UDP or ICMP echo; ``--count`` rounds, one probe a hop
each round, counted per hop (sent, loss, round trips best/average/worst). Echo requests are
sent beside a TCP or UDP flow to tell how far the target is, so a reset or ICMP error that
comes from nearer than the target is named as a middlebox's. What an unprivileged user cannot
do (ICMP without a ping socket, the TTL of a reset) is said, never guessed.

Exit status: 0 the target answered the flow as a working service does (SYN-ACK, a DNS
answer, an echo reply), 2 it did not (silent, stopped on the way, refused or reset), 3 bad
input or it could not run.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timezone
from typing import IO, Any, Optional

from netcheck.i18n import _, ngettext
from netcheck.redact import mask_value, shown

SCHEMA = "netcheck-path/1"
FORMATS = ("text", "json")
PROTOS = ("tcp", "udp", "icmp")
DEFAULT_COUNT = 5
DEFAULT_MAX_HOPS = 30
INTERVAL = 0.5  # seconds between rounds (mtr's default is 1 s)
# Answers that mean the flow works: a handshake, a DNS answer, an echo reply.
WORKING = ("syn-ack", "dns", "echo-reply", "udp")


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """The options of ``netcheck path`` (plus those every command takes)."""
    from netcheck.cliutil import add_common_options, port

    parser.description = (
        "Where do packets to TARGET stop? The flow's own probes (a SYN to its port, a DNS "
        "query, or ICMP echo) with growing TTL, hop by hop, counted as mtr counts them.")
    parser.add_argument("target", help="host, host:port, address, [v6]:port or scheme://host")
    parser.add_argument("--port", type=port, help="override the port")
    parser.add_argument("--proto", choices=PROTOS,
                        help="tcp (default), udp (a DNS query to port 53) or icmp")
    parser.add_argument("--count", type=_count, default=DEFAULT_COUNT, metavar="N",
                        help=f"rounds of probes (default {DEFAULT_COUNT})")
    parser.add_argument("--max-hops", type=_hops, default=DEFAULT_MAX_HOPS, metavar="N",
                        dest="max_hops", help=f"highest TTL (default {DEFAULT_MAX_HOPS})")
    add_common_options(parser)


def _bounded_int(text: str, low: int, high: int) -> int:
    if not text.isdigit() or not low <= int(text) <= high:
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a number from {low} to {high}")
    return int(text)


def _count(text: str) -> int:
    return _bounded_int(text, 1, 100)


def _hops(text: str) -> int:
    return _bounded_int(text, 1, 64)


def method_of(scheme: str, proto: Optional[str], port: int) -> tuple[str, Optional[int]]:
    """The probe method and port for a target: the flow's own unless ``--proto`` says."""
    from netcheck.probes import hops

    if proto == "icmp":
        return hops.ICMP, None
    if proto == "udp" or (proto is None and scheme == "dns"):
        return (hops.UDP_DNS if port == 53 else hops.UDP), port
    return hops.TCP, port


def run(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """Trace the path to ``args.target``; returns the exit status."""
    import asyncio

    from netcheck.cliutil import UsageError
    from netcheck.target import TargetError, parse_target

    if args.format not in FORMATS:
        raise UsageError(f"netcheck path prints text or json, not {args.format}")
    try:
        target = parse_target(args.target, args.port)
    except TargetError as exc:
        raise UsageError(str(exc)) from None
    if target.port == 0 and args.proto != "icmp":
        raise UsageError("give the port (host:port, --port N) or --proto icmp")
    budget = args.deadline - (time.monotonic() - args.started) - 0.3
    doc = asyncio.run(_trace(target, args, budget))
    if args.format == "json":
        out.write(json.dumps(mask_value(doc), indent=2, ensure_ascii=False) + "\n")
    else:
        _text(doc, args, out)
    if doc.get("error"):
        return 3
    reached = doc["flow"]["reached"] if doc.get("flow") else None
    return 0 if reached and reached.get("answer") in WORKING else 2


async def _trace(target: Any, args: argparse.Namespace, budget: float) -> dict[str, Any]:
    import asyncio
    import socket

    from netcheck import family as addrfam
    from netcheck.facts import has_net_raw
    from netcheck.locate import judge
    from netcheck.probes import dns, hops
    from netcheck.render.hops import limit_text

    started = datetime.now(timezone.utc)
    t0 = time.monotonic()
    families = {4: (socket.AF_INET,), 6: (socket.AF_INET6,)}.get(
        args.family, (socket.AF_INET, socket.AF_INET6))
    doc: dict[str, Any] = {"schema": SCHEMA, "target": {
        "input": target.input,
        "host": target.host, "port": target.port, "addresses": []}}
    if target.ip is not None:
        addresses = [target.host] if addrfam.family_of(target.host) in families else []
    else:
        res = await dns.resolve_like_system(target.host, families, "/etc/resolv.conf",
                                            "/etc/hosts", min(args.timeout, budget / 2))
        addresses = list(res.addresses)
    doc["target"]["addresses"] = addresses
    if not addresses:
        doc["error"] = _("{host} has no address to trace").format(host=target.host)
        return doc
    address = addresses[0]
    method, port = method_of(target.scheme, args.proto, target.port)
    privileged = has_net_raw()
    left = budget - (time.monotonic() - t0)
    common = {"max_hops": args.max_hops, "rounds": args.count, "interval": INTERVAL,
              "wait": min(args.timeout, 2.0), "budget": left, "privileged": privileged,
              "early": False, "qname": target.host if target.is_name else ""}
    flow_task = asyncio.ensure_future(hops.trace(address, method, port=port, **common))
    ref_task = None
    if method != hops.ICMP:  # how far the target is: for a reset that is not its own
        ref_task = asyncio.ensure_future(hops.trace(
            address, hops.ICMP, **{**common, "rounds": 1, "early": True}))
    flow = await flow_task
    ref = await ref_task if ref_task is not None else None
    reached = flow.reached
    location = None
    if reached is None or reached.answer not in WORKING or (ref is not None and ref.reached
                                                            and reached.ttl < ref.reached.ttl):
        location = judge(flow, ref)
    doc.update({
        "method": method, "port": port, "address": address, "privileged": privileged,
        "flow": flow.to_json(limit_text),
        "reference": ref.to_json(limit_text) if ref is not None else None,
        "location": location.to_json() if location is not None else None,
        "limits": [limit_text(limit) for limit in dict.fromkeys(
            flow.limits + (ref.limits if ref is not None else []))],
        "started_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration_ms": round((time.monotonic() - t0) * 1000, 1)})
    return doc


def _text(doc: dict[str, Any], args: argparse.Namespace, out: IO[str]) -> None:
    from netcheck import __version__
    from netcheck.render.hops import answer_text, hop_table

    target = doc["target"]
    if doc.get("error"):
        out.write(f"netcheck path: {shown(str(doc['error']))}\n")
        return
    what = doc["method"] + (f" {_('port')} {doc['port']}" if doc.get("port") else "")
    out.write(f"netcheck {__version__}  path  {shown(str(target['input']))} -> "
              f"{shown(doc['address'])}  {what}  "
              + ngettext("{n} round", "{n} rounds", args.count).format(n=args.count) + "  "
              + _("privileged: {answer}").format(answer=_("yes") if doc["privileged"]
                                                 else _("no")) + "\n\n")
    for line in hop_table(doc["flow"]):
        out.write(line + "\n")
    if args.verbose and doc.get("reference"):
        out.write("\n" + _("echo requests to the same address (how far the target is):")
                  + "\n")
        for line in hop_table(doc["reference"]):
            out.write(line + "\n")
    out.write("\n")
    reached = doc["flow"].get("reached")
    if reached and reached.get("answer") in WORKING and doc.get("location") is None:
        out.write(_("{address} answers at hop {hop}: {answer}").format(
            address=shown(str(reached["address"])), hop=reached["hop"],
            answer=shown(answer_text(reached["answer"]))) + "\n")
    elif doc.get("location"):
        out.write(_("where the packets stop: {text}").format(
            text=shown(doc["location"]["text"])) + "\n")
    for limit in doc.get("limits", []):
        out.write(_("not done: {limit}").format(limit=shown(limit)) + "\n")
