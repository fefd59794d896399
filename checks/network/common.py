"""What several layer-3 rungs share: the network manager, whether a rung about names applies,
which addresses are loopback ones.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Optional

from netcheck import hints
from netcheck.i18n import _
from netcheck.lazy import lazy

if TYPE_CHECKING:
    import socket

    from netcheck.probes import shared
    from netcheck.runner import Context
else:  # imported at first use: `netcheck checks` lists the checks without the probes
    socket = lazy("socket")
    shared = lazy("netcheck.probes.shared")


SLOW_DNS_MS = 500.0


async def _manager(ctx: Context) -> hints.Manager:
    return await shared.manager(ctx)


def _name_target(ctx: Context) -> Optional[str]:
    if ctx.target is None:
        return _("no target")
    # The first rungs of layer 3 to be asked whether they apply: the bursts that measure
    # loss and latency on the path start here, so they run while the other rungs do.
    shared.path_bursts(ctx)
    return None if ctx.target.is_name else _("the target is an address: no name to resolve")


def _fam_name(family: int) -> str:
    return "IPv6" if family == socket.AF_INET6 else "IPv4"


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False
