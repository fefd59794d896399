"""Capturing one connection's packets: an ``AF_PACKET`` socket with a classic BPF filter on
the local port attached in the kernel and kernel timestamps, or ``tcpdump`` writing into a
pipe, bounded in time and size; the egress interface they listen on.
"""

from __future__ import annotations

import ctypes
import io
import signal
import socket
import struct
import subprocess
import threading
import time
from typing import Any, Optional

ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = 35
PACKET_OUTGOING = 4
ARPHRD_LOOPBACK = 772
LINKTYPE_LINUX_SLL2 = 276
MAX_PACKETS = 20_000
MAX_BYTES = 32 << 20
# Classic BPF opcodes (linux/filter.h).
LDB_ABS, LDH_ABS, LDH_IND, LDX_MSH = 0x30, 0x28, 0x48, 0xB1
AND_K, JEQ_K, RET_K = 0x54, 0x15, 0x06


class Packet:
    """One captured packet: kernel time, direction, interface, protocol, the IP packet."""

    __slots__ = ("ts", "pkttype", "ifindex", "proto", "hatype", "data")

    def __init__(self, ts: float, pkttype: int, ifindex: int, proto: int, hatype: int,
                 data: bytes) -> None:
        self.ts, self.pkttype, self.ifindex = ts, pkttype, ifindex
        self.proto, self.hatype, self.data = proto, hatype, data

    def sll2(self) -> bytes:
        """The packet with a Linux cooked v2 header (what ``tcpdump -i any`` writes)."""
        return struct.pack(">HHIHBB8s", self.proto, 0, self.ifindex, self.hatype, self.pkttype,
                           0, b"") + self.data


def bpf_program(family: int, lport: int) -> bytes:
    """A classic BPF program (for SOCK_DGRAM: offsets from the IP header) that accepts TCP
    segments to or from ``lport`` and every ICMP/ICMPv6 message (errors about the connection
    are explained with it); the rest is dropped in the kernel."""
    v6 = family == socket.AF_INET6
    # (opcode, jump-if-true label, jump-if-false label, k); labels resolved below.
    code: list[tuple[int, Any, Any, int]] = [
        (LDB_ABS, 0, 0, 0), (AND_K, 0, 0, 0xF0),
        (JEQ_K, 0, "reject", 0x60 if v6 else 0x40),
        (LDB_ABS, 0, 0, 6 if v6 else 9),
        (JEQ_K, 0, "icmp", 6),
    ]
    if v6:
        code += [(LDH_ABS, 0, 0, 40), (JEQ_K, "accept", 0, lport),
                 (LDH_ABS, 0, 0, 42), (JEQ_K, "accept", "reject", lport)]
    else:
        code += [(LDX_MSH, 0, 0, 0), (LDH_IND, 0, 0, 0), (JEQ_K, "accept", 0, lport),
                 (LDH_IND, 0, 0, 2), (JEQ_K, "accept", "reject", lport)]
    labels = {"icmp": len(code), "accept": len(code) + 1, "reject": len(code) + 2}
    code += [(JEQ_K, "accept", "reject", 58 if v6 else 1), (RET_K, 0, 0, 262144),
             (RET_K, 0, 0, 0)]
    out = b""
    for i, (op, jt, jf, k) in enumerate(code):
        jt = labels[jt] - i - 1 if isinstance(jt, str) else jt
        jf = labels[jf] - i - 1 if isinstance(jf, str) else jf
        out += struct.pack("HBBI", op, jt, jf, k)
    return out


def egress_interface(address: str) -> Optional[tuple[int, str]]:
    """(ifindex, name) the kernel would send to ``address`` through, or None.

    Asked of the kernel (``ip route get``, through pyroute2); if netlink cannot answer, the
    interface that holds the source address the kernel picks for ``address``.
    """
    try:
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            routes = ipr.route("get", dst=address)
        index = routes[0].get_attr("RTA_OIF")
        return index, socket.if_indextoname(index)
    except Exception:  # no netlink here (or no pyroute2): ask the socket layer instead
        return _interface_of_source(address)


def _interface_of_source(address: str) -> Optional[tuple[int, str]]:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((address, 9))  # UDP connect sends nothing: it only routes
            source = probe.getsockname()[0]
            if family == socket.AF_INET6:
                packed = socket.inet_pton(socket.AF_INET6, source).hex()
                with open("/proc/net/if_inet6", encoding="ascii") as table:
                    for line in table:
                        fields = line.split()
                        if len(fields) >= 6 and fields[0] == packed:
                            return int(fields[1], 16), fields[5]
                return None
            import fcntl

            for index, name in socket.if_nameindex():
                request = struct.pack("256s", name.encode()[:15])
                try:
                    answer = fcntl.ioctl(probe.fileno(), 0x8915, request)  # SIOCGIFADDR
                except OSError:
                    continue
                if socket.inet_ntoa(answer[20:24]) == source:
                    return index, name
    except OSError:
        pass
    return None


class AfPacketCapture:
    """Capture with an AF_PACKET socket in a thread (needs CAP_NET_RAW)."""

    method = "af_packet"

    def __init__(self, family: int, lport: int, iface: Optional[tuple[int, str]]) -> None:
        """Open and prepare the socket; PermissionError without CAP_NET_RAW."""
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        try:
            program = bpf_program(family, lport)
            self._prog = ctypes.create_string_buffer(program)
            fprog = struct.pack("HL", len(program) // 8, ctypes.addressof(self._prog))
            self.sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
            self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            if iface is not None:
                self.sock.bind((iface[1], ETH_P_ALL))
            self.sock.settimeout(0.05)
        except BaseException:
            self.sock.close()
            raise
        self.packets: list[Packet] = []
        self.size = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="netcheck-capture",
                                        daemon=True)

    def start(self) -> None:
        """Begin capturing."""
        self._thread.start()

    def _loop(self) -> None:
        cmsg_size = socket.CMSG_SPACE(16)
        while not self._stop.is_set():
            try:
                data, anc, _flags, addr = self.sock.recvmsg(262144, cmsg_size)
            except socket.timeout:
                continue
            except OSError:
                return
            ts = time.time()
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
                    sec, nsec = struct.unpack("qq", value[:16])
                    ts = sec + nsec / 1e9
            _name, proto, pkttype, hatype = addr[0], addr[1], addr[2], addr[3]
            if hatype == ARPHRD_LOOPBACK and pkttype == PACKET_OUTGOING:
                continue  # loopback shows every packet twice: keep the received copy
            if len(self.packets) >= MAX_PACKETS or self.size >= MAX_BYTES:
                continue
            index = socket.if_nametoindex(addr[0]) if addr[0] else 0
            self.packets.append(Packet(ts, pkttype, index, proto, hatype, data))
            self.size += len(data)

    def stop(self) -> list[Packet]:
        """Stop and return the packets (in capture order)."""
        self._stop.set()
        self._thread.join(2.0)
        self.sock.close()
        return self.packets


class TcpdumpCapture:
    """Capture through ``tcpdump -w -`` (argv, no shell), read back with the pcap reader."""

    method = "tcpdump"

    def __init__(self, family: int, lport: int, iface: Optional[tuple[int, str]],
                 tcpdump: str) -> None:
        """Prepare the command line (nothing runs yet)."""
        icmp = "icmp6" if family == socket.AF_INET6 else "icmp"
        self.argv = [tcpdump, "-i", iface[1] if iface else "any", "-n", "-U",
                     "--immediate-mode", "-s", "262144", "-w", "-",
                     f"(tcp and port {lport}) or {icmp}"]
        self.proc: Optional[subprocess.Popen] = None
        self.out = bytearray()
        self.err = b""
        self._ready = threading.Event()

    def start(self) -> None:
        """Start tcpdump and wait until it says it is listening (or fails)."""
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        threading.Thread(target=self._read_out, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()
        self._ready.wait(3.0)
        try:
            self.proc.wait(0.1)  # an error (no permission) makes it exit at once
        except subprocess.TimeoutExpired:
            pass
        if self.proc.poll() is not None:
            raise PermissionError(self.err.decode(errors="replace").strip().splitlines()[-1:]
                                  or "tcpdump exited")

    def _read_out(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            chunk = self.proc.stdout.read1(65536)  # type: ignore[attr-defined]
            if not chunk:
                return
            if len(self.out) < MAX_BYTES:
                self.out += chunk

    def _read_err(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err += line
            if b"listening on" in line:
                self._ready.set()
        self._ready.set()

    def stop(self) -> list[Packet]:
        """Stop tcpdump (SIGINT, by its PID) and decode what it wrote."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(3.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(2.0)
        time.sleep(0.05)  # let the reader thread drain the pipe
        return packets_from_pcap(bytes(self.out))


def packets_from_pcap(data: bytes) -> list[Packet]:
    """Packets of a pcap written by tcpdump (any link type the reader knows)."""
    from netcheck.pcap.decode import network_layer
    from netcheck.pcap.reader import Capture, CaptureError

    if not data:
        return []
    try:
        capture = Capture("tcpdump output", fileobj=io.BytesIO(data))
    except CaptureError:
        return []
    out = []
    for t, link, buf, off, caplen, _wire, _n in capture.packets():
        et, pos = network_layer(link, buf, off, caplen)
        if et:
            out.append(Packet(capture.first_time + t, 0, 0, et, 1, bytes(buf[pos:off + caplen])))
    return out
