"""Where packets stop: the flow itself, sent again with growing TTL (tracepath and mtr for one
flow), and who answers at each hop.

A traceroute made of ICMP or of UDP to high ports proves little about a web server whose port
is silent: firewalls treat those packets differently. So the probes here are the flow's own —
a TCP SYN to the real port, a DNS query to the resolver's port 53, an echo request (full-size
with Don't-Fragment for a path-MTU black hole) — each with the TTL (hop limit) of one hop.
A router where the TTL runs out answers ICMP "time exceeded"; the target answers as it
answers the flow (SYN-ACK, RST, a DNS answer, an echo reply); silence is silence.

Nothing here needs root, as tracepath shows: every probe has its own socket with
``IP_RECVERR`` (``IPV6_RECVERR``), so the kernel queues the ICMP error the probe met, with the
router that sent it. For TCP that is a non-blocking connect() with ``IP_TTL`` set; the error
aborts the connect in SYN-SENT and is read from the error queue. ICMP echo uses the
unprivileged ICMP datagram socket where ``ping_group_range`` allows it, a raw socket with
root. With root only, a raw TCP socket also reads the TTL a reset arrives with, which tells
how far away its sender is (a reset a firewall forges 1 hop away arrives with a TTL the
server's own packets never have).

A router that rate-limits its ICMP errors answers some probes and not others: every hop gets
a probe per round, rounds are spaced out so that limits refill, and a hop whose answers are
missing while later hops answer is never where the packets stop. Probes measure: what the
traces mean, in words, is :func:`netcheck.locate.judge`'s.

The package, by concern (each module imports only those before it): ``model`` (the methods,
Probe, Hop, Trace, Limit), ``probe`` (one TTL-limited probe: TCP SYN, datagram, echo request),
``replyttl`` (with root, the TTL a TCP answer arrives with), ``tracing`` (:func:`trace`: the
rounds within the budget, then the probes counted hop by hop). Every name importable from
``netcheck.probes.hops`` before the split is re-exported here, and ``icmp`` with them: the
probes look ``icmp.available_method`` up when they run, so replacing it here replaces it there.
"""

from __future__ import annotations

# isort: off
from netcheck.probes import icmp as icmp
from netcheck.probes.hops.model import (
    ECHO_NEEDS_PRIVILEGE,
    ICMP,
    ICMP_DF,
    METHODS,
    RESET_TTL_NEEDS_ROOT,
    SEND_FAILED,
    TCP,
    UDP,
    UDP_BASE_PORT,
    UDP_DNS,
    Hop,
    Limit,
    Probe,
    Trace,
    family_of,
)
from netcheck.probes.hops.probe import (
    TIME_EXCEEDED,
    dns_query,
    icmp_probe,
    tcp_probe,
    udp_probe,
)
from netcheck.probes.hops.replyttl import hops_away
from netcheck.probes.hops.tracing import MIN_WAIT, STAGGER, TAIL, mark_rate_limited, trace
# isort: on

# Every public name the module had before it became a package.
__all__ = [
    "ECHO_NEEDS_PRIVILEGE", "ICMP", "ICMP_DF", "METHODS", "MIN_WAIT", "RESET_TTL_NEEDS_ROOT",
    "SEND_FAILED", "STAGGER", "TAIL", "TCP", "TIME_EXCEEDED", "UDP", "UDP_BASE_PORT", "UDP_DNS",
    "Hop", "Limit", "Probe", "Trace", "dns_query", "family_of", "hops_away", "icmp_probe",
    "mark_rate_limited", "tcp_probe", "trace", "udp_probe",
]
