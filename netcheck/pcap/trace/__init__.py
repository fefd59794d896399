"""``netcheck trace TARGET``: make one connection while capturing it, then explain it.

The connection is the one a user (or the diagnosis) would make: for ``http://`` a GET, for
``https://`` a TLS handshake with SNI and a GET (stdlib ``ssl``), for SMTP/POP3/IMAP/SSH the
greeting and a polite goodbye, for anything else a connect and a short read of whatever
banner the server sends. Its packets are captured

1. with an ``AF_PACKET`` socket (needs CAP_NET_RAW) bound to the egress interface, with a
   classic BPF filter on the connection's local port attached in the kernel, kernel
   timestamps (``SO_TIMESTAMPNS``) so the handshake RTT is the wire's, not Python's; else
2. through ``tcpdump`` (argv, no shell, ``-w -`` into a pipe, bounded in time and size) if it
   is installed and allowed to capture; else
3. not at all: exit 3 with "needs root (CAP_NET_RAW) or tcpdump".

The local port is bound before connecting, so the capture filter exists before the SYN
leaves. The packets then go through the same analyzer and explainer as ``netcheck pcap``;
``-w FILE`` also saves them as a pcap (Linux cooked v2) for Wireshark.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import io
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from typing import Any, Optional

from netcheck.pcap.command import EXIT_FAILED, EXIT_OK, PcapError, make_filter

ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = 35
PACKET_OUTGOING = 4
ARPHRD_LOOPBACK = 772
LINKTYPE_LINUX_SLL2 = 276
MAX_PACKETS = 20_000
MAX_BYTES = 32 << 20
LINGER = 0.25  # after the connection ends: time for the last ACK to be captured
READ_LIMIT = 1 << 20
USER_AGENT = "netcheck-trace"

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


def choose_capture(method: str, family: int, lport: int,
                   iface: Optional[tuple[int, str]]) -> Any:
    """An AF_PACKET capture if allowed, else tcpdump; PcapError saying why neither works."""
    reasons = []
    if method in ("auto", "af_packet"):
        try:
            return AfPacketCapture(family, lport, iface)
        except PermissionError:
            reasons.append("no CAP_NET_RAW for an AF_PACKET socket")
        except OSError as exc:
            reasons.append(f"AF_PACKET: {exc.strerror or exc}")
    if method in ("auto", "tcpdump"):
        tcpdump = shutil.which("tcpdump") or shutil.which("tcpdump", path="/usr/sbin:/sbin")
        if tcpdump:
            return TcpdumpCapture(family, lport, iface, tcpdump)
        reasons.append("tcpdump is not installed")
    raise PcapError("netcheck trace needs root (CAP_NET_RAW) or tcpdump to capture: "
                    + "; ".join(reasons))


def resolve(host: str, port: int, family: Optional[int]) -> tuple[int, str]:
    """(address family, address) of the target, the way the system resolves it."""
    fam = {4: socket.AF_INET, 6: socket.AF_INET6}.get(family or 0, socket.AF_UNSPEC)
    try:
        infos = socket.getaddrinfo(host, port, fam, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise PcapError(f"cannot resolve {host}: {exc.strerror}") from None
    if not infos:
        raise PcapError(f"{host} has no address")
    info = infos[0]
    return info[0], info[4][0]


class Conversation:
    """The client side of the traced connection; records what happened."""

    def __init__(self, target: Any, family: int, address: str, timeout: float,
                 deadline: float, cafile: Optional[str], insecure: bool) -> None:
        """Bind the local port now, so that the capture can filter on it before the SYN."""
        self.target = target
        self.address = address
        self.timeout = timeout
        self.deadline = deadline
        self.cafile = cafile
        self.insecure = insecure
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
        self.lport = self.sock.getsockname()[1]
        self.result: dict[str, Any] = {"outcome": None, "detail": None, "http_status": None,
                                       "banner": None}

    def _left(self) -> float:
        return max(0.05, min(self.timeout, self.deadline - time.monotonic()))

    def run(self) -> None:
        """Connect, talk, close; never raises."""
        sock = self.sock
        try:
            sock.settimeout(self._left())
            sock.connect((self.address, self.target.port))
        except ConnectionRefusedError:
            self._end("refused", "the server answered the SYN with RST (nothing listens)")
            return
        except socket.timeout:
            self._end("timeout", "no answer to the SYN within the timeout")
            return
        except OSError as exc:
            kind = "unreachable" if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH,
                                                  errno.EACCES, errno.EPERM) else "error"
            self._end(kind, exc.strerror or str(exc))
            return
        try:
            self._talk()
            if self.result["outcome"] is None:
                self.result["outcome"] = "ok"
        except socket.timeout:
            self.result.update(outcome="ok", detail="the server stopped answering (timeout)")
        except OSError as exc:
            name = type(exc).__name__
            outcome = "tls-error" if name.startswith("SSL") else "error"
            self.result.update(outcome=outcome, detail=str(exc)[:200])
        finally:
            try:
                self.sock.close()
            except OSError:
                pass

    def _end(self, outcome: str, detail: str) -> None:
        self.result.update(outcome=outcome, detail=detail)
        self.sock.close()

    def _talk(self) -> None:
        scheme = self.target.scheme
        if scheme in ("https", "pop3s", "imaps"):
            self._tls()
        if scheme in ("http", "https"):
            self._http()
        elif scheme in ("smtp", "submission"):
            self._lines([b"EHLO netcheck.invalid\r\n", b"QUIT\r\n"])
        elif scheme in ("pop3", "pop3s"):
            self._lines([b"QUIT\r\n"])
        elif scheme in ("imap", "imaps"):
            self._lines([b"a1 LOGOUT\r\n"])
        elif scheme == "ssh":
            self._lines([b"SSH-2.0-netcheck-trace\r\n"])
        else:
            self._banner()

    def _tls(self) -> None:
        import ssl

        context = ssl.create_default_context(cafile=self.cafile)
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        host = self.target.host
        self.sock.settimeout(self._left())
        self.sock = context.wrap_socket(self.sock, server_hostname=host)
        self.result["tls_version"] = self.sock.version()

    def _http(self) -> None:
        host = self.target.host
        if ":" in host:
            host = f"[{host}]"
        default = 443 if self.target.scheme == "https" else 80
        if self.target.port != default:
            host += f":{self.target.port}"
        request = (f"GET {self.target.path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: "
                   f"{USER_AGENT}\r\nAccept: */*\r\nConnection: close\r\n\r\n")
        self.sock.settimeout(self._left())
        self.sock.sendall(request.encode("ascii", "replace"))
        data = self._read_all()
        line = data.split(b"\r\n", 1)[0]
        if line.startswith(b"HTTP/") and len(line) >= 12 and line[9:12].isdigit():
            self.result["http_status"] = int(line[9:12])
        if hasattr(self.sock, "unwrap"):
            try:  # close_notify, as browsers send it (the seeds' "Encrypted Alert")
                self.sock.settimeout(0.5)
                self.sock = self.sock.unwrap()
            except OSError:
                pass

    def _read_all(self) -> bytes:
        data = b""
        while len(data) < READ_LIMIT:
            self.sock.settimeout(self._left())
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data

    def _banner(self) -> None:
        self.sock.settimeout(min(1.0, self._left()))
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return
        if data:
            from netcheck.pcap.protocols import first_line

            self.result["banner"] = first_line(data)

    def _lines(self, commands: list[bytes]) -> None:
        self._banner()
        for command in commands:
            self.sock.settimeout(self._left())
            self.sock.sendall(command)
            try:
                self.sock.settimeout(min(1.0, self._left()))
                if not self.sock.recv(4096):
                    return
            except socket.timeout:
                return


def run_trace(args: argparse.Namespace, lang: str) -> tuple[dict[str, Any], int]:
    """The whole trace; returns the netcheck-pcap/1 document and the exit code."""
    from netcheck.pcap.reader import LINKTYPE_LINUX_SLL2 as SLL2
    from netcheck.pcap.sessions import Analyzer, build_document
    from netcheck.target import TargetError, parse_target

    start = time.monotonic()
    deadline = start + args.deadline
    try:
        target = parse_target(args.target, args.port)
    except TargetError as exc:
        raise PcapError(str(exc)) from None
    packet_filter = make_filter(args.filter)
    if args.write:
        # Refused before any packet (a symlink, a directory, another user's file): the
        # capture runs as root, and -w must not become a way to clobber a file.
        from netcheck.safefile import check_target

        try:
            check_target(args.write)
        except OSError as exc:
            raise PcapError(f"-w {args.write[:60]!r}: {exc.strerror or exc}") from None
    for path in (args.cafile,):
        if path and not os.path.isfile(path):
            raise PcapError(f"--cafile {path[:60]!r}: no such file")
    family, address = resolve(target.host, target.port, args.family)
    iface = egress_interface(address)
    talk = Conversation(target, family, address, args.timeout, deadline, args.cafile,
                        args.insecure)
    try:
        capture = choose_capture(args.capture, family, talk.lport, iface)
        try:
            capture.start()
        except (PermissionError, OSError) as exc:
            raise PcapError("netcheck trace needs root (CAP_NET_RAW) or a tcpdump allowed to "
                            f"capture: tcpdump says {exc}") from None
    except BaseException:
        talk.sock.close()
        raise
    try:
        talk.run()
        time.sleep(max(0.0, min(LINGER, deadline - time.monotonic())))
    finally:
        packets = capture.stop()
    mine = [p for p in packets if _ours(p, talk.lport, target.port)]
    analyzer = Analyzer(want_session=1, packet_filter=packet_filter, record_first=False)
    base = mine[0].ts if mine else 0.0
    frames = [p.sll2() for p in mine]
    analyzer.feed((p.ts - base, SLL2, frame, 0, len(frame), len(frame), i + 1)
                  for i, (p, frame) in enumerate(zip(mine, frames)))
    detail = 1 if analyzer.session(1) is not None else None
    warnings = []
    if not mine:
        warnings.append("no packet of the connection was captured")
    if args.write:
        _save(args.write, mine, frames)
    doc = build_document(analyzer, os.path.basename(args.write) if args.write else None, False,
                         warnings, lang, detail)
    doc["trace"] = {
        "target": target.input, "scheme": target.scheme, "address": address,
        "port": target.port, "local_port": talk.lport, "capture": capture.method,
        "interface": iface[1] if iface else None, **talk.result,
    }
    return doc, EXIT_OK if talk.result["outcome"] == "ok" else EXIT_FAILED


def _ours(p: Packet, lport: int, rport: int) -> bool:
    """Keep the connection's TCP segments and ICMP messages that quote it."""
    data = p.data
    if not data:
        return False
    version = data[0] >> 4
    if version == 4 and len(data) >= 20:
        ihl = (data[0] & 15) * 4
        proto, l4 = data[9], ihl
    elif version == 6 and len(data) >= 40:
        proto, l4 = data[6], 40
    else:
        return False
    if proto == 6 and len(data) >= l4 + 4:
        sp, dp = struct.unpack_from(">HH", data, l4)
        return (sp == lport and dp == rport) or (sp == rport and dp == lport)
    if proto in (1, 58) and len(data) >= l4 + 8:
        itype = data[l4]
        if (proto == 1 and itype not in (3, 11)) or (proto == 58 and itype not in (1, 2, 3)):
            return False
        inner = data[l4 + 8:]
        if proto == 1 and len(inner) >= 24:
            iihl = (inner[0] & 15) * 4
            return inner[9] == 6 and struct.unpack_from(">H", inner, iihl)[0] == lport
        if proto == 58 and len(inner) >= 44:
            return inner[6] == 6 and struct.unpack_from(">H", inner, 40)[0] == lport
    return False


def _save(path: str, packets: list[Packet], frames: list[bytes]) -> None:
    from netcheck.pcap.writer import PcapWriter
    from netcheck.safefile import open_for_write

    try:
        # As root: never through a symlink planted at ``path`` (netcheck.safefile).
        with open_for_write(path) as fh:
            writer = PcapWriter(fh, linktype=LINKTYPE_LINUX_SLL2, nanosecond=True)
            for p, frame in zip(packets, frames):
                writer.write(p.ts, frame)
    except OSError as exc:
        raise PcapError(f"-w {path[:60]!r}: {exc.strerror or exc}") from None
