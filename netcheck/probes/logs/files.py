"""Reading a log file within bounds: gzip told apart and binary files refused, rotated
siblings found, the window's start found by bisection on timestamps, blocks read with long lines
cut (:class:`FileRead` says how far each file was read).
"""

from __future__ import annotations

import glob
import gzip
import os
import re
import zlib
from dataclasses import dataclass
from typing import IO, Any, Callable, Iterator, Optional

from netcheck.probes.logs.lines import MAX_LINE, access_time

BLOCK = 1 << 20
PROBE = 64 << 10
MAX_ROTATED = 9
# Log lines are written when a request ends (nginx) or stamped when it began (Apache): a
# file is ordered only roughly, so the bisection stops this far before the window.
ORDER_SLACK_S = 300.0
SNIFF_BYTES = 8192


def is_gzip(path: str) -> bool:
    """By its magic bytes (a ``.gz`` name when it cannot be read)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(2) == b"\x1f\x8b"
    except OSError:
        return path.endswith(".gz")


def sniff_binary(path: str) -> Optional[str]:
    """Why ``path`` is not a text log (binary, broken gzip), or None (text, or unreadable:
    the check reports that itself)."""
    try:
        if is_gzip(path):
            with gzip.open(path, "rb") as gz:
                head = gz.read(SNIFF_BYTES)
        else:
            with open(path, "rb") as fh:
                head = fh.read(SNIFF_BYTES)
    except (EOFError, zlib.error, gzip.BadGzipFile):
        return "is not a valid gzip file"
    except OSError:
        return None
    if b"\0" in head:
        return "is not a text log (it holds binary data)"
    return None


def rotated_siblings(path: str) -> list[str]:
    """Older files of a rotated log, newest first: ``P.1``, ``P.2.gz``..., ``P-20251010``."""
    if re.search(r"(\.\d+|\.gz|-\d{8})$", path):
        return []  # already a rotated file: read as given
    found: list[str] = []
    for n in range(1, MAX_ROTATED + 1):
        for candidate in (f"{path}.{n}", f"{path}.{n}.gz"):
            if os.path.isfile(candidate):
                found.append(candidate)
    dated = sorted(glob.glob(glob.escape(path) + "-[0-9]*"), reverse=True)
    found += [p for p in dated if re.search(r"-\d{8}(\.gz)?$", p)]
    return found[:MAX_ROTATED]


def _first_time(fh: IO[bytes], offset: int, parse_time: Callable[[bytes], Optional[float]]
                ) -> Optional[tuple[int, float]]:
    """(offset, time) of the first line at or after ``offset`` whose time parses."""
    fh.seek(offset)
    chunk = fh.read(PROBE)
    start = 0
    if offset > 0:
        nl = chunk.find(b"\n")
        if nl < 0:
            return None
        start = nl + 1
    while start < len(chunk):
        end = chunk.find(b"\n", start)
        if end < 0:
            return None  # cut line at the end of the probe
        t = parse_time(chunk[start:end])
        if t is not None:
            return offset + start, t
        start = end + 1
    return None


def find_window_start(fh: IO[bytes], lo: int, hi: int, since: float,
                      parse_time: Callable[[bytes], Optional[float]] = access_time) -> int:
    """Bisect a time-ordered log for an offset shortly before the first line at ``since``."""
    target = since - ORDER_SLACK_S
    for _ in range(64):
        if hi - lo <= PROBE:
            break
        mid = (lo + hi) // 2
        found = _first_time(fh, mid, parse_time)
        if found is None:
            break  # a region that does not parse: read from lo
        pos, t = found
        if t < target:
            lo = pos
        else:
            hi = mid
    return lo


def _blocks(fh: IO[bytes], limit: int) -> Iterator[bytes]:
    """Complete lines from the current position, a block at a time, at most ``limit`` bytes.

    A line longer than MAX_LINE is cut there; the last line is given even without its end.
    """
    carry = b""
    left = limit
    while left > 0:
        data = fh.read(min(BLOCK, left))
        if not data:
            break
        left -= len(data)
        data = carry + data
        cut = data.rfind(b"\n")
        if cut < 0:
            carry = data if len(data) <= MAX_LINE else data[:MAX_LINE]
            continue
        yield data[:cut + 1]
        carry = data[cut + 1:]
    if carry:
        yield carry + b"\n"


def _lines_around(data: bytes, pos: int) -> tuple[int, int]:
    start = data.rfind(b"\n", 0, pos) + 1
    end = data.find(b"\n", pos)
    return start, (end if end >= 0 else len(data))


@dataclass
class FileRead:
    """How much of one file was read."""

    path: str
    size: Optional[int] = None
    read_from: int = 0
    bytes_read: int = 0
    gzip: bool = False
    first_time: Optional[float] = None
    error: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "bytes_read": self.bytes_read}
        if self.size is not None:
            out["size"] = self.size
        if self.read_from:
            out["read_from"] = self.read_from
        if self.gzip:
            out["gzip"] = True
        if self.error:
            out["error"] = self.error
        return out


def _open(path: str) -> tuple[IO[bytes], bool, Optional[int]]:
    if is_gzip(path):
        return gzip.open(path, "rb"), True, None  # type: ignore[return-value]
    fh = open(path, "rb")  # noqa: SIM115 - closed by the caller
    return fh, False, os.fstat(fh.fileno()).st_size
