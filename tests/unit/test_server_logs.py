"""Finding the client's request in the server's logs: formats, windows, rotation, and bounds
(huge, binary, endless-line and unreadable logs)."""

from __future__ import annotations

import gzip
import os
import time
from pathlib import Path

import pytest

from netcheck.probes import logs
from netcheck.probes.logs import access_time, parse_access, parse_error, scan_access, scan_errors

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "logs"
NGINX = FIXTURES / "nginx-access.log"
RECORDED_AT = access_time(NGINX.read_bytes().splitlines()[0])
BEFORE = (RECORDED_AT or 0) - 3600


def line(when: float, client: str = "198.18.1.2", path: str = "/", status: int = 200,
         agent: str = "curl/7.88.1") -> str:
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(when))
    return f'{client} - - [{stamp}] "GET {path} HTTP/1.1" {status} 12 "-" "{agent}" 0.001\n'


# -- formats -----------------------------------------------------------------------------------

def test_nginx_line_parses() -> None:
    raw = NGINX.read_bytes().splitlines()[0]
    parsed = parse_access(raw, "a.log")
    assert parsed.client == "198.18.1.2" and parsed.status == 200
    assert parsed.request == "GET / HTTP/1.1"
    assert parsed.agent == "netcheck/0.1.0 (+5f2a9c1e7b30)"
    assert parsed.time == RECORDED_AT


def test_apache_vhost_combined_line_of_the_slides_parses() -> None:
    raw = (FIXTURES / "apache-vhost-access.log").read_bytes().splitlines()[0]
    parsed = parse_access(raw)
    assert parsed.client == "198.18.1.2" and parsed.status == 302
    assert parsed.agent == "Wget/1.21"


def test_ipv4_mapped_client_is_the_ipv4_client() -> None:
    parsed = parse_access(line(0, client="::ffff:198.18.1.2").encode())
    assert parsed.client == "198.18.1.2"


# -- finding the request -------------------------------------------------------------------------

def test_request_found_by_id() -> None:
    scan = scan_access(str(NGINX), BEFORE, request_id="5f2a9c1e7b30")
    assert scan.matched == 1 and scan.matches[0].status == 200
    assert scan.matches[0].client == "198.18.1.2"


def test_requests_found_by_client_and_ipv6_told_apart() -> None:
    scan = scan_access(str(NGINX), BEFORE, client="2001:db8:1::2")
    assert scan.matched == 1 and scan.matches[0].agent == "Wget/1.21.3"
    v4 = scan_access(str(NGINX), BEFORE, client="198.18.1.2")
    assert v4.matched == 8


def test_id_and_client_must_both_match() -> None:
    assert scan_access(str(NGINX), BEFORE, "5f2a9c1e7b30", "2001:db8:1::2").matched == 0
    assert scan_access(str(NGINX), BEFORE, "5f2a9c1e7b30", "198.18.1.2").matched == 1


def test_a_client_is_not_a_prefix_of_another(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    now = time.time()
    log.write_text(line(now, "198.18.1.23") + line(now, "198.18.1.2", "/mine"))
    scan = scan_access(str(log), now - 60, client="198.18.1.2")
    assert scan.matched == 1 and scan.matches[0].request == "GET /mine HTTP/1.1"


def test_statuses_and_5xx_are_counted() -> None:
    scan = scan_access(str(NGINX), BEFORE)
    assert scan.requests == 9
    assert scan.statuses == {"2xx": 2, "3xx": 3, "4xx": 1, "5xx": 3}
    assert scan.server_error_count == 3 and scan.server_errors[-1].status == 503
    burst = scan_access(str(NGINX), BEFORE, request_id="9c03e7d1aa42")
    assert burst.matched == 3 and burst.matched_5xx == 3


def test_lines_before_the_window_are_left_out() -> None:
    scan = scan_access(str(NGINX), (RECORDED_AT or 0) + 1, request_id="5f2a9c1e7b30")
    assert scan.matched == 0 and scan.requests == 0


# -- rotation ----------------------------------------------------------------------------------

def _rotated(tmp_path: Path, now: float) -> Path:
    log = tmp_path / "access.log"
    log.write_text(line(now - 60) + line(now - 30))
    (tmp_path / "access.log.1").write_text(line(now - 7200) + line(now - 3000, path="/one"))
    with gzip.open(tmp_path / "access.log.2.gz", "wt") as gz:
        gz.write(line(now - 90000) + line(now - 80000, agent="netcheck/0.1.0 (+aaaa1111bbbb)"))
    return log


def test_older_rotated_files_are_read_when_the_window_reaches_them(tmp_path: Path) -> None:
    now = time.time()
    log = _rotated(tmp_path, now)
    scan = scan_access(str(log), now - 2 * 86400, request_id="aaaa1111bbbb")
    assert scan.matched == 1
    assert [Path(f.path).name for f in scan.files] == ["access.log", "access.log.1",
                                                        "access.log.2.gz"]
    assert scan.requests == 6


def test_rotated_files_are_not_read_when_the_current_one_covers_the_window(
        tmp_path: Path) -> None:
    now = time.time()
    log = _rotated(tmp_path, now)
    log.write_text(line(now - 900) + line(now - 60) + line(now - 30))
    scan = scan_access(str(log), now - 600)
    assert [Path(f.path).name for f in scan.files] == ["access.log"]
    assert scan.requests == 2


def test_the_previous_file_is_looked_into_when_the_window_starts_before_the_current_one(
        tmp_path: Path) -> None:
    now = time.time()
    log = _rotated(tmp_path, now)  # access.log starts 60 s ago; the window is 10 min
    scan = scan_access(str(log), now - 600)
    assert [Path(f.path).name for f in scan.files] == ["access.log", "access.log.1"]
    assert scan.requests == 2


def test_a_gzip_log_is_read_as_given(tmp_path: Path) -> None:
    now = time.time()
    _rotated(tmp_path, now)
    scan = scan_access(str(tmp_path / "access.log.2.gz"), now - 2 * 86400,
                       request_id="aaaa1111bbbb")
    assert scan.matched == 1 and scan.files[0].gzip


def test_several_virtual_hosts_logs_are_searched_together(tmp_path: Path) -> None:
    now = time.time()
    (tmp_path / "a-access.log").write_text(line(now - 5))
    (tmp_path / "b-access.log").write_text(line(now - 5, agent="netcheck/0.1.0 (+bbbb2222cccc)"))
    scan = scan_access([str(tmp_path / "a-access.log"), str(tmp_path / "b-access.log")],
                       now - 60, request_id="bbbb2222cccc")
    assert scan.matched == 1 and scan.matches[0].file.endswith("b-access.log")
    assert scan.requests == 2


# -- bounds ------------------------------------------------------------------------------------

def test_a_huge_log_is_bisected_not_read(tmp_path: Path) -> None:
    """300 MB of old requests, then the recent ones: only the end is read."""
    log = tmp_path / "access.log"
    now = time.time()
    old = "".join(line(now - 86400 + i) for i in range(5000)).encode()
    with open(log, "wb") as fh:
        for _ in range(300 * (1 << 20) // len(old)):
            fh.write(old)
        fh.write(line(now - 5, agent="netcheck/0.1.0 (+cafe0000beef)").encode())
    assert log.stat().st_size > 290 << 20
    start = time.monotonic()
    scan = scan_access(str(log), now - 600, request_id="cafe0000beef")
    elapsed = time.monotonic() - start
    assert scan.matched == 1
    assert sum(f.bytes_read for f in scan.files) < 1 << 20
    assert elapsed < 2.0, elapsed


def test_a_huge_log_without_timestamps_reads_only_its_tail_within_the_budget(
        tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    block = (b"no timestamp here, just text\n" * 40000)
    with open(log, "wb") as fh:
        for _ in range(40):
            fh.write(block)
    scan = scan_access(str(log), time.time() - 600, client="198.18.1.2", max_bytes=8 << 20)
    assert sum(f.bytes_read for f in scan.files) <= (8 << 20) + logs.BLOCK
    assert scan.stopped and "only its last 8 MiB" in scan.stopped
    assert not scan.parsed_any


def test_the_time_budget_stops_the_reading(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    now = time.time()
    log.write_text("".join(line(now - 10) for _ in range(50000)))
    scan = scan_access(str(log), now - 600, client="198.18.1.2",
                       deadline=time.monotonic() - 1)
    assert scan.stopped and "time budget" in scan.stopped


def test_an_endless_line_is_cut_and_the_next_lines_still_found(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    now = time.time()
    with open(log, "wb") as fh:
        fh.write(line(now - 20).encode())
        fh.write(b"x" * (5 << 20) + b"\n")
        fh.write(line(now - 10, agent="netcheck/0.1.0 (+d00d5eed1234)").encode())
    scan = scan_access(str(log), now - 600, request_id="d00d5eed1234")
    assert scan.matched == 1


def test_binary_and_broken_gzip_files_are_not_logs(tmp_path: Path) -> None:
    assert "binary" in (logs.sniff_binary(str(FIXTURES / "binary.log")) or "")
    broken = tmp_path / "access.log.2.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00garbage")
    assert "gzip" in (logs.sniff_binary(str(broken)) or "")
    assert logs.sniff_binary(str(NGINX)) is None


def test_an_unreadable_log_is_an_error_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(path: str) -> None:
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(logs, "_open", denied)
    scan = scan_access("/var/log/nginx/access.log", 0.0, request_id="abcd1234")
    assert scan.error and "Permission denied" in scan.error


# -- error logs --------------------------------------------------------------------------------

def test_nginx_upstream_errors_count_a_missing_file_does_not() -> None:
    scan = scan_errors(str(FIXTURES / "nginx-error-upstream.log"), 0.0)
    assert scan.count == 2 and scan.client_caused == 1
    assert [ln.level for ln in scan.lines] == ["crit", "error"]
    mine = scan_errors(str(FIXTURES / "nginx-error-upstream.log"), 0.0, client="198.18.1.2")
    assert mine.count == 1 and "php8.2-fpm.sock" in mine.lines[0].text


def test_the_404_of_the_recorded_nginx_is_client_caused() -> None:
    scan = scan_errors(str(FIXTURES / "nginx-error.log"), 0.0)
    assert scan.count == 0 and scan.client_caused == 1


def test_apache_error_lines_parse_with_their_client() -> None:
    raw = (FIXTURES / "apache-error.log").read_bytes().splitlines()[2]
    parsed = parse_error(raw)
    assert parsed is not None and parsed.level == "error"
    assert parsed.client == "2001:db8:1::2"
    scan = scan_errors(str(FIXTURES / "apache-error.log"), 0.0, client="2001:db8:1::2")
    assert scan.count == 2
    assert scan_errors(str(FIXTURES / "apache-error.log"), 0.0).client_caused == 1


# -- where the logs are ------------------------------------------------------------------------

def test_logs_held_open_by_the_service_are_found(tmp_path: Path) -> None:
    logdir = tmp_path / "var" / "log" / "nginx"
    logdir.mkdir(parents=True)
    for name in ("access.log", "error.log", "other.txt"):
        (logdir / name).write_text("")
    fd = tmp_path / "proc" / "812" / "fd"
    fd.mkdir(parents=True)
    os.symlink(logdir / "access.log", fd / "3")
    os.symlink(logdir / "error.log", fd / "4")
    os.symlink(logdir / "other.txt", fd / "5")
    os.symlink("socket:[1234]", fd / "6")
    found = logs.open_log_files([812, 999], str(tmp_path / "proc"))
    assert sorted(Path(p).name for p in found) == ["access.log", "error.log"]
    assert [logs.classify(p) for p in sorted(found)] == ["access", "error"]


def test_journal_lines_are_searched(monkeypatch: pytest.MonkeyPatch) -> None:
    from netcheck.probes import systemd

    lines = ['2026-11-22T02:43:18+0000 www app[9]: 198.18.1.2 "GET / HTTP/1.1" 200 '
             '"netcheck/0.1.0 (+5f2a9c1e7b30)"',
             '2026-11-22T02:43:19+0000 www app[9]: 198.18.1.20 "GET / HTTP/1.1" 503 "curl"']
    calls = []

    def fake(unit: str, since: str, lines_: int = 10, timeout: float = 2.0,
             priority: str | None = None, max_bytes: int = 0) -> list[str]:
        calls.append((unit, priority))
        return [] if priority else lines

    monkeypatch.setattr(systemd, "journal", fake)
    scan = logs.scan_journal("app.service", 0.0, None, "198.18.1.2")
    assert scan.matched == 1 and "5f2a9c1e7b30" in scan.matches[0]
    assert calls == [("app.service", None), ("app.service", "err")]
