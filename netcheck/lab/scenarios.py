"""Fault scenarios: each breaks a healthy lab the way real networks break.

A scenario names the fault, tells a student what they would see, gives the TARGET (and extra
arguments) netcheck should be run with from the client namespace, and the diagnosis netcheck is
expected to reach: ``(verdict, root-cause code, layer)``, with code and layer None when the
verdict is ``ok``.

Every fault is applied with ordinary tools inside lab namespaces (``ip``, ``nft``, ``ethtool``,
a resolver file, the DNS server's mode) — never in the root namespace.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple, Optional

from netcheck.lab.topology import CLIENT_HOSTS, Lab, LabError

TABLE = "netcheck_lab"  # name of the nft table every scenario's rules live in


class Expect(NamedTuple):
    """The diagnosis netcheck should reach for a scenario."""

    verdict: str
    code: Optional[str]
    layer: Optional[int]


@dataclass(frozen=True)
class Scenario:
    """One way to break the lab, with the target to diagnose and the expected diagnosis.

    A student must find the fault, so what a scenario says comes in three parts: ``symptom``
    (what a user of the client notices), ``description`` (one sentence for ``lab list``) and
    ``fix`` (what is broken and how it is repaired: shown by ``lab check`` once it is fixed,
    or by ``lab up --spoil``). A scenario written before ``fix`` existed has the fault in its
    ``description``: then that is the answer, and lists show the symptom instead.
    """

    name: str
    description: str  # one sentence for `lab list`: never the fault or its fix when fix is set
    symptom: str  # what a user of the client would notice
    target: str  # TARGET string netcheck is run with, inside the client namespace
    apply: Callable[[Lab], None]
    expect: Expect
    args: tuple[str, ...] = field(default=())  # extra netcheck arguments (e.g. "-4")
    fix: str = ""  # what is broken and how to repair it (the answer)

    @property
    def answer(self) -> str:
        """What is broken and how it is repaired."""
        return self.fix or self.description

    @property
    def teaser(self) -> str:
        """What ``lab list`` says: the description, or the symptom when the description is
        the answer (a scenario with no ``fix``)."""
        return self.description if self.fix else self.symptom

    def netcheck_argv(self, lab: Any = None) -> list[str]:
        """Arguments for ``netcheck`` (without --format) that diagnose this scenario.

        ``lab`` (a Lab or anything with its ``state_dir``) lets scenarios whose arguments
        name files of the lab (a CA, a client certificate) resolve them; plain ones ignore it.
        """
        return [self.target, *self.args]


# -- fault helpers ---------------------------------------------------------------------------

def _nothing(lab: Lab) -> None:
    """No fault: the lab as built."""


def _firewall(role: str, hook: str, *rules: str) -> Callable[[Lab], None]:
    """A fault made of nft rules in one chain of one namespace."""

    def apply(lab: Lab) -> None:
        body = "\n".join(f"    {rule}" for rule in rules)
        lab.nft(role, (
            f"table inet {TABLE} {{\n"
            f"  chain {hook} {{\n"
            f"    type filter hook {hook} priority 0; policy accept;\n"
            f"{body}\n"
            f"  }}\n"
            f"}}\n"
        ))

    return apply


def _ip(role: str, *commands: tuple[str, ...]) -> Callable[[Lab], None]:
    """A fault made of ``ip`` commands in one namespace."""

    def apply(lab: Lab) -> None:
        for command in commands:
            lab.ip(role, *command)

    return apply


def _link_local_only(lab: Lab) -> None:
    # What DHCP and SLAAC failing leave behind: an IPv4LL address and a link-local IPv6 one.
    lab.ip("client", "addr", "flush", "dev", "eth0")
    lab.ip("client", "addr", "add", "169.254.23.5/16", "dev", "eth0")
    lab.ip("client", "addr", "add", "fe80::23:5/64", "dev", "eth0")


def _duplicate_address(lab: Lab) -> None:
    # Someone configured the router's address on the client by hand. IPv6 duplicate address
    # detection (off elsewhere in the lab to save time) is turned on for eth0 to catch it.
    lab.exec("client", ["sysctl", "-q", "-w", "net.ipv6.conf.eth0.accept_dad=1"], check=True)
    lab.ip("client", "-6", "addr", "del", "2001:db8:1::2/64", "dev", "eth0")
    lab.ip("client", "-6", "addr", "add", "2001:db8:1::1/64", "dev", "eth0")
    deadline = time.monotonic() + 5
    while "dadfailed" not in lab.ip("client", "-6", "addr", "show", "dev", "eth0").stdout:
        if time.monotonic() > deadline:
            raise LabError("duplicate address detection did not fail within 5 s")
        time.sleep(0.02)  # DAD takes one NS retransmit time (about 0.2 s here)


def _resolver_config_empty(lab: Lab) -> None:
    lab.write_client_file("resolv.conf", "# written by a DHCP lease that carried no name server\n"
                                         "search lab.test\n")


def _dns_mode(mode: str, delay_ms: int = 800) -> Callable[[Lab], None]:
    def apply(lab: Lab) -> None:
        lab.set_dns_mode(mode, delay_ms=delay_ms)

    return apply


def _hosts_override(lab: Lab) -> None:
    lab.write_client_file("hosts", CLIENT_HOSTS + "# left over from a server move\n"
                                                  "198.18.2.99 www.lab.test www\n")


def _pmtu_blackhole(lab: Lab) -> None:
    # A narrower link behind the router, and a router that drops its own "too big" errors:
    # small packets pass, full-size DF packets vanish.
    lab.ip("router", "link", "set", "r-server", "mtu", "1280")
    lab.ip("server", "link", "set", "eth0", "mtu", "1280")
    _firewall("router", "output",
              "icmp type destination-unreachable icmp code frag-needed drop",
              "icmpv6 type packet-too-big drop")(lab)
    # Without this the veth hands the router offloaded super-frames that bypass the MTU check.
    lab.exec("client", ["ethtool", "-K", "eth0", "tso", "off", "gso", "off"], check=True)


def _narrow_link(lab: Lab) -> None:
    # The same narrower link, but the router's "fragmentation needed" gets through:
    # path MTU discovery works, the path MTU is simply smaller than the interface's.
    lab.ip("router", "link", "set", "r-server", "mtu", "1280")
    lab.ip("server", "link", "set", "eth0", "mtu", "1280")
    lab.exec("client", ["ethtool", "-K", "eth0", "tso", "off", "gso", "off"], check=True)


LITERAL = "tcp://198.18.2.10:22"
NAMED = "tcp://www.lab.test:22"


# What `lab list` says of each scenario below: the situation as a student meets it, never the
# fault (that is each scenario's fix, the second argument of _s).
_DESCRIPTIONS = {
    "healthy": "Nothing is broken: the lab as built, to compare the others with.",
    "client_interface_down": "The client cannot reach anything at all.",
    "carrier_lost": "The client's interface is there, yet nothing beyond it answers.",
    "no_address": "The client's link is up, yet every connection fails at once.",
    "link_local_only": "The client's link is up, yet nothing past its own segment answers.",
    "duplicate_address": "IPv6 connections from the client never get going.",
    "no_default_route": "The client reaches its own subnet and nothing further.",
    "wrong_gateway": "Connections from the client beyond its own subnet hang.",
    "gateway_off_link": "Connections from the client beyond its own subnet never start.",
    "blackhole_route": "Connecting to the server fails at once, with an odd error.",
    "unreachable_route": "Connecting to the server fails at once.",
    "nothing_beyond_gateway": "The server answers nothing at all, though the client's own "
                              "network looks fine.",
    "loopback_down": "Local programs on the client misbehave; the server is reachable.",
    "resolver_config_empty": "Names do not resolve on the client; addresses work.",
    "resolver_dropped": "Name lookups hang for seconds, then fail.",
    "resolver_rejected": "Name lookups fail at once.",
    "dns_refused": "Name lookups fail at once, and the name server did answer.",
    "dns_servfail": "Name lookups fail, and the name server did answer.",
    "nxdomain": "One server's name does not resolve.",
    "name_without_address": "One server's name resolves, to nothing usable.",
    "slow_resolver": "Everything works, but every new connection is slow to start.",
    "hosts_override": "Connecting to the server by name hangs, though DNS looks right.",
    "port_closed": "A connection to one port of the server is turned away.",
    "port_dropped": "ssh to the server hangs; the server itself is up.",
    "port_admin_prohibited": "ssh to the server fails at once; the server itself is up.",
    "pmtu_blackhole": "Small exchanges with the server work; big ones stall.",
    "narrow_link_pmtud_works": "Everything works. Is there anything worth knowing about the "
                               "path?",
    "ping_dropped_port_open": "The server does not answer ping. Is it down?",
    "second_interface_down": "The client has a second interface. Is anything wrong?",
}


# How each fault is repaired, said after the fault itself (lab check, once it is fixed).
_ON_ROUTER = "in the router namespace: nft delete table inet " + TABLE
_REPAIRS = {
    "healthy": "Nothing to repair.",
    "client_interface_down": (
        "Repair: ip link set dev eth0 up. Taking the link down also removed its routes and "
        "its IPv6 address, so put those back too: ip route add default via 198.18.1.1; "
        "ip -6 addr add 2001:db8:1::2/64 dev eth0; ip -6 route add default via 2001:db8:1::1."),
    "carrier_lost": "Repair the other end: in the router namespace, ip link set r-client up.",
    "no_address": ("Repair: ip addr add 198.18.1.2/24 dev eth0, then the default route: "
                   "ip route add default via 198.18.1.1."),
    "link_local_only": ("Repair: ip addr flush dev eth0; ip addr add 198.18.1.2/24 dev eth0; "
                        "ip route add default via 198.18.1.1."),
    "duplicate_address": ("Repair: ip -6 addr del 2001:db8:1::1/64 dev eth0; "
                          "ip -6 addr add 2001:db8:1::2/64 dev eth0."),
    "no_default_route": "Repair: ip route add default via 198.18.1.1 dev eth0.",
    "wrong_gateway": ("Repair: ip route replace default via 198.18.1.1 dev eth0 (the router "
                      "that answers ARP on eth0)."),
    "gateway_off_link": "Repair: ip route replace default via 198.18.1.1 dev eth0.",
    "blackhole_route": "Repair: ip route del blackhole 198.18.2.0/24.",
    "unreachable_route": "Repair: ip route del unreachable 198.18.2.0/24.",
    "nothing_beyond_gateway": f"The client is fine; repair the router ({_ON_ROUTER}).",
    "loopback_down": "Repair: ip link set dev lo up.",
    "resolver_config_empty": "Repair: put the line 'nameserver 198.18.3.53' in /etc/resolv.conf.",
    "resolver_dropped": ("The client is fine; repair the DNS server (in the dns namespace: "
                         f"nft delete table inet {TABLE})."),
    "resolver_rejected": ("The client is fine; repair the DNS server (in the dns namespace: "
                          f"nft delete table inet {TABLE})."),
    "dns_refused": "The client is fine: the name server's access list must admit it.",
    "dns_servfail": "The client is fine: the name server itself must be repaired.",
    "nxdomain": "Ask for a name that exists (www.lab.test), or add the record to the zone.",
    "name_without_address": "Add an A or AAAA record for noaddr.lab.test to the zone.",
    "slow_resolver": "The client is fine: the name server must answer faster (or use another).",
    "hosts_override": "Repair: delete the stale www.lab.test line from /etc/hosts.",
    "port_closed": "Connect to the port the service uses (22), or start a service on 2222.",
    "port_dropped": ("The client is fine; repair the server's firewall (in the server "
                     f"namespace: nft delete table inet {TABLE})."),
    "port_admin_prohibited": ("The client is fine; repair the server's firewall (in the server "
                              f"namespace: nft delete table inet {TABLE})."),
    "pmtu_blackhole": (f"The router must let its 'fragmentation needed' errors out ({_ON_ROUTER}); "
                       "meanwhile the client can lower its MTU: ip link set dev eth0 mtu 1280."),
    "narrow_link_pmtud_works": ("Nothing to repair: path MTU discovery works. An MTU of 1280 on "
                                "eth0 would spare the first lost full-size packet."),
    "ping_dropped_port_open": "Nothing to repair: the server only ignores ping.",
    "second_interface_down": "Nothing to repair: eth1 is not on the way to the server.",
}


def _s(name: str, fix: str, symptom: str, target: str, apply: Callable[[Lab], None],
       verdict: str, code: Optional[str] = None, layer: Optional[int] = None,
       args: tuple[str, ...] = ()) -> Scenario:
    repair = _REPAIRS.get(name)
    return Scenario(name, _DESCRIPTIONS.get(name, symptom), symptom, target, apply,
                    Expect(verdict, code, layer), args,
                    fix=f"{fix} {repair}" if repair else fix)


_ALL = [
    _s("healthy", "Nothing is broken: every layer from the cable to the service works.",
       "ssh www.lab.test connects and shows the server's banner.",
       NAMED, _nothing, "ok"),
    _s("client_interface_down",
       "The client's network interface eth0 has been switched off (ip link set eth0 down).",
       "Every connection fails at once with 'Network is unreachable'.",
       NAMED, _ip("client", ("link", "set", "eth0", "down")), "broken", "LINK_ADMIN_DOWN", 2),
    _s("carrier_lost",
       "The cable is unplugged at the other end: the router's port towards the client is down.",
       "eth0 shows NO-CARRIER and nothing beyond the client answers.",
       NAMED, _ip("router", ("link", "set", "r-client", "down")),
       "broken", "LINK_NO_CARRIER", 2),
    _s("no_address",
       "The client's eth0 lost all its IPv4 and IPv6 addresses (DHCP never answered).",
       "Connections fail with 'Network is unreachable' although the link is up.",
       LITERAL, _ip("client", ("addr", "flush", "dev", "eth0")), "broken", "ADDR_NONE", 3,
       ("-4",)),
    _s("link_local_only",
       "DHCP failed, so eth0 only has the self-assigned address 169.254.23.5 (and an fe80:: one).",
       "The link is up but nothing outside the local segment is reachable.",
       LITERAL, _link_local_only, "broken", "ADDR_LINK_LOCAL_ONLY", 3, ("-4",)),
    _s("duplicate_address",
       "The client's IPv6 address was set by hand to 2001:db8:1::1, which the router already has.",
       "IPv6 connections hang; `ip addr` shows the address as 'dadfailed tentative'.",
       "tcp://[2001:db8:2::10]:22", _duplicate_address, "broken", "ADDR_DAD_FAILED", 3,
       ("-6",)),
    _s("no_default_route",
       "The client has its address but no default route, so it only knows its own subnet.",
       "The gateway answers ping, but the server gives 'Network is unreachable'.",
       LITERAL, _ip("client", ("-4", "route", "del", "default"), ("-6", "route", "del", "default")),
       "broken", "ROUTE_NO_DEFAULT", 3, ("-4",)),
    _s("wrong_gateway",
       "The default route points to 198.18.1.99, an address nobody on the subnet has.",
       "Every connection beyond the subnet hangs and then fails with 'No route to host'.",
       LITERAL, _ip("client", ("-4", "route", "replace", "default", "via", "198.18.1.99",
                               "dev", "eth0")),
       "broken", "GATEWAY_UNREACHABLE", 3, ("-4",)),
    _s("gateway_off_link",
       "The default route names gateway 198.18.9.1, which is outside every subnet of the client.",
       "Connections beyond the subnet hang: the gateway can never be reached on the link.",
       LITERAL, _ip("client", ("-4", "route", "replace", "default", "via", "198.18.9.1",
                               "dev", "eth0", "onlink")),
       "broken", "GATEWAY_NOT_ON_LINK", 3, ("-4",)),
    _s("blackhole_route",
       "A blackhole route for the server's network makes the client discard every packet to it.",
       "Connecting to the server fails at once with 'Invalid argument'.",
       LITERAL, _ip("client", ("-4", "route", "add", "blackhole", "198.18.2.0/24"),
                    ("-6", "route", "add", "blackhole", "2001:db8:2::/64")),
       "broken", "ROUTE_UNREACHABLE", 3, ("-4",)),
    _s("unreachable_route",
       "An 'unreachable' route for the server's network makes the client refuse to send to it.",
       "Connecting to the server fails at once with 'No route to host'.",
       LITERAL, _ip("client", ("-4", "route", "add", "unreachable", "198.18.2.0/24"),
                    ("-6", "route", "add", "unreachable", "2001:db8:2::/64")),
       "broken", "ROUTE_UNREACHABLE", 3, ("-4",)),
    _s("nothing_beyond_gateway",
       "The router silently drops everything it should forward to the server's network.",
       "The gateway answers ping, but the server answers nothing at all: connections time out.",
       LITERAL, _firewall("router", "forward", "ip daddr 198.18.2.0/24 drop",
                          "ip6 daddr 2001:db8:2::/64 drop"),
       "broken", "TARGET_UNREACHABLE", 3, ("-4",)),
    _s("loopback_down",
       "The client's loopback interface lo is down, so 127.0.0.1 and ::1 do not work.",
       "Local services (and anything that talks to localhost) fail in odd ways.",
       # The flow to the server does not use lo and works: off its path, a warning.
       NAMED, _ip("client", ("link", "set", "lo", "down")), "degraded", "LOOPBACK_DOWN", 3),
    _s("resolver_config_empty",
       "/etc/resolv.conf names no name server at all.",
       "Names fail to resolve ('Temporary failure in name resolution'); addresses work.",
       NAMED, _resolver_config_empty, "broken", "DNS_NO_RESOLVER", 3),
    _s("resolver_dropped",
       "A firewall on the DNS server silently drops every query to port 53.",
       "Name lookups hang for seconds and then fail; pinging the DNS server works.",
       NAMED, _firewall("dns", "input", "udp dport 53 drop", "tcp dport 53 drop"),
       "broken", "DNS_RESOLVER_UNREACHABLE", 3),
    _s("resolver_rejected",
       "A firewall on the DNS server rejects every query to port 53 with ICMP port-unreachable.",
       "Name lookups fail at once; pinging the DNS server works.",
       NAMED, _firewall("dns", "input",
                        "meta l4proto { tcp, udp } th dport 53 "
                        "reject with icmpx type port-unreachable"),
       "broken", "DNS_RESOLVER_UNREACHABLE", 3),
    _s("dns_refused",
       "The name server refuses to answer this client (REFUSED).",
       "Name lookups fail at once; dig shows status: REFUSED.",
       NAMED, _dns_mode("refused"), "broken", "DNS_REFUSED", 3),
    _s("dns_servfail",
       "The name server is broken and answers SERVFAIL to every question.",
       "Name lookups fail; dig shows status: SERVFAIL.",
       NAMED, _dns_mode("servfail"), "broken", "DNS_SERVFAIL", 3),
    _s("nxdomain",
       "The name asked for does not exist in the lab.test zone.",
       "'Name or service not known'; dig shows status: NXDOMAIN.",
       "tcp://missing.lab.test:22", _nothing, "broken", "DNS_NXDOMAIN", 3),
    _s("name_without_address",
       "The name exists in DNS but has only a TXT record, no IPv4 or IPv6 address.",
       "'No address associated with hostname'; dig shows NOERROR with an empty answer.",
       "tcp://noaddr.lab.test:22", _nothing, "broken", "DNS_NO_ADDRESS", 3),
    _s("slow_resolver",
       "The name server answers correctly but only after 800 ms.",
       "Everything works, but every new connection starts with a noticeable pause.",
       NAMED, _dns_mode("slow", 800), "degraded", "DNS_SLOW", 3),
    _s("hosts_override",
       "A stale /etc/hosts line maps www.lab.test to 198.18.2.99, where no server exists.",
       "dig shows the right address, yet connecting by name hangs and fails.",
       NAMED, _hosts_override, "broken", "DNS_HOSTS_OVERRIDE", 3, ("-4",)),
    _s("port_closed",
       "Nothing listens on port 2222 on the server.",
       "Connecting fails at once with 'Connection refused'.",
       "tcp://198.18.2.10:2222", _nothing, "broken", "TCP_REFUSED", 4),
    _s("port_dropped",
       "The server's firewall silently drops connections to port 22.",
       "ssh hangs and times out; ping to the server works.",
       LITERAL, _firewall("server", "input", "tcp dport 22 drop"), "broken", "TCP_FILTERED", 4),
    _s("port_admin_prohibited",
       "The server's firewall rejects port 22 with ICMP 'administratively prohibited'.",
       "ssh fails at once with 'No route to host' although ping to the server works.",
       NAMED, _firewall("server", "input",
                        "meta nfproto ipv4 tcp dport 22 reject with icmp type admin-prohibited",
                        "meta nfproto ipv6 tcp dport 22 reject with icmpv6 type admin-prohibited"),
       "broken", "TCP_ADMIN_PROHIBITED", 4),
    _s("pmtu_blackhole",
       "A link behind the router has MTU 1280 and the router drops its 'fragmentation needed' "
       "errors.",
       "Small packets pass; full-size packets that may not be fragmented vanish.",
       # tcp:// asks for the connect only, and its small packets pass: a warning (docs/checks.md)
       LITERAL, _pmtu_blackhole, "degraded", "PMTU_BLACKHOLE", 3, ("-4",)),
    _s("narrow_link_pmtud_works",
       "A link behind the router has MTU 1280 and the router says so with ICMP "
       "'fragmentation needed'.",
       "Everything works; full-size packets are answered by 'Frag needed and DF set (mtu = 1280)'.",
       LITERAL, _narrow_link, "degraded", "MTU_MISMATCH", 3, ("-4",)),
    _s("ping_dropped_port_open",
       "The server's firewall drops ping, but the service on port 22 works (a false alarm).",
       "ping to the server gets no answer, yet ssh connects fine.",
       NAMED, _firewall("server", "input", "icmp type echo-request drop",
                        "icmpv6 type echo-request drop"),
       "degraded", "TARGET_NO_ICMP", 3),
    _s("second_interface_down",
       "The client's second interface eth1, not used to reach the server, is down (no fault).",
       "Nothing: connections to the server work; only `ip link` shows eth1 DOWN.",
       NAMED, _ip("client", ("link", "set", "eth1", "down")), "ok"),
]

# Scenarios of the upper layers live in their own modules (scenarios_<area>.py), each with
# a list SCENARIOS_LIST; they are gathered here so every tool sees one library.
_EXTRA_MODULES = ("netcheck.lab.scenarios_tls", "netcheck.lab.scenarios_app",
                  "netcheck.lab.scenarios_fw", "netcheck.lab.scenarios_path",
                  "netcheck.lab.scenarios_nginx", "netcheck.lab.scenarios_server",
                  "netcheck.lab.scenarios_l4", "netcheck.lab.scenarios_noise",
                  "netcheck.lab.scenarios_host", "netcheck.lab.scenarios_docker",
                  "netcheck.lab.scenarios_portal")


def register_late(found: list[Scenario]) -> None:
    """Add a scenario module's scenarios to the library if it was gathered before that module
    finished (a module that imports another scenario module first is seen half-initialised)."""
    table = globals().get("SCENARIOS")
    if isinstance(table, dict):
        for scenario in found:
            table.setdefault(scenario.name, scenario)


def _gather() -> dict[str, Scenario]:
    import importlib

    found = list(_ALL)
    for name in _EXTRA_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        found += list(getattr(module, "SCENARIOS_LIST", []))
    table: dict[str, Scenario] = {}
    for scenario in found:
        if scenario.name in table:
            raise ValueError(f"scenario {scenario.name!r} is defined twice")
        table[scenario.name] = scenario
    return table


def __getattr__(name: str) -> Any:
    # SCENARIOS is gathered on first use, not at import: a scenario module imported first
    # imports this one, and must be complete before it is gathered.
    if name == "SCENARIOS":
        table = _gather()
        globals()["SCENARIOS"] = table
        return table
    raise AttributeError(name)


# Layers 1-4 scenarios (tcp:// targets), defined in this module.
BASE_SCENARIOS: dict[str, Scenario] = {s.name: s for s in _ALL}
