"""The TCP analysis: handshakes, closes and trouble, counted the way Wireshark counts them.

Each test plays one conversation with the writer's TcpScript (sequence numbers kept right)
and reads what the analyzer concludes, as the netcheck-pcap/1 document says it.
"""

from __future__ import annotations

import struct
from typing import Any, Optional

import pytest

from netcheck.pcap import sessions as sessions_module
from netcheck.pcap.filters import Filter
from netcheck.pcap.sessions import Analyzer, build_document
from netcheck.pcap.writer import (
    ACK,
    FIN,
    PSH,
    RST,
    SYN,
    Recorder,
    TcpScript,
    ether,
    frame,
    icmp,
    ipv4,
    ipv6,
    tcp,
    udp,
)

C, S = "198.18.1.2", "198.18.2.10"


def analyse(rec: Recorder, session: Optional[int] = None, **options: Any) -> dict[str, Any]:
    analyzer = Analyzer(want_session=session, **options)
    analyzer.feed(rec.packets())
    return build_document(analyzer, "test.pcap", False, [], "en", session)


def only(doc: dict[str, Any]) -> dict[str, Any]:
    (s,) = doc["sessions"]
    return s


def notes(s: dict[str, Any]) -> list[str]:
    return [e["note"] for e in s["events"]]


def test_handshake_numbers_are_relative_and_explained_with_a_and_b() -> None:
    rec = Recorder()
    script = TcpScript(rec, C, S, 80, isn_c=3_000_000_000, isn_s=77, rtt=0.0004)
    script.handshake()
    script.send(True, b"GET / HTTP/1.1\r\nHost: www.lab.test\r\n\r\n")
    s = only(analyse(rec, session=1))
    syn, synack, ack = s["events"][:3]
    assert (syn["flags"], syn["seq"], syn["ack"]) == ("S", 0, 0)
    assert (synack["flags"], synack["seq"], synack["ack"]) == ("SA", 0, 1)
    assert (ack["flags"], ack["seq"], ack["ack"]) == ("A", 1, 1)
    assert syn["note"] == "SYN: client opens, initial sequence number A = 3000000000"
    assert synack["note"] == ("SYN-ACK: server accepts, acknowledges A+1, its own ISN B = 77")
    assert ack["note"] == ("ACK: client acknowledges B+1; handshake complete "
                           "(iRTT 0.400 ms)")
    assert syn["options"] == "MSS=1460 SACK_PERM WS=128"
    assert s["handshake"] == {"complete": True, "syn_seen": True, "synack_seen": True,
                              "ack_seen": True, "syn_retries": 0, "rtt_ms": 0.4,
                              "answered_by_rst": False, "synack_acked": True,
                              "synack_new_isns": 0}
    assert s["bytes"] == {"client": 38, "server": 0}
    assert s["events"][3]["note"] == "HTTP request: GET / HTTP/1.1"


def test_scaled_window_is_shown_once_both_sides_agreed() -> None:
    rec = Recorder()
    script = TcpScript(rec, C, S, 80, wscale=8)
    script.handshake()
    events = only(analyse(rec, session=1))["events"]
    assert events[0]["win"] == 64240  # a SYN's window is never scaled
    assert events[2]["win"] == 64240 << 8


def test_syn_never_answered_is_retried() -> None:
    rec = Recorder()
    script = TcpScript(rec, C, S, 22)
    script.syn()
    script.syn(advance=1.0)
    script.syn(advance=2.0)
    s = only(analyse(rec, session=1))
    assert s["handshake"]["complete"] is False
    assert s["handshake"]["syn_retries"] == 2 and s["handshake"]["rtt_ms"] is None
    assert s["retransmissions"] == 2  # as tshark marks them
    assert s["close"] == "none" and s["closed_by"] is None
    assert "SYN sent again (attempt 3)" in notes(s)[2]


def test_irtt_is_measured_from_the_last_syn_like_wireshark() -> None:
    rec = Recorder()
    script = TcpScript(rec, C, S, 80, rtt=0.002)
    script.syn()
    script.syn(advance=1.0)  # the first SYN got lost
    script.synack()
    script.cseq += 1
    script.sseq += 1
    script.cack = script.sseq
    script.packet(True, ACK, advance=0.001)
    s = only(analyse(rec))
    assert s["handshake"]["complete"] and s["handshake"]["syn_retries"] == 1
    assert s["handshake"]["rtt_ms"] == pytest.approx(2.0, abs=0.001)


def test_syn_answered_by_rst_is_a_refusal() -> None:
    rec = Recorder()
    script = TcpScript(rec, C, S, 23)
    script.syn()
    script.sack = script.cseq + 1
    script.packet(False, RST | ACK, seq=0, advance=0.0002)
    s = only(analyse(rec, session=1))
    assert s["handshake"]["answered_by_rst"] and not s["handshake"]["complete"]
    assert (s["close"], s["closed_by"], s["close_detail"]) == ("rst", "server", "refused")
    assert "refuses the connection" in notes(s)[1]


@pytest.mark.parametrize("client_first, combined, detail", [
    (True, True, "three-way"), (True, False, "four-way"), (False, False, "four-way")])
def test_fin_close_says_who_closed_first_and_how(client_first: bool, combined: bool,
                                                 detail: str) -> None:
    rec = Recorder()
    script = TcpScript(rec, C, S, 80)
    script.handshake()
    script.send(True, b"hello")
    script.close(client_first=client_first, combined=combined)
    s = only(analyse(rec, session=1))
    assert s["close"] == "fin" and s["close_detail"] == detail
    assert s["closed_by"] == ("client" if client_first else "server")
    assert notes(s)[-1] == "ACK of the last FIN: connection closed"
    assert f"FIN: {'client' if client_first else 'server'} closes first" in \
        " ".join(notes(s))


def test_simultaneous_close() -> None:
    rec = Recorder()
    script = TcpScript(rec, C, S, 80)
    script.handshake()
    # Both FINs leave before either side has seen the other's.
    script.packet(True, FIN | ACK, advance=0.001)
    script.packet(False, FIN | ACK)
    script.cseq += 1
    script.sseq += 1
    script.packet(True, ACK, ack=script.sseq, advance=0.0002)
    script.packet(False, ACK, ack=script.cseq)
    s = only(analyse(rec, session=1))
    assert s["close"] == "fin" and s["close_detail"] == "simultaneous"
    assert "simultaneous close" in notes(s)[4]


def test_half_close_and_rst_after_fin() -> None:
    rec = Recorder()
    script = TcpScript(rec, C, S, 80)
    script.handshake()
    script.fin(True)
    script.packet(False, ACK, advance=0.0002)
    half = only(analyse(rec))
    assert (half["close"], half["closed_by"]) == ("half", "client")
    script.rst(True, advance=0.01)
    after = only(analyse(rec, session=1))
    assert (after["close"], after["closed_by"], after["close_detail"]) == (
        "rst", "client", "rst-after-fin")
    assert "it may still send data: half-close" in notes(after)[4]


def test_rst_in_the_middle_of_a_session() -> None:
    rec = Recorder()
    script = TcpScript(rec, C, S, 22)
    script.handshake()
    script.send(False, b"SSH-2.0-OpenSSH_9.2p1 netcheck-lab\r\n")
    script.rst(True)
    s = only(analyse(rec, session=1))
    assert (s["close"], s["closed_by"], s["close_detail"]) == ("rst", "client", "rst")
    assert s["app"] == "ssh" and s["dialogue"] == ["S: SSH-2.0-OpenSSH_9.2p1 netcheck-lab"]
    assert notes(s)[-1] == "RST: client aborts the connection"


def _lossy_download(rec: Recorder) -> TcpScript:
    """Server sends A, B (lost before the capture point), C, D; the client ACKs A three
    times; B comes again (fast retransmission); then a spurious copy of A."""
    script = TcpScript(rec, C, S, 80, rtt=0.01)
    script.handshake()
    base = script.sseq
    seg = b"x" * 1000
    script.packet(False, ACK, seg, seq=base, advance=0.001)             # A
    script.packet(True, ACK, ack=base + 1000, advance=0.001)            # ACK A
    script.packet(False, ACK, seg, seq=base + 2000, advance=0.001)      # C (B lost)
    script.packet(True, ACK, ack=base + 1000, advance=0.0001)           # dup 1
    script.packet(False, ACK, seg, seq=base + 3000, advance=0.0001)     # D
    script.packet(True, ACK, ack=base + 1000, advance=0.0001)           # dup 2
    script.packet(False, ACK, seg, seq=base + 1000, advance=0.001)      # B again: fast
    script.packet(True, ACK, ack=base + 4000, advance=0.0001)
    script.packet(False, ACK, seg, seq=base, advance=0.2)               # A again: spurious
    script.sseq = base + 4000
    script.cack = base + 4000
    return script


def test_retransmissions_and_duplicate_acks_as_wireshark_counts_them() -> None:
    rec = Recorder()
    _lossy_download(rec)
    s = only(analyse(rec, session=1))
    assert s["dup_acks"] == 2
    assert s["retransmissions"] == 2  # the fast one and the spurious one
    assert s["bytes"]["server"] == 4000  # B counted once, though captured only late
    by_n = {e["n"]: e["note"] for e in s["events"]}
    assert by_n[6].startswith("[previous segment not captured]")
    assert by_n[7].startswith("[duplicate ACK #1")
    assert by_n[9].startswith("[duplicate ACK #2")
    assert by_n[10].startswith("[fast retransmission")
    assert by_n[12].startswith("[spurious retransmission")


def test_timeout_retransmission_and_out_of_order() -> None:
    rec = Recorder()
    script = TcpScript(rec, C, S, 80, rtt=0.01)
    script.handshake()
    base = script.cseq
    script.packet(True, PSH | ACK, b"a" * 100, seq=base, advance=0.001)
    script.packet(True, PSH | ACK, b"a" * 100, seq=base, advance=0.3)  # no ACK came: RTO
    script.packet(True, ACK, b"b" * 100, seq=base + 200, advance=0.3)
    script.packet(True, ACK, b"c" * 100, seq=base + 100, advance=0.0001)  # overtaken
    s = only(analyse(rec))
    assert s["retransmissions"] == 1 and s["out_of_order"] == 1


def test_zero_window_and_keepalive() -> None:
    rec = Recorder()
    script = TcpScript(rec, C, S, 80)
    script.handshake()
    script.send(False, b"z" * 500)
    script.packet(True, ACK, window=0, advance=0.001)  # the client's buffer is full
    script.packet(True, ACK, seq=script.cseq - 1, advance=30)  # keep-alive: one byte back
    s = only(analyse(rec, session=1))
    assert s["zero_windows"] == 1 and s["retransmissions"] == 0 and s["dup_acks"] == 0
    assert "[zero window: client's receive buffer is full" in notes(s)[-2]
    assert notes(s)[-1].startswith("[keep-alive]")


def test_a_new_syn_on_the_same_ports_is_a_new_session() -> None:
    rec = Recorder()
    first = TcpScript(rec, C, S, 80, cport=40000, isn_c=1000)
    first.handshake()
    first.close()
    second = TcpScript(rec, C, S, 80, cport=40000, isn_c=9_000_000, t0=1_700_000_010.0)
    second.handshake()
    doc = analyse(rec)
    assert [s["packets"] for s in doc["sessions"]] == [6, 3]
    assert [s["id"] for s in doc["sessions"]] == [1, 2]


def test_capture_started_mid_session() -> None:
    rec = Recorder()
    script = TcpScript(rec, C, S, 443, cport=50000)
    script.handshake()
    script.send(False, b"\x17\x03\x03\x00\x05hello")
    rec.frames = rec.frames[3:]  # the handshake happened before the capture started
    s = only(analyse(rec, session=1))
    assert s["handshake"]["syn_seen"] is False and not s["handshake"]["complete"]
    assert s["server"] == "198.18.2.10:443"  # the well-known port names the server
    assert s["events"][0]["seq"] == 1  # Wireshark's relative numbering without a SYN


def test_icmp_error_about_a_syn_is_attached_to_its_session() -> None:
    rec = Recorder()
    script = TcpScript(rec, C, S, 25)
    script.syn()
    syn_ip = rec.frames[0][1][14:]
    error = icmp(3, 13, b"\0\0\0\0" + syn_ip[:28])
    rec.add(rec.frames[0][0] + 0.001, ether(ipv4("198.18.1.1", C, 1, error), 0x0800))
    doc = analyse(rec, session=1)
    s = only(doc)
    assert s["icmp"] == "destination unreachable: administratively prohibited from 198.18.1.1"
    assert s["events"][1]["dir"] == "icmp"
    assert {"proto": "icmp", "packets": 1, "messages": {
        "destination unreachable: administratively prohibited": 1}} in doc["other"]


@pytest.mark.parametrize("linktype", [1, 113, 276, 101, 0, 228])
def test_every_link_type_gives_the_same_session(linktype: int) -> None:
    rec = Recorder(linktype)
    script = TcpScript(rec, C, S, 80, linktype=linktype)
    script.handshake()
    script.send(True, b"GET / HTTP/1.1\r\n\r\n")
    script.send(False, b"HTTP/1.1 204 No Content\r\n\r\n")
    script.close()
    s = only(analyse(rec))
    assert s["packets"] == 10 and s["http"] == [{"request": "GET / HTTP/1.1", "status": 204}]
    assert s["handshake"]["complete"] and s["close"] == "fin"


def test_vlan_tagged_ipv6_with_extension_headers() -> None:
    rec = Recorder()
    c6, s6 = "2001:db8:1::2", "2001:db8:2::10"
    hop_by_hop = bytes([6, 0]) + b"\x01\x04\0\0\0\0"  # next header TCP, PadN
    t0 = 1_700_000_000.0
    for i, (src, dst, sp, dp, seq, ack, flags) in enumerate((
            (c6, s6, 40000, 80, 100, 0, SYN), (s6, c6, 80, 40000, 500, 101, SYN | ACK),
            (c6, s6, 40000, 80, 101, 501, ACK))):
        segment = tcp(src, dst, sp, dp, seq, ack, flags)
        packet = ipv6(src, dst, 6, segment, ext=hop_by_hop, ext_nh=0)
        rec.add(t0 + i * 0.001, ether(packet, 0x86DD, vlan=42))
    s = only(analyse(rec))
    assert s["client"] == "[2001:db8:1::2]:40000" and s["handshake"]["complete"]


def test_ip_fragments_and_non_ip_frames_are_counted_not_decoded() -> None:
    rec = Recorder()
    later_fragment = ipv4(C, S, 17, b"\0" * 40, fragment=0x0010)
    rec.add(1.0, ether(later_fragment, 0x0800))
    rec.add(1.1, ether(b"\0" * 28, 0x0806))  # ARP
    doc = analyse(rec)
    assert {"proto": "ip-fragment", "packets": 1} in doc["other"]
    assert {"proto": "arp", "packets": 1} in doc["other"]
    assert doc["packets"] == 2 and doc["sessions"] == []


def test_udp_flows_dns_and_ipsec_in_other() -> None:
    from netcheck.pcap.writer import dns_query, dns_response

    rec = Recorder()
    rec.add(1.0, frame(C, "198.18.3.53", 17, udp(C, "198.18.3.53", 5353 + 1, 53,
                                                  dns_query(0x1234, "www.lab.test", 28))))
    answer = dns_response(0x1234, "www.lab.test", 28, [(28, bytes(15) + b"\x10")])
    rec.add(1.002, frame("198.18.3.53", C, 17, udp("198.18.3.53", C, 53, 5354, answer),
                         from_client=False))
    rec.add(1.1, frame(C, S, 17, udp(C, S, 40000, 123, b"\x23" + b"\0" * 47)))
    ike = bytes(range(1, 9)) + bytes(8) + bytes([33, 0x20, 34, 0x08]) + bytes(4) + \
        struct.pack(">I", 28)
    rec.add(1.2, frame(C, S, 17, udp(C, S, 500, 500, ike)))
    rec.add(1.3, frame(C, S, 50, b"\xca\xf3\x03\x9c" + b"\0" * 20))
    doc = analyse(rec)
    assert doc["dns"] == [{"t": 0.0, "id": 0x1234, "query": "www.lab.test", "type": "AAAA",
                           "rcode": "NOERROR", "answers": ["::10"], "server": "198.18.3.53",
                           "transport": "udp", "rtt_ms": 2.0}]
    other = {o["proto"]: o for o in doc["other"]}
    assert other["udp"]["server"] == "198.18.2.10:123" and other["udp"]["packets"] == 1
    assert other["isakmp"]["exchanges"] == ["IKE_SA_INIT"]
    assert other["isakmp"]["spis"] == ["0x0102030405060708/0x0000000000000000"]
    assert other["esp"] == {"proto": "esp", "packets": 1, "spis": ["0xcaf3039c"]}


def test_filter_keeps_matching_sessions_only() -> None:
    rec = Recorder()
    for port, cport in ((80, 40001), (22, 40002), (443, 40003)):
        script = TcpScript(rec, C, S, port, cport=cport)
        script.handshake()
    doc = analyse(rec, packet_filter=Filter("host 198.18.2.10 and not port 22"))
    assert [s["server"] for s in doc["sessions"]] == ["198.18.2.10:80", "198.18.2.10:443"]
    doc = analyse(rec, packet_filter=Filter("(src port 40002 or dst port 40002) and tcp"))
    assert [s["server"] for s in doc["sessions"]] == ["198.18.2.10:22"]
    doc = analyse(rec, packet_filter=Filter("net 198.19.0.0/16"))
    assert doc["sessions"] == []


@pytest.mark.parametrize("text, message", [
    ("", "empty"), ("host", "ends too early"), ("host www.lab.test", "not an IP address"),
    ("port 70000", "1 to 65535"), ("frobnicate", "unknown filter word"),
    ("(port 80", r"missing \)"), ("port 80 port 81", "unexpected"),
])
def test_bad_filters_say_why(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Filter(text)


def test_sessions_beyond_the_cap_are_counted_together(monkeypatch: pytest.MonkeyPatch
                                                      ) -> None:
    monkeypatch.setattr(sessions_module, "LIVE_LIMIT", 8)  # sweep early and often
    rec = Recorder()
    for i in range(40):
        script = TcpScript(rec, C, S, 80, cport=41000 + i, t0=1_700_000_000 + i)
        script.handshake()
        script.send(True, b"q" * 10)
        script.close()
    analyzer = Analyzer(max_sessions=5)
    sizes = []
    original = analyzer._open

    def watch(*args: Any) -> Any:
        sizes.append(len(analyzer.table))
        return original(*args)

    analyzer._open = watch  # type: ignore[method-assign]
    analyzer.feed(rec.packets())
    doc = build_document(analyzer, "x", False, [], "en")
    assert len(doc["sessions"]) == 5 and doc["sessions_total"] == 40
    assert doc["sessions_beyond_cap"] == {
        "sessions": 35, "packets": 35 * 8, "bytes": {"client": 350, "server": 0},
        "retransmissions": 0, "handshake_incomplete": 0, "rst": 0}
    assert max(sizes) <= 2 * 5 + 2 * 8 * 2 + 2  # kept sessions + what the sweeps allow


def test_events_are_kept_for_the_chosen_session_only_and_capped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sessions_module, "MAX_EVENTS", 5)
    rec = Recorder()
    for cport in (40001, 40002):
        script = TcpScript(rec, C, S, 80, cport=cport)
        script.handshake()
        script.send(False, b"y" * 5000)
    analyzer = Analyzer(want_session=2)
    analyzer.feed(rec.packets())
    assert analyzer.session(1).events is None
    doc = build_document(analyzer, "x", False, [], "en", 2)
    (s,) = doc["sessions"]
    assert s["id"] == 2 and len(s["events"]) == 5 and s["events_omitted"] == 6


def test_seed_000_http_session_reads_as_wireshark_showed_it() -> None:
    # Frames 103-111 of the student's Wireshark table (shared/seeds/000_*): the numbers there
    # are what our events must say, window scaling included (WS=256 and WS=64).
    rec = Recorder()
    script = TcpScript(rec, "198.18.56.1", "198.18.56.104", 80, cport=63313, wscale=None)
    script.packet(True, SYN, options=b"\x02\x04\x05\xb4\x01\x03\x03\x08\x01\x01\x04\x02",
                  ack=0, window=64240)
    script.sack = script.cseq + 1
    script.packet(False, SYN | ACK, options=b"\x02\x04\x05\xb4\x01\x01\x04\x02\x01\x03\x03\x06",
                  window=64240, advance=0.0004)
    script.cseq += 1
    script.sseq += 1
    script.cack = script.sseq
    script.cwin, script.swin = 8212, 1003
    script.packet(True, ACK, advance=0.0001)
    script.send(True, b"GET / HTTP/1.1\r\n" + b"h" * 60 + b"\r\n")
    script.packet(False, PSH | ACK, b"HTTP/1.1 200 OK\r\n" + b"b" * 326, advance=0.002)
    script.sseq += 343
    script.cack = script.sseq
    script.cwin = 8211
    script.close(client_first=True, combined=True)
    s = only(analyse(rec, session=1))
    table = [(e["flags"], e["seq"], e["ack"], e["win"], e["len"]) for e in s["events"]]
    assert table == [
        ("S", 0, 0, 64240, 0),               # 103 [SYN] Seq=0 Win=64240 Len=0
        ("SA", 0, 1, 64240, 0),              # 104 [SYN, ACK] Seq=0 Ack=1 Win=64240
        ("A", 1, 1, 2102272, 0),             # 105 [ACK] Seq=1 Ack=1 Win=2102272
        ("PA", 1, 1, 2102272, 78),           # 106 GET / HTTP/1.1
        ("A", 1, 79, 64192, 0),              # 107 [ACK] Seq=1 Ack=79 Win=64192
        ("PA", 1, 79, 64192, 343),           # 108 HTTP/1.1 200 OK
        ("FA", 79, 344, 2102016, 0),         # 109 [FIN, ACK] Seq=79 Ack=344 Win=2102016
        ("FA", 344, 80, 64192, 0),           # 110 [FIN, ACK] Seq=344 Ack=80
        ("A", 80, 345, 2102016, 0),          # 111 [ACK] Seq=80 Ack=345
    ]
    assert s["events"][0]["options"] == "MSS=1460 WS=256 SACK_PERM"  # 103, wire order
    assert s["events"][1]["options"] == "MSS=1460 SACK_PERM WS=64"  # 104
    assert s["close_detail"] == "three-way" and s["closed_by"] == "client"
