"""STARTTLS: the plain-text dialogue (SMTP, IMAP, POP3) that upgrades a session before the
handshake, bounded like the rest.
"""

from __future__ import annotations

from typing import Callable, Optional

from netcheck.probes.tls.conn import _Conn
from netcheck.probes.tls.plaintext import _printable

STARTTLS_FOR_SCHEME: dict[str, str] = {
    "smtp": "smtp", "submission": "smtp", "imap": "imap", "pop3": "pop3",
}
_MAX_LINE = 1024
_MAX_DIALOG = 16 * 1024


class _Lines:
    """Line reader for the plain-text part of a STARTTLS session (bounded like the rest)."""

    def __init__(self, conn: _Conn) -> None:
        self.conn = conn
        self.buffer = b""

    async def line(self) -> Optional[str]:
        while b"\n" not in self.buffer and len(self.buffer) < _MAX_LINE:
            if self.conn.received > _MAX_DIALOG:
                return None
            data = await self.conn.recv()
            if not data:
                break
            self.buffer += data
        if not self.buffer:
            return None
        raw, _, self.buffer = self.buffer.partition(b"\n")
        return _printable(raw.rstrip(b"\r").decode("latin-1"), _MAX_LINE)

    def silence(self) -> str:
        """Why nothing (more) came: the time ran out or the server closed."""
        if self.conn.left() <= 0:
            return f"nothing within {self.conn.timeout:g} s"
        return "the server closed the connection"

    async def until(self, done: Callable[[str], bool], limit: int = 64) -> list[str]:
        """Lines up to and including the first for which ``done`` is true."""
        lines: list[str] = []
        while len(lines) < limit:
            line = await self.line()
            if line is None:
                break
            lines.append(line)
            if done(line):
                break
        return lines


def _smtp_final(line: str) -> bool:
    return len(line) < 4 or line[3] != "-"


def _ehlo_name(conn: _Conn) -> str:
    """Our own address as an SMTP address literal (RFC 5321 4.1.3)."""
    try:
        local = conn.sock.getsockname()[0]
    except OSError:
        return "netcheck.invalid"
    return f"[IPv6:{local}]" if ":" in local else f"[{local}]"


async def _starttls_dialog(conn: _Conn, protocol: str) -> Optional[str]:
    """Upgrade a plain-text session; None when the server said go, else why it did not."""
    lines = _Lines(conn)
    if protocol == "smtp":
        greeting = await lines.until(_smtp_final)
        if not greeting or not greeting[-1].startswith("220"):
            return f"no SMTP greeting ({greeting[0] if greeting else lines.silence()})"
        await conn.send(f"EHLO {_ehlo_name(conn)}\r\n".encode("ascii"))
        ehlo = await lines.until(_smtp_final)
        if not ehlo or not ehlo[-1].startswith("250"):
            return f"EHLO refused ({ehlo[-1] if ehlo else lines.silence()})"
        if not any(line[4:].upper().startswith("STARTTLS") for line in ehlo):
            return "the server does not offer STARTTLS (not in its EHLO answer)"
        await conn.send(b"STARTTLS\r\n")
        reply = await lines.until(_smtp_final)
        if not reply or not reply[-1].startswith("220"):
            return f"STARTTLS refused ({reply[-1] if reply else lines.silence()})"
        return None
    if protocol == "imap":
        greeting = await lines.line()
        if not greeting or not greeting.upper().startswith("* OK"):
            return f"no IMAP greeting ({greeting or lines.silence()})"
        caps = greeting.upper()
        if "STARTTLS" not in caps:
            await conn.send(b"n1 CAPABILITY\r\n")
            caps = " ".join(await lines.until(lambda x: x.startswith("n1 "))).upper()
        if "STARTTLS" not in caps:
            return "the server does not offer STARTTLS (not in its CAPABILITY)"
        await conn.send(b"n2 STARTTLS\r\n")
        reply = await lines.until(lambda x: x.startswith("n2 "))
        if not reply or not reply[-1].upper().startswith("N2 OK"):
            return f"STARTTLS refused ({reply[-1] if reply else lines.silence()})"
        return None
    if protocol == "pop3":
        greeting = await lines.line()
        if not greeting or not greeting.startswith("+OK"):
            return f"no POP3 greeting ({greeting or lines.silence()})"
        await conn.send(b"CAPA\r\n")
        first = await lines.line()
        caps = await lines.until(lambda x: x == ".") if first and first.startswith("+OK") else []
        if not any(c.upper().startswith("STLS") for c in caps):
            return "the server does not offer STLS (not in its CAPA list)"
        await conn.send(b"STLS\r\n")
        reply = await lines.line()
        if not reply or not reply.startswith("+OK"):
            return f"STLS refused ({reply or lines.silence()})"
        return None
    return f"STARTTLS for {protocol} is not supported"
