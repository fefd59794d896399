"""Layer 3: the network manager, addresses, routes, the gateway, names, the target, the MTU.

The order of declaration is the slides' order and the tie-break for the root cause: an
address problem explains a route problem, a route problem explains a silent gateway, a
silent gateway explains a resolver that does not answer. The modules are imported below in
that order, each importing only those before it, so the rungs are declared as they always
were:

- ``common``: what several rungs share (the network manager, names, loopback addresses);
- ``host``: ``network.service``, ``network.loopback``;
- ``judging``: the pure judging of the address, route and gateway rungs;
- ``view``: gathering the facts they judge (the run's L3View, route lookups);
- ``addressing``: ``network.address``, ``network.address_conflict``;
- ``routing``: ``network.route``;
- ``xfrm``: ``network.ipsec``;
- ``gateways``: ``network.gateway``;
- ``nameservers``: the name servers' records and the pure judging of ``dns.servers``;
- ``resolver``: ``dns.config``, ``dns.servers``;
- ``resolution``: ``dns.resolution``, ``dns.hosts_file``;
- ``path``: loss and latency on the path (judged for ``network.target``);
- ``target``: ``network.target``;
- ``pmtu``: ``network.pmtu``.

Importing this package declares every rung; the names others use are re-exported here.
"""

from __future__ import annotations

# Each module imports only those above it: the rungs are declared in this order.
# isort: off
from netcheck.checks.network.common import SLOW_DNS_MS
from netcheck.checks.network.host import loopback, network_service
from netcheck.checks.network.judging import (
    OK,
    STATIC_NUD,
    UNUSED,
    FamilyAddresses,
    FamilyRoute,
    GatewayFacts,
    Judged,
    address_state,
    judge_address,
    judge_gateway,
    judge_gateways,
    judge_route,
    route_line,
    route_state,
)
from netcheck.checks.network.view import L3View, families_judged_below
from netcheck.checks.network.addressing import address, address_conflict
from netcheck.checks.network.routing import Router, route
from netcheck.checks.network.xfrm import ipsec
from netcheck.checks.network.gateways import gateway
from netcheck.checks.network.resolver import (
    ServerRecord,
    dns_config,
    dns_servers,
    judge_config,
    judge_servers,
)
from netcheck.checks.network.resolution import (
    dns_resolution,
    first_server_wait_ms,
    hosts_file,
    judge_resolution,
)
from netcheck.checks.network.path import (
    CONFIDENCE_Z,
    JITTER_MS,
    JITTER_RATIO,
    LINK_RTT_MS,
    LOSS_FAIL_ONE_WAY,
    LOSS_WARN_PCT,
    MIN_SAMPLES,
    TARGET_RTT_MS,
    PathSample,
    judge_path,
)
from netcheck.checks.network.target import target_reachable
from netcheck.checks.network.pmtu import (
    PMTU_INTERVAL,
    PMTU_PROBES,
    SEARCH_PROBES,
    SMALL_MSS,
    STALLS,
    path_mtu,
)
# isort: on

__all__ = [
    "SLOW_DNS_MS", "loopback", "network_service", "FamilyAddresses", "FamilyRoute",
    "GatewayFacts", "Judged", "OK", "STATIC_NUD", "UNUSED", "address_state", "judge_address",
    "judge_gateway", "judge_gateways", "judge_route", "route_line", "route_state", "L3View",
    "families_judged_below", "address", "address_conflict", "Router", "route", "ipsec",
    "gateway", "ServerRecord", "dns_config", "dns_servers", "judge_config", "judge_servers",
    "dns_resolution", "first_server_wait_ms", "hosts_file", "judge_resolution", "CONFIDENCE_Z",
    "JITTER_MS", "JITTER_RATIO", "LINK_RTT_MS", "LOSS_FAIL_ONE_WAY", "LOSS_WARN_PCT",
    "MIN_SAMPLES", "PathSample", "TARGET_RTT_MS", "judge_path", "target_reachable",
    "PMTU_INTERVAL", "PMTU_PROBES", "SEARCH_PROBES", "SMALL_MSS", "STALLS", "path_mtu",
]
