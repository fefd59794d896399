"""A profile's TOML text split into statements (table headers and, possibly multi-line, key =
value), within the bounds of :data:`LIMITS`, before any reaches ``tomllib``; keys taken apart;
tomllib's messages with positions made absolute.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from netcheck.untrusted import Limits, TomlScanner

# Bounds that keep a hostile or mistaken input from exhausting memory, time or the terminal
# (docs/monitoring.md). 16 MiB is four times a 100 000-line profile; a line, a statement, a
# dotted key and the nesting are bounded far above what a profile needs.
LIMITS = Limits(max_bytes=16 << 20, max_line=16 << 10, max_statement=64 << 10,
                max_key_parts=32, max_depth=32)
MAX_STATEMENT_LINES = 200

_FAST_ENTRY = re.compile(
    r'^[ \t]*(?P<key>[A-Za-z0-9_-]+|"[^"\\\n]*")[ \t]*=[ \t]*"(?P<value>[^"\\\n]*)"[ \t]*'
    r'(?:#.*)?$')
_FAST_HEADER = re.compile(r"^[ \t]*\[[ \t]*(?P<name>[A-Za-z0-9_-]+)[ \t]*\][ \t]*(?:#.*)?$")
_TOML_WHERE = re.compile(r"\s*\(at (?:line (?P<line>\d+), column (?P<col>\d+)|end of document)\)")


def _toml() -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.9/3.10
        import tomli as tomllib
    return tomllib


def _toml_message(exc: Exception, first_line: int) -> str:
    """tomllib's message with the statement-relative position made absolute."""
    message = str(exc)
    where = _TOML_WHERE.search(message)
    if where is None:
        return message
    plain = message[:where.start()] + message[where.end():]
    if where.group("line"):
        return f"{plain} (column {where.group('col')})" if int(where.group("line")) == 1 \
            else f"{plain} (line {first_line + int(where.group('line')) - 1})"
    return f"{plain} (at the end of the statement)"


@dataclass
class _Statement:
    line: int
    text: str
    header: bool = False


def _statements(lines: Iterable[str], source: str,
                limits: Limits = LIMITS) -> Iterator[_Statement]:
    """Split TOML text into statements: table headers and (possibly multi-line) key = value.

    Raises UntrustedTextError when a line or a statement exceeds ``limits``: checked here,
    before tomllib sees any of it.
    """
    scanner = TomlScanner(source, limits)
    buf: list[str] = []
    start = 0
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n")
        scanner.check_line(line, number)  # before any regular expression runs over it
        if not buf:
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            if _FAST_ENTRY.match(line):  # the common case: one complete line, no dotted key
                yield _Statement(number, line)
                continue
            start = number
            if stripped.startswith("["):
                scanner.feed(line, number)
                scanner.reset()
                yield _Statement(number, line, header=True)
                continue
        buf.append(line)
        if scanner.feed(line, number) or len(buf) >= MAX_STATEMENT_LINES:
            yield _Statement(start, "\n".join(buf))
            buf = []
            scanner.reset()
    if buf:
        yield _Statement(start, "\n".join(buf))


def _key_path(key_text: str) -> tuple[str, ...]:
    """The key of ``key_text = ...`` as a path (dotted keys give more than one part)."""
    doc = _toml().loads(f"{key_text} = 0")
    path: list[str] = []
    while isinstance(doc, dict) and len(doc) == 1:
        (name, doc), = doc.items()
        path.append(name)
    return tuple(path)


def _split_key(text: str) -> str:
    """The text before the ``=`` of a statement (quotes respected)."""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "\"'":
            end = text.find(c, i + 1)
            i = n if end < 0 else end + 1
            continue
        if c == "=":
            return text[:i].strip()
        i += 1
    return text.strip()
