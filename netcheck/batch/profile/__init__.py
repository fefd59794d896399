"""Batch profiles: named groups of targets in TOML, or one target a line on stdin.

A profile::

    [defaults]                 # every target inherits these (optional, anywhere in the file)
    timeout = 2
    deadline = 10

    [campus]                   # a group: one line per target, NAME = TARGET
    www      = "https://www.upc.edu/"
    ssh      = "tcp://147.83.2.10:22"
    intranet = { target = "intranet.upc.edu", port = 8443, cafile = "upc-ca.pem" }
    telnet   = { target = "147.83.2.10", port = 23, scheme = "tcp", expect = "closed" }

Per-target keys (and ``[defaults]`` keys, ``target`` excepted): see :data:`OPTION_KEYS`.
``expect = "closed"`` turns the target around: it is ok when the port refuses or drops
the connection (a port that must stay shut).

The file is read statement by statement rather than with one ``tomllib.loads``: a single
TOML error would otherwise lose the whole file, and TOML itself makes a duplicate name a
syntax error. Here every problem — a syntax error, an unknown key, a duplicate name, a bad
target — is reported with its line number, and becomes an ``unknown`` result of its own,
while the good lines still run. Plain ``name = "target"`` lines (the bulk of a big profile)
take a regular-expression fast path, so 100 000 lines load in well under a second.

A profile may come from elsewhere: before any line reaches ``tomllib`` it is measured by
:mod:`netcheck.untrusted` (file size, line length, statement size, dotted-key parts, nesting),
and a profile past a bound is refused whole with its line number (:class:`ProfileError`).
Every text taken from the profile into an :class:`Entry` (names, targets, problems) has its
secrets masked and its control characters escaped here, once, so no output can show them.

The package, by concern: ``entries`` (Entry, Profile, ProfileError, profile text as it may be
shown), ``statements`` (the text split into bounded statements, keys taken apart), ``options``
(each option checked, the target built), ``reader`` (one pass over the statements). Here: the
readers of a whole profile or of target lines, :func:`load`, and every name importable from
``netcheck.batch.profile`` as before the split.
"""

from __future__ import annotations

import os
import re
import sys
from typing import IO, Any, Iterable, Optional

from netcheck.batch.profile.entries import MAX_SHOWN_TEXT, Entry, Profile, ProfileError, _show
from netcheck.batch.profile.options import (
    DEFAULTS_SECTION,
    EXPECTATIONS,
    OPTION_KEYS,
    build_target,
    check_option,
    shown_target,
    unknown_key_message,
)
from netcheck.batch.profile.reader import _Reader
from netcheck.batch.profile.statements import LIMITS, MAX_STATEMENT_LINES, _statements
from netcheck.defaults import EXPECT
from netcheck.redact import shown
from netcheck.target import TargetError
from netcheck.untrusted import UntrustedTextError, bounded_lines

# Every public name the module had before it became a package. load() looks up LIMITS here, at
# call time, so replacing it on this package (as a test does) replaces it for load().
__all__ = [
    "DEFAULTS_SECTION", "EXPECTATIONS", "Entry", "LIMITS", "MAX_SHOWN_TEXT",
    "MAX_STATEMENT_LINES", "OPTION_KEYS", "Profile", "ProfileError", "build_target",
    "check_option", "load", "read_profile", "read_target_lines", "shown_target",
    "unknown_key_message",
]

def read_profile(lines: Iterable[str], source: str = "<profile>", base: str = ".",
                 overrides: Optional[dict[str, Any]] = None) -> Profile:
    """Read a TOML profile from lines of text (see the module docstring for the format).

    ``overrides``: options given on the command line; they win over [defaults] but not over
    a target's own keys.
    """
    reader = _Reader(source, base, overrides)
    try:
        for st in _statements(lines, source):
            if st.header:
                reader.header(st)
            else:
                reader.statement(st)
    except UntrustedTextError as exc:  # refused whole: a hostile profile is not half run
        raise ProfileError(str(exc)) from None
    return reader.finish()


def read_target_lines(lines: Iterable[str], source: str = "<stdin>",
                      defaults: Optional[dict[str, Any]] = None) -> Profile:
    """One target a line (``netcheck batch -``); blank lines and ``# comments`` skipped."""
    profile = Profile(source, defaults=dict(defaults or {}))
    seen: dict[str, int] = {}
    options = {k: v for k, v in profile.defaults.items() if k not in ("scheme", "port", "expect")}
    expect = profile.defaults.get("expect", EXPECT)
    for number, raw in enumerate(lines, 1):
        text = raw.strip()
        if " #" in text or "\t#" in text:
            text = re.split(r"\s#", text, maxsplit=1)[0].strip()
        if not text or text.startswith("#"):
            continue
        try:
            target = build_target(text, profile.defaults)
        except TargetError as exc:
            label = _show(text)
            profile.entries.append(Entry(label, "", number, label, problem=shown(str(exc))))
            continue
        # Only a default scheme or port can make the target differ from the line as typed.
        changed = "scheme" in profile.defaults or "port" in profile.defaults
        label = shown_target(target) if changed else target.input
        first = seen.get(label)
        if first is not None:  # a list pasted twice: say so, but it is no failure
            if len(profile.notes) < 1000:
                profile.notes.append(f"{number}: duplicate target {label!r} (first at line "
                                     f"{first}); run once")
            continue
        seen[label] = number
        profile.entries.append(Entry(label, "", number, label, target, options, expect))
    return profile


def load(path: str, stdin: Optional[IO[str]] = None,
         defaults: Optional[dict[str, Any]] = None) -> Profile:
    """Load ``path`` (a TOML profile) or, for ``-``, one target a line from ``stdin``.

    ``defaults``: options from the command line (timeout, deadline, family, ...).
    """
    if path == "-":
        stream = stdin if stdin is not None else sys.stdin
        try:
            return read_target_lines(bounded_lines(stream, "<stdin>", LIMITS), "<stdin>",
                                     defaults)
        except UntrustedTextError as exc:
            raise ProfileError(str(exc)) from None
    source = _show(path)
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise ProfileError(f"{source}: {exc.strerror or exc}") from None
    if not os.path.isfile(path):
        raise ProfileError(f"{source}: not a regular file")
    if size > LIMITS.max_bytes:  # refused before a byte is read
        raise ProfileError(f"{source}: larger than {LIMITS.max_bytes >> 20} MiB")
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as fh:
            return read_profile(bounded_lines(fh, source, LIMITS), source,
                                os.path.dirname(os.path.abspath(path)), defaults)
    except UntrustedTextError as exc:  # the size, or a line, past its bound while reading
        raise ProfileError(str(exc)) from None
    except OSError as exc:
        raise ProfileError(f"{source}: {exc.strerror or exc}") from None
