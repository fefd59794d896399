"""Layer 4: does the port answer? A TCP connect to every address of the target."""

from __future__ import annotations

from netcheck.model import Hint, Layer, Result, failed, passed, skipped, warned
from netcheck.probes import shared
from netcheck.probes.tcp import TcpResult
from netcheck.registry import check
from netcheck.runner import Context

# ICMP answers to a SYN that mean "a firewall rejects it" rather than "no route".
_REJECT_V4 = {(3, 3), (3, 9), (3, 10), (3, 13)}
_REJECT_V6 = {(1, 1), (1, 4), (1, 5), (1, 6)}


def _family(r: TcpResult) -> str:
    return "IPv6" if ":" in r.address else "IPv4"


def _code(r: TcpResult) -> str:
    """The problem code one failed connect amounts to."""
    if r.state == "refused":
        return "TCP_REFUSED"
    if r.state == "local":
        return "FW_LOCAL_OUTPUT_BLOCK"
    if r.state == "icmp":
        table = _REJECT_V6 if ":" in r.address else _REJECT_V4
        if (r.icmp_type, r.icmp_code) in table:
            return "TCP_ADMIN_PROHIBITED"
        return "TARGET_UNREACHABLE"
    return "TCP_FILTERED"


def _hint(code: str, r: TcpResult) -> Hint:
    where = f"{r.address} port {r.port}"
    if code == "TCP_REFUSED":
        return Hint(f"The host answers but nothing listens on {where}: start the service, "
                    "or use the right port. On the server:",
                    [f"ss -tlnp 'sport = :{r.port}'", "systemctl status <service>",
                     f"nmap -sT -p {r.port} {r.address}   # from here"])
    if code == "TCP_ADMIN_PROHIBITED":
        return Hint(f"A firewall rejects {where} ({r.icmp_from or 'a router'} sent "
                    f"'{r.icmp_name}'). Open the port on the server's or the router's "
                    "firewall. On that host:",
                    ["nft list ruleset", "iptables -S", f"nping --tcp -p {r.port} {r.address}"])
    if code == "FW_LOCAL_OUTPUT_BLOCK":
        return Hint(f"This host's own firewall blocks {where} (connect() got {r.errno}).",
                    ["nft list ruleset", "iptables -S OUTPUT"])
    if code == "TARGET_UNREACHABLE":
        return Hint(f"{r.icmp_from or 'A router'} says {r.address} is unreachable "
                    f"({r.icmp_name}).", [f"traceroute -n {r.address}"])
    return Hint(f"The host answers ping but its SYNs to {where} get no answer at all: a "
                "firewall drops them (on the server or a router on the way).",
                [f"nping --tcp -p {r.port} {r.address}", f"nmap -Pn -sT -p {r.port} {r.address}",
                 f"tcpdump -ni any host {r.address} and port {r.port}   # on the server"])


def _describe(r: TcpResult) -> str:
    if r.state == "open":
        return f"{r.address} port {r.port} open ({r.rtt_ms:.1f} ms)"
    if r.state == "refused":
        return f"{r.address} port {r.port} refused (RST: nothing listens)"
    if r.state == "icmp":
        return f"{r.address} port {r.port}: {r.icmp_from or 'router'} sent '{r.icmp_name}'"
    if r.state == "local":
        return f"{r.address} port {r.port}: blocked on this host ({r.errno})"
    if r.state == "noroute":
        return f"{r.address} port {r.port}: no route ({r.errno})"
    return f"{r.address} port {r.port}: no answer to SYN"


@check("transport.tcp", Layer.TRANSPORT, requires=("network.target",),
       codes=("TCP_REFUSED", "TCP_FILTERED", "TCP_ADMIN_PROHIBITED", "FW_LOCAL_OUTPUT_BLOCK"))
async def tcp_connect(ctx: Context) -> Result:
    """Port accepts TCP connections.

    A connect to every resolved address: SYN-ACK (open), RST (nothing listens), an ICMP
    reject (a firewall says no) or silence (a firewall drops it) — the RTT as evidence.
    """
    assert ctx.target is not None
    addrs = await ctx.addresses()
    if not addrs:
        return skipped("the target has no address to connect to")
    results = await shared.tcp_all(ctx, addrs, ctx.target.port)
    evidence: dict[str, object] = {"port": ctx.target.port,
                                   "connects": [r.to_json() for r in results]}
    opened = [r for r in results if r.state == "open"]
    if opened:
        evidence["rtt_ms"] = round(min(r.rtt_ms or 0 for r in opened), 3)
        failing = [r for r in results if r.state != "open"]
        good_fams = {_family(r) for r in opened}
        bad_fams = {_family(r) for r in failing} - good_fams
        if bad_fams:
            bad = next(r for r in failing if _family(r) in bad_fams)
            code = _code(bad)
            fam = _family(bad)
            return warned(code, f"{fam} fails ({_describe(bad)}) while "
                          f"{' and '.join(sorted(good_fams))} works",
                          Hint(f"Clients that prefer {fam} will fail or wait. "
                               + _hint(code, bad).text, _hint(code, bad).commands), **evidence)
        return passed(_describe(opened[0]), **evidence)
    first = sorted(results, key=lambda r: _precedence(r))[0]
    code = _code(first)
    return failed(code, _describe(first), _hint(code, first), **evidence)


def _precedence(r: TcpResult) -> int:
    """Which failure explains the most: a local block, a reject, a refusal, then silence."""
    order = ["local", "icmp", "refused", "noroute", "timeout", "error"]
    return order.index(r.state) if r.state in order else len(order)
