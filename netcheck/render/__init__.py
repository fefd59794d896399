"""Renderers: turn a Report into text, JSON or a Nagios line. They compute nothing.

Two things every face shares live here: the one way a target is written
(:func:`canonical_target`) and how wide a terminal (or a pipe) is (:func:`columns`).
"""

from __future__ import annotations

import os
from typing import IO, Any, Mapping, Optional

# Width of text output that does not go to a terminal and has no $COLUMNS: a pasted
# report, a log file, a mail. The terminal's own width is used when there is one.
DEFAULT_COLUMNS = 80
MIN_COLUMNS = 40


def canonical_target(target: Mapping[str, Any]) -> str:
    """The target as every output writes it: ``scheme://host:port`` (plus the path of an
    http(s) URL, and ``user:***@`` when one was given), as
    :attr:`netcheck.target.Target.url` gives it.

    Built from a report's ``target`` object, so a batch entry whose port came from an option
    (``tcp://198.18.2.10`` with ``port = 23``) reads ``tcp://198.18.2.10:23`` everywhere.
    A report with no scheme or port (server mode, bad input) keeps its ``input``.
    """
    text = str(target.get("input") or "")
    scheme, host, port = target.get("scheme"), target.get("host"), target.get("port")
    if not (isinstance(scheme, str) and scheme and isinstance(host, str) and host
            and isinstance(port, int) and not isinstance(port, bool)):
        return text
    from netcheck.target import Target, TargetError, parse_target

    try:
        typed = parse_target(text)
    except TargetError:  # "tcp://host" whose port came from an option, say
        typed = Target(text, scheme, host, port)
    # The user and the path as typed (the input is already masked); the rest as diagnosed.
    return Target(text, scheme, host, port, path=typed.path, user=typed.user,
                  has_password=typed.has_password).url


def columns(out: Optional[IO[str]] = None, environ: Optional[Mapping[str, str]] = None) -> int:
    """How many columns text output may use: ``$COLUMNS`` when set, else the width of the
    terminal ``out`` is, else :data:`DEFAULT_COLUMNS` (a pipe or a file)."""
    env = os.environ if environ is None else environ
    value = env.get("COLUMNS", "")
    if value.isdigit() and int(value) > 0:
        return max(MIN_COLUMNS, int(value))
    if out is not None and is_terminal(out):
        try:
            return max(MIN_COLUMNS, os.get_terminal_size(out.fileno()).columns)
        except (OSError, ValueError, AttributeError):
            pass
    return DEFAULT_COLUMNS


def is_terminal(out: IO[str]) -> bool:
    """True when ``out`` is a terminal (anything without ``isatty`` is not)."""
    try:
        return bool(out.isatty())
    except (AttributeError, ValueError):
        return False


def wants_color(out: IO[str], no_color: bool = False,
                environ: Optional[Mapping[str, str]] = None) -> bool:
    """Colour (and any other escape sequence: bold, dim, a spinner) only on a terminal, and
    neither with ``--no-color`` nor with ``NO_COLOR`` set (https://no-color.org)."""
    env = os.environ if environ is None else environ
    return not no_color and "NO_COLOR" not in env and is_terminal(out)
