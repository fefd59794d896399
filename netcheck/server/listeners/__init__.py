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

The package, by concern: ``sockets`` (Listener, Owner, ListenTable), ``procnet`` (the
/proc/net fallback), ``owners`` (who holds each socket), ``processes`` (``ps`` for the owners,
the programs that forward to a container). Here: the sock_diag dump and the table
(:func:`read_table`, which asks :func:`diag_dump` here, so a test that replaces it on this
package makes the table fall back to /proc/net), and every name importable from
``netcheck.server.listeners`` as before the split.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import time
from typing import Any, Optional

from netcheck.server.listeners.owners import MAX_OWNERS, OWNER_BUDGET_S, find_owners
from netcheck.server.listeners.processes import (
    CONTAINER_PROXIES,
    ProcessInfo,
    container_proxy,
    human_duration,
    matching_processes,
    process_info,
)
from netcheck.server.listeners.procnet import _from_proc, parse_proc_net
from netcheck.server.listeners.sockets import Listener, ListenTable, Owner

# Every public name the module had before it became a package.
__all__ = [
    "CONTAINER_PROXIES", "INET_DIAG_SKV6ONLY", "ListenTable", "Listener", "MAX_OWNERS",
    "NETLINK_SOCK_DIAG", "NLMSG_DONE", "NLMSG_ERROR", "NLM_F_DUMP", "NLM_F_REQUEST",
    "OWNER_BUDGET_S", "Owner", "ProcessInfo", "SOCK_DIAG_BY_FAMILY", "TCP_CLOSE", "TCP_LISTEN",
    "container_proxy", "diag_dump", "find_owners", "human_duration", "matching_processes",
    "parse_proc_net", "process_info", "read_table",
]


NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
INET_DIAG_SKV6ONLY = 11
TCP_LISTEN, TCP_CLOSE = 10, 7
_NLMSG_HDR = struct.Struct("=IHHII")
_DIAG_MSG = struct.Struct("=BBBBHH16s16sI8sIIIII")  # struct inet_diag_msg (72 bytes)


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
