"""Probes return reason codes and facts; the checks word them (issue 17).

For each probe: the code it records, and the check's words for it in English (as before the
codes, so the evidence and summaries keep their text), Spanish and Catalan.
"""

from __future__ import annotations

import struct
import sys
import types
from typing import Any

import pytest
from netcheck.checks.transport import _owners_error, _scan_error

from netcheck import i18n
from netcheck.probes import nmapscan, sockets


def _words(word: Any, *args: Any) -> dict[str, str]:
    out = {}
    for lang in i18n.LANGUAGES:
        with i18n.language(lang):
            out[lang] = word(*args)
    return out


def _socket() -> sockets.SocketInfo:
    return sockets.SocketInfo("tcp", 4, "ESTABLISHED", "198.18.1.2", 45678, "198.18.2.10", 22)


# -- sockets ---------------------------------------------------------------------------------

def test_sockets_without_psutil_record_the_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil -> ImportError
    snap = sockets.with_owners([_socket()])
    assert snap.error == sockets.NO_PSUTIL and snap.error_detail is None
    assert _words(_owners_error, snap) == {
        "en": "install psutil to name the processes that own these sockets",
        "es": "instala psutil para nombrar los procesos a los que pertenecen estos sockets",
        "ca": "instal·la psutil per anomenar els processos a qui pertanyen aquests sòcols"}


def test_sockets_unreadable_owners_keep_the_os_error(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("psutil")

    class AccessDenied(Exception):
        pass

    def net_connections(kind: str) -> list[Any]:
        raise OSError(24, "Too many open files")

    fake.AccessDenied = AccessDenied  # type: ignore[attr-defined]
    fake.net_connections = net_connections  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "psutil", fake)
    snap = sockets.with_owners([_socket()])
    assert snap.error == sockets.OWNERS_UNREADABLE
    assert snap.error_detail == "[Errno 24] Too many open files"
    assert _words(_owners_error, snap) == {
        "en": "cannot map sockets to processes: [Errno 24] Too many open files",
        "es": "no se pueden asociar los sockets a sus procesos: [Errno 24] Too many open files",
        "ca": "no es poden associar els sòcols als seus processos: [Errno 24] Too many open "
              "files"}


# -- nmap ------------------------------------------------------------------------------------

def _fake_nmap(monkeypatch: pytest.MonkeyPatch, scan: Any) -> None:
    """python-nmap replaced: PortScanner.scan does what ``scan`` does."""
    fake = types.ModuleType("nmap")

    class PortScannerError(Exception):
        pass

    class PortScannerTimeout(Exception):
        pass

    class PortScanner:
        def __init__(self, nmap_search_path: tuple[str, ...]) -> None:
            pass

        def scan(self, **kwargs: Any) -> Any:
            return scan(fake)

        def nmap_version(self) -> tuple[int, int]:
            return (7, 93)

    fake.PortScannerError = PortScannerError  # type: ignore[attr-defined]
    fake.PortScannerTimeout = PortScannerTimeout  # type: ignore[attr-defined]
    fake.PortScanner = PortScanner  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "nmap", fake)
    monkeypatch.setattr(nmapscan, "nmap_path", lambda: "/usr/bin/nmap")


def _raise(name: str, text: str = "") -> Any:
    def scan(fake: Any) -> Any:
        raise getattr(fake, name)(text)
    return scan


def _scanned(monkeypatch: pytest.MonkeyPatch, scan: Any) -> nmapscan.ServiceScan:
    _fake_nmap(monkeypatch, scan)
    return nmapscan.scan("198.18.2.10", 22, privileged=False, time_left=4.25)


def test_nmap_missing_and_python_nmap_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nmapscan, "nmap_path", lambda: None)
    result = nmapscan.scan("198.18.2.10", 22, privileged=False, time_left=5.0)
    assert result.error == nmapscan.NMAP_MISSING
    assert _words(_scan_error, result) == {"en": "nmap is not installed",
                                           "es": "nmap no está instalado",
                                           "ca": "nmap no està instal·lat"}
    monkeypatch.setattr(nmapscan, "nmap_path", lambda: "/usr/bin/nmap")
    monkeypatch.setitem(sys.modules, "nmap", None)
    result = nmapscan.scan("198.18.2.10", 22, privileged=False, time_left=5.0)
    assert result.error == nmapscan.PYTHON_NMAP_MISSING
    assert _words(_scan_error, result) == {"en": "python-nmap is not installed",
                                           "es": "python-nmap no está instalado",
                                           "ca": "python-nmap no està instal·lat"}


def test_nmap_timeout_and_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    result = _scanned(monkeypatch, _raise("PortScannerTimeout"))
    assert (result.error, result.time_limit_s) == (nmapscan.TIMED_OUT, 4.25)
    assert _words(_scan_error, result) == {"en": "nmap did not finish within 4.2 s",
                                           "es": "nmap no terminó en 4.2 s",
                                           "ca": "nmap no ha acabat en 4.2 s"}
    result = _scanned(monkeypatch, _raise("PortScannerError", "  Failed to open device  \n"))
    assert (result.error, result.error_detail) == (nmapscan.NMAP_FAILED,
                                                   "Failed to open device")
    assert _words(_scan_error, result) == {"en": "nmap failed: Failed to open device",
                                           "es": "nmap ha fallado: Failed to open device",
                                           "ca": "nmap ha fallat: Failed to open device"}
    # The evidence carries the words where the probe's sentence was, not the code's facts.
    ev = result.to_json("nmap failed: Failed to open device")
    assert ev["error"] == "nmap failed: Failed to open device" and "error_detail" not in ev
    assert list(ev)[-2:] == ["error", "line"]


def test_nmap_no_result_and_no_state(monkeypatch: pytest.MonkeyPatch) -> None:
    result = _scanned(monkeypatch, lambda fake: {"nmap": {}, "scan": {}})
    assert (result.error, result.error_detail) == (nmapscan.NO_RESULT, None)
    assert _words(_scan_error, result) == {
        "en": "nmap reported no result for 198.18.2.10",
        "es": "nmap no dio ningún resultado para 198.18.2.10",
        "ca": "nmap no ha donat cap resultat per a 198.18.2.10"}
    errors = {"nmap": {"scaninfo": {"error": ["Failed to resolve", "x"]}}, "scan": {}}
    result = _scanned(monkeypatch, lambda fake: errors)
    assert (result.error, result.error_detail) == (nmapscan.NO_RESULT, "Failed to resolve x")
    assert _words(_scan_error, result)["en"] == (
        "nmap reported no result for 198.18.2.10: Failed to resolve x")
    assert _words(_scan_error, result)["ca"] == (
        "nmap no ha donat cap resultat per a 198.18.2.10: Failed to resolve x")
    result = _scanned(monkeypatch, lambda fake: {"nmap": {}, "scan": {"198.18.2.10": {"tcp": {}}}})
    assert result.error == nmapscan.NO_STATE
    assert _words(_scan_error, result) == {
        "en": "nmap gave no state for the port (host timeout?)",
        "es": "nmap no dio ningún estado para el puerto (¿se agotó el tiempo del equipo?)",
        "ca": "nmap no ha donat cap estat per al port (s'ha esgotat el temps de l'equip?)"}


# -- neighbour (NDP) -------------------------------------------------------------------------

class _FakeRawSocket:
    """An ICMPv6 raw socket whose only packet is the neighbour advertisement given."""

    def __init__(self, advert: bytes) -> None:
        self.advert = advert

    def __enter__(self) -> _FakeRawSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def setsockopt(self, *args: Any) -> None:
        pass

    def sendto(self, data: bytes, address: Any) -> int:
        return len(data)

    def settimeout(self, value: float) -> None:
        pass

    def recv(self, size: int) -> bytes:
        return self.advert


def test_ndp_advert_without_link_layer_option(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from netcheck.checks.network.gateways import _wire_answer

    from netcheck.probes import neighbour

    target = "2001:db8:1::1"
    na = struct.pack("!BBHI16s", 136, 0, 0, 0x60000000, socket.inet_pton(socket.AF_INET6, target))
    mac_option = bytes([2, 1]) + bytes.fromhex("02000000aa01")
    for advert, answer in ((na, neighbour.NO_LLADDR_OPTION), (na + mac_option,
                                                               "02:00:00:00:aa:01")):
        monkeypatch.setattr(socket, "socket", lambda *args, a=advert: _FakeRawSocket(a))
        assert neighbour.ndp_probe("eth0", 2, "02:00:00:00:00:01", target, 1.0) == answer
    assert _words(_wire_answer, neighbour.NO_LLADDR_OPTION) == {
        "en": "(no link-layer option)", "es": "(sin opción de dirección de enlace)",
        "ca": "(sense opció d'adreça d'enllaç)"}
    assert _words(_wire_answer, "02:00:00:00:aa:01")["es"] == "02:00:00:00:aa:01"
    assert _wire_answer(None) is None
