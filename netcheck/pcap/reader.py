"""Read pcap and pcapng files as a stream of packets, in bounded memory.

Formats read, as tcpdump, tshark, Wireshark and dumpcap write them:

- pcap, microsecond (magic ``a1b2c3d4``) and nanosecond (``a1b23c4d``) timestamps, either byte
  order; the link type in the file header.
- pcapng, any number of sections (each with its own byte order), any number of interfaces
  per section, each with its own link type, snap length and timestamp resolution
  (``if_tsresol``) and offset (``if_tsoffset``); enhanced, simple and obsolete packet blocks.
- Either of them gzip-compressed (Wireshark reads ``.pcap.gz`` transparently, so do we).

The file is read in chunks of :data:`CHUNK` bytes and never held whole: a 10-million-packet
capture costs the same memory as a small one. Each packet is yielded as a plain tuple
``(t, linktype, buf, offset, caplen, wirelen, n)`` where ``buf[offset:offset + caplen]`` is the
frame, ``t`` the time in seconds since the first packet (what Wireshark's *Time* column shows)
and ``n`` the frame number (1-based, Wireshark's *No.*). No per-packet object is built: the
caller decodes straight from the chunk with ``struct.unpack_from``.

A file cut short (the capture was killed, the copy interrupted) is not an error: the packets
before the cut are yielded and :attr:`Capture.truncated` / :attr:`Capture.problem` say where it
ended. A header that makes no sense (wrong magic, an impossible length) is a
:class:`CaptureError` with one line for the user.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from typing import IO, Any, Iterator, Optional

CHUNK = 1 << 20  # bytes read at a time; the chunk is the decode buffer, never a copy per packet
# No real link layer captures frames this big (Wireshark's own limit for most link types is
# 256 KiB): a larger length means the file is corrupt, not that we should allocate it.
MAX_PACKET = 1 << 20
MAX_BLOCK = MAX_PACKET + (1 << 16)

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
# Raw IP also appears as DLT values 12 and 14 in files written on some BSDs.
LINKTYPE_NAMES = {
    LINKTYPE_NULL: "BSD loopback", LINKTYPE_ETHERNET: "Ethernet", LINKTYPE_RAW: "raw IP",
    12: "raw IP", 14: "raw IP", LINKTYPE_LOOP: "OpenBSD loopback",
    LINKTYPE_LINUX_SLL: "Linux cooked (SLL)", LINKTYPE_LINUX_SLL2: "Linux cooked v2 (SLL2)",
    LINKTYPE_IPV4: "raw IPv4", LINKTYPE_IPV6: "raw IPv6",
}

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
BYTE_ORDER_MAGIC = 0x1A2B3C4D
GZIP_MAGIC = b"\x1f\x8b"

# Packet tuple fields, for readers of this module's output.
Packet = tuple[float, int, bytes, int, int, int, int]


class CaptureError(Exception):
    """The file cannot be read as a capture at all; the message is one line for the user."""


# What reading a file can raise: OSError for the disk; for a .gz, EOFError (cut short),
# gzip.BadGzipFile (a bad header or CRC) and zlib.error (corrupt deflate data), which is not
# an OSError.
READ_ERRORS = (OSError, EOFError, zlib.error)


def _shown(path: str) -> str:
    return path if len(path) <= 80 else "..." + path[-77:]


def read_failure(exc: BaseException) -> str:
    """What went wrong reading, in a few words for the user (one line)."""
    if isinstance(exc, zlib.error):
        detail = str(exc).rsplit(":", 1)[-1].strip()
        return f"the compressed data is corrupt ({detail})"
    if isinstance(exc, EOFError):
        return "the compressed file is cut short"
    if isinstance(exc, gzip.BadGzipFile):
        return f"the compressed file is damaged ({exc})"
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(text.split())[:120]


def _magic_hint(head: bytes) -> str:
    """What the first bytes look like, to tell the user what they gave us instead."""
    if head.startswith(b"\x7fELF"):
        return " (it is an executable)"
    if head.startswith(b"PK\x03\x04"):
        return " (it is a zip archive)"
    if head[:4].isascii() and all(32 <= b < 127 or b in b"\r\n\t" for b in head[:16]):
        return " (it looks like text: a tshark/tcpdump text listing is not a capture file)"
    return ""


class Capture:
    """One open capture file; iterate :meth:`packets` once.

    After (or during) iteration: ``packets_read``, ``truncated`` (the file ended mid-record
    or a record was corrupt, so results cover only what came before), ``problem`` (the one
    line saying so), ``cut_packets`` (frames shorter than on the wire: snap length),
    ``interfaces`` (pcapng: one ``(linktype, name)`` per interface seen).
    """

    def __init__(self, path: str, fileobj: Optional[IO[bytes]] = None) -> None:
        """Open ``path`` (or read ``fileobj``, named ``path`` in messages) and read the file
        header; raise CaptureError if it is no capture."""
        self.path = path
        self.format = ""
        self.truncated = False
        self.problem: Optional[str] = None
        self.packets_read = 0
        self.cut_packets = 0
        self.interfaces: list[tuple[int, str]] = []
        self.compressed = False
        self.first_time = 0.0  # the first packet's time, seconds since the epoch
        self._fh = fileobj if fileobj is not None else self._open(path)
        try:
            self._head = self._fh.read(24)
        except READ_ERRORS as exc:
            self._fh.close()
            raise CaptureError(f"{_shown(path)}: cannot read: {read_failure(exc)}") from None
        head = self._head
        if not head:
            self._fh.close()
            what = "no data after decompression" if self.compressed else "0 bytes"
            raise CaptureError(f"{_shown(path)} is empty ({what}): not a capture")
        if head[:4] in PCAP_MAGICS:
            self.format = "pcap"
            if len(head) < 24:
                self._fh.close()
                raise CaptureError(f"{_shown(path)}: the pcap file header is cut short "
                                   f"({len(head)} of 24 bytes): the file is truncated")
            self._endian, self._unit = PCAP_MAGICS[head[:4]]
            _, _, _, _, self.snaplen, network = struct.unpack(self._endian + "HHiIII", head[4:])
            # The top bits of the link type field may carry FCS information (pcap spec).
            self.linktype = network & 0x0FFFFFFF
            self.interfaces = [(self.linktype, "")]
        elif head[:4] == PCAPNG_SHB:
            self.format = "pcapng"
            if len(head) < 12:
                self._fh.close()
                raise CaptureError(f"{_shown(path)}: the pcapng section header is cut short "
                                   f"({len(head)} bytes): the file is truncated")
        else:
            self._fh.close()
            raise CaptureError(
                f"{_shown(path)} is not a pcap or pcapng capture: it starts with "
                f"{head[:4].hex()}{_magic_hint(head)}; pcap files start with a1b2c3d4 "
                "(either byte order), pcapng files with 0a0d0d0a")

    def _open(self, path: str) -> IO[bytes]:
        if os.path.isdir(path):
            raise CaptureError(f"{_shown(path)} is a directory, not a capture file")
        try:
            fh: IO[bytes] = open(path, "rb")  # noqa: SIM115 - closed by close()/the iterator
        except FileNotFoundError:
            raise CaptureError(f"{_shown(path)}: no such file") from None
        except PermissionError:
            raise CaptureError(f"{_shown(path)}: not readable (permission denied)") from None
        except OSError as exc:
            raise CaptureError(f"{_shown(path)}: cannot open: {exc.strerror or exc}") from None
        try:
            magic = fh.read(2)
            fh.seek(0)
        except OSError as exc:
            fh.close()
            raise CaptureError(f"{_shown(path)}: cannot read: {exc.strerror or exc}") from None
        if magic == GZIP_MAGIC:
            self.compressed = True
            return gzip.GzipFile(fileobj=fh, mode="rb")  # type: ignore[return-value]
        return fh

    def close(self) -> None:
        """Close the file (idempotent)."""
        self._fh.close()

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self, size: int) -> bytes:
        try:
            if self.compressed:
                # One decompression step at a time: a read of a whole chunk that fails at its
                # end would lose the good packets decompressed before the damage.
                return self._fh.read1(size)  # type: ignore[attr-defined]
            return self._fh.read(size)
        except READ_ERRORS as exc:
            # A compressed file cut short or corrupt raises here: the packets before are
            # good, so it is a truncation, not a crash.
            self._stop(f"reading failed after packet {self.packets_read} "
                       f"({read_failure(exc)})")
            return b""

    def _stop(self, why: str) -> None:
        if not self.truncated:
            self.truncated = True
            self.problem = f"{why}: results cover the first {self.packets_read} packets"

    def _refill(self, data: bytes, pos: int, need: int, n: int) -> tuple[bytes, bool]:
        """What is left of ``data`` from ``pos`` on, followed by the next chunk of the file
        (at least ``need`` bytes if the file has them); True once the file has no more."""
        self.packets_read = n  # what a read failure message counts
        more = self._read(max(CHUNK, need))
        return data[pos:] + more, not more

    def _done(self, n: int, cut: int) -> None:
        """The iterator ends (all read, reading stopped, or its consumer let it go)."""
        self.packets_read = n
        self.cut_packets = cut
        self.close()

    def _corrupt(self, n: int, what: str) -> None:
        """A header that cannot be right after ``n`` packets: reading stops there."""
        self.packets_read = n
        self._stop(f"{what} (corrupt file); reading stopped")

    def _ended(self, n: int, left: int, where: str) -> None:
        """The end of the file after ``n`` packets, ``left`` bytes of ``where`` unread."""
        self.packets_read = n
        if left > 0:
            self._stop(f"the file ends in the middle of {where} ({left} bytes left over: "
                       "truncated capture)")

    def packets(self) -> Iterator[Packet]:
        """An iterator of ``(t, linktype, buf, offset, caplen, wirelen, n)``, one per packet.

        The file is closed when the iterator ends. (The format's own generator is returned
        directly: one generator frame per packet, not two.)
        """
        return self._pcap() if self.format == "pcap" else self._pcapng()

    # -- pcap --------------------------------------------------------------------------------

    def _pcap(self) -> Iterator[Packet]:
        unpack = struct.Struct(self._endian + "IIII").unpack_from
        unit = self._unit
        link = self.linktype
        data = self._head[24:]
        pos = 0
        n = 0
        cut = 0
        sec0 = -1
        frac0 = 0.0
        need = 16
        eof = False
        try:
            while True:
                if len(data) - pos < need and not eof:
                    data, eof = self._refill(data, pos, need, n)
                    pos = 0
                    continue
                end = len(data)
                while pos + 16 <= end:
                    sec, frac, caplen, wirelen = unpack(data, pos)
                    start = pos + 16
                    nxt = start + caplen
                    if nxt > end:
                        if caplen > MAX_PACKET:
                            self._corrupt(n, f"packet {n + 1} claims {caplen} captured bytes, "
                                             "which is impossible")
                            return
                        need = 16 + caplen
                        break
                    n += 1
                    if sec0 < 0:
                        sec0, frac0 = sec, frac * unit
                        self.first_time = sec0 + frac0
                    if caplen < wirelen:
                        cut += 1
                    yield (sec - sec0) + (frac * unit - frac0), link, data, start, caplen, \
                        wirelen, n
                    pos = nxt
                else:
                    need = 16
                if eof:
                    self._ended(n, len(data) - pos, f"packet {n + 1}")
                    return
        finally:
            self._done(n, cut)

    # -- pcapng ------------------------------------------------------------------------------

    def _pcapng(self) -> Iterator[Packet]:
        data = self._head
        pos = n = cut = 0
        base: Optional[int] = None  # first packet's time (s since the epoch, int part)
        frac_base = 0.0
        endian = "<"
        # Per interface of the current section: (linktype, ticks per second, offset s, snaplen)
        ifaces: list[tuple[int, int, int, int]] = []
        head, epb = _pcapng_structs(endian)
        eof = False
        need = 12
        try:
            while True:
                if len(data) - pos < need and not eof:
                    data, eof = self._refill(data, pos, need, n)
                    pos = 0
                    continue
                end = len(data)
                need = 12
                while pos + 12 <= end:
                    btype, blen = head(data, pos)
                    if btype == SHB_TYPE:  # a new section: its own byte order and interfaces
                        endian = self._section_order(data, pos, n)
                        if not endian:
                            return
                        head, epb = _pcapng_structs(endian)
                        btype, blen = head(data, pos)
                        ifaces = []
                    if blen < 12 or blen % 4 or blen > MAX_BLOCK:
                        self._corrupt(n, f"a pcapng block after packet {n} has an impossible "
                                         f"length {blen}")
                        return
                    if pos + blen > end:
                        need = blen
                        break
                    if btype == 6 and pos + 28 <= end:  # enhanced packet block
                        if_id, hi, lo, caplen, wirelen = epb(data, pos + 8)
                        # (a packet of an undeclared interface cannot be decoded: skipped)
                        if if_id < len(ifaces):
                            link, tps, offset, _snap = ifaces[if_id]
                            ticks = (hi << 32) | lo
                            sec = ticks // tps + offset
                            frac = (ticks % tps) / tps
                            n += 1
                            if base is None:
                                base, frac_base = sec, frac
                                self.first_time = base + frac_base
                            if caplen > blen - 32:
                                caplen = max(0, blen - 32)
                            if caplen < wirelen:
                                cut += 1
                            yield (sec - base) + (frac - frac_base), link, data, pos + 28, \
                                caplen, wirelen, n
                    elif btype == 1:  # interface description block
                        ifaces.append(self._idb(data, pos, blen, endian))
                    elif btype == 2 or btype == 3:  # obsolete or simple packet block
                        old = _older_packet(btype, data, pos, blen, end, ifaces, endian, base,
                                            frac_base)
                        if old is not None:
                            t, base, frac_base, link, start, caplen, wirelen = old
                            n += 1
                            if caplen < wirelen:
                                cut += 1
                            yield t, link, data, start, caplen, wirelen, n
                    # Other blocks (name resolution, statistics, secrets, custom) carry no packet.
                    pos += blen
                if eof:
                    self._ended(n, len(data) - pos, f"a block after packet {n}")
                    return
        finally:
            self._done(n, cut)

    def _section_order(self, data: bytes, pos: int, n: int) -> str:
        """The byte order of the section whose header block starts at ``pos`` (``<`` or
        ``>``); empty, and reading stopped, if its byte-order magic is not valid."""
        magic = data[pos + 8:pos + 12]
        if magic == b"\x4d\x3c\x2b\x1a":
            return "<"
        if magic == b"\x1a\x2b\x3c\x4d":
            return ">"
        self._corrupt(n, f"a pcapng section header after packet {n} has no valid byte-order "
                         "magic")
        return ""

    def _idb(self, data: bytes, pos: int, blen: int,
             endian: str) -> tuple[int, int, int, int]:
        """Link type, ticks per second, time offset and snap length of one interface."""
        link, _reserved, snap = struct.unpack_from(endian + "HHI", data, pos + 8)
        tps = 1_000_000
        offset = 0
        name = ""
        opt = pos + 16
        stop = pos + blen - 4
        while opt + 4 <= stop:
            code, olen = struct.unpack_from(endian + "HH", data, opt)
            value = data[opt + 4:opt + 4 + olen]
            if code == 0:
                break
            if code == 2:
                name = value.decode("utf-8", "replace")[:40]
            elif code == 9 and olen >= 1:
                res = value[0]
                # High bit set: a power of two; clear: a power of ten (pcapng spec).
                tps = (1 << (res & 0x7F)) if res & 0x80 else 10 ** res
                tps = max(1, min(tps, 10 ** 18))
            elif code == 14 and olen >= 8:
                offset = struct.unpack_from(endian + "q", value)[0]
            opt += 4 + olen + (-olen % 4)
        self.interfaces.append((link, name))
        return link, tps, offset, snap


# -- pcapng blocks --------------------------------------------------------------------------

# A section header block's type reads the same in either byte order (0a0d0d0a).
SHB_TYPE = 0x0A0D0D0A


def _pcapng_structs(endian: str) -> tuple[Any, Any]:
    """The unpackers of a pcapng section in this byte order: a block's type and length, and
    the five words that follow them in an enhanced packet block."""
    return struct.Struct(endian + "II").unpack_from, struct.Struct(endian + "IIIII").unpack_from


def _older_packet(btype: int, data: bytes, pos: int, blen: int, end: int,
                  ifaces: list[tuple[int, int, int, int]], endian: str,
                  base: Optional[int], frac_base: float
                  ) -> Optional[tuple[float, Optional[int], float, int, int, int, int]]:
    """The packet of a simple (type 3) or obsolete (type 2) packet block, rare in files
    written today: ``(t, base, frac_base, linktype, offset, caplen, wirelen)``, with the time
    base set by an obsolete block if it is the first packet; None if there is none to decode.

    A simple block has no time (t is 0.0) and stands for interface 0. (Unlike an enhanced
    block's, an obsolete block's time does not set :attr:`Capture.first_time`.)
    """
    if btype == 3 and ifaces:
        wirelen = struct.unpack_from(endian + "I", data, pos + 8)[0]
        link, _tps, _off, snap = ifaces[0]
        caplen = min(wirelen, blen - 16, snap or wirelen)
        return 0.0, base, frac_base, link, pos + 12, caplen, wirelen
    if btype == 2 and pos + 28 <= end:
        if_id, _drops, hi, lo, caplen, wirelen = struct.unpack_from(endian + "HHIIII", data,
                                                                    pos + 8)
        if if_id < len(ifaces):
            link, tps, offset, _snap = ifaces[if_id]
            ticks = (hi << 32) | lo
            sec = ticks // tps + offset
            frac = (ticks % tps) / tps
            if base is None:
                base, frac_base = sec, frac
            return ((sec - base) + (frac - frac_base), base, frac_base, link, pos + 28,
                    min(caplen, max(0, blen - 32)), wirelen)
    return None
