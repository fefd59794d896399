"""netcheck diagnoses every TLS scenario for real, through the CLI in the client namespace.

Beyond verdict, code and layer, each test asserts what a person needs from the report: the
hint names the real host and port (and, for expiry, the date), the certificate evidence is
there even when verification fails, plain text on the port is quoted, and hostile servers
cost bounded time. Each scenario is diagnosed once (in its own fresh lab, torn down at once)
and every test about it reads that one report.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from netcheck.lab import scenarios_tls
from netcheck.lab.scenarios import SCENARIOS  # first: the library gathers scenarios_tls
from netcheck.lab.scenarios_tls import SCENARIOS_LIST, lab_ca, lab_ca_path, start_server
from netcheck.lab.topology import Lab

from .conftest import NetcheckRun, run_netcheck
from .pasting import assert_commands_paste

TLS_NAMES = [s.name for s in SCENARIOS_LIST]
CERT_CODES = {"TLS_CERT_EXPIRED", "TLS_CERT_EXPIRING", "TLS_CERT_UNTRUSTED",
              "TLS_CERT_HOSTNAME_MISMATCH"}


def _root_text(run: NetcheckRun) -> str:
    rc = run.root_cause or {}
    hint = rc.get("hint") or {}
    return " ".join([rc.get("summary", ""), hint.get("text", ""), *hint.get("commands", [])])


def _host(name: str) -> str:
    return SCENARIOS[name].target.split("//", 1)[1].split("/", 1)[0]


@dataclass
class Diagnosis:
    """One scenario's report, and the lab files a test may compare it with."""

    run: NetcheckRun
    ca_path: str
    client_key: Optional[str]  # the PEM of the client key, when the scenario made one


Diagnose = Callable[[str], Diagnosis]


@pytest.fixture(scope="module")
def diagnosed(lab_support: None) -> Diagnose:
    """Diagnose a scenario in a fresh lab (once per module), then tear that lab down."""
    done: dict[str, Diagnosis] = {}

    def get(name: str) -> Diagnosis:
        if name not in done:
            lab = Lab(keep_logs=os.environ.get("NETCHECK_LAB_KEEP_LOGS") == "1")
            lab.build()
            try:
                scenario = SCENARIOS[name]
                scenario.apply(lab)
                run = run_netcheck(lab, *scenario.netcheck_argv())
                key = Path(lab.state_dir) / "pki" / "client.key"
                done[name] = Diagnosis(run, str(lab_ca_path(lab)),
                                       key.read_text() if key.exists() else None)
            finally:
                lab.teardown()
        return done[name]

    return get


def _diagnose(diagnosed: Diagnose, name: str) -> NetcheckRun:
    run = diagnosed(name).run
    assert "Traceback" not in run.stderr, run.explain()
    return run


def test_every_tls_scenario_is_in_the_library() -> None:
    assert set(TLS_NAMES) <= set(SCENARIOS)
    for scenario in SCENARIOS_LIST:
        assert scenario.expect.layer in (None, 6), scenario.name


@pytest.mark.parametrize("name", TLS_NAMES)
def test_tls_scenario_is_diagnosed(diagnosed: Diagnose, name: str) -> None:
    run = _diagnose(diagnosed, name)
    expect = SCENARIOS[name].expect
    rc = run.root_cause
    got = (run.verdict, rc["code"] if rc else None, rc["layer"] if rc else None)
    assert got == tuple(expect), run.explain()
    assert run.rc == {"ok": 0, "degraded": 1, "broken": 2}[expect.verdict]
    assert_commands_paste(run)
    handshake = run.check("tls.handshake")
    assert handshake is not None, run.explain()
    if expect.code is None:
        assert handshake["status"] == "pass"
        assert run.check("tls.certificate")["status"] == "pass"  # type: ignore[index]
        return
    assert rc is not None and rc["hint"] is not None
    text = _root_text(run)
    assert _host(name) in text and ":443" in text, text
    if expect.code in CERT_CODES:
        ev = run.check("tls.certificate")["evidence"]  # type: ignore[index]
        for key in ("subject", "san", "issuer", "not_after", "days_left", "chain"):
            assert key in ev, (key, ev)
        assert handshake["status"] == "pass"


def test_expired_certificate_hint_gives_the_date(diagnosed: Diagnose) -> None:
    run = _diagnose(diagnosed, "tls_expired")
    ev = run.check("tls.certificate")["evidence"]  # type: ignore[index]
    assert ev["days_left"] < 0 and ev["verified"] is False and ev["verify_code"] == 10
    assert ev["not_after"][:10] in run.root_cause["hint"]["text"]  # type: ignore[index]
    assert "tls-expired.lab.test" in ev["san"]
    assert ev["cafile"] == diagnosed("tls_expired").ca_path


def test_not_yet_valid_counts_as_expired_and_says_when(diagnosed: Diagnose) -> None:
    run = _diagnose(diagnosed, "tls_not_yet_valid")
    ev = run.check("tls.certificate")["evidence"]  # type: ignore[index]
    assert ev["not_yet_valid"] is True
    assert ev["not_before"][:10] in _root_text(run)


def test_expiring_certificate_is_a_warning_with_the_date(diagnosed: Diagnose) -> None:
    run = _diagnose(diagnosed, "tls_expiring")
    check = run.check("tls.certificate")
    assert check is not None and check["status"] == "warn"
    assert 0 <= check["evidence"]["days_left"] < 14
    assert check["evidence"]["not_after"][:10] in check["hint"]["text"]


def test_untrusted_shows_who_issued_it_and_how_to_trust_it(diagnosed: Diagnose) -> None:
    run = _diagnose(diagnosed, "tls_unknown_ca")
    ev = run.check("tls.certificate")["evidence"]  # type: ignore[index]
    assert "netcheck lab CA" in ev["issuer"] and ev["verify_code"] == 20
    text = _root_text(run)
    assert "--cafile" in text and "update-ca-certificates" in text


def test_self_signed_is_named_so(diagnosed: Diagnose) -> None:
    run = _diagnose(diagnosed, "tls_self_signed")
    ev = run.check("tls.certificate")["evidence"]  # type: ignore[index]
    assert ev["self_signed"] is True and "self-signed" in run.root_cause["summary"]  # type: ignore[index]


def test_wrong_host_names_what_the_certificate_is_for(diagnosed: Diagnose) -> None:
    run = _diagnose(diagnosed, "tls_wrong_host")
    assert "www-other.lab.test" in run.root_cause["summary"]  # type: ignore[index]
    assert run.check("tls.certificate")["evidence"]["san"] == ["www-other.lab.test"]  # type: ignore[index]


def test_plain_http_on_443_quotes_the_status_line(diagnosed: Diagnose) -> None:
    run = _diagnose(diagnosed, "tls_plain_http_on_443")
    ev = run.check("tls.handshake")["evidence"]  # type: ignore[index]
    assert ev["plaintext"].startswith("HTTP/1.1 400") and ev["banner_protocol"] == "HTTP"
    assert "HTTP/1.1 400" in run.root_cause["summary"]  # type: ignore[index]


def test_ssh_on_443_shows_the_banner(diagnosed: Diagnose) -> None:
    run = _diagnose(diagnosed, "tls_ssh_on_443")
    ev = run.check("tls.handshake")["evidence"]  # type: ignore[index]
    assert ev["plaintext"].startswith("SSH-2.0-") and ev["banner_protocol"] == "SSH"
    assert "SSH-2.0-" in run.root_cause["summary"]  # type: ignore[index]


def test_old_tls_version_names_the_version_the_server_speaks(diagnosed: Diagnose) -> None:
    run = _diagnose(diagnosed, "tls_version_mismatch")
    ev = run.check("tls.handshake")["evidence"]  # type: ignore[index]
    assert ev["alert"] == "protocol version"
    summary = run.root_cause["summary"]  # type: ignore[index]
    assert "no TLS version in common" in summary
    if ev.get("legacy_version"):  # found only where this OpenSSL can still speak TLS 1.0
        assert ev["legacy_version"] in summary


def test_megabyte_of_garbage_ends_quickly(diagnosed: Diagnose) -> None:
    run = _diagnose(diagnosed, "tls_garbage")
    ev = run.check("tls.handshake")["evidence"]  # type: ignore[index]
    assert ev["first_bytes"] and ev["bytes_received"] <= 256 * 1024
    assert run.elapsed < 5, run.explain()


def test_silent_server_is_given_up_on_after_the_timeout(diagnosed: Diagnose) -> None:
    run = _diagnose(diagnosed, "tls_silent")
    assert "no answer to the ClientHello within 1 s" in run.root_cause["summary"]  # type: ignore[index]
    assert run.elapsed < 6, run.explain()


def test_mutual_tls_passes_and_the_key_stays_private(diagnosed: Diagnose) -> None:
    run = _diagnose(diagnosed, "tls_client_cert_given")
    assert run.verdict == "ok", run.explain()
    pki = Path(diagnosed("tls_client_cert_given").ca_path).parent
    key_pem = diagnosed("tls_client_cert_given").client_key
    assert key_pem is not None
    assert key_pem.splitlines()[1] not in run.stdout
    assert str(pki / "client.key") not in run.stdout
    assert run.check("tls.handshake")["evidence"]["client_cert"] == str(pki / "client.crt")  # type: ignore[index]


def test_client_certificate_required_over_tls12(lab: Lab) -> None:
    ca = lab_ca(lab)
    issued = ca.issue("tls12", ["tls-mtls12.lab.test"])
    start_server(lab, 7, "tls-mtls12", "tls", issued, "--client-ca", str(ca.files.cert),
                 "--max-version", "1.2")
    run = run_netcheck(lab, "https://tls-mtls12.lab.test/", "--cafile", str(lab_ca_path(lab)))
    ev = run.check("tls.handshake")["evidence"]  # type: ignore[index]
    assert run.root_cause is not None, run.explain()
    assert run.root_cause["code"] == "TLS_CLIENT_CERT_REQUIRED", run.explain()
    assert ev["cert_requested"] is True and ev["alert"] == "handshake failure"


def test_ip_literal_target_sends_no_sni(lab: Lab) -> None:
    SCENARIOS["tls_ok"].apply(lab)
    run = run_netcheck(lab, "https://198.18.2.20/", "--cafile", str(lab_ca_path(lab)))
    handshake = run.check("tls.handshake")
    assert handshake is not None and handshake["status"] == "pass", run.explain()
    assert handshake["evidence"]["sni"] is None
    assert run.check("tls.certificate")["status"] == "pass"  # type: ignore[index]


def _tls_checks(run: NetcheckRun) -> dict[str, Any]:
    return {c["id"]: c for c in (run.doc or {}).get("checks", []) if c["id"].startswith("tls.")}


def test_starttls_on_submission(lab: Lab) -> None:
    ca = lab_ca(lab)
    good = ca.issue("smtp", ["tls-smtp.lab.test"])
    start_server(lab, 3, "tls-smtp", "smtp-starttls", good, port=587)
    old = ca.issue("smtp-old", ["tls-smtp-old.lab.test"], days_valid=10, starts_in_days=-20)
    start_server(lab, 4, "tls-smtp-old", "smtp-starttls", old, port=587)
    cafile = str(lab_ca_path(lab))
    run = run_netcheck(lab, "submission://tls-smtp.lab.test", "--cafile", cafile)
    checks = _tls_checks(run)
    assert checks["tls.handshake"]["status"] == "pass", run.explain()
    assert checks["tls.handshake"]["evidence"]["starttls"] == "smtp"
    assert checks["tls.certificate"]["status"] == "pass", run.explain()
    run = run_netcheck(lab, "submission://tls-smtp-old.lab.test", "--cafile", cafile)
    checks = _tls_checks(run)
    assert checks["tls.certificate"]["code"] == "TLS_CERT_EXPIRED", run.explain()


def test_scenario_arguments_name_this_labs_files(tmp_path: Path) -> None:
    scenario = SCENARIOS["tls_client_cert_given"]
    argv = scenario.netcheck_argv(tmp_path)  # type: ignore[call-arg]
    assert str(tmp_path / "pki" / "ca.crt") in argv
    assert str(tmp_path / "pki" / "client.key") in argv
    assert not any("{" in a for a in argv)
    assert scenario.netcheck_argv(str(tmp_path)) == argv  # type: ignore[call-arg]
    assert scenarios_tls.resolve_args(("{lab_ca}",), None) == ["{lab_ca}"]
