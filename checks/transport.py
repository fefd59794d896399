"""Layer 4: does the port answer? A TCP connect to every address of the target."""

from __future__ import annotations

from typing import TYPE_CHECKING

from netcheck.model import Hint, Layer, Result, failed, passed, skipped, warned
from netcheck.probes import shared
from netcheck.probes.tcp import TcpResult
from netcheck.registry import check

if TYPE_CHECKING:
    from netcheck.runner import Context


def _fam_of(address: str) -> str:
    return "IPv6" if ":" in address else "IPv4"


def _family(r: TcpResult) -> str:
    return _fam_of(r.address)


def _code(r: TcpResult, blocked_locally: bool) -> str:
    """The problem code one failed connect amounts to.

    The network check already established that the host answers, so any ICMP error to a
    SYN is a firewall's reject (port unreachable, prohibited, even "host unreachable").
    A silent SYN to a host whose pings this host's own firewall refused to send is taken
    as this host's block, not a remote one.
    """
    if r.state == "refused":
        return "TCP_REFUSED"
    if r.state == "local" or (r.state == "timeout" and blocked_locally):
        return "FW_LOCAL_OUTPUT_BLOCK"
    if r.state == "icmp":
        return "TCP_ADMIN_PROHIBITED"
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
        how = f"connect() got {r.errno}" if r.errno else "even its pings are refused (EPERM)"
        return Hint(f"This host's own firewall blocks {where} ({how}): find the output rule.",
                    ["nft list ruleset", "iptables -S OUTPUT", "ip6tables -S OUTPUT"])
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
    network = ctx.result("network.target")
    skip_fams = set(network.evidence.get("unreachable_families", [])) if network else set()
    # A family the network check already found unreachable is its finding, not ours.
    addrs = [a for a in addrs if _fam_of(a) not in skip_fams] or addrs
    results = await shared.tcp_all(ctx, addrs, ctx.target.port)
    pings = await shared.ping_all(ctx, addrs)
    local = {p.address for p in pings
             if p.state == "send_error" and p.error in ("EPERM", "EACCES")}
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
            code = _code(bad, bad.address in local)
            fam = _family(bad)
            return warned(code, f"{fam} fails ({_describe(bad)}) while "
                          f"{' and '.join(sorted(good_fams))} works",
                          Hint(f"Clients that prefer {fam} will fail or wait. "
                               + _hint(code, bad).text, _hint(code, bad).commands), **evidence)
        return passed(_describe(opened[0]), **evidence)
    first = sorted(results, key=lambda r: _precedence(r))[0]
    code = _code(first, first.address in local)
    summary = _describe(first)
    if code == "FW_LOCAL_OUTPUT_BLOCK" and first.state == "timeout":
        summary += " (this host's firewall refuses to send to it: ping got EPERM)"
    return failed(code, summary, _hint(code, first), **evidence)


def _precedence(r: TcpResult) -> int:
    """Which failure explains the most: a local block, a reject, a refusal, then silence."""
    order = ["local", "icmp", "refused", "noroute", "timeout", "error"]
    return order.index(r.state) if r.state in order else len(order)
