"""JUnit XML and Prometheus exposition, read by the tools that consume them.

The JUnit document is validated against the JUnit schema CI systems use
(tests/fixtures/junit/junit-10.xsd), the exposition by ``promtool check metrics`` (Debian's
prometheus package), and the batch's Nagios line is parsed the way monitoring-plugins do.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from io import StringIO
from pathlib import Path
from typing import Optional

import pytest

from netcheck.batch.outputs import NagiosOutput, PrometheusOutput
from netcheck.batch.profile import Entry, Profile
from netcheck.batch.run import Done, Summary
from netcheck.model import CheckOutcome, Hint, Layer, Report, Result, Status, Verdict
from netcheck.render.json import error_report
from netcheck.render.junit import render_junit
from netcheck.render.prometheus import exposition, families, probe_values, render_prometheus

ROOT = Path(__file__).resolve().parents[2]
XSD = ROOT / "tests" / "fixtures" / "junit" / "junit-10.xsd"


def _required() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes") or \
        os.environ.get("NETCHECK_REQUIRE_LAB") == "1"


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if _required():
            pytest.fail("promtool missing: apt-get install prometheus (Makefile LAB_DEBS)")
        pytest.skip("promtool not installed (Debian package prometheus)")
    return found


def check_metrics(text: str) -> None:
    """promtool's verdict on an exposition: it must parse and lint clean."""
    proc = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, f"promtool check metrics:\n{proc.stdout}{proc.stderr}\n{text}"


def outcome(check_id: str, layer: Layer, result: Result) -> CheckOutcome:
    return CheckOutcome(check_id, layer, check_id.replace(".", " "), result, 1.5)


def report(verdict: Verdict, checks: list[CheckOutcome], root: Optional[CheckOutcome] = None,
           target: str = "https://www.lab.test/") -> Report:
    from netcheck.target import parse_target

    parsed = parse_target(target)  # the target object agrees with its input, as in a real run
    return Report(
        mode="diagnose",
        target={"input": target, "scheme": parsed.scheme, "host": parsed.host,
                "port": parsed.port, "addresses": ["198.18.2.10"]},
        host={"hostname": "client", "privileged": True, "egress_interface": "eth0"},
        verdict=verdict, root_cause=root, checks=checks, started_at="2026-11-22T10:00:00Z",
        duration_ms=183.2, version="0.1.0")


REFUSED = outcome("transport.tcp", Layer.TRANSPORT, Result(
    Status.FAIL, "198.18.2.10 port 443 refused (RST: nothing listens)", code="TCP_REFUSED",
    evidence={"connects": [{"address": "198.18.2.10", "port": 443, "state": "refused"}]},
    hint=Hint("Start the service <nginx> & check \"ports\"", ["ss -tlnp 'sport = :443'"])))
TARGET_OK = outcome("network.target", Layer.NETWORK, Result(
    Status.PASS, "198.18.2.10 answers ping in 0.3 ms", evidence={"rtt_ms": 0.3}))
DNS_OK = outcome("dns.resolution", Layer.NETWORK, Result(
    Status.PASS, "www.lab.test -> 198.18.2.10", evidence={"resolution": {"duration_ms": 4.0}}))
TCP_OPEN = outcome("transport.tcp", Layer.TRANSPORT, Result(
    Status.PASS, "open", evidence={"rtt_ms": 0.5, "connects": [
        {"address": "2001:db8:2::10", "port": 443, "state": "open", "rtt_ms": 0.5}]}))
TLS = outcome("tls.handshake", Layer.PRESENTATION, Result(
    Status.PASS, "TLSv1.3", evidence={"version": "TLSv1.3"}))
CERT = outcome("tls.certificate", Layer.PRESENTATION, Result(
    Status.WARN, "expires soon", code="TLS_CERT_EXPIRING", evidence={
        "not_after": "2026-12-01T00:00:00Z",
        "chain": [{"not_after": "2026-12-01T00:00:00Z"}, {"not_after": "2026-11-30T12:00:00Z"}]}))
HTTP = outcome("http.response", Layer.APPLICATION, Result(
    Status.PASS, "200 OK", evidence={"status": 200}))
BLOCKED = outcome("tls.handshake", Layer.PRESENTATION, Result(
    Status.SKIP, "not checked: transport.tcp failed", blocked_by="transport.tcp"))

BROKEN = report(Verdict.BROKEN, [DNS_OK, TARGET_OK, REFUSED, BLOCKED], REFUSED)
DEGRADED = report(Verdict.DEGRADED, [DNS_OK, TARGET_OK, TCP_OPEN, TLS, CERT, HTTP], CERT)
OK = report(Verdict.OK, [TARGET_OK, TCP_OPEN], target="tcp://198.18.2.10:22")


def validate_junit(text: str) -> None:
    import xmlschema

    xmlschema.XMLSchema(str(XSD)).validate(text)


# -- JUnit ---------------------------------------------------------------------------------

def test_junit_document_validates_against_the_ci_schema() -> None:
    unknown = error_report("exa mple", "profile.toml:7: target contains white space")
    text = render_junit([("campus", "www", BROKEN), ("campus", "intranet", DEGRADED),
                         ("servers", "ssh", OK), ("servers", "bad line", unknown)])
    validate_junit(text)
    root = ET.fromstring(text)
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("4", "1", "1")
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["campus", "servers"]


def test_a_broken_target_fails_with_its_root_cause_and_hint() -> None:
    case = ET.fromstring(render_junit([("campus", "www", BROKEN)])).find(".//testcase")
    assert case is not None and case.get("classname") == "netcheck.campus"
    failure = case.find("failure")
    assert failure is not None
    assert failure.get("type") == "TCP_REFUSED"
    assert "refused" in (failure.get("message") or "")
    body = failure.text or ""
    assert "Start the service <nginx>" in body and "$ ss -tlnp 'sport = :443'" in body


def test_degraded_passes_with_the_warning_in_system_out_and_unknown_is_an_error() -> None:
    unknown = error_report("x", "no result within the deadline (2 s)")
    root = ET.fromstring(render_junit([("", "a", DEGRADED), ("", "b", unknown)]))
    a, b = root.findall(".//testcase")
    assert a.find("failure") is None and "TLS_CERT_EXPIRING" in (a.findtext("system-out") or "")
    assert b.find("error") is not None and "deadline" in (b.find("error").get("message") or "")


def test_text_xml_cannot_carry_is_replaced_not_written() -> None:
    nasty = outcome("app.banner", Layer.APPLICATION, Result(
        Status.FAIL, "banner \x00\x1b[31m\x07 ]]> <evil/> & 'q'", code="APP_PROTOCOL_MISMATCH"))
    text = render_junit([("g", "n\x01ame", report(Verdict.BROKEN, [nasty], nasty))])
    validate_junit(text)
    assert "\x00" not in text and "\x1b" not in text
    assert "<evil/>" in ET.fromstring(text).find(".//failure").text  # type: ignore[union-attr]


# -- Prometheus ------------------------------------------------------------------------------

def test_probe_values_follow_blackbox_meanings() -> None:
    v = probe_values(DEGRADED)
    assert v.success is True  # degraded still works
    assert v.dns_lookup == pytest.approx(0.004)
    assert v.ip_protocol == 6  # the address the connect used
    assert v.http_status == 200
    assert v.tls_version == "TLSv1.3"
    assert v.ssl_expiry == 1796040000.0  # the earliest of the chain: 2026-11-30T12:00:00Z
    assert v.root == ("TLS_CERT_EXPIRING", 6, "tls.certificate")
    broken = probe_values(BROKEN)
    assert broken.success is False and broken.layers[3] == 2 and broken.layers[5] == -1


def test_single_probe_exposition_passes_promtool() -> None:
    text = render_prometheus(BROKEN)
    check_metrics(text)
    assert "probe_success 0.0" in text
    assert 'netcheck_root_cause{check="transport.tcp",code="TCP_REFUSED",layer="4"} 1.0' in text
    assert 'netcheck_layer_status{layer="4",name="transport"} 2.0' in text
    assert 'netcheck_verdict{verdict="broken"} 1.0' in text


def test_error_and_degraded_expositions_pass_promtool() -> None:
    check_metrics(render_prometheus(error_report('a "quoted"\\target\n', "bad input")))
    check_metrics(render_prometheus(DEGRADED))


def _done(i: int, name: str, rep: Report, group: str = "g") -> Done:
    return Done(i, Entry(f"{group}/{name}", group, i + 1, rep.target["input"]), rep)


def test_batch_exposition_labels_each_target_and_passes_promtool() -> None:
    out = StringIO()
    output = PrometheusOutput(out, StringIO())
    output.begin(Profile("p.toml"), None)
    summary = Summary()
    for i, (name, rep) in enumerate([("www", BROKEN), ("intra", DEGRADED), ("ssh", OK)]):
        output.done(_done(i, name, rep))
        summary.add(rep.verdict)
    output.finish(summary)
    text = out.getvalue()
    check_metrics(text)
    assert 'probe_success{name="g/ssh",target="tcp://198.18.2.10:22"} 1.0' in text
    assert 'netcheck_batch_targets{verdict="broken"} 1.0' in text


def test_families_merge_many_probes_into_one_family_each() -> None:
    text = exposition(families([({"name": "a"}, probe_values(OK)),
                                ({"name": "b"}, probe_values(BROKEN))], ("name",)))
    assert text.count("# TYPE probe_success gauge") == 1
    assert 'probe_success{name="a"} 1.0' in text and 'probe_success{name="b"} 0.0' in text


# -- Nagios ---------------------------------------------------------------------------------

_PERF = re.compile(r"^(?P<label>'(?:[^']|'')+'|[^'= ]+)=(?P<value>-?[0-9]+(?:\.[0-9]+)?)"
                   r"(?P<uom>s|ms|us|%|B|KB|MB|GB|TB|c)?"
                   r"(?:;(?P<warn>[^;]*)(?:;(?P<crit>[^;]*)(?:;(?P<min>[^;]*)(?:;(?P<max>[^;]*))?)?)?)?$")


def parse_plugin_output(line: str) -> tuple[str, str, dict[str, tuple[float, str]]]:
    """Split one plugin line as monitoring-plugins / Nagios do: status, text, perfdata.

    The text ends at the first '|'; perfdata are space-separated
    ``'label'=value[UOM];[warn];[crit];[min];[max]`` items (guidelines, section 2.6).
    """
    assert "\n" not in line.rstrip("\n"), "one line only"
    text, bar, perf = line.rstrip("\n").partition("|")
    match = re.match(r"^(?P<service>\S+) (?P<state>OK|WARNING|CRITICAL|UNKNOWN) - ", text)
    assert match, f"no 'SERVICE STATE - ' prefix: {line!r}"
    data: dict[str, tuple[float, str]] = {}
    tokens = re.findall(r"'(?:[^']|'')+'=\S*|\S+", perf) if bar else []
    for token in tokens:
        m = _PERF.match(token)
        assert m, f"perfdata item not in the plugin format: {token!r}"
        label = m.group("label")
        if label.startswith("'"):
            label = label[1:-1].replace("''", "'")
        data[label] = (float(m.group("value")), m.group("uom") or "")
    return match.group("state"), text[match.end():].strip(), data


def test_batch_nagios_line_parses_like_a_plugin_and_names_the_broken() -> None:
    out = StringIO()
    output = NagiosOutput(out, StringIO())
    output.begin(Profile("p.toml"), None)
    summary = Summary()
    for i, (name, rep) in enumerate([("www", BROKEN), ("intra", DEGRADED),
                                     ("it's ok", OK)]):
        output.done(_done(i, name, rep))
        summary.add(rep.verdict)
    summary.duration_ms = 1234.5
    output.finish(summary)
    state, text, perf = parse_plugin_output(out.getvalue())
    assert state == "CRITICAL" and summary.exit_code == 2
    assert "g/www TCP_REFUSED" in text and "g/intra TLS_CERT_EXPIRING" in text
    assert perf["broken"] == (1.0, "") and perf["ok"] == (1.0, "")
    assert perf["time"] == (1.234, "s") or perf["time"] == (1.235, "s")
    assert perf["g/it's ok_time"][1] == "s"


def test_batch_nagios_all_ok() -> None:
    out = StringIO()
    output = NagiosOutput(out, StringIO())
    output.begin(Profile("p.toml"), None)
    summary = Summary()
    output.done(_done(0, "ssh", OK))
    summary.add(OK.verdict)
    output.finish(summary)
    state, text, perf = parse_plugin_output(out.getvalue())
    assert (state, text, summary.exit_code) == ("OK", "1 target ok", 0)
