"""The lab's greeters (:mod:`netcheck.lab.appserver`'s modes other than ``http``): SMTP,
POP3 and IMAP (accepting or refusing, STARTTLS when offered), an SSH version line, random
bytes, and silence — what a mail or SSH server, or the wrong program, says first.
"""

from __future__ import annotations

import os

from netcheck.lab.appconn import Conn
from netcheck.lab.serving import _log as log

SSH_VERSION = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3 netcheck-lab\r\n"


def _serve_smtp(conn: Conn, name: str, reject: bool) -> None:
    if reject:
        conn.send(f"554 5.7.1 {name} ESMTP: no SMTP service here for {conn.peer}\r\n"
                  .encode("ascii"))
    else:
        conn.send(f"220 {name} ESMTP netcheck-lab\r\n".encode("ascii"))
    for _ in range(20):
        line = conn.read_until(b"\n", 1024)
        if line is None:
            return
        text = line.decode("latin-1").strip()
        verb = text.split(" ", 1)[0].upper()
        log(f"smtp {conn.peer} {text[:100]!r}")
        if verb == "QUIT":
            conn.send(b"221 2.0.0 Bye\r\n")
            return
        if reject:
            conn.send(b"503 5.5.1 Bad sequence of commands: only QUIT now\r\n")
        elif verb == "EHLO":
            starttls = "250-STARTTLS\r\n" if conn.can_starttls else ""
            conn.send(f"250-{name} greets {text[5:60]}\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
                      f"{starttls}250-8BITMIME\r\n250 SMTPUTF8\r\n".encode("latin-1"))
        elif verb == "STARTTLS" and conn.can_starttls:
            conn.send(b"220 2.0.0 Ready to start TLS\r\n")
            if not conn.start_tls():
                return
        elif verb == "HELO":
            conn.send(f"250 {name}\r\n".encode("ascii"))
        elif verb == "NOOP":
            conn.send(b"250 2.0.0 OK\r\n")
        else:
            conn.send(b"502 5.5.2 Command not implemented in the lab\r\n")


def _serve_pop3(conn: Conn, reject: bool) -> None:
    if reject:
        conn.send(b"-ERR [SYS/PERM] POP3 access is disabled for your address\r\n")
        log(f"pop3 {conn.peer} rejected")
        return
    conn.send(b"+OK netcheck-lab POP3 server ready\r\n")
    for _ in range(20):
        line = conn.read_until(b"\n", 1024)
        if line is None:
            return
        verb = line.decode("latin-1").strip().split(" ", 1)[0].upper()
        log(f"pop3 {conn.peer} {verb[:20]!r}")
        if verb == "QUIT":
            conn.send(b"+OK bye\r\n")
            return
        if verb == "CAPA":
            stls = b"STLS\r\n" if conn.can_starttls else b""
            conn.send(b"+OK capability list follows\r\nUSER\r\n" + stls + b".\r\n")
        elif verb == "STLS" and conn.can_starttls:
            conn.send(b"+OK Begin TLS negotiation\r\n")
            if not conn.start_tls():
                return
        else:
            conn.send(b"-ERR not in the lab\r\n")


def _serve_imap(conn: Conn, bye: bool) -> None:
    if bye:
        conn.send(b"* BYE netcheck-lab: too many connections from your address\r\n")
        log(f"imap {conn.peer} sent BYE")
        return
    caps = "IMAP4rev1 STARTTLS LOGINDISABLED" if conn.can_starttls else "IMAP4rev1"
    conn.send(f"* OK [CAPABILITY {caps}] netcheck-lab IMAP ready\r\n".encode("ascii"))
    for _ in range(20):
        line = conn.read_until(b"\n", 1024)
        if line is None:
            return
        words = line.decode("latin-1").strip().split()
        tag, verb = (words + ["*", ""])[:2]
        log(f"imap {conn.peer} {verb.upper()[:20]!r}")
        if verb.upper() == "LOGOUT":
            conn.send(f"* BYE logging out\r\n{tag} OK LOGOUT completed\r\n".encode("latin-1"))
            return
        if verb.upper() == "CAPABILITY":
            caps = "IMAP4rev1 STARTTLS" if conn.can_starttls else "IMAP4rev1"
            conn.send(f"* CAPABILITY {caps}\r\n{tag} OK done\r\n".encode("latin-1"))
            continue
        if verb.upper() == "STARTTLS" and conn.can_starttls:
            conn.send(f"{tag} OK Begin TLS negotiation now\r\n".encode("latin-1"))
            if not conn.start_tls():
                return
            continue
        conn.send(f"{tag} BAD not in the lab\r\n".encode("latin-1"))


def _serve_ssh(conn: Conn) -> None:
    conn.send(SSH_VERSION)
    line = conn.read_until(b"\n", 255)
    log(f"ssh {conn.peer} client {line.strip()[:100]!r}" if line else f"ssh {conn.peer} left")


def _serve_binary(conn: Conn) -> None:
    # NUL and 0xff first: whatever the random bytes are, this never looks like a text protocol.
    conn.send(b"\x00\xff\xfe" + os.urandom(253))
    log(f"binary {conn.peer} sent 256 random bytes")
    conn.sock.settimeout(2.0)
    conn.read_until(b"\n", 4096)


def _serve_silent(conn: Conn) -> None:
    log(f"silent {conn.peer} accepted; saying nothing")
    conn.hold()
