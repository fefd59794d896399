"""Catalogue entries 24-36: name resolution (the servers, the way to them, resolv.conf, the
records, the stub) and the traps of the search list and /etc/hosts.
"""

from __future__ import annotations

from netcheck.lab.compose import DNS, SERVER, address
from netcheck.lab.faults.helpers import (
    _other_family_records,
    _records_param,
    _truthless_degraded,
    chain,
    nfproto,
    resolv,
    set_services,
)
from netcheck.lab.faults.model import NAME, Fault, to_dns, to_target, trap
from netcheck.lab.faults.shapes import each_family, each_family_or_all, single_family, with_parts

DNS_FAULTS: list[Fault] = [
    Fault("dns_daemon_stopped", "dns", "fault",
          "the DNS server's daemon is not running (its host answers ICMP port unreachable)",
          to_dns({"DNS_RESOLVER_UNREACHABLE"}), named_share=0.9,
          services=set_services(dns=False)),
    Fault("router_drops_dns", "dns", "fault",
          "the gateway's forward chain drops DNS (udp/tcp 53) of one family or both",
          to_dns({"DNS_RESOLVER_UNREACHABLE"}),
          apply=lambda case, lab: chain(lab, "router", "forward",
                                        f"{nfproto(case.family)}meta l4proto {{ tcp, udp }} "
                                        "th dport 53 drop"),
          families=each_family_or_all, named_share=0.9),
    Fault("dns_host_down", "dns", "fault",
          "the DNS server's host is down (its interface is down: the router's ARP fails)",
          to_dns({"DNS_RESOLVER_UNREACHABLE"}), named_share=0.9,
          apply=lambda case, lab: lab.ip("dns", "link", "set", "eth0", "down")),
    Fault("resolver_address_stale", "dns", "fault",
          "the configured name server is the old resolver's address (.99), where nobody is",
          to_dns({"DNS_RESOLVER_UNREACHABLE"}), named_share=0.9,
          apply=lambda case, lab: lab.write_client_file("resolv.conf", resolv(case)),
          params=lambda rng, parts, fam: {
              "nameservers": tuple(address(f, 3, 99) for f in parts.nameservers)},
          shape=with_parts(stub=False)),
    Fault("resolv_conf_malformed", "dns", "fault",
          "resolv.conf names its servers with a port (198.18.3.53:53, [2001:db8:3::53]:53): "
          "the resolver ignores every such line and has no name server",
          to_dns({"DNS_NO_RESOLVER", "DNS_RESOLVER_UNREACHABLE"}), named_share=0.9,
          apply=lambda case, lab: lab.write_client_file("resolv.conf", resolv(
              case, nameservers=[f"[{DNS[f]}]:53" if f == 6 else f"{DNS[f]}:53"
                                 for f in case.parts.nameservers])),
          params=lambda rng, parts, fam: {"nameservers": ()},  # none the resolver can use
          shape=with_parts(stub=False)),
    Fault("first_nameserver_dead", "dns", "fault",
          "the first name server in resolv.conf is dead; the next one works (every lookup "
          "waits for the first to time out)",
          _truthless_degraded("DNS_RESOLVER_UNREACHABLE", "DNS_SLOW"), named_share=1.0,
          apply=lambda case, lab: lab.write_client_file("resolv.conf", resolv(
              case, nameservers=[address(case.parts.nameservers[0], 3, 99),
                                 *(DNS[f] for f in case.parts.nameservers)])),
          shape=with_parts(stub=False), truth=False),
    Fault("name_other_family_only", "dns", "fault",
          "the single-family client's target name has only records of the other family",
          _other_family_records, named_share=1.0, shape=single_family,
          params=lambda rng, parts, fam: {"records": _records_param(
              {(6 if parts.families == (4,) else 4): [SERVER[6 if parts.families == (4,)
                                                             else 4]]})},
          truth=False),
    Fault("stale_a_record", "dns", "fault",
          "the target name's record of one family still points to the old server (.99)",
          to_target({"TARGET_UNREACHABLE"}), named_share=1.0, families=each_family,
          params=lambda rng, parts, fam: {"records": _records_param(
              {f: [address(f, 2, 99) if f == fam else SERVER[f]] for f in parts.families})}),
    Fault("stub_not_running", "dns", "fault",
          "the local stub resolver (127.0.0.53) is not running",
          to_dns({"DNS_RESOLVER_UNREACHABLE"}), named_share=1.0,
          shape=with_parts(stub=True), services=set_services(stub=False)),
    Fault("stub_upstream_refuses", "dns", "fault",
          "the stub's upstream server answers REFUSED (the stub passes it on)",
          to_dns({"DNS_REFUSED"}), named_share=1.0, shape=with_parts(stub=True),
          apply=lambda case, lab: lab.set_dns_mode("refused")),
    Fault("search_short_name", "trap", "trap",
          "the target is a short name; the first search domain has no such name, the second "
          "has", trap(), named_share=1.0,
          apply=lambda case, lab: lab.write_client_file("resolv.conf", resolv(
              case, search="corp.lab.test lab.test")),
          params=lambda rng, parts, fam: {"host": "svc"}, truth=False),
    Fault("ndots_five", "trap", "trap",
          "resolv.conf says options ndots:5: the name is first tried under the search domain "
          "(NXDOMAIN), then as it is", trap(), named_share=1.0,
          apply=lambda case, lab: lab.write_client_file("resolv.conf", resolv(
              case, options="ndots:5"))),
    Fault("hosts_agrees", "trap", "trap",
          "/etc/hosts maps the target name to its right addresses", trap(), named_share=1.0,
          apply=lambda case, lab: lab.write_client_file("hosts", (
              "127.0.0.1 localhost\n::1 localhost\n"
              + "".join(f"{SERVER[f]} {NAME}\n" for f in case.parts.families)))),
]
