"""Renderers: the ladder, the JSON document, the Nagios line, and the schema that guards JSON."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from io import StringIO
from typing import Any, Optional

import pytest
from rich.console import Console

from netcheck.model import (
    CheckOutcome,
    Hint,
    Layer,
    Report,
    Result,
    Status,
    Verdict,
    failed,
    passed,
    skipped,
    warned,
)
from netcheck.render.json import error_document, render_json
from netcheck.render.nagios import perf_label, render_nagios
from netcheck.render.text import render_text, text_of
from tests.schema import validate_report

GATEWAY_HINT = Hint(
    "The gateway 198.18.1.1 does not answer ARP on eth0: check the cable and the router.",
    commands=["ip neigh show dev eth0", "ping -c 3 198.18.1.1"],
    docs="https://example.invalid/gateway",
)


def outcome(check_id: str, layer: Layer, title: str, result: Result,
            duration_ms: float = 1.0) -> CheckOutcome:
    return CheckOutcome(check_id, layer, title, result, duration_ms)


def report(checks: list[CheckOutcome], verdict: Verdict,
           root: Optional[CheckOutcome] = None, error: Optional[str] = None) -> Report:
    return Report(
        mode="diagnose",
        target={"input": "https://www.lab.test/", "scheme": "https", "host": "www.lab.test",
                "port": 443, "addresses": ["198.18.2.10"]},
        host={"hostname": "client1", "privileged": True, "egress_interface": "eth0"},
        verdict=verdict,
        root_cause=root,
        checks=checks,
        started_at="2026-11-22T10:00:00Z",
        duration_ms=183.24,
        version="0.1.0",
        error=error,
    )


def base_checks() -> list[CheckOutcome]:
    return [
        outcome("phys.nic", Layer.PHYSICAL, "Network device present",
                passed("eth0 (virtio_net)", devices=["eth0"])),
        outcome("link.carrier", Layer.LINK, "Interface has carrier",
                passed("eth0 is UP with carrier", interface="eth0", operstate="UP",
                       flags=["UP", "LOWER_UP"])),
        outcome("net.address", Layer.NETWORK, "Interface has an address",
                passed("198.18.1.2/24 on eth0", addresses=["198.18.1.2/24"])),
    ]


@pytest.fixture
def ok_report() -> Report:
    checks = base_checks() + [
        outcome("tcp.connect", Layer.TRANSPORT, "TCP connects",
                passed("198.18.2.10:443 accepts", rtt_ms=0.35)),
        outcome("tls.handshake", Layer.PRESENTATION, "TLS handshake",
                passed("TLSv1.3 with a trusted certificate")),
        outcome("http.status", Layer.APPLICATION, "HTTP answers", passed("200 OK")),
    ]
    return report(checks, Verdict.OK)


@pytest.fixture
def degraded_report() -> Report:
    no_icmp = outcome(
        "net.target_ping", Layer.NETWORK, "Target answers ping",
        warned("TARGET_NO_ICMP", "198.18.2.10 drops ping but answers TCP",
               Hint("Nothing to fix here: the target filters ICMP echo.",
                    ["nc -vz 198.18.2.10 443"]),
               sent=3, received=0))
    checks = base_checks() + [
        no_icmp,
        outcome("tcp.connect", Layer.TRANSPORT, "TCP connects",
                passed("198.18.2.10:443 accepts", rtt_ms=1.25)),
    ]
    return report(checks, Verdict.DEGRADED, root=no_icmp)


@pytest.fixture
def broken_report() -> Report:
    gateway = outcome(
        "net.gateway", Layer.NETWORK, "Gateway answers",
        failed("GATEWAY_UNREACHABLE", "gateway 198.18.1.1 does not resolve on eth0",
               GATEWAY_HINT, gateway="198.18.1.1", neighbour_state="FAILED"))
    blocked = Result(Status.SKIP, "not checked: net.gateway failed", blocked_by="net.gateway")
    checks = base_checks() + [
        gateway,
        outcome("net.mtu", Layer.NETWORK, "Path MTU", skipped("needs root (CAP_NET_RAW)")),
        outcome("tcp.connect", Layer.TRANSPORT, "TCP connects", blocked),
        outcome("tls.handshake", Layer.PRESENTATION, "TLS handshake",
                Result(Status.ERROR, "ssl module raised ValueError")),
    ]
    return report(checks, Verdict.BROKEN, root=gateway)


@pytest.fixture
def error_report() -> Report:
    return report([], Verdict.UNKNOWN, error="bad target 'exa mple': spaces are not allowed")


def rendered(rep: Report, verbose: bool = False) -> str:
    console = Console(file=StringIO(), width=100, color_system=None)
    render_text(rep, verbose=verbose, console=console)
    return console.file.getvalue()


# --- text -----------------------------------------------------------------------------------


def test_ladder_shows_all_seven_rungs_bottom_up(ok_report: Report) -> None:
    out = rendered(ok_report)
    headings = ["L1 Physical", "L2 Link", "L3 Network", "L4 Transport", "L5 Session",
                "L6 Presentation", "L7 Application"]
    positions = [out.index(h) for h in headings]
    assert positions == sorted(positions)


def test_header_names_target_addresses_interface_host_and_privilege(ok_report: Report) -> None:
    header = rendered(ok_report).splitlines()[0]
    for part in ("netcheck 0.1.0", "https://www.lab.test:443/", "198.18.2.10", "eth0", "client1",
                 "privileged: yes"):
        assert part in header


def test_rung_without_checks_says_not_checked(ok_report: Report) -> None:
    out = rendered(ok_report)
    assert re.search(r"L5 Session\s+not checked", out)
    assert not re.search(r"L3 Network\s+not checked", out)


def test_ok_run_shows_pass_symbols_and_all_checks_passed(ok_report: Report) -> None:
    out = rendered(ok_report)
    assert "✔ Interface has carrier — eth0 is UP with carrier" in out
    assert "Diagnosis" in out
    assert "OK: all checks passed" in out
    assert "root cause" not in out


def test_warning_shows_bang_code_and_hint_box(degraded_report: Report) -> None:
    out = rendered(degraded_report)
    assert "! Target answers ping" in out
    assert "[TARGET_NO_ICMP]" in out
    assert "$ nc -vz 198.18.2.10 443" in out
    assert "DEGRADED" in out
    assert re.search(r"L3 Network\s+◀ root cause", out)


def test_broken_run_marks_root_cause_rung_and_prints_hint_commands(
        broken_report: Report) -> None:
    out = rendered(broken_report)
    assert "✖ Gateway answers — gateway 198.18.1.1 does not resolve on eth0" in out
    assert re.search(r"L3 Network\s+◀ root cause", out)
    assert not re.search(r"L2 Link\s+◀ root cause", out)
    # Once in the hint box under the check, once more in the diagnosis.
    assert out.count("$ ip neigh show dev eth0") == 2
    assert out.count("$ ping -c 3 198.18.1.1") == 2
    diagnosis = out[out.index("Diagnosis"):]
    assert "BROKEN" in diagnosis
    assert "GATEWAY_UNREACHABLE at L3 Network (net.gateway)" in diagnosis
    assert "docs: https://example.invalid/gateway" in diagnosis


def test_skipped_checks_say_why_or_what_blocked_them(broken_report: Report) -> None:
    out = rendered(broken_report)
    assert "– TCP connects — blocked by net.gateway" in out
    assert "– Path MTU — needs root (CAP_NET_RAW)" in out


def test_error_check_shows_question_mark(broken_report: Report) -> None:
    assert "? TLS handshake — ssl module raised ValueError" in rendered(broken_report)


def test_verbose_prints_evidence_as_key_value_lines(broken_report: Report) -> None:
    quiet = rendered(broken_report)
    loud = rendered(broken_report, verbose=True)
    assert "neighbour_state: FAILED" not in quiet
    assert "    neighbour_state: FAILED" in loud
    assert '    flags: ["UP", "LOWER_UP"]' in loud
    assert "    devices: [\"eth0\"]" in loud


def test_summary_with_brackets_is_not_taken_for_markup() -> None:
    weird = outcome("app.banner", Layer.APPLICATION, "Banner",
                    passed("server says [bold]hello[/bold] [/]"))
    out = rendered(report([weird], Verdict.OK))
    assert "[bold]hello[/bold] [/]" in out


def test_error_report_prints_only_the_error(error_report: Report) -> None:
    out = rendered(error_report)
    assert "bad target 'exa mple': spaces are not allowed" in out
    assert "UNKNOWN" in out
    assert "L1 Physical" not in out


def test_text_of_is_plain_text(broken_report: Report) -> None:
    out = text_of(broken_report, verbose=True, width=80)
    assert "\x1b[" not in out
    assert "GATEWAY_UNREACHABLE" in out
    assert max(len(line) for line in out.splitlines()) <= 80


def test_no_trailing_blanks_outside_boxes(broken_report: Report) -> None:
    out = text_of(broken_report, verbose=True)
    assert [line for line in out.splitlines()
            if line != line.rstrip() and not line.lstrip().startswith("│")] == []


def test_importing_renderers_does_not_import_rich() -> None:
    # rich.console alone costs ~30 ms of CLI start-up: only rendering may pull it in.
    code = ("import sys, netcheck.render.text, netcheck.render.json, netcheck.render.nagios; "
            "print(sorted(m for m in sys.modules if m == 'rich' or m.startswith('rich.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_color_false_emits_no_colour_codes(broken_report: Report) -> None:
    def render(color: bool) -> str:
        console = Console(file=StringIO(), width=100, force_terminal=True,
                          color_system="truecolor")
        render_text(broken_report, color=color, console=console)
        return console.file.getvalue()

    assert re.search(r"\x1b\[[0-9;]*3[1-7]m|\x1b\[[0-9;]*38;", render(True))
    assert not re.search(r"\x1b\[[0-9;]*(3[0-9]|9[0-7]|38;[0-9;]*)m", render(False))


def test_ascii_console_gets_ascii_symbols(broken_report: Report) -> None:
    class AsciiTerminal(StringIO):
        encoding = "ascii"  # what a C-locale terminal reports

    buffer = AsciiTerminal()
    console = Console(file=buffer, width=100, color_system=None)
    render_text(broken_report, console=console)
    out = buffer.getvalue()
    assert "x Gateway answers - gateway" in out
    assert "<- root cause" in out
    out.encode("ascii")


# --- JSON -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ok_report", "degraded_report", "broken_report",
                                  "error_report"])
def test_json_is_one_valid_document(name: str, request: pytest.FixtureRequest) -> None:
    rep: Report = request.getfixturevalue(name)
    text = render_json(rep)
    doc = json.loads(text)
    validate_report(doc)
    assert doc == json.loads(json.dumps(rep.to_json()))
    assert doc["schema"] == "netcheck/1"


def test_json_keeps_non_ascii_text_readable() -> None:
    check = outcome("app.banner", Layer.APPLICATION, "Banner", passed("servidor: ñandú ✔"))
    assert "ñandú ✔" in render_json(report([check], Verdict.OK))


def test_error_document_is_valid_and_unknown() -> None:
    doc = error_document("exa mple", "bad target: spaces are not allowed")
    validate_report(doc)
    assert doc["verdict"] == "unknown"
    assert doc["error"] == "bad target: spaces are not allowed"
    assert doc["checks"] == [] and doc["root_cause"] is None
    assert doc["target"] == {"input": "exa mple", "scheme": None, "host": None, "port": None,
                             "addresses": []}
    assert isinstance(doc["host"]["privileged"], bool)
    assert doc["host"]["egress_interface"] is None


def test_error_document_for_server_mode() -> None:
    doc = error_document("--port 0", "port must be 1..65535", mode="server")
    validate_report(doc)
    assert doc["mode"] == "server"


# --- the schema itself must be able to fail --------------------------------------------------


def broken_doc(broken_report: Report) -> dict[str, Any]:
    return copy.deepcopy(broken_report.to_json())


def test_schema_rejects_failed_check_without_code(broken_report: Report) -> None:
    doc = broken_doc(broken_report)
    failing = next(c for c in doc["checks"] if c["status"] == "fail")
    failing["code"] = None
    with pytest.raises(AssertionError, match="code"):
        validate_report(doc)


def test_schema_rejects_warning_without_code(degraded_report: Report) -> None:
    doc = copy.deepcopy(degraded_report.to_json())
    next(c for c in doc["checks"] if c["status"] == "warn")["code"] = None
    with pytest.raises(AssertionError):
        validate_report(doc)


@pytest.mark.parametrize("mutate", [
    lambda d: d.update(schema="netcheck/2"),
    lambda d: d.update(verdict="fine"),
    lambda d: d.update(surprise=1),
    lambda d: d["checks"][0].update(id="NoDots"),
    lambda d: d["checks"][0].update(layer=8),
    lambda d: d["checks"][0].update(status="passed"),
    lambda d: d["checks"][0].update(extra=True),
    lambda d: d["checks"][3].update(code="gateway-unreachable"),
    lambda d: d["checks"][0].update(duration_ms=-1),
    lambda d: d["root_cause"].update(layer=0),
    lambda d: d["root_cause"]["hint"].update(commands="ip link"),
    lambda d: d["target"].update(port=70000),
    lambda d: d.update(started_at="yesterday"),
    lambda d: d.pop("checks"),
    lambda d: d.update(verdict="ok"),  # ok with a root cause
    lambda d: d.update(error="boom"),  # an error document is always unknown
], ids=["schema", "verdict", "extra-top", "id", "layer", "status", "extra-check", "code",
        "duration", "root-layer", "hint-commands", "port", "started_at", "no-checks",
        "ok-with-root", "error-not-unknown"])
def test_schema_rejects_contract_violations(broken_report: Report, mutate: Any) -> None:
    doc = broken_doc(broken_report)
    validate_report(doc)  # the unmutated document is fine
    mutate(doc)
    with pytest.raises(AssertionError):
        validate_report(doc)


# --- Nagios ---------------------------------------------------------------------------------

NAGIOS_LINE = re.compile(
    r"^NETCHECK (OK|WARNING|CRITICAL|UNKNOWN) - (?P<text>[^|\n]+) \| (?P<perf>[^\n]+)$")
# label=value[UOM];[warn];[crit];[min];[max], as the monitoring-plugins guidelines define it.
PERF_ITEM = re.compile(
    r"(?P<label>'(?:[^']|'')+'|[^'= ]+)="
    r"(?P<value>-?[0-9]+(?:\.[0-9]+)?)(?P<uom>s|ms|us|%|B|KB|MB|TB|c)?"
    r";(?P<warn>[^; ]*);(?P<crit>[^; ]*);(?P<min>[^; ]*);?(?P<max>[^; ]*)")


def parse_perfdata(perf: str) -> dict[str, tuple[float, str, str]]:
    items: dict[str, tuple[float, str, str]] = {}
    pos = 0
    while pos < len(perf):
        m = PERF_ITEM.match(perf, pos)
        assert m, f"bad perfdata at {perf[pos:]!r}"
        label = m["label"]
        if label.startswith("'"):
            label = label[1:-1].replace("''", "'")
        items[label] = (float(m["value"]), m["uom"] or "", m["min"])
        pos = m.end()
        if pos < len(perf):
            assert perf[pos] == " ", f"perfdata items must be separated by one space: {perf!r}"
            pos += 1
    return items


def test_nagios_ok_line(ok_report: Report) -> None:
    line = render_nagios(ok_report)
    m = NAGIOS_LINE.match(line)
    assert m, line
    assert line.startswith("NETCHECK OK - ")
    perf = parse_perfdata(m["perf"])
    assert perf["time"] == (0.183, "s", "0")
    assert perf["checks"] == (6, "", "0")
    assert perf["failed"][0] == 0 and perf["warned"][0] == 0 and perf["skipped"][0] == 0
    assert perf["tcp_connect_rtt"] == (0.35, "ms", "0")


def test_nagios_warning_names_code(degraded_report: Report) -> None:
    line = render_nagios(degraded_report)
    m = NAGIOS_LINE.match(line)
    assert m, line
    assert line.startswith(
        "NETCHECK WARNING - TARGET_NO_ICMP: 198.18.2.10 drops ping but answers TCP | ")
    perf = parse_perfdata(m["perf"])
    assert perf["warned"][0] == 1
    assert perf["tcp_connect_rtt"] == (1.25, "ms", "0")


def test_nagios_critical_counts_failed_and_skipped(broken_report: Report) -> None:
    line = render_nagios(broken_report)
    m = NAGIOS_LINE.match(line)
    assert m, line
    assert m["text"] == "GATEWAY_UNREACHABLE: gateway 198.18.1.1 does not resolve on eth0"
    assert line.startswith("NETCHECK CRITICAL - ")
    perf = parse_perfdata(m["perf"])
    assert (perf["checks"][0], perf["failed"][0], perf["skipped"][0]) == (7, 1, 2)
    assert not any(label.endswith("_rtt") for label in perf)


def test_nagios_unknown_for_error(error_report: Report) -> None:
    line = render_nagios(error_report)
    assert NAGIOS_LINE.match(line), line
    assert line.startswith("NETCHECK UNKNOWN - bad target 'exa mple': spaces are not allowed | ")


def test_nagios_text_never_contains_pipe_or_newline() -> None:
    bad = outcome("app.banner", Layer.APPLICATION, "Banner",
                  failed("APP_PROTOCOL_MISMATCH", "got 'a | b'\nand more"))
    line = render_nagios(report([bad], Verdict.BROKEN, root=bad))
    assert "\n" not in line
    assert line.count("|") == 1
    assert NAGIOS_LINE.match(line)


def test_nagios_ignores_non_numeric_rtt() -> None:
    checks = [outcome("net.ping", Layer.NETWORK, "Ping", passed("ok", rtt_ms="fast")),
              outcome("net.arp", Layer.NETWORK, "ARP", passed("ok", rtt_ms=True)),
              outcome("net.gw", Layer.NETWORK, "Gateway", passed("ok", rtt_ms=0.0000123))]
    perf = parse_perfdata(NAGIOS_LINE.match(render_nagios(report(checks, Verdict.OK)))["perf"])
    assert "net_ping_rtt" not in perf and "net_arp_rtt" not in perf
    assert perf["net_gw_rtt"] == (0.0, "ms", "0")


@pytest.mark.parametrize("label, quoted", [
    ("time", "time"),
    ("round trip", "'round trip'"),
    ("a=b", "'a=b'"),
    ("it's", "'it''s'"),
])
def test_perf_labels_are_quoted_when_needed(label: str, quoted: str) -> None:
    assert perf_label(label) == quoted
