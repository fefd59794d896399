"""Name resolution, measured: each configured server asked directly, the hosts file read.

The system resolver hides why a name fails; asking each server itself (as ``dig @server``
does) tells a dead server from a REFUSED, a SERVFAIL and a name that does not exist.
systemd-resolved's stub (127.0.0.53) is looked through to its real upstream servers.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import time
from dataclasses import dataclass, field
from typing import Optional

from netcheck.lazy import asyncio

STUB_ADDRESSES = ("127.0.0.53", "127.0.0.54")
RESOLVED_UPSTREAMS = "/run/systemd/resolve/resolv.conf"
MAX_FILE_BYTES = 1 << 20  # a resolv.conf or hosts file larger than this is not a real one


@dataclass
class ResolverConfig:
    """What resolv.conf says."""

    path: str
    nameservers: list[str] = field(default_factory=list)
    search: list[str] = field(default_factory=list)
    ndots: int = 1
    upstreams: list[str] = field(default_factory=list)  # behind systemd-resolved's stub
    error: Optional[str] = None

    @property
    def uses_stub(self) -> bool:
        return any(ns in STUB_ADDRESSES for ns in self.nameservers)


@dataclass
class DnsAnswer:
    """One server's answer to one question."""

    server: str
    qname: str
    rdtype: str
    rcode: Optional[str] = None  # NOERROR, NXDOMAIN, SERVFAIL, REFUSED, ... or None
    addresses: list[str] = field(default_factory=list)
    cnames: list[list[str]] = field(default_factory=list)  # [[alias, canonical], ...]
    rtt_ms: Optional[float] = None
    error: Optional[str] = None  # timeout | unreachable | rejected | network | malformed

    @property
    def answered(self) -> bool:
        return self.rcode is not None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"server": self.server, "qname": self.qname, "type": self.rdtype}
        if self.rcode is not None:
            out["rcode"] = self.rcode
            out["answers"] = self.addresses
        if self.cnames:
            out["cname_chain"] = self.cnames
        if self.rtt_ms is not None:
            out["rtt_ms"] = round(self.rtt_ms, 2)
        if self.error:
            out["error"] = self.error
        return out


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
            "duration_ms": round(self.duration_ms, 1),
        }


def _read_small(path: str) -> str:
    with open(path, "rb") as fh:
        data = fh.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise OSError(errno.EFBIG, f"{path} is larger than {MAX_FILE_BYTES} bytes")
    return data.decode("utf-8", errors="replace")


def _valid_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.split("%")[0])
        return True
    except ValueError:
        return False


def parse_resolv_conf(path: str) -> ResolverConfig:
    """Read resolv.conf (and systemd-resolved's upstream list when the stub is in use)."""
    cfg = ResolverConfig(path=path)
    try:
        text = _read_small(path)
    except OSError as exc:
        cfg.error = exc.strerror or str(exc)
        return cfg
    for line in text.splitlines():
        words = line.split("#")[0].split(";")[0].split()
        if not words:
            continue
        if words[0] == "nameserver" and len(words) > 1 and _valid_ip(words[1]):
            cfg.nameservers.append(words[1])
        elif words[0] in ("search", "domain") and len(words) > 1:
            cfg.search = [w.rstrip(".") for w in words[1:7]]
        elif words[0] == "options":
            for opt in words[1:]:
                if opt.startswith("ndots:") and opt[6:].isdigit():
                    cfg.ndots = min(int(opt[6:]), 15)
    if cfg.uses_stub:
        try:
            upstream = parse_resolv_conf(RESOLVED_UPSTREAMS) if path != RESOLVED_UPSTREAMS else None
        except RecursionError:
            upstream = None
        if upstream is not None:
            cfg.upstreams = [ns for ns in upstream.nameservers if ns not in STUB_ADDRESSES]
    return cfg


MAX_HOSTS_BYTES = 256 << 20  # block lists reach tens of megabytes; stop well after


def hosts_lookup(path: str, name: str) -> list[str]:
    """Addresses /etc/hosts gives for a name (case-insensitive), in file order.

    Read in chunks and searched with ``str.find``, so a block-list hosts file of many
    megabytes costs milliseconds, not a Python loop over every line.
    """
    wanted = name.lower().rstrip(".")
    found: list[str] = []
    carry = ""
    read = 0
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            while read < MAX_HOSTS_BYTES:
                chunk = fh.read(1 << 20)
                read += len(chunk)
                text = carry + chunk
                cut = text.rfind("\n") if chunk else len(text)
                block, carry = text[:cut + 1], text[cut + 1:]
                low = block.lower()
                pos = low.find(wanted)
                while pos >= 0:
                    start = low.rfind("\n", 0, pos) + 1
                    end = low.find("\n", pos)
                    end = len(low) if end < 0 else end
                    found += _hosts_line(block[start:end], wanted, found)
                    pos = low.find(wanted, end)
                if not chunk:
                    break
    except OSError:
        return []
    return found


def _hosts_line(line: str, wanted: str, found: list[str]) -> list[str]:
    words = line.split("#")[0].split()
    if len(words) >= 2 and wanted in (w.lower().rstrip(".") for w in words[1:]):
        if _valid_ip(words[0]) and words[0] not in found:
            return [words[0]]
    return []


async def query(server: str, qname: str, rdtype: str, timeout: float) -> DnsAnswer:
    """Ask one server one question, directly (like ``dig @server qname rdtype``)."""
    import dns.asyncquery
    import dns.exception
    import dns.flags
    import dns.message
    import dns.rcode
    import dns.rdatatype

    answer = DnsAnswer(server, qname, rdtype)
    msg = dns.message.make_query(qname, rdtype)
    msg.flags |= dns.flags.RD
    start = time.monotonic()
    try:
        wire = await _udp_exchange(server, msg.to_wire(), msg.id, timeout)
        response = dns.message.from_wire(wire)
        if response.flags & dns.flags.TC:  # truncated: ask again over TCP, as resolvers do
            left = max(0.05, timeout - (time.monotonic() - start))
            response = await dns.asyncquery.tcp(msg, server.split("%")[0], timeout=left)
    except (dns.exception.Timeout, asyncio.TimeoutError):
        answer.error = "timeout"
        return answer
    except IcmpError as exc:
        answer.error = exc.describe()
        answer.rtt_ms = (time.monotonic() - start) * 1000
        return answer
    except OSError as exc:
        answer.error = {errno.ENETUNREACH: "network unreachable",
                        errno.EHOSTUNREACH: "host unreachable",
                        errno.EPERM: "blocked locally", errno.EACCES: "blocked locally",
                        }.get(exc.errno or 0, f"error: {exc.strerror or exc}")
        answer.rtt_ms = (time.monotonic() - start) * 1000
        return answer
    except (dns.exception.DNSException, ValueError, EOFError) as exc:
        answer.error = f"malformed: {type(exc).__name__}"
        return answer
    answer.rtt_ms = (time.monotonic() - start) * 1000
    answer.rcode = dns.rcode.to_text(response.rcode())
    want = dns.rdatatype.from_text(rdtype)
    for rrset in response.answer:
        if rrset.rdtype == dns.rdatatype.CNAME:
            for rr in rrset:
                answer.cnames.append([rrset.name.to_text().rstrip("."),
                                      rr.target.to_text().rstrip(".")])
        elif rrset.rdtype == want:
            answer.addresses.extend(rr.to_text() for rr in rrset)
    return answer


class IcmpError(Exception):
    """An ICMP error came back instead of an answer."""

    def __init__(self, kind: int, code: int, sender: Optional[str], v6: bool) -> None:
        super().__init__(kind, code, sender)
        self.kind, self.code, self.sender, self.v6 = kind, code, sender, v6

    def describe(self) -> str:
        from netcheck.probes.icmp import ICMP6_NAMES, ICMP_NAMES

        table = ICMP6_NAMES if self.v6 else ICMP_NAMES
        name = table.get((self.kind, self.code), f"ICMP type {self.kind} code {self.code}")
        if name == "port unreachable":
            name = "rejected (port unreachable: nothing listens on 53)"
        return f"{name} from {self.sender}" if self.sender else name


async def _udp_exchange(server: str, wire: bytes, msg_id: int, timeout: float) -> bytes:
    """One UDP query on a connected socket; an ICMP error is raised as :class:`IcmpError`.

    A connected socket with ``IP_RECVERR`` sees the ICMP error that tells a rejected query
    (port unreachable) from one lost on the way (host unreachable from a router).
    """
    from netcheck.probes.icmp import IP_RECVERR, IPV6_RECVERR, read_errqueue, wait_readable

    host, _, zone = server.partition("%")
    v6 = ":" in host
    family = socket.AF_INET6 if v6 else socket.AF_INET
    loop = asyncio.get_running_loop()
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        if v6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
            sock.connect((host, 53, 0, socket.if_nametoindex(zone) if zone else 0))
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
            sock.connect((host, 53))
        sock.send(wire)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not await wait_readable(loop, sock, left):
                raise asyncio.TimeoutError
            icmp = read_errqueue(sock)
            if icmp is not None:
                raise IcmpError(icmp[0], icmp[1], icmp[2], v6)
            try:
                data = sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                continue
            if len(data) >= 2 and int.from_bytes(data[:2], "big") == msg_id:
                return data


def _candidates(name: str, cfg: ResolverConfig) -> list[str]:
    """The names the resolver tries, in its order (resolv.conf's ndots and search)."""
    if name.endswith("."):
        return [name]
    searched = [f"{name}.{dom}" for dom in cfg.search if dom]
    if name.count(".") >= cfg.ndots:
        return [name, *searched]
    return [*searched, name]


async def resolve_like_system(name: str, families: tuple[int, ...], resolv_conf: str,
                              hosts_file: str, timeout: float) -> Resolution:
    """Resolve ``name``: hosts file first (as nsswitch's usual ``files dns``), then each server.

    Every configured server is asked at once, so one dead server costs one timeout, not one
    per server; the first server that answers settles it, as the system resolver would.
    """
    start = time.monotonic()
    cfg = parse_resolv_conf(resolv_conf)
    res = Resolution(name=name, config=cfg)
    res.hosts_addresses = hosts_lookup(hosts_file, name)
    rdtypes = [t for fam, t in ((socket.AF_INET, "A"), (socket.AF_INET6, "AAAA"))
               if fam in families]
    servers = cfg.nameservers[:3]  # glibc uses at most three
    for candidate in _candidates(name, cfg):
        batch = await asyncio.gather(*(query(s, candidate, t, timeout)
                                       for s in servers for t in rdtypes))
        res.answers.extend(batch)
        settled = _settle(batch, servers)
        if settled is None:
            if not any(a.answered for a in batch):
                break  # no server answers at all: other search names would only wait too
            continue
        res.fqdn = candidate
        res.dns_addresses = settled
        res.duration_ms = max((a.rtt_ms or 0) for a in batch
                              if a.server == _first_answering(batch, servers))
        break
    else:
        res.duration_ms = (time.monotonic() - start) * 1000
    if res.hosts_addresses:
        res.addresses = [a for a in res.hosts_addresses if _family_ok(a, families)]
        res.source = "hosts"
    elif res.dns_addresses:
        res.addresses = [a for a in res.dns_addresses if _family_ok(a, families)]
        res.source = "dns"
    return res


def _first_answering(batch: list[DnsAnswer], servers: list[str]) -> Optional[str]:
    for server in servers:
        if any(a.server == server and a.rcode == "NOERROR" for a in batch):
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
