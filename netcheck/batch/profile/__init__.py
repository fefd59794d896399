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
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from typing import IO, Any, Iterable, Iterator, Optional

from netcheck.defaults import EXPECT, EXPECTS
from netcheck.redact import shown
from netcheck.target import DEFAULT_PORTS, Target, TargetError, parse_target
from netcheck.untrusted import Limits, TomlScanner, UntrustedTextError, bounded_lines

# Keys a target (or [defaults]) may set, and what they mean.
OPTION_KEYS: dict[str, str] = {
    "target": "the target: host, host:port, address, [v6]:port or scheme://host[:port]/path",
    "port": "port number (overrides the target's)",
    "scheme": "scheme for a target written without one (tcp, https, ssh, smtp, ...)",
    "timeout": "per-probe timeout in seconds",
    "deadline": "bound on this target's diagnosis in seconds",
    "cafile": "extra CA bundle for TLS (relative to the profile's folder)",
    "cert": "client certificate for mutual TLS",
    "key": "client key for mutual TLS",
    "expect": '"open" (default) or "closed": a port that must stay shut',
    "family": "4 or 6: one address family only",
}
EXPECTATIONS = EXPECTS
DEFAULTS_SECTION = "defaults"
# Bounds that keep a hostile or mistaken input from exhausting memory, time or the terminal
# (docs/monitoring.md). 16 MiB is four times a 100 000-line profile; a line, a statement, a
# dotted key and the nesting are bounded far above what a profile needs.
LIMITS = Limits(max_bytes=16 << 20, max_line=16 << 10, max_statement=64 << 10,
                max_key_parts=32, max_depth=32)
MAX_STATEMENT_LINES = 200
MAX_SHOWN_TEXT = 120

_FAST_ENTRY = re.compile(
    r'^[ \t]*(?P<key>[A-Za-z0-9_-]+|"[^"\\\n]*")[ \t]*=[ \t]*"(?P<value>[^"\\\n]*)"[ \t]*'
    r'(?:#.*)?$')
_FAST_HEADER = re.compile(r"^[ \t]*\[[ \t]*(?P<name>[A-Za-z0-9_-]+)[ \t]*\][ \t]*(?:#.*)?$")
_TOML_WHERE = re.compile(r"\s*\(at (?:line (?P<line>\d+), column (?P<col>\d+)|end of document)\)")


class ProfileError(Exception):
    """The profile cannot be read at all (missing, unreadable, past a bound): one line."""


class Entry:
    """One line of the profile: a target to diagnose, or a problem to report as unknown.

    ``__slots__``: a profile may hold a hundred thousand of these.
    """

    __slots__ = ("name", "group", "line", "text", "target", "options", "expect", "problem")

    def __init__(self, name: str, group: str, line: int, text: str,
                 target: Optional[Target] = None, options: Optional[dict[str, Any]] = None,
                 expect: str = EXPECT, problem: Optional[str] = None) -> None:
        self.name = name  # "group/name", or the target text for a line of stdin
        self.group = group
        self.line = line
        self.text = text  # the target as written, its password masked
        self.target = target
        self.options = options if options is not None else {}
        self.expect = expect
        self.problem = problem  # why this line cannot run (then target is None)

    @property
    def runnable(self) -> bool:
        return self.problem is None and self.target is not None

    @property
    def short_name(self) -> str:
        """The name inside its group."""
        return self.name[len(self.group) + 1:] if self.group else self.name

    def __repr__(self) -> str:
        return f"<Entry {self.name!r} line {self.line} {self.problem or self.text!r}>"


@dataclass
class Profile:
    """Everything read from one profile, in file order."""

    source: str  # the file name as given, or "<stdin>"
    entries: list[Entry] = field(default_factory=list)
    defaults: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # "LINE: text" worth saying, not results

    @property
    def problems(self) -> list[Entry]:
        return [e for e in self.entries if e.problem is not None]

    @property
    def runnable(self) -> int:
        return sum(1 for e in self.entries if e.runnable)

    def problem_lines(self) -> Iterator[str]:
        """``FILE:LINE: message`` for every problem, as compilers print them."""
        for e in self.entries:
            if e.problem is not None:
                yield f"{self.source}:{e.line}: {e.problem}"
        for note in self.notes:
            yield f"{self.source}:{note}"


def _show(text: str) -> str:
    """Profile text as it may be shown: on one line, secrets masked, controls escaped, cut."""
    return shown(" ".join(text.split()), MAX_SHOWN_TEXT)


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


# -- statements ------------------------------------------------------------------------------

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


# -- values --------------------------------------------------------------------------------

def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} must be a number of seconds, not {_type(value)}")
    if not 0 < value <= 3600:
        raise ValueError(f"{key} must be between 0 and 3600 seconds (got {value})")
    return float(value)


def _type(value: Any) -> str:
    return {str: "a string", bool: "true/false", int: "an integer", float: "a number",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


def _path_option(key: str, value: Any, base: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} must be a file path (a string)")
    path = value if os.path.isabs(value) else os.path.join(base, value)
    if not os.path.isfile(path):
        raise ValueError(f"{key} {_show(value)!r}: no such file")
    if not os.access(path, os.R_OK):
        raise ValueError(f"{key} {_show(value)!r}: not readable")
    return path


def check_option(key: str, value: Any, base: str = ".") -> Any:
    """Validate one option; return its normalised value or raise ValueError (one line)."""
    if key == "port":
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            raise ValueError(f"port must be a number from 1 to 65535 (got {_show(repr(value))})")
        return value
    if key == "scheme":
        if not isinstance(value, str) or value.lower() not in DEFAULT_PORTS:
            raise ValueError(f"unknown scheme {_show(repr(value))} "
                             f"(known: {' '.join(DEFAULT_PORTS)})")
        return value.lower()
    if key in ("timeout", "deadline"):
        return _number(key, value)
    if key in ("cafile", "cert", "key"):
        return _path_option(key, value, base)
    if key == "expect":
        if value not in EXPECTATIONS:
            raise ValueError(f'expect must be "open" or "closed" (got {_show(repr(value))})')
        return value
    if key == "family":
        if isinstance(value, bool) or value not in (4, 6):
            raise ValueError(f"family must be 4 or 6 (got {_show(repr(value))})")
        return value
    if key == "target":
        if not isinstance(value, str):
            raise ValueError(f"target must be a string, not {_type(value)}")
        return value
    raise ValueError(unknown_key_message(key))


def unknown_key_message(key: str, allowed: Iterable[str] = OPTION_KEYS) -> str:
    import difflib

    allowed = list(allowed)
    close = difflib.get_close_matches(key, allowed, n=1)
    guess = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key {_show(key)!r}{guess}; known keys: {', '.join(allowed)}"


def _has_port(text: str) -> bool:
    """True when the target text names a port itself (``host:22``, ``https://h:8443/``)."""
    rest = text.split("://", 1)[1] if "://" in text else text
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0].rpartition("@")[2]
    if authority.startswith("["):
        return "]:" in authority
    return authority.count(":") == 1


def build_target(text: str, options: dict[str, Any], explicit: Iterable[str] = ()) -> Target:
    """The Target for ``text`` with the options applied (``explicit``: keys the entry set itself).

    A scheme applies to a target written without one; a port set on the entry overrides the
    target's, while a default port only fills in for a target that names none.
    """
    explicit = set(explicit)
    scheme = options.get("scheme")
    written = text
    if scheme:
        if "://" not in text:
            bare_v6 = text.count(":") > 1 and not text.startswith("[")
            written = f"{scheme}://[{text}]" if bare_v6 else f"{scheme}://{text}"
        elif "scheme" in explicit and text.split("://", 1)[0].lower() != scheme:
            raise TargetError(f"scheme {scheme!r} contradicts the target's own "
                              f"{text.split('://', 1)[0]!r}")
    port = options.get("port")
    if port is not None and "port" not in explicit and _has_port(written):
        port = None
    return parse_target(written, port)


def shown_target(target: Target) -> str:
    """The target as typed, or as a URL when an option changed its scheme or port."""
    try:
        typed = parse_target(target.input)
    except TargetError:
        return target.url
    if (typed.scheme, typed.port) == (target.scheme, target.port):
        return target.input
    return target.url


# -- the profile ----------------------------------------------------------------------------

class _Reader:
    """One pass over the statements; entries are resolved once [defaults] is fully known."""

    def __init__(self, source: str, base: str, overrides: Optional[dict[str, Any]]) -> None:
        self.profile = Profile(source)
        self.base = base
        self.overrides = dict(overrides or {})
        self.section: tuple[str, ...] = ()
        self.sections_seen: dict[tuple[str, ...], int] = {}
        self.names: dict[str, int] = {}
        # (index in entries, the entry's own table or None for a plain "target" string, the
        # target as written): the raw text stays here, the Entry only ever holds it masked.
        self.pending: list[tuple[int, Optional[dict[str, Any]], str]] = []
        self.default_lines: dict[str, int] = {}
        self.problem_names: set[str] = set()
        self.problem_suffix: dict[str, int] = {}  # last "#N" given to a name, so no rescans

    def problem(self, line: int, message: str, name: str = "", text: str = "",
                group: str = "") -> None:
        """One problem entry; ``name`` and ``group`` already shown, ``text``/``message`` raw."""
        base = name = name or f"{self.profile.source}:{line}"
        suffix = self.problem_suffix.get(base, 0)
        while name in self.problem_names:  # two problems on one line: names stay unique labels
            suffix += 1
            name = f"{base}#{suffix}"
        self.problem_suffix[base] = suffix
        self.problem_names.add(name)
        self.profile.entries.append(Entry(name, group, line, _show(text),
                                          problem=shown(message)))

    def header(self, st: _Statement) -> None:
        match = _FAST_HEADER.match(st.text)
        if match:
            path: tuple[str, ...] = (match.group("name"),)
        else:
            stripped = st.text.strip()
            if stripped.startswith("[["):
                self.problem(st.line, f"{_show(stripped)}: arrays of tables are not used in a "
                             "profile; write [group] and NAME = TARGET lines", text=stripped)
                inner = stripped[1:stripped.rfind("]")] if "]]" in stripped else stripped[2:]
                stripped = inner
            try:
                doc = _toml().loads(stripped)
            except Exception as exc:
                self.problem(st.line, f"bad section header: {_toml_message(exc, st.line)}",
                             text=st.text)
                self.section = ("",)  # until the next good header, lines go nowhere known
                return
            path = ()
            while isinstance(doc, dict) and len(doc) == 1:
                (name, doc), = doc.items()
                path += (name,)
            if not path:
                self.problem(st.line, "empty section header", text=st.text)
                return
        first = self.sections_seen.get(path)
        if first is not None:
            # TOML forbids it; its lines are kept (in the same group) and the header reported.
            self.problem(st.line, f"[{'.'.join(path)}] is defined again (first at line {first});"
                         " its targets are added to the first", text=st.text)
        else:
            self.sections_seen[path] = st.line
        self.section = path

    def statement(self, st: _Statement) -> None:
        fast = _FAST_ENTRY.match(st.text) if "\n" not in st.text else None
        if fast:
            key = fast.group("key")
            path: tuple[str, ...] = (key[1:-1] if key.startswith('"') else key,)
            value: Any = fast.group("value")
        else:
            try:
                doc = _toml().loads(st.text)
                path = _key_path(_split_key(st.text))
            except Exception as exc:
                self.problem(st.line, _toml_message(exc, st.line), text=st.text)
                return
            value = doc
            for part in path:
                value = value[part]
        if self.section == ("",):
            self.problem(st.line, "this line belongs to a bad section header above",
                         text=st.text)
            return
        full = self.section + path
        if full[0] == DEFAULTS_SECTION and len(self.section) <= 1:
            self.default(st, full[1:], value)
            return
        if len(path) > 1:
            self.problem(st.line, f"dotted key {'.'.join(path)!r}: write "
                         f"{path[0]} = {{ target = ..., {path[1]} = ... }}", text=st.text)
            return
        self.entry(st, shown(".".join(self.section)), path[0], value)

    def default(self, st: _Statement, path: tuple[str, ...], value: Any) -> None:
        if not path:  # defaults = { ... } at the top
            if not isinstance(value, dict):
                self.problem(st.line, "defaults must be a table", text=st.text)
                return
            items = list(value.items())
        elif len(path) == 1:
            items = [(path[0], value)]
        else:
            self.problem(st.line, f"[defaults] takes plain keys, not {'.'.join(path)!r}",
                         text=st.text)
            return
        for key, val in items:
            if key == "target":
                self.problem(st.line, "[defaults] cannot set a target", text=st.text)
                continue
            if key not in OPTION_KEYS:
                self.problem(st.line, f"[defaults]: {unknown_key_message(key)}", text=st.text)
                continue
            if key in self.default_lines:
                self.problem(st.line, f"[defaults]: {key} is set again (first at line "
                             f"{self.default_lines[key]})", text=st.text)
                continue
            try:
                self.profile.defaults[key] = check_option(key, val, self.base)
                self.default_lines[key] = st.line
            except ValueError as exc:
                self.problem(st.line, f"[defaults]: {exc}", text=st.text)

    def entry(self, st: _Statement, group: str, key: str, value: Any) -> None:
        """A ``NAME = TARGET`` line of ``group`` (already shown)."""
        name = f"{group}/{shown(key)}" if group else shown(key)
        first = self.names.get(name)
        text = value if isinstance(value, str) else str(value.get("target", "")) \
            if isinstance(value, dict) else ""
        if first is not None:
            self.problem(st.line, f"duplicate name {name!r} (first at line {first}); "
                         "this one is not run", name=f"{name}#{st.line}", text=text, group=group)
            return
        self.names[name] = st.line
        if isinstance(value, str):
            overrides = None
        elif isinstance(value, dict):
            overrides = value
            if "target" not in value:
                self.problem(st.line, f"{name}: no target (write target = \"host\")",
                             name=name, text=st.text, group=group)
                return
        else:
            self.problem(st.line, f"{name}: a target is a string or a table, not "
                         f"{_type(value)}", name=name, text=st.text, group=group)
            return
        self.pending.append((len(self.profile.entries), overrides, text))
        self.profile.entries.append(Entry(name, group, st.line, _show(text)))

    def finish(self) -> Profile:
        """Resolve every entry against the defaults, now that all of them are known.

        Precedence: the entry's own keys, then the command line, then [defaults].
        """
        defaults = {**self.profile.defaults, **self.overrides}
        reshaped = "scheme" in defaults or "port" in defaults
        shared_options = {k: v for k, v in defaults.items()
                          if k not in ("scheme", "port", "expect")}
        for index, overrides, text in self.pending:
            entry = self.profile.entries[index]
            try:
                if overrides is None:
                    entry.target = build_target(text, defaults)
                    entry.options = shared_options  # one dict for all the plain entries
                    entry.expect = defaults.get("expect", EXPECT)
                else:
                    checked = {}
                    for key, val in overrides.items():
                        checked[key] = check_option(key, val, self.base)
                    merged = {**defaults, **checked}
                    entry.target = build_target(checked["target"], merged, explicit=checked)
                    entry.options = {k: v for k, v in merged.items()
                                     if k not in ("scheme", "port", "expect", "target")}
                    entry.expect = merged.get("expect", EXPECT)
                    if "key" in entry.options and "cert" not in entry.options:
                        raise ValueError("key needs cert")
                if overrides is not None or reshaped:
                    entry.text = shown_target(entry.target)
                else:
                    entry.text = entry.target.input
            except (TargetError, ValueError) as exc:
                entry.problem = shown(f"{entry.name}: {exc}")
                entry.target = None
        self.pending = []
        return self.profile


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
        label = _show(text)
        try:
            target = build_target(text, profile.defaults)
        except TargetError as exc:
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
