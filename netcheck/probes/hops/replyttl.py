"""With root: the TTL a TCP answer arrives with, which tells how far away its sender is (a
reset a firewall forges 1 hop away arrives with a TTL the server's own packets never have)."""

from __future__ import annotations

import socket
import struct
from typing import Optional

from netcheck.lazy import asyncio
from netcheck.probes.hops.model import family_of


class _ReplyTtls:
    """With root: the TTL each TCP answer from address:port arrives with, by our local port.

    A raw TCP socket sees a copy of every TCP segment the host receives; only the answers of
    the probed flow are kept. IPv4 carries the TTL in the header a raw socket reads; IPv6
    hands the hop limit over as ancillary data (IPV6_RECVHOPLIMIT).
    """

    def __init__(self, address: str, port: int) -> None:
        self.address = address.split("%")[0]
        self.port = port
        self.family = family_of(address)
        self.seen: dict[int, int] = {}
        self.sock: Optional[socket.socket] = None

    def start(self, loop: asyncio.AbstractEventLoop) -> bool:
        try:
            sock = socket.socket(self.family, socket.SOCK_RAW, socket.IPPROTO_TCP)
        except OSError:
            return False
        sock.setblocking(False)
        if self.family == socket.AF_INET6:
            try:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
            except OSError:
                sock.close()
                return False
        self.sock = sock
        loop.add_reader(sock.fileno(), self._read)
        return True

    def _read(self) -> None:
        assert self.sock is not None
        for _attempt in range(64):
            try:
                data, anc, _flags, peer = self.sock.recvmsg(128, 64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if peer[0].split("%")[0] != self.address:
                continue
            ttl: Optional[int] = None
            if self.family == socket.AF_INET:
                if len(data) < 20:
                    continue
                ttl = data[8]
                data = data[(data[0] & 0x0F) * 4:]
            else:
                for level, kind, value in anc:
                    if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_HOPLIMIT:
                        ttl = struct.unpack("=i", value[:4])[0]
            if ttl is None or len(data) < 14:
                continue
            sport, dport = struct.unpack("!HH", data[:4])
            if sport == self.port:
                self.seen.setdefault(dport, ttl)

    def stop(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.sock is not None:
            loop.remove_reader(self.sock.fileno())
            self._read()
            self.sock.close()
            self.sock = None


def hops_away(reply_ttl: int) -> int:
    """How many hops away a packet's sender is, from the TTL it arrived with (the usual
    initial TTLs are 64, 128 and 255; a sender on this host's link is 1 hop away)."""
    initial = next((x for x in (32, 64, 128, 255) if reply_ttl <= x), 255)
    return initial - reply_ttl + 1
