"""``netcheck pcap`` and ``netcheck trace`` from the command line: output, contract, errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from io import StringIO
from pathlib import Path
from typing import Any, Iterator

import pytest

from netcheck.cli import run

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pcap"
REPO = Path(__file__).resolve().parents[2]

SESSION_KEYS = {"id", "proto", "client", "server", "first_ts", "last_ts", "packets", "bytes",
                "handshake", "close", "closed_by", "retransmissions", "dup_acks",
                "zero_windows", "out_of_order", "tls", "http"}
EVENT_KEYS = {"n", "t", "dir", "flags", "seq", "ack", "len", "note"}
DNS_KEYS = {"t", "id", "query", "type", "rcode", "answers"}


def netcheck(*args: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    code = run(list(args), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def pcap_json(name: str, *args: str) -> dict[str, Any]:
    code, out, err = netcheck("pcap", str(FIXTURES / name), "--format", "json", *args)
    assert code == 0, out + err
    doc = json.loads(out)
    check_contract(doc)
    return doc


def check_contract(doc: dict[str, Any]) -> None:
    """The netcheck-pcap/1 shape of CONTRACT.md ("Capture explainer JSON")."""
    assert doc["schema"] == "netcheck-pcap/1"
    assert {"file", "packets", "truncated", "sessions", "dns", "other"} <= set(doc)
    assert isinstance(doc["truncated"], bool) and isinstance(doc["packets"], int)
    for s in doc["sessions"]:
        assert SESSION_KEYS <= set(s), SESSION_KEYS - set(s)
        assert s["proto"] == "tcp" and set(s["bytes"]) == {"client", "server"}
        assert {"complete", "syn_retries", "rtt_ms", "answered_by_rst"} <= set(s["handshake"])
        assert s["close"] in ("fin", "rst", "half", "none")
        assert s["closed_by"] in ("client", "server", None)
        if s["tls"] is not None:
            assert set(s["tls"]) == {"versions", "sni", "messages"}
        for h in s["http"]:
            assert set(h) == {"request", "status"}
        for e in s.get("events", []):
            assert EVENT_KEYS <= set(e)
            assert e["dir"] in ("c>s", "s>c", "icmp")
    for d in doc["dns"]:
        assert DNS_KEYS <= set(d)
    for o in doc["other"]:
        assert "proto" in o


def test_summary_then_detail_of_one_session() -> None:
    code, out, _ = netcheck("pcap", str(FIXTURES / "http_tls13.pcap"), "--no-color")
    assert code == 0
    assert "http_tls13.pcap: 30 packets, 2 TCP session(s)" in out
    assert "GET / -> 200" in out and "TLSv1.3 www.lab.test" in out
    assert "Detail of one session: --session N" in out
    code, out, _ = netcheck("pcap", str(FIXTURES / "http_tls13.pcap"), "--session", "2")
    assert code == 0
    assert "Session 2: 198.18.1.2:" in out and "-> 198.18.2.10:8443" in out
    assert "TLS: Client Hello (SNI www.lab.test)" in out
    assert "TLS: Server Hello, Change Cipher Spec" in out and "(TLSv1.3)" in out
    assert "No.  Time" in out and "Options" in out


@pytest.mark.parametrize("name, expect", [
    ("syn_retries.pcap", lambda s: not s["handshake"]["complete"]
     and s["handshake"]["syn_retries"] >= 2 and s["retransmissions"] >= 2),
    ("syn_rst.pcap", lambda s: s["handshake"]["answered_by_rst"] and s["close"] == "rst"),
    ("rst_close.pcap", lambda s: (s["close"], s["closed_by"]) == ("rst", "client")
     and s["handshake"]["complete"]),
    ("ipv6_http.pcap", lambda s: s["client"].startswith("[2001:db8:1::2]:")
     and s["http"] == [{"request": "GET / HTTP/1.1", "status": 200}]),
    # Captured on a busy machine: the server's FIN left before the client's arrived.
    ("two_interfaces.pcapng", lambda s: s["close_detail"] == "simultaneous"
     and s["packets"] == 11),
    ("smtp.pcap", lambda s: s["app"] == "smtp" and s["close"] == "fin"
     and "C: AUTH PLAIN ******** (credentials in clear text)" in s["dialogue"]),
])
def test_committed_captures_are_explained(name: str, expect: Any) -> None:
    doc = pcap_json(name)
    (s,) = doc["sessions"]
    assert expect(s), s
    assert "events" in s  # a capture of one session shows its detail


def test_dns_capture() -> None:
    doc = pcap_json("dns.pcap")
    assert [(d["query"], d["type"], d["rcode"]) for d in doc["dns"]] == [
        ("www.lab.test", "A", "NOERROR"), ("www.lab.test", "AAAA", "NOERROR"),
        ("alias.lab.test", "A", "NOERROR"), ("nope.lab.test", "A", "NXDOMAIN"),
        ("lab.test", "NS", "NOERROR"), ("www.lab.test", "A", "NOERROR")]
    assert doc["dns"][2]["answers"] == ["CNAME www.lab.test", "198.18.2.10"]
    assert doc["dns"][5]["transport"] == "tcp"


def test_smtp_password_never_printed() -> None:
    code, out, _ = netcheck("pcap", str(FIXTURES / "smtp.pcap"))
    assert code == 0 and "s3cret" not in out and "AGFsdW1uZQ" not in out
    assert "Credentials crossed the network in clear text" in out


def test_truncated_and_snaplen_cut_captures_give_partial_results() -> None:
    doc = pcap_json("truncated.pcap")
    assert doc["truncated"] is True and len(doc["sessions"]) == 2
    assert "results cover the first 18 packets" in doc["warnings"][0]
    doc = pcap_json("snaplen_96.pcap")
    assert doc["truncated"] is False
    assert any("cut by the snap length" in w for w in doc["warnings"])
    assert "ClientHello" in doc["sessions"][0]["tls"]["messages"]
    code, out, _ = netcheck("pcap", str(FIXTURES / "truncated.pcapng"))
    assert code == 0 and "warning: the file ends in the middle of a block" in out


@pytest.mark.parametrize("target, message", [
    ("empty.pcap", "empty.pcap is empty (0 bytes): not a capture"),
    ("wrong_magic.pcap", "is not a pcap or pcapng capture"),
    ("nope.pcap", "nope.pcap: no such file"),
    (".", "is a directory, not a capture file"),
])
def test_bad_files_exit_3_with_one_line(target: str, message: str) -> None:
    path = str(FIXTURES / target)
    code, out, err = netcheck("pcap", path)
    assert code == 3 and out == ""
    assert err.startswith("netcheck: error: ") and message in err and err.count("\n") == 1
    code, out, err = netcheck("pcap", path, "--format", "json")
    assert code == 3 and err == ""
    doc = json.loads(out)
    assert set(doc) == {"schema", "error"} and doc["schema"] == "netcheck-pcap/1"
    assert message in doc["error"]


def test_session_that_does_not_exist_and_bad_filter() -> None:
    code, out, _ = netcheck("pcap", str(FIXTURES / "syn_rst.pcap"), "--session", "7",
                            "--format", "json")
    assert code == 3
    assert json.loads(out)["error"] == ("there is no TCP session 7 in the capture: it has 1, "
                                        "numbered 1 to 1")
    code, _, err = netcheck("pcap", str(FIXTURES / "syn_rst.pcap"), "--filter", "port x")
    assert code == 3 and "--filter 'port x': port 'x' is not a number" in err
    code, _, err = netcheck("pcap", str(FIXTURES / "syn_rst.pcap"), "--session", "0")
    assert code == 3 and "is not a session number" in err


def test_filter_on_the_command_line() -> None:
    doc = pcap_json("http_tls13.pcap", "--filter", "port 8443")
    assert [s["server"].rsplit(":", 1)[1] for s in doc["sessions"]] == ["8443"]


@pytest.mark.parametrize("lang, refused", [
    ("en", "RST: server refuses the connection"),
    ("es", "RST: el servidor rechaza la conexión"),
    ("ca", "RST: el servidor rebutja la connexió"),
])
def test_notes_in_three_languages(lang: str, refused: str) -> None:
    code, out, _ = netcheck("pcap", str(FIXTURES / "syn_rst.pcap"), "--lang", lang)
    assert code == 0 and refused in out


def test_every_text_exists_in_three_languages_with_the_same_placeholders() -> None:
    import string

    from netcheck.pcap import render  # noqa: F401 - adds its texts to the table
    from netcheck.pcap.explain import TEXTS

    for key, texts in TEXTS.items():
        assert len(texts) == 3, key
        fields = [sorted(f for _, f, _, _ in string.Formatter().parse(text) if f)
                  for text in texts]
        assert fields[0] == fields[1] == fields[2], key


def test_commands_start_without_heavy_imports() -> None:
    code = ("import sys, netcheck.pcap.command, netcheck.pcap.sessions, netcheck.pcap.reader; "
            "print(sorted(m for m in ('rich', 'pyroute2', 'dns', 'psutil', 'asyncio') "
            "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=30)
    assert proc.stdout.strip() == "[]", proc.stderr
    proc = subprocess.run([sys.executable, "-m", "netcheck", "pcap", "--help"],
                          capture_output=True, text=True, cwd=REPO, timeout=30)
    assert proc.returncode == 0 and "--session N" in proc.stdout


# -- trace -----------------------------------------------------------------------------------

def test_trace_rejects_a_bad_target_before_any_packet() -> None:
    code, out, _ = netcheck("trace", "ftp://x", "--format", "json")
    assert code == 3 and "unknown scheme" in json.loads(out)["error"]


def test_trace_without_capture_rights_says_what_it_needs(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    from netcheck.pcap import trace

    def no_af_packet(*_args: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(trace, "AfPacketCapture", no_af_packet)
    monkeypatch.setattr(trace.shutil, "which", lambda *_a, **_k: None)
    code, out, _ = netcheck("trace", "http://127.0.0.1:9/", "--format", "json")
    assert code == 3
    assert json.loads(out)["error"] == (
        "netcheck trace needs root (CAP_NET_RAW) or tcpdump to capture: no CAP_NET_RAW for an "
        "AF_PACKET socket; tcpdump is not installed")


def test_bpf_program_is_well_formed() -> None:
    from netcheck.pcap.trace import bpf_program

    for family in (socket.AF_INET, socket.AF_INET6):
        program = bpf_program(family, 40000)
        assert len(program) % 8 == 0
        last = len(program) // 8 - 1
        for i in range(last + 1):
            op, jt, jf, _k = __import__("struct").unpack_from("HBBI", program, i * 8)
            if op == 0x15:
                assert i + 1 + jt <= last and i + 1 + jf <= last  # jumps stay inside


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        body = b"hello\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def loopback_http() -> Iterator[int]:
    server = HTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _can_capture() -> bool:
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM).close()
        return True
    except (PermissionError, OSError, AttributeError):
        return False


@pytest.mark.skipif(not _can_capture(), reason="needs CAP_NET_RAW (AF_PACKET)")
def test_trace_on_loopback(loopback_http: int, tmp_path: Path) -> None:
    # Loopback only: the capture socket is bound to lo (the route to 127.0.0.1).
    saved = tmp_path / "trace.pcap"
    code, out, err = netcheck("trace", f"http://127.0.0.1:{loopback_http}/", "--format",
                              "json", "-w", str(saved))
    assert code == 0, out + err
    doc = json.loads(out)
    check_contract(doc)
    assert doc["trace"]["interface"] == "lo" and doc["trace"]["http_status"] == 200
    (s,) = doc["sessions"]
    assert s["handshake"]["complete"] and s["close"] == "fin"
    assert s["http"] == [{"request": "GET / HTTP/1.1", "status": 200}]
    assert s["events"][0]["note"].startswith("SYN: client opens")
    assert os.path.getsize(saved) > 24
    code, out, _ = netcheck("pcap", str(saved), "--format", "json")
    assert json.loads(out)["sessions"][0]["packets"] == s["packets"]


@pytest.mark.skipif(not _can_capture(), reason="needs CAP_NET_RAW (AF_PACKET)")
def test_trace_of_a_closed_loopback_port_is_a_refusal() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: nothing listens there
    code, out, _ = netcheck("trace", f"tcp://127.0.0.1:{port}", "--format", "json")
    doc = json.loads(out)
    assert code == 2 and doc["trace"]["outcome"] == "refused"
    assert doc["sessions"][0]["handshake"]["answered_by_rst"]


def test_text_output_of_a_trace_names_the_outcome() -> None:
    from netcheck.pcap.render import render_lines

    doc = {"schema": "netcheck-pcap/1", "file": None, "packets": 2, "truncated": False,
           "sessions": [], "dns": [], "other": [],
           "trace": {"target": "tcp://[2001:db8:2::10]:23", "address": "2001:db8:2::10",
                     "port": 23, "local_port": 40000, "capture": "tcpdump",
                     "interface": "eth0", "outcome": "refused", "detail": "RST",
                     "http_status": None, "banner": None}}
    lines = [line for line, _ in render_lines(doc, "es")]
    assert lines[1] == ("traza tcp://[2001:db8:2::10]:23 -> [2001:db8:2::10]:23 desde el "
                        "puerto 40000 (capturada con tcpdump, eth0): refused: RST")


def test_egress_interface_without_netlink_falls_back_to_the_source_address() -> None:
    from netcheck.pcap.trace import _interface_of_source

    assert _interface_of_source("127.0.0.1") == (socket.if_nametoindex("lo"), "lo")


def test_capture_on_standard_input() -> None:
    proc = subprocess.run([sys.executable, "-m", "netcheck", "pcap", "-", "--format", "json"],
                          input=(FIXTURES / "syn_rst.pcap").read_bytes(), capture_output=True,
                          cwd=REPO, timeout=30)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["file"] == "stdin" and doc["sessions"][0]["handshake"]["answered_by_rst"]
