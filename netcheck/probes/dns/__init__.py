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
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Optional

from netcheck.lazy import asyncio

STUB_ADDRESSES = ("127.0.0.53", "127.0.0.54")
RESOLVED_UPSTREAMS = "/run/systemd/resolve/resolv.conf"
NSSWITCH = "/etc/nsswitch.conf"
DNSMASQ_CONF = "/etc/dnsmasq.conf"
DNSMASQ_DIR = "/etc/dnsmasq.d"
UNBOUND_CONF = "/etc/unbound/unbound.conf"
MAX_FILE_BYTES = 1 << 20  # a resolv.conf or hosts file larger than this is not a real one
# glibc's defaults and limits for `options attempts:N timeout:N` (resolv.conf(5)).
GLIBC_ATTEMPTS, GLIBC_MAX_ATTEMPTS = 2, 5
GLIBC_TIMEOUT, GLIBC_MAX_TIMEOUT = 5, 30
# netcheck's own retries: a query is sent again every RETRY_INTERVAL seconds (never more
# often than MIN_INTERVAL) until it is answered or its time is up, so one lost datagram
# costs a fraction of a second instead of a false "unreachable".
RETRY_INTERVAL = 0.2
MIN_INTERVAL = 0.1


@dataclass
class ResolverConfig:
    """What resolv.conf says."""

    path: str
    nameservers: list[str] = field(default_factory=list)
    search: list[str] = field(default_factory=list)
    ndots: int = 1
    attempts: int = GLIBC_ATTEMPTS  # options attempts:N (per server)
    timeout: int = GLIBC_TIMEOUT  # options timeout:N (seconds per attempt)
    rotate: bool = False  # options rotate
    upstreams: list[str] = field(default_factory=list)  # behind a local stub
    upstream_source: Optional[str] = None  # where the upstreams were read
    stub_program: Optional[str] = None  # who listens on the stub's address (dnsmasq...)
    error: Optional[str] = None

    @property
    def uses_stub(self) -> bool:
        """systemd-resolved's stub (127.0.0.53 / 127.0.0.54) is the name server."""
        return any(ns in STUB_ADDRESSES for ns in self.nameservers)

    @property
    def stub(self) -> Optional[str]:
        """The first name server on loopback: a local stub that forwards to upstreams."""
        return next((ns for ns in self.nameservers if _is_loopback(ns)), None)

    @property
    def stub_kind(self) -> Optional[str]:
        """``systemd-resolved``, ``local`` (dnsmasq, unbound...) or None (no stub)."""
        if self.stub is None:
            return None
        if self.stub_program is not None:  # who really listens there, whatever the address
            return ("systemd-resolved" if self.stub_program.startswith("systemd-resolve")
                    else "local")
        return "systemd-resolved" if self.stub in STUB_ADDRESSES else "local"

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "file": self.path, "nameservers": self.nameservers, "search": self.search,
            "ndots": self.ndots, "attempts": self.attempts, "timeout": self.timeout}
        if self.rotate:
            out["rotate"] = True
        if self.stub is not None:
            out.update(stub=self.stub, stub_kind=self.stub_kind, upstreams=self.upstreams,
                       upstream_source=self.upstream_source)
        return out


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
    sent: int = 1  # datagrams sent for this question (netcheck's retries)
    attempt: Optional[int] = None  # which of them was answered (1 = the first)
    # How long the answer may be cached (RFC 1035 TTL; for an answer without the type asked,
    # RFC 2308's negative TTL from the SOA); None: the answer says nothing about it.
    ttl: Optional[int] = None

    @property
    def answered(self) -> bool:
        return self.rcode is not None

    @property
    def retried(self) -> bool:
        """The answer came only after earlier datagrams went unanswered."""
        return (self.attempt or 1) > 1

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
        if self.sent > 1:
            out["sent"] = self.sent
        if self.attempt and self.attempt > 1:
            out["answered_attempt"] = self.attempt
        return out


@dataclass
class NssHosts:
    """The ``hosts:`` line of nsswitch.conf: the sources, in order, and their actions."""

    path: str
    sources: list[str] = field(default_factory=lambda: ["files", "dns"])
    # source -> the [STATUS=return] statuses after it, e.g. {"mdns4_minimal": ["NOTFOUND"]}
    returns: dict[str, list[str]] = field(default_factory=dict)
    line: Optional[str] = None  # as written; None when the file or the line is missing
    error: Optional[str] = None

    def asks_dns(self, name: str) -> bool:
        """Does getaddrinfo() ever ask a name server for ``name``?"""
        return self.dns_blocker(name) is None

    def dns_blocker(self, name: str) -> Optional[str]:
        """Why DNS is never asked for ``name`` (the source that stops it), or None."""
        for source in self.sources:
            if source in DNS_SOURCES:
                return None
            # mdns*_minimal answers for .local only, and says NOTFOUND for every .local name
            # it cannot find: with [NOTFOUND=return] those never reach DNS.
            if (source.startswith("mdns") and name.rstrip(".").lower().endswith(".local")
                    and "NOTFOUND" in self.returns.get(source, [])):
                return source
        return "no-dns"

    @property
    def files_first(self) -> bool:
        """The hosts file is read before DNS (the usual ``files dns``)."""
        for source in self.sources:
            if source == "files":
                return True
            if source in DNS_SOURCES:
                return False
        return False

    def to_json(self) -> dict[str, object]:
        return {"file": self.path, "hosts": self.line, "sources": self.sources}


DNS_SOURCES = ("dns", "resolve")  # nss-resolve asks systemd-resolved, which asks DNS


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
            _options(cfg, words[1:])
    if cfg.stub is not None and path != RESOLVED_UPSTREAMS:
        listener = _stub_listener(cfg.stub)
        if listener is not None:
            cfg.stub_program = os.path.basename(listener[1][0])
        cfg.upstreams, cfg.upstream_source = find_upstreams(cfg.stub_kind or "local", listener)
    return cfg


def _options(cfg: ResolverConfig, words: list[str]) -> None:
    """``options ndots:N attempts:N timeout:N rotate``, clamped as glibc clamps them."""
    for opt in words:
        key, _, value = opt.partition(":")
        if key == "rotate":
            cfg.rotate = True
        elif not value.isdigit():
            continue
        elif key == "ndots":
            cfg.ndots = min(int(value), 15)
        elif key == "attempts":
            cfg.attempts = max(1, min(int(value), GLIBC_MAX_ATTEMPTS))
        elif key == "timeout":
            cfg.timeout = max(1, min(int(value), GLIBC_MAX_TIMEOUT))


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


def find_upstreams(kind: str, listener: Optional[tuple[int, list[str]]] = None
                   ) -> tuple[list[str], Optional[str]]:
    """The servers a local stub forwards to, and where that was read (None: not found).

    First who really listens on the stub's address (``ss -lunp 'sport = :53'``): a dnsmasq
    started with its servers on the command line says them there. Then by kind:
    systemd-resolved: its own list of upstreams (``/run/systemd/resolve/resolv.conf``), or
    ``resolvectl dns``. A dnsmasq or unbound on loopback: their configuration files.
    """
    if listener is not None:
        found, source = _listener_upstreams(*listener)
        found = [a for a in dict.fromkeys(found) if not _is_loopback(a)]
        if found:
            return found[:3], source
    readers = ([_resolved_upstreams, _resolvectl_upstreams] if kind == "systemd-resolved"
               else [_dnsmasq_upstreams, _unbound_upstreams, _resolved_upstreams])
    for reader in readers:
        found, source = reader()
        found = [a for a in dict.fromkeys(found) if not _is_loopback(a)]
        if found:
            return found[:3], source
    return [], None


def _udp_inode(address: str, port: int = 53) -> Optional[str]:
    """The inode of this namespace's UDP socket bound to address:port (/proc/net/udp[6])."""
    try:
        packed = socket.inet_pton(socket.AF_INET6 if ":" in address else socket.AF_INET,
                                  address)
    except OSError:
        return None
    # The kernel prints the address as 32-bit words in host (little-endian) order.
    words = [packed[i:i + 4][::-1].hex().upper() for i in range(0, len(packed), 4)]
    wanted = f"{''.join(words)}:{port:04X}"
    try:
        text = _read_small("/proc/net/udp6" if ":" in address else "/proc/net/udp")
    except OSError:
        return None
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 9 and fields[1] == wanted:
            return fields[9]
    return None


def _socket_owner(inode: str) -> Optional[int]:
    """The PID of a process holding socket ``inode`` (needs the right to read its fds)."""
    link = f"socket:[{inode}]"
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            for fd in os.scandir(f"/proc/{entry.name}/fd"):
                if os.readlink(fd.path) == link:
                    return int(entry.name)
        except OSError:
            continue
    return None


def _stub_listener(stub: str) -> Optional[tuple[int, list[str]]]:
    """(PID, command line) of the program listening on the stub's address, port 53 (as
    ``ss -lunp`` finds it; None when it cannot be told, e.g. without the right to read
    other processes' descriptors)."""
    inode = _udp_inode(stub.split("%")[0])
    pid = _socket_owner(inode) if inode and inode != "0" else None
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = [a.decode(errors="replace") for a in fh.read(65536).split(b"\0") if a]
    except OSError:
        return None
    return (pid, argv) if argv else None


def _listener_upstreams(pid: int, argv: list[str]) -> tuple[list[str], Optional[str]]:
    """The upstreams a dnsmasq listening on the stub's address was started with: its
    ``--server=``/``-S``, and the files of its ``--conf-file``/``-C`` (``server=`` lines)
    and ``--resolv-file``/``-r`` (``nameserver`` lines)."""
    if os.path.basename(argv[0]) != "dnsmasq":
        return [], None
    found: list[str] = []
    options: list[tuple[str, str]] = []
    for i, arg in enumerate(argv[1:], 1):
        key, eq, value = arg.partition("=")
        if not eq and key in ("-S", "--server", "-C", "--conf-file", "-r", "--resolv-file"):
            value = argv[i + 1] if i + 1 < len(argv) else ""
        elif not eq and len(key) > 2 and key[:2] in ("-S", "-C", "-r"):
            key, value = key[:2], key[2:]
        options.append((key, value))
    for key, value in options:
        if key in ("-S", "--server") and not value.startswith("/"):
            host = value.split("#")[0].split("@")[0].strip()
            if _valid_ip(host):
                found.append(host)
    for key, value in options:
        try:
            if key in ("-C", "--conf-file") and value:
                for line in _read_small(value).splitlines():
                    k, _sep, v = line.split("#", 1)[0].strip().partition("=")
                    host = v.split("#")[0].split("@")[0].strip()
                    if k == "server" and not v.startswith("/") and _valid_ip(host):
                        found.append(host)
            elif key in ("-r", "--resolv-file") and value and not found:
                found += _nameserver_lines(_read_small(value))
        except OSError:
            continue
    return found, f"the command line of dnsmasq (pid {pid})" if found else None


def _resolved_upstreams() -> tuple[list[str], Optional[str]]:
    try:
        text = _read_small(RESOLVED_UPSTREAMS)
    except OSError:
        return [], None
    return _nameserver_lines(text), RESOLVED_UPSTREAMS


def _nameserver_lines(text: str) -> list[str]:
    found = []
    for line in text.splitlines():
        words = line.split("#")[0].split()
        if len(words) > 1 and words[0] == "nameserver" and _valid_ip(words[1]):
            found.append(words[1])
    return found


def _resolvectl_upstreams() -> tuple[list[str], Optional[str]]:
    """``resolvectl dns``: ``Global: 198.18.3.53`` and ``Link 2 (eth0): ...`` lines."""
    import shutil
    import subprocess

    binary = shutil.which("resolvectl")
    if binary is None:
        return [], None
    try:
        proc = subprocess.run([binary, "dns"], capture_output=True, text=True, timeout=1.0,
                              env={"LC_ALL": "C", "SYSTEMD_COLORS": "0"}, check=False)
    except (OSError, subprocess.SubprocessError):
        return [], None
    found = []
    for line in proc.stdout.splitlines()[:64]:
        for word in line.partition(":")[2].split():
            host = word.split("#")[0]
            if _valid_ip(host):
                found.append(host)
    return found, "resolvectl dns"


def _dnsmasq_upstreams() -> tuple[list[str], Optional[str]]:
    """``server=ADDR`` lines of dnsmasq.conf and dnsmasq.d (domain-specific ones left out),
    or the servers of its ``resolv-file`` when it reads one."""
    import glob

    files = [DNSMASQ_CONF, *sorted(glob.glob(f"{DNSMASQ_DIR}/*.conf"))]
    found: list[str] = []
    source = None
    resolv_file: Optional[str] = None
    no_resolv = False
    for path in files[:32]:
        try:
            text = _read_small(path)
        except OSError:
            continue
        source = source or path
        for line in text.splitlines():
            key, _, value = line.split("#", 1)[0].strip().partition("=")
            if key == "server" and not value.startswith("/"):
                host = value.split("#")[0].split("@")[0].strip()
                if _valid_ip(host):
                    found.append(host)
            elif key == "resolv-file" and value:
                resolv_file = value.strip()
            elif key == "no-resolv":
                no_resolv = True
    if not found and not no_resolv and resolv_file:
        try:
            return _nameserver_lines(_read_small(resolv_file)), resolv_file
        except OSError:
            pass
    return found, source


def _unbound_upstreams() -> tuple[list[str], Optional[str]]:
    """``forward-addr:`` lines of unbound.conf (and the files it includes)."""
    import glob

    pending, seen, found = [UNBOUND_CONF], set(), []
    while pending and len(seen) < 32:
        path = pending.pop(0)
        if path in seen:
            continue
        seen.add(path)
        try:
            text = _read_small(path)
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.split("#", 1)[0].strip().partition(":")
            value = value.strip().strip('"')
            if key == "forward-addr":
                host = value.split("@")[0]
                if _valid_ip(host):
                    found.append(host)
            elif key in ("include", "include-toplevel") and value:
                pending += sorted(glob.glob(value))
    return found, UNBOUND_CONF if found else None


def parse_nsswitch(path: str = NSSWITCH) -> NssHosts:
    """The ``hosts:`` line of nsswitch.conf (glibc's default when there is none)."""
    nss = NssHosts(path=path)
    try:
        text = _read_small(path)
    except OSError as exc:
        # glibc without the file: "hosts: dns [!UNAVAIL=return] files".
        nss.error = exc.strerror or str(exc)
        nss.sources = ["dns", "files"]
        return nss
    for line in text.splitlines():
        words = line.split("#")[0].split()
        if not words or words[0] != "hosts:":
            continue
        nss.line = " ".join(words[1:])
        nss.sources, nss.returns = [], {}
        for word in words[1:]:
            if word.startswith("[") and nss.sources:
                for action in word.strip("[]").split():
                    status, _, what = action.partition("=")
                    if what.lower() == "return" and not status.startswith("!"):
                        nss.returns.setdefault(nss.sources[-1], []).append(status.upper())
            elif not word.startswith("["):
                nss.sources.append(word)
    return nss


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


async def query(server: str, qname: str, rdtype: str, timeout: float,
                interval: Optional[float] = None, same_id: bool = False) -> DnsAnswer:
    """Ask one server one question, directly (like ``dig @server qname rdtype``).

    With ``interval`` the question is sent again every ``interval`` seconds (each time with
    a new id) until an answer comes or ``timeout`` is up, like ``dig +tries``: an answer to
    any of the datagrams counts, and its round trip is measured from the one it answers.
    With ``same_id`` (for a stub on this host) the resends keep the id, as the system
    resolver's do: a stub (dnsmasq) takes a new id for another client asking the same
    question and waits for its one forwarded query, but forwards a retry again — one lost
    upstream datagram must not leave it silent until netcheck gives up. The round trip is
    then measured from the first send (what a client waits).
    """
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
    exchange = _UdpExchange(server, msg, timeout, interval, same_id)
    try:
        wire, answer.rtt_ms = await exchange.run()
        response = dns.message.from_wire(wire)
        if response.flags & dns.flags.TC:  # truncated: ask again over TCP, as resolvers do
            left = max(0.05, timeout - (time.monotonic() - start))
            msg.id = response.id
            response = await dns.asyncquery.tcp(msg, server.split("%")[0], timeout=left)
    except (dns.exception.Timeout, asyncio.TimeoutError):
        answer.error = "timeout"
        return exchange.counted(answer)
    except IcmpError as exc:
        answer.error = exc.describe()
        answer.rtt_ms = (time.monotonic() - start) * 1000
        return exchange.counted(answer)
    except OSError as exc:
        answer.error = {errno.ENETUNREACH: "network unreachable",
                        errno.EHOSTUNREACH: "host unreachable",
                        errno.EPERM: "blocked locally", errno.EACCES: "blocked locally",
                        }.get(exc.errno or 0, f"error: {exc.strerror or exc}")
        answer.rtt_ms = (time.monotonic() - start) * 1000
        return exchange.counted(answer)
    except (dns.exception.DNSException, ValueError, EOFError) as exc:
        answer.error = f"malformed: {type(exc).__name__}"
        return exchange.counted(answer)
    exchange.counted(answer)
    answer.rcode = dns.rcode.to_text(response.rcode())
    want = dns.rdatatype.from_text(rdtype)
    answer.ttl = _ttl(response)
    for rrset in response.answer:
        if rrset.rdtype == dns.rdatatype.CNAME:
            for rr in rrset:
                answer.cnames.append([rrset.name.to_text().rstrip("."),
                                      rr.target.to_text().rstrip(".")])
        elif rrset.rdtype == want:
            answer.addresses.extend(rr.to_text() for rr in rrset)
    return answer


def _ttl(response: object) -> Optional[int]:
    """The smallest TTL of the answer section; with no answer, the SOA's negative TTL
    (RFC 2308: the smaller of the SOA record's own TTL and its MINIMUM field)."""
    import dns.rdatatype

    ttls = [rrset.ttl for rrset in response.answer]  # type: ignore[attr-defined]
    if ttls:
        return min(ttls)
    for rrset in response.authority:  # type: ignore[attr-defined]
        if rrset.rdtype == dns.rdatatype.SOA:
            return min([rrset.ttl, *(rr.minimum for rr in rrset)])
    return None


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


class _UdpExchange:
    """One question over UDP on a connected socket, sent again until answered.

    A connected socket with ``IP_RECVERR`` sees the ICMP error that tells a rejected query
    (port unreachable) from one lost on the way (host unreachable from a router); an ICMP
    error is raised as :class:`IcmpError`.
    """

    def __init__(self, server: str, msg: object, timeout: float,
                 interval: Optional[float], same_id: bool = False) -> None:
        self.server, self.msg, self.timeout = server, msg, timeout
        self.same_id = same_id  # resends are retries of one query (the round trip: from the first)
        self.interval = max(MIN_INTERVAL, interval) if interval else None
        self.sent_at: dict[int, float] = {}  # message id -> when it was sent
        self.order: list[int] = []
        self.answered_id: Optional[int] = None

    def counted(self, answer: DnsAnswer) -> DnsAnswer:
        answer.sent = max(1, len(self.order))
        if self.answered_id is not None:
            answer.attempt = self.order.index(self.answered_id) + 1
        return answer

    def _send(self, sock: socket.socket) -> None:
        msg = self.msg
        if self.order and not self.same_id:
            msg.id = int.from_bytes(os.urandom(2), "big")  # type: ignore[attr-defined]
        self.sent_at.setdefault(msg.id, time.monotonic())  # type: ignore[attr-defined]
        self.order.append(msg.id)  # type: ignore[attr-defined]
        sock.send(msg.to_wire())  # type: ignore[attr-defined]

    async def run(self) -> tuple[bytes, float]:
        """The first answer to any of the datagrams, and its round trip in ms."""
        from netcheck.probes.icmp import IP_RECVERR, IPV6_RECVERR, read_errqueue, wait_readable

        host, _, zone = self.server.partition("%")
        v6 = ":" in host
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            if v6:
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
                sock.connect((host, 53, 0, socket.if_nametoindex(zone) if zone else 0))
            else:
                sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
                sock.connect((host, 53))
            start = time.monotonic()
            deadline = start + self.timeout
            self._send(sock)
            next_send = start + self.interval if self.interval else deadline
            while True:
                now = time.monotonic()
                if now >= deadline:
                    raise asyncio.TimeoutError
                if now >= next_send:
                    try:
                        self._send(sock)
                    except OSError:
                        pass  # a send error now is the ICMP error of an earlier datagram
                    next_send = now + (self.interval or self.timeout)
                    continue
                if not await wait_readable(loop, sock, min(deadline, next_send) - now):
                    continue
                icmp = read_errqueue(sock)
                if icmp is not None:
                    raise IcmpError(icmp[0], icmp[1], icmp[2], v6)
                try:
                    data = sock.recv(65535)
                except (BlockingIOError, InterruptedError):
                    continue
                msg_id = int.from_bytes(data[:2], "big") if len(data) >= 2 else -1
                if msg_id in self.sent_at:
                    self.answered_id = msg_id
                    return data, (time.monotonic() - self.sent_at[msg_id]) * 1000


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
