"""What a server says in the clear on a TLS port: whether the first bytes start a TLS record,
whether they are text, the first line made printable, and the protocol a banner belongs to.
"""

from __future__ import annotations

from typing import Optional

# How much plain text is kept as evidence (the first line of a banner or status line).
MAX_BANNER_CHARS = 200

# What well-known plain-text services say first (or answer to a ClientHello).
_BANNERS: tuple[tuple[str, str], ...] = (
    ("HTTP/", "HTTP"),
    ("SSH-", "SSH"),
    ("220 ", "SMTP or FTP"),
    ("220-", "SMTP or FTP"),
    ("+OK", "POP3"),
    ("-ERR", "POP3"),
    ("* OK", "IMAP"),
    ("* PREAUTH", "IMAP"),
    ("* BYE", "IMAP"),
    ("RFB ", "VNC"),
    ("<!DOCTYPE", "HTTP (a body without headers)"),
    ("<html", "HTTP (a body without headers)"),
    ("421 ", "SMTP or FTP"),
    ("554 ", "SMTP"),
)


def _printable(text: str, limit: int = MAX_BANNER_CHARS) -> str:
    """Text from the network made safe to show: printable, one line, bounded."""
    shown = "".join(ch if ch.isprintable() else "." for ch in text[: limit * 2])
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def looks_like_tls(data: bytes) -> Optional[bool]:
    """Is this the start of a TLS record? None while fewer than 3 bytes are known.

    A record starts with its content type (20-24), then version major 3, minor 0-4.
    """
    if not data:
        return None
    if data[0] not in (20, 21, 22, 23, 24):
        return False
    if len(data) < 3:
        return None if len(data) < 2 or data[1] == 3 else False
    return data[1] == 3 and data[2] <= 4


def is_text(data: bytes) -> bool:
    """Mostly printable ASCII (a banner or status line), not binary."""
    sample = data[:128]
    if not sample:
        return False
    printable = sum(1 for b in sample if 32 <= b < 127 or b in (9, 10, 13))
    return printable >= 0.9 * len(sample)


def first_line(data: bytes) -> str:
    """The first line of a plain-text answer, printable and at most MAX_BANNER_CHARS."""
    line = data.split(b"\n", 1)[0].rstrip(b"\r")
    return _printable(line.decode("latin-1"))


def banner_protocol(line: str) -> Optional[str]:
    """The plain-text protocol a first line belongs to (HTTP, SSH, SMTP…), if recognised."""
    for prefix, proto in _BANNERS:
        if line.upper().startswith(prefix.upper()):
            return proto
    return None
