"""The network a case is drawn on: its parts at random (:func:`random_parts`, every draw in a
fixed order), kept consistent (:func:`normalise`), the shapes an entry forces on them and the
families a per-family entry may act on.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any, Callable, Sequence

from netcheck.lab.compose import Parts
from netcheck.lab.faults.model import ALL


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
