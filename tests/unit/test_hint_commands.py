"""Hint commands are data, rendered to paste: one ``$`` line each, never wrapped, comments on
their own line, tools this host has (or the package to install)."""

from __future__ import annotations

import shlex
import subprocess
from io import StringIO
from typing import Any

import pytest

from netcheck import hints
from netcheck.model import CheckOutcome, Hint, Layer, Report, Result, Status, Verdict, split_comment
from netcheck.render.text import render_text

LONG = ("nft insert rule inet netcheck_lab output position 2 ip daddr 198.18.2.10 tcp dport 22 "
        "accept comment \"let ssh to the server out again\"")


def _report(*commands: str, width: int = 80) -> str:
    from rich.console import Console

    hint = Hint("Delete the rule that drops the traffic, or put an accept before it.",
                list(commands))
    check = CheckOutcome("transport.output_firewall", Layer.TRANSPORT, "This host's firewall",
                         Result(Status.FAIL, "a rule drops it", code="FW_LOCAL_OUTPUT_BLOCK",
                                hint=hint))
    report = Report("diagnose", {"input": "tcp://198.18.2.10:22"}, {}, Verdict.BROKEN, check,
                    [check], "2026-01-01T00:00:00Z", 1.0, "0")
    buffer = StringIO()
    render_text(report, color=False,
                console=Console(file=buffer, width=width, color_system=None))
    return buffer.getvalue()


def test_a_long_command_is_one_line_whatever_the_width() -> None:
    text = _report(LONG, width=80)
    lines = [ln for ln in text.splitlines() if LONG in ln]
    # once under the check, once under the diagnosis: whole, not cut, not boxed
    assert len(lines) == 2, text
    assert all(ln.strip() == f"$ {LONG}" for ln in lines), lines
    assert "│" not in "".join(lines)


def test_the_comment_of_a_command_is_on_its_own_line_above_it() -> None:
    text = _report("ss -tlnp 'sport = :22'   # on the server: which program listens").splitlines()
    at = next(i for i, ln in enumerate(text) if ln.strip() == "$ ss -tlnp 'sport = :22'")
    assert text[at - 1].strip() == "# on the server: which program listens", text


def test_a_long_comment_folds_with_a_hash_on_every_line() -> None:
    words = "make it permanent: put the gateway in the interface's configuration " * 3
    text = _report(f"# {words.strip()}", "ip link set dev eth0 up", width=60)
    comment = [ln for ln in text.splitlines() if ln.lstrip().startswith("#")]
    assert len(comment) >= 6  # folded, twice (check and diagnosis)
    assert all(len(ln) <= 60 for ln in comment), comment
    assert " ".join(ln.strip()[2:] for ln in comment[:len(comment) // 2]) == words.strip()


@pytest.mark.parametrize("command, parts", [
    ("ip link set dev eth0 up", ("ip link set dev eth0 up", "")),
    ("ss -tlnp 'sport = :443'   # on the server", ("ss -tlnp 'sport = :443'", "on the server")),
    ("# make it permanent", ("", "make it permanent")),
    ("echo 'a # b' \"c#d\" e#f", ("echo 'a # b' \"c#d\" e#f", "")),
    ("echo $# x", ("echo $# x", "")),
    ("grep x f | tail -n 2 # last", ("grep x f | tail -n 2", "last")),
    (r"echo \# x", (r"echo \# x", "")),
])
def test_split_comment_reads_the_line_as_bash_does(command: str, parts: tuple[str, str]) -> None:
    assert split_comment(command) == parts
    line, comment = parts
    if line.startswith("echo"):  # bash agrees: it runs the line and ignores the comment
        def said(text: str) -> str:
            return subprocess.run(["bash", "-c", text], capture_output=True, text=True).stdout

        assert said(command) == said(line)
    elif line:
        assert shlex.split(command, comments=True) == shlex.split(line)


def test_usable_picks_a_tool_this_host_has() -> None:
    assert hints.usable("no-such-tool-xyz 1", "ip -br link") == "ip -br link"


def test_usable_names_the_package_when_nothing_is_installed() -> None:
    command = hints.usable("no-such-tool-xyz -n 198.18.2.10")
    line, comment = split_comment(command)
    assert line == "no-such-tool-xyz -n 198.18.2.10"
    assert comment == "not installed here: apt install no-such-tool-xyz"
    assert "iputils-arping" in hints.install_note("arping")


def test_trace_uses_what_exists_and_parses() -> None:
    for command in (hints.trace("198.18.2.10"), hints.trace("2001:db8:2::10", 443),
                    hints.count_loss("198.18.2.10")):
        program = command.split()[0]
        assert hints.have(program) or "not installed here" in command, command
        assert subprocess.run(["bash", "-n", "-c", command]).returncode == 0


def _cert(subject: str, issuer: str) -> Any:
    from netcheck.probes.tls import CertSummary

    return CertSummary(subject, issuer, [], "2026-01-01T00:00:00Z", "2026-12-01T00:00:00Z", 5,
                       "1", "ecdsa-with-SHA256", subject == issuer, False, "EC", "00")


def test_certbot_only_for_a_public_acme_ca() -> None:
    from netcheck.checks.presentation import _acme, _dn_parts, issuer_is_public

    store = frozenset({_dn_parts("CN=ISRG Root X1,O=Internet Security Research Group,C=US"),
                       _dn_parts("CN=DigiCert Global Root G2,O=DigiCert Inc,C=US")})
    lets_encrypt = [_cert("CN=www.example.org", "CN=R11,O=Let's Encrypt,C=US"),
                    _cert("CN=R11,O=Let's Encrypt,C=US",
                          "CN=ISRG Root X1,O=Internet Security Research Group,C=US")]
    digicert = [_cert("CN=shop.example.org", "CN=DigiCert Global Root G2,O=DigiCert Inc,C=US")]
    private = [_cert("CN=www.lab.test,O=netcheck lab", "CN=netcheck lab CA,O=netcheck lab")]
    assert issuer_is_public(lets_encrypt, store) and _acme(lets_encrypt)
    assert issuer_is_public(digicert, store) and not _acme(digicert)
    assert not issuer_is_public(private, store)
    # the order of the attributes does not matter, the values do
    assert _dn_parts("O=DigiCert Inc,CN=DigiCert Global Root G2,C=US") in store
    assert _dn_parts("CN=DigiCert Global Root G2,O=Evil Inc,C=US") not in store
