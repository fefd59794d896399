"""netcheck.safefile: a file written as root never goes through a planted symbolic link."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from netcheck.safefile import UnsafeWriteError, open_for_write


def _entries(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


def test_symlink_to_a_victim_is_refused_and_the_victim_kept(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"root:secret\n")
    (tmp_path / "out.pcap").symlink_to(victim)
    with pytest.raises(UnsafeWriteError) as info:
        with open_for_write(tmp_path / "out.pcap") as fh:
            fh.write(b"overwritten")
    assert "symbolic link" in info.value.strerror
    assert victim.read_bytes() == b"root:secret\n"
    assert (tmp_path / "out.pcap").is_symlink()
    assert _entries(tmp_path) == {"victim", "out.pcap"}  # no temporary file left behind


def test_dangling_symlink_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    (tmp_path / "out.pcap").symlink_to(tmp_path / "would-be-created")
    with pytest.raises(UnsafeWriteError):
        open_for_write(tmp_path / "out.pcap")
    assert not (tmp_path / "would-be-created").exists()


def test_link_planted_while_writing_is_refused(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    target = tmp_path / "out.pcap"
    with pytest.raises(UnsafeWriteError):
        with open_for_write(target) as fh:
            fh.write(b"data")
            target.symlink_to(victim)  # the race: a link appears after the first check
    assert victim.read_bytes() == b"keep"
    assert _entries(tmp_path) == {"victim", "out.pcap"}


def test_another_users_file_is_not_overwritten(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give a file to another user")
    other = tmp_path / "theirs.pcap"
    other.write_bytes(b"theirs")
    os.chown(other, 65534, 65534)
    with pytest.raises(UnsafeWriteError) as info:
        open_for_write(other)
    assert "another user" in info.value.strerror
    assert other.read_bytes() == b"theirs"


def test_directory_and_fifo_are_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    for name in ("fifo", "dir"):
        with pytest.raises(UnsafeWriteError):
            open_for_write(tmp_path / name)


def test_new_file_appears_whole_when_closed(tmp_path: Path) -> None:
    target = tmp_path / "out.pcap"
    with open_for_write(target) as fh:
        fh.write(b"a" * 100_000)
        assert not target.exists()  # written under a temporary name until closed
    assert target.read_bytes() == b"a" * 100_000
    assert _entries(tmp_path) == {"out.pcap"}


def test_own_file_is_replaced(tmp_path: Path) -> None:
    target = tmp_path / "out.pcap"
    target.write_bytes(b"old")
    with open_for_write(target) as fh:
        fh.write(b"new")
    assert target.read_bytes() == b"new"


def test_error_inside_the_block_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.pcap"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with open_for_write(target) as fh:
            fh.write(b"half")
            raise RuntimeError("capture failed")
    assert target.read_bytes() == b"old"
    assert _entries(tmp_path) == {"out.pcap"}


def test_missing_directory_is_an_ordinary_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        open_for_write(tmp_path / "nowhere" / "out.pcap")
