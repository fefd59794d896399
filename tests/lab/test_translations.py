"""Every word a student reads under ``--lang es`` or ``--lang ca`` is Spanish or Catalan.

Each lab scenario of layers 1-4 (and each server-mode scenario, in the server) runs once, in
Spanish or Catalan by turns (what leaks English leaks it in both: the words that escape the
catalogues are the same), and its report is rendered in both languages from the JSON: the
renderer's own words (titles, rungs, verdicts, "blocked by") follow the language of the
rendering, the checks' words that of the run. Any English word left outside the allow-list
of technical terms fails the test.

"English word": a word of the code's English texts (the catalogues' msgids and the checks'
titles) that neither catalogue uses in its translations; commands stay commands and are not
read, except their comments.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from functools import lru_cache
from pathlib import Path

import pytest

from netcheck import i18n
from netcheck.lab.scenarios import BASE_SCENARIOS, SCENARIOS
from netcheck.lab.topology import Lab
from netcheck.render.json import report_from_json
from netcheck.render.quiet import quiet_line
from netcheck.render.text import text_of

from .conftest import run_netcheck
from .test_server import NAMES as SERVER_NAMES
from .test_server import server_lab  # noqa: F401 - the fixture: one lab, every server scenario

REPO = Path(__file__).resolve().parents[2]
LANGS = ("es", "ca")
# Terms a Spanish or Catalan network course uses as they are: protocols, tools, kernel states,
# units. A word here is never reported.
ALLOWED = {
    "arp", "dns", "tcp", "udp", "tls", "ssl", "http", "https", "icmp", "icmpv6", "ipv4",
    "ipv6", "ip", "syn", "rst", "ack", "fin", "mtu", "pmtu", "ping", "dig", "nft", "nftables",
    "iptables", "ss", "nmap", "ssh", "smtp", "imap", "pop3", "veth", "wi-fi", "wifi", "nic",
    "dhcp", "slaac", "ttl", "rtt", "mdev", "ms", "kb", "mb", "up", "down", "lower_up",
    "no-carrier", "nameserver", "search", "resolv", "hosts", "localhost", "conntrack",
    "rfkill", "netns", "via", "dev", "src", "default", "route", "link", "neigh", "addr",
    "policy", "drop", "accept", "reject", "output", "input", "forward", "inet", "filter",
    "chain", "table", "established", "related", "prohibited", "nxdomain", "servfail",
    "refused", "noerror", "a", "aaaa", "cname", "txt", "soa", "dadfailed", "tentative",
    "blackhole", "unreachable", "prohibit", "loopback", "lo", "systemd-resolved", "stub",
    "networkmanager", "netplan", "ifupdown", "systemd-networkd", "ok", "www", "lab", "test",
    "proxy", "ipsec", "xfrm", "rp_filter", "mac", "vm", "dad", "ndp", "ra", "ll", "rx", "tx",
    # words Spanish or Catalan share with English (ca "port", "errors", "present", ...)
    "port", "transport", "errors", "error", "present", "protocol", "local", "total", "normal",
    "general", "final", "global", "virtual", "radio", "interfaces", "id", "clients", "client",
    "mode",
    # units, programs and what they print (a quoted nft rule, a request line of a log)
    "s", "h", "min", "nginx", "apache", "docker", "podman", "systemd", "systemctl", "journal",
    "journalctl", "pid", "handle", "counter", "packets", "bytes", "get", "post", "head",
    "upstream", "worker", "init", "chroot", "listen", "url", "uri", "cable", "nping", "arping",
    "ps", "mss", "logs", "apt", "install", "tcpdump", "mtr", "tracepath", "traceroute", "curl",
    "wget", "openssl", "nc", "ethtool", "sysctl",
    "web",  # the same word in Spanish and Catalan (RAE, IEC): "la web", "servidor web"
}
WORD = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*")
# A token with any of these is an address, a path, an id or a code, not a word to translate.
NOT_A_WORD = re.compile(r"[0-9./:_@=<>\[\]{}|\\$*]")


def _extractor():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "extract_messages_for_lab", REPO / "tools" / "extract_messages.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _bare(text: str) -> str:
    """A catalogue text without its {placeholders}."""
    return re.sub(r"\{[^{}]*\}", " ", text)


# What a tool prints, quoted in a sentence ('fragmentation needed', 'Connection refused'):
# the words as the tool says them, not words to translate.
# An apostrophe inside a word (l'enllaç, host's) neither opens nor closes a quote; a quote may
# run over one wrapped line.
QUOTED = re.compile(r"(?<!\w)'[^']{1,80}?'(?!\w)")


def _words(text: str) -> set[str]:
    found = set()
    for token in QUOTED.sub(" ", text).split():
        if NOT_A_WORD.search(token) or token.lstrip("('\"").startswith("-"):
            continue  # an address, a path, an id, a code, an option (--scan)
        found |= {w.lower() for w in WORD.findall(token)}
    return found


@lru_cache(maxsize=1)
def english_only() -> frozenset[str]:
    """Words of the English texts that no translation uses (in either language)."""
    code, _problems = _extractor().extract()
    english: set[str] = set()
    for _context, msgid, plural in code:
        english |= _words(_bare(msgid))
        if plural:
            english |= _words(_bare(plural))
    translated: set[str] = set()
    for lang in LANGS:
        path = Path(i18n.catalog_path(lang))
        for entry in i18n.parse_po(path.read_text(encoding="utf-8")):
            source = _words(_bare(str(entry["msgid"]))) | _words(_bare(str(
                entry.get("msgid_plural") or "")))
            for form in entry["msgstr"]:  # type: ignore[union-attr]
                # A translator's own word, not a term copied from the English (a command,
                # a tool's message): "no" for "not" counts, "gateway" kept as is does not.
                translated |= _words(_bare(str(form))) - source
    return frozenset(english - translated - ALLOWED)


def readable(text: str) -> str:
    """What a student reads: the text without command lines (their comments kept)."""
    kept = []
    for line in text.splitlines():
        body = line.strip(" │╭╮╰╯─")
        if body.startswith("$ "):
            body = body.partition("  # ")[2]
        kept.append(body)
    return "\n".join(kept)


def english_words(text: str, typed: str = "") -> list[str]:
    """The English words of ``text``, except those of what the user typed (``typed``: the
    target or the server command, shown as given)."""
    return sorted((_words(readable(text)) - _words(typed)) & english_only())


def test_the_detector_finds_english_and_passes_translations() -> None:
    assert english_words("la passarel·la 198.18.1.99 no respon ni a ARP ni al ping a eth0") == []
    # ("on" is Catalan too: "where")
    assert english_words("gateway 198.18.1.99 answers neither ARP nor ping on eth0") == \
        ["answers", "gateway", "neither", "nor"]
    # A command is not read, its comment is.
    assert english_words("  │ $ ip route replace default via 198.18.1.1 dev eth0  # on the "
                         "server") == ["server", "the"]


def assert_reads_in_both(doc: dict[str, object] | None, explain: str) -> None:
    """The report of ``doc`` rendered in Spanish and in Catalan has no English word left."""
    assert doc is not None, explain
    report = report_from_json(doc)  # type: ignore[arg-type]
    problems = {}
    for lang in LANGS:
        with i18n.language(lang):
            text = text_of(report, width=80)
            line = quiet_line(report).split(": ", 1)[1]
        # An 80-column terminal: no line wider (a command excepted: it is never wrapped) and
        # none padded with blanks.
        assert [ln for ln in text.splitlines()
                if len(ln) > 80 and not ln.lstrip().startswith("$ ")] == [], text
        assert [ln for ln in text.splitlines() if ln != ln.rstrip()] == [], text
        leftovers = english_words(text + "\n" + line, str(report.target.get("input") or ""))
        if leftovers:
            problems[lang] = (leftovers, text)
    assert not problems, "\n".join(f"--- {lang}: {words}\n{text}"
                                   for lang, (words, text) in problems.items())


@pytest.mark.parametrize("name", sorted(BASE_SCENARIOS))
def test_scenario_reads_in_spanish_and_catalan(lab: Lab, name: str) -> None:
    scenario = BASE_SCENARIOS[name]
    scenario.apply(lab)
    run_lang = LANGS[sorted(BASE_SCENARIOS).index(name) % 2]
    run = run_netcheck(lab, *scenario.netcheck_argv(), "--lang", run_lang)
    assert_reads_in_both(run.doc, run.explain())


@pytest.mark.parametrize("name", SERVER_NAMES)
def test_server_mode_reads_in_spanish_and_catalan(server_lab: Lab,  # noqa: F811
                                                  name: str) -> None:
    scenario = SCENARIOS[name]
    run_lang = LANGS[SERVER_NAMES.index(name) % 2]
    run = run_netcheck(server_lab, *scenario.netcheck_argv(server_lab), "--lang", run_lang,
                       role=getattr(scenario, "role", "server"))
    assert_reads_in_both(run.doc, run.explain())
