"""Where packets stop: the judgement (traces in, location out, one row per shape a path can
have), the hop table, and the probes themselves against real loopback listeners; then the
location in the report and ``netcheck path`` on loopback."""

from __future__ import annotations

import asyncio
import json
import socket
import socketserver
import threading
from io import StringIO
from typing import Any, Iterator, Optional

import pytest

from netcheck.cli import run as cli_run
from netcheck.locate import judge
from netcheck.model import CheckOutcome, Layer, Location, Report, Result, Status, Verdict
from netcheck.probes import hops
from netcheck.probes.hops import Hop, Probe, Trace
from netcheck.render.hops import hop_table, limit_text
from netcheck.render.text import text_of
from tests.schema import validate_report

R1, R2, SERVER = "198.18.1.1", "198.18.6.2", "198.18.2.10"


def hop(ttl: int, address: Optional[str], answered: int = 3, sent: int = 3,
        state: str = "hop", **facts: Any) -> Hop:
    """A hop whose first ``answered`` of ``sent`` probes got ``state`` from ``address``."""
    probes = [Probe(ttl, state, address, 0.4 + ttl, **facts) if i < answered else Probe(ttl)
              for i in range(sent)]
    return Hop(ttl, probes)


def trace(*hops_: Hop, method: str = hops.TCP, port: Optional[int] = 22) -> Trace:
    result = Trace(SERVER, method, port, list(hops_))
    hops.mark_rate_limited(result)
    return result


def silent(*ttls: int) -> list[Hop]:
    return [hop(t, None, answered=0) for t in ttls]


REACHES_3 = trace(hop(1, R1), hop(2, R2), hop(3, SERVER, state="reached", answer="echo-reply"),
                  method=hops.ICMP, port=None)


# (name, flow trace, reference trace) -> (last_hop, address, middlebox, words in the text)
ROWS: list[tuple[str, Trace, Optional[Trace], Optional[int], Optional[str], bool,
                 list[str]]] = [
    ("dropped after r1 (at r1's forward chain or at r2)",
     trace(hop(1, R1), *silent(2, 3, 4)), REACHES_3, 1, R1, False,
     ["the SYN gets as far as 198.18.1.1 (hop 1) and nothing answers beyond it",
      "ping gets through to 198.18.2.10 at hop 3: a firewall at hop 1 or the next one drops "
      "port 22"]),
    ("dropped after r2, just before the server",
     trace(hop(1, R1), hop(2, R2), *silent(3, 4)), REACHES_3, 2, R2, False,
     ["the SYN gets as far as 198.18.6.2 (hop 2)",
      "198.18.2.10 answers ping at hop 3: its own firewall, or the router just before it, "
      "drops port 22"]),
    ("r1 limits its ICMP errors (silent) while r2 answers: r2 is the place",
     trace(hop(1, None, answered=0), hop(2, R2), *silent(3, 4)), None, 2, R2, False,
     ["as far as 198.18.6.2 (hop 2)"]),
    ("r1 answers one probe of three: still r2",
     trace(hop(1, R1, answered=1), hop(2, R2), *silent(3)), None, 2, R2, False,
     ["(hop 2)"]),
    ("nothing answers, not even hop 1",
     trace(*silent(1, 2, 3)), None, 0, None, False, ["not even the first router"]),
    ("a router rejects with an ICMP error",
     trace(hop(1, R1), hop(2, R2, state="unreachable", answer="administratively prohibited",
                           icmp_type=3, icmp_code=13)), REACHES_3, 2, R2, False,
     ["198.18.6.2 (hop 2) sends back 'administratively prohibited'"]),
    ("a reset at TTL 2 while the server is 3 hops away (no root: a bound)",
     trace(hop(1, R1), hop(2, SERVER, state="reached", answer="rst")), REACHES_3, 1, R1, True,
     ["the reset comes from at most 2 hops away (a SYN with TTL 2 already gets it), not from "
      "the server 3 hops away", "(at 198.18.1.1, hop 1, or right after it)"]),
    ("a reset arriving with TTL 64 (root): 1 hop away",
     trace(hop(1, R1), hop(2, SERVER, state="reached", answer="rst", reply_ttl=64)),
     REACHES_3, 1, R1, True,
     ["the reset comes from 1 hop away, not from the server 3 hops away"]),
    ("a reset at TTL 1: the gateway's link",
     trace(hop(1, SERVER, state="reached", answer="rst")), REACHES_3, 0, None, True,
     ["at most 1 hop away", "this host's gateway, or a box on its link"]),
    ("the server's own reset",
     trace(hop(1, R1), hop(2, R2), hop(3, SERVER, state="reached", answer="rst",
                                       reply_ttl=62)), REACHES_3, 3, SERVER, False,
     ["the reset comes from 198.18.2.10 itself, 3 hops away"]),
    ("a reset while the target's distance is unknown: neither claimed",
     trace(hop(1, R1), hop(2, SERVER, state="reached", answer="rst")), None, 2, None, False,
     ["a SYN with TTL 2 already gets the answer (rst); 198.18.2.10 does not answer ping, so "
      "whether the answer is its own cannot be told"]),
    ("the flow got through while traced",
     trace(hop(1, R1), hop(2, R2), hop(3, SERVER, state="reached", answer="syn-ack")),
     REACHES_3, 3, SERVER, False, ["reached 198.18.2.10 (hop 3)", "comes and goes"]),
    ("full-size packets vanish after r2",
     trace(hop(1, R1), hop(2, R2), *silent(3, 4), method=hops.ICMP_DF, port=None), REACHES_3,
     2, R2, False, ["full-size packets get as far as 198.18.6.2 (hop 2); beyond it they vanish"]),
    ("a DNS query stops after r2",
     trace(hop(1, R1), hop(2, R2), *silent(3, 4), method=hops.UDP_DNS, port=53), None,
     2, R2, False, ["the DNS query gets as far as 198.18.6.2 (hop 2)"]),
]


@pytest.mark.parametrize("name,flow,reference,last_hop,address,middlebox,words", ROWS,
                         ids=[r[0] for r in ROWS])
def test_where_the_packets_stop(name: str, flow: Trace, reference: Optional[Trace],
                                last_hop: Optional[int], address: Optional[str],
                                middlebox: bool, words: list[str]) -> None:
    found = judge(flow, reference)
    assert found is not None
    assert (found.last_hop, found.address, found.middlebox) == (last_hop, address, middlebox)
    assert found.method == flow.method
    for word in words:
        assert word in found.text
    assert set(found.to_json()) == {"last_hop", "address", "method", "text"}


def test_nothing_measured_is_no_location() -> None:
    assert judge(Trace(SERVER, hops.TCP, 22)) is None


def test_a_hop_losing_answers_while_later_hops_answer_is_rate_limited() -> None:
    flow = trace(hop(1, R1, answered=1), hop(2, R2), hop(3, SERVER, state="reached",
                                                          answer="syn-ack"))
    assert [h.rate_limited for h in flow.hops] == [True, False, False]
    # The last hop that answers loses answers too: that is where the flow stops, not a limit.
    tail = trace(hop(1, R1), hop(2, R2, answered=1), *silent(3))
    assert [h.rate_limited for h in tail.hops] == [False, False, False]


@pytest.mark.parametrize("ttl,away", [(64, 1), (62, 3), (128, 1), (115, 14), (255, 1),
                                      (250, 6), (30, 3)])
def test_hops_away_from_the_ttl_an_answer_arrives_with(ttl: int, away: int) -> None:
    assert hops.hops_away(ttl) == away


def test_dns_query_asks_for_the_name() -> None:
    query = hops.dns_query("www.lab.test")
    assert query[2:12] == bytes.fromhex("01000001000000000000")
    assert query[12:] == b"\x03www\x03lab\x04test\x00\x00\x01\x00\x01"
    # Nothing usable: the root's NS.
    assert hops.dns_query("")[12:] == b"\x00\x00\x02\x00\x01"
    assert hops.dns_query("a" * 70 + ".test")[12:] == b"\x00\x00\x02\x00\x01"


def test_hop_table_shows_loss_rate_limits_and_one_line_for_the_silent_tail() -> None:
    flow = trace(hop(1, R1, answered=1), hop(2, R2), *silent(3, 4, 5, 6, 7))
    lines = hop_table(flow.to_json())
    assert lines[0].split() == ["hop", "address", "sent", "loss", "best", "avg", "worst"]
    assert "198.18.1.1" in lines[1] and "67%" in lines[1] and "limits its ICMP" in lines[1]
    assert "198.18.6.2" in lines[2] and " 0%" in lines[2]
    assert lines[3].split()[:2] == ["3", "*"]
    assert lines[4].split()[:4] == ["4-7", "*", "12", "100%"]
    assert len(lines) == 5


def test_hop_table_escapes_what_the_network_sent() -> None:
    flow = trace(hop(1, "198.18.1.1\x1b[2J"))
    assert "\x1b" not in "\n".join(hop_table(flow.to_json()))


# -- the probes, for real, on loopback --------------------------------------------------------

@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts (and forgets) connections."""
    server = socketserver.TCPServer(("127.0.0.1", 0), socketserver.BaseRequestHandler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def closed_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port of 127.0.0.1 nothing is bound to (it was a moment ago)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_syn_with_ttl_1_reaches_a_loopback_listener(listener: int) -> None:
    probe = asyncio.run(hops.tcp_probe("127.0.0.1", listener, 1, 1.0))
    assert (probe.state, probe.answer, probe.address) == ("reached", "syn-ack", "127.0.0.1")
    assert probe.rtt_ms is not None and probe.local_port


def test_a_syn_to_a_closed_port_meets_the_reset() -> None:
    probe = asyncio.run(hops.tcp_probe("127.0.0.1", closed_port(), 1, 1.0))
    assert (probe.state, probe.answer) == ("reached", "rst")


def test_a_udp_probe_to_a_closed_port_is_answered_by_the_target_itself() -> None:
    probe = asyncio.run(hops.udp_probe("127.0.0.1", closed_port(socket.SOCK_DGRAM), 1, 1.0,
                                       b"x"))
    assert (probe.state, probe.address, probe.answer) == ("reached", "127.0.0.1",
                                                          "port unreachable")


def test_a_dns_probe_gets_the_answer_of_a_loopback_server() -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))

    def answer() -> None:
        data, peer = server.recvfrom(512)
        server.sendto(data[:2] + b"\x81\x80" + data[4:], peer)  # the question, as an answer

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    query = hops.dns_query("www.lab.test")
    probe = asyncio.run(hops.udp_probe("127.0.0.1", server.getsockname()[1], 2, 1.0, query))
    server.close()
    assert (probe.state, probe.answer) == ("reached", "dns")


def test_a_trace_to_loopback_stops_at_hop_1_at_once(listener: int) -> None:
    found = asyncio.run(hops.trace("127.0.0.1", hops.TCP, port=listener, max_hops=8,
                                   budget=3.0))
    assert found.reached is not None and found.reached.ttl == 1
    assert [h.ttl for h in found.hops] == [1]
    assert found.duration_ms < 1000


def test_a_trace_never_outlasts_its_budget() -> None:
    # A lab address, though nothing is sent: a budget of nothing sends no probe at all.
    found = asyncio.run(hops.trace("198.18.0.1", hops.TCP, port=9, budget=0.0))
    assert not found.measured and found.hops == []


def test_without_root_the_reset_ttl_is_said_to_be_unknown(listener: int) -> None:
    found = asyncio.run(hops.trace("127.0.0.1", hops.TCP, port=listener, max_hops=2,
                                   budget=2.0, privileged=False))
    assert hops.Limit(hops.RESET_TTL_NEEDS_ROOT) in found.limits
    assert "without root" in found.to_json(limit_text)["limits"][0]


def test_without_an_icmp_socket_no_echo_is_sent_and_the_trace_says_why(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hops.icmp, "available_method", lambda family: "ping")
    found = asyncio.run(hops.trace("127.0.0.1", hops.ICMP, budget=1.0))
    assert not found.measured and found.limits == [hops.Limit(hops.ECHO_NEEDS_PRIVILEGE)]
    assert found.to_json()["limits"] == ["echo_needs_privilege"]
    assert found.to_json(limit_text)["limits"] == [
        "ICMP echo needs root, CAP_NET_RAW or a ping_group_range that admits this user: no "
        "echo requests were sent"]


# -- the location in the report -----------------------------------------------------------

def report_with(location: Optional[Location]) -> Report:
    outcome = CheckOutcome("transport.tcp", Layer.TRANSPORT, "Port accepts TCP connections",
                           Result(Status.FAIL, "198.18.2.10 port 22: no answer to SYN",
                                  code="TCP_FILTERED"))
    return Report("diagnose", {"input": "tcp://198.18.2.10:22", "scheme": "tcp",
                               "host": SERVER, "port": 22, "addresses": [SERVER]},
                  {"hostname": "h", "privileged": True, "egress_interface": "eth0"},
                  Verdict.BROKEN, outcome, [outcome], "2026-12-01T00:00:00Z", 1.0, "0",
                  location=location)


def test_the_location_is_in_root_cause_and_in_the_text() -> None:
    where = Location("the SYN gets as far as 198.18.6.2 (hop 2) and nothing answers beyond "
                     "it", hops.TCP, 2, R2)
    doc = report_with(where).to_json()
    validate_report(doc)
    assert doc["root_cause"]["location"] == {
        "last_hop": 2, "address": R2, "method": "tcp-syn",
        "text": "the SYN gets as far as 198.18.6.2 (hop 2) and nothing answers beyond it"}
    assert "where the packets stop: the SYN gets as far as 198.18.6.2" in " ".join(
        text_of(report_with(where), width=200).split())
    # Not measured: absent, as the contract says.
    assert "location" not in report_with(None).to_json()["root_cause"]


# -- netcheck path on loopback ------------------------------------------------------------------

def netcheck(*args: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    code = cli_run(list(args), out, err)
    return code, out.getvalue(), err.getvalue()


def test_path_to_a_loopback_listener(listener: int) -> None:
    code, out, err = netcheck("path", f"tcp://127.0.0.1:{listener}", "--count", "2",
                              "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["schema"] == "netcheck-path/1"
    assert (doc["method"], doc["port"], doc["address"]) == ("tcp-syn", listener, "127.0.0.1")
    assert doc["flow"]["reached"]["answer"] == "syn-ack"
    assert doc["location"] is None
    code, out, err = netcheck("path", f"tcp://127.0.0.1:{listener}", "--count", "1")
    assert code == 0, err
    assert "127.0.0.1 answers at hop 1: SYN-ACK" in out


def test_path_to_a_closed_port_is_exit_2_with_the_reset_located() -> None:
    code, out, err = netcheck("path", f"tcp://127.0.0.1:{closed_port()}", "--count", "1",
                              "--format", "json")
    assert code == 2, err
    doc = json.loads(out)
    assert doc["flow"]["reached"]["answer"] == "rst"
    assert "the reset comes from 127.0.0.1 itself" in doc["location"]["text"]


@pytest.mark.parametrize("args,words", [
    (("path", "tcp://127.0.0.1:22", "--format", "nagios"), "text or json"),
    (("path", "127.0.0.1", "--count", "0"), "from 1 to 100"),
    (("path", "tcp://127.0.0.1:22", "--max-hops", "65"), "from 1 to 64"),
    (("path", "tcp://127.0.0.1"), "port"),
])
def test_path_refuses_bad_input(args: tuple[str, ...], words: str) -> None:
    code, out, err = netcheck(*args)
    assert code == 3
    assert words in err + out  # a machine format gets its error document on stdout
