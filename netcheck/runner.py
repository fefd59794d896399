"""The runner: orders checks by ``requires``, runs independent ones at once, enforces the
deadline, marks dependants of a failure as blocked, and picks the root cause.

It knows no specific check. Shared measurements (the target's addresses, the route the
packets take, one TCP connect per address) are memoised on the :class:`Context`, so two
checks asking the same question wait on the same probe instead of sending it twice.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Optional, TypeVar

from netcheck import __version__, defaults, i18n
from netcheck import family as addrfam
from netcheck.facts import Facts, RouteLookup
from netcheck.i18n import _
from netcheck.model import CheckOutcome, Report, Result, Status, Verdict
from netcheck.registry import Check
from netcheck.target import Target

T = TypeVar("T")
# Time kept back from the deadline for building and printing the report.
DEADLINE_MARGIN = 0.25


@dataclass
class Options:
    """Run-wide settings from the command line."""

    timeout: float = defaults.TIMEOUT
    deadline: float = defaults.DEADLINE
    family: Optional[int] = None  # 4, 6 or None for both
    interface: Optional[str] = None
    # Language of the summaries and hints of this run; None: the process's (i18n.set_language).
    lang: Optional[str] = None
    verbose: bool = False
    sysroot: str = "/"
    resolv_conf: str = "/etc/resolv.conf"
    hosts_file: str = "/etc/hosts"
    cafile: Optional[str] = None  # extra CA bundle for TLS verification
    cert: Optional[str] = None  # client certificate (mutual TLS)
    key: Optional[str] = None  # its private key: the path only, never its contents
    scan: bool = False  # nmap service/version detection
    started: Optional[float] = None  # time.monotonic() at process start, when known
    # Sent in the User-Agent and printed, so the server side can find this run's request.
    request_id: str = field(default_factory=lambda: os.urandom(6).hex())
    # Asked before every HTTP hop (redirects included) is requested: why (host, port, scheme,
    # path) may not be, or None. The exporter's allow-list; None: every hop may be followed.
    hop_refusal: Optional[Callable[[str, int, str, str], Optional[str]]] = None
    # Find where a silent (or reset) flow's packets stop: TTL-limited probes, root_cause.location
    # (netcheck.locate). Off unless asked: a batch sweep must not trace every silent port.
    locate: bool = False
    # HTTP(S) proxy: --proxy URL (None: the environment's, as curl reads it); --no-proxy
    # (no_proxy=True) goes direct whatever the environment says (netcheck.probes.http).
    proxy: Optional[str] = None
    no_proxy: bool = False
    # --portal-url: a connectivity-check URL for captive-portal detection, when the network
    # manager has none configured (netcheck.probes.portal).
    portal_url: Optional[str] = None
    # What the target's port is expected to be: "open", or "closed" (a port that must stay
    # shut; the transport check judges it, batch profiles and exporter modules set it).
    expect: str = defaults.EXPECT
    # Probes the console diagnosis sent when it started (netcheck.probes.conflict.Early:
    # network.address_conflict's ARP probes), each taken once by the check that sends it.
    early: Any = None


@dataclass
class PathInfo:
    """The way packets to the target leave this host, as the kernel's route lookup says.

    The kernel's lookup follows the policy rules (``ip rule``) as a connect() would: a
    default route that lives in another table (wg-quick's, a second uplink's) is found.
    ``lookups`` are for what the path was looked up for (``basis``): the target's
    addresses, or its name servers while the name does not resolve. ``by_family`` holds,
    for each family asked for, the lookup that stands for it: the first basis address of
    that family, or a documentation address when the basis has none (then only the egress
    interface and the route of that family are learnt, nothing is sent to it).
    """

    lookups: list[RouteLookup] = field(default_factory=list)
    interface: Optional[str] = None
    ifindex: Optional[int] = None
    gateway: Optional[str] = None
    family: int = socket.AF_INET
    basis: str = ""  # what the path was looked up for: the target, its resolver, the default
    by_family: dict[int, RouteLookup] = field(default_factory=dict)

    def for_family(self, family: int) -> Optional[RouteLookup]:
        """The lookup that stands for one family (None: that family was not asked for)."""
        return self.by_family.get(family)

    def to_json(self) -> dict[str, Any]:
        return {
            "interface": self.interface, "gateway": self.gateway, "basis": self.basis,
            "lookups": [{k: v for k, v in vars(lk).items() if v is not None}
                        for lk in self.lookups],
        }


def run_blocking(fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """Run a blocking call in a daemon thread.

    Daemon threads, not an executor: a probe stuck in a system call must never keep the
    process alive past the deadline.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def work() -> None:
        try:
            value, exc = fn(*args), None
        except BaseException as error:  # handed to the awaiting coroutine
            value, exc = None, error
        try:
            loop.call_soon_threadsafe(_settle, future, value, exc)
        except RuntimeError:  # the loop closed at the deadline: nobody waits any more
            pass

    threading.Thread(target=work, daemon=True, name=getattr(fn, "__name__", "probe")).start()
    return future


def _settle(future: asyncio.Future[Any], value: Any, exc: Optional[BaseException]) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(value)


class Context:
    """What a check sees: the target, the options, the facts and the shared probes."""

    def __init__(self, target: Optional[Target], options: Options, facts: Facts,
                 mode: str = "diagnose", shared: Optional[dict[Any, Any]] = None) -> None:
        self.target = target
        self.options = options
        self.facts = facts
        self.mode = mode
        # Probes shared by the runs of one batch (same event loop), today only the name
        # resolution: a thousand targets on one host name ask the resolver once.
        self.shared = shared
        self.results: dict[str, Result] = {}
        self._memo: dict[Any, asyncio.Task[Any]] = {}
        self._values: dict[Any, Any] = {}
        self._start = time.monotonic()
        self.others_done: Optional[asyncio.Event] = None
        # Called when a check starts (outcome None) and ends: a live display, never logic.
        self.on_progress: Optional[Callable[[Check, Optional[CheckOutcome]], None]] = None
        self.locator: Any = None  # netcheck.locate.Locator when options.locate

    @property
    def timeout(self) -> float:
        """The per-probe timeout, shortened when the deadline is closer."""
        return max(0.05, min(self.options.timeout, self.time_left() - DEADLINE_MARGIN))

    def time_left(self) -> float:
        return self.options.deadline - (time.monotonic() - self._start)

    def result(self, check_id: str) -> Optional[Result]:
        """The result of a check that already ran (declare it in ``requires``)."""
        return self.results.get(check_id)

    def memo(self, key: Any, factory: Callable[[], Awaitable[T]]) -> asyncio.Task[T]:
        """Run ``factory()`` once per key for the whole run; later callers share the task."""
        task = self._memo.get(key)
        if task is None:
            task = asyncio.ensure_future(factory())
            self._memo[key] = task
        return task

    def blocking(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run a blocking call without holding up the other checks."""
        return run_blocking(fn, *args)

    @property
    def families(self) -> tuple[int, ...]:
        if self.options.family == 4:
            return (socket.AF_INET,)
        if self.options.family == 6:
            return (socket.AF_INET6,)
        return (socket.AF_INET, socket.AF_INET6)

    # -- shared measurements ------------------------------------------------------
    def resolution(self) -> asyncio.Task[Any]:
        """Resolve the target name the way the system would: hosts file, then DNS."""
        from netcheck.probes import dns

        assert self.target is not None
        target = self.target

        def resolve() -> Awaitable[Any]:
            return dns.resolve_like_system(target.host, self.families, self.options.resolv_conf,
                                           self.options.hosts_file, self.timeout)

        return self.memo_shared(self.resolution_key, resolve)

    @property
    def resolution_key(self) -> tuple[Any, ...]:
        assert self.target is not None
        return ("resolution", self.target.host, self.families, self.options.resolv_conf,
                self.options.hosts_file)

    def memo_shared(self, key: Any, factory: Callable[[], Awaitable[T]]) -> asyncio.Task[T]:
        """Like :meth:`memo`, but shared by every run of a batch when there is one.

        For what does not depend on the target's path: a name's resolution, this host's
        firewall rules. Outside a batch it is the run's own memo.
        """
        if self.shared is None:
            return self.memo(key, factory)
        task = self.shared.get(key)
        if task is None:
            task = self.shared[key] = asyncio.ensure_future(factory())
        # Shielded: the end of this run cancels its own memo, never the other runs' probe.
        return self.memo(key, lambda: asyncio.shield(task))

    def value_shared(self, key: Any, factory: Callable[[], T]) -> T:
        """A plain value computed once per batch (or once per run outside a batch)."""
        store = self.shared if self.shared is not None else self._values
        if key not in store:
            store[key] = factory()
        return store[key]  # type: ignore[no-any-return]

    async def addresses(self) -> list[str]:
        """The target's addresses of the families asked for (empty when it does not resolve)."""
        if self.target is None:
            return []
        ip = self.target.ip
        if ip is not None:
            fam = socket.AF_INET if ip.version == 4 else socket.AF_INET6
            return [self.target.host] if fam in self.families else []
        res = await self.resolution()
        return list(res.addresses)

    def path(self) -> asyncio.Task[PathInfo]:
        """Which interface and gateway the packets to the target leave by."""
        return self.memo("path", self._find_path)

    async def _find_path(self) -> PathInfo:
        from netcheck.facts import route_get

        want_if = self.options.interface
        oif = None
        if want_if:
            link = self.facts.link(name=want_if)
            oif = link.index if link else None
        addresses = (await self.addresses())[:8]
        basis = "target"
        if not addresses:
            # Name not resolved: follow the packets that would go to the resolver, or
            # failing that the default route, so the lower layers are still on the real path.
            basis = "default route"
            addresses = [self._default_probe_address()]
            try:
                res = await self.resolution()
                servers = [addrfam.bare(s) for s in res.servers[:4]]
                if servers and all(_on_this_host(s) for s in servers):
                    # A local stub answers from this host: the queries that leave it are its
                    # upstreams', and when those are not known, they go by the default route.
                    servers = [addrfam.bare(u) for u in res.config.upstreams[:4]]
                if servers:
                    addresses, basis = servers, "name server"
            except Exception:
                pass
        # One more lookup for each family asked for that the basis has no address of: what
        # the address and route checks judge per family.
        have = addrfam.families_of(addresses)
        extra = [addrfam.default_probe_address(f) for f in self.families if f not in have]
        names = {lk.index: lk.name for lk in self.facts.links}
        found = await self.blocking(route_get, addresses + extra, oif, names)
        lookups = found[:len(addresses)]
        info = PathInfo(lookups=lookups, basis=basis)
        for lk in found:
            info.by_family.setdefault(addrfam.family_of(lk.destination), lk)
        best = next((lk for lk in lookups if lk.type == "unicast"), lookups[0] if lookups else None)
        if want_if:
            info.interface = want_if
            info.ifindex = oif
        elif best is not None and best.oif is not None:
            info.interface, info.ifindex = best.ifname, best.oif
        else:
            info.interface, info.ifindex = self._guess_egress()
        if best is not None:
            info.gateway = best.gateway
            info.family = socket.AF_INET6 if ":" in best.destination else socket.AF_INET
        return info

    def _default_probe_address(self) -> str:
        # Documentation-range addresses: only used for a route *lookup*, never sent to.
        return addrfam.default_probe_address(self.families[0])

    def _guess_egress(self) -> tuple[Optional[str], Optional[int]]:
        """No usable route: name the interface a person would look at first.

        An interface with a default route wins. Otherwise the kernel dropped the routes
        because an interface broke, so the most suspicious one is an interface someone
        meant to use that does not work: up without carrier or address first, then down
        but configured, then down and bare; a working interface whose routes simply do
        not lead there comes last.
        """
        for fam in self.families:
            # main's defaults first, then those of other tables (policy routing)
            for route in self.facts.defaults(fam, table=None):
                link = self.facts.link(index=route.oif)
                if link:
                    return link.name, link.index

        def suspicion(lk: Any) -> tuple[int, int]:
            configured = any(not a.link_local for a in self.facts.addrs_of(lk.index))
            if lk.admin_up and (not lk.carrier or not configured):
                rank = 0
            elif not lk.admin_up:
                rank = 1 if configured else 2
            else:
                rank = 3
            return rank, lk.index

        candidates = sorted((lk for lk in self.facts.links if not lk.is_loopback), key=suspicion)
        if candidates:
            return candidates[0].name, candidates[0].index
        return None, None


def _on_this_host(address: str) -> bool:
    """A loopback address (a stub resolver on 127.0.0.53, ::1)."""
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _not_tried(blocker: Optional[CheckOutcome], blocker_id: str) -> str:
    """A blocked check's summary: what failed below it, in that check's own words."""
    if blocker is not None and blocker.result.summary:
        return _("not tried: {reason}").format(reason=blocker.result.summary)
    return _("not checked: {check} failed").format(check=blocker_id)


def _blocked(outcome_of: dict[str, CheckOutcome], requires: tuple[str, ...]) -> Optional[str]:
    """The id of the failed check that makes a dependant pointless, if any.

    A check failed only by an expectation (``Result.measured``: the port accepts connections
    but should be closed) blocks nothing: what is above it is there to look at.
    """
    for req in requires:
        out = outcome_of.get(req)
        if out is None:
            continue
        if out.status is Status.FAIL and out.result.measured is None:
            return req
        if out.result.blocked_by:
            return out.result.blocked_by
    return None


def _settled(outcome_of: dict[str, CheckOutcome],
             requires: tuple[str, ...]) -> Optional[CheckOutcome]:
    """The requirement whose failure was expected (measured a failure, judged a pass: a port
    closed, as expected), directly or through a check skipped for it: what needs it has
    nothing to look at, and nothing failed."""
    for req in requires:
        out = outcome_of.get(req)
        if out is None:
            continue
        if out.result.measured is Status.FAIL:
            return out
        if out.result.settled_by:
            return outcome_of.get(out.result.settled_by)
    return None


async def _run_one(ctx: Context, chk: Check, tasks: dict[str, asyncio.Task[CheckOutcome]],
                   outcome_of: dict[str, CheckOutcome]) -> CheckOutcome:
    deps = [tasks[r] for r in chk.requires if r in tasks]
    if deps:
        await asyncio.wait(deps)
    if chk.runs_last and ctx.others_done is not None:
        await ctx.others_done.wait()
    start = time.monotonic()
    blocker = _blocked(outcome_of, chk.requires)
    settled = _settled(outcome_of, chk.requires) if blocker is None else None
    if blocker is not None:
        result = Result(Status.SKIP, _not_tried(outcome_of.get(blocker), blocker),
                        blocked_by=blocker)
    elif settled is not None:
        result = Result(Status.SKIP, _not_tried(settled, settled.id), settled_by=settled.id)
    elif chk.needs_root and not ctx.facts.privileged:
        result = Result(Status.SKIP, _("needs root (or CAP_NET_RAW)"))
    else:
        reason = chk.applies(ctx) if chk.applies else None
        if reason:
            result = Result(Status.SKIP, reason)
        else:
            try:
                if ctx.on_progress is not None:
                    ctx.on_progress(chk, None)
                result = await chk.run(ctx)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broken check is reported, never fatal
                result = Result(Status.ERROR, _("check crashed: {error}").format(
                    error=f"{type(exc).__name__}: {exc}"))
    outcome = CheckOutcome(chk.id, chk.layer, chk.title, result,
                           (time.monotonic() - start) * 1000)
    ctx.results[chk.id] = result
    outcome_of[chk.id] = outcome
    if ctx.locator is not None:
        ctx.locator.found(outcome)
    if ctx.on_progress is not None:
        ctx.on_progress(chk, outcome)
    return outcome


async def run_checks(ctx: Context, checks: list[Check]) -> list[CheckOutcome]:
    """Run the checks as a DAG within the deadline; return outcomes in ladder order."""
    ctx.others_done = asyncio.Event()
    outcome_of: dict[str, CheckOutcome] = {}
    tasks: dict[str, asyncio.Task[CheckOutcome]] = {}
    for chk in _topological(checks):
        tasks[chk.id] = asyncio.ensure_future(_run_one(ctx, chk, tasks, outcome_of))
    normal = [t for c, t in zip(checks, [tasks[c.id] for c in checks]) if not c.runs_last]

    async def release_last() -> None:
        if normal:
            await asyncio.wait(normal)
        ctx.others_done.set()  # type: ignore[union-attr]

    releaser = asyncio.ensure_future(release_last())
    budget = max(0.05, ctx.time_left() - DEADLINE_MARGIN)
    done, pending = await asyncio.wait(list(tasks.values()), timeout=budget)
    releaser.cancel()
    for t in pending:
        t.cancel()
    for task in ctx._memo.values():
        task.cancel()
    outcomes = []
    for chk in checks:
        out = outcome_of.get(chk.id)
        if out is None:
            out = CheckOutcome(chk.id, chk.layer, chk.title, Result(
                Status.ERROR, _("not finished within the deadline ({seconds} s)").format(
                    seconds=f"{ctx.options.deadline:g}")))
        outcomes.append(out)
    return outcomes


def _topological(checks: list[Check]) -> list[Check]:
    """Checks in dependency order; unknown requirements are ignored, cycles rejected."""
    by_id = {c.id: c for c in checks}
    order: list[Check] = []
    state: dict[str, int] = {}

    def visit(c: Check, trail: tuple[str, ...]) -> None:
        if state.get(c.id) == 2:
            return
        if state.get(c.id) == 1:
            raise ValueError(f"dependency cycle: {' -> '.join((*trail, c.id))}")
        state[c.id] = 1
        for req in c.requires:
            if req in by_id:
                visit(by_id[req], (*trail, c.id))
        state[c.id] = 2
        order.append(c)

    for c in checks:
        visit(c, ())
    return order


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
    finding keeps its code and hint and names its proof in ``evidence.top_down``.

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
        off_path = chk is not None and (chk.scope == "host" or bool(proxy) and not chk.path_part)
        if o.status is Status.FAIL and off_path and o.layer < proof.layer:
            note = (_("(off the path of this flow: it goes through the proxy {proxy}, which "
                      "carries it)").format(proxy=proxy) if proxy and chk.scope != "host"
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
        rung = moved.get(o.id)
        if rung is not None:
            r = o.result
            o = replace(o, result=Result(
                Status.SKIP, _not_tried(rung, rung.id), blocked_by=rung.id,
                evidence={**r.evidence, "follow_on": {
                    "was": r.status.value, "code": r.code, "summary": r.summary,
                    "unanswered": list(r.unanswered)}}))
        elif o.result.blocked_by in moved:  # blocked by a follow-on: by its cause, then
            rung = moved[o.result.blocked_by]
            o = replace(o, result=replace(o.result, summary=_not_tried(rung, rung.id),
                                          blocked_by=rung.id))
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


async def diagnose(target: Optional[Target], options: Options, checks: list[Check],
                   mode: str = "diagnose", facts: Optional[Facts] = None,
                   on_progress: Optional[Callable[[Check, Optional[CheckOutcome]], None]] = None,
                   shared: Optional[dict[Any, Any]] = None,
                   report_target: Optional[dict[str, Any]] = None) -> Report:
    """Take the snapshot, run the checks, and build the report.

    ``shared``: one dict handed to every run of a batch (in one event loop) so that they
    share probes that do not depend on the run, today the name resolution (see
    :meth:`Context.resolution`). None (the default) shares nothing.
    Summaries and hints are in ``options.lang`` (None: the process's language).
    ``report_target``: the report's ``target`` object as given, for a mode whose checks'
    target is not what the report is about (server mode: the checks look at the way back to
    the client, the report describes the service).
    """
    with i18n.language(options.lang):
        return await _diagnose(target, options, checks, mode, facts, on_progress, shared,
                               report_target)


async def _diagnose(target: Optional[Target], options: Options, checks: list[Check],
                    mode: str, facts: Optional[Facts],
                    on_progress: Optional[Callable[[Check, Optional[CheckOutcome]], None]],
                    shared: Optional[dict[Any, Any]],
                    report_target: Optional[dict[str, Any]] = None) -> Report:
    started = datetime.now(timezone.utc)
    t0 = time.monotonic()
    ctx_start = options.started if options.started is not None else t0
    if facts is None:
        from netcheck.facts import snapshot

        facts = await run_blocking(snapshot, options.sysroot)
    ctx = Context(target, options, facts, mode, shared)
    ctx._start = ctx_start
    ctx.on_progress = on_progress
    if target is not None and target.is_name:
        ctx.resolution()  # start resolving while nothing else needs the CPU
    if target is not None and target.ip is not None:
        # The kernel's route lookup (milliseconds) before the checks keep the loop and the
        # interpreter busy: every rung on the path waits for it, the early probes first.
        await asyncio.wait([ctx.path()])
    # Probes that only a timeout ends start now, to overlap the rungs.
    for chk in checks:
        if chk.starts is not None and mode in chk.modes and (
                facts.privileged or not chk.needs_root):
            chk.starts(ctx)
    if options.locate and mode == "diagnose" and target is not None:
        # After the early probes: importing the tracer (~10 ms) must not hold them back; it
        # watches the checks' probes, and none has started yet.
        from netcheck.locate import Locator

        ctx.locator = Locator(ctx)
    ordered = sorted(checks, key=lambda c: (int(c.layer), c.order))
    outcomes = top_down(await run_checks(ctx, ordered), ordered)
    outcomes = await follow_ons(ctx, outcomes, ordered)
    addresses: list[str] = []
    path: Optional[PathInfo] = None
    if target is not None:
        if target.ip is not None:
            addresses = [target.host]
        else:
            res = ctx._memo.get(ctx.resolution_key)
            if res is not None and res.done() and not res.cancelled() and not res.exception():
                addresses = list(res.result().addresses)
        p = ctx._memo.get("path")
        if p is not None and p.done() and not p.cancelled() and not p.exception():
            path = p.result()
    root = choose_root_cause(outcomes)
    location = None
    if ctx.locator is not None:  # within the deadline, like the checks
        outcomes, root, location = await ctx.locator.finish(outcomes, root)
    return Report(
        mode=mode,
        target=report_target if report_target is not None else (
            target.to_json(addresses) if target else {}),
        host={"hostname": facts.hostname, "privileged": facts.privileged,
              "egress_interface": path.interface if path else None},
        verdict=verdict_of(outcomes),
        root_cause=root,
        checks=outcomes,
        started_at=started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        duration_ms=(time.monotonic() - t0) * 1000,
        version=__version__,
        request_id=options.request_id if target is not None and target.scheme in (
            "http", "https") else None,
        location=location,
    )

