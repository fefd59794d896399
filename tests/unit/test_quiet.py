"""Script output: ``-q`` is ``VERDICT CODE Lx TARGET: text`` with four fixed fields and no
measured number; batch results carry their ``name``; the target is written one way."""

from __future__ import annotations

import io
import json
from typing import Any, Optional

import pytest

from netcheck import cli, i18n
from netcheck.model import CheckOutcome, Hint, Layer, Report, Result, Status, Verdict
from netcheck.render import canonical_target
from netcheck.render.quiet import quiet_line, steady
from tests.schema import validate_report
from tests.unit.test_batch_run import closed_port


@pytest.fixture(autouse=True)
def english_afterwards() -> Any:
    i18n.set_language("en")
    yield
    i18n.set_language("en")


def netcheck(*args: str, stdin: str = "", monkeypatch: Optional[pytest.MonkeyPatch] = None
             ) -> tuple[int, str, str]:
    if monkeypatch is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    out, err = io.StringIO(), io.StringIO()
    rc = cli.run(list(args), out, err)
    return rc, out.getvalue(), err.getvalue()


def report(summary: str, code: Optional[str] = "GATEWAY_UNREACHABLE",
           verdict: Verdict = Verdict.BROKEN, target: Optional[dict[str, Any]] = None,
           mode: str = "diagnose") -> Report:
    root = CheckOutcome("network.gateway", Layer.NETWORK, "Gateway answers on the link",
                        Result(Status.FAIL, summary, code=code, hint=Hint("x")))
    return Report(mode=mode,
                  target=target or {"input": "198.18.2.10:22", "scheme": "tcp",
                                    "host": "198.18.2.10", "port": 22, "addresses": []},
                  host={}, verdict=verdict, root_cause=root if code else None,
                  checks=[root], started_at="2026-11-22T10:00:00Z", duration_ms=1.0,
                  version="0.1.0")


# -- the four fields ------------------------------------------------------------------------

def test_quiet_line_has_verdict_code_layer_and_canonical_target() -> None:
    line = quiet_line(report("gateway 198.18.1.99 answers neither ARP nor ping on eth0"))
    assert line == ("BROKEN GATEWAY_UNREACHABLE L3 tcp://198.18.2.10:22: "
                    "gateway 198.18.1.99 answers neither ARP nor ping on eth0")


@pytest.mark.parametrize("lang", ["es", "ca"])
def test_quiet_fields_are_never_translated(lang: str) -> None:
    ok = report("", code=None, verdict=Verdict.OK)
    english = quiet_line(ok)
    with i18n.language(lang):
        translated = quiet_line(ok)
    assert english == "OK - - tcp://198.18.2.10:22: all checks passed"
    assert translated.split(": ", 1)[0] == "OK - - tcp://198.18.2.10:22"
    assert translated.split(": ", 1)[1] != "all checks passed"  # the text is translated


def test_quiet_line_of_a_run_that_could_not_happen() -> None:
    from netcheck.render.json import error_report

    line = quiet_line(error_report("bad target", "target contains white space"))
    verdict, code, layer, rest = line.split(" ", 3)
    assert (verdict, code, layer) == ("UNKNOWN", "-", "-")
    assert rest == "bad%20target: target contains white space"


def test_quiet_line_in_server_mode_names_the_port() -> None:
    server = report("nothing listens on tcp port 443", code="SRV_NOT_LISTENING",
                    target={"input": "server --port 443 --client 198.18.1.2", "scheme": None,
                            "host": None, "port": 443, "addresses": []}, mode="server")
    assert quiet_line(server).startswith("BROKEN SRV_NOT_LISTENING L3 server:443: ")


def test_quiet_from_the_cli_on_loopback_in_catalan() -> None:
    port = closed_port()
    rc, out, _err = netcheck(f"tcp://127.0.0.1:{port}", "-q", "--lang", "ca",
                             "--deadline", "8")
    assert rc == 2
    assert out.startswith(f"BROKEN TCP_REFUSED L4 tcp://127.0.0.1:{port}: ")
    assert "rebutjat" in out and out.count("\n") == 1


# -- no volatile numbers --------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    # nft counters in a quoted rule
    ("this host's firewall drops tcp port 22 to 198.18.2.10: rule "
     "'tcp dport 22 counter packets 3 bytes 180 drop' in inet filter output",
     "this host's firewall drops tcp port 22 to 198.18.2.10: rule "
     "'tcp dport 22 counter drop' in inet filter output"),
    ("www.lab.test -> 198.18.2.10 in 812 ms (slow: over 500 ms)",
     "www.lab.test -> 198.18.2.10 in … ms (slow: over … ms)"),
    ("198.18.2.10 port 22 open (0.4 ms)", "198.18.2.10 port 22 open (… ms)"),
    ("packets to 198.18.2.10 are lost: 13 of 20 lost (65 %), RTT min/avg/max/mdev "
     "0.1/0.2/0.4/0.1 ms (about 41 % each way)",
     "packets to 198.18.2.10 are lost: … of 20 lost (… %), RTT min/avg/max/mdev "
     "… ms (about … % each way)"),
    ("paquets cap a 198.18.2.10 perduts: 13 de 20 perduts (65 %)",
     "paquets cap a 198.18.2.10 perduts: … de 20 perduts (… %)"),
    ("eth0: 12 errors during the run (RX 552B, TX 9.00kB)",
     "eth0: 12 errors during the run (RX …B, TX …kB)"),
    # what is not a measurement stays: addresses, ports, versions, prefixes, codes
    ("TLSv1.3 with 198.18.2.10:443 (2001:db8:2::10), nginx/1.22.1, mtu 1280, 198.18.2.0/24",
     "TLSv1.3 with 198.18.2.10:443 (2001:db8:2::10), nginx/1.22.1, mtu 1280, 198.18.2.0/24"),
])
def test_measured_numbers_are_elided(text: str, expected: str) -> None:
    assert steady(text) == expected


def test_two_runs_that_find_the_same_fault_print_the_same_line() -> None:
    first = quiet_line(report("198.18.2.10 answers ping in 4.1 ms, then port 22 times out "
                              "(3 of 3 SYNs unanswered after 2.0 s)"))
    second = quiet_line(report("198.18.2.10 answers ping in 0.3 ms, then port 22 times out "
                               "(3 of 3 SYNs unanswered after 2.1 s)"))
    assert first == second


# -- one canonical target -------------------------------------------------------------------

@pytest.mark.parametrize("target, expected", [
    ({"input": "tcp://198.18.2.10", "scheme": "tcp", "host": "198.18.2.10", "port": 23},
     "tcp://198.18.2.10:23"),
    ({"input": "www.lab.test", "scheme": "https", "host": "www.lab.test", "port": 443},
     "https://www.lab.test:443/"),
    ({"input": "http://ann:***@site.lab.test/to-https?x=1", "scheme": "http",
      "host": "site.lab.test", "port": 80}, "http://ann:***@site.lab.test:80/to-https?x=1"),
    ({"input": "[2001:db8:2::10]:22", "scheme": "tcp", "host": "2001:db8:2::10", "port": 22},
     "tcp://[2001:db8:2::10]:22"),
    ({"input": "server --port 443", "scheme": None, "host": None, "port": 443},
     "server --port 443"),
])
def test_canonical_target_is_the_url_form_with_the_port(target: dict[str, Any],
                                                        expected: str) -> None:
    assert canonical_target(target) == expected


def test_batch_results_carry_the_entry_name_and_validate(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Any) -> None:
    port = closed_port()
    profile = tmp_path / "p.toml"
    profile.write_text(f'[lo]\nshut = {{ target = "127.0.0.1", port = {port}, '
                       f'scheme = "tcp" }}\n')
    for fmt in ("json", "ndjson"):
        rc, out, err = netcheck("batch", str(profile), "--format", fmt, "--only",
                                "transport.tcp", monkeypatch=monkeypatch)
        assert rc == 2, err
        doc = json.loads(out)["results"][0] if fmt == "json" else json.loads(out)
        validate_report(doc)
        assert doc["name"] == "lo/shut"


def test_a_line_of_stdin_is_named_by_its_canonical_target(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    port = closed_port()
    rc, out, err = netcheck("batch", "-", "--format", "ndjson", "--only", "transport.tcp",
                            "--port", str(port), "--scheme", "tcp",
                            stdin="127.0.0.1\n", monkeypatch=monkeypatch)
    assert rc == 2, err
    doc = json.loads(out)
    validate_report(doc)
    assert doc["name"] == f"tcp://127.0.0.1:{port}"
    rc, out, err = netcheck("batch", "-", "--only", "transport.tcp", "--port", str(port),
                            "--scheme", "tcp", stdin="127.0.0.1\n", monkeypatch=monkeypatch)
    assert f"tcp://127.0.0.1:{port}" in out


def test_the_schema_allows_name_but_nothing_else_new() -> None:
    doc = report("x").to_json()
    doc["host"] = {"hostname": "client1", "privileged": True, "egress_interface": "eth0"}
    validate_report({**doc, "name": "lo/shut"})
    with pytest.raises(AssertionError, match="nickname"):
        validate_report({**doc, "nickname": "lo/shut"})
