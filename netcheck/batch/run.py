"""Diagnose the entries of a profile concurrently, sharing what a batch can share.

Every target gets the full diagnosis (or the checks ``--only`` selects) — or, with
``--ladder on-failure``, first the exchange alone (:mod:`netcheck.fastprobe`: name, connect,
TLS, request) and the ladder only when that fails or warns. All of them share ONE
:class:`~netcheck.hoststate.HostState`: what does not depend on the target (the netlink
snapshot, firewall rules, socket tables, the network manager) is read once every few seconds,
and name resolutions are cached by their TTL (a hundred URLs on one name ask the resolver
once). Concurrency is a fixed pool of workers pulling from the entry list, so a 100 000-target
profile holds ``concurrency`` diagnoses in memory, never 100 000 tasks; with ``on-failure``
the ladders among them are bounded further (:data:`LADDER_CONCURRENCY`), so a run of failing
targets cannot hold up the exchanges of the healthy ones.

An entry's expectation (``expect = "closed"``) travels in its Options: the transport check
judges it and the runner draws the verdict, so a report is never turned around here.
Nothing here prints: results go to ``on_done`` as each target finishes.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Sequence

from netcheck import defaults
from netcheck.batch.profile import Entry, Profile
from netcheck.model import CheckOutcome, Layer, Report, Status, Verdict

if TYPE_CHECKING:
    from netcheck.registry import Check

DEFAULT_CONCURRENCY = 32
MAX_CONCURRENCY = 4096
# With --ladder on-failure: ladders at once, whatever --concurrency says (exchanges use it).
LADDER_CONCURRENCY = 32
LADDERS = ("always", "on-failure")
# The monitoring-plugins order for combining states (max_state_alt in their utils.c):
# ok < unknown < warning < critical. A broken target is never hidden by an unknown one.
SEVERITY = {Verdict.OK: 0, Verdict.UNKNOWN: 1, Verdict.DEGRADED: 2, Verdict.BROKEN: 3}


@dataclass
class Settings:
    """Batch-wide settings; an entry's own options (timeout, deadline, ...) take precedence."""

    concurrency: int = DEFAULT_CONCURRENCY
    timeout: float = defaults.TIMEOUT
    deadline: float = defaults.DEADLINE
    family: Optional[int] = None
    lang: str = "en"
    sysroot: str = "/"
    only: tuple[str, ...] = ()
    scan: bool = False
    # "always": every target gets the ladder; "on-failure": the exchange first, the ladder
    # only when it fails or warns (netcheck.fastprobe).
    ladder: str = "always"


@dataclass
class Done:
    """One finished entry: its position in the profile and its report."""

    index: int
    entry: Entry
    report: Report


@dataclass
class Summary:
    """Counts by verdict, the wall time and the exit status of the whole batch."""

    counts: dict[str, int] = field(default_factory=lambda: {v.value: 0 for v in Verdict})
    duration_ms: float = 0.0
    worst: Verdict = Verdict.OK
    total: int = 0
    interrupted: bool = False

    def add(self, verdict: Verdict) -> None:
        self.counts[verdict.value] += 1
        self.total += 1
        if SEVERITY[verdict] > SEVERITY[self.worst]:
            self.worst = verdict

    @property
    def exit_code(self) -> int:
        if self.interrupted and self.worst is Verdict.OK:
            return Verdict.UNKNOWN.exit_code
        return self.worst.exit_code

    def to_json(self) -> dict[str, Any]:
        return {**self.counts, "duration_ms": round(self.duration_ms, 1)}


# -- which checks ---------------------------------------------------------------------------

def select_checks(checks: Sequence[Check], only: Iterable[str]) -> list[Check]:
    """The checks ``--only`` names: a layer (``4``, ``transport``), an id, an id prefix.

    Requirements are not pulled in: ``--only transport.tcp`` runs the connect alone, the
    light mode for sweeping many addresses. Raises ValueError naming an item that matches
    nothing.
    """
    wanted = [w.strip().lower() for item in only for w in item.split(",") if w.strip()]
    if not wanted:
        return list(checks)
    layer_names = {layer.name.lower(): int(layer) for layer in Layer}
    chosen: list[Check] = []
    for item in wanted:
        if item.isdigit() or item in layer_names:
            number = int(item) if item.isdigit() else layer_names[item]
            found = [c for c in checks if int(c.layer) == number]
        else:
            found = [c for c in checks if c.id == item or c.id.startswith(item + ".")]
        if not found:
            raise ValueError(f"--only {item!r} matches no check (see netcheck checks)")
        chosen += [c for c in found if c not in chosen]
    return [c for c in checks if c in chosen]  # keep the ladder's order


# -- running --------------------------------------------------------------------------------

def problem_report(entry: Entry, source: str) -> Report:
    """The ``unknown`` report of a profile line that cannot run (its line number in the error)."""
    from netcheck.render.json import error_report

    return error_report(entry.text or entry.name, f"{source}:{entry.line}: {entry.problem}")


def _options(entry: Entry, settings: Settings, started: Optional[float] = None) -> Any:
    """The entry's Options, through the one builder: its own options over the batch's."""
    from netcheck.cliutil import build_options

    given = {"timeout": settings.timeout, "deadline": settings.deadline,
             "family": settings.family, **entry.options}
    return build_options(given, lang=settings.lang, sysroot=settings.sysroot,
                         scan=settings.scan, started=started, expect=entry.expect)


def _shared_options(settings: Settings) -> Callable[[Entry], Any]:
    """``_options`` for the light sweep: entries with the same options and expectation
    share one Options (the lines of stdin all have the command line's; the sweep reads only
    the timeouts, family, language and expectation; a fallback to the check builds its own)."""
    shared: dict[Any, Any] = {}

    def options_for(entry: Entry) -> Any:
        try:
            key = (entry.expect, *sorted(entry.options.items()))
            found = shared.get(key)
        except TypeError:  # an unhashable value: this entry's own
            return _options(entry, settings)
        if found is None:
            found = shared[key] = _options(entry, settings)
        return found

    return options_for


@dataclass
class Run:
    """What every entry of one batch shares: the host state, the checks, the ladder's bound.

    ``facts``: a snapshot to use for every entry (tests); None: the host state's, at most a
    few seconds old.
    """

    settings: Settings
    checks: list[Check]
    state: Any  # netcheck.hoststate.HostState
    source: str = ""
    facts: Any = None
    ladders: Optional[asyncio.Semaphore] = None
    sweep: Any = None  # netcheck.batch.sweep.Sweep: --only transport.tcp

    async def host_facts(self) -> Any:
        return self.facts if self.facts is not None else await self.state.facts()


async def diagnose_entry(entry: Entry, run: Run, started: Optional[float] = None) -> Report:
    """One entry's report: the exchange when it is healthy (``--ladder on-failure``), else the
    diagnosis (its expectation judged by the transport check); never an exception.

    ``started``: when the entry started (its deadline counts from then). The light sweep's
    entries come here only when the sweep did not take them (its driver, not a worker).
    """
    from netcheck.redact import shown
    from netcheck.render.json import error_report

    if not entry.runnable:
        return problem_report(entry, run.source)
    assert entry.target is not None
    started = time.monotonic() if started is None else started
    options = _options(entry, run.settings, started)
    try:
        if run.settings.ladder == "on-failure":
            healthy = await _healthy_exchange(entry, run, options)
            if healthy is not None:
                return healthy
        # The runner keeps its own deadline; this is the backstop should anything hang.
        return await asyncio.wait_for(_ladder(entry, run, options),
                                      options.deadline + 1.0 - (time.monotonic() - started))
    except asyncio.TimeoutError:
        return error_report(entry.text, f"no result within the deadline ({options.deadline:g} s)")
    except Exception as exc:  # one target's crash must not take the batch down
        # The exception's text may quote a URL or a banner: masked like any outside text.
        return error_report(entry.text,
                            shown(f"internal error: {type(exc).__name__}: {exc}", 300))


async def _healthy_exchange(entry: Entry, run: Run, options: Any) -> Optional[Report]:
    """The report of a healthy exchange, or None when the ladder must run (it failed or
    warned, or the target has no exchange of its own)."""
    from netcheck import fastprobe

    assert entry.target is not None
    if fastprobe.why_no_exchange(entry.target, entry.expect, run.settings.only) is not None:
        return None
    left = max(options.deadline / 2, options.deadline - DEADLINE_KEEP_FOR_LADDER)
    try:
        ex = await asyncio.wait_for(fastprobe.exchange(
            entry.target, run.state, timeout=min(options.timeout, left), deadline=left,
            family=options.family, cafile=options.cafile, cert=options.cert, key=options.key,
            request_id=options.request_id), left)
    except asyncio.TimeoutError:
        return None
    if not fastprobe.healthy(ex).ok:
        return None
    return fastprobe.report(ex, run.checks, await run.host_facts(), options.request_id)


# What the exchange leaves of a target's deadline at least, for the ladder that explains a
# failure (the ladder counts the whole deadline from the target's start, the exchange included).
DEADLINE_KEEP_FOR_LADDER = 2.0


async def _ladder(entry: Entry, run: Run, options: Any) -> Report:
    from netcheck.runner import diagnose

    facts = await run.host_facts()
    if run.ladders is None:
        return await diagnose(entry.target, options, run.checks, facts=facts, shared=run.state)
    async with run.ladders:
        return await diagnose(entry.target, options, run.checks, facts=facts, shared=run.state)


class _Window:
    """Entries start only while fewer than ``size`` places after the first unfinished one
    (None: no bound), so an output that prints in profile order buffers at most ``size``."""

    def __init__(self, size: Optional[int]) -> None:
        self.size = size
        self.low = 0  # the first index not finished yet
        self.done: set[int] = set()
        self.waiters: list[asyncio.Future[None]] = []

    def admitted(self, index: int) -> bool:
        return self.size is None or index < self.low + self.size

    async def turn(self, index: int) -> None:
        """Until entry ``index`` may start."""
        while not self.admitted(index):
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            await waiter

    def finished(self, index: int) -> None:
        """Entry ``index`` is done: the window moves when it was the first unfinished."""
        if self.size is None:
            return
        self.done.add(index)
        if index == self.low:
            while self.low in self.done:
                self.done.discard(self.low)
                self.low += 1
            waiters, self.waiters = self.waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)


async def run_profile(profile: Profile, settings: Settings, checks: list[Check],
                      on_done: Callable[[Done], None],
                      on_start: Optional[Callable[[Entry], None]] = None,
                      window: Optional[int] = None, facts: Any = None,
                      summary: Optional[Summary] = None) -> Summary:
    """Diagnose every entry with at most ``settings.concurrency`` at once; return the summary.

    ``window``: an entry starts only while it is fewer than ``window`` places after the
    first unfinished one, so an output that prints in profile order buffers at most
    ``window`` results (one slow target cannot make it hold the whole batch).
    ``summary``: filled in as targets finish, so a caller interrupted half-way still has it.
    """
    from netcheck.hoststate import HostState

    t0 = time.monotonic()
    summary = summary if summary is not None else Summary()
    state = HostState(settings.sysroot)
    run = Run(settings, checks, state, profile.source, facts)
    from netcheck.batch import sweep

    light = sweep.applies(checks)
    if light is not None:
        run.sweep = sweep.Sweep(light, state, facts)
    if settings.ladder == "on-failure":
        run.ladders = asyncio.Semaphore(min(settings.concurrency, LADDER_CONCURRENCY))
    queue = iter(enumerate(profile.entries))
    order = _Window(window)

    def finish(index: int, entry: Entry, report: Report) -> None:
        summary.add(report.verdict)
        on_done(Done(index, entry, report))
        order.finished(index)

    async def worker() -> None:
        for index, entry in queue:  # one shared iterator: each entry goes to one worker
            await order.turn(index)
            if on_start is not None and entry.runnable:
                on_start(entry)
            finish(index, entry, await diagnose_entry(entry, run))

    n = max(1, min(settings.concurrency, MAX_CONCURRENCY, len(profile.entries) or 1))
    if run.sweep is not None:  # the light sweep: one driver, no task a target
        from netcheck.batch.driver import Driver

        driver = Driver(
            run.sweep, queue, n, _shared_options(settings),
            lambda entry, t0: diagnose_entry(entry, run, started=t0),
            order.admitted, finish, on_start)
        workers = [asyncio.ensure_future(driver.run())]
    else:
        workers = [asyncio.ensure_future(worker()) for _ in range(n)]
    try:
        await asyncio.gather(*workers)
    except asyncio.CancelledError:
        summary.interrupted = True
        for w in workers:
            w.cancel()
        raise
    finally:
        summary.duration_ms = (time.monotonic() - t0) * 1000
        if run.sweep is not None:
            run.sweep.close()
        # Lookups still running for nobody (a target hit its deadline first).
        state.cancel_pending()
    return summary


# Which built-in module declares the checks an --only item names, so that a narrow run
# imports only those (tls, http and their libraries stay unloaded for a connect sweep). A
# guess that matches nothing falls back to every module.
_MODULE_OF = {"physical": "physical", "link": "link", "network": "network", "dns": "network",
              "transport": "transport", "presentation": "presentation", "tls": "presentation",
              "application": "application", "http": "application", "app": "application"}


def _modules_for(only: Iterable[str]) -> Optional[tuple[str, ...]]:
    items = [w.strip().lower() for item in only for w in item.split(",") if w.strip()]
    modules: list[str] = []
    for item in items:
        if item.isdigit():
            item = Layer(int(item)).name.lower() if 1 <= int(item) <= 7 else item
        module = _MODULE_OF.get(item.split(".")[0])
        if module is None:
            return None
        if f"netcheck.checks.{module}" not in modules:
            modules.append(f"netcheck.checks.{module}")
    return tuple(modules) or None


def checks_for(settings: Settings) -> list[Check]:
    """The registered diagnose checks, narrowed by ``settings.only`` (ValueError if none)."""
    from netcheck import registry

    modules = _modules_for(settings.only)
    reg = registry.load(builtin=modules) if modules else registry.load()
    for warning in reg.warnings:
        registry.warn(warning)
    try:
        return select_checks(reg.for_mode("diagnose"), settings.only)
    except ValueError:
        if modules is None:
            raise
        return select_checks(registry.load().for_mode("diagnose"), settings.only)


def verdict_rank(report: Report) -> int:
    """For sorting: the worse, the higher."""
    return SEVERITY[report.verdict]


def root_text(report: Report) -> str:
    """``CODE (L4) summary`` of the root cause, the error of an unknown run, or ''."""
    if report.error is not None:
        return report.error
    rc: Optional[CheckOutcome] = report.root_cause
    if rc is not None:
        return f"{rc.result.code or rc.status.value.upper()} (L{int(rc.layer)}) {rc.result.summary}"
    if report.verdict is Verdict.UNKNOWN:
        errored = next((c for c in report.checks if c.status is Status.ERROR), None)
        if errored is not None:
            return f"{errored.id}: {errored.result.summary}"
    return ""
