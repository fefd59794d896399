"""Probes that several checks ask for, run once per run through ``ctx.memo``.

The network check (does the target answer at all?) and the transport check (what does
the port say?) both need the same TCP connects; the gateway and target checks both want
the same pings. Asking here makes them share one packet instead of sending two.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Optional

from netcheck.lazy import asyncio
from netcheck.probes import icmp, tcp

if TYPE_CHECKING:
    from netcheck.runner import Context


def tcp_connect(ctx: Context, address: str, port: int) -> asyncio.Task[tcp.TcpResult]:
    """The run's TCP connect to address:port (retried while nothing answers, see below)."""
    return ctx.memo(("tcp", address, port), lambda: connect_retrying(address, port, ctx.timeout))


# A lost SYN is resent by the kernel only after 1 s, then 3 s: on a lossy path one connect
# often times out although the port is open. A new connect starts every TCP_STAGGER seconds
# while none has had an answer, and the first answer wins (the others are closed).
TCP_STAGGER = 0.25


async def connect_retrying(address: str, port: int, timeout: float,
                           stagger: float = TCP_STAGGER) -> tcp.TcpResult:
    """Connects to address:port started ``stagger`` apart until one gets an answer.

    Any outcome but a timeout (SYN-ACK, RST, an ICMP error, this host's firewall) is an
    answer and settles it; when every connect times out, the first one's result is given,
    with the SYNs of them all (what the silence of a lossy path is weighed against).
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    attempts = [asyncio.ensure_future(tcp.connect(address, port, timeout))]
    try:
        while True:
            done, pending = await asyncio.wait(attempts, timeout=stagger,
                                               return_when=asyncio.FIRST_COMPLETED)
            for task in attempts:
                if task.done() and task.result().state != "timeout":
                    return task.result()
            left = timeout - (loop.time() - start)
            if not pending and left < stagger:
                first = attempts[0].result()
                counted = [t.result().syns for t in attempts]
                if all(n is not None for n in counted):
                    first = dataclasses.replace(first, syns=sum(n or 0 for n in counted))
                return first
            if left >= stagger:
                attempts.append(asyncio.ensure_future(tcp.connect(address, port, left)))
    finally:
        for task in attempts:
            task.cancel()


def ping(ctx: Context, address: str) -> asyncio.Task[icmp.PingResult]:
    """The run's one plain echo request to address."""
    return ctx.memo(("ping", address), lambda: icmp.ping(address, ctx.timeout))


async def tcp_all(ctx: Context, addresses: list[str], port: int) -> list[tcp.TcpResult]:
    """Connect to every address at once (at most 8: a name with more is a pool)."""
    return list(await asyncio.gather(*(tcp_connect(ctx, a, port) for a in addresses[:8])))


async def ping_all(ctx: Context, addresses: list[str]) -> list[icmp.PingResult]:
    return list(await asyncio.gather(*(ping(ctx, a) for a in addresses[:8])))


def burst(ctx: Context, address: str) -> asyncio.Task[icmp.BurstResult]:
    """The run's one burst of echo requests to address (loss, RTT and jitter, counted)."""
    return ctx.memo(("burst", address), lambda: icmp.burst(address, ctx.timeout))


def path_bursts(ctx: Context) -> asyncio.Task[dict[str, Any]]:
    """Bursts to the gateway(s) and the target's first address of each family, started
    as soon as the path is known so that they overlap the other rungs.

    ``{"gateways": {address: BurstResult}, "targets": {address: BurstResult}}``; the
    gateways are those the route lookups of these target addresses go through.
    """
    async def run() -> dict[str, Any]:
        addrs = await ctx.addresses()
        picked: list[str] = []
        for a in addrs:
            if all((":" in a) != (":" in p) for p in picked):
                picked.append(a)
        path = await ctx.path()
        gateways = list(dict.fromkeys(lk.gateway for lk in path.lookups
                                      if lk.gateway and lk.destination in picked))
        if not picked and path.gateway:
            gateways = [path.gateway]
        # A gateway's burst is the same for every target of a batch: once per batch.
        tasks = {g: ctx.memo_shared(("burst", g), lambda g=g: icmp.burst(g, ctx.timeout))
                 for g in gateways}
        tasks.update({a: burst(ctx, a) for a in picked if a not in tasks})
        if tasks:
            await asyncio.wait(list(tasks.values()))
        return {"gateways": {g: tasks[g].result() for g in gateways},
                "targets": {a: tasks[a].result() for a in picked}}

    return ctx.memo("path-bursts", run)


def http_get(ctx: Context, address: Optional[str], mss: Optional[int] = None) -> asyncio.Task[Any]:
    """The run's GET of the target URL from ``address`` (proxies honoured), once per MSS.

    The application check judges the answer; the path-MTU check compares it with the same
    GET sent with small segments (``mss``), so a download that stalls for big packets only
    is told apart from an application that does not answer.
    """
    async def get() -> Any:
        import os

        from netcheck.probes import dns, http

        assert ctx.target is not None
        dns_ms = None
        if ctx.target.is_name:
            dns_ms = (await ctx.resolution()).duration_ms

        async def resolve(name: str) -> list[str]:
            found = await dns.resolve_like_system(name, ctx.families, ctx.options.resolv_conf,
                                                  ctx.options.hosts_file, ctx.timeout)
            return list(found.addresses)

        return await http.fetch(
            http.parts_of(ctx.target), address=address, timeout=ctx.timeout,
            deadline=max(0.2, ctx.time_left() - HTTP_RESERVE), cafile=ctx.options.cafile,
            cert=ctx.options.cert, key=ctx.options.key, request_id=ctx.options.request_id,
            **http.proxy_arguments(ctx.options.proxy, ctx.options.no_proxy, os.environ),
            resolve=resolve, dns_ms=dns_ms, mss=mss,
            hop_refusal=ctx.options.hop_refusal)

    return ctx.memo(("http", address, mss), get)


# Seconds kept back from the deadline so a slow GET still leaves time to report it.
HTTP_RESERVE = 0.4


def manager(ctx: Context) -> asyncio.Task[Any]:
    """Which network manager is in charge (read once per run, or once per batch)."""
    from netcheck.hints import detect_manager

    return ctx.memo_shared("network-manager", lambda: ctx.blocking(detect_manager, ctx.facts))
