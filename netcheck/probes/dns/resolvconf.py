"""What resolv.conf says, and the upstream servers a local stub forwards to.

The stub's upstreams are read where the host says which they are: who listens on the
stub's address (a dnsmasq started with its servers on the command line),
systemd-resolved's own list or ``resolvectl dns``, dnsmasq's and unbound's configuration.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from dataclasses import dataclass, field
from typing import Optional

STUB_ADDRESSES = ("127.0.0.53", "127.0.0.54")
RESOLVED_UPSTREAMS = "/run/systemd/resolve/resolv.conf"
DNSMASQ_CONF = "/etc/dnsmasq.conf"
DNSMASQ_DIR = "/etc/dnsmasq.d"
UNBOUND_CONF = "/etc/unbound/unbound.conf"
MAX_FILE_BYTES = 1 << 20  # a resolv.conf or hosts file larger than this is not a real one
MAX_CMDLINE_BYTES = 1 << 16  # another process's command line is read this far at most
# glibc's defaults and limits for `options attempts:N timeout:N` (resolv.conf(5)).
GLIBC_ATTEMPTS, GLIBC_MAX_ATTEMPTS = 2, 5
GLIBC_TIMEOUT, GLIBC_MAX_TIMEOUT = 5, 30


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
        listener = _stub_listener(cfg.stub) or _dnsmasq_listening_on(cfg.stub)
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


def _dnsmasq_listening_on(stub: str, proc: str = "/proc") -> Optional[tuple[int, list[str]]]:
    """Without the right to see who holds the stub's socket (not root): the dnsmasq whose
    command line says it listens on the stub's address (``--listen-address``, ``-a``),
    (PID, command line). Another network namespace's dnsmasq may say the same address: when
    such command lines give different upstreams, none (not knowing beats a wrong server)."""
    stub = stub.split("%")[0]
    found: list[tuple[int, list[str]]] = []
    try:
        entries = [e.name for e in os.scandir(proc) if e.name.isdigit()]
    except OSError:
        return None
    for pid in entries:
        argv = _argv(int(pid), proc)
        if argv and os.path.basename(argv[0]) == "dnsmasq" and stub in _listen_addresses(argv):
            found.append((int(pid), argv))
    upstreams = {tuple(_listener_upstreams(pid, argv)[0]) for pid, argv in found}
    return found[0] if len(upstreams) == 1 else None


def _listen_addresses(argv: list[str]) -> list[str]:
    """The addresses a dnsmasq command line tells it to listen on."""
    out: list[str] = []
    for i, arg in enumerate(argv[1:], 1):
        if arg.startswith("--listen-address="):
            out += arg.partition("=")[2].split(",")
        elif arg in ("-a", "--listen-address") and i + 1 < len(argv):
            out += argv[i + 1].split(",")
        elif arg.startswith("-a") and len(arg) > 2:
            out += arg[2:].split(",")
    return [a.strip() for a in out]


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
    argv = _argv(pid)
    return (pid, argv) if argv else None


def _argv(pid: int, proc: str = "/proc") -> list[str]:
    """A process's command line (read this far at most; empty when it cannot be read)."""
    try:
        with open(f"{proc}/{pid}/cmdline", "rb") as fh:
            raw = fh.read(MAX_CMDLINE_BYTES)
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


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
