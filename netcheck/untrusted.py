"""Bounds on untrusted text, checked before any parser sees it.

A batch profile or an exporter config may come from elsewhere, and the parsers behind them
are not linear in everything: ``tomllib`` spends time and memory quadratic in the parts of a
dotted key or table header (a 40 KB key of 20 000 parts: 1.6 GB and 14 s), recurses once per
level of nested arrays and inline tables, and walks strings and arrays in Python, character
by character. So the text is measured first, in one linear pass that never builds anything
big: the whole text, every line, every statement, the parts of every dotted key, the nesting
depth. What exceeds a bound is refused with the source and the line, as a compiler would say
it (``profile.toml:12: ...``); the parser never runs on it.

:class:`TomlScanner` is also the one place that knows where a TOML statement ends (a
multi-line array or string continues it), so a reader that parses statement by statement
uses it to split the text as well as to bound it.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from typing import IO, Iterator, Optional

from netcheck.redact import shown


@dataclass(frozen=True)
class Limits:
    """What a text may cost; each bound is far above what a real profile or config needs."""

    max_bytes: int = 1 << 20  # the whole text (characters once decoded)
    max_line: int = 16 << 10  # one line
    max_statement: int = 256 << 10  # one statement: a key = value, possibly multi-line
    max_key_parts: int = 32  # parts of one dotted key or table header (a.b.c: 3)
    max_depth: int = 32  # arrays and inline tables inside each other


DEFAULT_LIMITS = Limits()


class UntrustedTextError(ValueError):
    """The text exceeds a bound: ``SOURCE:LINE: reason`` (``SOURCE: reason`` for the whole)."""

    def __init__(self, source: str, line: int, reason: str) -> None:
        self.source = shown(source, 200)
        self.line = line
        self.reason = reason
        where = f"{self.source}:{line}" if line else self.source
        super().__init__(f"{where}: {reason}")


def _kib(n: int) -> str:
    """A bound as people read it: 16 KiB, 1 MiB."""
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    if n >= 1 << 10 and n % (1 << 10) == 0:
        return f"{n >> 10} KiB"
    return f"{n} characters"


# Characters that matter to the bounds (outside strings and comments). Everything else is
# skipped by the regular expression, in C, so a long line costs a few searches, not a loop.
_TOKEN = re.compile(r"""["'#.=,\[\]{}]""")
_BASIC_STOP = re.compile(r'["\\]')
_MULTI_BASIC_STOP = re.compile(r'"""|\\')


class TomlScanner:
    """Feed a TOML text line by line: where each statement ends, and the bounds checked.

    The strings are skipped exactly as ``tomllib`` reads them (escapes in basic strings, up
    to two extra quotes closing a multi-line string), so nothing can hide a dotted key or a
    bracket from the count inside something the parser would not take for a string.
    """

    def __init__(self, source: str, limits: Limits = DEFAULT_LIMITS) -> None:
        self.source = source
        self.limits = limits
        self.depth = 0  # open arrays and inline tables
        self.open: Optional[str] = None  # the delimiter of a multi-line string still open
        self.size = 0  # characters in the current statement
        self.first = 0  # line number where the current statement started

    @property
    def complete(self) -> bool:
        """True when the lines fed so far end a statement (nothing left open)."""
        return self.depth <= 0 and self.open is None

    def reset(self) -> None:
        """Start a new statement (after a complete one, or to drop a broken one)."""
        self.depth = 0
        self.open = None
        self.size = 0
        self.first = 0

    def refuse(self, line: int, reason: str) -> UntrustedTextError:
        return UntrustedTextError(self.source, line, reason)

    def check_line(self, line: str, number: int) -> None:
        """Refuse a line (without its line break) longer than the bound."""
        if len(line) > self.limits.max_line:
            raise self.refuse(number, f"line longer than {_kib(self.limits.max_line)}")

    def feed(self, line: str, number: int) -> bool:
        """Scan one line (no line break); True when it completes the statement.

        Raises :class:`UntrustedTextError` when the line, the statement, a dotted key or the
        nesting exceeds its bound.
        """
        limits = self.limits
        self.check_line(line, number)
        if not self.size:
            self.first = number
        self.size += len(line) + 1
        if self.size > limits.max_statement:
            raise self.refuse(self.first, f"statement longer than {_kib(limits.max_statement)}"
                                          f" (lines {self.first}-{number})")
        i, n = 0, len(line)
        if self.open is not None:
            i = self._close_multiline(line, 0)
            if i < 0:
                return False
        dots = 0  # dots since the last = , [ ] { }: the parts of the key being read, minus one
        while i < n:
            m = _TOKEN.search(line, i)
            if m is None:
                break
            c, start, i = m.group(), m.start(), m.end()
            if c == "#":
                break
            if c in "\"'":
                if line.startswith(c * 3, start):
                    self.open = c * 3
                    i = self._close_multiline(line, start + 3)
                    if i < 0:
                        return False
                else:
                    i = self._close_string(line, start + 1, c)
            elif c == ".":
                # A value has at most one dot between two separators (1.5, a time's
                # fraction); only a dotted key or header has more.
                dots += 1
                if dots >= limits.max_key_parts:
                    raise self.refuse(number, f"a dotted key or table header with more than "
                                              f"{limits.max_key_parts} parts")
            elif c in "[{":
                dots = 0
                self.depth += 1
                if self.depth > limits.max_depth:
                    raise self.refuse(number, f"arrays or inline tables nested more than "
                                              f"{limits.max_depth} deep")
            elif c in "]}":
                dots = 0
                self.depth = max(self.depth - 1, 0)  # a stray closer cannot pre-pay depth
            else:  # = ,
                dots = 0
        return self.complete

    def _close_string(self, line: str, i: int, quote: str) -> int:
        """Index after a one-line string opened before ``i`` (the line's end if unclosed)."""
        if quote == "'":
            end = line.find("'", i)
            return len(line) if end < 0 else end + 1
        while True:
            m = _BASIC_STOP.search(line, i)
            if m is None:
                return len(line)
            if m.group() == '"':
                return m.end()
            i = m.end() + 1  # a backslash escapes the next character

    def _close_multiline(self, line: str, i: int) -> int:
        """Index after the open multi-line string closes on this line, or -1 if it does not."""
        delim = self.open
        assert delim is not None
        if delim == "'''":
            end = line.find(delim, i)
            if end < 0:
                return -1
            i = end + 3
        else:
            while True:
                m = _MULTI_BASIC_STOP.search(line, i)
                if m is None:
                    return -1
                i = m.end()
                if m.group() == '"""':
                    break
                i += 1  # a backslash escapes the next character (or ends the line)
        self.open = None
        # As tomllib: up to two more quotes belong to the string ("""a""""" is 'a""').
        for _ in range(2):
            if line.startswith(delim[0], i):
                i += 1
        return i


def bounded_lines(stream: IO[str], source: str,
                  limits: Limits = DEFAULT_LIMITS) -> Iterator[str]:
    """The lines of ``stream``, refused past ``max_line`` or ``max_bytes`` in all.

    A line is read at most ``max_line`` characters at a time, so a text of one huge line
    costs no more memory than the bound before it is refused.
    """
    total = 0
    number = 0
    chunk = limits.max_line + 2  # room for the line break (\r\n)
    while True:
        line = stream.readline(chunk)
        if not line:
            return
        number += 1
        total += len(line)
        if total > limits.max_bytes:
            raise UntrustedTextError(source, 0, f"larger than {_kib(limits.max_bytes)}")
        if len(line.rstrip("\r\n")) > limits.max_line:
            raise UntrustedTextError(source, number, f"line longer than {_kib(limits.max_line)}")
        yield line


def check_toml(text: str, source: str, limits: Limits = DEFAULT_LIMITS) -> None:
    """Raise :class:`UntrustedTextError` unless the whole TOML ``text`` is within ``limits``."""
    if len(text) > limits.max_bytes:
        raise UntrustedTextError(source, 0, f"larger than {_kib(limits.max_bytes)}")
    scanner = TomlScanner(source, limits)
    start = 0
    number = 0
    while start <= len(text):
        end = text.find("\n", start)
        if end < 0:
            end = len(text)
        number += 1
        if scanner.feed(text[start:end].rstrip("\r"), number):
            scanner.reset()
        start = end + 1


def read_bounded(stream: IO[str], source: str, limits: Limits = DEFAULT_LIMITS) -> str:
    """All of ``stream``, refused (without reading on) once it passes ``max_bytes``."""
    text = stream.read(limits.max_bytes + 1)
    if len(text) > limits.max_bytes:
        raise UntrustedTextError(source, 0, f"larger than {_kib(limits.max_bytes)}")
    return text


def read_regular(path: str, limit: int) -> Optional[bytes]:
    """At most ``limit + 1`` bytes of a regular file, opened without following a link (the
    caller tells "over the limit" by the length); None when it does not exist. Raises
    OSError when it is not a regular file or cannot be read."""
    try:  # O_NONBLOCK: a FIFO in the file's place would hold the open until a writer came
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise OSError(21, "not a regular file")
        return fh.read(limit + 1)
