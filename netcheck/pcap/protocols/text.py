"""The line protocols: HTTP requests and responses, mail dialogue lines (SMTP, POP3), the
ports they are dissected on, and a first line made printable.
"""

from __future__ import annotations

import re
from typing import Optional

from netcheck.redact import mask_secrets

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
