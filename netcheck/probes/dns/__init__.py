"""Name resolution, measured: each configured server asked directly, the hosts file read.

The system resolver hides why a name fails; asking each server itself (as ``dig @server``
does) tells a dead server from a REFUSED, a SERVFAIL and a name that does not exist.
A local stub (systemd-resolved's 127.0.0.53, a dnsmasq or unbound on 127.0.0.1) is asked,
and so are the upstream servers it forwards to, where the host says which they are
(``/run/systemd/resolve/resolv.conf``, ``resolvectl``, dnsmasq's and unbound's
configuration): a dead stub and a dead upstream have different fixes. What can be lost is
retried: every query is sent again every few hundred milliseconds until it is answered or
its time is up, and the sends are counted. nsswitch.conf's ``hosts:`` line decides whether
DNS is asked at all, and whether before or after the hosts file.

The package, by concern: ``resolvconf`` (what resolv.conf says, and the upstreams a local
stub forwards to: the files read live there, so that is where a test points them
elsewhere), ``hosts`` (nsswitch.conf's ``hosts:`` line, the hosts file), ``exchange`` (one
question to one server, sent again until answered: :func:`query`). Here: the resolution as
the system would make it (:func:`resolve_like_system`, :class:`Resolution`), and every name
importable from ``netcheck.probes.dns`` as before the split.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from typing import Optional

from netcheck.lazy import asyncio
from netcheck.probes.dns.exchange import (
    MIN_INTERVAL,
    RETRY_INTERVAL,
    DnsAnswer,
    IcmpError,
    _ttl,
    query,
)
from netcheck.probes.dns.hosts import (
    DNS_SOURCES,
    MAX_HOSTS_BYTES,
    NSSWITCH,
    NssHosts,
    hosts_lookup,
    parse_nsswitch,
)
from netcheck.probes.dns.resolvconf import (
    DNSMASQ_CONF,
    DNSMASQ_DIR,
    GLIBC_ATTEMPTS,
    GLIBC_MAX_ATTEMPTS,
    GLIBC_MAX_TIMEOUT,
    GLIBC_TIMEOUT,
    MAX_FILE_BYTES,
    RESOLVED_UPSTREAMS,
    STUB_ADDRESSES,
    UNBOUND_CONF,
    ResolverConfig,
    _is_loopback,
    _listener_upstreams,
    _socket_owner,
    _udp_inode,
    find_upstreams,
    parse_resolv_conf,
)

# Every public name the module had before it became a package.
__all__ = [
    "DNSMASQ_CONF", "DNSMASQ_DIR", "DNS_SOURCES", "DnsAnswer", "GLIBC_ATTEMPTS",
    "GLIBC_MAX_ATTEMPTS", "GLIBC_MAX_TIMEOUT", "GLIBC_TIMEOUT", "IcmpError", "MAX_FILE_BYTES",
    "MAX_HOSTS_BYTES", "MIN_INTERVAL", "NSSWITCH", "NssHosts", "RESOLVED_UPSTREAMS",
    "RETRY_INTERVAL", "Resolution", "ResolverConfig", "STUB_ADDRESSES", "UNBOUND_CONF",
    "find_upstreams", "hosts_lookup", "parse_nsswitch", "parse_resolv_conf", "query",
    "resolve_like_system", "retry_interval",
    # private, reached from outside (the tests; fastprobe's test reads _ttl)
    "_candidates", "_listener_upstreams", "_settle", "_socket_owner", "_ttl", "_udp_inode",
]


@dataclass
class Resolution:
    """How the target name resolved, the way the system would resolve it."""

    name: str
    config: ResolverConfig
    hosts_addresses: list[str] = field(default_factory=list)
    answers: list[DnsAnswer] = field(default_factory=list)
    dns_addresses: list[str] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)  # what a connect() would use
    source: str = "none"  # hosts | dns | none
    duration_ms: float = 0.0  # time until the answer that settled it
    fqdn: Optional[str] = None
    tried: list[str] = field(default_factory=list)  # the names asked, search list applied
    nss: Optional[NssHosts] = None
    upstream_answers: list[DnsAnswer] = field(default_factory=list)  # the stub's upstreams

    @property
    def servers(self) -> list[str]:
        return self.config.nameservers

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name, "fqdn": self.fqdn, "source": self.source,
            "addresses": self.addresses, "hosts_file": self.hosts_addresses,
            "dns": self.dns_addresses, "nameservers": self.config.nameservers,
            "upstreams": self.config.upstreams, "search": self.config.search,
            "answers": [a.to_json() for a in self.answers],
            "upstream_answers": [a.to_json() for a in self.upstream_answers],
            "tried": self.tried, "nsswitch": self.nss.to_json() if self.nss else None,
            "duration_ms": round(self.duration_ms, 1),
        }


def _candidates(name: str, cfg: ResolverConfig) -> list[str]:
    """The names the resolver tries, in its order (resolv.conf's ndots and search)."""
    if name.endswith("."):
        return [name]
    searched = [f"{name}.{dom}" for dom in cfg.search if dom]
    if name.count(".") >= cfg.ndots:
        return [name, *searched]
    return [*searched, name]


def retry_interval(timeout: float, cfg: ResolverConfig) -> float:
    """Seconds between two sends of one question: at least resolv.conf's ``attempts``
    sends fit in ``timeout``, and never fewer than one every RETRY_INTERVAL."""
    return max(MIN_INTERVAL, min(RETRY_INTERVAL, timeout / max(1, cfg.attempts)))


async def resolve_like_system(name: str, families: tuple[int, ...], resolv_conf: str,
                              hosts_file: str, timeout: float,
                              nsswitch: str = NSSWITCH) -> Resolution:
    """Resolve ``name`` as getaddrinfo() would: nsswitch's order of the hosts file and DNS,
    resolv.conf's servers, search list and ndots.

    Every configured server is asked at once, and every question is sent again until it is
    answered (see :func:`query`), so one dead server costs one timeout, not one per server,
    and one lost datagram costs nothing; the first server that answers settles it, as the
    system resolver would. Behind a local stub, its upstream servers are asked the first
    name too, so a broken stub is told from a broken upstream.
    """
    start = time.monotonic()
    cfg = parse_resolv_conf(resolv_conf)
    res = Resolution(name=name, config=cfg, nss=parse_nsswitch(nsswitch))
    if "files" in res.nss.sources:  # type: ignore[union-attr]  # (set just above)
        res.hosts_addresses = hosts_lookup(hosts_file, name)
    rdtypes = [t for fam, t in ((socket.AF_INET, "A"), (socket.AF_INET6, "AAAA"))
               if fam in families]
    servers = cfg.nameservers[:3]  # glibc uses at most three
    interval = retry_interval(timeout, cfg)
    nss = res.nss
    assert nss is not None
    # DNS is asked even when the hosts file has the name first: the hosts-file check
    # compares the two.
    upstream_task = None
    for i, candidate in enumerate(_candidates(name, cfg) if servers and nss.asks_dns(name)
                                  else []):
        res.tried.append(candidate)
        if i == 0 and cfg.stub is not None and cfg.upstreams:
            upstream_task = asyncio.ensure_future(asyncio.gather(
                *(query(u, candidate, rdtypes[0], timeout, interval) for u in cfg.upstreams)))
        batch = await asyncio.gather(*(query(s, candidate, t, timeout, interval,
                                             same_id=_is_loopback(s))
                                       for s in servers for t in rdtypes))
        res.answers.extend(batch)
        settled = _settle(batch, servers)
        if settled is None:
            if not any(a.answered for a in batch):
                break  # no server answers at all: other search names would only wait too
            if any(_partial([a for a in batch if a.server == s]) for s in servers):
                break  # a lost question: whether this name exists is not known yet
            continue
        res.fqdn = candidate
        res.dns_addresses = settled
        res.duration_ms = max((a.rtt_ms or 0) for a in batch
                              if a.server == _first_answering(batch, servers))
        break
    else:
        res.duration_ms = (time.monotonic() - start) * 1000
    if upstream_task is not None:
        res.upstream_answers = list(await upstream_task)
    order = ["hosts", "dns"] if nss.files_first else ["dns", "hosts"]
    for source in order:
        found = res.hosts_addresses if source == "hosts" else res.dns_addresses
        if found:
            res.addresses = [a for a in found if _family_ok(a, families)]
            res.source = source
            break
    return res


def _partial(answers: list[DnsAnswer]) -> bool:
    """One server's answers to one name: empty (NOERROR, no address) beside a question it
    left unanswered (the A question lost, the empty AAAA answer back): nothing settled."""
    return (any(a.rcode == "NOERROR" for a in answers) and not any(a.addresses for a in answers)
            and any(not a.answered for a in answers))


def _first_answering(batch: list[DnsAnswer], servers: list[str]) -> Optional[str]:
    for server in servers:
        mine = [a for a in batch if a.server == server]
        if any(a.rcode == "NOERROR" for a in mine) and not _partial(mine):
            return server
    return None


def _settle(batch: list[DnsAnswer], servers: list[str]) -> Optional[list[str]]:
    """Addresses from the first server that answered NOERROR (the name exists), else None."""
    server = _first_answering(batch, servers)
    if server is None:
        return None
    found: list[str] = []
    for a in batch:
        if a.server == server:
            found.extend(x for x in a.addresses if x not in found)
    return found


def _family_ok(address: str, families: tuple[int, ...]) -> bool:
    fam = socket.AF_INET6 if ":" in address else socket.AF_INET
    return fam in families
