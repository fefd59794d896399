"""The lab's relays (``python -m netcheck.lab.servers forward|delay``): a stub resolver that
forwards every query to its upstreams (SERVFAIL when they are silent, or always), and a tun
device that holds every packet routed into it for a while — delay without ``tc netem``.
"""

from __future__ import annotations

import os
import selectors
import socket
import threading
import time
from pathlib import Path
from typing import Optional

from netcheck.lab.serving import _listeners, _log, _write_ready

FORWARD_MODES = ("normal", "servfail")
FORWARD_TIMEOUT = 1.5  # then SERVFAIL, as systemd-resolved answers when upstreams are silent


def _conf_servers(path: str) -> list[str]:
    """``server=ADDR`` lines of a dnsmasq-style configuration file."""
    found = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        key, _, value = line.split("#", 1)[0].strip().partition("=")
        if key == "server" and value and not value.startswith("/"):
            found.append(value.strip())
    return found


def _servfail(query: bytes) -> Optional[bytes]:
    import dns.exception
    import dns.message
    import dns.rcode

    try:
        msg = dns.message.from_wire(query)
    except dns.exception.DNSException:
        return None
    response = dns.message.make_response(msg)
    response.set_rcode(dns.rcode.SERVFAIL)
    return response.to_wire()


def _forward_one(query: bytes, upstreams: list[str], mode: str) -> Optional[bytes]:
    """The upstream's answer to one query (SERVFAIL when it is silent, or in servfail mode)."""
    if mode == "servfail" or not upstreams:
        return _servfail(query)
    for upstream in upstreams:
        family = socket.AF_INET6 if ":" in upstream else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as up:
            up.settimeout(FORWARD_TIMEOUT / len(upstreams))
            try:
                up.connect((upstream, 53))
                up.send(query)
                while True:
                    data = up.recv(65535)
                    if data[:2] == query[:2]:
                        return data
            except OSError:
                continue
    return _servfail(query)


def serve_forward(listen: str, upstreams: list[str], mode: str, ready: Optional[str]) -> None:
    """A stub resolver on ``listen``:53 (UDP) that forwards every query to its upstreams,
    as systemd-resolved's stub or a dnsmasq on loopback does."""
    (sock,) = _listeners(53, socket.SOCK_DGRAM, (listen,))

    def relay(data: bytes, peer: tuple) -> None:
        out = _forward_one(data, upstreams, mode)
        _log(f"forward {peer[0]} -> {','.join(upstreams) or '-'} mode={mode}: "
             f"{'answered' if out else 'dropped'}")
        if out is not None:
            try:
                sock.sendto(out, peer)
            except OSError as exc:
                _log(f"forward reply to {peer[0]} failed: {exc}")

    _write_ready(ready)
    _log(f"stub forwarder on {listen}:53 -> {upstreams} mode={mode}")
    while True:
        data, peer = sock.recvfrom(65535)
        threading.Thread(target=relay, args=(data, peer), daemon=True).start()


TUNSETIFF = 0x400454CA  # linux/if_tun.h
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000


def serve_delay(dev: str, delay_ms: float, jitter_ms: float, ready: Optional[str]) -> None:
    """Hold every packet routed into tun device ``dev`` for ``delay_ms`` ± ``jitter_ms``
    (uniform), then hand it back to the kernel through the same device.

    This kernel has no ``tc netem``: a router sends the traffic to be delayed into the tun
    device (policy routing), and it comes back out of it after the wait, to be forwarded on.
    """
    import fcntl
    import heapq
    import random
    import struct

    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", dev.encode(), IFF_TUN | IFF_NO_PI))
    os.set_blocking(fd, False)
    held: list[tuple[float, int, bytes]] = []
    count = 0
    _write_ready(ready)
    _log(f"delay on {dev}: {delay_ms} ms +- {jitter_ms} ms")
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    while True:
        wait = max(0.0, held[0][0] - time.monotonic()) if held else None
        if sel.select(wait):
            while True:
                try:
                    packet = os.read(fd, 65535)
                except BlockingIOError:
                    break
                count += 1
                hold = max(0.0, delay_ms + random.uniform(-jitter_ms, jitter_ms)) / 1000
                heapq.heappush(held, (time.monotonic() + hold, count, packet))
        now = time.monotonic()
        while held and held[0][0] <= now:
            try:
                os.write(fd, heapq.heappop(held)[2])
            except OSError as exc:
                _log(f"delay: write failed: {exc}")
