"""Small servers the lab runs inside its namespaces.

Four servers, each started by :class:`netcheck.lab.topology.Lab` with
``ip netns exec NS python -m netcheck.lab.servers ...``:

``tcp``
    listens on 0.0.0.0 and :: on the given ports and behaves like a tiny real service per
    port: 22 greets with an SSH banner, 80 answers a minimal ``HTTP/1.1 200``, any other port
    accepts, reads what the client sends for a moment and closes.

``forward``
    a stub resolver (UDP port 53 on one address, e.g. 127.0.0.53 in the client) that relays
    every query to its upstream servers (``--upstream``, or a dnsmasq-style ``--conf-file``'s
    ``server=`` lines) and answers SERVFAIL when they are silent, or always (``--mode
    servfail``).

``delay``
    creates a tun device and holds every packet routed into it for a while (``--ms``, with
    ``--jitter-ms`` spread) before handing it back: delay without ``tc netem``.

``dns``
    an authoritative server for ``lab.test`` built on dnspython, on UDP and TCP port 53 over
    IPv4 and IPv6. A control file (JSON, re-read for every query) switches its mode at run time:
    ``normal``, ``refused``, ``servfail`` or ``slow`` (answers after ``delay_ms``).

Both write a *ready file* once every socket is bound and listening, so the lab can wait for
them without probing the network. They log one line per request to stderr (the lab sends it to
a file in its state directory).

``tcp`` and ``dns`` are here; ``forward`` and ``delay`` are :mod:`netcheck.lab.relays`, and what
every lab server shares (the log line, the ready file, the listeners) :mod:`netcheck.lab.serving`.
"""

from __future__ import annotations

import argparse
import json
import selectors
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from netcheck.lab.relays import (  # noqa: F401 - every name of the relays re-exported
    FORWARD_MODES,
    FORWARD_TIMEOUT,
    IFF_NO_PI,
    IFF_TUN,
    TUNSETIFF,
    _conf_servers,
    _forward_one,
    _servfail,
    serve_delay,
    serve_forward,
)
from netcheck.lab.serving import (  # noqa: F401 - the helpers re-exported (other servers use them)
    IP_FREEBIND,
    IPV6_FREEBIND,
    _close_gracefully,
    _listeners,
    _log,
    _recv_until,
    _write_ready,
)

DNS_MODES = ("normal", "refused", "servfail", "slow")
DEFAULT_SLOW_MS = 800
ZONE = "lab.test."
TTL = 60

# The whole zone, as (name, type, rdata...) rows; everything else under lab.test is NXDOMAIN.
ZONE_ROWS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("lab.test.", "SOA", ("ns.lab.test. hostmaster.lab.test. 2026112201 3600 600 86400 60",)),
    ("lab.test.", "NS", ("ns.lab.test.",)),
    ("ns.lab.test.", "A", ("198.18.3.53",)),
    ("ns.lab.test.", "AAAA", ("2001:db8:3::53",)),
    ("www.lab.test.", "A", ("198.18.2.10",)),
    ("www.lab.test.", "AAAA", ("2001:db8:2::10",)),
    ("alias.lab.test.", "CNAME", ("www.lab.test.",)),
    ("noaddr.lab.test.", "TXT", ('"this name exists but has no address"',)),
)

HTTP_BODY = (
    b"<!doctype html>\n<html><head><title>netcheck lab</title></head>\n"
    b"<body><h1>It works</h1><p>Served by the netcheck lab server.</p></body></html>\n"
)
SSH_BANNER = b"SSH-2.0-OpenSSH_9.2p1 netcheck-lab\r\n"


def _handle_tcp(conn: socket.socket, peer: tuple, port: int) -> None:
    """Serve one TCP connection the way the well-known service on ``port`` would."""
    conn.settimeout(2.0)
    try:
        if port == 22:
            conn.sendall(SSH_BANNER)
            _recv_until(conn, b"\n")
            _log(f"tcp {port} {peer[0]} ssh banner sent")
        elif port == 80:
            request = _recv_until(conn, b"\r\n\r\n")
            first = request.split(b"\r\n", 1)[0].decode("latin-1", "replace")
            body = b"" if first.startswith("HEAD ") else HTTP_BODY
            head = (
                "HTTP/1.1 200 OK\r\nServer: netcheck-lab\r\nContent-Type: text/html\r\n"
                f"Content-Length: {len(HTTP_BODY)}\r\nConnection: close\r\n\r\n"
            )
            conn.sendall(head.encode("ascii") + body)
            _log(f"tcp {port} {peer[0]} {first!r} -> 200")
        else:
            _recv_until(conn, b"\n", limit=4096)
            _log(f"tcp {port} {peer[0]} accepted and closed")
    except OSError as exc:
        _log(f"tcp {port} {peer[0]} error {exc}")
    finally:
        _close_gracefully(conn)


def serve_tcp(ports: list[int], ready: Optional[str],
              hosts: tuple[str, ...] = ("0.0.0.0", "::")) -> None:
    """Accept connections on every port (IPv4 and IPv6) forever, one thread per connection."""
    selector = selectors.DefaultSelector()
    for port in ports:
        for sock in _listeners(port, socket.SOCK_STREAM, hosts):
            selector.register(sock, selectors.EVENT_READ, port)
    _write_ready(ready)
    _log(f"tcp server listening on {ports}")
    while True:
        for key, _ in selector.select():
            try:
                conn, peer = key.fileobj.accept()  # type: ignore[union-attr]
            except OSError:
                continue
            threading.Thread(target=_handle_tcp, args=(conn, peer, key.data), daemon=True).start()


class DnsResponder:
    """Turns a wire-format query into a wire-format answer for the lab.test zone."""

    def __init__(self, control: Optional[str]) -> None:
        import dns.name
        import dns.rrset

        self.control = control
        self.origin = dns.name.from_text(ZONE)
        self.nodes: dict = {}
        for name, rtype, rdatas in ZONE_ROWS:
            rrset = dns.rrset.from_text(name, TTL, "IN", rtype, *rdatas)
            self.nodes.setdefault(rrset.name, {})[rrset.rdtype] = rrset

    def mode(self) -> tuple[str, int]:
        """Current mode and delay, re-read from the control file so the lab can switch it live.

        The control file may also carry extra ``records`` ([name, type, [rdata, ...]] rows),
        which scenarios add for their own servers (tls-expired.lab.test, ...).
        """
        if not self.control:
            return "normal", DEFAULT_SLOW_MS
        try:
            data = json.loads(Path(self.control).read_text(encoding="utf-8"))
            mode = str(data.get("mode", "normal"))
            delay = int(data.get("delay_ms", DEFAULT_SLOW_MS))
            self._extra(data.get("records", []))
        except (OSError, ValueError, AttributeError, TypeError):
            return "normal", DEFAULT_SLOW_MS
        return (mode if mode in DNS_MODES else "normal"), delay

    def _extra(self, rows: list) -> None:
        import dns.rrset

        key = json.dumps(rows, sort_keys=True)
        if key == getattr(self, "_extra_key", None):
            return
        nodes: dict = {}
        for name, rtype, rdatas in [*ZONE_ROWS, *rows]:
            rrset = dns.rrset.from_text(name, TTL, "IN", rtype, *rdatas)
            nodes.setdefault(rrset.name, {})[rrset.rdtype] = rrset
        # Queries are answered by threads: the key is published only with the zone it stands
        # for, or a second query (the AAAA beside an A) would be answered from the old zone
        # while the first one is still building the new one (NXDOMAIN for a name just added).
        self.nodes = nodes
        self._extra_key = key

    def answer(self, wire: bytes) -> Optional[bytes]:
        """The response to one query, or None for something that is not a DNS query at all."""
        import dns.exception
        import dns.flags
        import dns.message
        import dns.opcode
        import dns.rcode
        import dns.rdatatype

        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        if query.flags & dns.flags.QR:
            return None  # a response sent to us: never answer it (no reflection loops)
        response = dns.message.make_response(query)
        mode, delay_ms = self.mode()
        if query.opcode() != dns.opcode.QUERY or len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        if mode == "slow":
            time.sleep(delay_ms / 1000.0)
        if mode == "refused":
            response.set_rcode(dns.rcode.REFUSED)
        elif mode == "servfail":
            response.set_rcode(dns.rcode.SERVFAIL)
        elif not question.name.is_subdomain(self.origin):
            # Authoritative only, no recursion: names outside the zone are refused, as BIND does.
            response.set_rcode(dns.rcode.REFUSED)
        else:
            response.flags |= dns.flags.AA
            self._resolve(response, question.name, question.rdtype)
        rcode = dns.rcode.to_text(response.rcode())
        _log(
            f"dns {question.name} {dns.rdatatype.to_text(question.rdtype)} mode={mode} -> "
            f"{rcode} ({sum(len(r) for r in response.answer)} answers)"
        )
        return response.to_wire()

    def _resolve(self, response, name, rdtype) -> None:
        """Fill answer/authority for ``name``/``rdtype``, following CNAMEs inside the zone."""
        import dns.rcode
        import dns.rdatatype

        soa = self.nodes[self.origin][dns.rdatatype.SOA]
        for _ in range(8):  # CNAME chain limit
            node = self.nodes.get(name)
            if node is None:
                response.set_rcode(dns.rcode.NXDOMAIN)
                response.authority.append(soa)
                return
            if rdtype == dns.rdatatype.ANY:
                response.answer.extend(node.values())
                return
            if rdtype in node:
                response.answer.append(node[rdtype])
                return
            cname = node.get(dns.rdatatype.CNAME)
            if cname is None:
                response.authority.append(soa)  # NODATA: the name exists, not this type
                return
            response.answer.append(cname)
            name = cname[0].target
            if not name.is_subdomain(self.origin):
                return
        response.set_rcode(dns.rcode.SERVFAIL)


def _serve_udp(sock: socket.socket, responder: DnsResponder) -> None:
    """Answer each datagram in its own thread so a slow answer never delays the next query."""

    def reply(data: bytes, peer: tuple) -> None:
        out = responder.answer(data)
        if out is not None:
            try:
                sock.sendto(out, peer)
            except OSError as exc:
                _log(f"dns udp send to {peer[0]} failed: {exc}")

    while True:
        data, peer = sock.recvfrom(65535)
        threading.Thread(target=reply, args=(data, peer), daemon=True).start()


def _serve_tcp_dns(sock: socket.socket, responder: DnsResponder) -> None:
    """DNS over TCP: two-byte length-prefixed messages, several per connection allowed."""

    def session(conn: socket.socket) -> None:
        conn.settimeout(5.0)
        try:
            while True:
                head = _recv_exact(conn, 2)
                if not head:
                    return
                data = _recv_exact(conn, int.from_bytes(head, "big"))
                if not data:
                    return
                out = responder.answer(data)
                if out is None:
                    return
                conn.sendall(len(out).to_bytes(2, "big") + out)
        except OSError:
            pass
        finally:
            conn.close()

    while True:
        conn, _ = sock.accept()
        threading.Thread(target=session, args=(conn,), daemon=True).start()


def _recv_exact(conn: socket.socket, size: int) -> bytes:
    """Exactly ``size`` bytes, or b"" if the peer closes first."""
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return b""
        data += chunk
    return data


def serve_dns(port: int, control: Optional[str], ready: Optional[str]) -> None:
    """Serve lab.test on UDP and TCP ``port`` over IPv4 and IPv6 until killed."""
    responder = DnsResponder(control)
    workers: list[tuple[Callable[[socket.socket, DnsResponder], None], socket.socket]] = []
    workers += [(_serve_udp, s) for s in _listeners(port, socket.SOCK_DGRAM)]
    workers += [(_serve_tcp_dns, s) for s in _listeners(port, socket.SOCK_STREAM)]
    threads = [
        threading.Thread(target=fn, args=(sock, responder), daemon=True) for fn, sock in workers
    ]
    for thread in threads:
        thread.start()
    _write_ready(ready)
    _log(f"dns server for {ZONE} listening on port {port}")
    for thread in threads:
        thread.join()


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point: ``python -m netcheck.lab.servers {tcp,dns} ...``."""
    parser = argparse.ArgumentParser(prog="python -m netcheck.lab.servers")
    sub = parser.add_subparsers(dest="server", required=True)
    tcp = sub.add_parser("tcp", help="TCP service greeter")
    tcp.add_argument("--ports", default="22,80,443", help="comma-separated ports")
    tcp.add_argument("--ready", help="file to create once listening")
    tcp.add_argument("--bind", default="0.0.0.0,::", help="comma-separated addresses")
    dns_p = sub.add_parser("dns", help="authoritative DNS server for lab.test")
    dns_p.add_argument("--port", type=int, default=53)
    dns_p.add_argument("--control", help="JSON file with the mode, re-read for every query")
    dns_p.add_argument("--ready", help="file to create once listening")
    fwd = sub.add_parser("forward", help="stub resolver forwarding to upstream servers")
    fwd.add_argument("--listen", required=True, help="address to listen on (port 53, UDP)")
    fwd.add_argument("--upstream", action="append", default=[], help="upstream server")
    fwd.add_argument("--conf-file", help="dnsmasq-style file whose server= lines are upstreams")
    fwd.add_argument("--mode", choices=FORWARD_MODES, default="normal")
    fwd.add_argument("--ready", help="file to create once listening")
    delay = sub.add_parser("delay", help="hold packets routed into a tun device, then resend")
    delay.add_argument("--dev", required=True, help="tun device to create")
    delay.add_argument("--ms", type=float, default=300.0, help="mean delay")
    delay.add_argument("--jitter-ms", type=float, default=0.0, help="uniform +- spread")
    delay.add_argument("--ready", help="file to create once the device exists")
    args = parser.parse_args(argv)
    try:
        if args.server == "delay":
            serve_delay(args.dev, args.ms, args.jitter_ms, args.ready)
            return 0

        if args.server == "tcp":
            serve_tcp([int(p) for p in args.ports.split(",") if p], args.ready,
                      tuple(a for a in args.bind.split(",") if a))
        elif args.server == "forward":
            upstreams = args.upstream + (_conf_servers(args.conf_file) if args.conf_file else [])
            serve_forward(args.listen, upstreams, args.mode, args.ready)
        else:
            serve_dns(args.port, args.control, args.ready)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
