"""What the text report says in Spanish and Catalan beyond the checks' own summaries: check
titles, the probes' words (timeout, network unreachable, ICMP errors), placeholders left in
commands; the JSON keeps the English title, the raw evidence and the command as written."""

from __future__ import annotations

import json
from typing import Iterator

import pytest

from netcheck import i18n, registry
from netcheck.model import CheckOutcome, Hint, Layer, Report, Result, Status, Verdict
from netcheck.render.json import render_json, report_from_json
from netcheck.render.text import local_placeholders, text_of
from tests.unit.test_i18n import CODE


@pytest.fixture(autouse=True)
def english_afterwards() -> Iterator[None]:
    i18n.set_language("en")
    yield
    i18n.set_language("en")


def gateway_report() -> Report:
    gateway = CheckOutcome(
        "network.gateway", Layer.NETWORK, "Gateway answers on the link",
        Result(Status.FAIL, "gateway 198.18.1.99 answers neither ARP nor ping on eth0",
               code="GATEWAY_UNREACHABLE", evidence={"gateway": "198.18.1.99"},
               hint=Hint("Nothing answers.", ["ip neigh show dev eth0",
                                              "ip route replace default via "
                                              "<the right gateway> dev eth0"])))
    target = CheckOutcome("network.target", Layer.NETWORK, "Target answers",
                          Result(Status.SKIP, "not tried", blocked_by="network.gateway"))
    return Report(mode="diagnose", target={"input": "198.18.2.10:22", "scheme": "tcp",
                                           "host": "198.18.2.10", "port": 22,
                                           "addresses": ["198.18.2.10"]},
                  host={"hostname": "vm", "privileged": True, "egress_interface": "eth0"},
                  verdict=Verdict.BROKEN, root_cause=gateway, checks=[gateway, target],
                  started_at="2026-11-22T10:00:00Z", duration_ms=12.0, version="0.1.0")


def test_every_check_title_is_in_the_catalogues() -> None:
    titles = {c.title for c in registry.load().checks}
    assert titles <= {msgid for _context, msgid, _plural in CODE}
    with i18n.language("ca"):
        assert i18n._("Gateway answers on the link") == \
            "L'encaminador per defecte respon a l'enllaç"
    with i18n.language("es"):
        assert i18n._("Gateway answers on the link") == \
            "El encaminador por defecto responde en el enlace"


@pytest.mark.parametrize("lang, title, placeholder", [
    ("es", "El encaminador por defecto responde en el enlace", "<el encaminador correcto>"),
    ("ca", "L'encaminador per defecte respon a l'enllaç", "<l'encaminador correcte>"),
])
def test_text_report_translates_titles_and_placeholders(lang: str, title: str,
                                                        placeholder: str) -> None:
    report = gateway_report()
    with i18n.language(lang):
        text = text_of(report, width=120)
    assert title in text and "Gateway answers on the link" not in text
    assert placeholder in text and "<the right gateway>" not in text
    # The JSON is the contract's: English title, the command as the check wrote it.
    doc = json.loads(render_json(report))
    assert doc["checks"][0]["title"] == "Gateway answers on the link"
    assert "<the right gateway>" in doc["checks"][0]["hint"]["commands"][1]


def test_unknown_placeholders_and_third_party_titles_stay_as_written() -> None:
    with i18n.language("ca"):
        assert local_placeholders("curl -s <title> x") == "curl -s <title> x"
        assert i18n._("Plugin check of someone else") == "Plugin check of someone else"


@pytest.mark.parametrize("raw, es, ca", [
    ("timeout", "tiempo agotado", "temps esgotat"),
    ("network unreachable", "red inaccesible", "xarxa inaccessible"),
    ("host unreachable from 198.18.1.1", "equipo inaccesible desde 198.18.1.1",
     "equip inaccessible des de 198.18.1.1"),
    ("rejected (port unreachable: nothing listens on 53) from 198.18.3.53",
     "rechazada (puerto inaccesible: nada escucha en el 53) desde 198.18.3.53",
     "rebutjada (port inaccessible: res no escolta al 53) des de 198.18.3.53"),
    ("error: Operation not permitted", "error: Operation not permitted",
     "error: Operation not permitted"),
    ("something new", "something new", "something new"),
])
def test_probe_words_are_translated_for_summaries(raw: str, es: str, ca: str) -> None:
    assert i18n.probe_text(raw) == raw
    with i18n.language("es"):
        assert i18n.probe_text(raw) == es
    with i18n.language("ca"):
        assert i18n.probe_text(raw) == ca


def test_name_server_summary_says_the_errno_in_catalan_and_evidence_keeps_it() -> None:
    from netcheck.checks.network import ServerRecord

    record = ServerRecord("198.18.3.53", errors=("network unreachable",), sent=1)
    assert record.problem == "network unreachable"
    with i18n.language("ca"):
        assert record.problem == "xarxa inaccessible"
    assert record.errors == ("network unreachable",)  # what the evidence is made from


def test_a_report_read_back_from_json_is_the_same_document() -> None:
    report = gateway_report()
    doc = json.loads(render_json(report))
    again = json.loads(render_json(report_from_json(doc)))
    assert again == doc
    # ...and renders in another language than the one it was made in.
    with i18n.language("ca"):
        assert "L'encaminador per defecte" in text_of(report_from_json(doc))


# -- usage errors and server mode ---------------------------------------------------------------

@pytest.mark.parametrize("args, expected", [
    (["tcp://127.0.0.1:9", "--timeout", "x", "--lang", "ca"],
     "argument --timeout: 'x' no és un nombre"),
    (["tcp://127.0.0.1:9", "--bogus", "--lang", "ca"], "arguments no reconeguts: --bogus"),
    (["--lang", "es"], "faltan estos argumentos: target"),
    (["tcp://127.0.0.1:9", "--cafile", "/no/such/ca.pem", "--lang", "es"],
     "--cafile '/no/such/ca.pem': no existe el fichero"),
    (["server", "--port", "99999", "--lang", "ca"],
     "--port '99999' no és un nombre de l'1 al 65535"),
    (["server", "--port", "443", "--since", "soon", "--lang", "es"],
     "--since 'soon' no es una duración"),
])
def test_usage_errors_in_the_language_asked(args: list[str], expected: str) -> None:
    from io import StringIO

    from netcheck.cli import run

    out, err = StringIO(), StringIO()
    assert run(args, out, err) == 3
    assert expected in err.getvalue(), err.getvalue()


def test_usage_errors_stay_english_by_default() -> None:
    from io import StringIO

    from netcheck.cli import run

    err = StringIO()
    assert run(["tcp://127.0.0.1:9", "--bogus"], StringIO(), err) == 3
    assert "unrecognized arguments: --bogus" in err.getvalue()


def test_listener_kinds_are_translated_for_summaries_only() -> None:
    from netcheck.server.listeners import Listener, human_duration

    socket_ = Listener(proto="tcp", family=4, address="0.0.0.0", port=80)
    assert socket_.kind() == socket_.kind_text() == "every IPv4 address"
    with i18n.language("ca"):
        assert socket_.kind_text() == "totes les adreces IPv4"
        assert socket_.kind() == "every IPv4 address"  # what the evidence says
        assert human_duration(3 * 86400 + 7200, translated=True) == "3 dies 2 h"
    assert human_duration(3 * 86400 + 7200) == "3 days 2 h"
