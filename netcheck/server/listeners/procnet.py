"""The table where sock_diag is missing: /proc/net/{tcp,tcp6,udp,udp6}, where whether an
IPv6 wildcard socket is IPv6-only is not known.
"""

from __future__ import annotations

import errno
import os
import socket
import struct

from netcheck.server.listeners.sockets import Listener

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
