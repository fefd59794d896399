"""The DNS rungs judged as pure functions: recorded per-server results in, (status, code,
text) out — one row per state, as presentation.handshake_problem is tested. And the retried
query, against a real server on loopback that loses datagrams."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any, Iterator, Optional

import pytest
from netcheck.checks import network
from netcheck.checks.network import ServerRecord

from netcheck.model import Status
from netcheck.probes import dns

OK = ServerRecord("198.18.3.53", ("NOERROR", "NOERROR"), (), 2)
NX = ServerRecord("198.18.3.53", ("NXDOMAIN",), (), 1)
SILENT = ServerRecord("198.18.3.53", (), ("timeout", "timeout"), 20)
REJECTED = ServerRecord("198.18.3.53", (), ("rejected (port unreachable: nothing listens on "
                                            "53) from 198.18.3.53",), 1)
REFUSED = ServerRecord("198.18.3.53", ("REFUSED", "REFUSED"), (), 2)
SERVFAIL = ServerRecord("198.18.3.53", ("SERVFAIL",), (), 1)
RETRIED = ServerRecord("198.18.3.53", ("NOERROR", "NOERROR"), (), 7, retried=2)
SECOND_OK = ServerRecord("198.18.3.54", ("NOERROR",), (), 1)
STUB_DOWN = ServerRecord("127.0.0.53", (), ("rejected (port unreachable: nothing listens on "
                                            "53) from 127.0.0.53",), 1)
STUB_SERVFAIL = ServerRecord("127.0.0.1", ("SERVFAIL", "SERVFAIL"), (), 2)
STUB_OK = ServerRecord("127.0.0.53", ("NOERROR",), (), 1)
UP_OK = ServerRecord("198.18.3.53", ("NOERROR",), (), 1)
UP_SILENT = ServerRecord("198.18.3.53", (), ("timeout",), 10)
UP_RETRIED = ServerRecord("198.18.3.53", ("NOERROR",), (), 6, retried=1, addresses=1)
PARTIAL = ServerRecord("198.18.3.53", ("NOERROR",), ("timeout",), 21)
UP6_NO_ROUTE = ServerRecord("2001:db8:3::53", (), ("network unreachable",), 1)
PINGS_ALL = {"sent": 30, "received": 30, "loss_pct": 0.0}
PINGS_NONE = {"sent": 30, "received": 0, "loss_pct": 100.0}
PINGS_FEW = {"sent": 30, "received": 2, "loss_pct": 93.3}  # 20 silent queries: chance


@pytest.mark.parametrize(("configured", "upstreams", "stub", "in_hosts", "burst", "status",
                          "code", "words"), [
    ([OK], [], None, False, None, Status.PASS, None, ["198.18.3.53 answers"]),
    ([NX], [], None, False, None, Status.PASS, None, ["answers"]),  # the server works
    ([RETRIED], [], None, False, None, Status.PASS, None, ["2 questions", "resend"]),
    # Lookups still get answers, but a server this host is told to ask fails: a warning
    # (its family's path, or a spare the next fault needs).
    ([SILENT, SECOND_OK], [], None, False, None, Status.WARN, "DNS_RESOLVER_UNREACHABLE",
     ["198.18.3.53: no answer to 20 queries", "while 198.18.3.54 answers"]),
    ([REFUSED, SECOND_OK], [], None, False, None, Status.WARN, "DNS_REFUSED",
     ["198.18.3.53: answers REFUSED"]),
    ([SILENT, SECOND_OK], [], None, True, None, Status.PASS, None, ["198.18.3.54 answers"]),
    ([SILENT], [], None, True, None, Status.PASS, None, ["hosts file"]),
    ([SILENT], [], None, False, None, Status.FAIL, "DNS_RESOLVER_UNREACHABLE",
     ["no answer to 20 queries"]),
    ([SILENT], [], None, False, PINGS_ALL, Status.FAIL, "DNS_RESOLVER_UNREACHABLE",
     ["answers ping", "port 53"]),
    ([SILENT], [], None, False, PINGS_NONE, Status.FAIL, "DNS_RESOLVER_UNREACHABLE",
     ["does not answer ping either"]),
    # Silence the path's own loss explains is the path's fault, never the server's.
    ([SILENT], [], None, False, PINGS_FEW, Status.FAIL, "PATH_LOSS",
     ["2 of 30", "loses"]),
    ([REJECTED], [], None, False, None, Status.FAIL, "DNS_RESOLVER_UNREACHABLE",
     ["port unreachable"]),
    ([REFUSED], [], None, False, None, Status.FAIL, "DNS_REFUSED", ["refuses"]),
    ([SERVFAIL], [], None, False, None, Status.FAIL, "DNS_SERVFAIL", ["SERVFAIL"]),
    ([STUB_OK], [UP_SILENT], "systemd-resolved", False, None, Status.PASS, None,
     ["127.0.0.53 answers"]),
    # Behind a working stub, one upstream fails while another answers: the same warning as
    # for resolv.conf's own servers (a policy rule made the IPv6 one unreachable).
    ([STUB_OK], [UP_OK, UP6_NO_ROUTE], "systemd-resolved", False, None, Status.WARN,
     "DNS_RESOLVER_UNREACHABLE", ["127.0.0.53 answers, but its upstream 2001:db8:3::53",
                                  "network unreachable", "while 198.18.3.53 answers"]),
    ([STUB_OK], [UP_OK, UP6_NO_ROUTE], "systemd-resolved", True, None, Status.PASS, None,
     ["127.0.0.53 answers"]),
    ([STUB_DOWN], [UP_OK], "systemd-resolved", False, None, Status.FAIL,
     "DNS_RESOLVER_UNREACHABLE", ["systemd-resolved stub", "the stub is the problem"]),
    ([STUB_SERVFAIL], [UP_OK], "local", False, None, Status.FAIL, "DNS_SERVFAIL",
     ["local stub 127.0.0.1", "the stub is the problem"]),
    ([STUB_SERVFAIL], [UP_SILENT], "local", False, None, Status.FAIL,
     "DNS_RESOLVER_UNREACHABLE", ["the upstream is the problem", "198.18.3.53"]),
    # An upstream that answers netcheck only after resends, on a path that loses most
    # pings: the stub (which asks it fewer times) lost its answers there.
    ([STUB_DOWN], [UP_RETRIED], "local", False, PINGS_FEW, Status.FAIL, "PATH_LOSS",
     ["answers only after resends", "2 of 30"]),
    ([STUB_DOWN], [UP_RETRIED], "local", False, PINGS_ALL, Status.FAIL,
     "DNS_RESOLVER_UNREACHABLE", ["the stub is the problem"]),
    # The A question lost, the empty AAAA answer back: no answer yet, not "no address".
    ([PARTIAL], [], None, False, None, Status.FAIL, "DNS_RESOLVER_UNREACHABLE",
     ["answers 1 of 2 questions, with no address"]),
    ([PARTIAL], [], None, False, PINGS_FEW, Status.FAIL, "PATH_LOSS", ["2 of 30"]),
    # ... unless the path to the upstream loses most packets: then that is the fault.
    ([STUB_DOWN], [UP_SILENT], "local", False, PINGS_FEW, Status.FAIL, "PATH_LOSS",
     ["upstream 198.18.3.53 is silent too", "2 of 30", "loses"]),
    ([STUB_DOWN], [], "systemd-resolved", False, None, Status.FAIL, "DNS_RESOLVER_UNREACHABLE",
     ["127.0.0.53"]),  # upstreams unknown: the stub is all there is to judge
    ([ServerRecord("198.18.3.53")], [], None, False, None, Status.SKIP, None, ["no name"]),
])
def test_judge_servers(configured: list[ServerRecord], upstreams: list[ServerRecord],
                       stub: Optional[str], in_hosts: bool, burst: Optional[dict[str, Any]],
                       status: Status, code: Optional[str], words: list[str]) -> None:
    got = network.judge_servers(configured, upstreams, "www.lab.test", stub, in_hosts, burst)
    assert got[:2] == (status, code), got
    for word in words:
        assert word in got[2], got


def test_one_lost_datagram_is_never_an_unreachable_server() -> None:
    # The recorded answers of a run under loss: A answered on the 3rd send, AAAA on the 1st.
    answers = [dns.DnsAnswer("198.18.3.53", "www.lab.test", "A", "NOERROR", ["198.18.2.10"],
                             sent=3, attempt=3),
               dns.DnsAnswer("198.18.3.53", "www.lab.test", "AAAA", "NOERROR",
                             ["2001:db8:2::10"], sent=1, attempt=1)]
    rec = ServerRecord.of("198.18.3.53", answers)
    assert (rec.state, rec.sent, rec.retried) == ("ok", 4, 1)
    assert network.judge_servers([rec], [], "www.lab.test")[0] is Status.PASS


def _res(answers: list[dns.DnsAnswer], fqdn: Optional[str] = "www.lab.test",
         addresses: Optional[list[str]] = None, duration: float = 12.0,
         nameservers: Optional[list[str]] = None, source: str = "dns", timeout: int = 5,
         rotate: bool = False, tried: Optional[list[str]] = None,
         name: str = "www.lab.test") -> dns.Resolution:
    cfg = dns.ResolverConfig("/etc/resolv.conf", nameservers or ["198.18.3.53"],
                             timeout=timeout, rotate=rotate)
    return dns.Resolution(name=name, config=cfg, answers=answers, fqdn=fqdn,
                          addresses=addresses if addresses is not None else ["198.18.2.10"],
                          dns_addresses=addresses or ["198.18.2.10"], source=source,
                          duration_ms=duration, tried=tried or [name])


A_OK = dns.DnsAnswer("198.18.3.53", "www.lab.test", "A", "NOERROR", ["198.18.2.10"])
A_NX = dns.DnsAnswer("198.18.3.53", "www", "A", "NXDOMAIN")
DEAD_FIRST = dns.DnsAnswer("198.18.3.99", "www.lab.test", "A", error="timeout", sent=10)
A_OK_2ND = dns.DnsAnswer("198.18.3.53", "www.lab.test", "A", "NOERROR", ["198.18.2.10"])
UNROUTED_FIRST = dns.DnsAnswer("198.18.3.99", "www.lab.test", "A", rtt_ms=0.1,
                               error="network unreachable")
LATE_ERROR_FIRST = dns.DnsAnswer("198.18.3.99", "www.lab.test", "A", rtt_ms=3050.0,
                                 error="host unreachable from 198.18.1.1")
V4 = (socket.AF_INET,)


@pytest.mark.parametrize(("res", "status", "code", "words"), [
    (_res([A_OK]), Status.PASS, None, ["www.lab.test -> 198.18.2.10 in 12 ms"]),
    (_res([A_OK], name="www", tried=["www.lab.test"]), Status.PASS, None, ["search list"]),
    (_res([], source="hosts", fqdn=None), Status.PASS, None, ["hosts file"]),
    (_res([A_NX], fqdn=None, addresses=[], name="www", tried=["www.lab.test", "www"]),
     Status.FAIL, "DNS_NXDOMAIN", ["www does not exist", "www.lab.test"]),
    (_res([A_OK], addresses=[]), Status.FAIL, "DNS_NO_ADDRESS", ["no A record"]),
    (_res([A_OK], duration=800), Status.WARN, "DNS_SLOW", ["over 500 ms"]),
    (_res([A_OK], duration=1500, timeout=1), Status.WARN, "DNS_SLOW", ["timeout of 1 s"]),
    (_res([DEAD_FIRST, A_OK_2ND], nameservers=["198.18.3.99", "198.18.3.53"], timeout=2),
     Status.WARN, "DNS_SLOW", ["198.18.3.99", "no answer to 10 queries", "waits 2 s",
                               "before asking 198.18.3.53"]),
    # An error comes at once (no route, an ICMP error): the resolver moves on, nobody waits.
    (_res([UNROUTED_FIRST, A_OK_2ND], nameservers=["198.18.3.99", "198.18.3.53"]),
     Status.PASS, None, ["fails at once", "without waiting"]),
    # ... but an ICMP error that takes seconds (a router's ARP for a host that is gone)
    # is waited for.
    (_res([LATE_ERROR_FIRST, A_OK_2ND], nameservers=["198.18.3.99", "198.18.3.53"]),
     Status.WARN, "DNS_SLOW", ["198.18.3.99", "waits 3.05 s"]),
    # With `options rotate` the dead first server is not asked first every time.
    (_res([DEAD_FIRST, A_OK_2ND], nameservers=["198.18.3.99", "198.18.3.53"], rotate=True),
     Status.PASS, None, ["198.18.2.10"]),
    (_res([], fqdn=None, addresses=[]), Status.SKIP, None, ["no server"]),
])
def test_judge_resolution(res: dns.Resolution, status: Status, code: Optional[str],
                          words: list[str]) -> None:
    got = network.judge_resolution(res, V4)
    assert got[:2] == (status, code), got
    for word in words:
        assert word in got[2], got


class Port53Server:
    """A name server on port 53 of a loopback address; :meth:`reply` says what it sends
    back to a query (None: nothing, the query is lost)."""

    def __init__(self, address: str) -> None:
        self.seen = 0
        self.stop = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, 53))
        self.sock.settimeout(0.05)

        def serve() -> None:
            while not self.stop.is_set():
                try:
                    data, peer = self.sock.recvfrom(4096)
                except socket.timeout:
                    continue
                except OSError:
                    return
                self.seen += 1
                answer = self.reply(data)
                if answer is not None:
                    self.sock.sendto(answer, peer)

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()

    def reply(self, data: bytes) -> Optional[bytes]:
        raise NotImplementedError

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


class LossyServer(Port53Server):
    """Drops the first ``drop`` queries, then answers every A question with 198.18.2.10."""

    def __init__(self, address: str, drop: int) -> None:
        self.drop = drop
        super().__init__(address)

    def reply(self, data: bytes) -> Optional[bytes]:
        import dns.message
        import dns.rrset

        if self.seen <= self.drop:
            return None
        query = dns.message.from_wire(data)
        reply = dns.message.make_response(query)
        reply.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "A",
                                                "198.18.2.10"))
        return reply.to_wire()


@pytest.fixture
def lossy() -> Iterator[LossyServer]:
    try:
        server = LossyServer("127.53.0.1", drop=3)
    except PermissionError:
        pytest.skip("binding port 53 needs root")
    yield server
    server.close()


def test_query_is_sent_again_until_answered(lossy: LossyServer) -> None:
    answer = asyncio.run(dns.query("127.53.0.1", "www.lab.test", "A", 2.0, interval=0.1))
    assert answer.rcode == "NOERROR" and answer.addresses == ["198.18.2.10"]
    assert (answer.sent, answer.attempt) == (4, 4)  # three lost, the fourth answered
    assert answer.rtt_ms is not None and answer.rtt_ms < 100  # measured from the 4th send


def test_query_without_retries_times_out(lossy: LossyServer) -> None:
    answer = asyncio.run(dns.query("127.53.0.1", "www.lab.test", "A", 0.3))
    assert answer.error == "timeout" and answer.sent == 1


class StubLosingItsForward(Port53Server):
    """A stub whose one forwarded query was lost, as dnsmasq behaves then: another id for
    the same question is another client waiting for that forward (no answer); a retry of
    an id it has seen is forwarded again (and answered)."""

    def __init__(self, address: str) -> None:
        self.ids: set[int] = set()
        super().__init__(address)

    def reply(self, data: bytes) -> Optional[bytes]:
        import dns.message

        qid = int.from_bytes(data[:2], "big")
        retry = qid in self.ids
        self.ids.add(qid)
        if not retry:
            return None
        return dns.message.make_response(dns.message.from_wire(data)).to_wire()


def test_a_stub_on_this_host_is_sent_retries_of_one_query() -> None:
    try:
        stub = StubLosingItsForward("127.53.0.2")
    except PermissionError:
        pytest.skip("binding port 53 needs root")
    try:
        retried = asyncio.run(dns.query("127.53.0.2", "www.lab.test", "A", 1.0, interval=0.1,
                                        same_id=True))
        assert retried.rcode == "NOERROR", retried
        # New ids for every resend: the stub only ever sees new clients of its lost forward.
        renamed = asyncio.run(dns.query("127.53.0.2", "www.lab.test", "A", 0.5, interval=0.1))
        assert renamed.error == "timeout", renamed
    finally:
        stub.close()


@pytest.fixture
def answering() -> Iterator[LossyServer]:
    try:
        server = LossyServer("127.53.0.2", drop=0)
    except PermissionError:
        pytest.skip("binding port 53 needs root")
    yield server
    server.close()


@pytest.mark.parametrize(("line", "source", "addresses", "asked"), [
    ("hosts: files dns", "hosts", ["198.18.2.99"], True),  # the hosts file wins, DNS compared
    ("hosts: dns files", "dns", ["198.18.2.10"], True),  # DNS first: the hosts line unused
    ("hosts: files", "hosts", ["198.18.2.99"], False),  # DNS never asked
])
def test_nsswitch_order_decides_the_source(answering: LossyServer, tmp_path: Any, line: str,
                                           source: str, addresses: list[str],
                                           asked: bool) -> None:
    (tmp_path / "resolv.conf").write_text("nameserver 127.53.0.2\n")
    (tmp_path / "hosts").write_text("198.18.2.99 www.lab.test\n")
    (tmp_path / "nsswitch.conf").write_text(line + "\n")
    res = asyncio.run(dns.resolve_like_system(
        "www.lab.test", (socket.AF_INET,), str(tmp_path / "resolv.conf"),
        str(tmp_path / "hosts"), 1.0, nsswitch=str(tmp_path / "nsswitch.conf")))
    assert (res.source, res.addresses) == (source, addresses)
    assert bool(res.answers) is asked and (answering.seen > 0) is asked


class LosesEveryA(Port53Server):
    """A name server whose A answers are always lost: it answers only AAAA questions, with
    no record."""

    def reply(self, data: bytes) -> Optional[bytes]:
        import dns.message
        import dns.rdatatype

        query = dns.message.from_wire(data)
        if query.question[0].rdtype != dns.rdatatype.AAAA:
            return None
        return dns.message.make_response(query).to_wire()


def test_a_lost_question_stops_the_search_list(tmp_path: Any) -> None:
    # The empty AAAA answer beside the lost A question does not say the name has no
    # address, nor that it does not exist: no other search name is tried, nothing settles.
    try:
        server = LosesEveryA("127.53.0.3")
    except PermissionError:
        pytest.skip("binding port 53 needs root")
    try:
        conf = tmp_path / "resolv.conf"
        conf.write_text("nameserver 127.53.0.3\nsearch lab.test\n")
        hosts = tmp_path / "hosts"
        hosts.write_text("")
        res = asyncio.run(dns.resolve_like_system("svc.lab.test", (socket.AF_INET,
                                                                    socket.AF_INET6),
                                                  str(conf), str(hosts), 0.4))
        assert res.tried == ["svc.lab.test"] and res.fqdn is None and not res.addresses, res
        record = ServerRecord.of("127.53.0.3", res.answers)
        assert record.partial and record.state == "DNS_RESOLVER_UNREACHABLE"
    finally:
        server.close()
