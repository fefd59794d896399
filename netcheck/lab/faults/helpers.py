"""Helpers the catalogue's faults use: addresses and flags of a family, nft chains, resolv.conf,
services, and each entry's own ``apply``, ``expect``, ``shape`` or ``params`` where a lambda
would not do.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any, Callable, Optional, Sequence

from netcheck.lab.compose import (
    SERVER,
    VPN_TABLE,
    ComposedLab,
    Parts,
    Services,
    address,
    host_prefix,
    prefix,
)
from netcheck.lab.faults.model import (
    BROKEN,
    DEGRADED,
    NOT_OK,
    TABLE,
    Case,
    Expectation,
    _paths,
    flow,
)
from netcheck.lab.faults.shapes import normalise
from netcheck.lab.topology import python_argv

# -- helpers the catalogue's faults use ----------------------------------------------------------

def gw(family: int) -> str:
    """The client's gateway (the router's LAN address) in ``family``."""
    return address(family, 1, 1)


def client_addr(family: int) -> str:
    """The client's address on eth0 in ``family``."""
    return address(family, 1, 2)


def plen(family: int) -> int:
    """Host prefix length on the lab's links."""
    return host_prefix(family)


def fam_flag(family: int) -> str:
    """``-4`` or ``-6``."""
    return f"-{family}"


def default(family: int) -> str:
    """The default prefix of ``family``, as ``ip`` spells it."""
    return "0.0.0.0/0" if family == 4 else "::/0"


def nfproto(family: Optional[int]) -> str:
    """An nft match for one family (nothing for ALL)."""
    return {4: "meta nfproto ipv4 ", 6: "meta nfproto ipv6 "}.get(family or 0, "")


def chain(lab: ComposedLab, role: str, hook: str, *rules: str) -> None:
    """Rules in one base chain of the campaign's own nft table in ``role``."""
    body = "".join(f"    {rule}\n" for rule in rules)
    lab.nft(role, f"table inet {TABLE} {{\n  chain {hook} {{\n"
                  f"    type filter hook {hook} priority 0; policy accept;\n{body}  }}\n}}\n")


def each(case: Case, step: Callable[[int], None]) -> None:
    """Apply ``step`` for every family the fault acts on."""
    for fam in case.fault_families:
        step(fam)


def resolv(case: Case, head: str = "", nameservers: Optional[Sequence[str]] = None,
           search: str = "lab.test", options: str = "") -> str:
    """A resolv.conf for the client (the stub's when the parts have one)."""
    if nameservers is None:
        nameservers = (["127.0.0.53"] if case.parts.stub
                       else [a for _, a in case.nameserver_addresses()])
    lines = [head] if head else []
    lines += [f"nameserver {ns}" for ns in nameservers]
    lines.append(f"search {search}")
    if options:
        lines.append(f"options {options}")
    return "\n".join(lines) + "\n"


def full_tunnel(case: Case, lab: ComposedLab) -> None:
    """AllowedIPs = 0.0.0.0/0, ::/0: every route not in main's specific routes enters wg0."""
    for fam in case.parts.families:
        lab.ip("client", fam_flag(fam), "route", "add", "default", "dev", "wg0",
               "table", str(VPN_TABLE))


def port_rule(role: str, hook: str, action: str) -> Callable[[Case, ComposedLab], None]:
    """A rule for the target's port (in the fault's family) in one chain of ``role``."""
    return lambda case, lab: chain(lab, role, hook, f"{nfproto(case.family)}tcp dport "
                                                    f"{case.target.port} {action}")


def set_services(**values: Any) -> Callable[[Case, Services], None]:
    """A fault that changes which servers run (or how)."""

    def change(case: Case, services: Services) -> None:
        for key, value in values.items():
            setattr(services, key, value)

    return change


def pmtu_narrow(case: Case, lab: ComposedLab, drop_too_big: bool) -> None:
    """A 1280-byte link between the router and the core; the router may drop its own
    "fragmentation needed" / "packet too big" (for the fault's families)."""
    lab.ip("router", "link", "set", "wan0", "mtu", "1280")
    lab.ip("core", "link", "set", "down0", "mtu", "1280")
    if drop_too_big:
        rules = []
        if 4 in case.fault_families:
            rules.append("icmp type destination-unreachable icmp code frag-needed drop")
        if 6 in case.fault_families:
            rules.append("icmpv6 type packet-too-big drop")
        chain(lab, "router", "output", *rules)
    # Real full-size frames from the client, not offloaded super-frames (STYLE.md).
    lab.exec("client", ["ethtool", "-K", "eth0", "tso", "off", "gso", "off"], check=True)


def _server_allow_list(ports: str) -> str:
    return ("delete table inet host_fw\n"
            "table inet host_fw {\n  chain input {\n"
            "    type filter hook input priority 0; policy drop;\n"
            "    ct state established,related accept\n    iifname \"lo\" accept\n"
            "    meta l4proto { icmp, ipv6-icmp } accept\n"
            f"    tcp dport {{ {ports} }} accept\n  }}\n}}\n")


def _client_fw_established_for(family: int) -> str:
    # A ruleset ported from the other family's script without its conntrack line: replies of
    # ``family`` hit the policy drop; ICMP (ping, neighbour discovery) still passes.
    other = 6 if family == 4 else 4
    return ("delete table inet host_fw\n"
            "table inet host_fw {\n  chain input {\n"
            "    type filter hook input priority 0; policy drop;\n"
            f"    {nfproto(other)}ct state established,related accept\n"
            "    iifname \"lo\" accept\n"
            "    meta l4proto { icmp, ipv6-icmp } accept\n  }\n}\n")


def _rogue_host(case: Case, lab: ComposedLab) -> None:
    # A second machine on the client's LAN configured with the client's own IPv4 address:
    # a macvlan on the router's end of the link, in a namespace of its own, announcing it.
    lab.add_namespace("rogue")
    lab.ip("router", "link", "add", "mv0", "link", "lan0", "type", "macvlan", "mode", "bridge")
    lab.ip("router", "link", "set", "mv0", "netns", lab.ns("rogue"))
    lab.ip("rogue", "addr", "add", f"{client_addr(4)}/24", "dev", "mv0")
    lab.ip("rogue", "link", "set", "mv0", "up")
    lab.popen("rogue", python_argv("-m", "netcheck.lab.compose", "arp-announce", "mv0",
                              client_addr(4)), name="rogue")


def _prefix_too_wide(case: Case, lab: ComposedLab) -> None:
    fam = case.family or 4
    wide = f"{client_addr(fam)}/{16 if fam == 4 else 32}"  # 255.255.0.0 for .255.0; /32 for /64
    right = f"{client_addr(fam)}/{plen(fam)}"
    if fam == 4:
        # Added first: removing a device's last IPv4 address would flush its routes.
        lab.ip("client", "addr", "add", wide, "dev", "eth0")
        lab.ip("client", "addr", "del", right, "dev", "eth0")
    else:  # one IPv6 address, one prefix length; IPv6 routes survive the address
        lab.ip("client", "addr", "del", right, "dev", "eth0")
        lab.ip("client", "addr", "add", wide, "dev", "eth0", "nodad")


def _wrong_subnet(case: Case, lab: ComposedLab) -> None:
    fam = case.family or 4
    lab.ip("client", "addr", "add", f"{address(fam, 11, 2)}/{plen(fam)}", "dev", "eth0",
           "nodad")
    lab.ip("client", "addr", "del", f"{client_addr(fam)}/{plen(fam)}", "dev", "eth0")


def _lease_expired(case: Case, lab: ComposedLab) -> None:
    fam = case.family or 4
    lab.ip("client", fam_flag(fam), "addr", "flush", "dev", "eth0", "scope", "global")
    if fam == 4:
        # What a DHCPv4 client leaves when its lease ran out and no server renewed it: the
        # lease in its lease file, past its expiry.
        from netcheck.lab import view

        view.write_file(lab, "client", "/var/lib/dhcp/dhclient.eth0.leases", EXPIRED_LEASE.format(
            address=client_addr(4), router=gw(4)))


EXPIRED_LEASE = """lease {{
  interface "eth0";
  fixed-address {address};
  option subnet-mask 255.255.255.0;
  option routers {router};
  option dhcp-lease-time 3600;
  renew 2 2026/12/01 09:30:00;
  rebind 2 2026/12/01 09:52:30;
  expire 2 2026/12/01 10:00:00;
}}
"""


def _apipa(case: Case, lab: ComposedLab) -> None:
    lab.ip("client", "-4", "addr", "flush", "dev", "eth0")
    lab.ip("client", "addr", "add", "169.254.7.7/16", "dev", "eth0")


def _router_ignores_nd(case: Case, lab: ComposedLab) -> None:
    if case.family == 4:
        lab.exec("router", ["sysctl", "-q", "-w", "net.ipv4.conf.lan0.arp_ignore=8"],
                 check=True)
    else:
        chain(lab, "router", "input", 'iifname "lan0" icmpv6 type nd-neighbor-solicit drop')


def _loss(case: Case, lab: ComposedLab) -> None:
    percent = int(case.param("loss"))
    chain(lab, "router", "forward", f"numgen random mod 100 < {percent} counter drop")


def _truthless_degraded(*codes: str) -> Callable[[Case], Expectation]:
    return lambda case: Expectation(DEGRADED, frozenset(codes))


def _pmtu_expect(case: Case) -> Expectation:
    # The handshake passes (small packets): a tcp:// or ssh:// exchange works, so the black
    # hole may be the root cause of a broken or of a degraded verdict, never ok.
    model = flow(case, _paths(case, ("target",), {"PMTU_BLACKHOLE"}))
    if model.verdicts == BROKEN:
        return dataclasses.replace(model, verdicts=NOT_OK)
    return model


def _filters_port(case: Case, lab: ComposedLab) -> None:
    action = ("drop" if case.param("action") == "drop"
              else "reject with icmpx type admin-prohibited")
    port_rule("router", "forward", action)(case, lab)


def _filters_port_expect(case: Case) -> Expectation:
    code = "TCP_FILTERED" if case.param("action") == "drop" else "TCP_ADMIN_PROHIBITED"
    return flow(case, _paths(case, ("target",), {code}))


def _other_family_records(case: Case) -> Expectation:
    # Both readings fit the contract: the name has no record of the family this host has
    # (DNS_NO_ADDRESS), or this host has no address of the family the name needs (ADDR_NONE).
    return Expectation(BROKEN, frozenset({"DNS_NO_ADDRESS", "ADDR_NONE"}))


def _listener_elsewhere(case: Case, services: Services) -> None:
    fam = case.family or 4
    others = tuple(SERVER[f] for f in case.parts.families if f != fam)
    services.tcp_bind = others or ("127.0.0.1" if fam == 4 else "::1",)


def _core_return(case: Case, lab: ComposedLab) -> None:
    fam = case.family or 6
    if case.param("how") == "deleted":
        lab.ip("core", fam_flag(fam), "route", "del", prefix(fam, 1))
    else:
        lab.ip("core", fam_flag(fam), "route", "replace", prefix(fam, 1),
               "via", address(fam, 6, 77))


def _core_return_families(parts: Parts) -> Sequence[int]:
    return tuple(f for f in parts.families if not (parts.nat and f == 4))


def _no_nat_for_v4_only(parts: Parts, rng: random.Random) -> Parts:
    parts = dataclasses.replace(parts, routers=2)
    if parts.family == "v4":
        parts = dataclasses.replace(parts, nat=False)
    return normalise(parts)


def _nat_flushed(case: Case, lab: ComposedLab) -> None:
    lab.exec("router", ["nft", "flush", "table", "ip", "lab_nat"], check=True)
    if case.parts.routers == 1:
        lab.exec("router", ["nft", "flush", "table", "ip", "lab_nat_dns"], check=True)


def _ipsec_no_sa(case: Case, lab: ComposedLab) -> None:
    fam = case.family or 4
    host = client_addr(fam)
    lab.ip("client", "xfrm", "policy", "add", "src", f"{host}/{32 if fam == 4 else 128}",
           "dst", prefix(fam, 2), "dir", "out",
           "tmpl", "src", host, "dst", address(fam, 2, 1), "proto", "esp", "mode", "tunnel")


def _ipsec_block_dns(case: Case, lab: ComposedLab) -> None:
    fam = case.family or 4
    lab.ip("client", "xfrm", "policy", "add", "src", default(fam), "dst", prefix(fam, 3),
           "dir", "out", "action", "block")


def _preferred_isolated(case: Case, lab: ComposedLab) -> None:
    for fam in case.parts.families:
        lab.ip("client", fam_flag(fam), "route", "add", "default", "via", address(fam, 5, 1),
               "dev", "eth1", "metric", "50")
    lab.ip("backup", "link", "set", "wan0", "down")


def _asymmetric_rp_filter(case: Case, lab: ComposedLab) -> None:
    lab.ip("core", "-4", "route", "replace", prefix(4, 1), "via", address(4, 7, 1))
    lab.ip("backup", "-4", "route", "add", prefix(4, 1), "via", address(4, 5, 2))
    lab.exec("client", ["sysctl", "-q", "-w", "net.ipv4.conf.all.rp_filter=1",
                        "net.ipv4.conf.eth1.rp_filter=1"], check=True)


def _records_param(pairs: dict[int, list[str]]) -> tuple[tuple[int, tuple[str, ...]], ...]:
    return tuple(sorted((f, tuple(a)) for f, a in pairs.items()))
