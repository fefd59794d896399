"""Extract the translatable texts from the code and update the .po catalogs.

Every ``_("...")``, ``N_("...")``, ``ngettext("...", "...", n)`` and
``pgettext("context", "...")`` in ``netcheck/`` and ``checks/`` is found with the ``ast``
module (so a text must be a literal: an f-string cannot be looked up in a catalog, and this
tool reports it). So is the title of every check declared with ``@check(...)``: the first
line of its docstring, which the text report and ``netcheck checks`` translate. The
catalogs under ``netcheck/locale/<lang>/LC_MESSAGES/netcheck.po`` are then rewritten:
translations of texts still in the code are kept, new texts get an empty translation to
fill in, and texts no longer in the code are dropped (listed on the way).

    python tools/extract_messages.py           # update the catalogs
    python tools/extract_messages.py --check   # exit 1 if they are not up to date
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parent.parent
SOURCES = (REPO / "netcheck", REPO / "checks")
LOCALE = REPO / "netcheck" / "locale"
LANGUAGES = {"es": "Spanish", "ca": "Catalan"}
# Function name -> how many leading literal arguments it takes (context, texts).
MARKERS = {"_": 1, "N_": 1, "ngettext": 2, "pgettext": 2}
WIDTH = 79

Key = tuple[Optional[str], str, Optional[str]]  # (msgctxt, msgid, msgid_plural)


@dataclass
class Message:
    """One text to translate and where the code uses it."""

    msgid: str
    plural: Optional[str] = None
    context: Optional[str] = None
    refs: list[str] = field(default_factory=list)

    @property
    def key(self) -> Key:
        return (self.context, self.msgid, self.plural)


def _marker(call: ast.Call) -> Optional[str]:
    func = call.func
    name = func.id if isinstance(func, ast.Name) else (
        func.attr if isinstance(func, ast.Attribute) else None)
    return name if name in MARKERS else None


def _literal(node: ast.expr) -> Optional[str]:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def extract_file(path: Path, rel: str, found: dict[Key, Message], problems: list[str]) -> None:
    """Add the texts marked in one source file to ``found``; what cannot be extracted to
    ``problems``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for title, lineno in check_titles(tree):
        found.setdefault((None, title, None), Message(title)).refs.append(f"{rel}:{lineno}")
    calls = sorted((n for n in ast.walk(tree) if isinstance(n, ast.Call)),
                   key=lambda n: (n.lineno, n.col_offset))  # the catalog follows the code
    for node in calls:
        name = _marker(node)
        if name is None:
            continue
        where = f"{rel}:{node.lineno}"
        args = node.args[:MARKERS[name]]
        if len(args) < MARKERS[name]:
            problems.append(f"{where}: {name}() needs {MARKERS[name]} text argument(s)")
            continue
        texts = [_literal(a) for a in args]
        if any(t is None for t in texts):
            # A variable is fine (a text marked with N_() elsewhere); anything built on the
            # spot (an f-string, "+", .format() inside the call) cannot be in a catalog.
            if all(isinstance(a, (ast.Name, ast.Subscript, ast.Attribute, ast.Call))
                   and not _builds_text(a) for a in args):
                continue
            problems.append(f"{where}: {name}() of a text built at run time "
                            f"({ast.unparse(args[0])[:60]}): use a literal with named "
                            "placeholders and .format() after the call")
            continue
        context = texts.pop(0) if name == "pgettext" else None
        msgid = texts[0]
        assert msgid is not None
        if msgid == "":
            problems.append(f"{where}: {name}('') is the catalog header, not a text")
            continue
        msg = Message(msgid, texts[1] if name == "ngettext" else None, context)
        found.setdefault(msg.key, msg).refs.append(where)


def check_titles(tree: ast.AST) -> list[tuple[str, int]]:
    """The titles of the checks declared in a module: for every function decorated with
    ``@check(...)``, its docstring's first line without a final period (as
    :attr:`netcheck.registry.Check.title` reads it), with the function's line."""
    titles = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        declared = any(isinstance(d, ast.Call) and _marker_name(d) == "check"
                       for d in node.decorator_list)
        doc = ast.get_docstring(node) if declared else None
        if doc and doc.strip():
            titles.append((doc.strip().splitlines()[0].rstrip("."), node.lineno))
    return sorted(titles, key=lambda t: t[1])


def _marker_name(call: ast.Call) -> Optional[str]:
    func = call.func
    return func.id if isinstance(func, ast.Name) else (
        func.attr if isinstance(func, ast.Attribute) else None)


def _builds_text(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
        node.func.attr in ("format", "join", "replace")


def extract(sources: Sequence[Path] = SOURCES,
            root: Path = REPO) -> tuple[dict[Key, Message], list[str]]:
    """Every marked text under ``sources`` (in file and line order), and the problems."""
    found: dict[Key, Message] = {}
    problems: list[str] = []
    for base in sources:
        for path in sorted(base.rglob("*.py")):
            extract_file(path, path.relative_to(root).as_posix(), found, problems)
    return found, problems


# -- writing .po files ------------------------------------------------------------------------

def _escape(text: str) -> str:
    return (text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
            .replace("\t", "\\t"))


def _chunks(text: str, room: int) -> list[str]:
    """Split at spaces (kept at the end of a piece) into pieces of at most ``room``."""
    pieces: list[str] = []
    current = ""
    for word in text.replace(" ", " \0").split("\0"):
        if current and len(_escape(current + word)) > room:
            pieces.append(current)
            current = ""
        current += word
    if current:
        pieces.append(current)
    return pieces


def _field(keyword: str, text: str) -> list[str]:
    one = f'{keyword} "{_escape(text)}"'
    if len(one) <= WIDTH and "\n" not in text[:-1]:
        return [one]
    lines = [f'{keyword} ""']
    for part in text.splitlines(keepends=True):
        lines += [f'"{_escape(p)}"' for p in _chunks(part, WIDTH - 2)]
    return lines


def _header(lang: str) -> str:
    return (f"Project-Id-Version: netcheck\nLanguage: {lang}\nMIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n"
            "Plural-Forms: nplurals=2; plural=(n != 1);\n")


def render_po(lang: str, messages: Sequence[Message], translated: dict[Key, list[str]]) -> str:
    """The whole .po text for ``lang``: header, then one entry per message in code order."""
    from netcheck.i18n import placeholders

    out = [f"# {LANGUAGES.get(lang, lang)} translations of netcheck's summaries and hints.",
           "# Generated by tools/extract_messages.py: edit the msgstr lines, keep the",
           "# {placeholders} of each msgid exactly, and rerun the tool after changing code.",
           'msgid ""', 'msgstr ""']
    out += [f'"{_escape(line)}"' for line in _header(lang).splitlines(keepends=True)]
    for msg in messages:
        out.append("")
        refs = " ".join(msg.refs)
        out += [f"#: {chunk.strip()}" for chunk in _chunks(refs, WIDTH - 3)]
        try:
            braces = bool(placeholders(msg.msgid))
        except ValueError:
            braces = False
        if braces:
            out.append("#, python-brace-format")
        old = translated.get(msg.key, [])
        if msg.context is not None:
            out += _field("msgctxt", msg.context)
        out += _field("msgid", msg.msgid)
        if msg.plural is None:
            out += _field("msgstr", old[0] if old else "")
        else:
            out += _field("msgid_plural", msg.plural)
            for i in range(2):
                out += _field(f"msgstr[{i}]", old[i] if i < len(old) else "")
    return "\n".join(out) + "\n"


def read_translations(path: Path) -> dict[Key, list[str]]:
    """msgid (or msgid, plural) -> its translations, from an existing catalog."""
    from netcheck.i18n import parse_po

    if not path.exists():
        return {}
    out: dict[Key, list[str]] = {}
    for e in parse_po(path.read_text(encoding="utf-8")):
        msgid = str(e["msgid"])
        context = e.get("msgctxt")
        if (msgid == "" and context is None) or e.get("fuzzy"):
            continue
        plural = e.get("msgid_plural")
        key: Key = (None if context is None else str(context), msgid,
                    None if plural is None else str(plural))
        out[key] = list(e["msgstr"])  # type: ignore[call-overload]
    return out


def update(check: bool = False, out=sys.stdout) -> int:  # type: ignore[no-untyped-def]
    """Extract, then write (or with ``check`` only compare) every catalog; exit status."""
    found, problems = extract()
    for p in problems:
        out.write(f"error: {p}\n")
    messages = list(found.values())
    status = 1 if problems else 0
    for lang in LANGUAGES:
        path = LOCALE / lang / "LC_MESSAGES" / "netcheck.po"
        old = read_translations(path)
        stale = [k for k in old if k not in found]
        untranslated = [m.key for m in messages if not any(old.get(m.key, []))]
        text = render_po(lang, messages, old)
        current = path.read_text(encoding="utf-8") if path.exists() else None
        for key in stale:
            out.write(f"{lang}: dropped (no longer in the code): {key!r}\n"[:200])
        if untranslated:
            out.write(f"{lang}: {len(untranslated)} text(s) to translate\n")
        if text != current:
            if check:
                out.write(f"{lang}: {path.relative_to(REPO)} is not up to date\n")
                status = 1
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
                out.write(f"{lang}: wrote {path.relative_to(REPO)} ({len(messages)} texts)\n")
        if check and untranslated:
            status = 1
    return status


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if a catalog is out of date or incomplete")
    args = parser.parse_args(argv)
    return update(check=args.check)


if __name__ == "__main__":
    sys.exit(main())
