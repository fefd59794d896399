"""Catalogue entries 11-23: routes (the default route, specific routes, policy rules, the
way back from the core, NAT) and the gateway (its neighbour entry, its LAN address).
"""

from __future__ import annotations

from netcheck.lab.compose import SERVER, address, prefix
from netcheck.lab.faults.helpers import (
    _core_return,
    _core_return_families,
    _nat_flushed,
    _no_nat_for_v4_only,
    _router_ignores_nd,
    fam_flag,
    gw,
    plen,
)
from netcheck.lab.faults.model import (
    DEAD_MAC,
    OK,
    Fault,
    beyond,
    local,
    to_dns,
    to_target,
    trap,
    unless_failover,
)
from netcheck.lab.faults.shapes import each_family, needing, primary_only_for_v6, with_parts

ROUTE_FAULTS: list[Fault] = [
    Fault("default_route_deleted", "route", "fault",
          "the default route of one family is gone (ip route del default dev eth0)",
          unless_failover(local({"ROUTE_NO_DEFAULT"})),
          apply=lambda case, lab: lab.ip("client", fam_flag(case.family or 4), "route", "del",
                                         "default", "dev", "eth0"),
          families=each_family),
    Fault("default_gateway_typo", "gateway", "fault",
          "the default route of one family was replaced by one via .77 on the LAN, where "
          "nobody is", local({"GATEWAY_UNREACHABLE"}),
          apply=lambda case, lab: lab.ip("client", fam_flag(case.family or 4), "route",
                                         "replace", "default", "via",
                                         address(case.family or 4, 1, 77), "dev", "eth0",
                                         "metric", "100"),
          families=each_family, shape=primary_only_for_v6()),
    Fault("stale_specific_route", "route", "fault",
          "a static route for the server's subnet via a router (.77) that is gone",
          to_target({"GATEWAY_UNREACHABLE"}),
          apply=lambda case, lab: lab.ip("client", "route", "add",
                                         prefix(case.family or 4, 2), "via",
                                         address(case.family or 4, 1, 77), "dev", "eth0"),
          families=each_family),
    Fault("prohibit_route", "route", "fault",
          "a 'prohibit' route for the server's address (left by a lockdown script)",
          to_target({"ROUTE_UNREACHABLE"}),
          apply=lambda case, lab: lab.ip(
              "client", "route", "add", "prohibit",
              f"{SERVER[case.family or 4]}/{32 if (case.family or 4) == 4 else 128}"),
          families=each_family),
    Fault("rule_unreachable_dns", "route", "fault",
          "a policy rule makes the name servers' subnet unreachable (ip rule add to ... "
          "unreachable)", to_dns({"DNS_RESOLVER_UNREACHABLE", "ROUTE_UNREACHABLE"}),
          apply=lambda case, lab: lab.ip("client", fam_flag(case.family or 4), "rule", "add",
                                         "pref", "100", "to", prefix(case.family or 4, 3),
                                         "unreachable"),
          families=each_family, named_share=0.9),
    Fault("stale_rule_empty_table", "trap", "trap",
          "a policy rule sends the server's subnet to table 100, which is empty (lookups fall "
          "through to main)", trap(),
          apply=lambda case, lab: lab.ip("client", fam_flag(case.family or 4), "rule", "add",
                                         "pref", "100", "to", prefix(case.family or 4, 2),
                                         "lookup", "100"),
          families=each_family),
    Fault("router_uplink_down", "route", "fault",
          "the gateway's own uplink to the core is down: the gateway answers, everything "
          "beyond it is unreachable", beyond,
          apply=lambda case, lab: lab.ip("router", "link", "set", "wan0", "down"),
          shape=with_parts(routers=2)),
    Fault("core_return_route", "route", "fault",
          "the core router's route back to the client's LAN is deleted or points to a "
          "next hop that is gone", beyond, apply=_core_return,
          families=_core_return_families, shape=_no_nat_for_v4_only,
          params=lambda rng, parts, fam: {"how": rng.choice(("deleted", "wrong next hop"))}),
    Fault("nat_flushed", "route", "fault",
          "the gateway's IPv4 masquerade rule is flushed (with two routers the core has no "
          "route back to the client's LAN; with one, the server answers directly)",
          lambda case: (beyond(case, (4,)) if case.parts.routers == 2 else OK),
          apply=_nat_flushed, shape=needing(4, nat=True), families=lambda parts: (4,)),
    Fault("gateway_mac_pinned", "gateway", "fault",
          "a permanent neighbour entry pins the gateway to a MAC nobody has",
          local({"GATEWAY_UNREACHABLE"}),
          apply=lambda case, lab: lab.ip("client", fam_flag(case.family or 4), "neigh",
                                         "replace", gw(case.family or 4), "lladdr", DEAD_MAC,
                                         "dev", "eth0", "nud", "permanent"),
          families=each_family),
    Fault("router_ignores_nd", "gateway", "fault",
          "the router answers no ARP (arp_ignore=8) / no neighbour solicitation (nft) on its "
          "LAN port", local({"GATEWAY_UNREACHABLE"}), apply=_router_ignores_nd,
          families=each_family, shape=primary_only_for_v6()),
    Fault("router_lan_address_removed", "gateway", "fault",
          "the router's LAN address of one family was removed (the gateway moved)",
          local({"GATEWAY_UNREACHABLE"}),
          apply=lambda case, lab: lab.ip("router", "addr", "del",
                                         f"{gw(case.family or 4)}/{plen(case.family or 4)}",
                                         "dev", "lan0"),
          families=each_family, shape=primary_only_for_v6()),
    Fault("client_arp_off", "gateway", "fault",
          "ARP is switched off on the client's eth0 (ip link set eth0 arp off: IPv6 neighbour "
          "discovery stops too)", local({"GATEWAY_UNREACHABLE"}),
          apply=lambda case, lab: lab.ip("client", "link", "set", "eth0", "arp", "off")),
]
