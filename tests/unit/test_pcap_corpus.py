"""The capture explainer against tshark, on captures nobody here made.

``tests/corpus/`` holds real captures written by others (the test sets of Zeek, nDPI,
PcapPlusPlus, Scapy, tcpdump and Suricata-verify; ``tests/corpus/SOURCES.md`` says where each
came from and under which licence). For each of them ``netcheck pcap`` and tshark's own
dissection are compared stream by stream: streams, packets, bytes each way, retransmissions,
duplicate ACKs, zero windows, out-of-order segments, the initial RTT, TLS versions and message
types, HTTP request/response pairs, and DNS response codes. A disagreement fails the test
unless it is one of the tshark quirks in :data:`QUIRKS` (each with why tshark says what it
says, and checked on tshark's own output, not assumed from a file name).

Run directly (``python tests/unit/test_pcap_corpus.py [-v]``) it prints the agreement table.
The tests run without any network (the corpus is in the repository) and skip without tshark.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from io import StringIO
from pathlib import Path
from typing import Any, Optional

import pytest

from netcheck.pcap.protocols import DNS_RCODES
from netcheck.pcap.reader import Capture
from netcheck.pcap.sessions import Analyzer, build_document

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
TSHARK = shutil.which("tshark")
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".pcap.gz", ".pcapng.gz")

METRICS = ("streams", "packets", "bytes", "retransmissions", "dup_acks", "zero_windows",
           "out_of_order", "irtt", "tls_versions", "tls_messages", "http_pairs", "dns_rcodes")

# Where tshark says something other than what the capture shows, and why. A disagreement is
# put down to one of these only when tshark's own output shows the condition.
QUIRKS = {
    "synack_new_isn": (
        "Wireshark 4.0 re-bases the relative sequence numbers on a SYN-ACK that carries a new "
        "ISN but keeps the next sequence number it expected before, so every later segment of "
        "that side is a 'retransmission' to it and is not handed to TLS or HTTP. netcheck "
        "re-bases too, and forgets the old expectation (checked: tshark marks that SYN-ACK "
        "tcp.analysis.reused_ports).",
        ("retransmissions", "out_of_order", "tls_versions", "tls_messages", "http_pairs")),
    "http_incomplete": (
        "tshark fills http.response.code / http.request.method only once the whole message "
        "(headers and body) is reassembled; a message whose body has a gap or runs past the "
        "end of the capture keeps its first line only in the Info column. netcheck reports "
        "the request or status line it saw (checked: tshark's Info shows that very line on a "
        "frame of the stream that has no HTTP fields).",
        ("http_pairs",)),
}

TCP_FIELDS = (
    "frame.number", "frame.protocols", "_ws.col.Info", "tcp.stream", "ip.src", "ipv6.src",
    "tcp.srcport", "tcp.len", "tcp.seq", "tcp.flags.syn", "tcp.flags.ack",
    "tcp.analysis.retransmission", "tcp.analysis.duplicate_ack", "tcp.analysis.zero_window",
    "tcp.analysis.out_of_order", "tcp.analysis.initial_rtt", "tcp.analysis.reused_ports",
    "tls.handshake.type", "tls.record.content_type", "tls.record.opaque_type",
    "tls.handshake.version", "tls.handshake.extensions.supported_version",
    "http.request.method", "http.response.code", "http.request_in",
    "dns.flags.response", "dns.id", "dns.flags.rcode", "udp.port", "tcp.port")
HANDSHAKE_TYPES = {"1": "ClientHello", "2": "ServerHello", "4": "NewSessionTicket",
                   "8": "EncryptedExtensions", "11": "Certificate", "12": "ServerKeyExchange",
                   "13": "CertificateRequest", "14": "ServerHelloDone",
                   "15": "CertificateVerify", "16": "ClientKeyExchange", "20": "Finished",
                   "22": "CertificateStatus"}
RECORD_TYPES = {"20": "ChangeCipherSpec", "21": "Alert", "23": "ApplicationData",
                "24": "Heartbeat"}
TLS_VERSIONS = {"0x0300": "SSLv3", "0x0301": "TLSv1", "0x0302": "TLSv1.1",
                "0x0303": "TLSv1.2", "0x0304": "TLSv1.3"}
TUNNEL_LAYERS = {"gtp", "capwap", "capwap.data", "teredo", "gre", "vxlan", "geneve", "l2tp",
                 "erspan"}
RCODE_NUMBERS = {name: number for number, name in DNS_RCODES.items()}
STATUS_LINE = re.compile(r"HTTP/1\.[01] (\d{3})\b")
REQUEST_LINE = re.compile(r"([A-Z][A-Z0-9_-]*) \S+ HTTP/1\.[01]\b")


def corpus_files() -> list[Path]:
    """The captures of the corpus, by name."""
    return sorted(p for p in CORPUS.iterdir() if p.name.endswith(CAPTURE_SUFFIXES))


# -- tshark's view ---------------------------------------------------------------------------

@dataclass
class Stream:
    """One tcp.stream as tshark dissects it."""

    first: int
    packets: int = 0
    ends: dict[tuple[str, str], int] = field(default_factory=dict)
    retrans: int = 0
    dupacks: int = 0
    zerowin: int = 0
    ooo: int = 0
    irtt: Optional[float] = None
    tls: set[str] = field(default_factory=set)
    server_version: Optional[str] = None
    client_version: Optional[str] = None
    # In frame order: (method, frame) of a request, or ("?", status) of an answer that
    # tshark matched to no request.
    http: list[tuple[str, Any]] = field(default_factory=list)
    partial_lines: list[str] = field(default_factory=list)  # first lines only in Info
    tunnelled: bool = False
    reused_synack: bool = False

    def version(self) -> list[str]:
        """The negotiated version (ServerHello), else the best the client offered."""
        chosen = self.server_version or self.client_version
        return [TLS_VERSIONS.get(chosen, chosen)] if chosen else []

    def pairs(self, status_of: dict[str, int]) -> list[tuple[str, Optional[int]]]:
        """(method, final status) per request and ('?', status) per unmatched answer."""
        return [(what, status_of.get(value)) if what != "?" else (what, value)
                for what, value in self.http]


@dataclass
class TsharkView:
    """What tshark makes of one capture."""

    streams: dict[int, Stream]
    dns: list[tuple[int, int]]
    tunnels: bool
    status_of: dict[str, int]  # request frame -> final status of its answer


def _cells(row: str) -> dict[str, list[str]]:
    cells = row.split("\t")
    cells += [""] * (len(TCP_FIELDS) - len(cells))
    return {name: [v for v in value.split("\x1f") if v] for name, value in zip(TCP_FIELDS,
                                                                                 cells)}


@lru_cache(maxsize=1)
def _config_dir() -> str:
    # An empty configuration: the reader's own Wireshark preferences never change the result.
    return tempfile.mkdtemp(prefix="netcheck-tshark-")


def tshark_view(path: Path) -> TsharkView:
    """One tshark pass over ``path`` with its default TCP analysis and reassembly."""
    assert TSHARK
    argv = [TSHARK, "-r", str(path), "-n",
            "-o", "tcp.analyze_sequence_numbers:TRUE", "-o", "tcp.desegment_tcp_streams:TRUE",
            "-o", "tcp.relative_sequence_numbers:TRUE", "-o", "tcp.calculate_timestamps:TRUE",
            "-Y", "tcp || dns", "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a",
            "-E", "aggregator=\x1f"]
    for name in TCP_FIELDS:
        argv += ["-e", name]
    env = dict(os.environ, WIRESHARK_CONFIG_DIR=_config_dir(), LC_ALL="C")
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120,
                          errors="replace")
    assert proc.returncode == 0, proc.stderr
    streams: dict[int, Stream] = {}
    status_of: dict[str, int] = {}
    dns: list[tuple[int, int]] = []
    tunnels = False
    for row in proc.stdout.splitlines():
        c = _cells(row)
        layers = (c["frame.protocols"] or [""])[0].split(":")
        tunnels = tunnels or bool(TUNNEL_LAYERS.intersection(layers))
        ip_layers = sum(layer in ("ip", "ipv6") for layer in layers)
        if "icmp" in layers or "icmpv6" in layers:
            continue  # a TCP header quoted in an ICMP error is not a packet of the stream
        if c["dns.flags.response"][:1] == ["1"] and ip_layers == 1 and "53" in (
                c["udp.port"] + c["tcp.port"]):
            for ident, rcode in zip(c["dns.id"], c["dns.flags.rcode"]):
                dns.append((int(ident, 16), int(rcode)))
        if not c["tcp.stream"]:
            continue
        s = streams.get(int(c["tcp.stream"][-1]))
        if s is None:
            s = streams[int(c["tcp.stream"][-1])] = Stream(int(c["frame.number"][0]))
        s.tunnelled = s.tunnelled or ip_layers > 1
        s.packets += 1
        size = int((c["tcp.len"] or ["0"])[-1])
        if size:
            key = ((c["ip.src"] or c["ipv6.src"])[-1], c["tcp.srcport"][-1])
            s.ends[key] = max(s.ends.get(key, 0), int(c["tcp.seq"][-1]) + size - 1)
        s.retrans += bool(c["tcp.analysis.retransmission"])
        s.dupacks += bool(c["tcp.analysis.duplicate_ack"])
        s.zerowin += bool(c["tcp.analysis.zero_window"])
        s.ooo += bool(c["tcp.analysis.out_of_order"])
        if c["tcp.analysis.initial_rtt"] and s.irtt is None:
            s.irtt = float(c["tcp.analysis.initial_rtt"][0])
        if c["tcp.analysis.reused_ports"] and c["tcp.flags.syn"] == ["1"] \
                and c["tcp.flags.ack"] == ["1"]:
            s.reused_synack = True
        _tls_row(s, c)
        _http_row(s, c, status_of)
    return TsharkView(streams, sorted(dns), tunnels, status_of)


def _tls_row(s: Stream, c: dict[str, list[str]]) -> None:
    types = c["tls.handshake.type"]
    s.tls.update(HANDSHAKE_TYPES.get(v, v) for v in types)
    for value in c["tls.record.content_type"] + c["tls.record.opaque_type"]:
        if value in RECORD_TYPES:
            s.tls.add(RECORD_TYPES[value])
    supported = c["tls.handshake.extensions.supported_version"]
    legacy = c["tls.handshake.version"]
    if "2" in types:  # the ServerHello's choice
        s.server_version = (supported or legacy or [None])[0]
    if "1" in types:  # the best version the client offered
        offered = [v for v in (supported or legacy[:1]) if v in TLS_VERSIONS]
        if offered:
            s.client_version = max(offered, key=lambda v: int(v, 16))


def _http_row(s: Stream, c: dict[str, list[str]], status_of: dict[str, int]) -> None:
    frame = c["frame.number"][0]
    methods, codes = c["http.request.method"], c["http.response.code"]
    for method in methods:
        s.http.append((method, frame))
    for i, code in enumerate(codes):
        request = c["http.request_in"][i] if i < len(c["http.request_in"]) else None
        if 100 <= int(code) < 200 and code != "101":
            continue  # an interim answer (netcheck keeps it with its request, not as a pair)
        if request:
            status_of.setdefault(request, int(code))
        else:
            s.http.append(("?", int(code)))
    info = (c["_ws.col.Info"] or [""])[0]
    if not methods and not codes:
        # A first line tshark shows but has not dissected: its message is not complete.
        for match in (STATUS_LINE.search(info), REQUEST_LINE.search(info)):
            if match:
                s.partial_lines.append(match.group(1))


# -- netcheck's view -------------------------------------------------------------------------

def netcheck_view(path: Path) -> tuple[dict[int, dict[str, Any]], dict[str, Any]]:
    """Sessions by their first frame number, and the whole netcheck-pcap/1 document."""
    capture = Capture(str(path))
    analyzer = Analyzer(max_sessions=100_000)
    with capture:
        analyzer.feed(capture.packets())
    firsts = [s.first_n for s in analyzer.sessions]
    doc = build_document(analyzer, path.name, capture.truncated, [], "en")
    return dict(zip(firsts, doc["sessions"])), doc


# -- the comparison --------------------------------------------------------------------------

@dataclass
class Tally:
    """Per metric: streams that agree, that differ by a documented quirk, that differ."""

    agree: Counter = field(default_factory=Counter)
    quirk: Counter = field(default_factory=Counter)
    differ: Counter = field(default_factory=Counter)
    quirks_used: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    tunnelled: int = 0
    http_pairs: Counter = field(default_factory=Counter)

    def add(self, metric: str, ok: bool, where: str, quirk: Optional[str] = None) -> None:
        """Count one comparison."""
        if ok:
            self.agree[metric] += 1
        elif quirk:
            self.quirk[metric] += 1
            self.quirks_used[quirk] += 1
        else:
            self.differ[metric] += 1
            self.problems.append(f"{metric}: {where}")

    def table(self) -> str:
        """The agreement table: exact, and with the documented quirks."""
        lines = [f"{'metric':16} {'streams':>7} {'agree':>6} {'quirk':>6} {'differ':>6} "
                 f"{'exact %':>8} {'w/ quirks %':>11}"]
        for metric in METRICS:
            total = self.agree[metric] + self.quirk[metric] + self.differ[metric]
            if not total:
                continue
            lines.append(f"{metric:16} {total:7} {self.agree[metric]:6} {self.quirk[metric]:6} "
                         f"{self.differ[metric]:6} {100 * self.agree[metric] / total:8.2f} "
                         f"{100 * (total - self.differ[metric]) / total:11.2f}")
        pairs = self.http_pairs
        if pairs["total"]:
            lines.append(f"(HTTP request/response pairs one by one: {pairs['agree']} of "
                         f"{pairs['total']} identical)")
        if self.tunnelled:
            lines.append(f"({self.tunnelled} tcp streams inside tunnels, not decoded by "
                         "netcheck and named in its summary, not compared)")
        for name, count in sorted(self.quirks_used.items()):
            lines.append(f"quirk {name}: {count} comparison(s)")
        return "\n".join(lines)


def compare(path: Path, tally: Tally, theirs: Optional[TsharkView] = None) -> None:
    """Compare one capture stream by stream; count into ``tally``."""
    theirs = theirs or tshark_view(path)
    ours, doc = netcheck_view(path)
    status_of = theirs.status_of
    by_first = {s.first: s for s in theirs.streams.values() if not s.tunnelled}
    tally.tunnelled += sum(s.tunnelled for s in theirs.streams.values())
    if theirs.tunnels:
        named = [d for d in doc.get("not_decoded", []) if d["kind"] == "tunnel"]
        if not named:
            tally.problems.append(f"{path.name}: tshark sees a tunnel, the summary names none")
    for first in sorted(set(by_first) | set(ours)):
        t, o = by_first.get(first), ours.get(first)
        where = f"{path.name} stream at frame {first}"
        tally.add("streams", t is not None and o is not None, where)
        if t is not None and o is not None:
            _compare_stream(o, t, status_of, f"{where} (#{o['id']})", tally)
    ours_dns = Counter((d["id"], RCODE_NUMBERS.get(d["rcode"], -1)) for d in doc["dns"]
                       if d["rcode"] is not None)
    theirs_dns = Counter(theirs.dns)
    for key in set(ours_dns) | set(theirs_dns):
        same = min(ours_dns[key], theirs_dns[key])
        for _ in range(same):
            tally.add("dns_rcodes", True, "")
        for _ in range(max(ours_dns[key], theirs_dns[key]) - same):
            tally.add("dns_rcodes", False, f"{path.name} DNS id {key[0]} rcode {key[1]}: "
                      f"netcheck {ours_dns[key]}, tshark {theirs_dns[key]}")


def _compare_stream(o: dict[str, Any], t: Stream, status_of: dict[str, int], where: str,
                    tally: Tally) -> None:
    new_isn = "synack_new_isn" if (o["handshake"].get("synack_new_isns")
                                   and t.reused_synack) else None

    def check(metric: str, mine: Any, tsharks: Any, quirk: Optional[str] = None) -> None:
        excused = quirk if quirk and metric in QUIRKS[quirk][1] else None
        tally.add(metric, mine == tsharks, f"{where}: netcheck {mine!r}, tshark {tsharks!r}",
                  excused)

    check("packets", o["packets"], t.packets)
    client, server = _split(o["client"]), _split(o["server"])
    check("bytes", (o["bytes"]["client"], o["bytes"]["server"]),
          (t.ends.get(client, 0), t.ends.get(server, 0)))
    check("retransmissions", o["retransmissions"], t.retrans, new_isn)
    check("dup_acks", o["dup_acks"], t.dupacks)
    check("zero_windows", o["zero_windows"], t.zerowin)
    check("out_of_order", o["out_of_order"], t.ooo, new_isn)
    rtt = o["handshake"]["rtt_ms"]
    same_rtt = (rtt is None and t.irtt is None) or (
        rtt is not None and t.irtt is not None and abs(rtt - t.irtt * 1000) < 0.0015)
    tally.add("irtt", same_rtt, f"{where}: netcheck {rtt} ms, tshark {t.irtt} s")
    tls = o.get("tls") or {}
    if t.tls or tls:
        check("tls_versions", tls.get("versions") or [], t.version(), new_isn)
        mine = {"ServerHello" if m == "HelloRetryRequest" else m
                for m in tls.get("messages") or []}
        # Encrypted records: Wireshark names them by their outer type (Application Data,
        # Alert); netcheck's "EncryptedHandshakeMessage"/"EncryptedAlert" say the same
        # thing, and tshark names a decrypted-looking Finished that netcheck cannot see.
        mine -= {"EncryptedHandshakeMessage", "EncryptedAlert", "Alert"}
        check("tls_messages", sorted(mine), sorted(t.tls - {"Alert", "Finished"}), new_isn)
    _compare_http(o, t, status_of, where, tally, new_isn)


def _compare_http(o: dict[str, Any], t: Stream, status_of: dict[str, int], where: str,
                  tally: Tally, new_isn: Optional[str]) -> None:
    theirs = t.pairs(status_of)
    listed = [((h.get("request") or "?").split(" ")[0], h.get("status")) for h in o["http"]]
    omitted = (o.get("http_omitted") or {}).get("requests", 0)
    if not theirs and not listed:
        return
    # Requests beyond the listing are counted, not listed: compare what is listed, and the
    # count of the rest.
    same = listed == theirs[:len(listed)] and len(theirs) == len(listed) + omitted
    quirk = new_isn
    if not same and not quirk and len(theirs) == len(listed) + omitted:
        # Only where tshark has no field, and its Info shows netcheck's very line.
        unexplained = [(a, b) for a, b in zip(listed, theirs) if a != b]
        partial = Counter(t.partial_lines)
        if all(_partial_explains(a, b, partial) for a, b in unexplained):
            quirk = "http_incomplete"
    if len(theirs) != len(listed) + omitted and not quirk and t.partial_lines:
        extra = Counter(str(s) for _, s in listed if s) + Counter(m for m, _ in listed)
        if len(listed) + omitted > len(theirs) and all(extra[p] for p in t.partial_lines):
            quirk = "http_incomplete"
    tally.add("http_pairs", same, f"{where}: netcheck {listed[:6]}+{omitted}, tshark "
              f"{theirs[:6]} ({len(theirs)})", quirk)
    # One by one: the listed pairs (those beyond the listing are counted, not compared).
    tally.http_pairs["total"] += max(len(listed), len(theirs) - omitted)
    tally.http_pairs["agree"] += sum(a == b for a, b in zip(listed, theirs))


def _partial_explains(mine: tuple[str, Optional[int]], theirs: tuple[str, Optional[int]],
                      partial: Counter) -> bool:
    """tshark's pair lacks what netcheck has, and tshark's Info shows that line."""
    method_ok = mine[0] == theirs[0] or (theirs[0] == "?" and partial[mine[0]] > 0)
    status_ok = mine[1] == theirs[1] or (theirs[1] is None and partial[str(mine[1])] > 0)
    if method_ok and theirs[0] == "?" and mine[0] != "?":
        partial[mine[0]] -= 1
    if status_ok and theirs[1] is None and mine[1] is not None:
        partial[str(mine[1])] -= 1
    return method_ok and status_ok


def _split(endpoint: str) -> tuple[str, str]:
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), port


def run_corpus(files: Optional[list[Path]] = None) -> Tally:
    """Compare every corpus capture (tshark runs in parallel: it is the slow part)."""
    tally = Tally()
    files = files or corpus_files()
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 2)) as pool:
        views = list(pool.map(tshark_view, files))
    for path, view in zip(files, views):
        compare(path, tally, view)
    return tally


# -- the tests -------------------------------------------------------------------------------

needs_tshark = pytest.mark.skipif(not TSHARK, reason="tshark is needed (Debian: tshark)")


def test_the_corpus_is_real_captures_from_others_each_with_its_source_and_licence() -> None:
    files = corpus_files()
    assert len(files) >= 25
    assert sum(p.stat().st_size for p in CORPUS.iterdir()) < 15 * 1024 * 1024
    sources = (CORPUS / "SOURCES.md").read_text(encoding="utf-8")
    for path in files:
        entry = [line for line in sources.splitlines() if f"`{path.name}`" in line]
        assert entry, f"{path.name} is not in SOURCES.md"
        assert "licence" in entry[0].lower() or "license" in entry[0].lower(), entry[0]
        assert "github.com/" in entry[0], entry[0]


@pytest.fixture(scope="module")
def tally() -> Tally:
    return run_corpus()


@needs_tshark
def test_every_stream_agrees_with_tshark_or_differs_by_a_documented_quirk(
        tally: Tally) -> None:
    print("\n" + tally.table())
    assert not tally.problems, "\n".join(tally.problems[:30])


@needs_tshark
def test_agreement_is_at_least_99_percent_on_every_metric(tally: Tally) -> None:
    for metric in METRICS:
        total = tally.agree[metric] + tally.quirk[metric] + tally.differ[metric]
        assert total, f"no stream compared on {metric}: the corpus lost its coverage"
        assert (total - tally.differ[metric]) / total >= 0.99, metric
    assert sum(tally.agree[m] + tally.quirk[m] for m in METRICS) > 1000


def test_no_capture_of_the_corpus_crashes_or_gives_an_internal_error() -> None:
    from netcheck.cli import run

    for path in corpus_files():
        for fmt in ("json", "text"):
            out, err = StringIO(), StringIO()
            code = run(["pcap", str(path), "--format", fmt], out, err)
            assert code == 0, (path.name, fmt, out.getvalue()[-300:], err.getvalue())
            assert "internal error" not in out.getvalue() + err.getvalue(), path.name
            if fmt == "json":
                doc = json.loads(out.getvalue())
                assert doc["schema"] == "netcheck-pcap/1", path.name
        first = json.loads(_cli(path, "--format", "json"))["sessions"][:1]
        if first:  # the packet-by-packet detail of the first session too
            assert json.loads(_cli(path, "--format", "json", "--session", "1"))["sessions"]


def test_no_sentence_states_a_cause_the_capture_contradicts() -> None:
    from netcheck.pcap.explain import session_story

    checked = Counter()
    for path in corpus_files():
        _, doc = netcheck_view(path)
        for s in doc["sessions"]:
            where = f"{path.name} #{s['id']}"
            cap, hs = s["capture"], s["handshake"]
            text = " ".join(session_story(s))
            answered = hs["synack_acked"] or cap["seen"] == "server" or not hs["syn_seen"]
            if cap["seen"] != "both" and answered:  # the other side did send: proof in ACKs
                checked["one-way"] += 1
                for claim in ("firewall", "Still open", "sent 0 bytes", "Three-way handshake",
                              "half-closed"):
                    assert claim not in text, (where, claim, text)
                if hs["synack_acked"]:
                    assert "Only the client's packets are in this capture" in text, where
            if "firewall" in text:  # an RST that came back, or silence the capture proves
                assert hs["answered_by_rst"] or (cap["return_traffic"] and hs["syn_retries"]), (
                    where, text)
            if hs["synack_new_isns"]:
                checked["new ISN"] += 1
                assert max(s["bytes"].values()) < 1 << 20, where  # no 2.59 GB from 10 packets
                assert not hs["complete"] and "new initial sequence number" in text, where
            if cap["duplicates"]:
                checked["copies"] += 1
                assert "captured again" in text, where
                for event in s.get("events", []):
                    if event["note"].startswith("[captured again"):
                        for claim in ("SYN sent again", "still waits", "retransmission"):
                            assert claim not in event["note"], (where, event)
            if cap["cut"]:
                checked["cut"] += 1
                assert "cut by the snap length" in text, where
        if any(d["kind"] == "tunnel" for d in doc.get("not_decoded", [])):
            checked["tunnel"] += 1
    # Every kind the issue names is in the corpus (so the checks above ran on each).
    assert set(checked) == {"one-way", "new ISN", "copies", "cut", "tunnel"}, checked


def _cli(path: Path, *args: str) -> str:
    from netcheck.cli import run

    out, err = StringIO(), StringIO()
    assert run(["pcap", str(path), *args], out, err) == 0, err.getvalue()
    return out.getvalue()


if __name__ == "__main__":  # python tests/unit/test_pcap_corpus.py [-v] [FILE...]
    verbose = "-v" in sys.argv
    chosen = [Path(a) for a in sys.argv[1:] if a != "-v"] or None
    result = run_corpus(chosen)
    print(result.table())
    if verbose:
        print("\n".join(result.problems))
