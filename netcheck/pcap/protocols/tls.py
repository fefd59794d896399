"""TLS as the packets carry it: record headers, handshake messages and alerts, followed per
direction in bounded memory (:class:`TlsFollower`), summed up per session (:class:`TlsInfo`).
"""

from __future__ import annotations

import struct
from typing import Any, Optional

from netcheck.redact import printable

MASK = 0xFFFFFFFF

# -- TLS -----------------------------------------------------------------------------------

TLS_VERSIONS = {0x0300: "SSLv3", 0x0301: "TLSv1", 0x0302: "TLSv1.1", 0x0303: "TLSv1.2",
                0x0304: "TLSv1.3"}
HANDSHAKE_TYPES = {
    0: "HelloRequest", 1: "ClientHello", 2: "ServerHello", 4: "NewSessionTicket",
    5: "EndOfEarlyData", 8: "EncryptedExtensions", 11: "Certificate", 12: "ServerKeyExchange",
    13: "CertificateRequest", 14: "ServerHelloDone", 15: "CertificateVerify",
    16: "ClientKeyExchange", 20: "Finished", 22: "CertificateStatus", 24: "KeyUpdate",
}
# The ServerHello random that marks a HelloRetryRequest (RFC 8446 4.1.3).
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")
ALERT_DESCRIPTIONS = {
    0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 22: "record_overflow",
    40: "handshake_failure", 42: "bad_certificate", 43: "unsupported_certificate",
    44: "certificate_revoked", 45: "certificate_expired", 46: "certificate_unknown",
    47: "illegal_parameter", 48: "unknown_ca", 49: "access_denied", 50: "decode_error",
    51: "decrypt_error", 70: "protocol_version", 71: "insufficient_security",
    80: "internal_error", 86: "inappropriate_fallback", 90: "user_canceled",
    109: "missing_extension", 110: "unsupported_extension", 112: "unrecognized_name",
    116: "certificate_required", 120: "no_application_protocol",
}
MAX_RECORD = (1 << 14) + 2048  # TLSCiphertext.length limit (RFC 8446 5.2)
MAX_ALERTS = 16  # plaintext alerts kept per session (a stream of them must not grow memory)
# Handshake records being collected at once, over all sessions (up to 18 KiB each): a capture
# of many sessions that each leave a big record unfinished must not grow memory with them.
MAX_COLLECTING = 2048


def tls_version_name(value: int) -> str:
    """``TLSv1.2`` for 0x0303; an unknown value in hex."""
    return TLS_VERSIONS.get(value, f"0x{value:04x}")


def looks_like_tls_record(data: bytes, pos: int = 0) -> bool:
    """True if a TLS record header (content type 20-24, version 3.x) starts at ``pos``."""
    return (len(data) >= pos + 5 and 20 <= data[pos] <= 24 and data[pos + 1] == 3
            and data[pos + 2] <= 4 and (data[pos + 3] << 8 | data[pos + 4]) <= MAX_RECORD)


class TlsInfo:
    """What the TLS handshake of one session showed (both directions)."""

    __slots__ = ("messages", "client_versions", "version", "sni", "alerts", "hrr", "malformed")

    def __init__(self) -> None:
        self.messages: list[str] = []  # distinct types, in order of first appearance
        self.client_versions: list[int] = []
        self.version: Optional[int] = None  # negotiated (ServerHello)
        self.sni: Optional[str] = None
        self.alerts: list[str] = []
        self.hrr = False
        self.malformed = 0  # segments where a record was due and none could be read

    def versions(self) -> list[str]:
        """The negotiated version, or the best the client offered if no ServerHello was seen."""
        if self.version is not None:
            return [tls_version_name(self.version)]
        offered = [v for v in self.client_versions if v in TLS_VERSIONS]
        return [tls_version_name(max(offered))] if offered else []

    def to_json(self) -> dict[str, Any]:
        """The netcheck-pcap/1 ``tls`` object."""
        return {"versions": self.versions(), "sni": self.sni, "messages": list(self.messages)}


class TlsFollower:
    """Follow the TLS record layer of one direction of a TCP stream, segment by segment.

    ``feed`` takes each segment's sequence number, its TCP payload length and the captured
    payload bytes (possibly fewer, if the snap length cut the frame) and returns the names of
    the messages that segment completed. Retransmitted bytes are skipped; a gap makes the
    follower lose the record boundary until a segment starts with a plausible header.

    Followers that share a ``collecting`` dict (one per analysis) hold at most
    :data:`MAX_COLLECTING` unfinished handshake records between them: past that, the oldest
    collector drops its record and re-synchronises, as after a gap.
    """

    __slots__ = ("next", "skip", "hdr", "rec", "rec_need", "encrypted", "lost", "info",
                 "from_server", "collecting", "pending")

    def __init__(self, info: TlsInfo, from_server: bool,
                 collecting: Optional[dict[int, TlsFollower]] = None) -> None:
        self.collecting = collecting
        self.next = -1  # next expected absolute sequence number
        self.skip = 0  # bytes of the current record still to pass over
        self.hdr = b""  # a record header split across segments
        self.rec: Optional[bytearray] = None  # a handshake record being collected
        self.rec_need = 0
        self.encrypted = False  # after ChangeCipherSpec: handshake records are encrypted
        self.lost = False
        self.info = info
        self.from_server = from_server
        # A record named once all of it has passed (as Wireshark names a record only once it
        # is reassembled): a record whose end the capture misses is not counted.
        self.pending: Optional[str] = None

    def feed(self, seq: int, seglen: int, data: bytes) -> list[str]:
        """Messages completed by this segment (may be empty)."""
        if self.next < 0:
            self.next = seq
        out: list[str] = []
        delta = (seq - self.next) & MASK
        if delta:
            if delta >= 0x80000000:  # starts before what we have seen: retransmission
                behind = (self.next - seq) & MASK
                if behind >= seglen:
                    return []
                data = data[behind:]
                seglen -= behind
            elif not self.lost:
                # Bytes are missing. Inside a record whose length is known, the next record
                # starts where that one ends: the gap costs only that record (as Wireshark
                # finds the records after a lost segment). Otherwise the boundary is lost
                # until a segment starts with a plausible record header.
                self._skip_uncaptured(delta, out, seen=False)
        self.next = (seq + seglen) & MASK
        if self.lost:
            if not looks_like_tls_record(data):
                return out
            self.lost = False
        missing = seglen - len(data)  # bytes not captured (snap length) at the end
        self._consume(data, out)
        if missing > 0:
            self._skip_uncaptured(missing, out)
        return out

    def _resync(self) -> None:
        self.skip = 0
        self.pending = None
        self.hdr = b""
        self._end_record()
        self.lost = True

    def _start_record(self, length: int) -> None:
        collecting = self.collecting
        if collecting is not None:
            if len(collecting) >= MAX_COLLECTING:
                oldest = collecting.pop(next(iter(collecting)))
                oldest._resync()
            collecting[id(self)] = self
        self.rec = bytearray()
        self.rec_need = length

    def _end_record(self) -> None:
        if self.rec is not None:
            self.rec = None
            if self.collecting is not None:
                self.collecting.pop(id(self), None)

    def _skip_uncaptured(self, missing: int, out: list[str], seen: bool = True) -> None:
        """``missing`` bytes of the stream are not in the capture: cut by the snap length at
        the end of a segment (``seen``: the segment itself was captured), or whole segments
        missing (a gap)."""
        if self.rec is not None:
            # The rest of the handshake record was not captured. A ClientHello cut by the snap
            # length is still a ClientHello: name what its start shows. A record that lost
            # whole segments is not named (Wireshark cannot reassemble it either).
            if seen and len(self.rec) >= 4:
                self._handshake(bytes(self.rec), out, partial=True)
            self._end_record()
            self.skip = self.rec_need
        if self.pending is not None:
            if seen:  # its header and start were captured: the snap length cut the rest
                self._add(out, self.pending)
            self.pending = None
        if self.hdr:
            self._resync()
        elif self.skip >= missing:
            self.skip -= missing
        else:
            self._resync()

    def _consume(self, data: bytes, out: list[str]) -> None:
        pos = 0
        size = len(data)
        while pos < size:
            if self.skip:
                step = min(self.skip, size - pos)
                self.skip -= step
                pos += step
                if not self.skip and self.pending is not None:
                    self._add(out, self.pending)
                    self.pending = None
                continue
            if self.rec is not None:
                take = min(self.rec_need, size - pos)
                self.rec += data[pos:pos + take]
                self.rec_need -= take
                pos += take
                if self.rec_need == 0:
                    self._handshake(bytes(self.rec), out)
                    self._end_record()
                continue
            if self.hdr or size - pos < 5:
                want = 5 - len(self.hdr)
                self.hdr += data[pos:pos + want]
                pos += min(want, size - pos)
                if len(self.hdr) < 5:
                    return
                header, self.hdr = self.hdr, b""
            else:
                header = data[pos:pos + 5]
                pos += 5
            if not looks_like_tls_record(header):
                self.info.malformed += 1
                self._resync()
                return
            ctype = header[0]
            length = header[3] << 8 | header[4]
            if ctype == 22 and not self.encrypted:
                if length:
                    self._start_record(length)  # collected whole: its messages are read
                continue
            name = self._record_name(ctype, length, data, pos, size)
            if length <= size - pos:
                self._add(out, name)
            else:
                self.pending = name  # named at its end, or where the snap length cut it
            self.skip = length

    def _record_name(self, ctype: int, length: int, data: bytes, pos: int, size: int) -> str:
        """The name of a record that is skipped, not collected (anything but a plaintext
        handshake record), whose body starts at ``data[pos]``; a plaintext alert is kept."""
        if ctype == 20:
            self.encrypted = True
            return "ChangeCipherSpec"
        if ctype == 21:
            if not self.encrypted and length == 2 and size - pos >= 2:
                level = "fatal" if data[pos] == 2 else "warning"
                desc = ALERT_DESCRIPTIONS.get(data[pos + 1], str(data[pos + 1]))
                if len(self.info.alerts) < MAX_ALERTS:
                    self.info.alerts.append(f"{level}:{desc}")
                return "Alert"
            return "EncryptedAlert"
        if ctype == 22:
            return "EncryptedHandshakeMessage"
        if ctype == 23:
            return "ApplicationData"
        return "Heartbeat"

    def _add(self, out: list[str], name: str) -> None:
        out.append(name)
        if name not in self.info.messages:
            self.info.messages.append(name)

    def _handshake(self, record: bytes, out: list[str], partial: bool = False) -> None:
        """Handshake messages of one plaintext record (several may share it)."""
        pos = 0
        while pos + 4 <= len(record) and (not partial or pos == 0):
            mtype = record[pos]
            mlen = int.from_bytes(record[pos + 1:pos + 4], "big")
            body = record[pos + 4:pos + 4 + mlen]
            name = HANDSHAKE_TYPES.get(mtype)
            if name is None:
                # Unknown type in plaintext: most likely a Finished we cannot decrypt.
                self._add(out, "EncryptedHandshakeMessage")
                return
            if mtype == 1:
                self._client_hello(body)
            elif mtype == 2:
                name = self._server_hello(body)
            self._add(out, name)
            pos += 4 + mlen

    def _client_hello(self, body: bytes) -> None:
        info = self.info
        try:
            legacy = struct.unpack_from(">H", body, 0)[0]
            pos = 34
            pos += 1 + body[pos]  # session id
            pos += 2 + struct.unpack_from(">H", body, pos)[0]  # cipher suites
            pos += 1 + body[pos]  # compression methods
            offered = [legacy]
            if pos + 2 <= len(body):
                ext_end = pos + 2 + struct.unpack_from(">H", body, pos)[0]
                pos += 2
                while pos + 4 <= min(ext_end, len(body)):
                    etype, elen = struct.unpack_from(">HH", body, pos)
                    ext = body[pos + 4:pos + 4 + elen]
                    if etype == 0 and len(ext) >= 5 and ext[2] == 0:
                        nlen = struct.unpack_from(">H", ext, 3)[0]
                        # Any bytes can be sent as a name: escaped here, so no report,
                        # JSON reader or log ever gets a raw control character from it.
                        sni = ext[5:5 + nlen].decode("ascii", "replace")[:253]
                        info.sni = printable(sni)
                    elif etype == 43 and ext:
                        offered = [struct.unpack_from(">H", ext, 1 + i)[0]
                                   for i in range(0, min(ext[0], len(ext) - 1) - 1, 2)]
                    pos += 4 + elen
            # GREASE values (0x?a?a) are noise by design (RFC 8701).
            info.client_versions = [v for v in offered if v & 0x0F0F != 0x0A0A]
        except (struct.error, IndexError):
            pass

    def _server_hello(self, body: bytes) -> str:
        info = self.info
        name = "ServerHello"
        try:
            version = struct.unpack_from(">H", body, 0)[0]
            if body[2:34] == HRR_RANDOM:
                info.hrr = True
                name = "HelloRetryRequest"
            pos = 34
            pos += 1 + body[pos]
            pos += 3  # cipher suite, compression method
            if pos + 2 <= len(body):
                ext_end = pos + 2 + struct.unpack_from(">H", body, pos)[0]
                pos += 2
                while pos + 4 <= min(ext_end, len(body)):
                    etype, elen = struct.unpack_from(">HH", body, pos)
                    if etype == 43 and elen == 2:
                        version = struct.unpack_from(">H", body, pos + 4)[0]
                    pos += 4 + elen
            if name == "ServerHello":
                info.version = version
        except (struct.error, IndexError):
            pass
        return name
