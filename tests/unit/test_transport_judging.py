"""The transport rung's judgement: recorded connects in, (status, code, text, family) out, one
row per state a SYN can meet; then the probe itself against real loopback listeners (reset,
spoke, closed, quiet, refused), and the whole CLI against servers on 127.0.0.1 that reset
right after the handshake or a little later.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
import time
from io import StringIO
from typing import Any, Callable, Iterator, Optional

import pytest
from netcheck.checks import transport

from netcheck.cli import run as cli_run
from netcheck.model import Status
from netcheck.probes import tcp
from netcheck.probes.tcp import TcpResult
from tests.schema import validate_report

V4, V6, ROUTER = "198.18.2.10", "2001:db8:2::10", "198.18.1.1"


def conn(address: str, state: str, **facts: Any) -> TcpResult:
    """A recorded connect to port 443."""
    if state in ("open", "reset"):
        facts.setdefault("rtt_ms", 0.4)
    return TcpResult(address, 443, state, **facts)


# (what the connects met, local reasons) -> (status, code, words the summary holds, family)
ROWS: list[tuple[str, list[TcpResult], dict[str, str], Status, Optional[str], list[str],
                 Optional[str]]] = [
    ("open", [conn(V4, "open")], {}, Status.PASS, None, ["198.18.2.10 port 443 open (0.4 ms)"],
     None),
    ("open, the server closes at once", [conn(V4, "open", after="closed")], {}, Status.PASS,
     None, ["open (0.4 ms)", "closed it at once without a word"], None),
    ("handshake, then reset", [conn(V4, "reset", after="reset")], {}, Status.PASS, None,
     ["handshake completed (0.4 ms)", "reset the connection before sending a byte"], None),
    ("RST to the SYN", [conn(V4, "refused")], {}, Status.FAIL, "TCP_REFUSED",
     ["refused (RST: nothing listens)"], None),
    ("silence, two SYNs", [conn(V4, "timeout", syns=2)], {}, Status.FAIL, "TCP_FILTERED",
     ["no answer to SYN (2 SYNs sent)"], None),
    ("silence, one SYN", [conn(V4, "timeout", syns=1)], {}, Status.FAIL, "TCP_FILTERED",
     ["port 443: no answer to SYN"], None),
    ("ICMP from a router", [conn(V4, "icmp", icmp_type=3, icmp_code=13, icmp_from=ROUTER)], {},
     Status.FAIL, "TCP_ADMIN_PROHIBITED",
     ["198.18.1.1 (a router or firewall on the way) sent 'administratively prohibited'"],
     None),
    ("ICMP from the target", [conn(V4, "icmp", icmp_type=3, icmp_code=3, icmp_from=V4)], {},
     Status.FAIL, "TCP_ADMIN_PROHIBITED", ["198.18.2.10 itself sent 'port unreachable'"],
     None),
    ("EHOSTUNREACH, nothing queued", [conn(V4, "icmp", errno="EHOSTUNREACH")], {},
     Status.FAIL, "TCP_ADMIN_PROHIBITED", ["router sent 'EHOSTUNREACH'"], None),
    ("this host drops it", [conn(V4, "timeout")], {V4: "drop by rule"}, Status.FAIL,
     "FW_LOCAL_OUTPUT_BLOCK", ["blocked on this host (drop by rule)"], None),
    ("IPv6 silent, IPv4 open", [conn(V4, "open"), conn(V6, "timeout")], {}, Status.WARN,
     "TCP_FILTERED", ["IPv6 fails", "no answer to SYN", "while IPv4 works"], "ipv6"),
    ("IPv4 refused, IPv6 open", [conn(V4, "refused"), conn(V6, "open")], {}, Status.WARN,
     "TCP_REFUSED", ["IPv4 fails", "while IPv6 works"], "ipv4"),
    ("IPv6 reset after the handshake, IPv4 open: both got through",
     [conn(V4, "open"), conn(V6, "reset")], {}, Status.PASS, None, ["open"], None),
    ("a mapped IPv4 address is IPv4", [conn("::ffff:198.18.2.10", "open"), conn(V6, "refused")],
     {}, Status.WARN, "TCP_REFUSED", ["IPv6 fails", "while IPv4 works"], "ipv6"),
    ("each family fails its own way",
     [conn(V4, "icmp", icmp_type=3, icmp_code=13, icmp_from=ROUTER), conn(V6, "refused")], {},
     Status.FAIL, "TCP_ADMIN_PROHIBITED", ["administratively prohibited",
                                           "; IPv6: 2001:db8:2::10 port 443 refused"], None),
    ("no address", [], {}, Status.SKIP, None, ["no address to connect to"], None),
]


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_judgement_of_recorded_connects(row: Any) -> None:
    _, results, local, status, code, words, family = row
    got = transport.judge_connects(results, local)
    assert (got.status, got.code, got.family) == (status, code, family), got
    for word in words:
        assert word in got.summary, got.summary
    if status in (Status.FAIL, Status.WARN):
        assert got.subject is not None and got.subject in results


def test_the_rung_never_reads_a_completed_handshake_as_filtered() -> None:
    # The old reading of a reset that came before connect() was looked at again.
    got = transport.judge_connects([conn(V4, "reset", errno="ECONNRESET", after="reset")])
    assert got.status is Status.PASS and "no answer to SYN" not in got.summary


def test_watch_window_is_a_few_round_trips_within_bounds() -> None:
    assert tcp.watch_window(0.1, 2.0) == tcp.WATCH_MIN_S
    assert tcp.watch_window(20.0, 2.0) == pytest.approx(0.08)
    assert tcp.watch_window(500.0, 2.0) == tcp.WATCH_MAX_S
    assert tcp.watch_window(20.0, 0.03) == pytest.approx(0.03)
    assert tcp.watch_window(20.0, -1.0) == 0.0


# -- the probe against real loopback listeners ---------------------------------------------

def _reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _speak(sock: socket.socket) -> None:
    sock.sendall(b"SSH-2.0-lab\r\n")
    time.sleep(0.5)
    sock.close()


def _reset_later(delay: float) -> Callable[[socket.socket], None]:
    def handle(sock: socket.socket) -> None:
        time.sleep(delay)
        _reset(sock)
    return handle


BEHAVIOURS: dict[str, Optional[Callable[[socket.socket], None]]] = {
    "reset": _reset, "spoke": _speak, "closed": lambda s: s.close(), "quiet": None,
    "reset-later": _reset_later(0.15),
}


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, int]]:
    """One listener on 127.0.0.1 per behaviour; the port of each."""
    ports: dict[str, int] = {}
    listeners = []
    stop = threading.Event()
    for name, handle in BEHAVIOURS.items():
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.1)
        listeners.append(listener)
        ports[name] = listener.getsockname()[1]

        def serve(listener: socket.socket = listener,
                  handle: Optional[Callable[[socket.socket], None]] = handle) -> None:
            held = []
            while not stop.is_set():
                try:
                    sock, _ = listener.accept()
                except OSError:
                    continue
                if handle is None:
                    held.append(sock)  # accepted, never a word
                else:
                    threading.Thread(target=handle, args=(sock,), daemon=True).start()
            for sock in held:
                sock.close()

        threading.Thread(target=serve, daemon=True).start()
    yield ports
    stop.set()
    for listener in listeners:
        listener.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("name,state,after", [("reset", "reset", "reset"),
                                              ("spoke", "open", "spoke"),
                                              ("closed", "open", "closed"),
                                              ("quiet", "open", "quiet")])
def test_probe_tells_what_came_after_the_handshake(servers: dict[str, int], name: str,
                                                   state: str, after: str) -> None:
    r = asyncio.run(tcp.connect("127.0.0.1", servers[name], 2.0))
    assert (r.state, r.after) == (state, after), r
    assert r.handshake and r.answered
    if after == "quiet":
        assert r.watched_ms is not None and r.watched_ms >= tcp.WATCH_MIN_S * 1000 * 0.9


def test_probe_without_watch_only_opens(servers: dict[str, int]) -> None:
    r = asyncio.run(tcp.connect("127.0.0.1", servers["quiet"], 2.0, watch=0))
    assert (r.state, r.after, r.watched_ms) == ("open", None, None)


def test_probe_rst_to_syn_is_refused() -> None:
    r = asyncio.run(tcp.connect("127.0.0.1", _free_port(), 2.0))
    assert (r.state, r.errno, r.after) == ("refused", "ECONNREFUSED", None)
    assert r.answered and not r.handshake


def test_longer_watch_sees_a_late_reset(servers: dict[str, int]) -> None:
    quick = asyncio.run(tcp.connect("127.0.0.1", servers["reset-later"], 2.0))
    assert (quick.state, quick.after) == ("open", "quiet")  # 150 ms is past the window
    late = asyncio.run(tcp.connect("127.0.0.1", servers["reset-later"], 2.0, watch=1.0))
    assert (late.state, late.after) == ("reset", "reset"), late


# -- the whole run, on loopback ----------------------------------------------------------------

def netcheck_json(*args: str) -> tuple[int, dict[str, Any]]:
    out, err = StringIO(), StringIO()
    code = cli_run([*args, "--format", "json", "--deadline", "8"], out, err)
    doc = json.loads(out.getvalue())
    validate_report(doc)
    return code, doc


def check_of(doc: dict[str, Any], check_id: str) -> dict[str, Any]:
    return next(c for c in doc["checks"] if c["id"] == check_id)


@pytest.mark.parametrize("scheme", ["tcp", "http", "smtp"])
def test_reset_at_once_is_app_connection_reset(servers: dict[str, int], scheme: str) -> None:
    path = "/" if scheme == "http" else ""
    code, doc = netcheck_json(f"{scheme}://127.0.0.1:{servers['reset']}{path}")
    assert code == 2 and doc["verdict"] == "broken", doc
    root = doc["root_cause"]
    assert (root["code"], root["layer"]) == ("APP_CONNECTION_RESET", 7), root
    tcp_check = check_of(doc, "transport.tcp")
    assert tcp_check["status"] == "pass" and "reset the connection" in tcp_check["summary"]


@pytest.mark.parametrize("scheme", ["tcp", "http"])
def test_reset_after_a_while_is_found_on_a_second_look(servers: dict[str, int],
                                                       scheme: str) -> None:
    # The transport rung's short watch misses it; the application sees an empty close,
    # connects again without a word and watches longer.
    target = f"{scheme}://127.0.0.1:{servers['reset-later']}" + ("/" if scheme == "http" else "")
    code, doc = netcheck_json(target)
    root = doc["root_cause"]
    assert root is not None and root["code"] == "APP_CONNECTION_RESET", doc
    assert check_of(doc, "transport.tcp")["evidence"]["connects"][0]["after"] == "quiet"


def test_plain_close_is_not_called_a_reset(servers: dict[str, int]) -> None:
    code, doc = netcheck_json(f"tcp://127.0.0.1:{servers['closed']}")
    assert doc["root_cause"] is None or doc["root_cause"]["code"] != "APP_CONNECTION_RESET"
    banner = check_of(doc, "app.banner")
    assert banner["status"] == "pass" and "without a word" in banner["summary"]
