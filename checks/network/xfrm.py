"""The IPsec rung (``network.ipsec``): what the xfrm policies and SAs do to the flow's
packets.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any, Optional

from netcheck.checks.network.common import _loopback
from netcheck.checks.network.judging import OK, _combine
from netcheck.checks.network.view import L3View, _l3_view, _route_lookups

from netcheck.i18n import _
from netcheck.lazy import asyncio, lazy
from netcheck.model import Hint, Layer, Result, failed, passed, skipped, warned
from netcheck.registry import check

if TYPE_CHECKING:
    from netcheck import family as addrfam
    from netcheck.probes.xfrm import XfrmVerdict
    from netcheck.runner import Context
else:  # imported at first use: `netcheck checks` lists the checks without the probes
    addrfam = lazy("netcheck.family")


def _xfrm(ctx: Context) -> asyncio.Task[Any]:
    """The run's one reading of the xfrm policies and SAs (None without CAP_NET_ADMIN)."""
    async def read() -> Any:
        from netcheck.probes import firewall, xfrm

        if not firewall.has_cap_net_admin():
            return None
        return await ctx.blocking(xfrm.read, max(0.5, min(2.0, ctx.timeout)))

    return ctx.memo_shared(("xfrm", "read"), read)


_PROTO_NUMBERS = {"tcp": 6, "udp": 17}
# (family, protocol, destination, port, what the policies do to it) of one flow the run sends
_JudgedFlow = tuple[int, str, str, int, "XfrmVerdict"]


def _flows_of(ctx: Context, view: L3View) -> list[tuple[int, str, str, int, Any]]:
    """(family, protocol, destination, port, lookup) of what the run sends for the flow."""
    assert ctx.target is not None
    proto = "udp" if ctx.target.scheme == "dns" else "tcp"
    flows = []
    if view.path.basis == "target":
        for lk in view.path.lookups[:8]:
            flows.append((addrfam.family_of(lk.destination), proto, lk.destination,
                          ctx.target.port, lk))
    for server in view.resolver:
        lk = next((x for x in view.path.lookups if x.destination == server), None)
        flows.append((addrfam.family_of(server), "udp", server, 53, lk))
    return flows


async def _name_server_ipsec(ctx: Context, found: Any, judged: list[Any],
                             evidence: dict[str, Any]) -> tuple[Optional[str], Optional[int],
                                                                list[int]]:
    """(code, family, working families) of the name servers' flows (resolv.conf's beyond
    this host, a local stub's upstreams) when every server of one family is cut off by a
    policy and another family's server is not; (None, None, []) otherwise."""
    from netcheck.probes import xfrm

    cfg = (await ctx.resolution()).config
    servers = [addrfam.bare(a) for a in dict.fromkeys([*cfg.nameservers, *cfg.upstreams])
               if not _loopback(addrfam.bare(a))]
    if not servers:
        return None, None, []
    lookups = await _route_lookups(ctx, servers)
    per: dict[int, list[Any]] = {}
    for server in servers:
        lk = lookups.get(server)
        v = xfrm.judge(found, lk.prefsrc if lk else None, server, _PROTO_NUMBERS["udp"], 53,
                       lk.oif if lk and lk.oif else 0)
        fam = addrfam.family_of(server)
        per.setdefault(fam, []).append(v)
        judged.append((fam, "udp", server, 53, v))
        evidence["flows"].append({"flow": f"udp {server} port 53", **v.to_json()})
    cut = [f for f, vs in per.items() if all(v.outcome in ("block", "no_sa") for v in vs)]
    working = [f for f in per if f not in cut]
    if not cut or not working:
        return None, None, []  # all cut off: dns.servers says so, with what the queries met
    first = next(v for v in per[cut[0]] if v.outcome in ("block", "no_sa"))
    return ("IPSEC_POLICY_BLOCK" if first.outcome == "block" else "IPSEC_NO_SA"), cut[0], working


# The kernel's counters of what its xfrm layer discarded on the way out
# (/proc/net/xfrm_stat, readable without root): no SA for a policy's template, a block policy.
_DROP_COUNTERS = {"XfrmOutNoStates": "IPSEC_NO_SA", "XfrmOutPolBlock": "IPSEC_POLICY_BLOCK"}
_BEFORE = ("xfrm", "counters-before")


def _xfrm_counters(ctx: Context) -> Optional[dict[str, int]]:
    text = ctx.facts.read_sys("proc", "net", "xfrm_stat")
    if not text:
        return None
    found: dict[str, int] = {}
    for line in text.splitlines():
        name, _sep, value = line.partition(" ")
        if name in _DROP_COUNTERS and value.strip().isdigit():
            found[name] = int(value.strip())
    return found or None


def _count_before(ctx: Context) -> None:
    """The xfrm drop counters before this run's probes leave (``Check.starts``): without
    root the policies cannot be read, but what they discard of the flow is counted."""
    if ctx.target is not None and not ctx.facts.privileged:
        ctx.value(_BEFORE, lambda: _xfrm_counters(ctx))


@check("network.ipsec", Layer.NETWORK, requires=("network.route",),
       codes=("IPSEC_NO_SA", "IPSEC_POLICY_BLOCK"), starts=_count_before)
async def ipsec(ctx: Context) -> Result:
    """IPsec policies let the traffic out.

    The kernel's xfrm policies (``ip xfrm policy``, read over netlink) are matched against
    each flow the run sends (to the target's addresses and port; to the name servers while
    the name does not resolve), direction out, as the kernel matches them: a covering policy
    with ``action block`` discards the flow; one with a template sends it only through a
    security association (``ip xfrm state``), and without one — the tunnel never came up —
    the packets vanish. Reading them needs root (CAP_NET_ADMIN); without it, when the
    flow's own probes go unanswered, the kernel's drop counters (``/proc/net/xfrm_stat``:
    XfrmOutNoStates, XfrmOutPolBlock), read before and after them, say whether IPsec
    discarded its packets.
    """
    if ctx.target is None:
        return skipped(_("no target"))
    view = await _l3_view(ctx)
    found = await _xfrm(ctx)
    if found is None:
        return await _counted_drops(ctx)
    if not found.readable:
        return skipped(_("cannot read the IPsec policies: {error}").format(error=found.error))
    if not any(p.direction == "out" for p in found.policies):
        return passed(_("no IPsec policy on this host"), policies=0)
    judged = _judge_flows(found, _flows_of(ctx, view))
    evidence: dict[str, Any] = {
        "policies": len(found.policies), "states": len(found.states),
        "flows": [{"flow": f"{proto} {dst} port {port}", **v.to_json()}
                  for _f, proto, dst, port, v in judged]}
    code, fam, _part, working = _combine(view.flow, _family_states(view, judged),
                                         "IPSEC_NO_SA")
    if code is None and ctx.target.is_name and not view.resolver:
        # The name resolved, but the host still asks its name servers for every name: one
        # family's servers cut off while the other's answer is that family lost.
        code, fam, working = await _name_server_ipsec(ctx, found, judged, evidence)
    if code is None:
        return _ipsec_passed(judged, evidence)
    return _ipsec_cuts(code, fam, working, judged, evidence)


def _judge_flows(found: Any, flows: list[tuple[int, str, str, int, Any]]
                 ) -> list[_JudgedFlow]:
    """(family, protocol, destination, port, verdict) of each flow, matched against the
    policies as the kernel matches them (from its route's source address and interface)."""
    from netcheck.probes import xfrm

    judged: list[_JudgedFlow] = []
    for fam, proto, dst, port, lk in flows:
        verdict = xfrm.judge(found, lk.prefsrc if lk else None, dst, _PROTO_NUMBERS[proto],
                             port, lk.oif if lk and lk.oif else 0)
        judged.append((fam, proto, dst, port, verdict))
    return judged


def _family_states(view: L3View, judged: list[_JudgedFlow]
                   ) -> dict[int, str]:
    """Per family of the flow: ok, or the code of a policy that cuts off every flow of it."""
    states: dict[int, str] = {}
    for fam in view.flow.all:
        mine = [v for f, _p, _d, _port, v in judged if f == fam]
        bad = [v for v in mine if v.outcome in ("block", "no_sa")]
        states[fam] = (OK if not mine or len(bad) < len(mine) else
                       "IPSEC_POLICY_BLOCK" if bad[0].outcome == "block" else "IPSEC_NO_SA")
    return states


def _ipsec_passed(judged: list[_JudgedFlow],
                  evidence: dict[str, Any]) -> Result:
    """The flow gets out: through IPsec, or with no policy covering it."""
    protected = [(d, v) for _f, _p, d, _port, v in judged if v.outcome == "protected"]
    if protected:
        dst, v = protected[0]
        assert v.policy is not None  # a protected flow is protected by its policy
        return passed(_("the traffic to {address} goes through IPsec ({sa})").format(
            address=dst, sa=v.sa.text() if v.sa else v.policy.text()), **evidence)
    # Name servers a policy cuts off while the flow does not need them (the name resolved)
    # stay in the evidence, not in this sentence.
    free = [d for _f, _p, d, _port, v in judged if v.outcome not in ("block", "no_sa")]
    return passed(_("no IPsec policy covers the traffic to {addresses}").format(
        addresses=", ".join(dict.fromkeys(free)) or "-"), **evidence)


def _ipsec_cuts(code: str, fam: Optional[int], working: list[int],
                judged: list[_JudgedFlow],
                evidence: dict[str, Any]) -> Result:
    """IPSEC_POLICY_BLOCK or IPSEC_NO_SA for the first flow of ``fam`` a policy cuts off (a
    warning while another family works)."""
    fam_, proto, dst, port, v = next(x for x in judged if x[0] == fam
                                     and x[4].outcome in ("block", "no_sa"))
    assert v.policy is not None
    flow = _("{protocol} port {port} to {address}").format(protocol=proto, port=port,
                                                           address=dst)
    make = warned if working else failed
    evidence["family"] = addrfam.name(fam_)
    delete = f"ip xfrm policy delete {v.policy.selector.text()} dir out"
    if code == "IPSEC_POLICY_BLOCK":
        return make(code, _("an IPsec policy blocks {flow}: {policy}").format(
            flow=flow, policy=v.policy.text()),
                    Hint(_("The kernel discards this traffic before it leaves: an xfrm policy "
                           "with action block covers it. Delete the policy if it is not "
                           "wanted (or narrow its selector)."),
                         ["ip xfrm policy", delete]), **evidence)
    peer = v.missing.daddr if v.missing is not None else dst
    tools = [c for c, tool in (("swanctl --list-sas", "swanctl"), ("ipsec statusall", "ipsec"))
             if shutil.which(tool)]
    return make(code, _("{flow} must go through IPsec ({policy}), but there is no security "
                        "association for it: the tunnel to {peer} is not up").format(
                            flow=flow, policy=v.policy.text(), peer=peer),
                Hint(_("The traffic to {address} may only leave through an IPsec tunnel, and "
                       "the tunnel never came up (or went down): the kernel drops the packets "
                       "silently. Bring the tunnel up with the IKE daemon and check that IKE "
                       "(UDP 500 and 4500) reaches {peer}; remove the policy if the tunnel is "
                       "no longer wanted.").format(address=dst, peer=peer),
                     ["ip xfrm state", "ip xfrm policy", *tools, delete]), **evidence)


async def _counted_drops(ctx: Context) -> Result:
    """Without CAP_NET_ADMIN: what the kernel's xfrm layer discarded while this run's own
    probes of the flow went unanswered (its counters, before and after them). The probes are
    the ones the target's and the port's rungs judge: nothing more is sent."""
    from netcheck.probes import shared

    assert ctx.target is not None
    needs_root = _("needs root (CAP_NET_ADMIN) to read the IPsec policies")
    before: Optional[dict[str, int]] = ctx.value(_BEFORE, lambda: None)
    if before is None:
        return skipped(needs_root)
    addrs = addrfam.used(ctx.facts, (await ctx.addresses())[:8])
    if addrs:
        conns = await shared.tcp_all(ctx, addrs, ctx.target.port)
        if any(c.answered or c.handshake for c in conns):
            return skipped(needs_root + "; " + _("the flow's packets get through"))
    after = _xfrm_counters(ctx) or {}
    grown = {name: after.get(name, 0) - before.get(name, 0) for name in _DROP_COUNTERS}
    evidence = {"xfrm_stat": {name: n for name, n in grown.items() if n > 0},
                "policies": "needs root (CAP_NET_ADMIN)"}
    if grown["XfrmOutNoStates"] > 0:
        return failed("IPSEC_NO_SA", _(
            "the kernel dropped {n} packets of this run for want of an IPsec security "
            "association (XfrmOutNoStates): a policy sends the flow through a tunnel that is "
            "not up (reading the policy needs root)").format(n=grown["XfrmOutNoStates"]),
            Hint(_("An IPsec policy covers this traffic and requires a tunnel that has no "
                   "security association: the packets are dropped before they leave. As "
                   "root, find the policy and the missing tunnel; bring the tunnel up with "
                   "the IKE daemon, or remove the policy if it is not wanted."),
                 ["ip xfrm policy", "ip xfrm state", "nstat -az | grep -i xfrm",
                  "cat /proc/net/xfrm_stat"]), **evidence)
    if grown["XfrmOutPolBlock"] > 0:
        return failed("IPSEC_POLICY_BLOCK", _(
            "the kernel discarded {n} packets of this run by an IPsec policy with action "
            "block (XfrmOutPolBlock; reading the policy needs root)").format(
                n=grown["XfrmOutPolBlock"]),
            Hint(_("An IPsec policy with action block covers this traffic: the kernel "
                   "discards it before it leaves. As root, find the policy and delete it (or "
                   "narrow its selector) if it is not wanted."),
                 ["ip xfrm policy", "cat /proc/net/xfrm_stat"]), **evidence)
    return skipped(needs_root, **evidence)
