"""What a case is and the flow model: :class:`Target`, :class:`Expectation`, :class:`Fault` (one
catalogue entry), :class:`Case`, and :func:`flow` with the expectations built on it (``local``,
``beyond``, ``to_dns``, ``to_target``, ``trap``, ``unless_failover``); the constants every
part of the catalogue shares.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional, Sequence

from netcheck.lab.compose import DNS, SERVER, ComposedLab, Parts, Services

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
