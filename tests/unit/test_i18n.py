"""Three languages: every text in both catalogs with the same placeholders, the language
chosen by --lang or the locale, codes and JSON keys untouched, and English whenever a
catalog cannot be used."""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import json
import sys
import time
from io import StringIO
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import pytest

from netcheck import cli, i18n
from netcheck.cli import run
from netcheck.model import CheckOutcome, Hint, Layer, Report, Result, Status, Verdict
from tests.schema import validate_report

REPO = Path(__file__).resolve().parents[2]
LANGS = ("es", "ca")


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "extract_messages", REPO / "tools" / "extract_messages.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


TOOL = _tool()
CODE, PROBLEMS = TOOL.extract()


def _catalog(lang: str) -> dict[Any, dict[str, Any]]:
    path = Path(i18n.catalog_path(lang))
    entries = i18n.parse_po(path.read_text(encoding="utf-8"))
    return {(e.get("msgctxt"), e["msgid"], e.get("msgid_plural")): e
            for e in entries if e["msgid"] != "" or "msgctxt" in e}


CATALOGS = {lang: _catalog(lang) for lang in LANGS}


@pytest.fixture(autouse=True)
def english_afterwards(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts and ends in English, with the real catalogs; and each netcheck run
    here starts its --deadline now, not when the suite first imported the CLI."""
    monkeypatch.setattr(cli, "STARTED", time.monotonic())  # harmless: run() starts its own clock
    i18n.set_language("en")
    yield
    i18n.set_language("en")
    i18n.clear_cache()


@pytest.fixture()
def locale_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A locale directory of the test's own (empty until the test writes catalogs)."""
    monkeypatch.setattr(i18n, "LOCALE_DIR", str(tmp_path))
    i18n.clear_cache()
    return tmp_path


def _write_catalog(root: Path, lang: str, text: str) -> None:
    path = root / lang / "LC_MESSAGES" / "netcheck.po"
    path.parent.mkdir(parents=True)
    path.write_text(text, encoding="utf-8")


def netcheck(*args: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    code = run(list(args), out, err)
    return code, out.getvalue(), err.getvalue()


def loopback_json(*extra: str) -> dict[str, Any]:
    """Diagnose port 9 on loopback (nothing listens there): TCP_REFUSED at layer 4."""
    code, out, err = netcheck("tcp://127.0.0.1:9", "--format", "json", "--deadline", "8",
                              *extra)
    assert code == 2, err
    doc = json.loads(out)
    validate_report(doc)
    return doc


def check_of(doc: dict[str, Any], check_id: str) -> dict[str, Any]:
    return next(c for c in doc["checks"] if c["id"] == check_id)


def shape(value: Any) -> Any:
    """The keys of a JSON document at every level, without the values (and without what is
    inside the evidence: what the probes met on a busy loopback may differ between runs)."""
    if isinstance(value, dict):
        return {k: None if k == "evidence" else shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value if isinstance(v, (dict, list))]
    return None


# -- the catalogs against the code ------------------------------------------------------------

def test_every_text_is_a_literal_the_extractor_can_read() -> None:
    assert PROBLEMS == []
    assert len(CODE) > 400


@pytest.mark.parametrize("lang", LANGS)
def test_every_text_of_the_code_is_translated(lang: str) -> None:
    catalog = CATALOGS[lang]
    missing = [key for key in CODE if key not in catalog]
    assert missing == []
    for key in CODE:
        entry = catalog[key]
        forms = entry["msgstr"]
        assert forms and all(f.strip() for f in forms), key
        assert len(forms) == (1 if key[2] is None else 2), key
        assert not entry["fuzzy"], key


@pytest.mark.parametrize("lang", LANGS)
def test_placeholders_of_each_translation_are_those_of_its_text(lang: str) -> None:
    for (_context, msgid, plural), entry in CATALOGS[lang].items():
        wanted = i18n.placeholders(msgid)
        if plural is not None:
            assert i18n.placeholders(plural) == wanted, msgid
        for form in entry["msgstr"]:
            assert i18n.placeholders(form) == wanted, (msgid, form)


@pytest.mark.parametrize("lang", LANGS)
def test_no_catalog_entry_is_stale(lang: str) -> None:
    assert [key for key in CATALOGS[lang] if key not in CODE] == []


@pytest.mark.parametrize("lang", LANGS)
def test_every_translation_is_usable_at_run_time(lang: str) -> None:
    translations = i18n.translations(lang)
    assert isinstance(translations, i18n.PoTranslations)
    assert translations.rejected == []
    assert lang not in i18n.load_errors


def test_placeholders_are_plain_names() -> None:
    # A format spec or conversion inside a text would be one more thing a translator must
    # copy exactly: numbers are formatted before they go in.
    for _context, msgid, _plural in CODE:
        assert all(p.isidentifier() for p in i18n.placeholders(msgid)), msgid


def test_no_module_that_translates_rebinds_the_underscore() -> None:
    """``for _ in ...`` or ``a, _ = ...`` next to ``_("...")`` calls a tuple element."""
    offenders = []
    for base in TOOL.SOURCES:
        for path in base.rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            imports_it = any(isinstance(n, ast.ImportFrom) and n.module == "netcheck.i18n"
                             and any(a.name == "_" for a in n.names) for n in ast.walk(tree))
            if not imports_it:
                continue
            offenders += [f"{path.relative_to(REPO)}:{n.lineno}" for n in ast.walk(tree)
                          if isinstance(n, ast.Name) and n.id == "_"
                          and isinstance(n.ctx, ast.Store)]
    assert offenders == []


def test_extractor_rejects_a_text_built_at_run_time(tmp_path: Path) -> None:
    source = tmp_path / "bad.py"
    source.write_text('from netcheck.i18n import _\n'
                      'x = 1\n'
                      'a = _(f"gateway {x} is down")\n'
                      'b = _("gateway " + str(x))\n'
                      'c = _("gateway {x}".format(x=x))\n'
                      'd = _("gateway {gw} is up").format(gw=x)\n', encoding="utf-8")
    found: dict[Any, Any] = {}
    problems: list[str] = []
    TOOL.extract_file(source, "bad.py", found, problems)
    assert [p.split(":")[1] for p in problems] == ["3", "4", "5"]
    assert list(found) == [(None, "gateway {gw} is up", None)]


def test_extractor_keeps_translations_and_drops_stale_ones() -> None:
    messages = [TOOL.Message("new text {n}", refs=["a.py:1"]),
                TOOL.Message("kept", refs=["a.py:2"]),
                TOOL.Message("{n} day", "{n} days", refs=["a.py:3"])]
    old = {(None, "kept", None): ["conservat"], (None, "gone", None): ["perdut"],
           (None, "{n} day", "{n} days"): ["{n} dia", "{n} dies"]}
    text = TOOL.render_po("ca", messages, old)
    entries = {e["msgid"]: e for e in i18n.parse_po(text)}
    assert entries["kept"]["msgstr"] == ["conservat"]
    assert entries["new text {n}"]["msgstr"] == [""]
    assert entries["{n} day"]["msgstr"] == ["{n} dia", "{n} dies"]
    assert "gone" not in entries
    assert "#, python-brace-format" in text


# -- English stays what the probes say -----------------------------------------------------------

def test_every_kind_of_banner_the_probe_tells_has_words() -> None:
    from netcheck.checks.application import HEARD

    from netcheck.probes import banner

    assert tuple(HEARD) == banner.KINDS
    heard = {banner.classify(data) for data in (
        b"", b"SSH-2.0-x", b"HTTP/1.1 200 OK", b"\x16\x03\x01\x00\x05hello", b"220 hi",
        b"+OK", b"* OK ready", bytes(range(64)), b"hello")}
    assert heard == set(banner.KINDS)


@pytest.mark.parametrize("lang, words", [
    ("en", "needs root (CAP_NET_ADMIN) to read the firewall rules"),
    ("es", "necesita root (CAP_NET_ADMIN) para leer las reglas del cortafuegos")])
def test_firewall_rules_unread_without_root_skip_saying_needs_root(
        monkeypatch: pytest.MonkeyPatch, lang: str, words: str) -> None:
    # The probe says why with a code (NEEDS_ROOT); the checks put it in the reader's words.
    from netcheck.checks import transport

    from netcheck.facts import Facts
    from netcheck.probes import firewall
    from netcheck.runner import Context, Options
    from netcheck.target import parse_target

    monkeypatch.setattr(firewall, "has_cap_net_admin", lambda: False)
    assert firewall.read_ruleset().error == firewall.NEEDS_ROOT
    ctx = Context(parse_target("tcp://198.18.0.10:22"), Options(), Facts())
    with i18n.language(lang):
        for check in (transport.local_firewall, transport.input_firewall):
            result = asyncio.run(check(ctx))
            assert (result.status, result.summary) == (Status.SKIP, words)
        assert transport.firewall_unreadable(firewall.NEEDS_ROOT, english=True) == (
            "needs root (CAP_NET_ADMIN) to read the firewall rules")


def test_firewall_flows_read_the_same_in_english() -> None:
    from netcheck.checks.transport import _flow

    from netcheck.probes.firewall import Flow

    for flow in (Flow(4, "tcp", "198.18.0.10", 443), Flow(6, "icmp", "2001:db8::10")):
        assert _flow(flow) == flow.describe()


# -- choosing the language --------------------------------------------------------------------

@pytest.mark.parametrize("environ, lang", [
    ({"LANG": "ca_ES.UTF-8"}, "ca"),
    ({"LANG": "ca_ES@valencia"}, "ca"),
    ({"LANG": "es_AR"}, "es"),
    ({"LANG": "es_ES.UTF-8"}, "es"),
    ({"LANG": "fr_FR.UTF-8"}, "en"),
    ({"LANG": "C.UTF-8"}, "en"),
    ({"LANG": "POSIX"}, "en"),
    ({}, "en"),
    ({"LANG": "es_ES.UTF-8", "LC_MESSAGES": "ca_ES.UTF-8"}, "ca"),
    ({"LANG": "es_ES.UTF-8", "LC_MESSAGES": "ca_ES.UTF-8", "LC_ALL": "C"}, "en"),
    ({"LANG": "ca_ES.UTF-8", "LC_ALL": ""}, "ca"),
])
def test_language_from_the_locale(environ: dict[str, str], lang: str) -> None:
    assert i18n.choose(None, environ) == lang


def test_lang_option_wins_over_the_locale() -> None:
    assert i18n.choose("es", {"LC_ALL": "ca_ES.UTF-8"}) == "es"
    assert i18n.choose("en", {"LC_ALL": "ca_ES.UTF-8"}) == "en"


def test_english_never_reads_a_catalog() -> None:
    i18n.clear_cache()
    code, out, _ = netcheck("checks", "--lang", "en")
    assert code == 0 and "L3 Network" in out
    assert i18n._cache == {}
    assert i18n._("no target") == "no target"
    assert i18n._cache == {}


def test_checks_listing_names_the_rungs_in_the_language_asked() -> None:
    code, out, _ = netcheck("checks", "--lang", "es")
    assert code == 0
    assert "L3 Nivel de red" in out and "network.gateway" in out
    # Titles are translated too (tools/extract_messages.py takes them from the docstrings).
    assert "El encaminador por defecto responde en el enlace" in out
    assert "Gateway answers on the link" not in out
    code, out, _ = netcheck("checks", "--lang", "ca")
    assert "L2 Nivell d'enllaç" in out


def test_one_report_in_its_own_language_while_others_run() -> None:
    async def texts(lang: str) -> list[str]:
        with i18n.language(lang):
            seen = []
            for _step in range(3):
                seen.append(i18n._("no target"))
                await asyncio.sleep(0)
            return seen

    async def both() -> list[list[str]]:
        return list(await asyncio.gather(texts("es"), texts("ca"), texts("en")))

    assert asyncio.run(both()) == [["sin destino"] * 3, ["sense destinació"] * 3,
                                   ["no target"] * 3]
    assert i18n.get_language() == "en"


def test_plural_forms() -> None:
    with i18n.language("es"):
        assert i18n.ngettext("{n} day ago", "{n} days ago", 1).format(n=1) == "hace 1 día"
        assert i18n.ngettext("{n} day ago", "{n} days ago", 3).format(n=3) == "hace 3 días"
    with i18n.language("ca"):
        assert i18n.ngettext("{n} day ago", "{n} days ago", 0).format(n=0) == "fa 0 dies"
    assert i18n.ngettext("{n} day ago", "{n} days ago", 1).format(n=1) == "1 day ago"


# -- a real diagnosis in three languages ----------------------------------------------------------

def test_refused_port_in_catalan_keeps_codes_and_keys() -> None:
    english = loopback_json()
    catalan = loopback_json("--lang", "ca")
    assert shape(catalan) == shape(english)
    assert [(c["id"], c["status"], c["code"]) for c in catalan["checks"]] == \
        [(c["id"], c["status"], c["code"]) for c in english["checks"]]
    tcp_en, tcp_ca = check_of(english, "transport.tcp"), check_of(catalan, "transport.tcp")
    assert tcp_ca["code"] == "TCP_REFUSED" and tcp_ca["status"] == "fail"
    assert tcp_en["summary"] == "127.0.0.1 port 9 refused (RST: nothing listens)"
    assert tcp_ca["summary"] == "127.0.0.1 port 9 rebutjat (RST: res no hi escolta)"
    assert tcp_ca["hint"]["text"].startswith("L'equip respon però res no escolta a 127.0.0.1 "
                                             "port 9")
    # Commands are commands: only the words of their comments change.
    from netcheck.model import split_comment

    assert [split_comment(c)[0] for c in tcp_ca["hint"]["commands"]] == \
        [split_comment(c)[0] for c in tcp_en["hint"]["commands"]]
    assert "nmap -sT -p 9 127.0.0.1   # des d'aquí" in tcp_ca["hint"]["commands"]
    assert tcp_ca["evidence"].keys() == tcp_en["evidence"].keys()
    root = catalan["root_cause"]
    assert (root["check"], root["code"], root["layer"]) == ("transport.tcp", "TCP_REFUSED", 4)
    assert root["summary"] == tcp_ca["summary"]
    assert catalan["verdict"] == "broken"


def test_refused_port_in_spanish() -> None:
    doc = loopback_json("--lang", "es")
    tcp = check_of(doc, "transport.tcp")
    assert tcp["code"] == "TCP_REFUSED"
    assert tcp["summary"] == "127.0.0.1 puerto 9 rechazado (RST: nada escucha)"
    assert tcp["hint"]["text"].startswith("El equipo responde pero nada escucha")


def test_the_locale_chooses_when_lang_is_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.setenv("LC_MESSAGES", "es_AR.UTF-8")
    doc = loopback_json()
    assert check_of(doc, "transport.tcp")["summary"].startswith("127.0.0.1 puerto 9 rechazado")
    assert i18n.get_language() == "en"  # the caller's language is back after the run


def test_text_and_quiet_outputs_in_catalan(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "160")  # no line wrapped in the middle of a phrase
    code, out, _ = netcheck("tcp://127.0.0.1:9", "--lang", "ca", "--no-color", "--deadline", "8")
    assert code == 2
    for words in ("L4 Nivell de transport  ◀ causa arrel", "Diagnòstic", "TRENCAT",
                  "TCP_REFUSED a L4 Nivell de transport (transport.tcp)", "suggeriment",
                  "127.0.0.1 port 9 rebutjat (RST: res no hi escolta) [TCP_REFUSED]",
                  "bloquejat per transport.tcp", "L5 Nivell de sessió  no comprovat"):
        assert words in out, (words, out)
    code, out, _ = netcheck("tcp://127.0.0.1:9", "--lang", "es", "-q", "--deadline", "8")
    # -q: the first four fields stay English for scripts; only the text is Spanish.
    assert out == ("BROKEN TCP_REFUSED L4 tcp://127.0.0.1:9: "
                   "127.0.0.1 puerto 9 rechazado (RST: nada escucha)\n")


def _report() -> Report:
    failing = CheckOutcome("network.gateway", Layer.NETWORK, "Gateway answers on the link",
                           Result(Status.FAIL, "x", code="GATEWAY_UNREACHABLE",
                                  hint=Hint("y", ["ip neigh"])))
    return Report(mode="diagnose", target={"input": "198.18.2.10"}, host={},
                  verdict=Verdict.BROKEN, root_cause=failing, checks=[failing],
                  started_at="2026-11-22T10:00:00Z", duration_ms=12.0, version="0.1.0")


def test_nagios_line_translates_only_its_text() -> None:
    from netcheck.render.nagios import render_nagios

    ok = _report()
    ok.verdict, ok.root_cause = Verdict.OK, None
    english = render_nagios(ok)
    with i18n.language("es"):
        spanish = render_nagios(ok)
    assert english.startswith("NETCHECK OK - 198.18.2.10: all checks passed | ")
    assert spanish.startswith("NETCHECK OK - 198.18.2.10: todas las comprobaciones son "
                              "correctas | ")
    assert spanish.split(" | ")[1] == english.split(" | ")[1]


def test_text_report_header_in_spanish() -> None:
    from netcheck.render.text import text_of

    report = _report()
    report.host = {"hostname": "client1", "privileged": False, "egress_interface": None}
    with i18n.language("es"):
        text = text_of(report)
    assert "interfaz de salida desconocida  equipo client1  privilegiado: no" in text
    assert "GATEWAY_UNREACHABLE en L3 Nivel de red (network.gateway)" in text


# -- catalogs that cannot be used -------------------------------------------------------------

def test_missing_catalog_falls_back_to_english(locale_dir: Path) -> None:
    with i18n.language("ca"):
        assert i18n._("no target") == "no target"
        assert i18n.ngettext("{n} day ago", "{n} days ago", 2) == "{n} days ago"
    assert "ca" in i18n.load_errors


@pytest.mark.parametrize("text", [
    'msgid "no target"\nmsgstr "sense destinació\n',  # unterminated string
    'msgid "no target"\nmsgstr "a" "b\n',
    'this is not a catalog at all\n',
    'msgid "no target"\n',  # no msgstr
    'msgid "no target"\nmsgstr "x"\nmsgid "no target"\nmsgid "again"\nmsgstr "y"\n',
    '"a string outside any entry"\n',
])
def test_corrupt_catalog_falls_back_to_english(locale_dir: Path, text: str) -> None:
    _write_catalog(locale_dir, "ca", text)
    with i18n.language("ca"):
        assert i18n._("no target") == "no target"
    assert "ca" in i18n.load_errors


def test_undecodable_catalog_falls_back_to_english(locale_dir: Path) -> None:
    path = locale_dir / "es" / "LC_MESSAGES" / "netcheck.po"
    path.parent.mkdir(parents=True)
    path.write_bytes(b'msgid "no target"\nmsgstr "\xff\xfe"\n')
    with i18n.language("es"):
        assert i18n._("no target") == "no target"


def test_cli_with_a_broken_catalog_says_so_and_answers_in_english(locale_dir: Path) -> None:
    _write_catalog(locale_dir, "ca", "garbage\n")
    code, out, err = netcheck("tcp://127.0.0.1:9", "--lang", "ca", "--format", "json",
                              "--deadline", "8")
    assert code == 2
    doc = json.loads(out)
    validate_report(doc)
    assert check_of(doc, "transport.tcp")["summary"] == \
        "127.0.0.1 port 9 refused (RST: nothing listens)"
    assert "warning: cannot use the ca texts" in err and "stay in English" in err


def test_one_broken_translation_costs_one_english_text(locale_dir: Path) -> None:
    _write_catalog(locale_dir, "es", "\n".join([
        'msgid ""', 'msgstr ""', '"Plural-Forms: nplurals=2; plural=(n != 1);\\n"', "",
        'msgid "{ifname} is down"', 'msgstr "{interfaz} está caída"', "",  # wrong name
        'msgid "no target"', 'msgstr "sin destino"', "",
        'msgid "{n} day ago"', 'msgid_plural "{n} days ago"', 'msgstr[0] "hace {n} día"',
        'msgstr[1] "hace {n días"', "",  # unbalanced brace
        '#, fuzzy', 'msgid "no address"', 'msgstr "ninguna dirección"', "",
        'msgctxt "interfaces"', 'msgid "none"', 'msgstr "ninguna"', ""]))
    with i18n.language("es"):
        assert i18n._("{ifname} is down").format(ifname="eth0") == "eth0 is down"
        assert i18n._("no target") == "sin destino"
        assert i18n.ngettext("{n} day ago", "{n} days ago", 3).format(n=3) == "3 days ago"
        assert i18n._("no address") == "no address"  # fuzzy: not trusted
        assert i18n.pgettext("interfaces", "none") == "ninguna"
        assert i18n._("none") == "none"
    translations = i18n.translations("es")
    assert isinstance(translations, i18n.PoTranslations)
    assert sorted(translations.rejected) == ["{ifname} is down", "{n} day ago"]


def test_parser_reads_what_po_files_contain() -> None:
    entries = i18n.parse_po("\n".join([
        "# a comment", 'msgid ""', 'msgstr ""', '"Language: ca\\n"', "",
        "#: checks/link.py:12", "#, python-brace-format", 'msgid ""',
        '"a long text that goes on "', '"over two lines with \\"quotes\\" and a \\\\"',
        'msgstr "un text llarg\\tamb tabulador"', "",
        '#~ msgid "obsolete"', '#~ msgstr "obsolet"']))
    assert [e["msgid"] for e in entries] == [
        "", 'a long text that goes on over two lines with "quotes" and a \\']
    assert entries[1]["msgstr"] == ["un text llarg\tamb tabulador"]
    assert entries[0]["msgstr"] == ["Language: ca\n"]
