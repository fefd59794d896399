"""What ``ss -tlnpe`` shows for one port: every listening socket, its address, its owners.

The table comes from the kernel's sock_diag netlink interface (what ``ss`` itself uses): it is
this network namespace's own, needs no root, and carries what /proc/net/tcp does not — whether
an IPv6 wildcard socket is IPv6-only or dual-stack (``v6only``, set per socket by the
program), the accept queue and its limit (``Recv-Q``/``Send-Q``), and a device the socket is
bound to. Where sock_diag is missing the table is read from /proc/net/{tcp,tcp6,udp,udp6}
and ``v6only`` is unknown.

Owners: a socket's inode appears as ``socket:[INODE]`` among the file descriptors of the
processes holding it (/proc/PID/fd), as ``ss -p`` finds them; every holder is listed (an
nginx master and its workers share one listening socket). Without root only this user's
processes can be looked into, and the result says so. The walk is bounded in time.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
INET_DIAG_SKV6ONLY = 11
TCP_LISTEN, TCP_CLOSE = 10, 7
_NLMSG_HDR = struct.Struct("=IHHII")
_DIAG_MSG = struct.Struct("=BBBBHH16s16sI8sIIIII")  # struct inet_diag_msg (72 bytes)
OWNER_BUDGET_S = 1.5  # walking every process's descriptors: a bound, not a target
MAX_OWNERS = 32
# A program that holds a port on behalf of a container: named, with where it forwards to.
CONTAINER_PROXIES = {
    "docker-proxy": "Docker's userland proxy (a container's published port)",
    "rootlessport": "Podman's rootless port forwarder (a container's published port)",
    "rootlesskit": "RootlessKit (rootless Docker) port forwarder",
    "slirp4netns": "slirp4netns (a rootless container's network)",
    "conmon": "Podman's container monitor (a container's published port)",
    "kube-proxy": "Kubernetes kube-proxy (a NodePort service)",
}


@dataclass
class Owner:
    """A process holding a listening socket: ``users:(("nginx",pid=812,fd=6))``."""

    pid: int
    name: str
    fd: int

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "process": self.name, "fd": self.fd}


@dataclass
class Listener:
    """One socket waiting for clients on the port."""

    proto: str  # tcp | udp
    family: int  # 4 | 6
    address: str
    port: int
    inode: int = 0
    uid: Optional[int] = None
    v6only: Optional[bool] = None  # None: not known (no sock_diag)
    recv_q: Optional[int] = None  # TCP: connections waiting for accept()
    send_q: Optional[int] = None  # TCP: the accept queue's limit (listen backlog)
    device: Optional[str] = None  # SO_BINDTODEVICE
    owners: list[Owner] = field(default_factory=list)

    @property
    def wildcard(self) -> bool:
        """Bound to 0.0.0.0 or :: (every address of its family)."""
        return self.address in ("0.0.0.0", "::")

    @property
    def loopback(self) -> bool:
        """Bound to 127.0.0.0/8, ::1 or ::ffff:127.x: only this host can connect."""
        try:
            ip = ipaddress.ip_address(self.address)
        except ValueError:
            return False
        mapped = getattr(ip, "ipv4_mapped", None)
        return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))

    @property
    def dual_stack(self) -> bool:
        """An IPv6 wildcard that takes IPv4 clients too (IPV6_V6ONLY off)."""
        return self.family == 6 and self.address == "::" and self.v6only is False

    @property
    def endpoint(self) -> str:
        """``198.18.2.10:443`` / ``[::]:443``, as ``ss`` writes it."""
        host = f"[{self.address}]" if self.family == 6 else self.address
        return f"{host}:{self.port}"

    @property
    def families_served(self) -> tuple[int, ...]:
        """The address families whose clients this socket accepts."""
        if self.dual_stack:
            return (4, 6)
        return (self.family,)

    @property
    def backlog_full(self) -> bool:
        """More connections wait than the backlog admits: the program stopped accepting."""
        return (self.proto == "tcp" and self.recv_q is not None and self.send_q is not None
                and self.send_q > 0 and self.recv_q > self.send_q)

    def kind(self) -> str:
        """In words: which clients this socket can take (English, for the evidence)."""
        return self._kind(lambda text: text)

    def kind_text(self) -> str:
        """:meth:`kind` in the reader's language, for a summary."""
        from netcheck.i18n import _

        return self._kind(_)

    def _kind(self, say: Callable[[str], str]) -> str:
        from netcheck.i18n import N_

        if self.wildcard and self.family == 4:
            what = say(N_("every IPv4 address"))
        elif self.wildcard and self.dual_stack:
            what = say(N_("every IPv6 and IPv4 address (dual-stack)"))
        elif self.wildcard and self.v6only:
            what = say(N_("every IPv6 address (IPv6 only)"))
        elif self.wildcard:
            what = say(N_("every IPv6 address"))
        elif self.loopback:
            what = say(N_("loopback only"))
        else:
            what = say(N_("this address only"))
        if self.device:
            what += say(N_(", bound to device {device}")).format(device=self.device)
        return what

    def ss_line(self) -> str:
        """The line ``ss -tlnp`` (``-ulnp``) prints for this socket."""
        state = "LISTEN" if self.proto == "tcp" else "UNCONN"
        peer = "[::]:*" if self.family == 6 else "0.0.0.0:*"
        users = ",".join(f'("{o.name}",pid={o.pid},fd={o.fd})' for o in self.owners)
        local = self.endpoint if not self.device else (
            f"{self.endpoint.rsplit(':', 1)[0]}%{self.device}:{self.port}")
        line = (f"{state:<7}{self.recv_q if self.recv_q is not None else 0:<7}"
                f"{self.send_q if self.send_q is not None else 0:<7}{local:<24}{peer:<14}")
        if users:
            line += f"users:({users})"
        if self.v6only and self.family == 6:
            line += " v6only:1"
        return line.rstrip()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"proto": self.proto, "local": self.endpoint,
                               "address": self.address, "port": self.port,
                               "family": f"IPv{self.family}", "serves": self.kind()}
        if self.family == 6 and self.address == "::":
            out["v6only"] = self.v6only
        if self.recv_q is not None:
            out["recv_q"] = self.recv_q
        if self.send_q is not None:
            out["send_q"] = self.send_q
        if self.device:
            out["device"] = self.device
        if self.uid is not None:
            out["uid"] = self.uid
        out["owners"] = [o.to_json() for o in self.owners]
        return out


@dataclass
class ListenTable:
    """Every listening socket of one protocol in this network namespace."""

    proto: str
    listeners: list[Listener] = field(default_factory=list)
    source: str = ""  # sock_diag | /proc/net
    error: Optional[str] = None
    owners_visible: bool = True  # False: other users' processes could not be looked into
    owners_complete: bool = True  # False: the walk stopped at its time bound

    def on_port(self, port: int) -> list[Listener]:
        """The sockets bound to ``port``."""
        return [lst for lst in self.listeners if lst.port == port]

    def of_pids(self, pids: Iterable[int]) -> list[Listener]:
        """The sockets held by any of ``pids`` (whatever their port)."""
        wanted = set(pids)
        return [lst for lst in self.listeners if any(o.pid in wanted for o in lst.owners)]


# -- sock_diag -------------------------------------------------------------------------------

def _diag_request(family: int, protocol: int, states: int, seq: int) -> bytes:
    # struct inet_diag_req_v2: family, protocol, ext, pad, states, then an empty sockid.
    body = struct.pack("=BBBBI", family, protocol, 0, 0, states) + bytes(48)
    return _NLMSG_HDR.pack(_NLMSG_HDR.size + len(body), SOCK_DIAG_BY_FAMILY,
                           NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


def _attrs(data: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    i = 0
    while i + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, i)
        if length < 4:
            break
        out[kind & 0x7FFF] = data[i + 4:i + length]
        i += (length + 3) & ~3
    return out


def diag_dump(family: int, protocol: int, states: int, timeout: float = 1.0
              ) -> list[dict[str, Any]]:
    """One sock_diag dump: every socket of (family, protocol) in one of ``states``.

    Raises OSError when the kernel has no sock_diag for it (then read /proc/net instead).
    """
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    found: list[dict[str, Any]] = []
    try:
        sock.settimeout(timeout)
        seq = int(time.monotonic() * 1000) & 0xFFFFFFFF
        sock.send(_diag_request(family, protocol, states, seq))
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() > deadline:
                raise OSError(errno.ETIMEDOUT, "sock_diag dump timed out")
            data = sock.recv(1 << 17)
            if not data:
                return found
            offset = 0
            while offset + _NLMSG_HDR.size <= len(data):
                length, kind, _flags, _seq, _pid = _NLMSG_HDR.unpack_from(data, offset)
                if length < _NLMSG_HDR.size:
                    return found
                body = data[offset + _NLMSG_HDR.size:offset + length]
                offset += (length + 3) & ~3
                if kind == NLMSG_DONE:
                    return found
                if kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", body)[0] if len(body) >= 4 else errno.EIO
                    if code == 0:
                        continue
                    raise OSError(code, os.strerror(code))
                if kind != SOCK_DIAG_BY_FAMILY or len(body) < _DIAG_MSG.size:
                    continue
                (fam, state, _timer, _retrans, sport, dport, src, dst, ifindex, _cookie,
                 _expires, rqueue, wqueue, uid, inode) = _DIAG_MSG.unpack_from(body)
                size = 4 if fam == socket.AF_INET else 16
                attrs = _attrs(body[_DIAG_MSG.size:])
                v6only = attrs.get(INET_DIAG_SKV6ONLY)
                found.append({
                    "family": 4 if fam == socket.AF_INET else 6, "state": state,
                    "sport": socket.ntohs(sport), "dport": socket.ntohs(dport),
                    "src": socket.inet_ntop(fam, src[:size]),
                    "dst": socket.inet_ntop(fam, dst[:size]), "ifindex": ifindex,
                    "rqueue": rqueue, "wqueue": wqueue, "uid": uid, "inode": inode,
                    "v6only": bool(v6only[0]) if v6only else None,
                })
    finally:
        sock.close()


def _from_diag(proto: str, timeout: float) -> list[Listener]:
    protocol = socket.IPPROTO_TCP if proto == "tcp" else socket.IPPROTO_UDP
    states = (1 << TCP_LISTEN) if proto == "tcp" else (1 << TCP_CLOSE)
    found: list[Listener] = []
    for fam in (socket.AF_INET, socket.AF_INET6):
        for s in diag_dump(fam, protocol, states, timeout):
            if proto == "udp" and s["dport"] != 0:
                continue  # a connected UDP socket is a client, not a service
            found.append(Listener(
                proto, s["family"], _unmap(s["src"]), s["sport"], s["inode"], s["uid"],
                s["v6only"] if s["family"] == 6 else None,
                s["rqueue"] if proto == "tcp" else None,
                s["wqueue"] if proto == "tcp" else None,
                _ifname(s["ifindex"])))
    return found


def _ifname(index: int) -> Optional[str]:
    if not index:
        return None
    try:
        return socket.if_indextoname(index)
    except OSError:
        return str(index)


def _unmap(address: str) -> str:
    """inet_ntop's spelling, as ``ss`` prints it: ``::ffff:127.0.0.1`` stays so (an IPv6
    socket), where Python's ipaddress would write ``::ffff:7f00:1``."""
    return address


# -- /proc/net ---------------------------------------------------------------------------------

def _from_hex(text: str) -> str:
    """An address as /proc/net spells it: 32-bit words in host byte order, in hex."""
    packed = bytes.fromhex(text)
    if len(packed) == 4:
        return socket.inet_ntop(socket.AF_INET, struct.pack("=I", struct.unpack(">I", packed)[0]))
    w = struct.unpack(">4I", packed)
    return socket.inet_ntop(socket.AF_INET6, struct.pack("=4I", *w))


def parse_proc_net(text: str, proto: str, family: int) -> list[Listener]:
    """Listening sockets in one /proc/net/{tcp,tcp6,udp,udp6} table."""
    found = []
    want = "0A" if proto == "tcp" else "07"
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 10 or parts[3] != want:
            continue
        try:
            local_hex, local_port = parts[1].split(":")
            _remote_hex, remote_port = parts[2].split(":")
            if proto == "udp" and int(remote_port, 16) != 0:
                continue
            _tx, rx = parts[4].split(":")
            found.append(Listener(proto, family, _from_hex(local_hex), int(local_port, 16),
                                  int(parts[9]), int(parts[7]), None,
                                  int(rx, 16) if proto == "tcp" else None, None))
        except (ValueError, IndexError):
            continue
    return found


def _from_proc(proto: str, procfs: str) -> list[Listener]:
    found: list[Listener] = []
    read_any = False
    for suffix, family in (("", 4), ("6", 6)):
        try:
            with open(os.path.join(procfs, "net", proto + suffix), encoding="ascii",
                      errors="replace") as fh:
                text = fh.read(16 << 20)
        except OSError:
            continue
        read_any = True
        found += parse_proc_net(text, proto, family)
    if not read_any:
        raise OSError(errno.ENOENT, f"{procfs}/net/{proto} cannot be read")
    return found


# -- owners ----------------------------------------------------------------------------------

def find_owners(inodes: Iterable[int], procfs: str = "/proc", budget: float = OWNER_BUDGET_S
                ) -> tuple[dict[int, list[Owner]], bool, bool]:
    """Which processes hold each socket inode: (owners by inode, all visible, complete)."""
    wanted = {f"socket:[{i}]": i for i in inodes if i}
    owners: dict[int, list[Owner]] = {}
    visible, complete = True, True
    if not wanted:
        return owners, visible, complete
    deadline = time.monotonic() + budget
    try:
        pids = [int(p) for p in os.listdir(procfs) if p.isdigit()]
    except OSError:
        return owners, False, False
    for pid in sorted(pids):
        if time.monotonic() > deadline:
            complete = False
            break
        fd_dir = os.path.join(procfs, str(pid), "fd")
        try:
            fds = os.listdir(fd_dir)
        except PermissionError:
            visible = False
            continue
        except OSError:
            continue  # the process ended meanwhile
        name = None
        for fd in fds:
            try:
                link = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            inode = wanted.get(link)
            if inode is None:
                continue
            if name is None:
                name = _comm(procfs, pid)
            holders = owners.setdefault(inode, [])
            if len(holders) < MAX_OWNERS:
                holders.append(Owner(pid, name, int(fd)))
    return owners, visible, complete


def _comm(procfs: str, pid: int) -> str:
    try:
        with open(os.path.join(procfs, str(pid), "comm"), encoding="utf-8",
                  errors="replace") as fh:
            return fh.read().strip() or "?"
    except OSError:
        return "?"


def read_table(proto: str = "tcp", procfs: str = "/proc", timeout: float = 1.0,
               owners: bool = True) -> ListenTable:
    """Every listening socket of ``proto`` here, with the processes that hold them."""
    table = ListenTable(proto)
    try:
        table.listeners = _from_diag(proto, timeout)
        table.source = "sock_diag"
    except OSError as exc:
        try:
            table.listeners = _from_proc(proto, procfs)
            table.source = "/proc/net"
        except OSError as exc2:
            table.error = f"cannot list sockets: {exc}; {exc2}"
            return table
    table.listeners.sort(key=lambda s: (s.port, s.family, s.address))
    if owners:
        found, table.owners_visible, table.owners_complete = find_owners(
            [s.inode for s in table.listeners], procfs)
        for s in table.listeners:
            s.owners = sorted(found.get(s.inode, []), key=lambda o: (o.pid, o.fd))
    return table


# -- the processes -----------------------------------------------------------------------------

@dataclass
class ProcessInfo:
    """``ps aux`` for one process: who runs it, since when, with which command line."""

    pid: int
    name: str
    user: Optional[str] = None
    uptime_s: Optional[float] = None
    cmdline: str = ""  # for people: shortened
    argv: list[str] = field(default_factory=list)  # for parsing: whole (bounded) arguments
    ppid: Optional[int] = None
    status: Optional[str] = None
    error: Optional[str] = None

    def uptime_text(self) -> str:
        """How long it has run, in words (``3 days 2 h``)."""
        if self.uptime_s is None:
            return "?"
        return human_duration(self.uptime_s)

    def uptime_words(self) -> str:
        """:meth:`uptime_text` in the reader's language, for a summary."""
        if self.uptime_s is None:
            return "?"
        return human_duration(self.uptime_s, translated=True)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"pid": self.pid, "name": self.name, "user": self.user,
                               "uptime": self.uptime_text(), "cmdline": self.cmdline}
        if self.uptime_s is not None:
            out["uptime_s"] = round(self.uptime_s, 1)
        if self.ppid is not None:
            out["ppid"] = self.ppid
        if self.status:
            out["status"] = self.status
        if self.error:
            out["error"] = self.error
        return out


def human_duration(seconds: float, translated: bool = False) -> str:
    """``3 days 2 h``, ``4 min 10 s``: the way ``systemctl status`` says how long ago
    (``translated``: the days in the reader's language; h, min and s are units)."""
    s = int(max(0, seconds))
    for unit, size, sub, subsize in (("day", 86400, "h", 3600), ("h", 3600, "min", 60),
                                     ("min", 60, "s", 1)):
        if s >= size:
            main, rest = divmod(s, size)
            label = f"{main} {unit}{'s' if unit == 'day' and main != 1 else ''}"
            if translated and unit == "day":
                from netcheck.i18n import ngettext

                label = ngettext("{n} day", "{n} days", main).format(n=main)
            return f"{label} {rest // subsize} {sub}" if rest // subsize else label
    return f"{s} s"


def process_info(pid: int) -> ProcessInfo:
    """User, start time and command line of one process (psutil; never raises)."""
    import psutil

    info = ProcessInfo(pid, "?")
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            info.name = proc.name()
            info.ppid = proc.ppid()
            info.status = proc.status()
            info.uptime_s = max(0.0, time.time() - proc.create_time())
            try:
                info.user = proc.username()
            except (KeyError, psutil.Error):  # a uid with no passwd entry
                info.user = str(proc.uids().real)
            try:
                info.argv = [a[:1024] for a in proc.cmdline()[:256]]
                info.cmdline = " ".join(info.argv)[:300]
            except psutil.AccessDenied:
                info.cmdline = ""
    except psutil.NoSuchProcess:
        info.error = "the process has ended"
    except psutil.AccessDenied:
        info.error = "access denied (run as root to see other users' processes)"
    except psutil.Error as exc:
        info.error = str(exc)
    return info


def matching_processes(name: str, limit: int = 50) -> list[ProcessInfo]:
    """Running processes called ``name`` (as ``ps`` or ``pgrep`` would find them).

    A match on the process name (``comm``), on the program's file name, or, for a name
    with a ``/``, on the program's path.
    """
    import psutil

    found: list[ProcessInfo] = []
    base = os.path.basename(name)
    for proc in psutil.process_iter(["pid", "name", "exe", "cmdline"]):
        try:
            pname = proc.info.get("name") or ""
            exe = proc.info.get("exe") or ""
            argv0 = (proc.info.get("cmdline") or [""])[0] if proc.info.get("cmdline") else ""
        except psutil.Error:
            continue
        if "/" in name:
            hit = name in (exe, argv0)
        else:
            hit = base in (pname, pname[:15], os.path.basename(exe), os.path.basename(argv0)) \
                or (len(base) > 15 and pname == base[:15])
        if hit and proc.pid != os.getpid():
            found.append(process_info(proc.pid))
            if len(found) >= limit:
                break
    return found


def container_proxy(name: str, argv: list[str]) -> Optional[dict[str, Any]]:
    """When the owner forwards the port to a container: what it is and where it forwards.

    docker-proxy's own arguments name the container's side: ``-container-ip 172.18.0.3
    -container-port 443``.
    """
    what = CONTAINER_PROXIES.get(name)
    if what is None:
        return None
    out: dict[str, Any] = {"program": name, "what": what}
    args = list(argv)
    for flag, key in (("-container-ip", "container_ip"), ("-container-port", "container_port"),
                      ("-host-ip", "host_ip"), ("-host-port", "host_port"),
                      ("-proto", "proto")):
        if flag in args:
            i = args.index(flag)
            if i + 1 < len(args):
                value = args[i + 1]
                out[key] = int(value) if key.endswith("port") and value.isdigit() else value
    return out
