"""Judging the outcomes together, once the checks ran: what the flow proved works is off its
path (:func:`top_down`), what followed from a lower rung's failure is skipped for it
(:func:`follow_ons`), then the root cause and the verdict.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Optional

from netcheck import family as addrfam
from netcheck.facts import RouteLookup
from netcheck.i18n import _
from netcheck.model import CheckOutcome, Result, Status, Verdict
from netcheck.registry import Check
from netcheck.runner.context import Context, PathInfo, run_blocking
from netcheck.runner.schedule import UNFINISHED, _not_tried


def top_down(outcomes: list[CheckOutcome], checks: list[Check]) -> list[CheckOutcome]:
    """When the exchange the user asked about worked, nothing below it is why it fails.

    A check declared ``proves_flow`` that passed (or warned: one family still carried the
    flow) proves its exchange went to the target and came back, so every layer under it
    worked for this flow. What it measured counts, not what an expectation made of it: a
    port closed as expected proves nothing, an open one that should be shut does. A failure
    below it of a check declared ``scope="host"`` (about the host as a whole: its devices,
    the network manager, the loopback, other interfaces) is then off this flow's path: it
    becomes a warning, never the root cause of a failure. Findings about the path itself
    stay what they are: a handshake does not prove that full-size packets pass. Each demoted
    finding keeps its code and hint and names its proof in ``evidence.top_down``. A check
    the deadline cut short that the proof covers — one about the host as a whole, or a rung
    of the path's reachability (``path_part``) — cannot be why the flow fails either: it is
    a skip saying so (an ``error`` would make the verdict ``unknown``). One that measures the
    path (loss, the MTU, interface errors) stays an error: nothing proved it.

    Through a proxy (the proof's ``evidence.proxy``), the flow goes to the proxy, not to the
    target: the rungs that test the target directly (its ping, its port, its TLS, its name)
    are off the flow's path too, and so demoted; the rungs of the path the flow shares with
    them (``Check.path_part``: interface, address, route, gateway) stay what they are.
    """
    declared = {c.id: c for c in checks}
    proofs = [o for o in outcomes
              if (o.result.measured or o.status) in (Status.PASS, Status.WARN)
              and getattr(declared.get(o.id), "proves_flow", False)]
    if not proofs:
        return outcomes
    proof = max(proofs, key=lambda o: int(o.layer))
    proxy = proof.result.evidence.get("proxy")
    out = []
    for o in outcomes:
        chk = declared.get(o.id)
        host_scoped = chk is not None and chk.scope == "host"
        off_path = chk is not None and (host_scoped or bool(proxy) and not chk.path_part)
        covered = chk is not None and (host_scoped or bool(chk.path_part))
        if o.status is Status.ERROR and UNFINISHED in o.result.evidence and covered \
                and o.layer <= proof.layer:
            o = replace(o, result=replace(o.result, status=Status.SKIP, summary=_(
                "{summary}; {check} proved the flow works").format(
                    summary=o.result.summary, check=proof.id)))
        if o.status is Status.FAIL and off_path and o.layer < proof.layer:
            note = (_("(off the path of this flow: it goes through the proxy {proxy}, which "
                      "carries it)").format(proxy=proxy) if proxy and not host_scoped
                    else _("(off the path of this flow: {check} proved it works)").format(
                        check=proof.id))
            result = replace(o.result, status=Status.WARN, summary=f"{o.result.summary} {note}",
                             evidence={**o.result.evidence, "top_down": {
                                 "was": Status.FAIL.value, "proved_by": proof.id}})
            o = replace(o, result=result)
        out.append(o)
    return out


# Route lookups that give no way out: what a failed interface, address or route explains.
_NO_ROUTE = frozenset({"none", "unreachable", "blackhole", "prohibit", "throw"})


def _follows_from(lookup: Optional[RouteLookup], part: str, family: Optional[str],
                  path: PathInfo) -> bool:
    """Whether packets to ``lookup.destination`` take the part of the path a failed rung
    judged (``part``: Check.path_part; ``family``: the family it failed for, or None)."""
    if lookup is None or lookup.type == "local" or lookup.type == "error":
        return False  # this host itself (a stub on lo), or not known: not the path's doing
    fam = addrfam.family_of(lookup.destination)
    if family is not None and addrfam.name(fam) != family:
        return False
    if lookup.type in _NO_ROUTE:
        # No way out at all: a link taken down (its routes go with it), a missing address
        # or route explains that; a wrong gateway does not.
        return part in ("interface", "address", "route")
    if lookup.oif is None or lookup.oif != path.ifindex:
        return False  # another interface: another path
    if part == "gateway":
        judged = path.for_family(fam)
        return lookup.gateway is not None and judged is not None \
            and lookup.gateway == judged.gateway
    return part in ("interface", "address")


def judge_follow_ons(outcomes: list[CheckOutcome], checks: list[Check], path: PathInfo,
                     lookups: dict[str, RouteLookup]) -> list[CheckOutcome]:
    """Failures that follow from a lower rung's failure become skips blocked by it.

    A failed check that rests on silence (``Result.unanswered``: a name server, the target)
    while a lower rung of the path failed — the interface, its address, the route, the
    gateway (``Check.path_part``) — says nothing of its own: the packets it waited for took
    the broken path. The route lookup of each silent address (``lookups``) decides whether
    they did: a resolver on loopback or behind another interface is on another path and its
    failure stays. The check becomes ``skip`` with ``blocked_by`` naming the rung, and so do
    the checks it blocked; what it saw stays in ``evidence.follow_on``.
    """
    declared = {c.id: c for c in checks}
    rank = {c.id: (int(c.layer), c.order) for c in checks}
    rungs = sorted((o for o in outcomes if o.status is Status.FAIL and o.id in declared
                    and declared[o.id].path_part), key=lambda o: rank[o.id])
    if not rungs:
        return outcomes
    moved: dict[str, CheckOutcome] = {}
    for o in outcomes:
        if o.status is not Status.FAIL or not o.result.unanswered or o.id not in rank:
            continue
        for rung in rungs:
            if rank[rung.id] >= rank[o.id]:
                break
            family = rung.result.evidence.get("family")
            part = declared[rung.id].path_part
            if all(_follows_from(lookups.get(addrfam.bare(a)), part, family if family in (
                    addrfam.IPV4, addrfam.IPV6) else None, path) for a in o.result.unanswered):
                moved[o.id] = rung
                break
    if not moved:
        return outcomes
    out = []
    for o in outcomes:
        cause = moved.get(o.id)
        if cause is not None:
            r = o.result
            o = replace(o, result=Result(
                Status.SKIP, _not_tried(cause, cause.id), blocked_by=cause.id,
                evidence={**r.evidence, "follow_on": {
                    "was": r.status.value, "code": r.code, "summary": r.summary,
                    "unanswered": list(r.unanswered)}}))
        elif o.result.blocked_by in moved:  # blocked by a follow-on: by its cause, then
            cause = moved[o.result.blocked_by]
            o = replace(o, result=replace(o.result, summary=_not_tried(cause, cause.id),
                                          blocked_by=cause.id))
        out.append(o)
    return out


async def follow_ons(ctx: Context, outcomes: list[CheckOutcome],
                     checks: list[Check]) -> list[CheckOutcome]:
    """:func:`judge_follow_ons` with the kernel's route lookups for the silent addresses."""
    silent = sorted({addrfam.bare(a) for o in outcomes if o.status is Status.FAIL
                     for a in o.result.unanswered})
    task = ctx._memo.get("path")
    if not silent or task is None or not task.done() or task.cancelled() or task.exception():
        return outcomes
    path: PathInfo = task.result()
    known = {lk.destination: lk for lk in [*path.lookups, *path.by_family.values()]}
    missing = [a for a in silent if a not in known]
    if missing:
        from netcheck.facts import route_get

        names = {lk.index: lk.name for lk in ctx.facts.links}
        try:
            found = await asyncio.wait_for(
                run_blocking(route_get, missing, path.ifindex if ctx.options.interface
                             else None, names), timeout=max(0.05, min(1.0, ctx.time_left())))
        except (asyncio.TimeoutError, OSError):
            found = []
        known.update({lk.destination: lk for lk in found})
    return judge_follow_ons(outcomes, checks, path, known)


def choose_root_cause(outcomes: list[CheckOutcome]) -> Optional[CheckOutcome]:
    """The one finding that best explains the others.

    The lowest failing layer wins; within a layer, the check declared first (the ladder's
    order: interface before address before route before gateway). Checks only judge the
    path to the target, so a broken interface elsewhere never gets here. A warning can be
    the root cause only when nothing failed. A finding that is a consequence of another of
    the same status (:func:`explained_by`) gives way to it.
    """
    for status in (Status.FAIL, Status.WARN):
        found = [o for o in outcomes if o.status is status]
        if found:
            # ... except a finding that explains failures below its own layer (EXPLAINS_BELOW)
            below = next((o for o in found if o.result.code in EXPLAINS_BELOW), None)
            if below is not None:
                return below
            return next((o for o in found if explained_by(o, found) is None), found[0])
    return None


# Slowness that lost or slow packets give anyway: a resolver waits for the datagram that got
# lost, every exchange takes the path's round trips.
SLOWNESS = frozenset({"DNS_SLOW"})
PATH_QUALITY = frozenset({"PATH_LOSS", "PATH_LATENCY"})


def explained_by(outcome: CheckOutcome, others: list[CheckOutcome]) -> Optional[CheckOutcome]:
    """The finding among ``others`` that ``outcome`` is a consequence of, or None.

    - A finding that rests on the silence of some addresses (``Result.unanswered``: a name
      server that times out) follows from a finding that names their family as broken
      (``evidence.family``: that family's address, route, gateway or target fails): a
      resolver waits for an IPv4 name server because IPv4 does not get through.
    - Slowness (SLOWNESS) follows from loss or latency on the path (PATH_QUALITY).
    Between two findings that explain each other (a silent name server and the target's
    silence, both naming IPv4), the one that does not rest on silence is the cause.
    """
    silent = {addrfam.family_of(a) for a in outcome.result.unanswered}
    for other in others:
        if other is outcome or int(other.layer) > int(outcome.layer):
            continue  # a higher layer's finding never explains a lower one's
        family = other.result.evidence.get("family")
        if len(silent) == 1 and family in (addrfam.IPV4, addrfam.IPV6) and \
                addrfam.from_name(family) in silent and not other.result.unanswered:
            return other
        if outcome.result.code in SLOWNESS and other.result.code in PATH_QUALITY:
            return other
    return None


# Findings that cause the failures of lower layers, so they outrank them. This host's input
# chain dropping the replies (an L4 finding of transport.input_firewall, which fails only
# for probes that went out and got nothing back) makes the gateway, the name servers and the
# target look silent at L3: DNS_RESOLVER_UNREACHABLE or TARGET_UNREACHABLE are its symptoms.
# A container that publishes the port but is down (or its engine stopped: server mode's
# SRV_CONTAINER_DOWN, L7) is why nothing listens on the port (SRV_NOT_LISTENING, L4).
# A captive portal (CAPTIVE_PORTAL, L7) resets or drops what it does not intercept and
# rewrites DNS or spoofs certificates: TCP_REFUSED, TLS_CERT_HOSTNAME_MISMATCH... are its doing.
EXPLAINS_BELOW = frozenset({"FW_LOCAL_INPUT_BLOCK", "SRV_CONTAINER_DOWN", "CAPTIVE_PORTAL"})


def verdict_of(outcomes: list[CheckOutcome]) -> Verdict:
    statuses = {o.status for o in outcomes}
    if Status.FAIL in statuses:
        return Verdict.BROKEN
    if Status.WARN in statuses:
        return Verdict.DEGRADED
    if Status.ERROR in statuses:
        return Verdict.UNKNOWN
    return Verdict.OK
