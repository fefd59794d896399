"""`netcheck TARGET` in every format of the contract, and a SIGTERM in the middle of a run.

Real runs (a subprocess, as a monitoring system starts it) against listeners on loopback that
the test opens on port 0: nothing leaves the host.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from typing import Iterator

import pytest

from tests.schema import validate_report
from tests.unit.test_render import NAGIOS_LINE
from tests.unit.test_render_junit_prom import check_metrics, validate_junit

PASSWORD = "hunter2"


def netcheck(*argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netcheck", *argv], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture
def tcp_port() -> Iterator[int]:
    """A loopback port that accepts connections (and closes them)."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        server.close()


def test_diagnose_in_junit_validates_against_the_ci_schema(tcp_port: int) -> None:
    target = f"tcp://127.0.0.1:{tcp_port}"
    proc = netcheck(target, "--format", "junit", "--deadline", "10")
    assert proc.returncode in (0, 1), proc.stderr
    validate_junit(proc.stdout)
    root = ET.fromstring(proc.stdout)
    assert root.get("tests") == "1"
    case = root.find(".//testcase")
    assert case is not None and case.get("name") == target
    assert case.find("failure") is None and case.find("error") is None


def test_diagnose_in_prometheus_passes_promtool(tcp_port: int) -> None:
    target = f"tcp://127.0.0.1:{tcp_port}"
    proc = netcheck(target, "--format", "prometheus", "--deadline", "10")
    assert proc.returncode in (0, 1), proc.stderr
    check_metrics(proc.stdout)
    assert f'probe_success{{target="{target}"}} 1.0' in proc.stdout
    assert 'netcheck_check_status{check="transport.tcp",layer="4"' in proc.stdout


@pytest.mark.parametrize("fmt", ["json", "ndjson", "nagios", "junit", "prometheus"])
def test_bad_target_gives_one_masked_document_of_the_format(fmt: str) -> None:
    proc = netcheck(f"http://ann:{PASSWORD}@www.lab.test:99999/", "--format", fmt)
    assert proc.returncode == 3
    assert PASSWORD not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    if fmt in ("json", "ndjson"):
        doc = json.loads(proc.stdout)
        validate_report(doc)
        assert doc["verdict"] == "unknown"
        assert doc["target"]["input"] == "http://ann:***@www.lab.test:99999/"
    elif fmt == "nagios":
        assert NAGIOS_LINE.match(proc.stdout.rstrip("\n")), proc.stdout
        assert proc.stdout.startswith("NETCHECK UNKNOWN - ")
    elif fmt == "junit":
        validate_junit(proc.stdout)
        assert ET.fromstring(proc.stdout).find(".//error") is not None
    else:
        check_metrics(proc.stdout)
        assert "probe_success{" in proc.stdout and '"unknown"} 1.0' in proc.stdout


class SilentHttp:
    """A loopback HTTP server that accepts, reads the request and never answers."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.asked = threading.Event()  # a request arrived: netcheck is at the application layer
        self.conns: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.server.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            self.conns.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        try:
            if conn.recv(4096).startswith((b"GET", b"HEAD")):
                self.asked.set()
        except OSError:
            pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        for conn in self.conns:
            conn.close()
        self.server.close()


@pytest.mark.parametrize("fmt", ["json", "junit"])
def test_sigterm_during_a_diagnosis_leaves_one_whole_document(fmt: str) -> None:
    silent = SilentHttp()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "netcheck", f"http://127.0.0.1:{silent.port}/", "--format",
             fmt, "--timeout", "20", "--deadline", "40"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        try:
            assert silent.asked.wait(20), "netcheck never reached the HTTP request"
            time.sleep(0.2)  # inside the read that would wait for the answer
            assert proc.poll() is None
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    finally:
        silent.close()
    assert proc.returncode == 3, (proc.returncode, err)
    assert "Traceback" not in err
    if fmt == "json":
        doc = json.loads(out)  # exactly one document: loads refuses trailing data
        validate_report(doc)
        assert doc["verdict"] == "unknown" and "SIGTERM" in doc["error"]
        assert doc["target"]["input"] == f"http://127.0.0.1:{silent.port}/"
    else:
        validate_junit(out)
        error = ET.fromstring(out).find(".//error")
        assert error is not None and "SIGTERM" in (error.get("message") or "")


def test_a_sigterm_while_the_document_is_written_waits_for_its_end() -> None:
    from netcheck.cli import SigtermGuard, Terminated

    guard = SigtermGuard()
    before = signal.getsignal(signal.SIGTERM)
    guard.install()
    try:
        with guard.writing():
            signal.raise_signal(signal.SIGTERM)  # handled at once, in this thread
            written = True  # reached: the signal did not cut the block
        assert written and guard.pending
        with pytest.raises(Terminated):
            signal.raise_signal(signal.SIGTERM)
        # While the error document goes out, a second SIGTERM waits as well.
        signal.raise_signal(signal.SIGTERM)
    finally:
        guard.uninstall()
    assert signal.getsignal(signal.SIGTERM) == before
