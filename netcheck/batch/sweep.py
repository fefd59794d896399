"""The light sweep: ``netcheck batch --only transport.tcp`` over many addresses, batched.

``--only transport.tcp`` is a connect sweep, nmap -sT's job. Through the ladder each target
pays for a whole diagnosis' setup to send one SYN: a Context, a route lookup in a thread of
its own, the transport check's view of the layers below it. Here, for a target written as an
address, the transport check's own connect probe
(:func:`netcheck.probes.shared.connect_retrying`: a connect, another one started every
quarter second while none has an answer) runs on the batch's one event loop (the batch's
workers bound how many at once); the route lookups that name each target's egress interface
go to the kernel in batches, one netlink socket and one thread per batch.

A completed handshake is judged as the transport check judges it, by its own functions:
:func:`~netcheck.checks.transport.judge_connects`, then
:func:`~netcheck.checks.transport.judge_expectation`, with the same evidence. For one address
nothing else the check reads can change that judgement: its filters of the addresses (the
families judged below, those this host uses) keep the one address whatever they find, and a
local block is looked for only when the handshake failed. tests/unit/test_batch_sweep.py
holds the two side by side.

A connect without a handshake (refused, dropped, rejected, this host's own firewall) needs
what the check reads around it — pings, this host's firewall rules and addresses — so that
target gets the check itself, as without the sweep (its connect is made again), and so do
names and a target of a family ``-4``/``-6`` leaves out.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Optional, Sequence

if TYPE_CHECKING:
    from netcheck.batch.profile import Entry
    from netcheck.facts import RouteLookup
    from netcheck.model import CheckOutcome, Report
    from netcheck.probes.tcp import TcpResult
    from netcheck.registry import Check
    from netcheck.target import Target

CHECK_ID = "transport.tcp"
# Route lookups asked for in one netlink round (one thread): the workers' connects finish
# together, so a batch holds about as many as run at once.
ROUTE_BATCH = 512


def applies(checks: Sequence[Check]) -> Optional[Check]:
    """The transport check when it is all that runs (``--only transport.tcp``), else None."""
    if len(checks) == 1 and checks[0].id == CHECK_ID:
        return checks[0]
    return None


class Routes:
    """Route lookups gathered from the workers and asked for in batches.

    ``lookup(address)`` returns a future; the first one of a round schedules the round at
    the loop's next turn, so every connect that finished on this turn shares it.
    """

    def __init__(self, names: dict[int, str]) -> None:
        self.names = names
        self.pending: dict[str, list[asyncio.Future[Optional[RouteLookup]]]] = {}
        self.scheduled = False

    def lookup(self, address: str) -> asyncio.Future[Optional[RouteLookup]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Optional[RouteLookup]] = loop.create_future()
        self.pending.setdefault(address, []).append(future)
        if not self.scheduled:
            self.scheduled = True
            loop.call_soon(self._round)
        return future

    def _round(self) -> None:
        self.scheduled = False
        while self.pending:
            batch = dict(list(self.pending.items())[:ROUTE_BATCH])
            for address in batch:
                del self.pending[address]
            asyncio.ensure_future(self._ask(batch))

    async def _ask(self, batch: dict[str, list[asyncio.Future[Optional[RouteLookup]]]]) -> None:
        from netcheck.facts import route_get
        from netcheck.runner import run_blocking

        try:
            found: list[Any] = await run_blocking(route_get, list(batch), None, self.names)
        except Exception:  # no egress interface to name: the report says null
            found = []
        by_address = {lk.destination: lk for lk in found}
        for address, futures in batch.items():
            for future in futures:
                if not future.done():
                    future.set_result(by_address.get(address))


class Sweep:
    """What the sweep's targets share: the check, the host's facts, the route rounds."""

    def __init__(self, check: Check, state: Any, facts: Any = None) -> None:
        self.check = check
        self.state = state  # netcheck.hoststate.HostState
        self.facts = facts
        self.routes: Optional[Routes] = None

    async def host_facts(self) -> Any:
        return self.facts if self.facts is not None else await self.state.facts()

    def address(self, entry: Entry, family: Optional[int]) -> Optional[str]:
        """The address the sweep connects to, or None when the target needs the check."""
        target = entry.target
        if target is None or not target.port:
            return None
        ip = target.ip
        if ip is None or (family is not None and ip.version != family):
            return None
        return target.host

    async def report(self, entry: Entry, address: str, options: Any) -> Optional[Report]:
        """The entry's report when its connect completed the handshake, else None (the
        check must run: see the module's docstring)."""
        from netcheck import i18n
        from netcheck.probes.shared import connect_retrying
        from netcheck.runner import DEADLINE_MARGIN

        assert entry.target is not None
        started = datetime.now(timezone.utc)
        t0 = time.monotonic()
        timeout = max(0.05, min(options.timeout, options.deadline - DEADLINE_MARGIN))
        result = await connect_retrying(address, entry.target.port, timeout)
        if not result.handshake:
            return None
        facts = await self.host_facts()
        if self.routes is None:
            self.routes = Routes({lk.index: lk.name for lk in facts.links})
        lookup = await self.routes.lookup(address)
        with i18n.language(options.lang):
            outcome = connect_outcome(self.check, entry.target, result, options.expect,
                                      (time.monotonic() - t0) * 1000)
        return build_report(entry.target, outcome, facts, lookup, started, t0,
                            options.request_id)


def connect_outcome(check: Check, target: Target, result: TcpResult, expect: str,
                    ms: float) -> CheckOutcome:
    """The transport check's outcome for one address whose handshake completed, in its
    words and with its evidence (its judgement: judge_connects, then judge_expectation)."""
    from netcheck.checks.transport import judge_connects, judge_expectation
    from netcheck.model import CheckOutcome, passed

    assert result.handshake
    verdict = judge_connects([result], {result.address: None})
    evidence: dict[str, Any] = {
        "port": target.port, "connects": [result.to_json()], "working": [result.address],
        "failing": []}
    evidence["rtt_ms"] = round(result.rtt_ms or 0, 3)
    judged = judge_expectation(passed(verdict.summary, **evidence), expect, target)
    return CheckOutcome(check.id, check.layer, check.title, judged, ms)


def build_report(target: Target, outcome: CheckOutcome, facts: Any,
                 lookup: Optional[RouteLookup], started: datetime, t0: float,
                 request_id: Optional[str] = None) -> Report:
    """The netcheck/1 report of a ladder of one check, as the runner builds it."""
    from netcheck import __version__
    from netcheck.model import Report
    from netcheck.runner import choose_root_cause, verdict_of

    outcomes = [outcome]
    egress = lookup.ifname if lookup is not None and lookup.oif is not None else None
    return Report(
        mode="diagnose", target=target.to_json([target.host]),
        host={"hostname": facts.hostname, "privileged": facts.privileged,
              "egress_interface": egress},
        verdict=verdict_of(outcomes), root_cause=choose_root_cause(outcomes), checks=outcomes,
        started_at=started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        duration_ms=(time.monotonic() - t0) * 1000, version=__version__,
        request_id=request_id if target.scheme in ("http", "https") else None)
