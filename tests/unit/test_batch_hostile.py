"""What a profile says cannot leak or wreck the batch's outputs, and SIGTERM closes them.

- A password in a rejected profile line (bad port, unknown key, duplicate, missing cafile…)
  showed unmasked in json, ndjson, junit and as Prometheus label values.
- Control characters in TOML names reached stderr and the terminal raw (an OSC sequence
  retitles the terminal, ESC[2J clears it).
- SIGTERM during ``--format json|junit`` left half a document; SIGINT was already handled.

Every run is on loopback: rejected lines send nothing, the rest go to ports this test owns.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterator

import pytest

from netcheck import cli
from tests.schema import validate_report

ROOT = Path(__file__).resolve().parents[2]
FORMATS = ["text", "json", "ndjson", "junit", "nagios", "prometheus"]
SECRET = "hunter2"
CONTROLS = ("\x1b", "\x07", "\x9b", "\r")


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # never listened on: the kernel answers RST
    return port


def run_batch(path: Path, fmt: str, *extra: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = cli.run(["batch", str(path), "--format", fmt, "--timeout", "1", *extra], out, err)
    return rc, out.getvalue(), err.getvalue()


def leaky_profile(tmp_path: Path) -> Path:
    """Every kind of rejected line, each carrying the password, and two that run."""
    shut = free_port()
    path = tmp_path / "leaky.toml"
    path.write_text(f"""\
[defaults]
port = "https://ann:{SECRET}@198.18.2.10/"
[g]
bad_port = "https://ann:{SECRET}@198.18.2.10:99999/"
bare = "ann:{SECRET}@198.18.2.10:99999"
unknown = {{ target = "https://ann:{SECRET}@198.18.2.10/", colour = "red" }}
missing_ca = {{ target = "https://ann:{SECRET}@198.18.2.10/", cafile = "/nonexistent.pem" }}
dup = "https://ann:{SECRET}@198.18.2.10:99999/"
dup = "https://ann:{SECRET}@198.18.2.10:99999/"
no_target = {{ port = 5, note = "https://ann:{SECRET}@198.18.2.10/" }}
"https://ann:{SECRET}@198.18.2.10/" = "198.18.2.10:99999"
spaced = "https://ann:{SECRET}@exa mple/"
token = "https://198.18.2.10/?token={SECRET}&x= y"
runs = "https://ann:{SECRET}@127.0.0.1:{shut}/"
runs_table = {{ target = "tcp://ann:{SECRET}@127.0.0.1:{shut}", timeout = 1 }}
""")
    return path


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_format_shows_a_password_from_the_profile(tmp_path: Path, fmt: str) -> None:
    rc, out, err = run_batch(leaky_profile(tmp_path), fmt, "--only", "transport.tcp")
    assert rc == 2, err  # the two that run are refused: broken
    assert SECRET not in out, [line for line in out.splitlines() if SECRET in line][:3]
    assert SECRET not in err, [line for line in err.splitlines() if SECRET in line][:3]
    assert "ann:***@" in out + err  # masked, not dropped: the line can still be found
    if fmt == "json":
        for result in json.loads(out)["results"]:
            validate_report(result)


def test_stdin_lines_show_no_password_either(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = (f"https://ann:{SECRET}@198.18.2.10:99999/\nann:{SECRET}@198.18.2.10:99999\n"
             f"https://ann:{SECRET}@exa mple/\nhttps://ann:{SECRET}@198.18.2.10/\x1b[2J\n")
    for fmt in FORMATS:
        monkeypatch.setattr("sys.stdin", io.StringIO(lines))
        out, err = io.StringIO(), io.StringIO()
        assert cli.run(["batch", "-", "--format", fmt], out, err) == 3
        assert SECRET not in out.getvalue() + err.getvalue(), fmt
        assert not any(c in out.getvalue() + err.getvalue() for c in CONTROLS), fmt


def hostile_names_profile(tmp_path: Path) -> Path:
    path = tmp_path / "names.toml"
    path.write_text(
        '["lab\\u001b[2J"]\n'
        '"title\\u001b]0;owned\\u0007" = "198.18.2.10:99999"\n'
        '"csi\\u009b31m" = { target = "198.18.2.10", colour = 1 }\n'
        '"cr\\rfake line" = "198.18.2.10:99999"\n'
        '"pipe|perf=1" = "198.18.2.10:99999"\n'
        '[g]\n'
        'x = { target = "198.18.2.10", "key\\u001b[1m" = 1 }\n'
        'y = { target = "198.18.2.10", cafile = "ca\\u001b[31m.pem" }\n')
    return path


def _printable_everywhere(value: object) -> bool:
    if isinstance(value, str):
        return not any(c in value for c in CONTROLS)
    if isinstance(value, dict):
        return all(_printable_everywhere(v) for v in value.values())
    if isinstance(value, list):
        return all(_printable_everywhere(v) for v in value)
    return True


@pytest.mark.parametrize("fmt", FORMATS)
def test_control_characters_in_names_are_escaped_in_every_output(tmp_path: Path,
                                                                 fmt: str) -> None:
    rc, out, err = run_batch(hostile_names_profile(tmp_path), fmt)
    assert rc == 3, err
    for c in CONTROLS:
        assert c not in out, (fmt, c)
        assert c not in err, (fmt, c)
    assert "\\x1b]0;owned\\x07" in out + err  # shown escaped, so the name can still be found
    if fmt in ("json", "ndjson"):
        docs = json.loads(out)["results"] if fmt == "json" else \
            [json.loads(line) for line in out.splitlines()]
        assert docs and all(_printable_everywhere(d) for d in docs)
    if fmt == "nagios":
        assert out.count("|") == 1 and out.count("\n") == 1  # the name cannot forge perfdata


# -- SIGTERM --------------------------------------------------------------------------------

@pytest.fixture
def slow_port() -> Iterator[int]:
    """A loopback port whose accept queue is full: a SYN to it is dropped, a connect waits."""
    hold = socket.socket()
    hold.bind(("127.0.0.1", 0))
    hold.listen(0)
    port = hold.getsockname()[1]
    fillers = []
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    time.sleep(0.2)
    yield port
    for s in fillers:
        s.close()
    hold.close()


@pytest.fixture
def started_listener() -> Iterator[tuple[int, threading.Event]]:
    """A loopback listener that says when the batch's first connect has arrived."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.settimeout(0.2)
    arrived, stop = threading.Event(), threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            arrived.set()
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock.getsockname()[1], arrived
    stop.set()
    thread.join(2)
    sock.close()


@pytest.mark.parametrize("fmt", ["json", "junit"])
def test_sigterm_mid_run_still_closes_the_document(tmp_path: Path, fmt: str, slow_port: int,
                                                   started_listener: tuple[int, threading.Event]
                                                   ) -> None:
    fast, arrived = started_listener
    path = tmp_path / "slow.toml"
    path.write_text(f'[first]\nup = "tcp://127.0.0.1:{fast}"\n[slow]\n'
                    + "".join(f'h{i} = "tcp://127.0.0.1:{slow_port}"\n' for i in range(20)))
    proc = subprocess.Popen([sys.executable, "-m", "netcheck", "batch", str(path), "--format", fmt,
                             "--only", "transport.tcp", "--timeout", "5", "--concurrency", "1"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert arrived.wait(30), "the batch never connected"
        time.sleep(0.5)  # now inside a 5 s connect to the slow port
        started = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert time.monotonic() - started < 5, "SIGTERM did not stop the run"
    assert "terminated (SIGTERM)" in err, err[-2000:]
    assert proc.returncode == 3, err[-2000:]  # nothing bad found, but the run is incomplete
    if fmt == "json":
        doc = json.loads(out)
        assert doc["summary"]["ok"] >= 1 and len(doc["results"]) == sum(
            doc["summary"][v] for v in ("ok", "degraded", "broken", "unknown"))
        for result in doc["results"]:
            validate_report(result)
    else:
        root = ET.fromstring(out)
        assert root.tag == "testsuites" and int(root.get("tests", "0")) >= 1
