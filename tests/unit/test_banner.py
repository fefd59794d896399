"""The greeting probe: what the first bytes are, how they print, and real conversations with
the lab's greeters (and a lab DNS responder) on loopback."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any, Iterator

import pytest

from netcheck.lab.appserver import AppServer
from netcheck.probes import banner
from netcheck.probes.banner import classify, first_line, printable


@pytest.mark.parametrize("data, kind", [
    (b"", "empty"),
    (b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", "ssh"),
    (b"\r\nSSH-1.99-Cisco-1.25\r\n", "ssh"),
    (b"HTTP/1.1 400 Bad Request\r\n", "http"),
    (b"220 mail.lab.test ESMTP Postfix\r\n", "smtp"),
    (b"220-mail.lab.test ESMTP\r\n220 more\r\n", "smtp"),
    (b"554 5.7.1 go away\r\n", "smtp"),
    (b"+OK Dovecot ready.\r\n", "pop3"),
    (b"-ERR no\r\n", "pop3"),
    (b"* OK [CAPABILITY IMAP4rev1] ready\r\n", "imap"),
    (b"* BYE shutting down\r\n", "imap"),
    (b"\x16\x03\x01\x00\xa5\x01\x00", "tls"),
    (b"\x15\x03\x03\x00\x02\x02\x28", "tls"),
    (b"\x00\xff\xfe\x80\x81\x82\x83\x84", "binary"),
    (b"J\x00\x00\x00\n8.0.36\x00", "binary"),
    (b"hello there\r\n", "text"),
])
def test_classify_names_the_protocol(data: bytes, kind: str) -> None:
    assert classify(data) == kind


def test_printable_escapes_and_bounds() -> None:
    assert printable(b"220 ok\r\n\x00\xff\tz") == "220 ok\\r\\n\\x00\\xff\\tz"
    long = printable(b"a" * 500, limit=20)
    assert len(long) <= 23 and long.endswith("...")
    assert first_line(b"\r\n\r\nSSH-2.0-x\r\nmore") == "SSH-2.0-x"


# -- conversations on loopback ---------------------------------------------------------------

@pytest.fixture
def greeter() -> Iterator[Any]:
    """Start an appserver mode on a loopback port; stopped after the test."""
    stops: list[threading.Event] = []

    def start(mode: str, **kw: Any) -> int:
        server = AppServer(mode, [("127.0.0.1", 0)], "mail.lab.test", **kw)
        (_, port), = server.bind()
        stop = threading.Event()
        stops.append(stop)
        threading.Thread(target=server.serve_forever, args=(stop,), daemon=True).start()
        return port

    yield start
    for stop in stops:
        stop.set()


def probe(protocol: str, port: int, **kw: Any) -> banner.BannerResult:
    kw.setdefault("timeout", 1.0)
    return asyncio.run(banner.probe(protocol, "127.0.0.1", port, **kw))


def test_smtp_greeting_then_ehlo_capabilities_and_quit(greeter: Any) -> None:
    r = probe("smtp", greeter("smtp"))
    assert (r.state, r.heard, r.reply_code) == ("answered", "smtp", "220")
    assert r.greeting == "220 mail.lab.test ESMTP netcheck-lab"
    assert "PIPELINING" in r.capabilities and r.starttls is False  # no certificate: no STARTTLS
    assert [x["sent"] for x in r.exchange] == ["EHLO netcheck.invalid", "QUIT"]
    assert r.exchange[1]["received"].startswith("221")


def test_smtp_rejection_is_its_code(greeter: Any) -> None:
    r = probe("submission", greeter("smtp-reject"))
    assert (r.heard, r.reply_code) == ("smtp", "554") and not r.exchange


@pytest.mark.parametrize("mode, protocol, code", [
    ("pop3", "pop3", "+OK"), ("pop3-reject", "pop3", "-ERR"),
    ("imap", "imap", "OK"), ("imap-bye", "imap", "BYE"), ("ssh", "ssh", "SSH-2.0"),
])
def test_greetings_and_their_reply_codes(greeter: Any, mode: str, protocol: str,
                                         code: str) -> None:
    r = probe(protocol, greeter(mode))
    assert (r.state, r.heard, r.reply_code) == ("answered", protocol, code)


def test_ssh_version_line_is_the_greeting(greeter: Any) -> None:
    r = probe("ssh", greeter("ssh"))
    assert r.greeting is not None and r.greeting.startswith("SSH-2.0-OpenSSH_9.2p1")


def test_generic_banner_of_binary_garbage_is_printable(greeter: Any) -> None:
    r = probe("generic", greeter("binary"))
    assert (r.state, r.heard) == ("answered", "binary")
    assert r.greeting is not None and r.greeting.startswith("\\x00\\xff")
    assert r.bytes_received <= banner.MAX_GREETING_BYTES


def test_generic_banner_of_a_silent_service_waits_half_a_second(greeter: Any) -> None:
    start = time.monotonic()
    r = probe("generic", greeter("silent"), timeout=2.0)
    assert r.state == "silent" and r.heard == "empty"
    assert 0.4 < time.monotonic() - start < 1.0


def test_silent_mail_server_is_nudged_and_stays_silent(greeter: Any) -> None:
    start = time.monotonic()
    r = probe("smtp", greeter("silent"), timeout=0.5)
    assert r.state == "silent" and r.heard == "empty"
    assert r.exchange and r.exchange[0]["received"] == "(nothing)"
    assert time.monotonic() - start < 1.5


def test_http_server_on_the_smtp_port_shows_itself_when_nudged(greeter: Any) -> None:
    r = probe("smtp", greeter("http"), timeout=0.5)
    assert r.state == "silent" and r.heard == "http"
    assert r.exchange[0]["received"].startswith("HTTP/1.1 400")


def test_pop3s_greeting_over_tls(greeter: Any, tmp_path: Any) -> None:
    from netcheck.lab.pki import LabCA
    from netcheck.probes.tls import client_context

    ca = LabCA(tmp_path)
    issued = ca.issue("mail", ["localhost", "127.0.0.1"])
    port = greeter("pop3", tls_cert=str(issued.cert), tls_key=str(issued.key))
    context = client_context(str(ca.files.cert))
    r = probe("pop3", port, tls_context=context, server_hostname="127.0.0.1")
    assert (r.state, r.tls, r.reply_code) == ("answered", True, "+OK")
    assert r.tls_version and r.to_json()["timings"].get("tls_ms") is not None
    untrusted = probe("pop3", port, tls_context=client_context(),
                      server_hostname="127.0.0.1")
    assert untrusted.state == "tls_failed" and untrusted.error


def test_smtp_offers_starttls_when_it_has_a_certificate(greeter: Any, tmp_path: Any) -> None:
    from netcheck.lab.pki import LabCA

    issued = LabCA(tmp_path).issue("mail", ["127.0.0.1"])
    port = greeter("smtp", tls_cert=str(issued.cert), tls_key=str(issued.key), starttls=True)
    r = probe("smtp", port)
    assert r.starttls is True and "STARTTLS" in r.capabilities


def test_refused_port_is_a_connect_failure() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = probe("ssh", port)
    assert r.state == "connect_failed" and r.error == "ECONNREFUSED"


# -- a DNS target ----------------------------------------------------------------------------

@pytest.fixture
def dns_server() -> Iterator[int]:
    """The lab's DNS responder (lab.test) on a loopback UDP port."""
    from netcheck.lab.servers import DnsResponder

    responder = DnsResponder(None)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(65535)
            except OSError:
                continue
            out = responder.answer(data)
            if out is not None:
                sock.sendto(out, peer)

    threading.Thread(target=serve, daemon=True).start()
    yield sock.getsockname()[1]
    stop.set()
    sock.close()


def ask(port: int, qname: str, rdtype: str, timeout: float = 1.0) -> banner.DnsTargetAnswer:
    return asyncio.run(banner.ask_dns("127.0.0.1", port, qname, rdtype, timeout))


def test_dns_target_answers_for_its_zone(dns_server: int) -> None:
    a = ask(dns_server, "lab.test", "SOA")
    assert (a.rcode, a.authoritative) == ("NOERROR", True)
    assert a.answers and "ns.lab.test." in a.answers[0]


def test_dns_target_refuses_names_outside_its_zone(dns_server: int) -> None:
    a = ask(dns_server, ".", "NS")
    assert a.rcode == "REFUSED" and a.to_json()["rcode"] == "REFUSED"


def test_silent_dns_target_times_out_in_time() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as quiet:
        quiet.bind(("127.0.0.1", 0))
        start = time.monotonic()
        a = ask(quiet.getsockname()[1], "lab.test", "SOA", timeout=0.3)
    assert a.error == "timeout" and a.rcode is None
    assert time.monotonic() - start < 1.0
