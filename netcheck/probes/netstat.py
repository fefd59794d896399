"""The kernel's protocol counters of this network namespace (``nstat``'s TcpExt, IpExt...),
read from /proc/net/netstat: readable without root, namespace-wide. A check reads one before
and after its probes to see what the kernel did to them where no socket says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from netcheck.facts import Facts


def counter(facts: Facts, group: str, name: str) -> Optional[int]:
    """One counter (``TcpExt``, ``TCPRetransFail``), or None when the kernel has no such one
    or the file cannot be read."""
    text = facts.read_sys("proc", "net", "netstat") or ""
    lines = [line.split() for line in text.splitlines()]
    head = f"{group}:"
    for names, values in zip(lines, lines[1:]):
        if names and names[0] == head and values and values[0] == head and name in names:
            i = names.index(name)
            return int(values[i]) if i < len(values) and values[i].isdigit() else None
    return None
