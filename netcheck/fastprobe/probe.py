"""The exchange itself: name → connect → TLS → request for one target, timed phase by phase,
the probes' own results kept as they came (:class:`Exchange`), and whether a target has one
here at all (:func:`why_no_exchange`).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable, Mapping, Optional

if TYPE_CHECKING:
    from netcheck.hoststate import HostState
    from netcheck.probes.dns import Resolution
    from netcheck.probes.http import HttpResult
    from netcheck.probes.tcp import TcpResult
    from netcheck.probes.tls import CertSummary
    from netcheck.target import Target

EXCHANGE_SCHEMES = ("tcp", "http", "https")
LADDER_CHOICES = ("on-failure", "always")
MAX_ADDRESSES = 8  # as the transport rung: a name with more is a pool
# A new connection is watched four handshake round trips for a reset before any byte, as
# the transport rung does, but at least this long (the rung: 15 ms): a reset from accept()
# comes one round trip after the handshake; a later one, after a slow check on the server, is
# the ladder's to find.
WATCH_FLOOR = 0.005
CERT_CACHE_SECONDS = 3600.0  # a parsed certificate is reused this long (days_left moves daily)
_MAX_CERTS = 4096


def why_no_exchange(target: Target, expect: str = "open", only: tuple[str, ...] = (),
                    ladder: str = "on-failure") -> Optional[str]:
    """Why this probe goes straight to the ladder, or None when the exchange comes first.

    ``ladder = "always"`` asks for it; ``expect = "closed"`` is a judgement the ladder's
    transport rung turns around; ``only`` is a ladder the module already narrowed; schemes
    other than tcp, http and https have their greeting or STARTTLS judged by the ladder.
    """
    if ladder == "always":
        return "the module asks for the ladder (ladder = \"always\")"
    if expect != "open":
        return f"expect = {expect!r} is judged by the ladder"
    if only:
        return "the module runs only the checks it names"
    if target.scheme not in EXCHANGE_SCHEMES:
        return f"{target.scheme}:// has no exchange of its own here"
    return None


@dataclass
class Exchange:
    """What the exchange met: the probes' own results, nothing judged yet."""

    target: Target
    families: tuple[int, ...]
    started_at: str = ""
    resolution: Optional[Resolution] = None
    cached: bool = False  # the resolution came from the cache (no question was sent)
    dns_ms: float = 0.0  # what this probe spent resolving (0 for a cached answer)
    addresses: list[str] = field(default_factory=list)  # every address the name gave
    judged: list[str] = field(default_factory=list)  # those of the families this host uses
    connects: list[TcpResult] = field(default_factory=list)
    http: Optional[HttpResult] = None
    chain: list[CertSummary] = field(default_factory=list)  # the target's, leaf first
    chain_error: Optional[str] = None
    duration_ms: float = 0.0

    @property
    def used_address(self) -> Optional[str]:
        """The address the exchange went through: the HTTP request's, else the first open."""
        if self.http is not None and self.http.hops and self.http.hops[0].address:
            return self.http.hops[0].address
        return next((r.address for r in self.connects if r.state == "open"), None)



def families_for(family: Optional[int]) -> tuple[int, ...]:
    """``-4``/``-6`` (4, 6 or None) as the address families asked for."""
    if family == 4:
        return (socket.AF_INET,)
    if family == 6:
        return (socket.AF_INET6,)
    return (socket.AF_INET, socket.AF_INET6)


async def exchange(target: Target, state: HostState, *, timeout: float = 2.0,
                   deadline: float = 10.0, family: Optional[int] = None,
                   cafile: Optional[str] = None, cert: Optional[str] = None,
                   key: Optional[str] = None,
                   hop_refusal: Optional[Callable[[str, int, str, str], Optional[str]]] = None,
                   request_id: Optional[str] = None,
                   env: Optional[Mapping[str, str]] = None,
                   resolv_conf: str = "/etc/resolv.conf",
                   hosts_file: str = "/etc/hosts") -> Exchange:
    """Name → connect → TLS → request for one target, within ``deadline`` seconds.

    The caller bounds it too (``asyncio.wait_for``): what is here when that ends is what the
    ladder is for. ``hop_refusal`` is asked before every HTTP hop, the first included.
    """
    start = time.monotonic()
    ex = Exchange(target, families_for(family),
                  started_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    await _find_addresses(ex, state, timeout, resolv_conf, hosts_file)
    if not ex.judged:
        ex.duration_ms = (time.monotonic() - start) * 1000
        return ex
    connects = await _connect(ex, timeout)
    try:
        if target.scheme in ("http", "https"):
            ex.http = await _fetch(ex, state, timeout=timeout,
                                   deadline=max(0.05, deadline - (time.monotonic() - start)),
                                   cafile=cafile, cert=cert, key=key, hop_refusal=hop_refusal,
                                   request_id=request_id, env=env, resolv_conf=resolv_conf,
                                   hosts_file=hosts_file)
        if connects is not None:
            ex.connects = list(await connects)
    finally:
        if connects is not None and not connects.done():
            connects.cancel()
    _read_chain(ex)
    ex.duration_ms = (time.monotonic() - start) * 1000
    return ex


async def _find_addresses(ex: Exchange, state: HostState, timeout: float, resolv_conf: str,
                          hosts_file: str) -> None:
    """The name: the target's addresses (resolved through the host state's cache, timed when
    a question was sent), and those the exchange judges."""
    from netcheck import family as addrfam

    target = ex.target
    ip = target.ip
    if ip is not None:
        fam = socket.AF_INET if ip.version == 4 else socket.AF_INET6
        ex.addresses = [target.host] if fam in ex.families else []
    else:
        t0 = time.monotonic()
        ex.resolution, fresh = await state.resolve(target.host, ex.families, resolv_conf,
                                                   hosts_file, timeout)
        ex.cached = not fresh
        ex.dns_ms = (time.monotonic() - t0) * 1000 if fresh else 0.0
        ex.addresses = list(ex.resolution.addresses)
    if len(addrfam.families_of(ex.addresses)) > 1:
        # Which families this host uses (an IPv4-only host never tries an AAAA address): the
        # netlink snapshot is asked only when the answer could change something.
        ex.judged = addrfam.used(await state.facts(), ex.addresses)[:MAX_ADDRESSES]
    else:
        ex.judged = ex.addresses[:MAX_ADDRESSES]


async def _connect(ex: Exchange, timeout: float) -> Optional[asyncio.Future[list[TcpResult]]]:
    """The TCP connects of the exchange: one address of a tcp:// target is connected to here,
    several start side by side and their future is returned (None: nothing left running)."""
    from netcheck import family as addrfam
    from netcheck.probes import tcp

    target = ex.target
    both = len(addrfam.families_of(ex.judged)) > 1
    if target.scheme == "tcp" and len(ex.judged) == 1:
        ex.connects = [await tcp.connect(ex.judged[0], target.port, timeout,
                                         watch_floor=WATCH_FLOOR)]
    elif target.scheme == "tcp" or both:
        # tcp://: the connects are the exchange. http(s) to a name of both families: every
        # address is connected to, so a family that fails shows (the transport rung's rule).
        return asyncio.gather(*(tcp.connect(a, target.port, timeout, watch_floor=WATCH_FLOOR)
                                for a in ex.judged))
    return None


async def _fetch(ex: Exchange, state: HostState, *, timeout: float, deadline: float,
                 cafile: Optional[str], cert: Optional[str], key: Optional[str],
                 hop_refusal: Optional[Callable[[str, int, str, str], Optional[str]]],
                 request_id: Optional[str], env: Optional[Mapping[str, str]],
                 resolv_conf: str, hosts_file: str) -> HttpResult:
    from netcheck.probes import http

    async def resolve(name: str) -> list[str]:  # redirects to other names: the same cache
        res, _fresh = await state.resolve(name, ex.families, resolv_conf, hosts_file, timeout)
        return list(res.addresses)

    return await http.fetch(http.parts_of(ex.target), address=ex.judged[0], timeout=timeout,
                            deadline=deadline, cafile=cafile, cert=cert, key=key,
                            request_id=request_id, env=os.environ if env is None else env,
                            resolve=resolve, dns_ms=ex.dns_ms if ex.resolution else None,
                            hop_refusal=hop_refusal)


_certs: dict[bytes, tuple[float, CertSummary]] = {}


def _summary(der: bytes) -> CertSummary:
    """A certificate parsed once an hour at most: monitoring sees the same chain every scrape."""
    from netcheck.probes.tls import summarize_der

    now = time.monotonic()
    cached = _certs.get(der)
    if cached is not None and now - cached[0] < CERT_CACHE_SECONDS:
        return cached[1]
    summary = summarize_der(der)
    if len(_certs) >= _MAX_CERTS:
        _certs.clear()
    _certs[der] = (now, summary)
    return summary


def _read_chain(ex: Exchange) -> None:
    """The target's certificates (its first hop's, as the TLS rungs judge them)."""
    if ex.target.scheme != "https" or ex.http is None or not ex.http.hops:
        return
    try:
        ex.chain = [_summary(der) for der in ex.http.hops[0].peer_chain]
    except Exception as exc:  # odd fields in a certificate: the ladder reads it properly
        ex.chain_error = f"{type(exc).__name__}: {exc}"
