"""``transport.tcp``: the port accepts TCP connections (the connects, this host's part in
their failure, and the hint for each finding; the judging is ``judging``'s)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Sequence

from netcheck.checks.transport.common import (
    CLOSED_CODES,
    FW_CODE,
    OPEN_UNEXPECTED,
    _own_addresses,
    firewall_unreadable,
)
from netcheck.checks.transport.judging import Judgement, judge_connects, judge_expectation
from netcheck.checks.transport.output_chain import _fw_hint

from netcheck import hints
from netcheck.hints import server_side_command
from netcheck.i18n import _
from netcheck.lazy import lazy
from netcheck.model import Hint, Layer, Result, Status, failed, passed, skipped, warned
from netcheck.registry import check

if TYPE_CHECKING:
    from netcheck import family
    from netcheck.probes import firewall, shared
    from netcheck.probes.tcp import TcpResult
    from netcheck.runner import Context
else:  # imported at first use: `netcheck checks` lists the checks without the probes
    family, shared = lazy("netcheck.family"), lazy("netcheck.probes.shared")


def _local_block(r: TcpResult, own: set[str], eperm_pings: set[str],
                 fw: Optional[firewall.LocalFirewall], retrans_failed: int = 0) -> Optional[str]:
    """Why a failed connect was stopped by this host itself (None: it was not, as far as known).

    EPERM/EACCES from connect(), an ICMP error whose sender is this host's own address (its
    output chain's ``reject``), a rule of its output chains that matches, or a silent SYN to
    an address this host even refuses to ping (EPERM), or, when the rules cannot be read, SYN
    retransmissions the kernel failed to send while the connects waited (``retrans_failed``:
    TcpExt TCPRetransFail grown; a remote drop lets them leave).
    """
    if r.handshake:
        return None
    if r.state == "local":
        return _("connect() got {errno}").format(errno=r.errno)
    verdict = fw.blocks(r.address, "tcp") if fw is not None else None
    if verdict is not None and (r.state in ("timeout", "error")
                                or verdict.action == "reject"):
        return _("{action} by {rule}").format(action=verdict.action, rule=verdict.describe())
    sender = family.bare(r.icmp_from or "")
    if r.state == "icmp" and sender in own and sender != r.address:
        return _("this host itself ({sender}) answered '{icmp}': an output rule rejects "
                 "it").format(sender=sender, icmp=r.icmp_name)
    if r.state == "timeout" and r.address in eperm_pings:
        return _("even its pings are refused with EPERM")
    if r.state == "timeout" and retrans_failed > 0 and (fw is None or not fw.readable):
        return _("its SYN retransmissions failed on this host: the kernel counted {n} failed "
                 "retransmissions (TCPRetransFail) while the connects waited").format(
                     n=retrans_failed)
    return None


def _hint(code: str, r: TcpResult, local_reason: Optional[str],
          fw: Optional[firewall.LocalFirewall]) -> Hint:
    where = {"address": r.address, "port": r.port}
    if code == "TCP_REFUSED":
        return Hint(_("The host answers but nothing listens on {address} port {port}: start "
                      "the service, or use the right port. On the server:").format(**where),
                    [f"ss -tlnp 'sport = :{r.port}'   # " + _("on the server"),
                     server_side_command(r.port),
                     f"nmap -sT -p {r.port} {r.address}   # " + _("from here")])
    if code == "TCP_ADMIN_PROHIBITED":
        sender = family.bare(r.icmp_from or "")
        if sender and sender != family.bare(r.address):
            return Hint(_("The router or firewall at {router} rejects {address} port {port} "
                          "(it sent '{icmp}'): the SYN never reaches the server. Open the port "
                          "on that firewall. Find the hop, then on that host:").format(
                              router=sender, icmp=r.icmp_name, **where),
                        [hints.trace(r.address, r.port),
                         "nft list ruleset   # " + _("on {router}").format(router=sender),
                         "iptables -S FORWARD   # " + _("on {router}").format(router=sender),
                         f"nping --tcp -p {r.port} {r.address}"])
        return Hint(_("A firewall rejects {address} port {port} ({router} sent '{icmp}'). Open "
                      "the port on the server's or the router's firewall. On that "
                      "host:").format(router=r.icmp_from or _("a router"), icmp=r.icmp_name,
                                      **where),
                    ["nft list ruleset", "iptables -S", f"nping --tcp -p {r.port} {r.address}"])
    if code == FW_CODE:
        blocks = fw.blocking(r.address, "tcp") if fw is not None else []
        if blocks:
            return _fw_hint(blocks)
        text = _("This host's own firewall blocks {address} port {port} ({how}): find the "
                 "output rule.").format(how=local_reason or _("blocked locally"), **where)
        if fw is None or not fw.readable:
            text += " " + _("Run netcheck as root to see the exact rule.")
        return Hint(text, ["nft -a list ruleset", "iptables -S OUTPUT", "ip6tables -S OUTPUT"])
    text = _("The host answers ping but its SYNs to {address} port {port} get no answer at "
             "all: a firewall drops them (on the server or a router on the way).").format(
                 **where)
    if fw is None or not fw.readable:
        text += " " + _("This host's own output rules could not be read (needs root): if it "
                        "filters outgoing traffic, `nft list ruleset` as root shows it.")
    return Hint(text, [f"nping --tcp -p {r.port} {r.address}",
                       f"nmap -Pn -sT -p {r.port} {r.address}",
                       f"tcpdump -ni any host {r.address} and port {r.port}   # "
                       + _("on the server")])


async def _addresses_to_judge(ctx: Context, every: list[str]) -> list[str]:
    """The addresses whose connects this rung judges (every one, when none is left).

    A family the network check already found unreachable is its finding, not ours, and so
    is one whose address or route failed; its connects are still shown (every resolved
    address is tried once, shared with it).
    """
    from netcheck.checks.network import families_judged_below

    network = ctx.result("network.target")
    skip_fams = set(network.evidence.get("unreachable_families", [])) if network else set()
    below = await families_judged_below(ctx)
    return [a for a in family.used(ctx.facts, every)
            if family.label(family.family_of(a)) not in skip_fams
            and family.family_of(a) not in below] or every


async def _local_blocks(ctx: Context, judged: Sequence[TcpResult]
                        ) -> tuple[dict[str, Optional[str]], Optional[firewall.LocalFirewall]]:
    """Address -> why this host stopped that connect itself (None: it did not), and this
    host's firewall when a connect failed (None when every handshake completed)."""
    from netcheck.probes import firewall

    # Pings only tell something about a connect that got no answer (this host refusing to
    # send them is the sign of its own firewall); a sweep of open ports sends none.
    silent = [r.address for r in judged if r.state == "timeout"]
    pings = await shared.ping_all(ctx, silent) if silent else []
    eperm = {p.address for p in pings
             if p.state == "send_error" and p.error in ("EPERM", "EACCES")}
    fw: Optional[firewall.LocalFirewall] = None
    if any(not r.handshake for r in judged):
        # Already read by transport.firewall in parallel: only the wait for it is shared.
        fw = await firewall.for_target(ctx)
    own = _own_addresses(ctx)
    failed_here = _retransmissions_failed(ctx) if silent else 0
    return {r.address: _local_block(r, own, eperm, fw, failed_here) for r in judged}, fw


_RETRANS_BEFORE = ("tcp", "retrans-fail-before")


def _count_retransmissions(ctx: Context) -> None:
    """TCPRetransFail before this run's connects (``Check.starts``): without root the output
    rules cannot be read, but a SYN they drop fails its retransmission in the kernel."""
    from netcheck.probes import netstat

    if ctx.target is not None:
        ctx.value(_RETRANS_BEFORE, lambda: netstat.counter(ctx.facts, "TcpExt", "TCPRetransFail"))


def _retransmissions_failed(ctx: Context) -> int:
    """How many TCP retransmissions the kernel failed to send since the run started (0: none,
    or not counted)."""
    from netcheck.probes import netstat

    before: Optional[int] = ctx.value(_RETRANS_BEFORE, lambda: None)
    after = netstat.counter(ctx.facts, "TcpExt", "TCPRetransFail")
    return after - before if before is not None and after is not None else 0


def _connect_evidence(port: int, results: Sequence[TcpResult], judged: Sequence[TcpResult],
                      fw: Optional[firewall.LocalFirewall]) -> dict[str, Any]:
    evidence: dict[str, Any] = {
        "port": port, "connects": [r.to_json() for r in results],
        "working": [r.address for r in results if r.handshake],
        "failing": [r.address for r in results if not r.handshake]}
    if fw is not None and not fw.readable:
        evidence["local_firewall"] = firewall_unreadable(fw.reason, english=True)
    through = [r for r in judged if r.handshake]
    if through:
        evidence["rtt_ms"] = round(min(r.rtt_ms or 0 for r in through), 3)
    return evidence


def _connect_result(verdict: Judgement, local: dict[str, Optional[str]],
                    fw: Optional[firewall.LocalFirewall], evidence: dict[str, Any]) -> Result:
    """The judgement as the rung's result, with the hint for the connect it is about."""
    if verdict.status is Status.PASS:
        return passed(verdict.summary, **evidence)
    bad = verdict.subject
    assert bad is not None and verdict.code is not None
    hint = _hint(verdict.code, bad, local[bad.address], fw)
    if verdict.status is Status.WARN:
        evidence["family"] = verdict.family
        fam = family.label(family.family_of(bad.address))
        return warned(verdict.code, verdict.summary, Hint(
            _("Clients that prefer {family} will fail or wait.").format(family=fam) + " "
            + hint.text, hint.commands), **evidence)
    return failed(verdict.code, verdict.summary, hint, **evidence)


@check("transport.tcp", Layer.TRANSPORT, requires=("network.target",), proves_flow=True,
       codes=(*CLOSED_CODES, OPEN_UNEXPECTED), starts=_count_retransmissions)
async def tcp_connect(ctx: Context) -> Result:
    """Port accepts TCP connections.

    A connect to every resolved address, each told apart: SYN-ACK (open), RST to the SYN
    (nothing listens), an ICMP error and who sent it (the target or a router on the way),
    or silence (the SYNs sent are counted). An open connection is watched for a few round
    trips without sending anything: the server speaks first, closes, resets before any byte
    (a TCP-wrappers or fail2ban-style block: the application rung's finding), or waits.
    What this host stops itself (EPERM, a reject from its own address, a rule of its output
    chains; without root to read them, SYN retransmissions the kernel failed to send, its
    TCPRetransFail counter) is its own firewall's doing; one address family failing while
    the other works
    is a warning naming the family. A port expected closed (batch profile, exporter module:
    ``expect = "closed"``) passes when it refuses, drops or rejects the connection and fails
    when it accepts it.
    """
    assert ctx.target is not None
    every = await ctx.addresses()
    if not every:
        return skipped(_("the target has no address to connect to"))
    addrs = await _addresses_to_judge(ctx, every)
    results = await shared.tcp_all(ctx, every, ctx.target.port)
    judged = [r for r in results if r.address in addrs]
    local, fw = await _local_blocks(ctx, judged)
    verdict = judge_connects(judged, local)
    evidence = _connect_evidence(ctx.target.port, results, judged, fw)
    return judge_expectation(_connect_result(verdict, local, fw, evidence),
                             ctx.options.expect, ctx.target)
