"""Real-host shapes at layer 3: each built the way a real machine gets there.

A DHCPv4 client that got no lease while IPv6 still works, an IPv4-only office PC, a firewall
whose input chain drops every reply, a static ARP entry left from a router swap, another
machine configured with this host's address, an IPsec tunnel that never came up, and the
routing tables VPN clients and second uplinks leave behind (wg-quick's fwmark rules and
``suppress_prefixlength 0``, several default routes with metrics, a route whose link went
down, a default kept in a table of its own). The healthy shapes must give ``ok``.

Everything happens inside the lab's namespaces with ``ip``, ``nft`` and ``sysctl``; the
"VPN" device is a veth (healthy) or a ``tun`` device nobody holds open (a dead tunnel).
"""

from __future__ import annotations

from typing import Callable

from netcheck.lab.scenarios import Expect, Scenario
from netcheck.lab.topology import Lab

NAMED = "tcp://www.lab.test:22"
LITERAL = "tcp://198.18.2.10:22"
V4ONLY_NAME = "v4only.lab.test"  # a name with an A record and no AAAA
TABLE = "netcheck_host"
WG_TABLE, WG_MARK = "51820", "0xca6c"  # what wg-quick uses


def _resolver(server: str) -> Callable[[Lab], None]:
    def apply(lab: Lab) -> None:
        lab.write_client_file("resolv.conf", f"search lab.test\nnameserver {server}\n")

    return apply


def _v4only_name(lab: Lab) -> None:
    lab.add_dns_records((f"{V4ONLY_NAME}.", "A", ["198.18.2.10"]))


def _ipv4_lease_lost(lab: Lab) -> None:
    # The DHCPv4 lease expired and was not renewed: the address and its routes are gone,
    # SLAAC keeps IPv6 going.
    lab.ip("client", "-4", "addr", "flush", "dev", "eth0")


def _ipv4_link_local(lab: Lab) -> None:
    # No DHCPv4 answer: the client fell back to IPv4LL (avahi-autoipd, NetworkManager's
    # ipv4.link-local), as it does on a network whose DHCP server is down.
    _ipv4_lease_lost(lab)
    lab.ip("client", "addr", "add", "169.254.23.5/16", "dev", "eth0")


def _all(*steps: Callable[[Lab], None]) -> Callable[[Lab], None]:
    def apply(lab: Lab) -> None:
        for step in steps:
            step(lab)

    return apply


def _ipv4_only_host(lab: Lab) -> None:
    # An office PC on a network without IPv6: only the fe80:: every interface gets.
    lab.ip("client", "-6", "addr", "del", "2001:db8:1::2/64", "dev", "eth0")
    lab.ip("client", "-6", "route", "del", "default", check=False)


def _input_policy_drop(lab: Lab) -> None:
    # A hand-written "secure" ruleset: everything in is dropped except ssh to this host and
    # loopback, and nobody added `ct state established,related accept`.
    lab.nft("client", (
        f"table inet {TABLE} {{\n"
        "  chain input {\n"
        "    type filter hook input priority 0; policy drop;\n"
        "    iifname \"lo\" accept\n"
        "    tcp dport 22 accept\n"
        "  }\n"
        "}\n"))


def _static_neighbour(lab: Lab) -> None:
    # The router was replaced; a static ARP entry for the gateway (set once against ARP
    # spoofing) still names the old router's MAC address.
    lab.ip("client", "neigh", "replace", "198.18.1.1", "lladdr", "02:00:5e:10:00:01",
           "dev", "eth0", "nud", "permanent")


def _address_taken(lab: Lab) -> None:
    # Another machine on the client's link was configured by hand with the client's own
    # address: a macvlan on the router's port, moved into the stub namespace.
    lab.ip("router", "link", "add", "rogue", "link", "r-client", "type", "macvlan",
           "mode", "bridge")
    lab.ip("router", "link", "set", "rogue", "netns", lab.ns("stub"))
    lab.ip("stub", "addr", "add", "198.18.1.2/24", "dev", "rogue")
    lab.ip("stub", "link", "set", "rogue", "up")


def _ipsec_no_sa(lab: Lab) -> None:
    # The site-to-site tunnel towards the server's network (seed 002's set-up, as strongSwan
    # installs its policy) never came up: the policy is there, no SA.
    lab.ip("client", "xfrm", "policy", "add", "src", "198.18.1.2/32", "dst", "198.18.2.0/24",
           "dir", "out", "tmpl", "src", "198.18.1.2", "dst", "198.18.1.1", "proto", "esp",
           "mode", "tunnel")


def _ipsec_block(lab: Lab) -> None:
    # A "block everything to this network" policy left by a test, as `ip xfrm` writes it.
    lab.ip("client", "xfrm", "policy", "add", "src", "0.0.0.0/0", "dst", "198.18.2.0/24",
           "dir", "out", "action", "block")


def _tunnel_link(lab: Lab, name: str = "wg0") -> None:
    # A second veth from the client to the router plays the VPN interface (WireGuard does
    # not exist on this kernel): 198.18.5.0/24 between them.
    lab.ip("client", "link", "add", name, "type", "veth", "peer", "name", "r-wg",
           "netns", lab.ns("router"))
    lab.ip("client", "addr", "add", "198.18.5.2/24", "dev", name)
    lab.ip("router", "addr", "add", "198.18.5.1/24", "dev", "r-wg")
    lab.ip("client", "link", "set", name, "up")
    lab.ip("router", "link", "set", "r-wg", "up")


def _wg_rules(lab: Lab) -> None:
    # wg-quick's own commands for a full tunnel (AllowedIPs = 0.0.0.0/0).
    lab.ip("client", "-4", "rule", "add", "not", "fwmark", WG_MARK, "table", WG_TABLE)
    lab.ip("client", "-4", "rule", "add", "table", "main", "suppress_prefixlength", "0")
    lab.exec("client", ["sysctl", "-q", "-w", "net.ipv4.conf.all.src_valid_mark=1"],
             check=True)


def _wg_quick(lab: Lab) -> None:
    _tunnel_link(lab)
    lab.ip("client", "-4", "route", "add", "0.0.0.0/0", "via", "198.18.5.1", "dev", "wg0",
           "table", WG_TABLE)
    _wg_rules(lab)


def _wg_quick_dead(lab: Lab) -> None:
    # The WireGuard process died: its tun device stays, up, with no carrier, and the rules
    # still send everything into it.
    lab.ip("client", "tuntap", "add", "wg0", "mode", "tun")
    lab.ip("client", "addr", "add", "198.18.5.2/24", "dev", "wg0")
    lab.ip("client", "link", "set", "wg0", "up")
    lab.ip("client", "-4", "route", "add", "0.0.0.0/0", "dev", "wg0", "table", WG_TABLE)
    _wg_rules(lab)


def _metrics(lab: Lab) -> None:
    # Two uplinks, as NetworkManager sets them: wired (metric 100) before the second one
    # (metric 600) whose router (the stub) does not forward.
    lab.ip("client", "-4", "route", "replace", "0.0.0.0/0", "via", "198.18.1.1", "dev", "eth0",
           "metric", "100")
    lab.ip("client", "-4", "route", "del", "0.0.0.0/0", "metric", "0", check=False)
    lab.ip("client", "-4", "route", "add", "0.0.0.0/0", "via", "198.18.4.1", "dev", "eth1",
           "metric", "600")


def _preferred_uplink_dead_end(lab: Lab) -> None:
    # The second uplink was given the better metric by mistake; its router answers but
    # forwards nothing.
    lab.ip("client", "-4", "route", "del", "0.0.0.0/0", check=False)
    lab.ip("client", "-4", "route", "add", "0.0.0.0/0", "via", "198.18.1.1", "dev", "eth0",
           "metric", "600")
    lab.ip("client", "-4", "route", "add", "0.0.0.0/0", "via", "198.18.4.1", "dev", "eth1",
           "metric", "100")
    lab.exec("stub", ["sysctl", "-q", "-w", "net.ipv4.ip_forward=0"], check=True)


def _linkdown_default(ignored: bool) -> Callable[[Lab], None]:
    def apply(lab: Lab) -> None:
        # A better default through eth1, whose cable was then pulled (the peer goes down): the
        # kernel keeps the route, flagged linkdown.
        if ignored:
            lab.exec("client", ["sysctl", "-q", "-w",
                                "net.ipv4.conf.all.ignore_routes_with_linkdown=1",
                                "net.ipv4.conf.eth1.ignore_routes_with_linkdown=1"], check=True)
        lab.ip("client", "-4", "route", "replace", "0.0.0.0/0", "via", "198.18.1.1", "dev",
               "eth0", "metric", "600")
        lab.ip("client", "-4", "route", "del", "0.0.0.0/0", "metric", "0", check=False)
        lab.ip("client", "-4", "route", "add", "0.0.0.0/0", "via", "198.18.4.1", "dev", "eth1",
               "metric", "50")
        lab.ip("stub", "link", "set", "eth0", "down")

    return apply


def _second_uplink(lab: Lab) -> None:
    # Source routing for a second uplink: what leaves with eth1's address uses eth1's own
    # table; everything else the main table.
    lab.ip("client", "-4", "route", "add", "0.0.0.0/0", "via", "198.18.4.1", "dev", "eth1",
           "table", "200")
    lab.ip("client", "-4", "rule", "add", "from", "198.18.4.2", "table", "200",
           "priority", "1000")


def _default_in_own_table(lab: Lab) -> None:
    # The main table holds only the connected routes; the defaults live in table 100, which
    # a rule consults after main for everything (as the "default" table would be).
    lab.ip("client", "-4", "route", "del", "0.0.0.0/0")
    lab.ip("client", "-6", "route", "del", "::/0")
    lab.ip("client", "-4", "route", "add", "0.0.0.0/0", "via", "198.18.1.1", "dev", "eth0",
           "table", "100")
    lab.ip("client", "-6", "route", "add", "::/0", "via", "2001:db8:1::1", "dev", "eth0",
           "table", "100")
    lab.ip("client", "-4", "rule", "add", "table", "100", "priority", "32800")
    lab.ip("client", "-6", "rule", "add", "table", "100", "priority", "32800")


def _asymmetric_return(lab: Lab) -> None:
    # The router sends everything for the client back through a second router (the stub,
    # linked to it by a new veth), which delivers it on the client's second link eth1; the
    # client filters strictly by reverse path (rp_filter=1, as RHEL sets it).
    lab.ip("router", "link", "add", "r-stub", "type", "veth", "peer", "name", "uplink",
           "netns", lab.ns("stub"))
    lab.ip("router", "addr", "add", "198.18.6.1/24", "dev", "r-stub")
    lab.ip("stub", "addr", "add", "198.18.6.2/24", "dev", "uplink")
    lab.ip("router", "link", "set", "r-stub", "up")
    lab.ip("stub", "link", "set", "uplink", "up")
    lab.exec("stub", ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"], check=True)
    lab.ip("stub", "route", "add", "198.18.1.2/32", "dev", "eth0")
    lab.ip("router", "route", "add", "198.18.1.2/32", "via", "198.18.6.2")
    lab.exec("client", ["sysctl", "-q", "-w", "net.ipv4.conf.all.rp_filter=1",
                        "net.ipv4.conf.eth0.rp_filter=1", "net.ipv4.conf.eth1.rp_filter=1"],
             check=True)


def _s(name: str, description: str, symptom: str, target: str, apply: Callable[[Lab], None],
       verdict: str, code: str | None = None, layer: int | None = None,
       args: tuple[str, ...] = ()) -> Scenario:
    return Scenario(name, description, symptom, target, apply, Expect(verdict, code, layer), args)


SCENARIOS_LIST: list[Scenario] = [
    _s("ipv4_lease_lost_dns_v4",
       "The DHCPv4 lease of eth0 was lost (IPv6 still works by SLAAC); the only name server "
       "is an IPv4 address.",
       "Nothing resolves, although `ip addr` shows an IPv6 address and IPv6 pings work.",
       NAMED, _ipv4_lease_lost, "broken", "ADDR_NONE", 3),
    _s("ipv4_link_local_dns_v4",
       "DHCPv4 got no answer and eth0 fell back to 169.254.23.5 (IPv6 still works); the only "
       "name server is an IPv4 address.",
       "Nothing resolves; `ip addr` shows 169.254.23.5 and a global IPv6 address.",
       NAMED, _ipv4_link_local, "broken", "ADDR_LINK_LOCAL_ONLY", 3),
    _s("ipv4_lease_lost_a_only",
       "The DHCPv4 lease of eth0 was lost; the name server answers over IPv6, but the server's "
       "name has only an A record.",
       "The name resolves, yet every connection fails with 'Network is unreachable'.",
       f"tcp://{V4ONLY_NAME}:22", _all(_ipv4_lease_lost, _v4only_name,
                                      _resolver("2001:db8:3::53")), "broken", "ADDR_NONE", 3),
    _s("ipv4_link_local_dual_stack_target",
       "DHCPv4 got no answer (eth0 has 169.254.23.5); IPv6 carries everything, the name "
       "server included.",
       "Everything seems to work over IPv6; IPv4-only sites fail.",
       NAMED, _all(_ipv4_link_local, _resolver("2001:db8:3::53")),
       "degraded", "ADDR_LINK_LOCAL_ONLY", 3),
    _s("ipv4_only_host",
       "An IPv4-only host (only the fe80:: address for IPv6, no IPv6 route) connects to a "
       "server that also has an AAAA record (no fault).",
       "Nothing: connections go over IPv4.",
       NAMED, _ipv4_only_host, "ok"),
    _s("input_chain_drops_replies",
       "The client's own firewall drops everything inbound except ssh to itself: its input "
       "chain has policy drop and no `ct state established,related accept`.",
       "Nothing answers, not even the gateway's ping, though the gateway's ARP entry is fine.",
       NAMED, _input_policy_drop, "broken", "FW_LOCAL_INPUT_BLOCK", 4),
    _s("gateway_static_neighbour",
       "A static ARP entry pins the gateway 198.18.1.1 to the MAC address of a router that "
       "was replaced.",
       "Nothing beyond the link answers; arping shows the gateway with another MAC address.",
       LITERAL, _static_neighbour, "broken", "GATEWAY_UNREACHABLE", 3, ("-4",)),
    _s("address_taken",
       "Another machine on the client's link was configured with the client's own address "
       "198.18.1.2.",
       "Connections work, fail and hang by turns; the router's ARP entry for the client flips.",
       LITERAL, _address_taken, "broken", "ADDR_DAD_FAILED", 3, ("-4",)),
    _s("reverse_path_filtered",
       "The replies to the client come back through a second router onto its other link "
       "eth1, and the client filters strictly by reverse path (rp_filter=1).",
       "The gateway's ARP entry is fine, yet not even the gateway answers ping.",
       LITERAL, _asymmetric_return, "broken", "GATEWAY_UNREACHABLE", 3, ("-4",)),
    _s("ipsec_no_sa",
       "An IPsec policy sends the traffic to the server's network through a tunnel that never "
       "came up: there is no security association.",
       "The gateway answers, the server never does; `ip xfrm state` is empty.",
       LITERAL, _ipsec_no_sa, "broken", "IPSEC_NO_SA", 3, ("-4",)),
    _s("ipsec_policy_block",
       "An IPsec policy with action block covers the server's network.",
       "Sending to the server fails at once with 'Operation not permitted'.",
       LITERAL, _ipsec_block, "broken", "IPSEC_POLICY_BLOCK", 3, ("-4",)),
    _s("wg_quick_full_tunnel",
       "A full-tunnel VPN set up as wg-quick does it: default route in table 51820, "
       "`not fwmark 0xca6c` and `suppress_prefixlength 0` rules (no fault).",
       "Nothing: everything goes through wg0.",
       NAMED, _wg_quick, "ok"),
    _s("wg_quick_tunnel_dead",
       "The VPN process died: wg0 stays up without carrier and wg-quick's rules still send "
       "all IPv4 traffic into it.",
       "Every IPv4 connection hangs; `ip route` (the main table) still looks fine.",
       LITERAL, _wg_quick_dead, "broken", "LINK_NO_CARRIER", 2, ("-4",)),
    _s("two_defaults_by_metric",
       "Two default routes, through eth0 (metric 100) and a second uplink eth1 (metric 600) "
       "whose router forwards nothing (no fault: the better one is used).",
       "Nothing.",
       NAMED, _metrics, "ok"),
    _s("preferred_uplink_dead_end",
       "The second uplink eth1 got the better metric; its router answers but forwards nothing.",
       "The gateway answers ping, yet nothing beyond it does.",
       LITERAL, _preferred_uplink_dead_end, "broken", "TARGET_UNREACHABLE", 3, ("-4",)),
    _s("linkdown_default_ignored",
       "The better default route goes through eth1, whose cable is pulled; the kernel ignores "
       "routes on links without carrier (ignore_routes_with_linkdown), so eth0 is used.",
       "Nothing: eth1 shows NO-CARRIER, connections go through eth0.",
       NAMED, _linkdown_default(True), "ok"),
    _s("linkdown_default_used",
       "The better default route goes through eth1, whose cable is pulled; the kernel still "
       "uses routes on links without carrier.",
       "Every IPv4 connection beyond the link fails; IPv6 still works.",
       LITERAL, _linkdown_default(False), "broken", "LINK_NO_CARRIER", 2, ("-4",)),
    _s("second_uplink_source_routing",
       "A second uplink eth1 with its own routing table for its own source address (no "
       "fault: the target is reached through eth0).",
       "Nothing.",
       NAMED, _second_uplink, "ok"),
    _s("default_in_own_table",
       "The default routes live in table 100, which a policy rule consults after the main "
       "table; the main table holds only the connected routes (no fault).",
       "Nothing, though `ip route` shows no default route.",
       NAMED, _default_in_own_table, "ok"),
]
