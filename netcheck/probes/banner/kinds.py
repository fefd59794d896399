"""What the first bytes a port sent look like: printable, one line, classified; and the ports
whose client speaks first (no greeting to wait for)."""

from __future__ import annotations

import re
from typing import Optional

# Ports whose registered protocol (IANA service names) has the client speak first: a server
# there sends nothing until asked, so a greeting is not waited for. Implicit-TLS ports are
# here too (the client's ClientHello comes first). Servers that greet (SMTP 25/587, FTP 21,
# SSH 22, POP3 110, IMAP 143, MySQL 3306, VNC 5900) are not.
CLIENT_FIRST_PORTS: dict[int, str] = {
    53: "DNS", 80: "HTTP", 88: "Kerberos", 111: "ONC RPC", 389: "LDAP", 443: "HTTPS",
    445: "SMB", 465: "SMTPS", 636: "LDAPS", 853: "DNS over TLS", 993: "IMAPS", 995: "POP3S",
    1433: "MS SQL", 1521: "Oracle", 1883: "MQTT", 2049: "NFS", 2379: "etcd",
    3128: "HTTP proxy", 3389: "RDP", 5432: "PostgreSQL", 5672: "AMQP", 6379: "Redis",
    6443: "HTTPS", 8000: "HTTP", 8080: "HTTP", 8443: "HTTPS", 8883: "MQTT over TLS",
    9090: "HTTP", 9092: "Kafka", 9100: "HTTP", 9200: "HTTP", 11211: "memcached",
    27017: "MongoDB",
}


def client_speaks_first(port: int) -> Optional[str]:
    """The protocol registered on ``port`` when its client speaks first, else None.

    None means "unknown, or the server greets": only then is a greeting worth waiting for.
    """
    return CLIENT_FIRST_PORTS.get(port)

# First bytes -> what they are. Order matters: the most specific first.
_TLS_RECORD = re.compile(rb"^[\x14-\x17]\x03[\x00-\x04]")


def printable(data: bytes, limit: int = 200) -> str:
    """Bytes as one line a person can read: control and non-ASCII bytes as ``\\xNN``.

    CR and LF become ``\\r`` and ``\\n`` so a multi-line greeting stays on one line; the
    result is cut at ``limit`` characters with ``...``.
    """
    out: list[str] = []
    size = 0
    for byte in data:
        if 32 <= byte < 127:
            piece = chr(byte)
        elif byte == 10:
            piece = "\\n"
        elif byte == 13:
            piece = "\\r"
        elif byte == 9:
            piece = "\\t"
        else:
            piece = f"\\x{byte:02x}"
        if size + len(piece) > limit:
            out.append("...")
            break
        out.append(piece)
        size += len(piece)
    return "".join(out)


def first_line(data: bytes, limit: int = 120) -> str:
    """The first non-empty line of ``data``, printable and bounded."""
    for line in data.splitlines():
        if line.strip():
            return printable(line.rstrip(b"\r"), limit)
    return printable(data[:limit], limit)


def _binary_ratio(data: bytes) -> float:
    if not data:
        return 0.0
    odd = sum(1 for b in data if not (32 <= b < 127 or b in (9, 10, 13)))
    return odd / len(data)


def classify(data: bytes) -> str:
    """What the first bytes a port sent look like.

    One of: ``empty``, ``ssh``, ``http``, ``smtp`` (a ``220`` greeting, FTP's too), ``pop3``,
    ``imap``, ``tls`` (a TLS record: the port wants TLS first), ``binary``, ``text``.
    """
    if not data:
        return "empty"
    head = data.lstrip(b"\r\n")[:64]
    if head.startswith(b"SSH-"):
        return "ssh"
    if re.match(rb"^HTTP/\d", head):
        return "http"
    if _TLS_RECORD.match(data):
        return "tls"
    if re.match(rb"^[2-5]\d\d[ -]", head):
        return "smtp"
    if head.startswith((b"+OK", b"-ERR")):
        return "pop3"
    if re.match(rb"^\* (OK|NO|BAD|BYE|PREAUTH)\b", head, re.IGNORECASE):
        return "imap"
    if _binary_ratio(data[:256]) > 0.3:
        return "binary"
    return "text"


# Every kind classify() tells (the checks say them in words: netcheck.checks.application.HEARD).
KINDS = ("ssh", "http", "tls", "smtp", "pop3", "imap", "binary", "text", "empty")
