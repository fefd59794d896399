"""Catalogue entries 55 on, in the order they were appended, whatever their class: an address
conflict, ICMP and DNS traps, the stub's upstream, a second uplink, port security, a
captive portal. New entries go at the end of this list (a seed names the entry at
``(seed - 1) % len(CATALOGUE)``).
"""

from __future__ import annotations

from netcheck.lab.compose import SERVER, address
from netcheck.lab.faults.helpers import (
    _asymmetric_rp_filter,
    _preferred_isolated,
    _records_param,
    _rogue_host,
    chain,
    nfproto,
)
from netcheck.lab.faults.model import (
    BROKEN,
    NOT_OK,
    Expectation,
    Fault,
    beyond,
    local,
    to_dns,
    trap,
)
from netcheck.lab.faults.shapes import (
    each_family,
    needing,
    primary_only_for_v6,
    single_family,
    with_parts,
)
from netcheck.lab.scenarios_portal import router_portal

APPENDED_FAULTS: list[Fault] = [
    Fault("ipv4_address_conflict", "address", "fault",
          "another machine on the LAN took the client's IPv4 address and keeps announcing it",
          lambda case: Expectation(NOT_OK, frozenset({"ADDR_DAD_FAILED"})),
          apply=_rogue_host, shape=needing(4), truth=False),
    Fault("icmp_filtered_server", "trap", "trap",
          "the server drops ping (both families)", trap("TARGET_NO_ICMP"),
          apply=lambda case, lab: chain(lab, "server", "input",
                                        "icmp type echo-request drop",
                                        "icmpv6 type echo-request drop")),
    Fault("icmp_filtered_router", "trap", "trap",
          "the gateway drops forwarded pings (both families)", trap("TARGET_NO_ICMP"),
          apply=lambda case, lab: chain(lab, "router", "forward",
                                        "icmp type echo-request drop",
                                        "icmpv6 type echo-request drop")),
    Fault("icmp_rate_limited", "trap", "trap",
          "the gateway forwards at most 3 pings a second (control-plane policing)",
          trap("TARGET_NO_ICMP", "PATH_LOSS"),
          apply=lambda case, lab: chain(lab, "router", "forward",
                                        "icmp type echo-request limit rate over 3/second drop",
                                        "icmpv6 type echo-request limit rate over 3/second "
                                        "drop")),
    Fault("second_address_dead", "trap", "trap",
          "the target name has two addresses per family; the second (.11) is dead",
          trap("TARGET_UNREACHABLE", "TCP_FILTERED", "TCP_ADMIN_PROHIBITED"), named_share=1.0,
          params=lambda rng, parts, fam: {"records": _records_param(
              {f: [SERVER[f], address(f, 2, 11)] for f in parts.families})},
          truth=False),
    Fault("backup_uplink_down", "trap", "trap",
          "the backup uplink's router port is down (eth1 has no carrier; eth0 carries all)",
          trap(), apply=lambda case, lab: lab.ip("backup", "link", "set", "lan0", "down"),
          shape=with_parts(uplinks=2)),
    Fault("name_has_unreachable_family", "trap", "trap",
          "the single-family client's target name also has a record of the other family",
          trap(), named_share=1.0, shape=single_family,
          params=lambda rng, parts, fam: {"records": _records_param(
              {f: [SERVER[f]] for f in (4, 6)})}),
    Fault("dns_tcp_filtered", "trap", "trap",
          "the gateway drops DNS over TCP (UDP works, answers are small)", trap(),
          named_share=1.0,
          apply=lambda case, lab: chain(lab, "router", "forward", "tcp dport 53 drop")),
    Fault("gateway_drops_ping", "trap", "trap",
          "the gateway answers no ping itself (it forwards everything)", trap(),
          apply=lambda case, lab: chain(lab, "router", "input",
                                        "icmp type echo-request drop",
                                        "icmpv6 type echo-request drop")),
    Fault("stub_upstream_servfail", "dns", "fault",
          "the stub's upstream server answers SERVFAIL (the stub passes it on)",
          to_dns({"DNS_SERVFAIL"}), named_share=1.0, shape=with_parts(stub=True),
          apply=lambda case, lab: lab.set_dns_mode("servfail")),
    Fault("preferred_uplink_isolated", "route", "fault",
          "a second uplink got a default route with a lower metric (a tethered phone's DHCP) "
          "but that uplink leads nowhere: its router has no upstream", beyond,
          apply=_preferred_isolated, shape=with_parts(uplinks=2)),
    Fault("asymmetric_return_rp_filter", "route", "fault",
          "replies come back through the backup uplink (the core's return route points there) "
          "and the client's strict reverse-path filter (rp_filter=1) drops them",
          lambda case: beyond(case, (4,)), apply=_asymmetric_rp_filter,
          families=lambda parts: (4,), shape=needing(4, routers=2, uplinks=2, nat=False)),
    Fault("router_blocks_client_ip", "gateway", "fault",
          "the router drops every IP packet from the client's port (port security, a hotspot "
          "that never authorised it): IPv4 still gets ARP answers, nothing more",
          local({"GATEWAY_UNREACHABLE"}),
          apply=lambda case, lab: chain(lab, "router", "prerouting",
                                        f'iifname "lan0" {nfproto(case.family)}drop'),
          families=each_family, shape=primary_only_for_v6()),
    Fault("captive_portal", "portal", "fault",
          "the router is a hotel's captive portal: it answers port 80 of every destination "
          "with a redirect to its sign-in page and resets every other connection",
          lambda case: Expectation(BROKEN, frozenset({"CAPTIVE_PORTAL"})), schemes=("http",),
          apply=lambda case, lab: router_portal(lab, "lan0"),
          truth=False),  # port 80 answers (the portal): a plain probe cannot tell
]
