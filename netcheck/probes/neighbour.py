"""Neighbour resolution (ARP / NDP): does the next hop answer on the link at all?

A gateway may drop ping and still forward packets; whether it answers ARP or neighbour
solicitation is what says it is there. The kernel only resolves on demand, so one UDP
datagram to the discard port sets it going, then the neighbour table is watched.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Optional

from netcheck.facts import NUD_STATES

RESOLVED = {"REACHABLE", "STALE", "DELAY", "PROBE", "PERMANENT", "NOARP"}
DISCARD_PORT = 9


@dataclass
class NeighbourResult:
    address: str
    ifindex: int
    state: str  # a NUD state name, or NONE when the kernel has no entry
    lladdr: Optional[str] = None
    waited_ms: float = 0.0
    error: Optional[str] = None

    @property
    def resolved(self) -> bool:
        return self.state in RESOLVED

    def to_json(self) -> dict[str, object]:
        return {k: (round(v, 1) if isinstance(v, float) else v)
                for k, v in vars(self).items() if v is not None}


def resolve(address: str, ifindex: int, timeout: float) -> NeighbourResult:
    """Blocking: make the kernel resolve ``address`` on ``ifindex`` and report the outcome."""
    from pyroute2 import IPRoute

    start = time.monotonic()
    result = NeighbourResult(address, ifindex, "NONE")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            dest: tuple[object, ...] = (address, DISCARD_PORT)
            if family == socket.AF_INET6:
                dest = (address, DISCARD_PORT, 0, ifindex if address.startswith("fe80") else 0)
            sock.sendto(b"", dest)
    except OSError as exc:
        result.error = exc.strerror or str(exc)
    try:
        with IPRoute() as ipr:
            while True:
                entries = ipr.get_neighbours(family=family, ifindex=ifindex, dst=address)
                entries = [e for e in entries if e.get_attr("NDA_DST") == address]
                if entries:
                    msg = entries[0]
                    result.state = NUD_STATES.get(msg["state"], str(msg["state"]))
                    result.lladdr = msg.get_attr("NDA_LLADDR")
                if result.state in RESOLVED or result.state == "FAILED":
                    break
                if time.monotonic() - start >= timeout:
                    break
                time.sleep(0.02)
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    result.waited_ms = (time.monotonic() - start) * 1000
    return result
