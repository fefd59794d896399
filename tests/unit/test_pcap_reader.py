"""Reading captures: every flavour tcpdump, tshark and dumpcap write, and every broken file."""

from __future__ import annotations

import gzip
import io
import os
import struct
from pathlib import Path

import pytest

from netcheck.pcap import reader as reader_module
from netcheck.pcap.reader import Capture, CaptureError
from netcheck.pcap.writer import PcapngWriter, PcapWriter, Recorder, TcpScript

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pcap"


def _session() -> Recorder:
    rec = Recorder()
    script = TcpScript(rec, "198.18.1.2", "198.18.2.10", 80, t0=1_700_000_000.123456)
    script.handshake()
    script.send(True, b"GET / HTTP/1.1\r\nHost: www.lab.test\r\n\r\n")
    script.close()
    return rec


def _read(path: Path) -> tuple[Capture, list[tuple]]:
    capture = Capture(str(path))
    packets = [(t, link, bytes(buf[off:off + cap]), cap, wire, n)
               for t, link, buf, off, cap, wire, n in capture.packets()]
    return capture, packets


@pytest.mark.parametrize("nanosecond", [False, True])
@pytest.mark.parametrize("big_endian", [False, True])
def test_pcap_in_both_byte_orders_and_resolutions(tmp_path: Path, nanosecond: bool,
                                                  big_endian: bool) -> None:
    rec = _session()
    path = tmp_path / "x.pcap"
    with open(path, "wb") as fh:
        rec.write_pcap(fh, nanosecond=nanosecond, big_endian=big_endian)
    capture, packets = _read(path)
    assert capture.format == "pcap" and not capture.truncated
    assert [p[2] for p in packets] == [frame for _, frame in rec.frames]
    assert [p[5] for p in packets] == list(range(1, len(rec.frames) + 1))
    t0 = rec.frames[0][0]
    for (ts, _), p in zip(rec.frames, packets):
        assert p[0] == pytest.approx(ts - t0, abs=2e-6)


def test_nanosecond_timestamps_keep_their_precision(tmp_path: Path) -> None:
    path = tmp_path / "ns.pcap"
    with open(path, "wb") as fh:
        writer = PcapWriter(fh, nanosecond=True)
        writer.write(1_700_000_000.0, b"\0" * 60)
        fh.write(struct.pack("<IIII", 1_700_000_000, 123, 60, 60) + b"\0" * 60)
    _, packets = _read(path)
    assert packets[1][0] == pytest.approx(123e-9, abs=1e-12)


def test_pcapng_with_two_interfaces_of_different_link_types() -> None:
    capture, packets = _read(FIXTURES / "two_interfaces.pcapng")
    assert capture.format == "pcapng" and not capture.truncated
    links = {p[1] for p in packets}
    assert links == {1, 113}  # Ethernet (eth0) and Linux cooked (any)
    assert [link for link, _ in capture.interfaces] == [1, 113]
    assert all(p[0] >= 0 for p in packets)


def test_pcapng_sections_in_both_byte_orders_and_time_resolutions(tmp_path: Path) -> None:
    out = io.BytesIO()
    first = PcapngWriter(out)
    eth = first.add_interface(1, "eth0")
    raw = first.add_interface(101, "tun0", tsresol=9)
    # (times near the epoch: a double holds 1.7e9 s to about 0.2 us only)
    first.write(eth, 1000.5, b"\x11" * 60)
    first.write(raw, 1000.500000123, b"\x45" + b"\0" * 19)
    second = PcapngWriter(out, big_endian=True)  # a new section: its own interfaces
    sll2 = second.add_interface(276, "any")
    second.write(sll2, 1001.0, b"\x22" * 40)
    path = tmp_path / "x.pcapng"
    path.write_bytes(out.getvalue())
    capture, packets = _read(path)
    assert [p[1] for p in packets] == [1, 101, 276]
    assert packets[1][0] == pytest.approx(123e-9, abs=1e-9)
    assert packets[2][0] == pytest.approx(0.5, abs=1e-6)
    assert packets[2][2] == b"\x22" * 40


def test_gzip_compressed_capture_is_read_like_wireshark_does(tmp_path: Path) -> None:
    path = tmp_path / "x.pcap.gz"
    path.write_bytes(gzip.compress((FIXTURES / "syn_rst.pcap").read_bytes()))
    capture, packets = _read(path)
    assert capture.compressed and len(packets) == 2


@pytest.mark.parametrize("name, problem", [
    ("truncated.pcap", "ends in the middle of packet 19"),
    ("truncated.pcapng", "ends in the middle of a block after packet 5"),
])
def test_truncated_file_gives_the_packets_before_the_cut(name: str, problem: str) -> None:
    capture, packets = _read(FIXTURES / name)
    assert capture.truncated
    assert problem in capture.problem and f"first {len(packets)} packets" in capture.problem
    assert packets


def test_snaplen_cut_packets_are_counted() -> None:
    capture, packets = _read(FIXTURES / "snaplen_96.pcap")
    assert capture.cut_packets > 0
    assert all(p[3] <= 96 for p in packets)
    assert any(p[4] > p[3] for p in packets)


@pytest.mark.parametrize("content, message", [
    (b"", "is empty (0 bytes): not a capture"),
    (b"\xd4\xc3\xb2\xa1\x02\x00", "pcap file header is cut short (6 of 24 bytes)"),
    (b"\x0a\x0d\x0d\x0a\x1c", "pcapng section header is cut short"),
    (b"\x7fELF\x02\x01\x01" + b"\0" * 40, "(it is an executable)"),
    (b"PK\x03\x04" + b"\0" * 40, "(it is a zip archive)"),
])
def test_bad_files_are_one_clear_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.pcap"
    path.write_bytes(content)
    with pytest.raises(CaptureError) as err:
        Capture(str(path))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_wrong_magic_names_what_the_file_looks_like() -> None:
    with pytest.raises(CaptureError, match="looks like text") as err:
        Capture(str(FIXTURES / "wrong_magic.pcap"))
    assert "a1b2c3d4" in str(err.value) and "0a0d0d0a" in str(err.value)


def test_empty_fixture_and_directory_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="0 bytes"):
        Capture(str(FIXTURES / "empty.pcap"))
    with pytest.raises(CaptureError, match="is a directory"):
        Capture(str(tmp_path))
    with pytest.raises(CaptureError, match="no such file"):
        Capture(str(tmp_path / "nope.pcap"))


def test_unreadable_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "secret.pcap"
    path.write_bytes(b"\0" * 24)

    def denied(*_args: object, **_kw: object) -> None:
        raise PermissionError(13, "Permission denied")

    # We run as root in CI: chmod 000 would not stop us, so the OS answer is simulated.
    monkeypatch.setattr(reader_module, "open", denied, raising=False)
    with pytest.raises(CaptureError, match="not readable"):
        Capture(str(path))


def test_impossible_record_length_stops_with_a_message(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.pcap"
    data = (FIXTURES / "syn_rst.pcap").read_bytes()
    corrupt = data + struct.pack("<IIII", 1, 0, 0x7FFFFFFF, 0x7FFFFFFF) + b"\0" * 100
    path.write_bytes(corrupt)
    capture, packets = _read(path)
    assert len(packets) == 2 and capture.truncated
    assert "impossible (corrupt file)" in capture.problem


def test_reading_is_chunked_not_whole_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    monkeypatch.setattr(reader_module, "CHUNK", 256)  # records straddle many chunks
    rec = Recorder()
    for i in range(50):
        rec.add(1_700_000_000 + i / 10, bytes([i]) * (60 + i * 7))
    path = tmp_path / "x.pcap"
    with open(path, "wb") as fh:
        rec.write_pcap(fh)
    _, packets = _read(path)
    assert [p[2] for p in packets] == [frame for _, frame in rec.frames]
    assert os.path.getsize(path) > 256 * 10
