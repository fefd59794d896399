"""One pass over a profile's statements (:class:`_Reader`): groups, names, [defaults] and
per-target tables; the entries are resolved once [defaults] is fully known.
"""

from __future__ import annotations

from typing import Any, Optional

from netcheck.batch.profile.entries import Entry, Profile, _show
from netcheck.batch.profile.options import (
    DEFAULTS_SECTION,
    OPTION_KEYS,
    _type,
    build_target,
    check_option,
    shown_target,
    unknown_key_message,
)
from netcheck.batch.profile.statements import (
    _FAST_ENTRY,
    _FAST_HEADER,
    _key_path,
    _split_key,
    _Statement,
    _toml,
    _toml_message,
)
from netcheck.defaults import EXPECT
from netcheck.redact import shown
from netcheck.target import TargetError


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
