"""Probes that several checks ask for, run once per run through ``ctx.memo``.

The network check (does the target answer at all?) and the transport check (what does
the port say?) both need the same TCP connects; the gateway and target checks both want
the same pings. Asking here makes them share one packet instead of sending two.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netcheck.lazy import asyncio
from netcheck.probes import icmp, tcp

if TYPE_CHECKING:
    from netcheck.runner import Context


def tcp_connect(ctx: Context, address: str, port: int) -> asyncio.Task[tcp.TcpResult]:
    """The run's one TCP connect to address:port."""
    return ctx.memo(("tcp", address, port), lambda: tcp.connect(address, port, ctx.timeout))


def ping(ctx: Context, address: str) -> asyncio.Task[icmp.PingResult]:
    """The run's one plain echo request to address."""
    return ctx.memo(("ping", address), lambda: icmp.ping(address, ctx.timeout))


async def tcp_all(ctx: Context, addresses: list[str], port: int) -> list[tcp.TcpResult]:
    """Connect to every address at once (at most 8: a name with more is a pool)."""
    return list(await asyncio.gather(*(tcp_connect(ctx, a, port) for a in addresses[:8])))


async def ping_all(ctx: Context, addresses: list[str]) -> list[icmp.PingResult]:
    return list(await asyncio.gather(*(ping(ctx, a) for a in addresses[:8])))
