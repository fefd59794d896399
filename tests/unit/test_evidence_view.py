"""-v evidence as the slides' commands print it (ip route get, ip neigh, ping, dig, openssl
x509, nping); the JSON evidence stays as it was."""

from __future__ import annotations

import json

from netcheck.model import CheckOutcome, Layer, Report, Result, Status, Verdict
from netcheck.render.evidence import evidence_view, openssl_date
from netcheck.render.text import text_of

ROUTE = {"interface": "eth0", "gateway": "198.18.1.1", "basis": "target", "lookups": [
    {"destination": "198.18.2.10", "type": "unicast", "oif": 2, "ifname": "eth0",
     "gateway": "198.18.1.1", "prefsrc": "198.18.1.2", "table": 254},
    {"destination": "2001:db8:2::10", "type": "none", "error": "Network is unreachable"},
    {"destination": "198.18.9.9", "type": "blackhole", "table": 100}]}
GATEWAY = {"gateway": "198.18.1.1", "interface": "eth0",
           "neighbour": {"address": "198.18.1.1", "ifindex": 2, "state": "reachable",
                         "lladdr": "02:00:00:00:00:01"},
           "ping": {"address": "198.18.1.1", "state": "reply", "method": "dgram",
                    "rtt_ms": 0.512, "size": 56}}
NXDOMAIN = {"servers": {"198.18.3.53": "ok"}, "answers": [
    {"server": "198.18.3.53", "qname": "missing.lab.test", "type": "A", "rcode": "NXDOMAIN",
     "answers": [], "rtt_ms": 3.2},
    {"server": "198.18.3.99", "qname": "missing.lab.test", "type": "A", "error": "timeout"}]}
CERT = {"address": "198.18.2.21", "port": 443, "subject": "CN=www.lab.test",
        "issuer": "CN=netcheck lab CA", "san": ["www.lab.test", "198.18.2.21"],
        "not_before": "2026-10-28T16:50:54Z", "not_after": "2026-11-27T16:50:54Z",
        "days_left": -11}
BURST = {"bursts": {"198.18.2.10": {"address": "198.18.2.10", "state": "done", "sent": 30,
                                    "received": 18, "loss_pct": 40.0, "rtt_min_ms": 0.2,
                                    "rtt_avg_ms": 0.5, "rtt_max_ms": 1.9, "rtt_mdev_ms": 0.4}},
         "tcp": [{"address": "198.18.2.10", "port": 22, "state": "open", "rtt_ms": 0.9,
                  "after": "spoke"},
                 {"address": "2001:db8:2::10", "port": 22, "state": "refused", "rtt_ms": 0.4}]}


def _lines(evidence: dict) -> dict[str, list[str]]:
    return {key: lines for key, lines in evidence_view(evidence) if lines is not None}


def test_route_lookups_read_as_ip_route_get() -> None:
    lines = _lines({"path": ROUTE})["path"]
    assert lines == ["$ ip route get 198.18.2.10",
                     "198.18.2.10 via 198.18.1.1 dev eth0 src 198.18.1.2",
                     "$ ip route get 2001:db8:2::10",
                     "RTNETLINK answers: Network is unreachable   (2001:db8:2::10)",
                     "$ ip route get 198.18.9.9", "blackhole 198.18.9.9 table 100"]


def test_neighbour_and_ping_read_as_ip_neigh_and_ping() -> None:
    lines = _lines(GATEWAY)
    assert lines["neighbour"] == ["198.18.1.1 dev eth0 lladdr 02:00:00:00:00:01 REACHABLE"]
    assert lines["ping"] == ["64 bytes from 198.18.1.1: icmp_seq=1 time=0.512 ms"]


def test_dns_answers_read_as_dig() -> None:
    lines = _lines(NXDOMAIN)["answers"]
    assert lines[:2] == ["$ dig @198.18.3.53 missing.lab.test A",
                         ";; ->>HEADER<<- opcode: QUERY, status: NXDOMAIN, ANSWER: 0"]
    assert ";; connection timed out; no servers could be reached" in lines


def test_certificate_reads_as_openssl_x509() -> None:
    view = evidence_view(CERT)
    keys = [k for k, _lines in view]
    assert keys == ["address", "port", "certificate", "days_left"]  # one block, in place
    block = dict(view)["certificate"]
    assert block[:4] == ["notBefore=Oct 28 16:50:54 2026 GMT",
                         "notAfter=Nov 27 16:50:54 2026 GMT",
                         "subject=CN=www.lab.test", "issuer=CN=netcheck lab CA"]
    assert block[-1].strip() == "DNS:www.lab.test, IP Address:198.18.2.21"
    assert openssl_date("2026-01-05T03:04:05Z") == "Jan  5 03:04:05 2026 GMT"


def test_bursts_and_connects_read_as_ping_statistics_and_nping() -> None:
    lines = _lines(BURST)
    assert lines["bursts"] == ["--- 198.18.2.10 ping statistics ---",
                               "30 packets transmitted, 18 received, 40% packet loss",
                               "rtt min/avg/max/mdev = 0.2/0.5/1.9/0.4 ms"]
    assert lines["tcp"] == [
        "Handshake with 198.18.2.10:22 completed (0.9 ms), the server spoke first",
        "RST from [2001:db8:2::10]:22: connection refused (0.4 ms)"]


def test_unknown_shapes_stay_json_and_the_json_document_is_untouched() -> None:
    evidence = {"route": ROUTE, **GATEWAY, "manager": {"name": "none"}, "path": "not a path"}
    assert dict(evidence_view(evidence))["manager"] is None
    assert dict(evidence_view(evidence))["path"] is None  # not the shape: JSON as before
    result = Result(Status.FAIL, "gateway silent", code="GATEWAY_UNREACHABLE",
                    evidence={**GATEWAY, "path": ROUTE})
    check = CheckOutcome("network.gateway", Layer.NETWORK, "Gateway answers on the link",
                         result)
    report = Report("diagnose", {"input": "198.18.2.10"}, {}, Verdict.BROKEN, check, [check],
                    "2026-01-01T00:00:00Z", 1.0, "0")
    before = json.dumps(report.to_json(), sort_keys=True)
    text = text_of(report, verbose=True)
    assert "198.18.1.1 dev eth0 lladdr 02:00:00:00:00:01 REACHABLE" in text
    assert "198.18.2.10 via 198.18.1.1 dev eth0 src 198.18.1.2" in text
    assert '"lookups"' not in text  # no JSON dump where the command's output reads better
    assert json.dumps(report.to_json(), sort_keys=True) == before
    assert report.to_json()["checks"][0]["evidence"]["path"] == ROUTE
