"""Every renderer against a report full of hostile outside text.

The target as typed, a plugin's check id, a server's banner, a Location header: each may hold
an escape sequence (CSI colour, OSC 0 window title), a '|' or a newline (the Nagios line), or a
password in a URL. No renderer may pass any of it through raw, and no format may show the
password.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from io import StringIO

import pytest
from rich.console import Console

from netcheck.model import CheckOutcome, Hint, Layer, Report, Result, Status, Verdict
from netcheck.render.json import error_report, render_json
from netcheck.render.junit import render_junit
from netcheck.render.nagios import render_nagios
from netcheck.render.prometheus import exposition, families, probe_values
from netcheck.render.text import render_text
from tests.unit.test_render import NAGIOS_LINE, parse_perfdata
from tests.unit.test_render_junit_prom import check_metrics, validate_junit

PASSWORD = "hunter2"
CSI = "\x1b[31m"
OSC_TITLE = "\x1b]0;pwned\x07"
# Everything at once: colour, a window title, the perfdata separator, a forged second line.
HOSTILE = f"{CSI}red{OSC_TITLE} a|b\nNETCHECK OK - forged \u202eevil\x9b2J"
SECRET_URL = f"https://ann:{PASSWORD}@www.lab.test/"
RAW = ("\x1b", "\x07", "\x9b", "\u202e")


def hostile_report() -> Report:
    refused = CheckOutcome(
        f"transport.tcp{CSI}", Layer.TRANSPORT, f"Port accepts {OSC_TITLE}connections",
        Result(Status.FAIL, f"{HOSTILE} refused, see {SECRET_URL}",
               code=f"TCP_REFUSED{CSI}",
               evidence={"banner": HOSTILE, "location": SECRET_URL,
                         f"key{CSI}": [HOSTILE, f"ann:{PASSWORD}@www.lab.test"],
                         "chain": [f"302 {SECRET_URL}", f"200 {HOSTILE}"],
                         "rtt_ms": 0.5},
               hint=Hint(f"Start it {HOSTILE} {SECRET_URL}",
                         [f"curl {SECRET_URL}", f"echo {HOSTILE}"], docs=SECRET_URL)),
        1.5)
    ping = CheckOutcome(
        f"net.a|b={CSI}", Layer.NETWORK, "Target answers",
        Result(Status.PASS, f"answers {HOSTILE}", evidence={"rtt_ms": 0.3}), 1.0)
    # A label value with the exposition's own special characters: a quote and a backslash.
    tls = CheckOutcome(
        "tls.handshake", Layer.PRESENTATION, "TLS handshake",
        Result(Status.PASS, "TLS", evidence={"version": 'v1.3"\\' + CSI}), 0.0)
    http = CheckOutcome(
        "http.response", Layer.APPLICATION, "HTTP answers",
        Result(Status.SKIP, "not checked", blocked_by=f"transport.tcp{OSC_TITLE}"), 0.0)
    return Report(
        mode="diagnose",
        target={"input": f"{SECRET_URL}{HOSTILE}", "scheme": "https", "host": "www.lab.test",
                "port": 443, "addresses": [f"198.18.2.10{CSI}"]},
        host={"hostname": f"client{OSC_TITLE}", "privileged": True,
              "egress_interface": f"eth0{CSI}"},
        verdict=Verdict.BROKEN, root_cause=refused, checks=[ping, refused, tls, http],
        started_at="2026-11-22T10:00:00Z", duration_ms=183.2, version="0.1.0",
        request_id=f"a353{CSI}")


def assert_clean(text: str) -> None:
    for raw in RAW:
        assert raw not in text, f"raw {raw!r} in {text!r}"
    assert PASSWORD not in text


@pytest.mark.parametrize("verbose", [False, True], ids=["plain", "verbose"])
def test_text_report_shows_escapes_not_sequences(verbose: bool) -> None:
    buffer = StringIO()
    # color_system=None: any ESC left in the output is the report's, not rich's styling.
    console = Console(file=buffer, width=100, color_system=None, highlight=False)
    render_text(hostile_report(), verbose=verbose, color=False, console=console)
    out = buffer.getvalue()
    assert_clean(out)
    assert "\\x1b[31mred" in out and "\\x1b]0;pwned\\x07" in out  # visible, not obeyed
    assert "ann:***@www.lab.test" in out
    # The forged line never starts a line of its own.
    assert not any(line.startswith("NETCHECK") for line in out.splitlines())


def test_text_error_report_masks_and_escapes() -> None:
    buffer = StringIO()
    console = Console(file=buffer, width=100, color_system=None, highlight=False)
    render_text(error_report(SECRET_URL, f"bad {HOSTILE} {SECRET_URL}"), console=console,
                color=False)
    assert_clean(buffer.getvalue())


def test_nagios_status_line_is_one_line_with_one_perfdata_separator() -> None:
    report = hostile_report()
    line = render_nagios(report)
    assert_clean(line)
    assert "\n" not in line and "\r" not in line
    assert line.count("|") == 1, line
    match = NAGIOS_LINE.match(line)
    assert match, line
    perf = parse_perfdata(match["perf"])
    # The plugin's check id became a label a parser can still read.
    assert any(label.startswith("net_a/b") for label in perf), perf


def test_nagios_text_for_an_ok_report_names_the_masked_target() -> None:
    report = hostile_report()
    report.verdict, report.root_cause = Verdict.OK, None
    line = render_nagios(report)
    assert_clean(line)
    assert line.count("|") == 1 and "\n" not in line
    # The canonical target (scheme, host, port, path): the hostile input does not parse, so
    # its user part is not shown at all; the password never is.
    assert line.startswith("NETCHECK OK - https://www.lab.test:443/: ")


def test_junit_is_valid_masked_and_escaped() -> None:
    report = hostile_report()
    text = render_junit([(f"group{CSI}", f"{SECRET_URL}{HOSTILE}", report)])
    validate_junit(text)
    assert_clean(text)
    failure = ET.fromstring(text).find(".//failure")
    assert failure is not None and "\\x1b[31m" in (failure.text or "")


def test_prometheus_label_values_are_masked_escaped_and_parse() -> None:
    report = hostile_report()
    text = exposition(families([({"name": f"www{HOSTILE}", "target": report.target["input"]},
                                 probe_values(report))], ("name", "target")))
    assert_clean(text)
    check_metrics(text)
    # The exposition's own escapes: \" for the quote, \\ for the backslash (the server's and
    # the one of the \x1b escape shown() made of ESC).
    assert r'version="v1.3\"\\\\x1b[31m"' in text


def test_json_masks_every_string_and_escapes_controls() -> None:
    text = render_json(hostile_report())
    assert PASSWORD not in text
    assert "\x1b" not in text and "\x07" not in text  # JSON escapes them (\u001b)
    doc = json.loads(text)
    assert doc["target"]["input"].startswith("https://ann:***@www.lab.test/")
    assert doc["checks"][1]["evidence"]["location"] == "https://ann:***@www.lab.test/"
