"""ICMP echo ("ping"), with or without Don't-Fragment, the unprivileged way when possible.

Three ways, tried in this order once per run:
1. an unprivileged ICMP datagram socket, where ``net.ipv4.ping_group_range`` admits our group;
2. a raw socket, with root or CAP_NET_RAW;
3. the system ``ping`` (iputils), which may carry its own capability.
If none works the probe says so (``state="unavailable"``) and the checks skip; it never
pretends a silence it could not measure.

The package, by concern (each module imports only those before it): ``errqueue`` (the
socket options, the ICMP errors a socket queues and their names, waiting on a socket: the
TCP, DNS and hop probes use these too), ``echo`` (one echo request: ``ping``,
``available_method``), ``bursts`` (``burst``: loss and jitter, counted). Every name
importable from ``netcheck.probes.icmp`` before the split is re-exported here.
"""

from __future__ import annotations

# isort: off
from netcheck.probes.icmp.errqueue import (
    ICMP6_NAMES,
    ICMP_NAMES,
    IP_MTU_DISCOVER,
    IP_PMTUDISC_PROBE,
    IP_RECVERR,
    IPV6_DONTFRAG,
    IPV6_MTU_DISCOVER,
    IPV6_PMTUDISC_PROBE,
    IPV6_RECVERR,
    MSG_ERRQUEUE,
    SO_EE_ORIGIN_ICMP,
    SO_EE_ORIGIN_ICMP6,
    icmp_name,
    read_errqueue,
    wait_readable,
    wait_ready,
)
from netcheck.probes.icmp.echo import (
    PingResult,
    _echo_packet,
    _echo_socket,
    _parse,
    available_method,
    ping,
)
from netcheck.probes.icmp.bursts import (
    BURST_COUNT,
    BURST_INTERVAL,
    BURST_MIN_GAP,
    BurstResult,
    burst,
    burst_stats,
)
# isort: on


# Every public name the module had before it became a package.
__all__ = [
    "BURST_COUNT", "BURST_INTERVAL", "BURST_MIN_GAP", "BurstResult", "ICMP6_NAMES",
    "ICMP_NAMES", "IPV6_DONTFRAG", "IPV6_MTU_DISCOVER", "IPV6_PMTUDISC_PROBE", "IPV6_RECVERR",
    "IP_MTU_DISCOVER", "IP_PMTUDISC_PROBE", "IP_RECVERR", "MSG_ERRQUEUE", "PingResult",
    "SO_EE_ORIGIN_ICMP", "SO_EE_ORIGIN_ICMP6", "available_method", "burst", "burst_stats",
    "icmp_name", "ping", "read_errqueue", "wait_readable", "wait_ready",
    # private, reached from outside (hops sends its own echo requests with these)
    "_echo_packet", "_echo_socket", "_parse",
]
