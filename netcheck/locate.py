"""``root_cause.location``: where the packets of a failing flow stop on the path.

When the target, the port or a name server is silent (``TARGET_UNREACHABLE``,
``TCP_FILTERED``, ``DNS_RESOLVER_UNREACHABLE``, ``PMTU_BLACKHOLE``), or the port's answer may
not be the server's (``TCP_REFUSED``, ``TCP_ADMIN_PROHIBITED``), the flow is sent again with
growing TTL (:mod:`netcheck.probes.hops`) and the farthest hop that answers becomes the
location; a reset or ICMP error that comes from fewer hops away than the target is named as
a middlebox's (:func:`judge`: the traces in, the location in words out; the probes only
measure).

The runner owns one :class:`Locator` per run. It overlaps the checks instead of adding to
them: a connect to the port (or the name resolution) that has had no answer for
``SUSPECT_AFTER`` seconds starts the traces at once, while the connect is still waiting out
its timeout; a finding that needs a location starts them when it comes in (a path-MTU black
hole); and what is left is awaited only within the run's deadline. A healthy run sends not
one TTL-limited probe.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Optional

from netcheck import family as addrfam
from netcheck.i18n import _, ngettext
from netcheck.model import CheckOutcome, Location, Status
from netcheck.probes import hops
from netcheck.render.hops import limit_text

if TYPE_CHECKING:
    from netcheck.runner import Context

# Codes whose finding gets a location (the silent ones, and answers that may be forged).
SILENT = frozenset({"TARGET_UNREACHABLE", "TCP_FILTERED", "DNS_RESOLVER_UNREACHABLE",
                    "PMTU_BLACKHOLE"})
ANSWERED = frozenset({"TCP_REFUSED", "TCP_ADMIN_PROHIBITED"})
LOCATABLE = SILENT | ANSWERED
# A connect (or a resolution) silent this long is suspect: start tracing meanwhile. The
# transport check's own probe gives up on a SYN after as long (shared.TCP_STAGGER).
SUSPECT_AFTER = 0.25
MAX_HOPS = 16
ROUNDS = 3
ROUND_INTERVAL = 0.3
PROBE_WAIT = 1.0
# A trace's probes wait SILENCE_FACTOR times the target's slowest echo reply, at least
# MIN_PROBE_WAIT, when the target answered echoes (Locator._probe_wait).
SILENCE_FACTOR = 8
MIN_PROBE_WAIT = 0.25
# Kept back from the deadline besides the runner's own margin: the judgement and the report.
RESERVE = 0.1
IPV4_HEADERS, IPV6_HEADERS = 28, 48


class Memory:
    """What a run may reuse from the runs before it (the rounds of ``--watch``): how far the
    target is, in hops, measured by echo requests that reached it less than TTL seconds ago.

    The flow's own trace is never reused: where the packets stop is what changes.
    """

    TTL = 30.0

    def __init__(self) -> None:
        self.references: dict[str, tuple[float, hops.Trace]] = {}

    def reference(self, address: str) -> Optional[hops.Trace]:
        """A recent trace that reached ``address`` (None: none, or too old)."""
        found = self.references.get(address)
        if found is None or time.monotonic() - found[0] > self.TTL:
            return None
        return found[1]

    def keep(self, address: str, trace: hops.Trace) -> None:
        """Remember a trace that reached the target (one that did not tells no distance)."""
        if trace.reached is not None:
            self.references[address] = (time.monotonic(), trace)


class Locator:
    """The location probes of one run: started early, awaited within the deadline."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.traces: dict[tuple[Any, ...], asyncio.Future[hops.Trace]] = {}
        self.watcher: Optional[asyncio.Task[None]] = None
        if ctx.target is not None:
            self.watcher = asyncio.ensure_future(self._watch())

    # -- starting traces ----------------------------------------------------------------------

    def _budget(self) -> float:
        from netcheck.runner import DEADLINE_MARGIN

        return self.ctx.time_left() - DEADLINE_MARGIN - RESERVE

    def trace(self, address: str, method: str, port: Optional[int] = None,
              size: int = 56) -> asyncio.Future[hops.Trace]:
        """The run's one trace of ``method`` to ``address`` (started on the first call)."""
        key = (method, address, port, size)
        task = self.traces.get(key)
        if task is None:
            ctx = self.ctx
            qname = ctx.target.host if ctx.target is not None and ctx.target.is_name else ""
            task = asyncio.ensure_future(hops.trace(
                address, method, port=port, max_hops=MAX_HOPS, rounds=ROUNDS,
                interval=ROUND_INTERVAL, wait=self._probe_wait(address),
                budget=self._budget(), size=size, qname=qname,
                privileged=ctx.facts.privileged))
            self.traces[key] = task
        return task

    def _probe_wait(self, address: str) -> float:
        """How long each probe of a trace to ``address`` waits for its answer: the run's
        timeout (at most PROBE_WAIT), or, once the target's own echo burst is back,
        SILENCE_FACTOR times its slowest reply (at least MIN_PROBE_WAIT) — a router on the
        way answers from its slow path, rarely slower than that. Silence then costs what
        the path shows, not a second a round."""
        wait = min(PROBE_WAIT, self.ctx.options.timeout)
        bursts = self.ctx.started("path-bursts")
        if bursts is None or not bursts.done() or bursts.cancelled() or bursts.exception():
            return wait
        burst = bursts.result()["targets"].get(address)
        rtts = list(getattr(burst, "rtts_ms", None) or [])
        if not rtts:
            return wait
        return min(wait, max(MIN_PROBE_WAIT, SILENCE_FACTOR * max(rtts) / 1000))

    def reference(self, address: str) -> asyncio.Future[hops.Trace]:
        """How far the target is: echo requests, or UDP to a closed port without ICMP (a
        recent answer from the rounds before, under ``--watch``)."""
        from netcheck.probes import icmp

        memory = self.ctx.options.locate if isinstance(self.ctx.options.locate, Memory) \
            else None
        method, port = hops.ICMP, None
        if icmp.available_method(hops.family_of(address)) not in ("dgram", "raw"):
            method, port = hops.UDP, hops.UDP_BASE_PORT
        key = (method, address, port, 56)
        if key not in self.traces and memory is not None:
            known = memory.reference(address)
            if known is not None:
                done: asyncio.Future[hops.Trace] = asyncio.get_running_loop().create_future()
                done.set_result(known)
                self.traces[key] = done
                return done
        task = self.trace(address, method, port)
        if memory is not None:
            task.add_done_callback(lambda t: None if t.cancelled() or t.exception()
                                   else memory.keep(address, t.result()))
        return task

    def _flow(self, address: str, port: int) -> None:
        if _traceable(address):
            self.trace(address, hops.TCP, port)
            self.reference(address)

    async def _watch(self) -> None:
        """Start the traces while the checks still wait for a connect or a name server."""
        ctx = self.ctx
        assert ctx.target is not None
        watchers = [self._watch_connects()]
        if ctx.target.is_name:
            watchers.append(self._watch_resolution())
        await asyncio.gather(*watchers, return_exceptions=True)

    async def _watch_connects(self) -> None:
        ctx = self.ctx
        assert ctx.target is not None
        port = ctx.target.port
        addresses = addrfam.used(ctx.facts, (await ctx.addresses())[:8])
        picked: list[str] = []
        for a in addresses:  # the first address of each family, as the path checks do
            if all((":" in a) != (":" in p) for p in picked):
                picked.append(a)
        await asyncio.gather(*(self._watch_connect(a, port) for a in picked))

    async def _watch_connect(self, address: str, port: int) -> None:
        key = ("tcp", address, port)
        task = self.ctx.started(key)
        while task is None:  # the checks' own connect: never one of ours
            await asyncio.sleep(0.02)
            task = self.ctx.started(key)
        done, _pending = await asyncio.wait({task}, timeout=SUSPECT_AFTER)
        if not done:
            self._flow(address, port)

    async def _watch_resolution(self) -> None:
        from netcheck.probes import dns

        ctx = self.ctx
        done, _pending = await asyncio.wait({ctx.resolution()}, timeout=SUSPECT_AFTER)
        if done:
            return
        config = await ctx.blocking(dns.parse_resolv_conf, ctx.options.resolv_conf)
        servers = [s for s in config.nameservers if _traceable(s)]
        if servers:
            self.trace(servers[0], hops.UDP_DNS, 53)
            self.reference(servers[0])

    def found(self, outcome: CheckOutcome) -> None:
        """A check finished: a finding that needs a location starts its traces now."""
        if outcome.status in (Status.FAIL, Status.WARN) and outcome.result.code in LOCATABLE:
            flow = self._flow_of(outcome)
            if flow is not None:
                self.trace(*flow)
                self.reference(flow[0])

    # -- what the finding is about ----------------------------------------------------------

    def _flow_of(self, outcome: CheckOutcome) -> Optional[tuple[str, str, Optional[int], int]]:
        """(address, method, port, size) of the flow a finding is about, or None."""
        ctx = self.ctx
        code = outcome.result.code
        evidence = outcome.result.evidence
        if ctx.target is None:
            return None
        if code == "DNS_RESOLVER_UNREACHABLE":
            server = _silent_server(evidence)
            return (server, hops.UDP_DNS, 53, 56) if server else None
        if code == "PMTU_BLACKHOLE":
            address = evidence.get("address")
            mtu = evidence.get("local_mtu")
            if not isinstance(address, str) or not _traceable(address):
                return None
            if not isinstance(mtu, int) or mtu <= 0:
                link = ctx.facts.link(name=evidence.get("interface")) \
                    if evidence.get("interface") else None
                mtu = link.mtu if link is not None else 1500
            header = IPV6_HEADERS if ":" in address else IPV4_HEADERS
            return address, hops.ICMP_DF, None, mtu - header
        address = _failing_address(outcome)
        if address is None or not _traceable(address):
            return None
        return address, hops.TCP, ctx.target.port, 56

    # -- the answer ---------------------------------------------------------------------------

    async def finish(self, outcomes: list[CheckOutcome], root: Optional[CheckOutcome]
                     ) -> tuple[list[CheckOutcome], Optional[CheckOutcome], Optional[Location]]:
        """The root cause's location (None: not measured), its traces put in the root cause's
        evidence (``path_trace``); everything still running is stopped. Within the deadline."""
        try:
            if root is None or root.status not in (Status.FAIL, Status.WARN):
                return outcomes, root, None
            if root.result.code not in LOCATABLE:
                return outcomes, root, _from_evidence(root)
            flow = self._flow_of(root)
            if flow is None:
                return outcomes, root, self._on_link(root)
            address, method, port, size = flow
            flow_task = self.trace(address, method, port, size)
            ref_task = self.reference(address)
            left = self._budget() + RESERVE
            if left > 0:
                await asyncio.wait({flow_task, ref_task}, timeout=left)
            if not flow_task.done() or flow_task.cancelled():
                return outcomes, root, None
            trace = flow_task.result()
            ref = ref_task.result() if ref_task.done() and not ref_task.cancelled() else None
            location = judge(trace, ref)
            evidence: dict[str, Any] = {"flow": trace.to_json(limit_text)}
            if ref is not None:
                evidence["reference"] = ref.to_json(limit_text)
            new_root = replace(root, result=replace(
                root.result, evidence={**root.result.evidence, "path_trace": evidence}))
            outcomes = [new_root if o is root else o for o in outcomes]
            return outcomes, new_root, location
        finally:
            self.close()

    def _on_link(self, root: CheckOutcome) -> Optional[Location]:
        """A silent target on this host's own link: there is no router to find."""
        address = _failing_address(root)
        if (root.result.code not in SILENT or address is None or not _traceable(address)
                or not _on_link(self.ctx, address)):
            return None
        return Location(_("{address} is on this host's own link: no router stands between, "
                          "the host itself is silent").format(address=address), "route", 0, None)

    def close(self) -> None:
        """Stop the watcher and every trace still running."""
        if self.watcher is not None:
            self.watcher.cancel()
        for task in self.traces.values():
            task.cancel()


def _traceable(address: str) -> bool:
    """An address a TTL-limited probe means something for: not this host, not multicast."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    return not (ip.is_loopback or ip.is_multicast or ip.is_unspecified or ip.is_link_local)


def _on_link(ctx: Context, address: str) -> bool:
    task = ctx.started("path")
    if task is None or not task.done() or task.cancelled() or task.exception():
        return False
    lookups = [lk for lk in task.result().lookups if lk.destination == address]
    return bool(lookups) and all(lk.gateway is None for lk in lookups)


def _failing_address(outcome: CheckOutcome) -> Optional[str]:
    """The address whose flow the finding is about (its family's, when one family fails)."""
    evidence = outcome.result.evidence
    candidates: list[str] = []
    failing = evidence.get("failing")
    if isinstance(failing, list):
        candidates += [a for a in failing if isinstance(a, str)]
    answers = evidence.get("answers")
    if isinstance(answers, dict):
        candidates += [a for a, how in answers.items()
                       if isinstance(a, str) and how in ("icmp", "silent")]
    wanted = evidence.get("family")
    if wanted in ("ipv4", "ipv6"):
        candidates = [a for a in candidates if addrfam.name(addrfam.family_of(a)) == wanted]
    return candidates[0] if candidates else None


def _silent_server(evidence: dict[str, Any]) -> Optional[str]:
    """The first name server (or a stub's upstream) that answered nothing."""
    servers = evidence.get("servers")
    found: list[str] = []
    if isinstance(servers, dict):
        found += [s for s, state in servers.items()
                  if state == "DNS_RESOLVER_UNREACHABLE" and isinstance(s, str)]
    upstreams = evidence.get("upstreams")
    if isinstance(upstreams, list):
        # Silence only: an error this host's own stack gave (no route, a policy rule)
        # never left it, and there is nothing on the way to find.
        found += [a["server"] for a in upstreams if isinstance(a, dict)
                  and isinstance(a.get("server"), str) and not a.get("rcode")
                  and a.get("error") in (None, "timeout")]
    return next((s for s in found if _traceable(s)), None)


def _from_evidence(root: CheckOutcome) -> Optional[Location]:
    """A location the finding measured itself (network.target's loss bursts), as given."""
    loc = root.result.evidence.get("location")
    if not isinstance(loc, dict) or not isinstance(loc.get("text"), str):
        return None
    last = loc.get("last_hop")
    address = loc.get("address")
    return Location(loc["text"], str(loc.get("method") or "icmp-echo"),
                    last if isinstance(last, int) else None,
                    address if isinstance(address, str) else None)


# -- where the packets stop: the judgement --------------------------------------------------

def _gets_as_far(method: str) -> str:
    """"<the probe> gets as far as {address} (hop {hop}) and nothing answers beyond it"."""
    if method == hops.TCP:
        return _("the SYN gets as far as {address} (hop {hop}) and nothing answers beyond it")
    if method == hops.UDP_DNS:
        return _("the DNS query gets as far as {address} (hop {hop}) and nothing answers "
                 "beyond it")
    if method == hops.ICMP_DF:
        return _("full-size packets get as far as {address} (hop {hop}); beyond it they vanish")
    return _("the packets get as far as {address} (hop {hop}) and nothing answers beyond it")


def _nothing_answers(method: str) -> str:
    if method == hops.TCP:
        return _("not even the first router answers the SYN sent with TTL 1: the gateway "
                 "drops it, or no router on the way sends ICMP 'time exceeded'")
    if method == hops.ICMP_DF:
        return _("full-size packets vanish before the first router: the link to the gateway "
                 "does not carry them")
    return _("not even the first router answers the probes sent with TTL 1: the gateway "
             "drops them, or no router on the way sends ICMP 'time exceeded'")


def judge(flow: hops.Trace, reference: Optional[hops.Trace] = None,
          server_hops: Optional[int] = None) -> Optional[Location]:
    """Where the flow stops, from its TTL-limited probes (facts in, finding out).

    ``reference``: echo requests (or UDP to a closed port) to the same address, whose answer
    tells how many hops away the target is; ``server_hops`` gives that directly instead. A
    reset or an ICMP error from the target's address that a SYN meets sooner than the
    target is is a middlebox's; a hop whose ICMP errors are missing while later hops answer
    is never the place (only the farthest answer counts).
    """
    if not flow.measured:
        return None
    distance = server_hops
    if distance is None and reference is not None and reference.reached is not None:
        distance = reference.reached.ttl
    reached = flow.reached
    if reached is not None:
        return _judge_reached(flow, reached, distance)
    stopped = flow.stopped_by
    last = flow.last_answering
    if stopped is not None and (last is None or stopped.ttl > last.ttl):
        return Location(_("{address} (hop {hop}) sends back '{icmp}': the packets go no "
                          "further").format(address=stopped.address or "?", hop=stopped.ttl,
                                            icmp=stopped.answer or "?"),
                        flow.method, stopped.ttl, stopped.address)
    if last is None:
        return Location(_nothing_answers(flow.method), flow.method, 0, None)
    address = last.addresses[-1] if last.addresses else None
    text = _gets_as_far(flow.method).format(address=address or "?", hop=last.ttl)
    if distance is not None and distance > last.ttl and flow.port is not None \
            and flow.method != hops.ICMP_DF:
        # Echo requests get through where the flow does not: a filter of this port.
        if distance == last.ttl + 1:
            text += "; " + _("{target} answers ping at hop {hop}: its own firewall, or the "
                             "router just before it, drops port {port}").format(
                                 target=flow.address, hop=distance, port=flow.port)
        else:
            text += "; " + _("ping gets through to {target} at hop {hop}: a firewall at hop "
                             "{last} or the next one drops port {port}").format(
                                 target=flow.address, hop=distance, last=last.ttl,
                                 port=flow.port)
    return Location(text, flow.method, last.ttl, address)


def _judge_reached(flow: hops.Trace, reached: hops.Probe, distance: Optional[int]) -> Location:
    before = flow.last_answering
    prior = before if before is not None and before.ttl < reached.ttl else None
    prior_addr = prior.addresses[-1] if prior is not None and prior.addresses else None
    # How far the answer's sender is: its arrival TTL says exactly (root); otherwise the
    # lowest TTL that already gets it is an upper bound.
    exact = hops.hops_away(reached.reply_ttl) if reached.reply_ttl is not None else None
    sender_hops = exact if exact is not None else reached.ttl
    # A reset, or an ICMP error in the target's name: either may be a middlebox's.
    forged = reached.answer == "rst" or reached.icmp_type is not None
    if distance is not None and forged and sender_hops < distance:
        what = "rst" if reached.answer == "rst" else "icmp"
        text = _middlebox_text(what, sender_hops, distance, exact is not None)
        last = (prior.ttl if prior is not None else 0) if exact is None else sender_hops
        address = prior_addr if exact is None else _hop_address(flow, sender_hops)
        if last == 0:
            text += " " + _("(this host's gateway, or a box on its link, answers for the "
                            "server)")
        elif address:
            text += " " + _("(at {address}, hop {hop}, or right after it)").format(
                address=address, hop=last)
        return Location(text, flow.method, last, address, middlebox=True)
    if forged and distance is None:
        # Nothing says how far the target is (it answers no echo request): a box just
        # before it could answer in its name as well.
        text = _("a SYN with TTL {hop} already gets the answer ({answer}); {address} does not "
                 "answer ping, so whether the answer is its own cannot be told").format(
                     hop=reached.ttl, answer=reached.answer, address=reached.address)
        return Location(text, flow.method, reached.ttl, None)
    if reached.answer == "rst":
        text = ngettext("the reset comes from {address} itself, {hops} hop away",
                        "the reset comes from {address} itself, {hops} hops away",
                        sender_hops).format(address=reached.address, hops=sender_hops)
    elif reached.icmp_type is not None:
        text = _("{address} itself (hop {hop}) answers '{icmp}'").format(
            address=reached.address, hop=reached.ttl, icmp=reached.answer)
    else:
        text = _("the probes reached {address} (hop {hop}) while the path was traced: the "
                 "fault comes and goes").format(address=reached.address, hop=reached.ttl)
    return Location(text, flow.method, reached.ttl, reached.address)


def _hop_address(flow: hops.Trace, ttl: int) -> Optional[str]:
    hop = flow.hop(ttl)
    return hop.addresses[-1] if hop is not None and hop.addresses else None


def _middlebox_text(what: str, hops: int, server_hops: int, exact: bool) -> str:
    if what == "rst" and exact:
        return ngettext("the reset comes from {hops} hop away, not from the server {server} "
                        "hops away: a firewall or middlebox sends it in the server's name",
                        "the reset comes from {hops} hops away, not from the server {server} "
                        "hops away: a firewall or middlebox sends it in the server's name",
                        hops).format(hops=hops, server=server_hops)
    if what == "rst":
        return ngettext("the reset comes from at most {hops} hop away (a SYN with TTL {hops} "
                        "already gets it), not from the server {server} hops away: a firewall "
                        "or middlebox sends it in the server's name",
                        "the reset comes from at most {hops} hops away (a SYN with TTL {hops} "
                        "already gets it), not from the server {server} hops away: a firewall "
                        "or middlebox sends it in the server's name",
                        hops).format(hops=hops, server=server_hops)
    return ngettext("the ICMP error comes from at most {hops} hop away, not from the server "
                    "{server} hops away: a firewall or middlebox sends it in the server's name",
                    "the ICMP error comes from at most {hops} hops away, not from the server "
                    "{server} hops away: a firewall or middlebox sends it in the server's name",
                    hops).format(hops=hops, server=server_hops)
