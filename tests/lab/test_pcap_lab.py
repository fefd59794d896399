"""The capture explainer against real traffic, cross-checked with tshark's own dissection.

In a lab, tcpdump captures (in the client namespace, on its eth0) the kinds of sessions the
seeds analyse by hand: HTTP, an SSH banner, TLS 1.3 and TLS 1.2 with SNI, a refused port, a
dropped port (SYN retries), DNS over UDP and TCP, an SMTP dialogue with AUTH, IPv6, and a bulk
download through a lossy router (retransmissions, duplicate ACKs). ``netcheck pcap`` then
explains the file and tshark dissects the same file; the counts must agree: sessions, packets
and data bytes each way per session, retransmissions, duplicate ACKs, the handshake RTT,
TLS message types, HTTP lines, SMTP commands, DNS queries and rcodes.

``netcheck trace`` runs for real in the client namespace too (AF_PACKET capture), and its
saved capture is checked with tshark as well.

Safety: every capture and every packet stays inside the lab's namespaces; addresses are the
lab's (198.18.0.0/15, 2001:db8::/32); nothing runs through a shell.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional

import pytest

from netcheck.lab.topology import SERVER_V4, SERVER_V6, Lab

TSHARK = shutil.which("tshark")
TCPDUMP = shutil.which("tcpdump") or shutil.which("tcpdump", path="/usr/sbin:/usr/bin")
PY = sys.executable

TLS_PORT = 8443
BULK_PORT = 9000
DROPPED_PORT = 2222
REFUSED_PORT = 23

# Servers started in the server namespace for this test (python -c, argv only).
TLS_SERVER = r"""
import socket, ssl, sys, threading
cert, key, host, port, ready = sys.argv[1:6]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((host, int(port)))
srv.listen(16)
open(ready, "w").close()
def serve(conn):
    try:
        tls = ctx.wrap_socket(conn, server_side=True)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = tls.recv(4096)
            if not chunk:
                break
            data += chunk
        tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n")
        tls.close()
    except Exception:
        conn.close()
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""

SMTP_SERVER = r"""
import socket, sys
host, ready = sys.argv[1:3]
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((host, 25))
srv.listen(4)
open(ready, "w").close()
while True:
    conn, _ = srv.accept()
    lines = conn.makefile("rb")
    conn.sendall(b"220 mail.lab.test ESMTP netcheck-lab\r\n")
    data = False
    for line in lines:
        if data:
            if line == b".\r\n":
                data = False
                conn.sendall(b"250 OK id=1nc-lab\r\n")
            continue
        cmd = line[:4].upper()
        if cmd == b"EHLO":
            conn.sendall(b"250-mail.lab.test Hello\r\n250-SIZE 52428800\r\n250 AUTH PLAIN\r\n")
        elif cmd == b"AUTH":
            conn.sendall(b"235 2.7.0 Authentication successful\r\n")
        elif cmd in (b"MAIL", b"RCPT"):
            conn.sendall(b"250 OK\r\n")
        elif cmd == b"DATA":
            conn.sendall(b'354 Enter message, ending with "." on a line by itself\r\n')
            data = True
        elif cmd == b"QUIT":
            conn.sendall(b"221 mail.lab.test closing connection\r\n")
            break
        else:
            conn.sendall(b"500 unrecognised command\r\n")
    lines.close()  # the file object holds the socket open: close both, or no FIN is sent
    conn.close()
"""

BULK_SERVER = r"""
import socket, sys, threading
host, port, size, ready = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((host, port))
srv.listen(4)
open(ready, "w").close()
def serve(conn):
    conn.recv(100)
    conn.sendall(b"b" * size)
    conn.shutdown(socket.SHUT_WR)
    conn.recv(100)
    conn.close()
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""

# Client actions, each run as `python -c CODE ARGS...` in the client namespace.
HTTP_GET = r"""
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=5).status)
"""
SSH_BANNER = r"""
import socket
s = socket.create_connection(("198.18.2.10", 22), timeout=5)
print(s.recv(100))
s.sendall(b"SSH-2.0-netcheck-test\r\n")
s.close()
"""
HTTPS_GET = r"""
import socket, ssl, sys
url_host, port, cafile, version = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=cafile)
if version == "1.2":
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
# The server listens on IPv4 only: connect there, name it in the SNI.
s = ctx.wrap_socket(socket.create_connection(("198.18.2.10", port), timeout=5),
                    server_hostname=url_host)
version = s.version()
s.sendall(b"GET / HTTP/1.1\r\nHost: " + url_host.encode() + b"\r\nConnection: close\r\n\r\n")
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
print(version, data.split(b"\r\n")[0])
s.close()
"""
CONNECT = r"""
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    print("open")
except OSError as exc:
    print(type(exc).__name__)
"""
SMTP_SEND = r"""
import smtplib
# local_hostname: otherwise smtplib looks up this machine's own name in DNS first.
with smtplib.SMTP("198.18.2.10", 25, local_hostname="client.lab.test", timeout=5) as smtp:
    smtp.ehlo("client.lab.test")
    smtp.login("alumne", "s3cret-pass")
    smtp.sendmail("alumne@lab.test", ["profe@lab.test"],
                  "Subject: practica\r\n\r\nHola, aqui va la practica.\r\n")
"""
BULK_GET = r"""
import socket
s = socket.create_connection(("198.18.2.10", 9000), timeout=10)
s.sendall(b"go\n")
n = 0
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    n += len(chunk)
s.close()
print(n)
"""


def _wait_file(path: Path, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {timeout}s")
        time.sleep(0.01)


def start_servers(lab: Lab, bulk_size: int = 1_500_000) -> Path:
    """TLS (www.lab.test, port 8443), SMTP (25) and bulk (9000) servers; returns the CA file."""
    from netcheck.lab.pki import LabCA

    ca = LabCA(lab.state_dir / "pki")
    issued = ca.issue("www", ["www.lab.test", SERVER_V4])
    ready = {name: lab.state_dir / f"{name}.pcapready" for name in ("tls", "smtp", "bulk")}
    lab.popen("server", [PY, "-c", TLS_SERVER, str(issued.cert), str(issued.key), SERVER_V4,
                         str(TLS_PORT), str(ready["tls"])], name="pcap-tls")
    lab.popen("server", [PY, "-c", SMTP_SERVER, SERVER_V4, str(ready["smtp"])],
              name="pcap-smtp")
    lab.popen("server", [PY, "-c", BULK_SERVER, SERVER_V4, str(BULK_PORT), str(bulk_size),
                         str(ready["bulk"])], name="pcap-bulk")
    for path in ready.values():
        _wait_file(path)
    return ca.files.cert


def start_capture(lab: Lab, path: Path, *extra: str, name: str = "pcap-tcpdump"
                  ) -> subprocess.Popen:
    """tcpdump -i eth0 -w PATH in the client namespace; returns once it is listening."""
    assert TCPDUMP, "tcpdump is needed"
    # --immediate-mode: without it libpcap hands packets over in ring-buffer blocks (up to a
    # second late), and the packets of the last block are lost when tcpdump is stopped.
    # -B: a 64 MB kernel buffer, so that a busy machine does not drop the bulk download's
    # frames before tcpdump reads them. In immediate mode every slot of that ring is as
    # large as the snapshot length (256 KB): 16 MB held only 64 frames, and a loaded CI
    # machine dropped dozens.
    proc = lab.popen("client", [TCPDUMP, "-i", "eth0", "-n", "-U", "--immediate-mode",
                                "-B", "65536", "-w", str(path), *extra], name=name)
    deadline = time.monotonic() + 5
    while "listening on" not in lab.log(name):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"tcpdump did not start: {lab.log(name)}")
        time.sleep(0.02)
    return proc


def stop_capture(proc: subprocess.Popen) -> None:
    """SIGINT to tcpdump (by its PID: it flushes and exits), then wait."""
    time.sleep(0.3)  # the last ACKs of the last session
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=5)


def client(lab: Lab, code: str, *args: str, timeout: float = 15) -> str:
    """Run a client action in the client namespace; its stdout."""
    proc = lab.exec("client", [PY, "-c", code, *args], timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def add_loss(lab: Lab) -> None:
    """The router drops every 8th bulk-download packet (retransmissions, dup ACKs), always."""
    # Real segments, not offloaded or merged super-frames: numgen counts what the router
    # forwards, and a whole burst merged into a few frames could dodge every 8th slot.
    lab.exec("server", ["ethtool", "-K", "eth0", "tso", "off", "gso", "off"], check=True)
    lab.exec("router", ["ethtool", "-K", "r-server", "gro", "off"], check=True)
    lab.nft("router", f"""table inet pcaploss {{
  chain forward {{
    type filter hook forward priority 0; policy accept;
    tcp sport {BULK_PORT} numgen inc mod 8 == 5 drop
  }}
}}
""")


def drop_port(lab: Lab, port: int = DROPPED_PORT) -> None:
    """The server silently drops SYNs to ``port``: the client retries its SYN."""
    lab.nft("server", f"""table inet pcapdrop {{
  chain input {{
    type filter hook input priority 0; policy accept;
    tcp dport {port} drop
  }}
}}
""")


def make_traffic(lab: Lab, cafile: Path, dropped_wait: float = 3.5) -> None:
    """Every kind of session, one after another (so tshark and we number them alike)."""
    assert client(lab, HTTP_GET, f"http://{SERVER_V4}/").strip() == "200"
    client(lab, SSH_BANNER)
    out = client(lab, HTTPS_GET, "www.lab.test", str(TLS_PORT), str(cafile), "1.3")
    assert "TLSv1.3" in out, out
    out = client(lab, HTTPS_GET, "www.lab.test", str(TLS_PORT), str(cafile), "1.2")
    assert "TLSv1.2" in out, out
    assert "ConnectionRefusedError" in client(lab, CONNECT, SERVER_V4, str(REFUSED_PORT), "3")
    assert "timeout" in client(lab, CONNECT, SERVER_V4, str(DROPPED_PORT),
                               str(dropped_wait)).lower()
    dig = shutil.which("dig") or "/usr/bin/dig"
    for args in (["www.lab.test", "A"], ["www.lab.test", "AAAA"], ["alias.lab.test", "A"],
                 ["nope.lab.test", "A"], ["lab.test", "NS"], ["+tcp", "www.lab.test", "A"]):
        lab.exec("client", [dig, "@198.18.3.53", "+time=2", "+tries=1", *args], check=True)
    client(lab, SMTP_SEND)
    assert client(lab, HTTP_GET, f"http://[{SERVER_V6}]/").strip() == "200"
    assert client(lab, BULK_GET).strip() == "1500000"


# -- tshark's view ---------------------------------------------------------------------------

TCP_FIELDS = ("frame.number", "tcp.stream", "ip.src", "ipv6.src", "tcp.srcport", "tcp.len",
              "tcp.seq",
              "tcp.flags", "tcp.analysis.retransmission", "tcp.analysis.initial_rtt",
              "tcp.analysis.duplicate_ack", "tls.handshake.type", "tls.record.content_type",
              "tls.record.opaque_type", "http.request.method", "http.response.code",
              "smtp.req.command")


def tshark_rows(path: Path, display: str, fields: tuple[str, ...]) -> list[dict[str, str]]:
    """tshark -T fields over ``path``: one dict per frame."""
    assert TSHARK
    argv = [TSHARK, "-r", str(path), "-n", "-d", f"tcp.port=={TLS_PORT},tls", "-Y", display,
            "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=,"]
    for field in fields:
        argv += ["-e", field]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    rows = []
    for line in proc.stdout.splitlines():
        cells = line.split("\t")
        rows.append(dict(zip(fields, cells + [""] * (len(fields) - len(cells)))))
    return rows


HANDSHAKE_NAMES = {"1": "ClientHello", "2": "ServerHello", "4": "NewSessionTicket",
                   "8": "EncryptedExtensions", "11": "Certificate", "12": "ServerKeyExchange",
                   "13": "CertificateRequest", "14": "ServerHelloDone",
                   "15": "CertificateVerify", "16": "ClientKeyExchange", "20": "Finished"}
RECORD_NAMES = {"20": "ChangeCipherSpec", "21": "Alert", "23": "ApplicationData"}


def tshark_streams(path: Path) -> dict[int, dict[str, Any]]:
    """Per tcp.stream: packets, data bytes each way, retransmissions, dup ACKs, iRTT, TLS
    message types, HTTP and SMTP lines, as tshark sees them."""
    streams: dict[int, dict[str, Any]] = {}
    for row in tshark_rows(path, "tcp", TCP_FIELDS):
        sid = int(row["tcp.stream"])
        src = row["ip.src"] or row["ipv6.src"]
        s = streams.setdefault(sid, {"packets": 0, "bytes": defaultdict(int), "retrans": 0,
                                     "dupacks": 0, "irtt": None, "tls": set(),
                                     "methods": [], "codes": [], "smtp": []})
        s["packets"] += 1
        # Data sent each way: the highest relative sequence number reached by data, minus 1
        # (a sum of tcp.len would count retransmissions twice and lost segments never).
        size = int(row["tcp.len"] or 0)
        if size:
            end = int(row["tcp.seq"]) + size - 1
            key = (src, row["tcp.srcport"])
            s["bytes"][key] = max(s["bytes"][key], end)
        s["retrans"] += bool(row["tcp.analysis.retransmission"])
        s["dupacks"] += bool(row["tcp.analysis.duplicate_ack"])
        if row["tcp.analysis.initial_rtt"] and s["irtt"] is None:
            s["irtt"] = float(row["tcp.analysis.initial_rtt"])
        for value in filter(None, row["tls.handshake.type"].split(",")):
            s["tls"].add(HANDSHAKE_NAMES.get(value, value))
        # TLS 1.3 hides the real type: Wireshark names the outer one "opaque_type".
        records = row["tls.record.content_type"] + "," + row["tls.record.opaque_type"]
        for value in filter(None, records.split(",")):
            if value in RECORD_NAMES:
                s["tls"].add(RECORD_NAMES[value])
        s["methods"] += list(filter(None, row["http.request.method"].split(",")))
        s["codes"] += list(filter(None, row["http.response.code"].split(",")))
        s["smtp"] += list(filter(None, row["smtp.req.command"].split(",")))
    return streams


def tshark_dns(path: Path) -> list[tuple[int, str, str, str]]:
    """(id, name, type, rcode) of every DNS response."""
    rows = tshark_rows(path, "dns.flags.response == 1",
                       ("dns.id", "dns.qry.name", "dns.qry.type", "dns.flags.rcode"))
    from netcheck.pcap.protocols import DNS_RCODES, DNS_TYPES

    return sorted((int(r["dns.id"], 16), r["dns.qry.name"],
                   DNS_TYPES.get(int(r["dns.qry.type"]), r["dns.qry.type"]),
                   DNS_RCODES.get(int(r["dns.flags.rcode"]), r["dns.flags.rcode"]))
                  for r in rows)


def netcheck_pcap(path: Path, *args: str) -> dict[str, Any]:
    """``netcheck pcap PATH --format json`` (in the root namespace: it only reads a file)."""
    proc = subprocess.run([PY, "-m", "netcheck", "pcap", str(path), "--format", "json", *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def _split(endpoint: str) -> tuple[str, str]:
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), port


# -- the tests -------------------------------------------------------------------------------

needs_tools = pytest.mark.skipif(not TSHARK or not TCPDUMP,
                                 reason="tshark and tcpdump are needed (Debian: tshark tcpdump)")


@needs_tools
def test_explainer_agrees_with_tshark_on_a_real_capture(lab: Lab, tmp_path: Path) -> None:
    cafile = start_servers(lab)
    drop_port(lab)
    add_loss(lab)
    path = tmp_path / "lab.pcap"
    proc = start_capture(lab, path)
    try:
        make_traffic(lab, cafile)
    finally:
        stop_capture(proc)

    stats = lab.log("pcap-tcpdump")
    assert "\n0 packets dropped by kernel" in stats, stats
    doc = netcheck_pcap(path)
    ours = {s["id"] - 1: s for s in doc["sessions"]}
    theirs = tshark_streams(path)
    assert sorted(ours) == sorted(theirs), "the same TCP sessions, numbered alike"
    assert len(ours) == 10  # DNS over TCP included; the other DNS is UDP

    for sid, t in theirs.items():
        s = ours[sid]
        where = f"session {s['id']} {s['client']} -> {s['server']}"
        assert s["packets"] == t["packets"], where
        client_ep, server_ep = _split(s["client"]), _split(s["server"])
        assert s["bytes"]["client"] == t["bytes"][client_ep], where
        assert s["bytes"]["server"] == t["bytes"][server_ep], where
        assert s["retransmissions"] == t["retrans"], where
        assert s["dup_acks"] == t["dupacks"], where
        if s["handshake"]["complete"]:
            assert t["irtt"] is not None, where
            assert abs(s["handshake"]["rtt_ms"] - t["irtt"] * 1000) < 0.002, where
        if t["tls"]:
            assert s["tls"] is not None, where
            ours_tls = set(s["tls"]["messages"]) - {"EncryptedHandshakeMessage",
                                                    "EncryptedAlert"}
            theirs_tls = t["tls"] - {"Alert", "Finished"}
            assert ours_tls == theirs_tls, where
        if t["methods"]:
            assert [h["request"].split()[0] for h in s["http"]] == t["methods"], where
            assert [str(h["status"]) for h in s["http"]] == t["codes"], where
        if t["smtp"]:
            commands = [line[3:].split()[0] for line in s["dialogue"]
                        if line.startswith("C: ") and "DATA fragment" not in line]
            assert commands == t["smtp"], where

    by_port = {int(_split(s["server"])[1]): s for s in doc["sessions"]}
    tls13, tls12 = [s for s in doc["sessions"] if s["server"].endswith(f":{TLS_PORT}")]
    assert tls13["tls"]["versions"] == ["TLSv1.3"] and tls13["tls"]["sni"] == "www.lab.test"
    assert tls12["tls"]["versions"] == ["TLSv1.2"]
    assert "ClientKeyExchange" in tls12["tls"]["messages"]
    refused = by_port[REFUSED_PORT]
    assert refused["handshake"]["answered_by_rst"] and refused["close"] == "rst"
    dropped = by_port[DROPPED_PORT]
    assert not dropped["handshake"]["complete"] and dropped["handshake"]["syn_retries"] >= 2
    bulk = by_port[BULK_PORT]
    assert bulk["bytes"]["server"] == 1_500_000
    assert bulk["retransmissions"] > 0, "the lossy router made the server retransmit"
    smtp = by_port[25]
    assert any("AUTH PLAIN ********" in line for line in smtp["dialogue"])
    assert "s3cret" not in json.dumps(doc)
    assert any(s["client"].startswith("[2001:db8:1::2]") for s in doc["sessions"])

    ours_dns = sorted((d["id"], d["query"], d["type"], d["rcode"]) for d in doc["dns"]
                      if d["rcode"] is not None)
    assert ours_dns == tshark_dns(path)
    assert ("nope.lab.test" in {d["query"] for d in doc["dns"] if d["rcode"] == "NXDOMAIN"})
    alias = [d for d in doc["dns"] if d["query"] == "alias.lab.test"][0]
    assert alias["answers"] == ["CNAME www.lab.test", "198.18.2.10"]


def trace(lab: Lab, *args: str, timeout: float = 30) -> tuple[int, dict[str, Any]]:
    """``netcheck trace ARGS --format json`` in the client namespace."""
    proc = lab.exec("client", [PY, "-m", "netcheck", "trace", *args, "--format", "json"],
                    timeout=timeout)
    return proc.returncode, json.loads(proc.stdout)


@needs_tools
def test_trace_explains_a_real_http_connection(lab: Lab, tmp_path: Path) -> None:
    saved = tmp_path / "trace.pcap"
    rc, doc = trace(lab, f"http://{SERVER_V4}/", "-w", str(saved))
    assert rc == 0, doc
    assert doc["trace"]["capture"] == "af_packet" and doc["trace"]["http_status"] == 200
    (s,) = doc["sessions"]
    assert s["handshake"]["complete"] and s["handshake"]["rtt_ms"] > 0
    assert s["http"] == [{"request": "GET / HTTP/1.1", "status": 200}]
    assert s["close"] == "fin" and s["closed_by"] == "server"
    notes = [e["note"] for e in s["events"]]
    assert notes[0].startswith("SYN: client opens, initial sequence number A")
    assert notes[1].startswith("SYN-ACK: server accepts, acknowledges A+1")
    assert "handshake complete" in notes[2]
    assert any("HTTP response: HTTP/1.1 200 OK" in n for n in notes)
    # The saved capture, read by tshark: the same packets and the same iRTT.
    rows = tshark_rows(saved, "tcp", ("tcp.stream", "tcp.analysis.initial_rtt"))
    assert len(rows) == s["packets"]
    irtt = next(float(r["tcp.analysis.initial_rtt"]) for r in rows
                if r["tcp.analysis.initial_rtt"])
    assert abs(irtt * 1000 - s["handshake"]["rtt_ms"]) < 0.002


@needs_tools
def test_trace_shows_tls_refused_and_dropped(lab: Lab) -> None:
    cafile = start_servers(lab, bulk_size=10)
    drop_port(lab)
    rc, doc = trace(lab, f"https://www.lab.test:{TLS_PORT}/", "-4", "--cafile", str(cafile))
    assert rc == 0, doc
    tls = doc["sessions"][0]["tls"]
    assert tls["versions"] == ["TLSv1.3"] and tls["sni"] == "www.lab.test"
    assert tls["messages"][:2] == ["ClientHello", "ServerHello"]
    assert doc["sessions"][0]["http"] == []  # encrypted: nothing to read

    rc, doc = trace(lab, f"tcp://{SERVER_V4}:{REFUSED_PORT}")
    assert rc == 2 and doc["trace"]["outcome"] == "refused"
    assert doc["sessions"][0]["handshake"]["answered_by_rst"]

    rc, doc = trace(lab, f"tcp://{SERVER_V4}:{DROPPED_PORT}", "--timeout", "1.5")
    assert rc == 2 and doc["trace"]["outcome"] == "timeout"
    hs = doc["sessions"][0]["handshake"]
    assert not hs["complete"] and hs["syn_retries"] >= 1


def test_trace_without_privileges_says_what_it_needs(lab: Lab) -> None:
    setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
    proc = lab.exec("client", [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
                               "--bounding-set=-net_raw", PY, "-m", "netcheck", "trace",
                               f"http://{SERVER_V4}/", "--format", "json"],
                    env={"PATH": "/nonexistent", "PYTHONDONTWRITEBYTECODE": "1"}, timeout=20)
    assert proc.returncode == 3, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["schema"] == "netcheck-pcap/1"
    assert "needs root (CAP_NET_RAW)" in doc["error"] and "tcpdump" in doc["error"]


def make_fixtures(folder: Path) -> None:
    """Capture the committed real-traffic fixtures (tests/fixtures/pcap/make_fixtures.py)."""
    dumpcap = shutil.which("dumpcap")
    # Committed files hold the lab's own addresses only: no link-local, multicast or ARP.
    lab_only = ("(ip and net 198.18.0.0/15) or "
                "(ip6 and src net 2001:db8::/32 and dst net 2001:db8::/32)")
    with Lab() as lab:
        cafile = start_servers(lab)
        drop_port(lab)

        def capture(name: str, action: Any, *extra: str, tool: Optional[list[str]] = None
                    ) -> None:
            path = folder / name
            if tool is None:
                proc = start_capture(lab, path, *(extra or (lab_only,)), name=f"fx-{name}")
            else:
                proc = lab.popen("client", [*tool, "-w", str(path)], name=f"fx-{name}")
                time.sleep(1.5)  # dumpcap prints no "listening on" line we could wait for
            try:
                action()
            finally:
                stop_capture(proc)

        capture("http_tls13.pcap", lambda: (
            client(lab, HTTP_GET, f"http://{SERVER_V4}/"),
            client(lab, HTTPS_GET, "www.lab.test", str(TLS_PORT), str(cafile), "1.3")))
        capture("dns.pcap", lambda: [
            lab.exec("client", ["dig", "@198.18.3.53", *a], check=True)
            for a in (["www.lab.test", "A"], ["www.lab.test", "AAAA"], ["alias.lab.test"],
                      ["nope.lab.test"], ["lab.test", "NS"], ["+tcp", "www.lab.test"])],
                "udp port 53 or tcp port 53")
        capture("smtp.pcap", lambda: client(lab, SMTP_SEND))
        capture("syn_retries.pcap", lambda: client(lab, CONNECT, SERVER_V4,
                                                     str(DROPPED_PORT), "3.5"))
        capture("syn_rst.pcap", lambda: client(lab, CONNECT, SERVER_V4, str(REFUSED_PORT),
                                                 "3"))
        capture("ipv6_http.pcap", lambda: client(lab, HTTP_GET, f"http://[{SERVER_V6}]/"))
        capture("rst_close.pcap", lambda: client(lab, RST_CLOSE))
        capture("snaplen_96.pcap", lambda: client(
            lab, HTTPS_GET, "www.lab.test", str(TLS_PORT), str(cafile), "1.2"), "-s", "96",
            lab_only)
        if dumpcap:
            capture("two_interfaces.pcapng", lambda: (
                client(lab, HTTP_GET, f"http://{SERVER_V4}/"),
                lab.exec("client", ["ping", "-c", "1", "-I", "eth1", "198.18.4.1"])),
                tool=[dumpcap, "-q", "-i", "eth0", "-f", "tcp port 80", "-i", "any", "-f",
                      "icmp"])


RST_CLOSE = r"""
import socket, struct
s = socket.create_connection(("198.18.2.10", 22), timeout=5)
print(s.recv(100))
# SO_LINGER with a zero timeout: close() aborts with RST instead of FIN.
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
"""
