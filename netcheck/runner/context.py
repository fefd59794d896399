"""What a check sees (:class:`Context`): the target, the run's :class:`Options`, the facts, and the
measurements the checks share, memoised so that two checks asking the same question wait on
the same probe; :class:`PathInfo`, the way the packets to the target leave this host; and
:func:`run_blocking`, a blocking probe on a daemon thread.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Optional, TypeVar

from netcheck import defaults
from netcheck import family as addrfam
from netcheck.facts import Facts, RouteLookup
from netcheck.model import CheckOutcome, Result
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
        self._values: dict[Any, Any] = {}  # this run's plain values (and a batch's, alone)
        self._start = time.monotonic()
        self.others_done: Optional[asyncio.Event] = None
        # Called when a check starts (outcome None) and ends: a live display, never logic.
        self.on_progress: Optional[Callable[[Check, Optional[CheckOutcome]], None]] = None
        self.locator: Any = None  # netcheck.locate.Locator when options.locate

    @property
    def timeout(self) -> float:
        """The per-probe timeout, shortened when the deadline is closer: at most half the
        time left, so that a rung whose probe went unanswered still has time for what it
        does next (the probes that say why) and the rungs above it for theirs."""
        return max(0.05, min(self.options.timeout, (self.time_left() - DEADLINE_MARGIN) / 2))

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

    def started(self, key: Any) -> Optional[asyncio.Task[Any]]:
        """The memo task of ``key`` when something started it (an early probe a check may
        use), else None: nothing is started."""
        return self._memo.get(key)

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

    def value(self, key: Any, factory: Callable[[], T]) -> T:
        """A plain value of this run, computed once: by the first caller (a ``Check.starts``
        hook taking a kernel counter before the probes leave), later callers read it."""
        if key not in self._values:
            self._values[key] = factory()
        return self._values[key]  # type: ignore[no-any-return]

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
