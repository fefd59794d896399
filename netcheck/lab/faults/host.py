"""Catalogue entries 0-10: the healthy network, then the client's link, its VPN and its
addresses.
"""

from __future__ import annotations

from netcheck.lab.faults.helpers import (
    _apipa,
    _lease_expired,
    _prefix_too_wide,
    _wrong_subnet,
    full_tunnel,
    set_services,
)
from netcheck.lab.faults.model import OK, Fault, _paths, beyond, flow, local, trap, unless_failover
from netcheck.lab.faults.shapes import each_family, needing, primary_only_for_v6, with_parts

HOST_FAULTS: list[Fault] = [
    Fault("healthy", "healthy", "healthy", "nothing is broken", lambda case: OK),
    Fault("nic_unplugged", "link", "fault",
          "the client's NIC eth0 is gone (a USB adapter pulled out): ip link del eth0",
          unless_failover(local({"NIC_MISSING"})),
          apply=lambda case, lab: lab.ip("client", "link", "del", "eth0"),
          shape=with_parts(vpn=False)),
    Fault("router_port_down", "link", "fault",
          "the router's LAN port is switched off (router side): the client's eth0 loses "
          "carrier, its routes stay", local({"LINK_NO_CARRIER"}),
          apply=lambda case, lab: lab.ip("router", "link", "set", "lan0", "down"),
          shape=primary_only_for_v6()),
    Fault("client_port_down", "link", "fault",
          "the client's eth0 is administratively down (client side)",
          unless_failover(local({"LINK_ADMIN_DOWN"})),
          apply=lambda case, lab: lab.ip("client", "link", "set", "eth0", "down")),
    Fault("vpn_daemon_died", "vpn", "fault",
          "the VPN is a full tunnel (default dev wg0 in its table) and its daemon died: wg0 "
          "has no carrier", local({"LINK_NO_CARRIER"}),
          apply=full_tunnel, shape=with_parts(vpn=True),
          services=set_services(vpn_daemon=False)),
    Fault("vpn_peer_silent", "vpn", "fault",
          "the VPN is a full tunnel whose far end answers nothing: every packet enters wg0 "
          "and vanishes", beyond, apply=full_tunnel, shape=with_parts(vpn=True)),
    Fault("vpn_gone_rules_left", "vpn", "trap",
          "the VPN's tun was deleted but wg-quick's rules stay (they point to an empty table)",
          trap(), apply=lambda case, lab: lab.ip("client", "link", "del", "wg0"),
          shape=with_parts(vpn=True)),
    Fault("lease_expired", "address", "fault",
          "the client's global address of one family expired (DHCPv4 lease / SLAAC prefix "
          "lifetime): ip addr flush scope global; dhclient's lease file keeps the expired "
          "lease",
          lambda case: (OK if case.family == 4 and case.parts.uplinks == 2 else
                        local({"ADDR_NONE"} if case.family == 4
                              else {"ADDR_LINK_LOCAL_ONLY"})(case)),
          apply=_lease_expired, families=each_family, shape=primary_only_for_v6(vpn=False)),
    Fault("dhcp_failed_apipa", "address", "fault",
          "DHCPv4 failed: eth0 has only 169.254.7.7/16", unless_failover(
              local({"ADDR_LINK_LOCAL_ONLY"})),
          apply=_apipa, families=lambda parts: (4,), shape=needing(4)),
    Fault("prefix_too_wide", "address", "fault",
          "the client's address has a too-short prefix (/16 for /24, /32 for /64): remote "
          "hosts look on-link and never answer neighbour discovery",
          lambda case: flow(case, {
              **_paths(case, ("dns",), {"DNS_RESOLVER_UNREACHABLE"}),
              **_paths(case, ("target",), {"TARGET_UNREACHABLE", "GATEWAY_UNREACHABLE"})}),
          apply=_prefix_too_wide, families=each_family),
    Fault("address_typo_subnet", "address", "fault",
          "the client's address was typed in the wrong subnet (198.18.11.2/24, "
          "2001:db8:11::2/64); the default route still names the old gateway",
          local({"GATEWAY_NOT_ON_LINK"}), apply=_wrong_subnet, families=each_family),
]
