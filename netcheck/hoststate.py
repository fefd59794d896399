"""What does not depend on the target, read once per short interval and shared by every probe.

A long-lived process (``netcheck serve``) or a big batch diagnoses many targets from one host.
The netlink snapshot, the firewall rules, the socket tables, the hardware, the network manager
and the resolver configuration are the same for all of them, so they are read once and shared
— but never for long: an entry is at most :data:`MAX_AGE` seconds old, so an interface taken
down or a rule added shows in the next diagnosis after a few seconds, not never.

:class:`HostState` is what is handed to :func:`netcheck.runner.diagnose` as ``shared``: the
runner's :meth:`~netcheck.runner.Context.memo_shared` and
:meth:`~netcheck.runner.Context.value_shared` store tasks and values in it, and it forgets them
when they are too old (a task that failed or was cancelled at once: a failure is never shared
with the next probe). Name resolutions are the exception: they live as long as their DNS TTL,
as in a stub resolver (:class:`DnsCache`), bounded in number. Every task in it belongs to one
event loop: one :class:`HostState` per loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Callable, Iterator, MutableMapping, Optional

if TYPE_CHECKING:
    from netcheck.facts import Facts
    from netcheck.probes.dns import Resolution

MAX_AGE = 5.0  # seconds: what the host shows is at most this old
MAX_DNS_TTL = 300.0  # a TTL above this is cut to it (unbound's cache-max-ttl is a day; ours short)
MAX_NAMES = 10_000  # resolutions kept at most, least recently used dropped first
PURGE_EVERY = 1.0  # expired entries are swept out at most this often
_FOREVER = float("inf")


def resolution_ttl(res: Resolution, max_age: float = MAX_AGE) -> float:
    """Seconds a resolution may be reused, as a stub resolver would.

    The smallest TTL of the answers the settling server gave (a missing AAAA counts with its
    negative TTL), at most :data:`MAX_DNS_TTL`. A name from the hosts file is host state
    (``max_age``). A name that did not resolve is not kept at all: the next probe of it goes
    to the ladder, which must see what the servers say now.
    """
    if not res.addresses:
        return 0.0
    if res.source == "hosts":
        return max_age
    settled = [a for a in res.answers if a.rcode == "NOERROR" and a.qname == res.fqdn]
    ttls = [a.ttl for a in settled if a.ttl is not None]
    if not ttls:
        return max_age  # no TTL said (a stub that strips it): as short as host state
    return float(max(0, min(min(ttls), MAX_DNS_TTL)))


def _is_resolution(key: Any) -> bool:
    return isinstance(key, tuple) and bool(key) and key[0] == "resolution"


class HostState(MutableMapping[Any, Any]):
    """The shared store of one event loop: entries expire ``max_age`` after they were made,
    name resolutions when their TTL ends (at most ``max_names`` of them).

    ``facts()`` is the netlink snapshot, read by one reader when the last is too old.
    """

    def __init__(self, sysroot: str = "/", max_age: float = MAX_AGE,
                 max_names: int = MAX_NAMES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sysroot = sysroot
        self.max_age = max_age
        self.max_names = max_names
        self.clock = clock
        self._items: dict[Any, tuple[Any, float]] = {}  # key -> (value, expires at)
        self._names: OrderedDict[Any, tuple[Any, float]] = OrderedDict()  # resolutions, LRU
        self._purged = clock()
        self._facts: Optional[tuple[Facts, float]] = None
        self._facts_task: Optional[asyncio.Task[Facts]] = None
        self.facts_reads = 0  # how many snapshots were taken (the exporter shows it)

    # -- the mapping the runner uses ----------------------------------------------------------

    def _table(self, key: Any) -> MutableMapping[Any, tuple[Any, float]]:
        return self._names if _is_resolution(key) else self._items

    def __getitem__(self, key: Any) -> Any:
        table = self._table(key)
        value, expires = table[key]
        if self.clock() >= expires:
            del table[key]
            raise KeyError(key)
        if table is self._names:
            self._names.move_to_end(key)
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        now = self.clock()
        if now - self._purged >= PURGE_EVERY:
            self.purge(now)
        table = self._table(key)
        if isinstance(value, asyncio.Future) and not value.done():
            # In flight: shared by every probe that asks meanwhile; its age counts once done.
            table[key] = (value, _FOREVER)
            value.add_done_callback(lambda fut, key=key: self._settled(key, fut))
        else:
            table[key] = (value, now + self._lifetime(key, value))
        if table is self._names:
            self._names.move_to_end(key)
            while len(self._names) > self.max_names:
                self._names.popitem(last=False)

    def __delitem__(self, key: Any) -> None:
        del self._table(key)[key]

    def __iter__(self) -> Iterator[Any]:
        now = self.clock()
        for table in (self._items, self._names):
            yield from [k for k, (_, expires) in table.items() if expires > now]

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def _settled(self, key: Any, fut: asyncio.Future[Any]) -> None:
        table = self._table(key)
        entry = table.get(key)
        if entry is None or entry[0] is not fut:
            return  # replaced or dropped meanwhile
        table[key] = (fut, self.clock() + self._lifetime(key, fut))

    def _lifetime(self, key: Any, value: Any) -> float:
        """How long an entry is good for, from now."""
        if isinstance(value, asyncio.Future):
            if value.cancelled() or value.exception() is not None:
                return 0.0  # a failure is never handed to the next probe
            value = value.result()
        if _is_resolution(key):
            return resolution_ttl(value, self.max_age)
        return self.max_age

    def purge(self, now: Optional[float] = None) -> None:
        """Forget every expired entry (lookups forget them anyway; this bounds the memory)."""
        now = self.clock() if now is None else now
        self._purged = now
        for table in (self._items, self._names):
            for key in [k for k, (_, expires) in table.items() if expires <= now]:
                del table[key]

    def cancel_pending(self) -> None:
        """Cancel the shared tasks still running (the loop they belong to is ending)."""
        for table in (self._items, self._names):
            for value, _ in table.values():
                if isinstance(value, asyncio.Future) and not value.done():
                    value.cancel()
        if self._facts_task is not None and not self._facts_task.done():
            self._facts_task.cancel()

    # -- the netlink snapshot ----------------------------------------------------------------

    async def facts(self) -> Facts:
        """This host's links, addresses, routes and neighbours, at most ``max_age`` old.

        One snapshot at a time: probes that ask while it is being read wait for it.
        """
        now = self.clock()
        if self._facts is not None and now - self._facts[1] < self.max_age:
            return self._facts[0]
        if self._facts_task is None or self._facts_task.done():
            self._facts_task = asyncio.ensure_future(self._read_facts())
        return await asyncio.shield(self._facts_task)

    async def _read_facts(self) -> Facts:
        from netcheck.facts import snapshot
        from netcheck.runner import run_blocking

        started = self.clock()
        facts = await run_blocking(snapshot, self.sysroot)
        self.facts_reads += 1
        self._facts = (facts, started)  # its age counts from when the reading began
        return facts

    # -- name resolution ---------------------------------------------------------------------

    async def resolve(self, name: str, families: tuple[int, ...], resolv_conf: str,
                      hosts_file: str, timeout: float) -> tuple[Resolution, bool]:
        """``name`` resolved the way the system would, through the cache: (resolution, fresh).

        ``fresh`` is False when the answer came from the cache. The key is the one
        :meth:`netcheck.runner.Context.resolution` uses, so a ladder run on the same
        :class:`HostState` finds the same resolution and asks nobody again.
        """
        from netcheck.probes import dns

        key = ("resolution", name, families, resolv_conf, hosts_file)
        task = self.get(key)
        fresh = task is None
        if task is None:
            task = asyncio.ensure_future(dns.resolve_like_system(
                name, families, resolv_conf, hosts_file, timeout))
            self[key] = task
        return await asyncio.shield(task), fresh
