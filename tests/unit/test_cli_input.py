"""The command line facing bad input: exit 3, one line (or one JSON document), no secrets,
no tracebacks. Nothing here sends a packet: every run stops at input validation."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import pytest

from netcheck import __version__
from netcheck.cli import run
from tests.schema import validate_report

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "secret"

BAD_TARGETS = {
    "empty": "",
    "spaces": "www example.com",
    "port too big": "host:99999",
    "unclosed bracket": "http://[::1",
    "300-character label": "a" * 300,
    "label of 64": "b" * 64 + ".example",
    "name of 254": ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 62]),
    "shell rm": "a;rm -rf /",
    "shell subst": "$(id)",
    "shell backticks": "`id`",
    "shell pipe": "a|b",
    "shell and": "a&b",
    "nul": "host\x00",
    "newline": "\n",
    "ansi escape": "\x1b[31m",
    "unknown scheme": "ftp://x",
    "tcp without port": "tcp://host",
    "password and bad port": f"http://user:{PASSWORD}@www.example.com:99999/",
    "password and bad host": f"http://user:{PASSWORD}@bad!host/",
    "password and tcp without port": f"tcp://user:{PASSWORD}@host.example",
}

BAD_OPTIONS = {
    "timeout not a number": ["--timeout", "abc"],
    "timeout negative": ["--timeout", "-1"],
    "timeout negative with =": ["--timeout=-1"],
    "deadline zero": ["--deadline", "0"],
    "port zero": ["--port", "0"],
    "port too big": ["--port", "70000"],
    "port not a number": ["--port", "http"],
    "format unknown": ["--format", "xml"],
    "interface with shell": ["--interface", "a;b"],
    "interface too long": ["--interface", "x" * 40],
}

# Every layout a script may use to ask for JSON.
JSON_LAYOUTS = {
    "--json before": lambda t: ["--json", t],
    "--json after": lambda t: [t, "--json"],
    "--format json after": lambda t: [t, "--format", "json"],
    "--format=json before": lambda t: ["--format=json", t],
    "diagnose --json": lambda t: ["diagnose", t, "--json"],
}


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    code = run(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def assert_one_error_line(code: int, out: str, err: str) -> None:
    assert code == 3
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, repr(err)
    assert err.startswith("netcheck: error: "), repr(err)
    assert err[:-1].isprintable(), repr(err)
    assert "\x1b" not in err and "\x00" not in err
    assert "Traceback" not in err


def json_document(out: str) -> dict[str, Any]:
    """Exactly one JSON document (json.loads refuses trailing data), valid netcheck/1."""
    doc = json.loads(out)
    assert isinstance(doc, dict)
    validate_report(doc)
    return doc


# -- bad targets, text output ---------------------------------------------------------------

@pytest.mark.parametrize("target", list(BAD_TARGETS.values()), ids=list(BAD_TARGETS))
def test_bad_target_gives_exit_3_and_one_line(target: str) -> None:
    code, out, err = cli(target)
    assert_one_error_line(code, out, err)
    assert PASSWORD not in err


@pytest.mark.parametrize("target", list(BAD_TARGETS.values()), ids=list(BAD_TARGETS))
def test_bad_target_after_diagnose_command(target: str) -> None:
    code, out, err = cli("diagnose", target)
    assert_one_error_line(code, out, err)
    assert PASSWORD not in err


# -- bad targets, JSON output -----------------------------------------------------------------

@pytest.mark.parametrize("layout", list(JSON_LAYOUTS), ids=list(JSON_LAYOUTS))
@pytest.mark.parametrize("target", list(BAD_TARGETS.values()), ids=list(BAD_TARGETS))
def test_bad_target_in_json_is_one_valid_document(target: str, layout: str) -> None:
    code, out, err = cli(*JSON_LAYOUTS[layout](target))
    assert code == 3
    doc = json_document(out)
    assert doc["verdict"] == "unknown"
    assert doc["root_cause"] is None
    assert doc["checks"] == []
    assert doc["error"]
    assert "\n" not in doc["error"]
    assert PASSWORD not in out and PASSWORD not in err
    assert "Traceback" not in out + err


def test_json_error_document_shows_the_masked_target() -> None:
    code, out, _ = cli("--json", f"http://user:{PASSWORD}@www.example.com:99999/")
    assert code == 3
    assert json_document(out)["target"]["input"] == "http://user:***@www.example.com:99999/"


@pytest.mark.parametrize("argv", [
    ["--json", "--timeout", "abc", "bad!host"],
    ["--format", "json", "bad!host"],
    ["--timeout", "1", "--json", "bad!host"],
])
def test_json_error_document_names_the_target_even_after_option_values(argv: list[str]) -> None:
    _, out, _ = cli(*argv)
    assert json_document(out)["target"]["input"] == "bad!host"


def test_json_error_document_hides_a_password_containing_at_sign() -> None:
    _, out, err = cli("--json", "http://user:p@ss-secret@www.example.com:0/")
    assert "ss-secret" not in out + err


def test_ndjson_error_is_one_line() -> None:
    code, out, _ = cli("--format", "ndjson", "bad!host")
    assert code == 3
    assert out.count("\n") == 1
    json_document(out)


# -- bad options ------------------------------------------------------------------------------

@pytest.mark.parametrize("options", list(BAD_OPTIONS.values()), ids=list(BAD_OPTIONS))
def test_bad_option_gives_exit_3_and_one_line(options: list[str]) -> None:
    code, out, err = cli("tcp://127.0.0.1:9", *options)
    assert_one_error_line(code, out, err)


@pytest.mark.parametrize("options", list(BAD_OPTIONS.values()), ids=list(BAD_OPTIONS))
def test_bad_option_before_the_target(options: list[str]) -> None:
    code, out, err = cli(*options, "tcp://127.0.0.1:9")
    assert_one_error_line(code, out, err)


@pytest.mark.parametrize("options", [o for k, o in BAD_OPTIONS.items() if "format" not in k],
                         ids=[k for k in BAD_OPTIONS if "format" not in k])
def test_bad_option_in_json_is_one_valid_document(options: list[str]) -> None:
    code, out, err = cli("--json", f"http://user:{PASSWORD}@127.0.0.1:9/", *options)
    assert code == 3
    doc = json_document(out)
    assert doc["verdict"] == "unknown"
    assert PASSWORD not in out + err
    assert "Traceback" not in out + err


def test_no_arguments_gives_exit_3_and_one_line() -> None:
    assert_one_error_line(*cli())


def test_diagnose_without_target_gives_exit_3_and_one_line() -> None:
    assert_one_error_line(*cli("diagnose"))


def test_unknown_option_gives_exit_3_and_one_line() -> None:
    assert_one_error_line(*cli("tcp://127.0.0.1:9", "--no-such-option"))


def test_family_options_are_exclusive() -> None:
    assert_one_error_line(*cli("tcp://127.0.0.1:9", "-4", "-6"))


# -- netcheck checks --------------------------------------------------------------------------

def test_checks_lists_the_layers_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETCHECK_NO_PLUGINS", "1")
    code, out, err = cli("checks")
    assert code == 0
    assert "Traceback" not in out + err
    headings = [line for line in out.splitlines() if re.match(r"^L\d ", line)]
    assert headings[:4] == ["L1 Physical", "L2 Link", "L3 Network", "L4 Transport"]
    numbers = [int(h[1]) for h in headings]
    assert numbers == sorted(set(numbers))


def test_checks_lists_every_check_under_its_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    from netcheck import registry

    monkeypatch.setenv("NETCHECK_NO_PLUGINS", "1")
    _, out, _ = cli("checks")
    layer = 0
    seen: dict[str, int] = {}
    for line in out.splitlines():
        if re.match(r"^L\d ", line):
            layer = int(line[1])
        elif line.strip():
            seen[line.split()[0]] = layer
    for chk in registry.load().checks:
        assert seen.get(chk.id) == int(chk.layer), chk.id


# -- the real console entry point ----------------------------------------------------------

def _module_run(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NETCHECK_NO_PLUGINS": "1"}
    return subprocess.run([sys.executable, "-m", "netcheck", *argv], capture_output=True,
                          text=True, timeout=60, cwd=REPO, env=env)


def test_version_through_the_console_entry_point() -> None:
    proc = _module_run("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"netcheck {__version__}"


def test_bad_target_exit_code_survives_os_exit() -> None:
    proc = _module_run("a;rm -rf /")
    assert proc.returncode == 3
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr


def test_json_error_is_flushed_before_os_exit() -> None:
    proc = _module_run("--json", f"http://user:{PASSWORD}@www.example.com:0/")
    assert proc.returncode == 3
    doc = json_document(proc.stdout)
    assert doc["verdict"] == "unknown"
    assert PASSWORD not in proc.stdout + proc.stderr


def test_version_in_process_returns_0_and_writes_to_out() -> None:
    code, out, _ = cli("--version")
    assert code == 0
    assert __version__ in out
