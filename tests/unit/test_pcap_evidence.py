"""What the capture can show comes before what is said about it.

One test per kind of capture that made the explainer state a cause the capture contradicts:
a capture of one direction, SYN-ACKs with new ISNs, a retransmitted request, frames captured
twice, TCP options cut by the snap length, tunnels and malformed records, and a long SMTP
dialogue. Each plays the conversation with the writer's TcpScript and reads the explanation.
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from netcheck.pcap.render import render_lines
from netcheck.pcap.sessions import Analyzer, build_document
from netcheck.pcap.writer import (
    ACK,
    PSH,
    SYN,
    PcapWriter,
    Recorder,
    TcpScript,
    ether,
    ipv4,
    ipv6,
    tcp,
    udp,
)

C, S = "198.18.1.2", "198.18.2.10"
T0 = 1_700_000_000.0


def analyse(rec: Recorder, session: Optional[int] = None) -> dict[str, Any]:
    analyzer = Analyzer(want_session=session)
    analyzer.feed(rec.packets())
    return build_document(analyzer, "test.pcap", False, [], "en", session)


def story(doc: dict[str, Any]) -> str:
    return "\n".join(line for line, _ in render_lines(doc))


def only_from(rec: Recorder, client: bool) -> Callable[[float, bytes, bool], None]:
    """An emit that keeps one direction only (a capture point that sees one way)."""
    def emit(ts: float, data: bytes, from_client: bool) -> None:
        if from_client == client:
            rec.add(ts, data)
    return emit


CAUSES = ("firewall", "never answered", "did not arrive", "was lost", "still waits",
          "Still open", "no answer yet")


# -- one direction ----------------------------------------------------------------------------

def test_a_capture_of_the_client_side_only_says_what_is_missing_not_a_firewall() -> None:
    rec = Recorder()
    script = TcpScript(only_from(rec, client=True), C, S, 25)
    script.handshake()
    script.send(False, b"220 mail.lab.test ESMTP\r\n" + b"x" * 2242)  # not captured
    script.send(True, b"EHLO client.lab.test\r\n")
    script.close(client_first=True)
    doc = analyse(rec, session=1)
    (s,) = doc["sessions"]
    assert s["capture"]["seen"] == "client"
    assert s["capture"]["acked"]["server"] == 2267 + 1  # the client's ACKs: bytes and FIN
    assert not s["handshake"]["complete"] and s["handshake"]["synack_acked"]
    text = story(doc)
    assert doc["capture"] == {"one_way_sessions": 1, "sessions": 1}
    assert "note: 1 of 1 TCP session(s) were captured in one direction only" in text
    assert "Only the client's packets are in this capture" in text
    assert "its SYN-ACK reached the client, and so did 2268 bytes of its data" in text
    assert "client side only" in text
    assert "server sent 0 bytes" not in text
    assert not [cause for cause in CAUSES if cause in text], text
    assert "the server's SYN-ACK reached it, though it is not in the capture" in \
        s["events"][1]["note"]


def test_an_unanswered_syn_in_a_one_way_capture_is_not_blamed_on_anything() -> None:
    rec = Recorder()
    script = TcpScript(rec, C, S, 443)
    script.syn()
    script.syn(advance=1.0)
    script.syn(advance=2.0)
    rec.add(T0 + 10, ether(ipv4(C, "198.18.3.53", 17, udp(C, "198.18.3.53", 5353, 53,
                                                             b"\0" * 12)), 0x0800))
    text = story(analyse(rec, session=1))
    assert "The SYN was sent 3 time(s) and no answer is in the capture." in text
    assert "Nothing at all to 198.18.1.2 is in this capture" in text
    assert "firewall" not in text and "down" not in text


def test_an_unanswered_syn_while_answers_to_the_client_are_captured_can_be_a_firewall() -> None:
    rec = Recorder()
    other = TcpScript(rec, C, S, 80, cport=40000)
    other.handshake()  # packets to the client do reach this capture point
    blocked = TcpScript(rec, C, S, 443, cport=40001, t0=T0 + 0.01)
    blocked.syn()
    blocked.syn(advance=1.0)
    blocked.syn(advance=2.0)
    other.packet(True, ACK, advance=8.0)
    text = story(analyse(rec, session=2))
    assert "Other packets to 198.18.1.2 were captured" in text
    assert "a firewall that drops silently" in text


def test_a_capture_that_ends_right_after_the_syn_is_too_short_to_tell() -> None:
    rec = Recorder()
    other = TcpScript(rec, C, S, 80, cport=40000)
    other.handshake()
    late = TcpScript(rec, C, S, 443, cport=40001, t0=T0 + 0.01)
    late.syn()
    other.packet(True, ACK, advance=0.3)
    text = story(analyse(rec, session=2))
    assert "The capture ends 0.290 s after the last SYN: too soon to tell" in text
    assert "firewall" not in text


# -- Wireshark's session semantics ------------------------------------------------------------

def test_synacks_with_new_isns_are_one_session_counted_from_the_last_isn() -> None:
    rec = Recorder()
    script = TcpScript(rec, C, S, 443, isn_s=238_755_595)
    script.cseq += 1  # the client's SYN is not in the capture
    script.sack = script.cseq
    for advance, isn in ((0, 238_755_595), (2.0, 238_755_595), (11.8, 2_859_879_429),
                         (15.0, 2_829_651_200)):
        script.packet(False, SYN | ACK, seq=isn, options=script._options(True),
                      advance=advance)
    script.sseq = 2_829_651_201
    script.cack = script.sseq
    script.send(True, b"\x16\x03\x01" + b"h" * 514)
    script.send(False, b"s" * 5427)
    doc = analyse(rec, session=1)
    (s,) = doc["sessions"]
    assert doc["sessions_total"] == 1
    assert s["bytes"] == {"client": 517, "server": 5427}  # not 2.59 GB
    assert s["handshake"]["synack_new_isns"] == 2
    assert not s["handshake"]["complete"] and not s["handshake"]["syn_seen"]
    text = story(doc)
    assert "The client's SYN is not in the capture" in text
    assert "2 more time(s) with a new initial sequence number" in text
    assert "Three-way handshake" not in text
    notes = [e["note"] for e in s["events"]]
    assert notes[2].startswith("SYN-ACK with a new initial sequence number B = 2859879429")
    assert not any("retransmission" in note for note in notes[4:])


def test_a_new_syn_on_the_same_ports_is_a_new_session_and_a_resent_one_is_not() -> None:
    rec = Recorder()
    first = TcpScript(rec, C, S, 80, cport=40000, isn_c=1000)
    first.handshake()
    first.send(True, b"x" * 10)
    first.close()
    second = TcpScript(rec, C, S, 80, cport=40000, isn_c=90_000, t0=T0 + 5)
    second.syn()
    second.rst(False)  # refused...
    second.syn(advance=1.0)  # ... and tried again with the same ISN: the same session
    doc = analyse(rec)
    assert [s["packets"] for s in doc["sessions"]] == [8, 3]  # as tshark's tcp.stream
    assert doc["sessions"][0]["bytes"]["client"] == 10
    assert doc["sessions"][1]["handshake"]["answered_by_rst"]


def test_a_retransmitted_http_request_is_one_request() -> None:
    rec = Recorder()
    script = TcpScript(rec, C, S, 80)
    script.handshake()
    request = b"GET /index.html HTTP/1.1\r\nHost: www.lab.test\r\n\r\n"
    script.packet(True, PSH | ACK, request)
    script.packet(True, PSH | ACK, request, advance=0.2)  # its ACK never came: sent again
    script.cseq += len(request)
    script.sack = script.cseq
    script.send(False, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    (s,) = analyse(rec)["sessions"]
    assert s["retransmissions"] == 1
    assert s["http"] == [{"request": "GET /index.html HTTP/1.1", "status": 200}]


def test_an_answer_whose_start_was_not_captured_leaves_later_answers_with_their_requests(
) -> None:
    rec = Recorder()
    script = TcpScript(rec, C, S, 80)
    script.handshake()
    script.send(True, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    script.send(True, b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
    first = b"HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n" + b"a" * 300
    script.sseq += 100  # the first 100 bytes of the first answer were not captured
    script.send(False, first[100:])
    script.send(False, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    (s,) = analyse(rec)["sessions"]
    assert s["http"] == [
        {"request": "GET /a HTTP/1.1", "status": None, "answer_not_captured": True},
        {"request": "GET /b HTTP/1.1", "status": 404}]


def test_an_interim_100_continue_answers_nothing_yet() -> None:
    rec = Recorder()
    script = TcpScript(rec, C, S, 80)
    script.handshake()
    script.send(True, b"POST /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
    script.send(False, b"HTTP/1.1 100 Continue\r\n\r\n")
    script.send(True, b"abc")
    script.send(False, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
    (s,) = analyse(rec)["sessions"]
    assert s["http"] == [{"request": "POST /up HTTP/1.1", "status": 201, "interim": [100]}]


# -- frames captured twice --------------------------------------------------------------------

class Doubled:
    """An emit that captures every frame twice, 30 µs apart (a host capturing on two
    interfaces)."""

    def __init__(self, rec: Recorder) -> None:
        self.rec = rec

    def __call__(self, ts: float, data: bytes, from_client: bool) -> None:
        self.rec.add(ts, data)
        self.rec.add(ts + 0.00003, data)


def test_frames_captured_twice_are_copies_not_retransmissions() -> None:
    rec = Recorder()
    script = TcpScript(Doubled(rec), C, S, 80)
    script.handshake()
    script.send(True, b"GET / HTTP/1.1\r\nHost: www.lab.test\r\n\r\n")
    doc = analyse(rec, session=1)
    (s,) = doc["sessions"]
    # Counted as Wireshark counts them (each copy of a segment or SYN is a "retransmission",
    # each copy of a pure ACK a "duplicate ACK")...
    assert s["retransmissions"] == 3 and s["dup_acks"] == 2
    assert s["capture"]["duplicates"] == 5
    assert s["handshake"]["syn_retries"] == 0 and s["handshake"]["complete"]
    assert len(s["http"]) == 1
    # ... and explained as what they are.
    copies = [e["note"] for e in s["events"][1::2]]
    assert all(note.startswith("[captured again: the same packet as the frame before (same "
                               "IP ID 0x0000 and bytes), not sent again]") for note in copies)
    text = story(doc)
    assert "5 frame(s) of this session are the packet just before them captured again" in text
    assert "3 retransmission(s) (3 of them copies of a frame captured again)" in text
    assert "note: 5 frame(s) are the packet just before them captured again" in text
    assert doc["capture"] == {"frames_captured_again": 5}
    for cause in ("SYN sent again", "waits for a missing segment", "not acknowledged in time"):
        assert cause not in text


def test_the_same_segment_sent_again_later_is_still_a_retransmission() -> None:
    rec = Recorder()
    script = TcpScript(rec, C, S, 80)
    script.syn()
    script.syn(advance=1.0)  # a real retry: a second later, not 30 µs
    (s,) = analyse(rec, session=1)["sessions"]
    assert s["capture"]["duplicates"] == 0 and s["handshake"]["syn_retries"] == 1
    assert s["events"][1]["note"].startswith("[retransmission")


def test_a_duplicate_ack_says_the_receiver_waits_only_when_data_beyond_it_was_seen() -> None:
    rec = Recorder()
    script = TcpScript(rec, C, S, 80)
    script.handshake()
    script.packet(True, ACK, advance=0.01)  # the same ACK again, nothing outstanding
    script.send(False, b"a" * 100, ack_each=False)
    script.sseq += 100  # a segment lost before the capture point...
    script.packet(False, ACK, b"c" * 100, advance=0.001)
    script.packet(True, ACK, ack=script.sseq - 100, advance=0.001)  # ... the client waits
    script.packet(True, ACK, ack=script.sseq - 100, advance=0.001)
    (s,) = analyse(rec, session=1)["sessions"]
    notes = [e["note"] for e in s["events"]]
    assert "[duplicate ACK #1: the same acknowledgement again]" in notes[3]
    assert notes[-1].startswith("[duplicate ACK #2: the receiver still waits for a missing "
                                "segment]")
    assert s["capture"]["duplicates"] == 0  # no IP ID tells these apart: not taken for copies


# -- the snap length --------------------------------------------------------------------------

def _write(path: Path, frames: list[tuple[float, bytes, int]]) -> None:
    """Frames as (time, captured bytes, length on the wire)."""
    with path.open("wb") as fh:
        writer = PcapWriter(fh)
        for ts, data, wirelen in frames:
            writer.write(ts, data, wirelen)


def _segment_with_timestamps(seq: int, flags: int, payload: bytes = b"") -> bytes:
    options = b"\x01\x01" + struct.pack(">BBII", 8, 10, 123456, 654321)
    return ether(ipv4(C, S, 6, tcp(C, S, 40000, 80, seq, 0, flags, 64240, payload, options)),
                 0x0800)


def test_tcp_options_cut_by_the_snap_length_are_unknown_never_read_past_the_capture(
        tmp_path: Path) -> None:
    syn = _segment_with_timestamps(1000, SYN)
    data = _segment_with_timestamps(1001, PSH | ACK, b"x" * 40)
    cut = 14 + 20 + 26  # 6 of the 12 option bytes captured: TSval's first bytes only
    path = tmp_path / "cut.pcap"
    # The bytes after the cut are the next record's: reading past the cut would read them.
    _write(path, [(T0, syn[:cut], len(syn)), (T0 + 0.1, data[:cut], len(data)),
                  (T0 + 0.2, syn[:cut], len(syn))])
    from netcheck.cli import run

    out, err = io.StringIO(), io.StringIO()
    assert run(["pcap", str(path), "--format", "json"], out, err) == 0, err.getvalue()
    doc = json.loads(out.getvalue())
    assert doc["schema"] == "netcheck-pcap/1"
    (s,) = doc["sessions"]
    assert s["capture"]["cut"] == 3
    first = s["events"][0]
    assert "TSval" not in first["options"]  # cut: unknown, not invented
    assert "[cut by the snap length: 26 of 32 TCP bytes captured" in first["note"]


def test_a_capture_ending_in_a_cut_tcp_header_is_no_error(tmp_path: Path) -> None:
    syn = _segment_with_timestamps(1000, SYN)
    path = tmp_path / "end.pcap"
    _write(path, [(T0, syn, len(syn)), (T0 + 0.1, syn[:14 + 20 + 22], len(syn))])
    from netcheck.cli import run

    for fmt in ("json", "text"):
        out, err = io.StringIO(), io.StringIO()
        assert run(["pcap", str(path), "--format", fmt], out, err) == 0, err.getvalue()
    assert "internal error" not in out.getvalue() + err.getvalue()


# -- errors keep the capture explainer's schema -----------------------------------------------

def test_an_internal_error_with_json_is_a_capture_explainer_document(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder()
    TcpScript(rec, C, S, 80).handshake()
    path = tmp_path / "ok.pcap"
    with path.open("wb") as fh:
        rec.write_pcap(fh)

    def broken(self: Analyzer, packets: Any) -> None:
        raise IndexError("index out of range")

    # The one way to reach the path for a bug the explainer does not have (any more).
    monkeypatch.setattr(Analyzer, "feed", broken)
    from netcheck.cli import run

    out, err = io.StringIO(), io.StringIO()
    assert run(["pcap", str(path), "--format", "json"], out, err) == 3
    doc = json.loads(out.getvalue())
    assert doc == {"schema": "netcheck-pcap/1",
                   "error": "internal error: IndexError: index out of range"}


def test_a_usage_error_with_json_is_a_capture_explainer_document() -> None:
    from netcheck.cli import run

    out, err = io.StringIO(), io.StringIO()
    assert run(["pcap", "x.pcap", "--session", "abc", "--format", "json"], out, err) == 3
    doc = json.loads(out.getvalue())
    assert set(doc) == {"schema", "error"} and doc["schema"] == "netcheck-pcap/1"


# -- what is not decoded is named -------------------------------------------------------------

def test_tunnels_and_malformed_messages_are_named_in_the_summary() -> None:
    rec = Recorder()
    inner = ipv6("2001:db8::1", "2001:db8::2", 59, b"")
    rec.add(T0, ether(ipv4(C, S, 41, inner), 0x0800))  # 6in4
    gtp = b"\x30\xff\x00\x14\x00\x00\x00\x01" + ipv4("10.0.0.1", "10.0.0.2", 17, b"\0" * 12)
    rec.add(T0 + 0.1, ether(ipv4(C, S, 17, udp(C, S, 2152, 2152, gtp)), 0x0800))
    rec.add(T0 + 0.2, ether(ipv4(C, S, 17, udp(C, S, 40000, 5247, b"\0" * 16)), 0x0800))
    rec.add(T0 + 0.3, ether(ipv4(C, S, 17, udp(C, S, 40001, 53, b"\x12")), 0x0800))
    doc = analyse(rec)
    named = {d["what"]: d["packets"] for d in doc["not_decoded"]}
    assert named == {"IPv6 in IPv4 (6in4/6to4)": 1, "GTP-U (mobile data tunnel)": 1,
                     "CAPWAP data (wireless access points)": 1, "DNS message": 1}
    summary = story(doc).splitlines()[1]
    assert summary.startswith("not decoded: CAPWAP data (wireless access points), 1 packet(s);")
    assert "malformed DNS message, 1 packet(s)" in summary


# -- a long dialogue --------------------------------------------------------------------------

def test_a_long_smtp_dialogue_says_where_its_listing_stops() -> None:
    rec = Recorder()
    script = TcpScript(rec, C, S, 25)
    script.handshake()
    script.send(False, b"220 mail.lab.test ESMTP\r\n")
    for i in range(150):
        script.send(True, f"RCPT TO:<user{i}@lab.test>\r\n".encode())
        script.send(False, b"250 OK\r\n")
    (s,) = analyse(rec)["sessions"]
    assert len(s["dialogue"]) == 200 and s["dialogue_omitted"] == 101
    assert s["dialogue"][-1] == "C: RCPT TO:<user99@lab.test>"
    lines = story({"schema": "netcheck-pcap/1", "packets": 1,
                   "sessions": [dict(s, events=[])]})
    assert "The dialogue listing stops after 200 lines: 101 more were counted, not kept." in lines
