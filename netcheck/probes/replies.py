"""Replies that never came back, and whether this host's own input chains drop them.

A probe that gets no answer is usually the network's doing — but a host whose input chain
drops everything that is not explicitly allowed (``policy drop`` without ``ct state
established,related accept``) loses every reply: the gateway still answers ARP (ARP is not
IP, the inet hooks never see it), yet ping, DNS and TCP all look silent. The replies each
silent probe of this run should have had are walked through the input hook as netfilter
would see them (``ct state established``, ``ct direction reply``, a SYN-ACK or an echo
reply, arriving on the egress interface). A reply that did arrive proves the chain lets it
in, so only the silent probes are judged. Reading the rules needs CAP_NET_ADMIN.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from netcheck import family as addrfam
from netcheck.probes import shared

if TYPE_CHECKING:
    from netcheck.probes.firewall import Flow, Verdict
    from netcheck.runner import Context


@dataclass(frozen=True)
class Expected:
    """A reply this run's probe should have had."""

    role: str  # gateway | name server | target
    remote: str
    protocol: str  # icmp | tcp | udp
    port: Optional[int]  # the port probed (the reply's source port); None for ping
    local: Optional[str]  # the source address the probe left with
    ifname: Optional[str]  # where the reply comes in
    answered: bool  # did it come?

    @property
    def family(self) -> int:
        return addrfam.family_of(self.remote)


@dataclass
class InputFinding:
    """The silent probes' replies judged against the input chains."""

    readable: bool
    reason: Optional[str] = None  # why the rules could not be read
    expected: list[Expected] = field(default_factory=list)
    dropped: list[tuple[Expected, Verdict]] = field(default_factory=list)
    passing: list[tuple[Expected, Verdict]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"silent": [f"{e.role} {e.remote} {e.protocol}" for e in self.expected
                           if not e.answered],
                "answered": [f"{e.role} {e.remote} {e.protocol}" for e in self.expected
                             if e.answered],
                "dropped": [v.to_json() for _e, v in self.dropped]}


def judge_input(finding: InputFinding) -> Optional[tuple[bool, Expected, Verdict]]:
    """The reply drop that matters, as (breaks the flow, which reply, the verdict), or None.

    It breaks the flow unless the same role got an answer in another family (then only
    that family is hurt: a warning).
    """
    if not finding.dropped:
        return None
    first, verdict = finding.dropped[0]
    other = [e for e in finding.expected if e.role == first.role and e.answered
             and e.family != first.family]
    return (not other), first, verdict


async def expected_replies(ctx: Context) -> list[Expected]:
    """Every reply the run's own probes wait for: gateway pings, DNS answers, the target's."""
    import asyncio

    path = await ctx.path()
    target = ctx.target
    gateways = [lk for lk in path.by_family.values() if lk.gateway and lk.type == "unicast"]
    addrs = (await ctx.addresses())[:8] if target is not None else []
    # Every probe at once (each is the run's one, shared with the checks that judge it).
    gw_pings = [shared.ping(ctx, lk.gateway) for lk in gateways]
    conns = asyncio.ensure_future(shared.tcp_all(ctx, addrs, target.port)) if target else None
    pings = asyncio.ensure_future(shared.ping_all(ctx, addrs))
    found: list[Expected] = []
    for lk, ping in zip(gateways, await asyncio.gather(*gw_pings)):
        if ping.state in ("reply", "timeout"):
            found.append(Expected("gateway", lk.gateway, "icmp", None, lk.prefsrc, lk.ifname,
                                  ping.state == "reply"))
    if target is not None and target.is_name:
        res = await ctx.resolution()
        for server in res.servers:
            mine = [a for a in res.answers if a.server == server]
            if not mine:
                continue
            lk = path.for_family(addrfam.family_of(server))
            answered = any(a.rcode is not None for a in mine)
            if answered or all(a.error == "timeout" for a in mine):
                found.append(Expected("name server", addrfam.bare(server), "udp", 53,
                                      lk.prefsrc if lk else None, lk.ifname if lk else None,
                                      answered))
    if target is not None and conns is not None:
        by_dst = {lk.destination: lk for lk in path.lookups}
        for a, c, p in zip(addrs, await conns, await pings):
            lk = by_dst.get(a) or path.for_family(addrfam.family_of(a))
            src, ifname = (lk.prefsrc, lk.ifname) if lk else (None, None)
            if c.state in ("open", "reset", "refused", "timeout"):
                found.append(Expected("target", a, "tcp", target.port, src, ifname,
                                      c.state != "timeout"))
            if p.state in ("reply", "timeout"):
                found.append(Expected("target", a, "icmp", None, src, ifname,
                                      p.state == "reply"))
    return found


def dropped_replies(ctx: Context) -> Any:
    """The run's one judgement of the silent probes' replies (awaitable InputFinding)."""
    return ctx.memo(("replies", "input"), lambda: _dropped(ctx))


async def _dropped(ctx: Context) -> InputFinding:
    from netcheck.probes import firewall

    if not firewall.has_cap_net_admin():
        return InputFinding(False, firewall.NEEDS_ROOT)
    expected = await expected_replies(ctx)
    silent = [e for e in expected if not e.answered]
    finding = InputFinding(True, expected=expected)
    if not silent:
        return finding
    flows: list[Flow] = [firewall.reply_flow(e.remote, e.local, e.protocol, e.port, e.ifname)
                         for e in silent]
    fw = await firewall.judge_flows(ctx, flows, hook="input")
    if not fw.readable:
        return InputFinding(False, fw.reason, expected)
    for e, v in zip(silent, fw.verdicts):
        (finding.dropped if v.blocked else finding.passing).append((e, v))
    return finding
