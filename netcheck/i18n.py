"""Texts in the reader's language: English in the code, Spanish and Catalan in .po catalogs.

Every summary and hint is written in English inside ``_()`` (named placeholders filled with
``.format()`` afterwards); ``netcheck/locale/{es,ca}/LC_MESSAGES/netcheck.po`` hold the
translations and ``tools/extract_messages.py`` keeps them in step with the code. The
catalogs are plain ``.po`` files read by the small parser below, so neither msgfmt nor
Babel is needed, and nothing is read at all while the language is English.

The language is chosen once per process (:func:`set_language`, done by the CLI from
``--lang`` or the locale) and can be overridden for one report (:func:`language`, a
context variable that the runner sets from ``Options.lang``, so concurrent runs of a batch
or an exporter each keep their own). Codes, JSON keys and evidence never go through here.
"""

from __future__ import annotations

import gettext  # argparse imports it anyway: no start-up cost for the CLI
import os
import re
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator, Mapping, Optional

LANGUAGES = ("en", "es", "ca")
DEFAULT = "en"
DOMAIN = "netcheck"
LOCALE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "locale")
# POSIX precedence for the message language (LANGUAGE, a GNU extension, is not consulted).
LOCALE_VARIABLES = ("LC_ALL", "LC_MESSAGES", "LANG")
CONTEXT_SEPARATOR = "\x04"  # GNU gettext's key for a msgctxt entry: context EOT msgid

_process_language = DEFAULT
# Set for the duration of one report; None means "the process's language".
_report_language: ContextVar[Optional[str]] = ContextVar("netcheck_language", default=None)
_cache: dict[str, gettext.NullTranslations] = {}
# Why a catalog could not be used (the texts then stay in English), per language.
load_errors: dict[str, str] = {}


# -- choosing the language ------------------------------------------------------------------

def normalise(lang: Optional[str]) -> str:
    """``es``, ``ca_ES.UTF-8``, ``es_AR``, ``ca@valencia`` -> ``es``/``ca``; anything else -> en."""
    if not lang:
        return DEFAULT
    code = re.split(r"[_.@\-:]", lang.strip(), maxsplit=1)[0].lower()
    return code if code in LANGUAGES else DEFAULT


def from_environment(environ: Optional[Mapping[str, str]] = None) -> str:
    """The language the locale asks for: the first of LC_ALL, LC_MESSAGES, LANG that is set."""
    env = os.environ if environ is None else environ
    for name in LOCALE_VARIABLES:
        value = env.get(name)
        if value:  # an empty variable does not count, as in setlocale(3)
            return normalise(value)
    return DEFAULT


def choose(explicit: Optional[str] = None, environ: Optional[Mapping[str, str]] = None) -> str:
    """``--lang`` when given, else the locale's language, else English."""
    return normalise(explicit) if explicit else from_environment(environ)


def set_language(lang: Optional[str]) -> str:
    """Set the process's language (the CLI does it once, before anything is rendered)."""
    global _process_language
    _process_language = normalise(lang)
    return _process_language


def process_language() -> str:
    """The process's language, whatever a report in progress may have chosen."""
    return _process_language


def get_language() -> str:
    """The language texts are produced in right now (this report's, else the process's)."""
    return _report_language.get() or _process_language


@contextmanager
def language(lang: Optional[str]) -> Iterator[str]:
    """Produce texts in ``lang`` inside the block (None: keep the current language).

    A context variable, so the asyncio tasks started inside (the checks) inherit it and
    concurrent reports in one event loop do not see each other's language.
    """
    if lang is None:
        yield get_language()
        return
    token = _report_language.set(normalise(lang))
    try:
        yield get_language()
    finally:
        _report_language.reset(token)


# -- the catalogs ---------------------------------------------------------------------------

class PoError(ValueError):
    """A .po file that cannot be read."""


_UNESCAPED_QUOTE = re.compile(r'(?<!\\)(?:\\\\)*"')
_ESCAPE = re.compile(r"\\(.)")
_PLURAL_MSGSTR = re.compile(r"msgstr\[(\d+)\]")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "a": "\a", "b": "\b",
            "f": "\f", "v": "\v"}


def _unquote(token: str, lineno: int) -> str:
    if len(token) < 2 or token[0] != '"' or token[-1] != '"':
        raise PoError(f"line {lineno}: expected a quoted string, got {token[:40]!r}")

    def escape(m: re.Match[str]) -> str:
        if m.group(1) not in _ESCAPES:
            raise PoError(f"line {lineno}: unknown escape \\{m.group(1)}")
        return _ESCAPES[m.group(1)]

    body = token[1:-1]
    if "\\" not in body:  # the common case, and the fast one
        if '"' in body:
            raise PoError(f"line {lineno}: unescaped quote")
        return body
    if _UNESCAPED_QUOTE.search(body):
        raise PoError(f"line {lineno}: unescaped quote")
    return _ESCAPE.sub(escape, body)


def parse_po(text: str) -> list[dict[str, object]]:
    """The entries of a .po file: dicts with msgid, msgid_plural, msgstr (list), msgctxt,
    fuzzy and obsolete. Raises :class:`PoError` on anything malformed."""
    reader = _PoReader()
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#~"):  # obsolete entries: kept by tools, never used
            continue
        if line.startswith("#"):
            reader.comment(line)
        elif line.startswith('"'):
            reader.continued(line, lineno)
        else:
            reader.keyword(line, lineno)
    reader.finish()
    for e in reader.entries:
        strs = e["msgstr"]
        assert isinstance(strs, dict)
        e["msgstr"] = [strs[i] for i in sorted(strs)]
    return reader.entries


class _PoReader:
    """The entry being read, its flags and the string a continuation line extends."""

    def __init__(self) -> None:
        self.entries: list[dict[str, object]] = []
        self.entry: dict[str, object] = {}
        self.field: Optional[tuple[str, int]] = None  # (keyword, plural index or -1)
        self.flags: set[str] = set()

    def finish(self) -> None:
        if self.entry:
            if "msgid" not in self.entry or not self.entry.get("msgstr"):
                raise PoError(f"entry {self.entry.get('msgid', '?')!r}: msgid and msgstr "
                              "needed")
            self.entry["fuzzy"] = "fuzzy" in self.flags
            self.entries.append(self.entry)
        self.entry, self.flags, self.field = {}, set(), None

    def comment(self, line: str) -> None:
        if "msgstr" in self.entry:  # a comment starts the next entry
            self.finish()
        if line.startswith("#,"):
            self.flags |= {f.strip() for f in line[2:].split(",")}

    def continued(self, line: str, lineno: int) -> None:
        if self.field is None:
            raise PoError(f"line {lineno}: a string outside any entry")
        key, index = self.field
        piece = _unquote(line, lineno)
        if index < 0:
            self.entry[key] = str(self.entry[key]) + piece
        else:
            strs = self.entry["msgstr"]
            assert isinstance(strs, dict)
            strs[index] += piece

    def keyword(self, line: str, lineno: int) -> None:
        keyword, _sep, rest = line.partition(" ")
        m = _PLURAL_MSGSTR.fullmatch(keyword) if keyword.startswith("msgstr[") else None
        if keyword in ("msgctxt", "msgid") and ("msgstr" in self.entry):
            self.finish()
        if keyword in ("msgctxt", "msgid", "msgid_plural"):
            if keyword in self.entry:
                raise PoError(f"line {lineno}: {keyword} twice in one entry")
            self.entry[keyword] = _unquote(rest.strip(), lineno)
            self.field = (keyword, -1)
        elif keyword == "msgstr" or m:
            index = int(m.group(1)) if m else 0
            strs = self.entry.setdefault("msgstr", {})
            assert isinstance(strs, dict)
            if index in strs:
                raise PoError(f"line {lineno}: msgstr[{index}] twice in one entry")
            strs[index] = _unquote(rest.strip(), lineno)
            self.field = ("msgstr", index)
        else:
            raise PoError(f"line {lineno}: unexpected {keyword[:30]!r}")


def placeholders(text: str) -> list[str]:
    """The ``{fields}`` of a message, sorted, with any conversion and format spec.

    Raises ValueError for unbalanced braces (a translation that would crash ``.format``).
    """
    import string

    found = []
    for _literal, name, spec, conversion in string.Formatter().parse(text):
        if name is not None:
            found.append(name + (f"!{conversion}" if conversion else "")
                         + (f":{spec}" if spec else ""))
    return sorted(found)


def _plural_function(header: str) -> Callable[[int], int]:
    m = re.search(r"plural\s*=\s*([^;\n]+)", header)
    if m:
        try:
            return gettext.c2py(m.group(1).strip())  # type: ignore[attr-defined,no-any-return]
        except (ValueError, SyntaxError, AttributeError, RecursionError):
            pass
    return lambda n: int(n != 1)  # Spanish and Catalan both have two forms


class PoTranslations(gettext.NullTranslations):
    """A catalog read from a .po file: gettext/ngettext answer from it, English otherwise.

    An entry is used only when it is translated, not fuzzy, and its placeholders are
    exactly those of its msgid: a broken translation costs one English text, never a crash.
    """

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.catalog: dict[object, str] = {}
        self.rejected: list[str] = []  # msgids whose translation was unusable
        self.header = ""
        self.plural: Callable[[int], int] = lambda n: int(n != 1)
        with open(path, encoding="utf-8") as f:
            entries = parse_po(f.read())
        for e in entries:
            msgid, strs = str(e["msgid"]), list(e["msgstr"])  # type: ignore[call-overload]
            if msgid == "" and "msgctxt" not in e:
                self.header = strs[0]
                self.plural = _plural_function(strs[0])
                continue
            if e["fuzzy"]:
                continue
            context = e.get("msgctxt")
            self._add(msgid, e.get("msgid_plural"), strs,
                      None if context is None else f"{context}{CONTEXT_SEPARATOR}{msgid}")

    def _add(self, msgid: str, plural: object, strs: list[str],
             key: Optional[str] = None) -> None:
        try:
            wanted = placeholders(msgid)
            usable = [s for s in strs if s and placeholders(s) == wanted]
        except ValueError:
            usable = []
        if not strs or len(usable) != len(strs):
            self.rejected.append(msgid)
            return
        if plural is None:
            self.catalog[key or msgid] = strs[0]
        else:
            for i, text in enumerate(strs):
                self.catalog[(msgid, i)] = text

    def gettext(self, message: str) -> str:
        return self.catalog.get(message, message)

    def ngettext(self, msgid1: str, msgid2: str, n: int) -> str:
        try:
            return self.catalog[(msgid1, self.plural(n))]
        except KeyError:
            return msgid1 if n == 1 else msgid2

    def pgettext(self, context: str, message: str) -> str:
        return self.catalog.get(f"{context}{CONTEXT_SEPARATOR}{message}", message)


def catalog_path(lang: str) -> str:
    return os.path.join(LOCALE_DIR, lang, "LC_MESSAGES", f"{DOMAIN}.po")


def translations(lang: str) -> gettext.NullTranslations:
    """The catalog of ``lang``, read once per process; English (no catalog) when it is
    ``en`` or its file is missing or corrupt (the reason is kept in :data:`load_errors`)."""
    lang = normalise(lang)
    found = _cache.get(lang)
    if found is None:
        if lang == DEFAULT:
            found = gettext.NullTranslations()
        else:
            path = catalog_path(lang)
            try:
                found = PoTranslations(path)
            except (OSError, UnicodeDecodeError, PoError) as exc:
                load_errors[lang] = f"{path}: {exc}"
                found = gettext.NullTranslations()
        _cache[lang] = found
    return found


def clear_cache() -> None:
    """Forget the catalogs read so far (tests that swap the locale directory)."""
    _cache.clear()
    load_errors.clear()


# -- marking texts ----------------------------------------------------------------------------

def _(message: str) -> str:
    """``message`` in the current language (format its named placeholders afterwards)."""
    lang = get_language()
    if lang == DEFAULT:
        return message
    return translations(lang).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural form for ``n``, in the current language."""
    lang = get_language()
    if lang == DEFAULT:
        return singular if n == 1 else plural
    return translations(lang).ngettext(singular, plural, n)


def pgettext(context: str, message: str) -> str:
    """``message`` in the current language, as meant in ``context`` (one English word
    that needs two words elsewhere: "none" for interfaces, feminine in Spanish)."""
    lang = get_language()
    if lang == DEFAULT:
        return message
    return translations(lang).pgettext(context, message)


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "mark, do not translate"
    """Mark a text for the catalogs where it is defined; translate it with ``_()`` where used."""
    return message


# -- what probes report -----------------------------------------------------------------------

# Words the probes record (the JSON evidence keeps them as they are) that a summary may quote:
# socket errors, and the ICMP errors as ping names them (netcheck.probes.icmp).
_PROBE_WORDS = frozenset((
    N_("timeout"), N_("network unreachable"), N_("host unreachable"), N_("blocked locally"),
    N_("no answer"), N_("net unreachable"), N_("protocol unreachable"),
    N_("port unreachable"), N_("fragmentation needed"), N_("net prohibited"),
    N_("host prohibited"), N_("administratively prohibited"), N_("TTL exceeded in transit"),
    N_("no route to destination"), N_("address unreachable"),
    N_("source address failed policy"), N_("reject route"), N_("packet too big"),
    N_("hop limit exceeded"), N_("rejected (port unreachable: nothing listens on 53)"),
))
_FROM_SENDER = re.compile(r"^(?P<what>.+) from (?P<sender>[0-9A-Fa-f.:%\w-]+)$")


def probe_text(raw: str) -> str:
    """A probe's own word for what happened (``timeout``, ``network unreachable``, an ICMP
    error ``… from 198.18.1.1``) in the current language, for a summary; anything else is
    returned as it is. Evidence keeps the raw value: only what a person reads changes."""
    if raw in _PROBE_WORDS:
        return _(raw)
    m = _FROM_SENDER.match(raw)
    if m and m.group("what") in _PROBE_WORDS:
        return _("{what} from {sender}").format(what=_(m.group("what")),
                                               sender=m.group("sender"))
    if raw.startswith("error: "):
        return _("error: {detail}").format(detail=raw[len("error: "):])
    return raw
