"""The campaign's catalogue: what a case is, the flow model, the generator and the faults.

A case (:class:`Case`) is drawn from an integer *seed*: the seed picks one entry of
:data:`CATALOGUE` (``(seed - 1) % len``, so seeds 1..len cover every entry once), then — from a
random generator seeded with the seed — the network's parts, the family the fault acts on and
the target. Each entry (:class:`Fault`) says how it breaks the network (``apply``) and what a
senior network engineer diagnosing that host would conclude (``expect``); most say which path
of which family they break, and :func:`flow` turns that into the verdict for the case's flow.

Seeds are stable for a given commit: new entries go at the end of the catalogue (the end of
:mod:`netcheck.lab.faults.appended`). Running and grading the cases is
:mod:`netcheck.lab.campaign`'s job.

The package, by concern: ``model`` (Target, Expectation, Fault, Case, the flow model and the
constants), ``shapes`` (the network drawn at random, the shapes and families an entry asks
for), ``helpers`` (what the entries' lambdas call), and the entries themselves in the
catalogue's order, grouped by class: ``host`` (link, VPN, addresses), ``routes`` (routes and
the gateway), ``dns``, ``services`` (the service and the firewalls), ``path`` (loss, MTU,
IPsec), ``appended`` (everything added since, in order). Here: :data:`CATALOGUE` (those lists
concatenated, in that order), :func:`generate` and :data:`CI_SEEDS`, and every name importable
from ``netcheck.lab.faults`` as before the split.
"""

from __future__ import annotations

import random

from netcheck.lab.compose import SERVER
from netcheck.lab.faults.appended import APPENDED_FAULTS
from netcheck.lab.faults.dns import DNS_FAULTS
from netcheck.lab.faults.helpers import (
    EXPIRED_LEASE,
    chain,
    client_addr,
    default,
    each,
    fam_flag,
    full_tunnel,
    gw,
    nfproto,
    plen,
    pmtu_narrow,
    port_rule,
    resolv,
    set_services,
)
from netcheck.lab.faults.host import HOST_FAULTS
from netcheck.lab.faults.model import (
    ALL,
    BROKEN,
    DEAD_MAC,
    DEADLINE_SLACK,
    DEFAULT_DEADLINE,
    DEGRADED,
    FAMILY_NAME,
    GENERATOR,
    NAME,
    NOT_OK,
    OK,
    OK_VERDICT,
    TABLE,
    Broken,
    Case,
    Expectation,
    Fault,
    Target,
    beyond,
    flow,
    local,
    to_dns,
    to_target,
    trap,
    unless_failover,
)
from netcheck.lab.faults.path import PATH_FAULTS
from netcheck.lab.faults.routes import ROUTE_FAULTS
from netcheck.lab.faults.services import SERVICE_FAULTS
from netcheck.lab.faults.shapes import (
    each_family,
    each_family_or_all,
    needing,
    normalise,
    primary_only_for_v6,
    random_parts,
    single_family,
    with_parts,
)

# Every public name the module had before it became a package.
__all__ = [
    "ALL", "BROKEN", "Broken", "CATALOGUE", "CI_SEEDS", "FOUND_SEEDS", "Case", "DEADLINE_SLACK",
    "DEAD_MAC",
    "DEFAULT_DEADLINE", "DEGRADED", "EXPIRED_LEASE", "Expectation", "FAMILY_NAME", "Fault",
    "GENERATOR", "NAME", "NOT_OK", "OK", "OK_VERDICT", "TABLE", "Target", "beyond", "chain",
    "client_addr", "default", "each", "each_family", "each_family_or_all", "fam_flag", "flow",
    "full_tunnel", "generate", "gw", "local", "needing", "nfproto", "normalise", "plen",
    "pmtu_narrow", "port_rule", "primary_only_for_v6", "random_parts", "resolv", "set_services",
    "single_family", "to_dns", "to_target", "trap", "unless_failover", "with_parts",
]

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


# -- the catalogue -------------------------------------------------------------------------------
# Sources: field reports (issue 10), network-doctor's simulation scenarios and hunt operators
# (preferred-path failure, missing subnet route, wrong default route, per-family drops, DNS
# timeouts at the boundary, TCP reset), ChromeOS network diagnostics routines (gateway can be
# pinged, DNS resolver present / malformed name servers, HTTP firewall, LAN connectivity).
# Append only: a seed names the entry at (seed - 1) % len(CATALOGUE).
CATALOGUE: list[Fault] = [*HOST_FAULTS, *ROUTE_FAULTS, *DNS_FAULTS, *SERVICE_FAULTS,
                          *PATH_FAULTS, *APPENDED_FAULTS]


# The fixed seed set CI and `make campaign` run: every entry once, and at least 60 cases.
CI_SEEDS = range(1, 1 + max(60, len(CATALOGUE)))

# Cases that wider campaigns (``make campaign SEED=... N=...``) found failing, with the
# catalogue entry each seed names: CI runs them beside the fixed set so that what was fixed
# stays fixed. A seed names its entry by the catalogue's length: one appended moves them all,
# and the test says so instead of running other cases.
FOUND_SEEDS: tuple[tuple[int, str], ...] = (
    # A local stub's REFUSED taken for the name servers' answer: the policy that blocks its
    # upstreams went unseen (the stub's failure was reported instead).
    (7024, "ipsec_block_dns"),
)
