"""The target rung (``network.target``): the target answers, in each family the flow needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from netcheck.checks.network.path import _path_finding, _path_hint, _syns_lost_to_loss
from netcheck.checks.network.view import families_judged_below

from netcheck import hints
from netcheck.i18n import _
from netcheck.lazy import asyncio, lazy
from netcheck.model import Hint, Layer, Result, Status, failed, passed, skipped, warned
from netcheck.registry import check

if TYPE_CHECKING:
    from netcheck import family as addrfam
    from netcheck.probes import icmp, shared
    from netcheck.runner import Context
else:  # imported at first use: `netcheck checks` lists the checks without the probes
    addrfam = lazy("netcheck.family")
    icmp, shared = (lazy(f"netcheck.probes.{name}")
                    for name in ("icmp", "shared"))


# -- the target ----------------------------------------------------------------------

# How one address answered, best first: what a family's best address says is its state.
_ANSWER_RANK = ("ping", "tcp", "local", "unknown", "icmp", "silent")


def _answer(p: icmp.PingResult, c: Any, address: str,
            own: frozenset[str] = frozenset()) -> str:
    if p.state == "reply":
        return "ping"
    if c.answered or (c.state == "icmp" and c.icmp_from == address):
        return "tcp"  # SYN-ACK, RST, or a reject sent by the target itself
    if c.state == "local" or (p.state == "send_error" and p.error in ("EPERM", "EACCES")):
        return "local"  # this host's own firewall stopped the probe
    if any(x.state in ("icmp", "icmp_error") and (x.icmp_from or "").split("%")[0] in own
           for x in (p, c)):
        return "local"  # an ICMP error made by this host itself: its output chain rejects
    if p.state == "icmp_error" or c.state == "icmp":
        return "icmp"
    if p.state == "unavailable":
        return "unknown"
    return "silent"


@check("network.target", Layer.NETWORK,
       requires=("network.gateway", "dns.resolution", "dns.hosts_file"),
       codes=("TARGET_UNREACHABLE", "TARGET_NO_ICMP", "PATH_LOSS", "PATH_LATENCY"))
async def target_reachable(ctx: Context) -> Result:
    """Target answers.

    Ping and a TCP connect to the port, sent together, to every address, and a burst of
    pings to the gateway and the target counted like ``ping -c 30``. A target that drops
    ping but answers TCP is fine (a warning, never the root cause of a failure); one that
    answers nothing at all, or whose router says "unreachable", is not reachable; one
    address family that fails while the other works is a warning naming it. Some answers
    back is never "unreachable": lost round trips are PATH_LOSS (to the gateway, or beyond
    it), round trips far slower or more uneven than the gateway's are PATH_LATENCY.
    """
    assert ctx.target is not None
    addrs = await _addresses_to_try(ctx)
    if not addrs:
        return skipped(_("the target has no address to try"))
    pings, conns, bursts = await _probe_together(ctx, addrs)
    answers, blocked, silent = await _answers(ctx, addrs, pings, conns)
    by_family = _best_by_family(answers)
    evidence = _evidence(answers, pings, conns, bursts, blocked, silent)
    working = sorted(f for f, how in by_family.items() if how in ("ping", "tcp"))
    broken = {f: how for f, how in by_family.items() if how in ("icmp", "silent")}
    finding = _path_finding(bursts) if working else None
    if finding is not None and (finding[0] is Status.FAIL or not broken):
        return await _path_result(ctx, finding, addrs, conns, bursts, evidence)
    if working and broken:
        return _family_unreachable(ctx, addrs, working, sorted(broken), pings, conns, evidence)
    if working:
        return _target_answers(ctx, addrs, pings, evidence)
    if "local" in by_family.values():
        return skipped(_("this host's own firewall stops the probes to {address}: see the "
                         "transport check").format(address=addrs[0]), **evidence)
    if not broken:
        return skipped(_("cannot ping (needs root or CAP_NET_RAW) and TCP got no answer: an "
                         "unreachable target and a filtered port look the same"), **evidence)
    path = await ctx.path()
    return failed("TARGET_UNREACHABLE", _why_silent(ctx, addrs[0], pings, conns),
                  Hint(_("The gateway works but nothing comes back from the target: the host "
                         "is down, or a router or firewall beyond the gateway drops the "
                         "traffic. Find the last hop that answers."),
                       [hints.trace(addrs[0]),
                        f"ping -c 3 {path.gateway or addrs[0]}"]), **evidence)


async def _addresses_to_try(ctx: Context) -> list[str]:
    """The target's addresses in the families the flow uses (up to 8), less those of a family
    already judged below; none when the target has no address to try."""
    addrs = addrfam.used(ctx.facts, (await ctx.addresses())[:8])
    if not addrs:
        return []
    # A family whose address or route already failed (or warned) was judged there: its
    # silence here would be that finding again, not the target's (not twice).
    judged = await families_judged_below(ctx)
    return [a for a in addrs if addrfam.family_of(a) not in judged] or addrs


async def _probe_together(ctx: Context, addrs: list[str]
                          ) -> tuple[list[icmp.PingResult], list[Any], dict[str, Any]]:
    """A ping and a TCP connect to every address, and the path's echo bursts, sent together:
    the pings (a lost one replaced by its burst's reply), the connects and the bursts."""
    assert ctx.target is not None
    bursts_task = shared.path_bursts(ctx)
    ping_task = asyncio.ensure_future(shared.ping_all(ctx, addrs))
    conns = await shared.tcp_all(ctx, addrs, ctx.target.port)
    opened = [c.address for c in conns if c.state == "open"]
    if opened and ctx.target.scheme in ("http", "https"):
        # The GET the application check will send anyway starts now, while a ping that
        # gets no answer runs out its timeout: waits overlap instead of adding up.
        shared.http_get(ctx, opened[0])
    pings = await ping_task
    bursts = await _bursts_in_time(ctx, bursts_task)
    # A reply to any echo of the burst proves the address answers, whatever one ping met.
    pings = [_with_burst(p, bursts["targets"].get(p.address)) for p in pings]
    return pings, conns, bursts


async def _answers(ctx: Context, addrs: list[str], pings: list[icmp.PingResult],
                   conns: list[Any]) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """How each address answered (see :data:`_ANSWER_RANK`), what this host's own firewall
    blocks, and the addresses that were silent before the firewall was asked."""
    own = frozenset(x.address for x in ctx.facts.addresses) - set(addrs)
    answers = {a: _answer(p, c, a, own) for a, p, c in zip(addrs, pings, conns)}
    # Silence (or an error) may be this host's own output rules: ask the firewall finding
    # (read once per run by the transport checks; {} without CAP_NET_ADMIN).
    silent = [a for a, how in answers.items() if how in ("icmp", "silent", "unknown")]
    blocked: dict[str, str] = {}
    if silent:
        from netcheck.probes import firewall

        blocked = await firewall.blocked_addresses(ctx)
        for a in silent:
            if a in blocked:
                answers[a] = "local"
    return answers, blocked, silent


def _best_by_family(answers: dict[str, str]) -> dict[str, str]:
    """Each family's state: how its best address answered."""
    by_family: dict[str, str] = {}
    for a, how in answers.items():
        fam = "IPv6" if ":" in a else "IPv4"
        best = by_family.get(fam, "silent")
        by_family[fam] = min(best, how, key=_ANSWER_RANK.index)
    return by_family


def _evidence(answers: dict[str, str], pings: list[icmp.PingResult], conns: list[Any],
              bursts: dict[str, Any], blocked: dict[str, str],
              silent: list[str]) -> dict[str, Any]:
    """What every outcome reports: the answers, the probes, the bursts, the local firewall's
    verdicts on silent addresses and the fastest reply."""
    evidence: dict[str, Any] = {"answers": answers, "ping": [p.to_json() for p in pings],
                                "tcp": [c.to_json() for c in conns],
                                "bursts": {a: b.to_json() for part in ("gateways", "targets")
                                           for a, b in bursts[part].items()}}
    if blocked:
        evidence["local_firewall"] = {a: why for a, why in blocked.items() if a in silent}
    replies = [p for p in pings if p.state == "reply"]
    if replies:
        evidence["rtt_ms"] = round(min(p.rtt_ms or 0 for p in replies), 3)
        evidence["answering_ping"] = [p.address for p in replies]
    return evidence


async def _path_result(ctx: Context, finding: tuple[Status, str, str, str, str],
                       addrs: list[str], conns: list[Any], bursts: dict[str, Any],
                       evidence: dict[str, Any]) -> Result:
    """PATH_LOSS or PATH_LATENCY, weighed against the flow's own handshake, located on the
    link to the gateway or beyond it."""
    status, code, text, where, family = finding
    mine = [c for c in conns if addrfam.name(addrfam.family_of(c.address)) == family]
    status, text = _weighed_by_handshake(ctx, status, code, text, mine, bursts)
    path = await ctx.path()
    target_addr = next((a for a in bursts["targets"] if ("ipv6" if ":" in a else "ipv4")
                        == family), addrs[0])
    gw = next((g for g in bursts["gateways"] if (":" in g) == (":" in target_addr)), None)
    evidence["family"] = family
    evidence["location"] = {
        "last_hop": 1 if where == "beyond" else None,
        "address": gw if where in ("link", "beyond") else target_addr,
        "method": "icmp-echo burst", "text": text}
    return Result(status, text, code=code, evidence=evidence,
                  hint=_path_hint(code, where, gw, target_addr, path.interface))


def _weighed_by_handshake(ctx: Context, status: Status, code: str, text: str,
                          mine: list[Any], bursts: dict[str, Any]) -> tuple[Status, str]:
    """The path finding's status and text once the family's TCP handshakes are counted."""
    assert ctx.target is not None
    if status is Status.FAIL and any(c.answered for c in mine):
        # The flow's own packets (its TCP handshake) went and came back: echoes lost on
        # the way (a router that rate-limits or deprioritises ICMP, or loss TCP's
        # retransmissions get over) degrade it, they do not break it.
        status = Status.WARN
        text += " " + _("(but the TCP handshake to port {port} gets through: the lost "
                        "echoes slow the flow down, they do not stop it)").format(
                            port=ctx.target.port)
    elif code == "PATH_LOSS" and mine and all(c.state == "timeout" for c in mine) and \
            _syns_lost_to_loss(mine, bursts["targets"].get(mine[0].address)):
        # ... and when the handshake's SYNs got no answer either, as often as the echoes'
        # loss would have it, the loss stops the flow: that silence proves no firewall.
        status = Status.FAIL
        text += " " + _("(and the TCP handshake to port {port} got no answer: the loss "
                        "stops the flow)").format(port=ctx.target.port)
    return status, text


def _family_unreachable(ctx: Context, addrs: list[str], working: list[str], broken: list[str],
                        pings: list[icmp.PingResult], conns: list[Any],
                        evidence: dict[str, Any]) -> Result:
    """TARGET_UNREACHABLE as a warning: one family fails while the other works."""
    fam = broken[0]
    bad = next(a for a in addrs if ("IPv6" if ":" in a else "IPv4") == fam)
    evidence["unreachable_families"] = broken
    evidence["family"] = addrfam.name(addrfam.family_of(bad))  # the contract's families rule
    return warned("TARGET_UNREACHABLE",
                  _("{family} {problem} while {working} works").format(
                      family=fam, problem=_why_silent(ctx, bad, pings, conns),
                      working=" and ".join(working)),
                  Hint(_("Clients that prefer {family} fail or wait for a timeout: check "
                         "{family} routing beyond the gateway (or remove the {family} "
                         "address from DNS).").format(family=fam),
                       [hints.trace(bad), f"ping -c 3 {bad}"]),
                  **evidence)


def _target_answers(ctx: Context, addrs: list[str], pings: list[icmp.PingResult],
                     evidence: dict[str, Any]) -> Result:
    """The target answers in every family tried: to ping, or only to TCP (ping dropped, or not
    allowed here)."""
    assert ctx.target is not None
    port = ctx.target.port
    replies = [p for p in pings if p.state == "reply"]
    if replies:
        return passed(_("{address} answers ping in {ms} ms").format(
            address=replies[0].address, ms=f"{replies[0].rtt_ms:.1f}"), **evidence)
    if all(p.state == "unavailable" for p in pings):
        return passed(_("{address} answers TCP port {port} (ping needs root here)").format(
            address=addrs[0], port=port), **evidence)
    return warned("TARGET_NO_ICMP",
                  _("{address} drops ping but answers TCP port {port}").format(
                      address=addrs[0], port=port),
                  Hint(_("Nothing to fix for connectivity: the target (or a firewall "
                         "before it) filters ICMP echo. Test it with TCP probes "
                         "(nping --tcp-connect) instead of ping.")), **evidence)


async def _bursts_in_time(ctx: Context, task: asyncio.Future[dict[str, Any]]) -> dict[str, Any]:
    """The path's bursts, if they end while the run's deadline still leaves room to report;
    else none (a scrape with a short deadline judges without loss statistics)."""
    from netcheck.runner import DEADLINE_MARGIN

    left = ctx.time_left() - DEADLINE_MARGIN - 0.05
    done, _pending = await asyncio.wait({task}, timeout=max(0.0, left))
    return task.result() if done else {"gateways": {}, "targets": {}}


def _with_burst(ping: icmp.PingResult, burst: Optional[icmp.BurstResult]) -> icmp.PingResult:
    """The ping, or a reply made of the burst's fastest one when the single ping was lost."""
    if ping.state == "reply" or burst is None or not burst.rtts_ms:
        return ping
    return icmp.PingResult(ping.address, "reply", method=burst.method,
                           rtt_ms=min(burst.rtts_ms), size=burst.size)


def _why_silent(ctx: Context, address: str, pings: list[icmp.PingResult],
                conns: list[Any]) -> str:
    """``ADDRESS is unreachable: ROUTER says ...`` or ``ADDRESS answers neither ...``."""
    for x in [*pings, *conns]:
        if x.address == address and x.state in ("icmp", "icmp_error"):
            return _("{address} is unreachable: {router} says {icmp}").format(
                address=address, router=x.icmp_from or _("a router"), icmp=x.icmp_name)
    assert ctx.target is not None
    return _("{address} answers neither ping nor TCP port {port}").format(
        address=address, port=ctx.target.port)


def _header_bytes(address: str) -> int:
    return 48 if ":" in address else 28  # IP + ICMP headers
