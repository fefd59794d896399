"""What the payloads say: TLS records and handshakes, HTTP lines, DNS, mail dialogues, IKE."""

from __future__ import annotations

import struct

import pytest

from netcheck.pcap import protocols as P
from netcheck.pcap.sessions import Analyzer, build_document
from netcheck.pcap.writer import (
    Recorder,
    TcpScript,
    client_hello,
    dns_query,
    dns_response,
    server_hello,
    tls_handshake,
    tls_record,
)


def follow(chunks: list[bytes], start: int = 1000) -> tuple[list[list[str]], P.TlsInfo]:
    info = P.TlsInfo()
    follower = P.TlsFollower(info, from_server=False)
    out = []
    seq = start
    for chunk in chunks:
        out.append(follower.feed(seq, len(chunk), chunk))
        seq += len(chunk)
    return out, info


def test_client_hello_gives_sni_and_offered_versions() -> None:
    record = tls_record(22, client_hello("www.lab.test", (0x0A0A, 0x0304, 0x0303)), 0x0301)
    out, info = follow([record])
    assert out == [["ClientHello"]]
    assert info.sni == "www.lab.test" and info.client_versions == [0x0304, 0x0303]
    assert info.versions() == ["TLSv1.3"]  # no ServerHello yet: the best one offered


def test_server_hello_supported_versions_is_the_negotiated_version() -> None:
    _, info = follow([tls_record(22, server_hello(0x0304))])
    assert info.version == 0x0304 and info.to_json()["versions"] == ["TLSv1.3"]
    _, info = follow([tls_record(22, server_hello(0x0303))])
    assert info.to_json()["versions"] == ["TLSv1.2"]


def test_records_split_across_segments_and_several_messages_in_one_record() -> None:
    flight = tls_record(22, server_hello(0x0303) + tls_handshake(11, b"c" * 3000) +
                        tls_handshake(12, b"k" * 300) + tls_handshake(14, b""))
    data = flight + tls_record(20, b"\x01") + tls_record(22, b"\x99" * 40)  # encrypted now
    chunks = [data[i:i + 1448] for i in range(0, len(data), 1448)]
    out, info = follow(chunks)
    assert out[0] == [] and out[1] == []  # the handshake record is not complete yet
    assert out[2] == ["ServerHello", "Certificate", "ServerKeyExchange", "ServerHelloDone",
                      "ChangeCipherSpec", "EncryptedHandshakeMessage"]
    assert info.messages == out[2]


def test_header_split_in_the_middle_and_retransmitted_bytes_skipped() -> None:
    data = tls_record(23, b"a" * 10) + tls_record(23, b"b" * 10)
    info = P.TlsInfo()
    follower = P.TlsFollower(info, from_server=True)
    assert follower.feed(1, 17, data[:17]) == ["ApplicationData"]
    assert follower.feed(1, 17, data[:17]) == []  # a retransmission: nothing new
    assert follower.feed(18, 2, data[17:19]) == []  # still not the whole header
    assert follower.feed(20, 1, data[19:20]) == []  # the header, not yet the record
    # Named once all of it has passed, as Wireshark names a reassembled record.
    assert follower.feed(21, len(data) - 20, data[20:]) == ["ApplicationData"]


def test_alerts_plain_and_encrypted() -> None:
    out, info = follow([tls_record(21, b"\x02\x2e")])
    assert out == [["Alert"]] and info.alerts == ["fatal:certificate_unknown"]
    out, _ = follow([tls_record(20, b"\x01") + tls_record(21, b"\x55" * 26)])
    assert out == [["ChangeCipherSpec", "EncryptedAlert"]]


def test_a_gap_loses_the_boundary_until_a_record_starts_a_segment() -> None:
    info = P.TlsInfo()
    follower = P.TlsFollower(info, from_server=True)
    # A record whose end is in the missing bytes is not named (tshark cannot reassemble it).
    assert follower.feed(1, 100, tls_record(23, b"x" * 200)[:100]) == []
    assert follower.feed(300, 50, b"y" * 50) == []  # bytes 101-299 never captured
    assert follower.feed(350, 50, b"z" * 50) == []
    assert follower.feed(400, 9, tls_record(23, b"1234")) == ["ApplicationData"]


def test_a_gap_inside_a_record_of_known_length_keeps_the_next_record() -> None:
    # The Certificate record's header says how long it is: the record after it is found even
    # though part of the Certificate was never captured (as Wireshark finds it).
    certificate = tls_record(22, b"\x0b" + (3000).to_bytes(3, "big") + b"c" * 3000)
    done = tls_record(22, b"\x0e\x00\x00\x00")  # ServerHelloDone
    stream = certificate + done
    info = P.TlsInfo()
    follower = P.TlsFollower(info, from_server=True)
    assert follower.feed(1, 1000, stream[:1000]) == []
    # bytes 1001-2000 never captured; the segment after them holds the record's end
    rest = stream[2000:]
    assert follower.feed(2001, len(rest), rest) == ["ServerHelloDone"]
    assert "Certificate" not in info.messages  # it could not be read whole


def test_snaplen_cut_client_hello_is_still_named() -> None:
    record = tls_record(22, client_hello("www.lab.test"))
    info = P.TlsInfo()
    follower = P.TlsFollower(info, from_server=False)
    assert follower.feed(1, len(record), record[:30]) == ["ClientHello"]
    assert info.sni is None  # it was in the bytes not captured
    assert follower.feed(1 + len(record), 6, tls_record(20, b"\x01")) == ["ChangeCipherSpec"]


def test_hello_retry_request_is_told_apart() -> None:
    body = struct.pack(">H", 0x0303) + P.HRR_RANDOM + b"\x00" + struct.pack(">HB", 0x1301, 0) \
        + struct.pack(">HHHH", 6, 43, 2, 0x0304)
    out, info = follow([tls_record(22, tls_handshake(2, body))])
    assert out == [["HelloRetryRequest"]] and info.hrr and info.version is None


def test_http_lines() -> None:
    assert P.http_request_line(b"GET /a?b HTTP/1.1\r\nHost: x\r\n\r\n") == "GET /a?b HTTP/1.1"
    assert P.http_request_line(b"GETTING") is None
    assert P.http_status(b"HTTP/1.1 404 Not Found\r\n\r\n") == (404, "HTTP/1.1 404 Not Found")
    assert P.http_status(b"HTTP/1.1 xyz") is None
    assert P.first_line(b"\x1b[31mred\x00\r\n") == "?[31mred?"


def test_dns_answers_with_compression_cname_mx_ns_and_errors() -> None:
    msg = dns_response(7, "alias.lab.test", 1, [(5, b"\x03www\xc0\x12"),
                                                 (1, bytes([198, 18, 2, 10]))])
    parsed = P.parse_dns(msg)
    assert parsed is not None
    assert parsed["answers"] == ["CNAME www.lab.test", "198.18.2.10"]
    mx = dns_response(8, "lab.test", 15, [(15, b"\x00\x0a\x04mail\xc0\x0c")])
    assert P.parse_dns(mx)["answers"] == ["10 mail.lab.test"]  # type: ignore[index]
    ns = dns_response(9, "lab.test", 2, [(2, b"\x02ns\xc0\x0c")])
    assert P.parse_dns(ns)["answers"] == ["ns.lab.test"]  # type: ignore[index]
    nx = P.parse_dns(dns_response(10, "nope.lab.test", 1, [], rcode=3))
    assert nx is not None and nx["rcode"] == "NXDOMAIN" and nx["answers"] == []
    query = P.parse_dns(dns_query(11, "www.lab.test", 28))
    assert query == {"id": 11, "response": False, "rcode": "NOERROR",
                     "query": "www.lab.test", "type": "AAAA", "answers": []}


@pytest.mark.parametrize("junk", [b"", b"\0" * 11, b"\x00\x01\x01\x00\x00\x01" + b"\0" * 6 +
                                  b"\xc0\x0c", bytes(range(256)) * 2])
def test_dns_parser_never_crashes_on_junk(junk: bytes) -> None:
    P.parse_dns(junk)


def test_ike_header() -> None:
    header = bytes(range(1, 9)) + bytes(range(9, 17)) + bytes([33, 0x20, 35, 0x20]) + \
        bytes(4) + struct.pack(">I", 28)
    assert P.parse_ike(header) == {"version": "IKEv2", "exchange": "IKE_AUTH",
                                   "initiator_spi": "0x0102030405060708",
                                   "responder_spi": "0x090a0b0c0d0e0f10", "response": True}
    assert P.parse_ike(b"\0" * 10) is None


def test_mail_dialogue_masks_credentials() -> None:
    assert P.mail_line(b"AUTH PLAIN AGFsdW1uZQBzM2NyZXQ=\r\n", False, "smtp") == \
        "C: AUTH PLAIN ******** (credentials in clear text)"
    assert P.mail_line(b"PASS hunter2\r\n", False, "pop3") == \
        "C: PASS ******** (credentials in clear text)"
    assert P.mail_line(b"+OK Dovecot ready.\r\n", True, "pop3") == "S: +OK Dovecot ready."


def test_pop3_dialogue_in_a_session() -> None:
    rec = Recorder()
    script = TcpScript(rec, "198.18.1.2", "198.18.2.10", 110)
    script.handshake()
    for from_client, line in ((False, b"+OK Dovecot ready.\r\n"), (True, b"USER alumne\r\n"),
                              (False, b"+OK\r\n"), (True, b"PASS s3cret\r\n"),
                              (False, b"+OK Logged in.\r\n"), (True, b"RETR 1\r\n"),
                              (False, b"+OK 752 octets\r\nFrom: x\r\n"),
                              (False, b"Subject: y\r\n.\r\n"), (True, b"QUIT\r\n")):
        script.send(from_client, line)
    analyzer = Analyzer()
    analyzer.feed(rec.packets())
    (s,) = build_document(analyzer, "x", False, [], "en")["sessions"]
    assert s["app"] == "pop3"
    assert s["dialogue"] == ["S: +OK Dovecot ready.", "C: USER alumne", "S: +OK",
                             "C: PASS ******** (credentials in clear text)",
                             "S: +OK Logged in.", "C: RETR 1", "S: +OK 752 octets",
                             "S: (continuation, 15 bytes)", "C: QUIT"]


def test_starttls_turns_an_smtp_session_into_tls() -> None:
    rec = Recorder()
    script = TcpScript(rec, "198.18.1.2", "198.18.2.10", 587)
    script.handshake()
    script.send(False, b"220 mail.lab.test ESMTP\r\n")
    script.send(True, b"STARTTLS\r\n")
    script.send(False, b"220 2.0.0 Ready to start TLS\r\n")
    script.send(True, tls_record(22, client_hello("mail.lab.test")))
    analyzer = Analyzer()
    analyzer.feed(rec.packets())
    (s,) = build_document(analyzer, "x", False, [], "en")["sessions"]
    assert s["app"] == "tls" and s["tls"]["sni"] == "mail.lab.test"
    assert s["dialogue"] == ["S: 220 mail.lab.test ESMTP", "C: STARTTLS",
                             "S: 220 2.0.0 Ready to start TLS"]


def test_dns_beyond_the_cap_is_counted_without_parsing(monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    from netcheck.pcap import sessions
    from netcheck.pcap.writer import frame, udp

    monkeypatch.setattr(sessions, "MAX_DNS", 2)
    monkeypatch.setattr(P, "parse_dns", _counting(P.parse_dns))
    rec = Recorder()
    for i in range(5):
        q = dns_query(i, "www.lab.test")
        rec.add(1 + i, frame("198.18.1.2", "198.18.3.53", 17,
                             udp("198.18.1.2", "198.18.3.53", 40000, 53, q)))
    analyzer = Analyzer()
    analyzer.feed(rec.packets())
    doc = build_document(analyzer, "x", False, [], "en")
    assert len(doc["dns"]) == 2 and "only the first 2 DNS exchanges" in doc["warnings"][0]
    assert P.parse_dns.calls == 2  # type: ignore[attr-defined]


def _counting(func):  # type: ignore[no-untyped-def]
    def wrapper(*args):  # type: ignore[no-untyped-def]
        wrapper.calls += 1  # type: ignore[attr-defined]
        return func(*args)
    wrapper.calls = 0  # type: ignore[attr-defined]
    return wrapper
