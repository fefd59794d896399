"""The terminal view: the OSI ladder walked bottom-up, hints where they help, a diagnosis.

rich is imported inside the functions: importing rich.console alone costs about 30 ms,
and the CLI must start in under 150 ms even for ``--format json``.

Every text that can come from outside (the target as typed, names, summaries, evidence, a
server's banner, hints that quote them) goes through :func:`netcheck.redact.shown` on its way
to the terminal: a password in a URL is masked and an escape sequence is shown, not obeyed.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Iterable, Optional

from netcheck.i18n import N_, _, pgettext
from netcheck.model import CheckOutcome, Hint, Layer, Report, Status, Verdict, split_comment
from netcheck.redact import mask_secrets, printable, shown
from netcheck.render import canonical_target

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.style import Style

_SYMBOLS = {
    Status.PASS: "✔",
    Status.FAIL: "✖",
    Status.WARN: "!",
    Status.SKIP: "–",
    Status.ERROR: "?",
}
# For a terminal that cannot encode the symbols above (a C locale, a serial console).
_ASCII_SYMBOLS = {
    Status.PASS: "+",
    Status.FAIL: "x",
    Status.WARN: "!",
    Status.SKIP: "-",
    Status.ERROR: "?",
}
_STATUS_STYLE = {
    Status.PASS: "green",
    Status.FAIL: "bold red",
    Status.WARN: "yellow",
    Status.SKIP: "dim",
    Status.ERROR: "magenta",
}
# The rungs as the course's slides name them ("Nivel de red", "Nivell de xarxa").
LAYER_NAMES = {
    Layer.PHYSICAL: N_("Physical"),
    Layer.LINK: N_("Link"),
    Layer.NETWORK: N_("Network"),
    Layer.TRANSPORT: N_("Transport"),
    Layer.SESSION: N_("Session"),
    Layer.PRESENTATION: N_("Presentation"),
    Layer.APPLICATION: N_("Application"),
}
VERDICT_WORDS = {
    Verdict.OK: N_("OK"),
    Verdict.DEGRADED: N_("DEGRADED"),
    Verdict.BROKEN: N_("BROKEN"),
    Verdict.UNKNOWN: N_("UNKNOWN"),
}


def layer_name(layer: Layer) -> str:
    """The rung's name in the reader's language (``Layer.label`` in English)."""
    return _(LAYER_NAMES[Layer(int(layer))])


def verdict_word(verdict: Verdict) -> str:
    """OK, DEGRADED, BROKEN, UNKNOWN in the reader's language (the JSON keeps the value)."""
    return _(VERDICT_WORDS[verdict])


def title_of(title: str) -> str:
    """A check's title (its docstring's first line) in the reader's language.

    tools/extract_messages.py puts every built-in check's title in the catalogs; a
    third-party check's title is not there and stays as its author wrote it. The JSON keeps
    the English title (the contract's ``title``).
    """
    return _(title) if title else title


# What a hint's command may leave for the reader to fill in (``<the right gateway>``): the
# reader's words between the brackets; the JSON keeps the command as the check wrote it.
_PLACEHOLDERS = frozenset((
    N_("address"), N_("prefix"), N_("interface"), N_("gateway"), N_("the right gateway"),
    N_("your DNS server"), N_("service"), N_("unit"), N_("namespace"), N_("peer"),
))
_PLACEHOLDER = re.compile(r"<([^<>\n]{1,40})>")


def local_placeholders(command: str) -> str:
    """``command`` with its known ``<placeholders>`` in the reader's language."""
    return _PLACEHOLDER.sub(lambda m: f"<{_(m.group(1))}>" if m.group(1) in _PLACEHOLDERS
                            else m.group(0), command)


_VERDICT_STYLE = {
    Verdict.OK: "bold green",
    Verdict.DEGRADED: "bold yellow",
    Verdict.BROKEN: "bold red",
    Verdict.UNKNOWN: "bold magenta",
}


class _Look:
    """Symbols and styles for one console: colour on or off, Unicode or plain ASCII."""

    def __init__(self, color: bool, unicode: bool) -> None:
        self.color = color
        self.unicode = unicode
        self.dash = " — " if unicode else " - "
        self.arrow = "→" if unicode else "->"
        self.root_marker = ("◀ " if unicode else "<- ") + _("root cause")

    def style(self, spec: str) -> Style:
        from rich.style import Style

        # Without colour no style at all: --no-color, NO_COLOR and a pipe get plain text,
        # not one escape sequence (bold and dim included), whatever the console would allow.
        return Style.parse(spec) if self.color else Style.null()

    def symbol(self, status: Status) -> str:
        return (_SYMBOLS if self.unicode else _ASCII_SYMBOLS)[status]


def _value_text(value: Any) -> str:
    if isinstance(value, str):
        return shown(value)
    # Lists, dicts, numbers, booleans and null as compact JSON: one line, unambiguous (JSON
    # escapes C0 controls but keeps DEL, C1 and bidi characters, hence shown() as well).
    return shown(json.dumps(value, ensure_ascii=False, default=str))


def _lines(text: str) -> str:
    """Outside text that may span lines (a hint): masked, controls escaped, newlines kept."""
    return printable(mask_secrets(text), keep_newlines=True)


def _header(report: Report, look: _Look) -> RenderableType:
    from rich.text import Text

    target = report.target or {}
    host = report.host or {}
    line = Text()
    line.append(f"netcheck {report.version}", style=look.style("bold"))
    if report.mode != "diagnose":
        line.append("  " + (_("server mode") if report.mode == "server"
                            else _("{mode} mode").format(mode=report.mode)))
    line.append("  ")
    line.append(shown(canonical_target(target) or "-"), style=look.style("bold"))
    addresses = target.get("addresses") or []
    if addresses:
        line.append(f" {look.arrow} {shown(', '.join(str(a) for a in addresses))}")
    line.append("  " + _("egress {interface}").format(
        interface=shown(str(host.get("egress_interface") or pgettext("interface", "unknown")))))
    line.append("  " + _("host {hostname}").format(
        hostname=shown(str(host.get("hostname") or _("unknown")))))
    line.append("  " + _("privileged: {answer}").format(
        answer=_("yes") if host.get("privileged") else _("no")))
    if report.request_id:
        line.append("  " + _("request id {id}").format(id=shown(report.request_id)))
    return line


def _rung_heading(layer: Layer, checked: bool, is_root: bool, verdict: Verdict,
                  look: _Look) -> RenderableType:
    from rich.text import Text

    heading = Text(f"L{int(layer)} {layer_name(layer)}",
                   style=look.style("bold" if checked else "dim"))
    if not checked:
        heading.append("  " + _("not checked"), style=look.style("dim"))
    if is_root:
        marker_style = "bold yellow" if verdict is Verdict.DEGRADED else "bold red"
        heading.append(f"  {look.root_marker}", style=look.style(marker_style))
    return heading


def _check_line(check: CheckOutcome, verbose: bool, look: _Look) -> RenderableType:
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    result = check.result
    style = look.style(_STATUS_STYLE[result.status])
    body = Text()
    if result.status is Status.SKIP:
        body.append(shown(title_of(check.title)), style=look.style("dim"))
        reason = (_("blocked by {check}").format(check=shown(result.blocked_by))
                  if result.blocked_by else shown(result.summary))
        body.append(f"{look.dash}{reason}", style=look.style("dim"))
    else:
        body.append(shown(title_of(check.title)))
        if result.summary:
            body.append(look.dash)
            body.append(shown(result.summary))
        if result.code:
            body.append(f" [{shown(result.code)}]", style=style)
    if verbose:
        body.append(f" ({check.duration_ms:.1f} ms)", style=look.style("dim"))
    # A grid keeps wrapped summaries aligned under the title rather than under the symbol.
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column()
    grid.add_row(Text(look.symbol(result.status), style=style), body)
    return Padding(grid, (0, 0, 0, 2), expand=False)


def _evidence(check: CheckOutcome, look: _Look) -> list[RenderableType]:
    from rich.padding import Padding
    from rich.text import Text

    # One renderable per line: a multi-line block would be padded to its widest line,
    # leaving trailing blanks that end up in pasted bug reports. A list of plain lines
    # (a redirect chain, a CNAME chain) reads best one item a line, as wget prints it.
    from netcheck.render.evidence import evidence_view

    lines: list[tuple[int, str]] = []
    evidence = check.result.evidence
    for key, view in evidence_view(evidence):
        value = evidence.get(key)
        if view is not None:  # as the slide's command prints it (ip route get, dig, ...)
            lines.append((4, f"{shown(str(key))}:"))
            lines += [(6, shown(line)) for line in view]
        elif key == "path_trace" and isinstance(value, dict) and isinstance(
                value.get("flow"), dict):
            from netcheck.render.hops import hop_table  # the hops as `netcheck path` shows them

            flow = value["flow"]
            port = f" port {flow['port']}" if flow.get("port") else ""
            lines.append((4, f"path_trace: {shown(str(flow.get('method')))} "
                             f"{shown(str(flow.get('address')))}{port}"))
            lines += [(6, line) for line in hop_table(flow, indent=0)]
        elif isinstance(value, list) and len(value) > 1 and all(
                isinstance(v, str) for v in value) and any(" " in v for v in value):
            lines.append((4, f"{shown(str(key))}:"))
            lines += [(6, shown(item)) for item in value]
        else:
            lines.append((4, f"{shown(str(key))}: {_value_text(value)}"))
    return [Padding(Text(text, style=look.style("dim")), (0, 0, 0, indent), expand=False)
            for indent, text in lines]


def _hint_body(hint: Hint, look: _Look) -> Any:
    """The hint's words (and its docs link): prose, wrapped to the box. The commands are
    not in it: see :func:`_hint_commands`."""
    from rich.text import Text

    body = Text(_lines(hint.text))
    if hint.docs:
        body.append("\n" + _("docs: {url}").format(url=shown(hint.docs)),
                    style=look.style("dim"))
    return body


class _Unwrapped:
    """A line the terminal gets whole: a command to copy is never wrapped, cut or boxed.

    Printed with soft wrapping, a line wider than the terminal overflows and the terminal
    folds it for the eye only: a copy gives back the one line it was.
    """

    def __init__(self, text: Any) -> None:
        self.text = text


class _Comment:
    """A comment line of a hint's commands, folded to the width with ``# `` on every line,
    so that each line of it pastes as a comment too."""

    def __init__(self, text: str, indent: int, style: Any) -> None:
        self.text, self.indent, self.style = text, indent, style

    def __rich_console__(self, console: Any, options: Any) -> Any:
        import textwrap

        from rich.text import Text

        width = max(20, options.max_width - self.indent - 2)
        for part in textwrap.wrap(self.text, width, break_long_words=False,
                                  break_on_hyphens=False) or [""]:
            yield Text(f"{' ' * self.indent}# {part}", style=self.style, no_wrap=True,
                       overflow="ignore")


def _hint_commands(hint: Hint, look: _Look, indent: int) -> list[Any]:
    """The hint's commands as a shell script reads: each comment on its own line above its
    command, each command one ``$`` line that is never wrapped (:class:`_Unwrapped`)."""
    from rich.text import Text

    out: list[Any] = []
    for command in hint.commands:
        line, comment = split_comment(command)
        if comment:
            out.append(_Comment(shown(comment), indent, look.style("dim")))
        if line:
            text = Text(" " * indent)
            text.append(f"$ {shown(local_placeholders(line))}", style=look.style("bold"))
            out.append(_Unwrapped(text))
    return out


def _hint_box(check: CheckOutcome, look: _Look) -> list[Any]:
    from rich.padding import Padding
    from rich.panel import Panel

    hint = check.result.hint
    assert hint is not None
    border = "yellow" if check.status is Status.WARN else "red"
    panel = Panel(_hint_body(hint, look), title=_("hint"), title_align="left", expand=False,
                  border_style=look.style(border))
    return [Padding(panel, (0, 0, 0, 4), expand=False), *_hint_commands(hint, look, 4)]


def _diagnosis(report: Report, look: _Look) -> RenderableType:
    from rich.panel import Panel
    from rich.text import Text

    verdict = report.verdict
    verdict_style = look.style(_VERDICT_STYLE[verdict])
    body = Text()
    body.append(verdict_word(verdict), style=verdict_style)
    root = report.root_cause
    if verdict is Verdict.OK:
        body.append(": " + _("all checks passed"))
    elif root is not None:
        layer = Layer(int(root.layer))
        body.append("\n")
        body.append(shown(root.result.code or root.status.value.upper()),
                    style=look.style("bold"))
        body.append(" " + _("at L{n} {layer} ({check})").format(
            n=int(layer), layer=layer_name(layer), check=shown(root.id)))
        body.append(f"\n{shown(root.result.summary)}")
        if report.location is not None:
            body.append("\n" + _("where the packets stop: {text}").format(
                text=shown(report.location.text)))
        if root.result.hint is not None:
            body.append("\n\n")
            body.append_text(_hint_body(root.result.hint, look))
    else:
        body.append(": " + _("no single root cause; see the checks marked {symbol} "
                             "above").format(symbol=look.symbol(Status.ERROR)))
    return Panel(body, title=_("Diagnosis"), title_align="left",
                 border_style=look.style(_VERDICT_STYLE[verdict]))


def _error(report: Report, look: _Look) -> RenderableType:
    from rich.panel import Panel
    from rich.text import Text

    body = Text()
    body.append(verdict_word(Verdict.UNKNOWN), style=look.style(_VERDICT_STYLE[Verdict.UNKNOWN]))
    body.append(": " + _("netcheck could not run") + "\n")
    body.append(_lines(str(report.error)), style=look.style("bold"))
    return Panel(body, title=_("Diagnosis"), title_align="left",
                 border_style=look.style("red"))


def _renderables(report: Report, verbose: bool, look: _Look) -> list[RenderableType]:
    if report.error is not None:
        return [_error(report, look)]
    out: list[RenderableType] = [_header(report, look), ""]
    root_layer = int(report.root_cause.layer) if report.root_cause is not None else None
    for layer in Layer:
        rung = [c for c in report.checks if int(c.layer) == int(layer)]
        out.append(_rung_heading(layer, bool(rung), root_layer == int(layer),
                                 report.verdict, look))
        for check in rung:
            out.append(_check_line(check, verbose, look))
            if verbose:
                out.extend(_evidence(check, look))
            if check.status in (Status.FAIL, Status.WARN) and check.result.hint is not None:
                out.extend(_hint_box(check, look))
    out.append("")
    out.append(_diagnosis(report, look))
    root = report.root_cause
    if report.verdict is not Verdict.OK and root is not None and root.result.hint is not None:
        out.extend(_hint_commands(root.result.hint, look, 2))
    return out


# Blanks (and the style codes around them) at the end of a line: rich pads wrapped cells to
# their column's width, and those blanks end up in pasted bug reports and in diffs.
_TRAILING = re.compile(r"(?:[ \t]|\x1b\[[0-9;]*m)+$")
_STYLE_CODE = re.compile(r"\x1b\[[0-9;]*m")


def trim_lines(text: str) -> str:
    """``text`` without blanks at the end of its lines (a style reset kept where one was)."""
    out = []
    for line in text.split("\n"):
        m = _TRAILING.search(line)
        if m:
            line = line[:m.start()] + ("\x1b[0m" if _STYLE_CODE.search(m.group()) else "")
        out.append(line)
    return "\n".join(out)


def render_text(report: Report, *, verbose: bool = False, color: bool = True,
                console: Optional[Console] = None) -> None:
    """Print the report as the OSI ladder plus a diagnosis to ``console`` (stdout by default).

    ``verbose`` adds each check's evidence and duration; ``color=False`` gives plain text:
    no colour and no other escape sequence either. Lines carry no trailing blanks. Tests
    pass their own ``console``.
    """
    if console is None:
        import sys

        from rich.console import Console

        from netcheck.render import columns

        console = Console(no_color=not color, highlight=False, width=columns(sys.stdout),
                          color_system="auto" if color else None)
    unicode = (console.encoding or "utf-8").lower().startswith("utf")
    look = _Look(color=color, unicode=unicode)
    print_trimmed(console, _renderables(report, verbose, look))


def print_trimmed(console: Console, renderables: Iterable[Any]) -> None:
    """Print ``renderables`` to ``console``'s file with no blanks at the end of any line."""
    with console.capture() as captured:
        for renderable in renderables:
            if isinstance(renderable, _Unwrapped):  # a command: whole, never folded
                console.print(renderable.text, highlight=False, soft_wrap=True)
            else:
                console.print(renderable, highlight=False)
    console.file.write(trim_lines(captured.get()))
    console.file.flush()


def text_of(report: Report, verbose: bool = False, width: int = 100) -> str:
    """Return the text rendering as a plain string (no colour, ``width`` columns)."""
    from io import StringIO

    from rich.console import Console

    buffer = StringIO()
    console = Console(file=buffer, width=width, color_system=None, highlight=False)
    render_text(report, verbose=verbose, color=False, console=console)
    return buffer.getvalue()
