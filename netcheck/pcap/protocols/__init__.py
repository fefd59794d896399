"""Recognise what the packets carry: TLS, HTTP, DNS, SMTP, POP3, SSH, IKE and ESP.

Everything here works on the bytes of one segment or datagram, without reassembling streams,
and keeps per-direction state small (a TLS record header in progress, at most one TLS
handshake record being collected, bounded by the 18 KiB maximum record size). That is what
lets a 1 GB capture be explained in bounded memory; the price is that a TLS record whose
header sits in a segment that was not captured cannot be followed until the next segment
that starts with a plausible record header (the follower re-synchronises there).

Names follow Wireshark's Info column, written as single words as netcheck-pcap/1 does
(``ClientHello``, ``ServerHelloDone``, ``ChangeCipherSpec``, ``EncryptedAlert``...).
"""

from __future__ import annotations

import re
import socket
import struct
from typing import Any, Optional

from netcheck.redact import mask_secrets, printable

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
                    self._start_record(length)
                continue
            if ctype == 20:
                name = "ChangeCipherSpec"
                self.encrypted = True
            elif ctype == 21:
                if not self.encrypted and length == 2 and size - pos >= 2:
                    level = "fatal" if data[pos] == 2 else "warning"
                    desc = ALERT_DESCRIPTIONS.get(data[pos + 1], str(data[pos + 1]))
                    name = "Alert"
                    if len(self.info.alerts) < MAX_ALERTS:
                        self.info.alerts.append(f"{level}:{desc}")
                else:
                    name = "EncryptedAlert"
            elif ctype == 22:
                name = "EncryptedHandshakeMessage"
            elif ctype == 23:
                name = "ApplicationData"
            else:
                name = "Heartbeat"
            if length <= size - pos:
                self._add(out, name)
            else:
                self.pending = name
            self.skip = length

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


# -- HTTP ------------------------------------------------------------------------------------

HTTP_METHODS = (b"GET ", b"POST ", b"HEAD ", b"PUT ", b"DELETE ", b"OPTIONS ", b"PATCH ",
                b"CONNECT ", b"TRACE ", b"PRI ", b"PROPFIND ", b"PROPPATCH ", b"MKCOL ",
                b"COPY ", b"MOVE ", b"LOCK ", b"UNLOCK ", b"SEARCH ", b"REPORT ",
                b"SUBSCRIBE ", b"UNSUBSCRIBE ", b"NOTIFY ", b"M-SEARCH ", b"POLL ",
                b"BPROPFIND ", b"MKCALENDAR ")
MAX_LINE = 120
_METHOD_TOKEN = re.compile(rb"[A-Z][A-Z0-9_-]*")
# A request line with any method: "TOKEN target HTTP/x", or on a connection already known to
# carry HTTP, "TOKEN /target" (Wireshark reads a request from a line as loose as that).
_REQUEST_TAIL = re.compile(rb"^[A-Z][A-Z0-9_-]* \S+ HTTP/\d")
_REQUEST_LOOSE = re.compile(rb"^[A-Z][A-Z0-9_-]* (?:/|\*|https?://)")


# Everything outside printable ASCII becomes "?": a capture can hold any bytes, and a
# terminal must never receive an escape sequence from one.
_PRINTABLE = bytes(b if 32 <= b < 127 else 63 for b in range(256))


def first_line(data: bytes, limit: int = MAX_LINE) -> str:
    """The first line of ``data`` as printable text (control characters replaced), bounded."""
    line = data[:limit * 2].split(b"\n", 1)[0].rstrip(b"\r")
    text = line.translate(_PRINTABLE).decode("ascii")
    return text[:limit] + ("..." if len(text) > limit else "")


def http_request_line(data: bytes, known: bool = False) -> Optional[str]:
    """``GET / HTTP/1.1`` if ``data`` starts an HTTP request, else None.

    A password in the request (``GET http://ann:pw@proxy.test/``, ``?token=...``) is masked:
    the capture shows it went in clear, the report need not repeat it. Masked before the line
    is cut, so a cut cannot leave half a secret. ``known``: the connection is already known
    to carry HTTP, so a looser request line is taken.
    """
    if not data[:1].isupper():
        return None
    if not data.startswith(HTTP_METHODS):
        # Any other method token (CCM_POST, a bare "OPTIONS" line...) counts when the line
        # is an HTTP request line all the same, as Wireshark reads them.
        head = data[:2048].split(b"\n", 1)[0].rstrip(b"\r")
        method = head.split(b" ", 1)[0]
        if not (0 < len(method) <= 24 and _METHOD_TOKEN.fullmatch(method)):
            return None
        if not (_REQUEST_TAIL.search(head) or (known and _REQUEST_LOOSE.search(head))
                or (method + b" ") in HTTP_METHODS and head == method):
            return None
    line = mask_secrets(first_line(data, 2048))
    return line[:MAX_LINE] + ("..." if len(line) > MAX_LINE else "")


def http_message_size(data: bytes) -> int:
    """Bytes of the whole HTTP response that starts ``data`` (headers and body), from its
    Content-Length (none for 1xx, 204 and 304); -1 when the headers are not all in ``data``
    or the length is not given (chunked, or until the connection closes)."""
    head_end = data.find(b"\r\n\r\n", 0, 16384)
    if head_end < 0:
        return -1
    size = head_end + 4
    code = data[9:12]
    if code[:1] == b"1" or code in (b"204", b"304"):
        return size
    for line in data[:head_end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            value = value.strip()
            return size + int(value) if value.isdigit() and len(value) < 16 else -1
    return -1


def ends_chunked_body(buf: bytes, start: int, stop: int) -> bool:
    """True if ``buf[start:stop]`` ends with the last chunk of a chunked HTTP body (``0``
    CRLF CRLF). Read in place: this runs for every segment of an HTTP answer."""
    return buf.endswith(b"\r\n0\r\n\r\n", start, stop) or (
        stop - start == 5 and buf.startswith(b"0\r\n\r\n", start))


def http_status(data: bytes) -> Optional[tuple[int, str]]:
    """``(200, 'HTTP/1.1 200 OK')`` if ``data`` starts an HTTP response, else None."""
    if data.startswith(b"HTTP/") and len(data) >= 12 and data[9:12].isdigit():
        return int(data[9:12]), first_line(data)
    return None


# -- mail and other line protocols ------------------------------------------------------------

HTTP_PORTS = frozenset((80, 8000, 8080, 3128))
SMTP_PORTS = frozenset((25, 587, 2525))
# Ports Wireshark dissects as TLS from the first record (not only from a handshake).
TLS_PORTS = frozenset((443, 465, 563, 636, 853, 989, 990, 992, 993, 994, 995, 5061, 5223,
                       8443))
POP3_PORTS = frozenset((110,))
SECRET_COMMANDS = (b"PASS ", b"AUTH ", b"APOP ")


def mail_line(data: bytes, from_server: bool, app: str) -> str:
    """One dialogue line the way Wireshark's Info shows it (``C: EHLO x``, ``S: 250 OK``).

    Passwords are masked: the teaching point is that they cross the network in clear, which
    the note says, not the password itself.
    """
    side = "S" if from_server else "C"
    head = data[:16].upper()
    if not from_server and head.startswith(SECRET_COMMANDS):
        word = first_line(data).split(" ", 2)
        shown = " ".join(word[:2]) if head.startswith(b"AUTH ") else word[0]
        return f"{side}: {shown} ******** (credentials in clear text)"
    return f"{side}: {first_line(data)}"


def is_reply_line(data: bytes, app: str) -> bool:
    """True if a server segment starts a reply (SMTP ``250 ...``, POP3 ``+OK``/``-ERR``)."""
    if app == "smtp":
        return data[:3].isdigit()
    return data.startswith((b"+OK", b"-ERR", b"+ "))


# -- DNS -------------------------------------------------------------------------------------

DNS_TYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA",
             33: "SRV", 35: "NAPTR", 41: "OPT", 43: "DS", 46: "RRSIG", 47: "NSEC",
             48: "DNSKEY", 64: "SVCB", 65: "HTTPS", 255: "ANY", 257: "CAA"}
DNS_RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP",
              5: "REFUSED", 6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH",
              10: "NOTZONE"}
MAX_ANSWERS = 16


def _dns_name(msg: bytes, pos: int) -> tuple[str, int]:
    """A (possibly compressed) domain name at ``pos``; returns it and the position after it."""
    labels: list[str] = []
    end = -1
    hops = 0
    size = 1
    while True:
        if pos >= len(msg):
            raise ValueError("name runs past the message")
        length = msg[pos]
        if length & 0xC0 == 0xC0:
            if pos + 1 >= len(msg):
                raise ValueError("pointer cut short")
            if end < 0:
                end = pos + 2
            pos = ((length & 0x3F) << 8) | msg[pos + 1]
            hops += 1
            if hops > 32:
                raise ValueError("compression loop")
            continue
        if length == 0:
            pos += 1
            break
        size += 1 + length
        if size > 255:  # RFC 1035 3.1; pointers could otherwise chain a name of any length
            raise ValueError("name longer than 255 bytes")
        label = msg[pos + 1:pos + 1 + length]
        labels.append("".join(chr(b) if 33 <= b < 127 and b != 46 else f"\\{b:03d}"
                              for b in label))
        pos += 1 + length
    return ".".join(labels) or ".", (end if end >= 0 else pos)


def _rdata(msg: bytes, rtype: int, pos: int, rdlen: int) -> str:
    rd = msg[pos:pos + rdlen]
    if rtype == 1 and rdlen == 4:
        return socket.inet_ntop(socket.AF_INET, rd)
    if rtype == 28 and rdlen == 16:
        return socket.inet_ntop(socket.AF_INET6, rd)
    if rtype in (2, 5, 12):
        return _dns_name(msg, pos)[0]
    if rtype == 15 and rdlen >= 3:
        return f"{struct.unpack_from('>H', msg, pos)[0]} {_dns_name(msg, pos + 2)[0]}"
    if rtype == 6:
        return _dns_name(msg, pos)[0]
    if rtype == 16 and rd:
        return first_line(rd[1:1 + rd[0]], 60)
    return f"({rdlen} bytes)"


def parse_dns(msg: bytes) -> Optional[dict[str, Any]]:
    """The header, first question and answers of a DNS message, or None if it is not one.

    Returns ``{"id", "response", "rcode", "query", "type", "answers"}``; answers of another
    type than the one asked are prefixed with their type (``CNAME www.lab.test``).
    """
    if len(msg) < 12:
        return None
    ident, flags, qd, an = struct.unpack_from(">HHHH", msg, 0)
    if qd > 32 or an > 512:
        return None
    response = bool(flags & 0x8000)
    out: dict[str, Any] = {"id": ident, "response": response,
                           "rcode": DNS_RCODES.get(flags & 0xF, str(flags & 0xF)),
                           "query": None, "type": None, "answers": []}
    try:
        pos = 12
        if qd:
            name, pos = _dns_name(msg, pos)
            qtype = struct.unpack_from(">H", msg, pos)[0]
            pos += 4
            out["query"], out["type"] = name, DNS_TYPES.get(qtype, f"TYPE{qtype}")
            for _ in range(qd - 1):
                pos = _dns_name(msg, pos)[1] + 4
        else:
            qtype = -1
        if response:
            for _ in range(min(an, MAX_ANSWERS)):
                pos = _dns_name(msg, pos)[1]
                rtype, _cls, _ttl, rdlen = struct.unpack_from(">HHIH", msg, pos)
                pos += 10
                if pos + rdlen > len(msg):
                    break
                value = _rdata(msg, rtype, pos, rdlen)
                if rtype != qtype:
                    value = f"{DNS_TYPES.get(rtype, f'TYPE{rtype}')} {value}"
                out["answers"].append(value)
                pos += rdlen
    except (ValueError, struct.error, IndexError):
        if out["query"] is None:
            return None
    return out


# -- IPsec -----------------------------------------------------------------------------------

IKE_EXCHANGES = {2: "Identity Protection (Main Mode)", 4: "Aggressive", 5: "Informational",
                 32: "Quick Mode", 34: "IKE_SA_INIT", 35: "IKE_AUTH", 36: "CREATE_CHILD_SA",
                 37: "INFORMATIONAL"}


def parse_ike(data: bytes) -> Optional[dict[str, Any]]:
    """SPIs, version and exchange type of an ISAKMP/IKE header, or None."""
    if len(data) < 28:
        return None
    ispi, rspi = data[0:8], data[8:16]
    version = data[17]
    exch = data[18]
    flags = data[19]
    major = version >> 4
    if major not in (1, 2):
        return None
    return {"version": f"IKEv{major}", "exchange": IKE_EXCHANGES.get(exch, f"type {exch}"),
            "initiator_spi": "0x" + ispi.hex(), "responder_spi": "0x" + rspi.hex(),
            "response": bool(flags & 0x20) if major == 2 else None}
