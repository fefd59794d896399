"""The campaign's catalogue: what a case is, the flow model, the generator and the faults.

A case (:class:`Case`) is drawn from an integer *seed*: the seed picks one entry of
:data:`CATALOGUE` (``(seed - 1) % len``, so seeds 1..len cover every entry once), then — from a
random generator seeded with the seed — the network's parts, the family the fault acts on and
the target. Each entry (:class:`Fault`) says how it breaks the network (``apply``) and what a
senior network engineer diagnosing that host would conclude (``expect``); most say which path
of which family they break, and :func:`flow` turns that into the verdict for the case's flow.

Seeds are stable for a given commit: new entries go at the end of the catalogue. Running and
grading the cases is :mod:`netcheck.lab.campaign`'s job.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional, Sequence

from netcheck.lab.compose import (
    DNS,
    SERVER,
    VPN_TABLE,
    ComposedLab,
    Parts,
    Services,
    address,
    host_prefix,
    prefix,
)
from netcheck.lab.scenarios_portal import router_portal
from netcheck.lab.topology import python_argv

GENERATOR = 1  # part of every case's random seed: bump when a seed's meaning changes
DEFAULT_DEADLINE = 10.0
# Interpreter start-up and exit around netcheck's own clock, on a loaded 2-core machine.
DEADLINE_SLACK = 1.5
ALL = 0  # a fault acting on every family
TABLE = "campaign"  # the nft table every fault's rules live in
DEAD_MAC = "02:00:5e:10:00:99"
NAME = "svc.lab.test"

OK_VERDICT = frozenset({"ok"})
BROKEN = frozenset({"broken"})
DEGRADED = frozenset({"degraded"})
NOT_OK = frozenset({"broken", "degraded"})
FAMILY_NAME = {4: "ipv4", 6: "ipv6"}


# -- what a case is ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """What netcheck is asked about, from the client."""

    scheme: str  # tcp | ssh | http
    host: str  # a name, or a literal address
    port: int
    family: Optional[int]  # the literal's family; None for a name

    @property
    def named(self) -> bool:
        """True when the target is a name (the flow needs the name servers)."""
        return self.family is None

    def url(self) -> str:
        """The TARGET argument: ``tcp://svc.lab.test:22``, ``ssh://[2001:db8:2::10]:22``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


@dataclass(frozen=True)
class Expectation:
    """What the oracle accepts for one case."""

    verdicts: frozenset[str]
    codes: frozenset[str] = frozenset()  # accepted root-cause codes when the verdict is not ok
    family: Optional[str] = None  # "ipv4"/"ipv6": named by the root cause when degraded
    no_fail: bool = False  # healthy variants and traps: no check may fail
    broken_paths: frozenset[tuple[str, int]] = frozenset()  # for the truth probe
    modelled: bool = False  # built by flow(): the truth probe can check it

    def text(self) -> str:
        """``broken ROUTE_NO_DEFAULT (ipv6)``, ``ok``, ``ok|degraded TARGET_NO_ICMP, no fail``."""
        words = ["|".join(sorted(self.verdicts))]
        if self.codes:
            words.append("/".join(sorted(self.codes)))
        if self.family:
            words.append(f"({self.family})")
        if self.no_fail and self.verdicts != OK_VERDICT:
            words.append("with no check failing")
        return " ".join(words)


OK = Expectation(OK_VERDICT, no_fail=True, modelled=True)


@dataclass(frozen=True)
class Fault:
    """One catalogue entry: how it breaks the network and what the diagnosis must be."""

    name: str
    klass: str  # link, address, route, gateway, dns, service, firewall, path, vpn, ipsec, ...
    kind: str  # fault | trap | healthy
    how: str  # one sentence: what was done to the network
    expect: Callable[[Case], Expectation]
    apply: Callable[[Case, ComposedLab], None] = lambda case, lab: None
    shape: Callable[[Parts, random.Random], Parts] = lambda parts, rng: parts
    families: Optional[Callable[[Parts], Sequence[int]]] = None  # None: not per family
    named_share: float = 0.7  # how often the target is a name rather than a literal
    schemes: tuple[str, ...] = ("tcp",)
    services: Optional[Callable[[Case, Services], None]] = None
    params: Optional[Callable[[random.Random, Parts, Optional[int]], dict[str, Any]]] = None
    truth: bool = True  # the truth probe can check this entry's model


@dataclass(frozen=True)
class Case:
    """One generated network with one fault, and the target to diagnose."""

    seed: int
    fault: Fault
    parts: Parts
    target: Target
    family: Optional[int]  # the family the fault acts on: 4, 6, ALL, or None (not per family)
    params: tuple[tuple[str, Any], ...] = ()

    def param(self, key: str, default: Any = None) -> Any:
        """One of the parameters the generator drew for this case's fault."""
        return dict(self.params).get(key, default)

    @property
    def fault_families(self) -> tuple[int, ...]:
        """The families the fault acts on (every family of the network for ALL or None)."""
        if self.family in (None, ALL):
            return self.parts.families
        return (self.family,)

    @property
    def family_label(self) -> str:
        """``ipv4``, ``ipv6`` or ``all`` (for reports)."""
        return FAMILY_NAME.get(self.family or 0, "all")

    def records(self) -> dict[int, list[str]]:
        """Addresses of the target name per family, as the lab's DNS server gives them."""
        given = self.param("records")
        if given is not None:
            return {int(k): list(v) for k, v in given}
        return {f: [SERVER[f]] for f in self.parts.families}

    def nameserver_addresses(self) -> list[tuple[int, str]]:
        """(family, address) of the name servers the client (or its stub) asks."""
        given = self.param("nameservers")
        if given is not None:
            return [(6 if ":" in a else 4, a) for a in given]
        return [(f, DNS[f]) for f in self.parts.nameservers]

    def target_families(self) -> tuple[int, ...]:
        """Families the client can reach the target in (records it has an address for)."""
        if not self.target.named:
            return (self.target.family,)  # type: ignore[return-value]
        return tuple(f for f in self.parts.families if self.records().get(f))

    def services(self) -> Services:
        """The servers this case needs, with the target name's records."""
        services = Services(dns=self.target.named or self.parts.stub)
        name = self.target.host if self.target.host.endswith(".lab.test") else NAME
        for fam, addresses in sorted(self.records().items()):
            if addresses:
                services.dns_records.append((f"{name}.", "A" if fam == 4 else "AAAA",
                                             list(addresses)))
        if self.fault.services:
            self.fault.services(self, services)
        return services

    def expectation(self) -> Expectation:
        """What the oracle accepts."""
        return self.fault.expect(self)

    def argv(self, deadline: float = DEFAULT_DEADLINE) -> list[str]:
        """netcheck's arguments (without --format) for this case."""
        return [self.target.url(), "--deadline", f"{deadline:g}"]

    def reproduce(self, deadline: float = DEFAULT_DEADLINE) -> str:
        """The one-line reproduction printed with a failure."""
        return (f"netcheck lab up --case {self.seed}   # then in its client namespace: "
                f"netcheck {' '.join(self.argv(deadline))}")

    def describe(self) -> str:
        """``seed 12 [route/default_route_deleted ipv6] dual-stack, 1 router, ...``."""
        extra = "".join(f" {k}={v}" for k, v in self.params if k != "records")
        return (f"seed {self.seed} [{self.fault.klass}/{self.fault.name} {self.family_label}"
                f"{extra}] {self.parts.describe()}; target {self.target.url()}")


# -- the flow model ------------------------------------------------------------------------------

Broken = dict[tuple[str, int], frozenset[str]]


def flow(case: Case, broken: Broken) -> Expectation:
    """The verdict for the case's flow when ``broken`` paths fail with the given codes.

    A path is ``("dns", family)`` — reaching the name servers (or the stub's upstreams) in that
    family — or ``("target", family)``. A named target needs one working name server and then
    one working target family; a literal needs its own family. Everything needed broken:
    ``broken``; some family of a need broken while another carries it: ``degraded`` naming
    the family; nothing the flow needs broken: ``ok``.
    """
    dns_need = set(case.parts.nameservers) if case.target.named else set()
    target_need = set(case.target_families())
    bad_dns = {f for f in dns_need if ("dns", f) in broken}
    bad_target = {f for f in target_need if ("target", f) in broken}
    relevant = frozenset({("dns", f) for f in bad_dns} | {("target", f) for f in bad_target})

    def codes(keys: Iterable[tuple[str, int]]) -> frozenset[str]:
        return frozenset().union(*(broken[k] for k in keys))

    if dns_need and bad_dns == dns_need:
        return Expectation(BROKEN, codes(("dns", f) for f in bad_dns),
                           broken_paths=relevant, modelled=True)
    if target_need and bad_target == target_need:
        return Expectation(BROKEN, codes(("target", f) for f in bad_target),
                           broken_paths=relevant, modelled=True)
    if relevant:
        families = {f for _, f in relevant}
        family = FAMILY_NAME[families.pop()] if len(families) == 1 else None
        return Expectation(DEGRADED, codes(relevant), family, broken_paths=relevant,
                           modelled=True)
    return OK


def _paths(case: Case, which: Sequence[str], codes: Iterable[str],
           families: Optional[Sequence[int]] = None) -> Broken:
    fams = case.fault_families if families is None else families
    return {(path, f): frozenset(codes) for path in which for f in fams}


def local(codes: Iterable[str]) -> Callable[[Case], Expectation]:
    """The fault breaks everything of the fault's families on this host."""
    return lambda case: flow(case, _paths(case, ("dns", "target"), codes))


def beyond(case: Case, families: Optional[Sequence[int]] = None) -> Expectation:
    """Everything beyond the gateway is gone: name servers and target stay silent."""
    return flow(case, {**_paths(case, ("dns",), {"DNS_RESOLVER_UNREACHABLE"}, families),
                       **_paths(case, ("target",), {"TARGET_UNREACHABLE"}, families)})


def to_dns(codes: Iterable[str]) -> Callable[[Case], Expectation]:
    """The fault breaks only the way to the name servers."""
    return lambda case: flow(case, _paths(case, ("dns",), codes))


def to_target(codes: Iterable[str]) -> Callable[[Case], Expectation]:
    """The fault breaks only the way to the target (its network, or its port)."""
    return lambda case: flow(case, _paths(case, ("target",), codes))


def trap(*codes: str) -> Callable[[Case], Expectation]:
    """Nothing is broken; ``codes`` are warnings a careful diagnosis may give (never a fail)."""
    verdicts = frozenset({"ok", "degraded"}) if codes else OK_VERDICT
    return lambda case: Expectation(verdicts, frozenset(codes), no_fail=True)


def unless_failover(inner: Callable[[Case], Expectation]) -> Callable[[Case], Expectation]:
    """With a second uplink, a fault that removes the first uplink's routes leaves the flow on
    the backup (metric 200): nothing the flow needs is broken."""
    return lambda case: OK if case.parts.uplinks == 2 else inner(case)


# -- generating ----------------------------------------------------------------------------------

def random_parts(rng: random.Random) -> Parts:
    """A network drawn at random (every draw in a fixed order: seeds must stay stable)."""
    family = rng.choices(("dual", "v4", "v6"), weights=(2, 1, 1))[0]
    routers = rng.choice((1, 2))
    uplinks = rng.choices((1, 2), weights=(3, 1))[0]
    vpn = rng.random() < 0.25
    stub = rng.random() < 0.25
    nat = rng.random() < 0.3
    client_fw = rng.random() < 0.25
    server_fw = rng.random() < 0.25
    ns_choice = rng.choice(((4,), (6,), (4, 6)))
    return normalise(Parts(family, routers, uplinks, vpn, stub, nat, client_fw, server_fw,
                           ns_choice))


def normalise(parts: Parts) -> Parts:
    """Keep the parts consistent: name servers of the network's families, NAT only for IPv4."""
    fams = parts.families
    nameservers = tuple(f for f in parts.nameservers if f in fams) or fams[:1]
    return dataclasses.replace(parts, nameservers=nameservers, nat=parts.nat and 4 in fams)


def with_parts(**forced: Any) -> Callable[[Parts, random.Random], Parts]:
    """A shape that forces some parts (e.g. ``routers=2``)."""
    return lambda parts, rng: normalise(dataclasses.replace(parts, **forced))


def needing(family: int, **forced: Any) -> Callable[[Parts, random.Random], Parts]:
    """A shape that makes sure the network has ``family`` (dual-stack if it had the other)."""

    def shape(parts: Parts, rng: random.Random) -> Parts:
        if family not in parts.families:
            parts = dataclasses.replace(parts, family="dual")
        return normalise(dataclasses.replace(parts, **forced))

    return shape


def single_family(parts: Parts, rng: random.Random) -> Parts:
    """A shape that makes the network IPv4-only or IPv6-only."""
    if parts.family == "dual":
        parts = dataclasses.replace(parts, family=rng.choice(("v4", "v6")))
    return normalise(parts)


def primary_only_for_v6(**forced: Any) -> Callable[[Parts, random.Random], Parts]:
    """A shape for faults that make the first gateway unreachable: with IPv6 in the network,
    a single uplink. Linux's IPv6 default-router selection moves to a second router once the
    first one's neighbour entry has FAILED (RFC 4861 6.3.6), seconds into the run: the network
    would change under the diagnosis. (IPv4 keeps the dead route: those cases stay.)"""

    def shape(parts: Parts, rng: random.Random) -> Parts:
        parts = dataclasses.replace(parts, **forced)
        if 6 in parts.families:
            parts = dataclasses.replace(parts, uplinks=1)
        return normalise(parts)

    return shape


def each_family(parts: Parts) -> Sequence[int]:
    """Per-family faults act on one of the network's families."""
    return parts.families


def each_family_or_all(parts: Parts) -> Sequence[int]:
    """Firewall rules may match one family or both."""
    return (*parts.families, ALL)


def generate(seed: int) -> Case:
    """The case of ``seed`` (the same on every machine, for a given commit)."""
    if seed < 1:
        raise ValueError("campaign seeds start at 1")
    rng = random.Random(f"netcheck-campaign/{GENERATOR}/{seed}")
    fault = CATALOGUE[(seed - 1) % len(CATALOGUE)]
    parts = fault.shape(random_parts(rng), rng)
    family = rng.choice(tuple(fault.families(parts))) if fault.families else None
    params = fault.params(rng, parts, family) if fault.params else {}
    named = rng.random() < fault.named_share
    scheme = rng.choice(fault.schemes)
    port = {"http": 80, "ssh": 22}.get(scheme) or rng.choice((22, 80))
    if named:
        target = Target(scheme, str(params.pop("host", NAME)), port, None)
    else:
        fam = family if family in (4, 6) else rng.choice(parts.families)
        target = Target(scheme, SERVER[fam], port, fam)
    return Case(seed, fault, parts, target, family, tuple(sorted(params.items())))


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


# -- the catalogue -------------------------------------------------------------------------------
# Sources: field reports (issue 10), network-doctor's simulation scenarios and hunt operators
# (preferred-path failure, missing subnet route, wrong default route, per-family drops, DNS
# timeouts at the boundary, TCP reset), ChromeOS network diagnostics routines (gateway can be
# pinged, DNS resolver present / malformed name servers, HTTP firewall, LAN connectivity).
# Append only: a seed names the entry at (seed - 1) % len(CATALOGUE).

CATALOGUE: list[Fault] = [
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
    Fault("service_stopped", "service", "fault",
          "the service's daemon is not running on the server (the port answers RST)",
          to_target({"TCP_REFUSED"}), services=set_services(tcp=False)),
    Fault("listener_wrong_address", "service", "fault",
          "the daemon listens only on the other family's address (or on loopback)",
          to_target({"TCP_REFUSED"}), families=each_family, services=_listener_elsewhere),
    Fault("server_fw_stale_allow_list", "firewall", "fault",
          "the server's allow-list firewall (policy drop) lists other ports than the service's",
          to_target({"TCP_FILTERED"}), shape=with_parts(server_fw=True),
          apply=lambda case, lab: lab.nft("server", _server_allow_list("443, 8080"))),
    Fault("server_fw_resets", "firewall", "fault",
          "the server's firewall answers the port's SYNs with a TCP reset",
          to_target({"TCP_REFUSED"}), families=each_family_or_all,
          apply=port_rule("server", "input", "reject with tcp reset")),
    Fault("router_filters_port", "firewall", "fault",
          "the gateway's forward chain drops or rejects (admin-prohibited) the service's port",
          _filters_port_expect, apply=_filters_port, families=each_family_or_all,
          params=lambda rng, parts, fam: {"action": rng.choice(("drop", "reject"))}),
    Fault("reset_after_handshake", "service", "fault",
          "the server's firewall resets every connection to the port right after the "
          "handshake (fail2ban / TCP wrappers style)", to_target({"APP_CONNECTION_RESET"}),
          schemes=("ssh", "http"),
          apply=lambda case, lab: chain(lab, "server", "input",
                                        f"tcp dport {case.target.port} ct state established "
                                        "reject with tcp reset")),
    Fault("service_silent", "service", "fault",
          "the service accepts connections and never says a word",
          to_target({"APP_TIMEOUT"}), schemes=("ssh", "http"),
          services=set_services(app_mode="silent")),
    Fault("client_fw_established_other_family", "firewall", "fault",
          "the client's input firewall (policy drop) accepts established replies for one "
          "family only: replies of the other are dropped, ICMP passes",
          local({"FW_LOCAL_INPUT_BLOCK"}), families=each_family,
          shape=with_parts(client_fw=True),
          apply=lambda case, lab: lab.nft("client",
                                          _client_fw_established_for(case.family or 4))),
    Fault("client_fw_blocklist_too_wide", "firewall", "fault",
          "a blocklist entry in the client's input chain drops the whole server subnet",
          to_target({"FW_LOCAL_INPUT_BLOCK"}), families=each_family,
          apply=lambda case, lab: chain(lab, "client", "input", (
              f"ip saddr {prefix(4, 2)} drop" if case.family == 4
              else f"ip6 saddr {prefix(6, 2)} drop"))),
    Fault("client_output_rejects_dns", "firewall", "fault",
          "the client's output chain rejects DNS to anything but loopback (a policy meant to "
          "force DNS over HTTPS)", to_dns({"FW_LOCAL_OUTPUT_BLOCK", "DNS_RESOLVER_UNREACHABLE"}),
          named_share=1.0,
          apply=lambda case, lab: chain(lab, "client", "output",
                                        'oifname != "lo" meta l4proto { tcp, udp } th dport 53 '
                                        "reject")),
    Fault("client_output_drops_port", "firewall", "fault",
          "the client's output chain drops the service's port for one family",
          to_target({"FW_LOCAL_OUTPUT_BLOCK"}), families=each_family,
          apply=port_rule("client", "output", "drop")),
    Fault("heavy_loss", "path", "fault",
          "the gateway drops 55-70 % of forwarded packets at random (nft numgen)",
          lambda case: Expectation(NOT_OK, frozenset({"PATH_LOSS"})), apply=_loss,
          params=lambda rng, parts, fam: {"loss": rng.randint(55, 70)}, truth=False),
    Fault("light_loss", "trap", "trap",
          "the gateway drops 4-12 % of forwarded packets at random (under the threshold)",
          trap("PATH_LOSS"), apply=_loss,
          params=lambda rng, parts, fam: {"loss": rng.randint(4, 12)}, truth=False),
    Fault("pmtu_blackhole_transit", "path", "fault",
          "the link between the gateway and the core has MTU 1280 and the gateway drops its "
          "own 'fragmentation needed' / 'packet too big'", _pmtu_expect,
          apply=lambda case, lab: pmtu_narrow(case, lab, drop_too_big=True),
          families=each_family, shape=with_parts(routers=2), truth=False),
    Fault("lower_mtu_icmp_works", "trap", "trap",
          "the link between the gateway and the core has MTU 1280 and says so with ICMP",
          trap("MTU_MISMATCH"), apply=lambda case, lab: pmtu_narrow(case, lab, False),
          shape=with_parts(routers=2), truth=False),
    Fault("jumbo_client", "path", "fault",
          "the client's eth0 has MTU 9000 on a 1500-byte LAN: its full-size frames are "
          "dropped by the router's port, TCP works (the server's MSS)",
          _truthless_degraded("MTU_MISMATCH", "PMTU_BLACKHOLE"),
          apply=lambda case, lab: lab.ip("client", "link", "set", "eth0", "mtu", "9000"),
          truth=False),
    Fault("ipsec_policy_without_sa", "ipsec", "fault",
          "an IPsec tunnel policy covers the server's subnet, with no security association",
          to_target({"IPSEC_NO_SA"}), apply=_ipsec_no_sa, families=each_family),
    Fault("ipsec_block_dns", "ipsec", "fault",
          "an IPsec policy with action block covers the name servers' subnet",
          to_dns({"IPSEC_POLICY_BLOCK"}), apply=_ipsec_block_dns, families=each_family,
          named_share=0.9),
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


# The fixed seed set CI and `make campaign` run: every entry once, and at least 60 cases.
CI_SEEDS = range(1, 1 + max(60, len(CATALOGUE)))
