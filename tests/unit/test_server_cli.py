"""``netcheck server`` on bad input: one clear line (or one JSON document, ``mode: "server"``)
and exit status 3, no traceback, and nothing run — above all no command line built from a
unit name with shell metacharacters."""

from __future__ import annotations

import json
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest

from netcheck.cli import run
from tests.schema import validate_report

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def server(*args: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    rc = run(["server", *args], out=out, err=err)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture
def nothing_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad input is refused before any probe: no process may be started."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a process was started for bad input: {args!r}")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(subprocess, "run", refuse)


BAD = [
    (["--port", "https"], "--port 'https' is not a number"),
    (["--port", "70000"], "from 1 to 65535"),
    (["--port", "0"], "from 1 to 65535"),
    (["--port=-1"], "from 1 to 65535"),
    ([], "--port is required"),
    (["--port", "443", "--proto", "sctp"], "tcp or udp"),
    (["--port", "443", "--service", "nginx; rm -rf /"], "unit name"),
    (["--port", "443", "--service", "$(reboot)"], "unit name"),
    (["--port", "443", "--service=--help"], "must not start with '-'"),
    (["--port", "443", "--service", "nginx`id`.service"], "unit name"),
    (["--port", "443", "--process", "nginx && reboot"], "--process"),
    (["--port", "443", "--client", "www.lab.test"], "not an IP address"),
    (["--port", "443", "--client", "198.18.1.300"], "not an IP address"),
    (["--port", "443", "--request-id", "a b"], "--request-id"),
    (["--port", "443", "--request-id", "x" * 200], "--request-id"),
    (["--port", "443", "--since", "yesterday"], "not a duration"),
    (["--port", "443", "--since", "0"], "more than 0 s"),
    (["--port", "443", "--since", "9999d"], "at most 366 days"),
    (["--port", "443", "--log", "/no/such/access.log"], "no such file"),
    (["--port", "443", "--log", "/etc"], "is a directory"),
    (["--port", "443", "--log", str(FIXTURES / "logs" / "binary.log")], "binary"),
    (["--port", "443", "--client", "198.18.1.2", "-6"], "IPv4, but -6"),
    (["--port", "443", "--interface", "eth0;reboot"], "not a valid interface name"),
]


@pytest.mark.usefixtures("nothing_runs")
@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a)[:40] for a, _ in BAD])
def test_bad_input_is_one_line_and_exit_3(args: list[str], message: str) -> None:
    rc, out, err = server(*args)
    assert rc == 3 and out == ""
    assert err.startswith("netcheck: error: ") and err.count("\n") == 1, err
    assert message in err and "Traceback" not in err


@pytest.mark.usefixtures("nothing_runs")
@pytest.mark.parametrize("args,message", BAD[:8], ids=[" ".join(a)[:40] for a, _ in BAD[:8]])
def test_bad_input_in_json_is_one_server_document(args: list[str], message: str) -> None:
    rc, out, err = server(*args, "--format", "json")
    assert rc == 3 and err == ""
    doc = json.loads(out)
    validate_report(doc)
    assert doc["mode"] == "server" and doc["verdict"] == "unknown"
    assert message in doc["error"] and doc["target"]["input"].startswith("server")


def test_bad_input_in_nagios_is_an_unknown_line() -> None:
    rc, out, _ = server("--port", "x", "--format", "nagios")
    assert rc == 3 and out.startswith("NETCHECK UNKNOWN - --port")


def test_formats_server_mode_does_not_have() -> None:
    rc, _, err = server("--port", "443", "--format", "junit")
    assert rc == 3 and "not available for netcheck server" in err


def test_help_lists_the_server_options() -> None:
    out = StringIO()
    assert run(["server", "--help"], out=out, err=StringIO()) == 0
    for option in ("--port", "--proto", "--service", "--process", "--log", "--client",
                   "--request-id", "--since"):
        assert option in out.getvalue()


def test_options_before_the_command_are_understood() -> None:
    rc, _, err = server("--port", "443", "--since", "x1")
    assert rc == 3 and "--since" in err
    out, err2 = StringIO(), StringIO()
    # `netcheck --log X server ...`: --log takes a value, so `server` is still the command.
    assert run(["--log", "/no/file", "server", "--port", "1"], out=out, err=err2) == 3
    assert "--log '/no/file': no such file" in err2.getvalue()


@pytest.mark.usefixtures("nothing_runs")
def test_a_value_that_looks_like_an_option_is_refused_by_argparse() -> None:
    # argparse stops `--service --help` before netcheck server sees it: still one line, 3.
    rc, out, err = server("--port", "443", "--service", "--help")
    assert rc == 3 and out == "" and err == "netcheck: error: argument --service: expected " \
        "one argument\n"


def test_bad_input_imports_nothing_heavy() -> None:
    code = ("import sys, io\nfrom netcheck.cli import run\n"
            "run(['server', '--port', 'x'], out=io.StringIO(), err=io.StringIO())\n"
            "print(sorted(m for m in ('rich', 'pyroute2', 'dns', 'psutil') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout.strip() == "[]", proc.stderr
