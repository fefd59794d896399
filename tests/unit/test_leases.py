"""DHCP lease files are read small and never through a link (netcheck.probes.leases)."""

from __future__ import annotations

import os
from pathlib import Path

from netcheck.probes import leases


def test_a_lease_file_is_read(tmp_path: Path) -> None:
    lease = tmp_path / "2"
    lease.write_text("ADDRESS=198.18.1.2\nROUTER=198.18.1.1\nDNS=198.18.3.53\n")
    text = leases._read_small(str(lease))
    assert text is not None
    assert leases.parse_key_value_lease(text) == (["198.18.1.1"], ["198.18.3.53"])


def test_a_link_a_fifo_a_huge_file_and_nothing_read_as_no_lease(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.write_text("ROUTER=198.18.1.1\n")
    (tmp_path / "link").symlink_to(real)
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "huge").write_bytes(b"#" * (leases.MAX_LEASE_BYTES + 1))
    for name in ("link", "fifo", "huge", "absent"):
        assert leases._read_small(str(tmp_path / name)) is None, name
