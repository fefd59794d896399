"""What a batch prints: text (progress bar, summary table), json, ndjson, junit, nagios,
prometheus.

Each output gets every result as the target finishes (``done``) and closes the run with the
summary (``finish``). They keep only what they need: ndjson writes at once, json streams
in profile order (the runner's window bounds what waits), the others keep a few compact
values per target rather than whole reports, so a huge profile does not hold every
diagnosis in memory.
"""

from __future__ import annotations

import json
from typing import IO, TYPE_CHECKING, Any, Optional

from netcheck.batch.profile import Entry, Profile
from netcheck.batch.run import Done, Summary, root_text
from netcheck.i18n import _, ngettext
from netcheck.model import Report, Verdict
from netcheck.render import canonical_target, columns

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

BATCH_SCHEMA = "netcheck-batch/1"
# Plain columns instead of a rich table past this many rows: rich measures every cell.
RICH_TABLE_ROWS = 2000
NAGIOS_PERF_TARGETS = 50
NAGIOS_NAMED = 5


class Output:
    """The interface every format implements."""

    ordered = False  # True: results must come out in profile order (the runner windows)

    def __init__(self, out: IO[str], err: IO[str], **flags: Any) -> None:
        self.out = out
        self.err = err
        self.flags = flags

    def begin(self, profile: Profile, settings: Any) -> None:
        """Before the first target starts."""

    def started(self, entry: Entry) -> None:
        """A target starts (progress displays only)."""

    def done(self, done: Done) -> None:
        """A target finished."""

    def finish(self, summary: Summary) -> None:
        """After the last one (or an interruption)."""


def result_name(done: Done) -> str:
    """The entry's name (``group/name``); for a line of stdin, which has none, its target
    written the canonical way, as every other output writes it."""
    entry = done.entry
    if not entry.group and entry.name == entry.text and entry.runnable:
        t, about = entry.target, done.report.target
        if t is not None and "://" in t.input and t.input == about.get("input") and \
                (t.scheme, t.host, t.port) == (about.get("scheme"), about.get("host"),
                                               about.get("port")):
            # What canonical_target gives without parsing the line again: written with its
            # scheme, the entry's target has the path and user the line has.
            return t.url
        return canonical_target(done.report.target) or entry.name
    return entry.name


def result_document(done: Done) -> dict[str, Any]:
    """The entry's netcheck/1 document with its ``name`` (an optional key of netcheck/1)."""
    doc = done.report.to_json()
    named = {"schema": doc.pop("schema"), "name": result_name(done)}
    named.update(doc)
    return named


# -- ndjson / json -------------------------------------------------------------------------

class NdjsonOutput(Output):
    """One netcheck/1 document a line, as each target finishes."""

    def done(self, done: Done) -> None:
        self.out.write(json.dumps(result_document(done), ensure_ascii=False) + "\n")
        self.out.flush()


def _indented(doc: dict[str, Any], prefix: str) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False).replace("\n", "\n" + prefix)


class JsonOutput(Output):
    """One netcheck-batch/1 document, written as results come (in profile order)."""

    ordered = True

    def begin(self, profile: Profile, settings: Any) -> None:
        self.out.write(f'{{\n  "schema": "{BATCH_SCHEMA}",\n  "results": [')
        self.pending: dict[int, str] = {}
        self.next = 0
        self.first = True
        self.skipped: set[int] = set()

    def done(self, done: Done) -> None:
        # One result a line, without indentation: json's C encoder only writes compact text,
        # and a 10 000-target document would otherwise spend most of its time being indented.
        self.pending[done.index] = json.dumps(result_document(done), ensure_ascii=False)
        while self.next in self.pending:
            self._write(self.pending.pop(self.next))
            self.next += 1

    def _write(self, text: str) -> None:
        self.out.write(("\n    " if self.first else ",\n    ") + text)
        self.first = False

    def finish(self, summary: Summary) -> None:
        for index in sorted(self.pending):  # after an interruption: whatever finished
            self._write(self.pending.pop(index))
        self.out.write(("\n  " if not self.first else "") + "],\n  \"summary\": "
                       + _indented(summary.to_json(), "  ") + "\n}\n")
        self.out.flush()


# -- text -----------------------------------------------------------------------------------

class _Row:
    __slots__ = ("index", "name", "verdict", "cause", "seconds", "hint")

    def __init__(self, index: int, name: str, report: Report, keep_hint: bool) -> None:
        self.index = index
        self.name = name
        self.verdict = report.verdict
        self.cause = root_text(report)
        self.seconds = report.duration_ms / 1000
        self.hint: Optional[str] = None
        rc = report.root_cause
        if keep_hint and rc is not None and rc.result.hint is not None:
            commands = "".join(f"\n    $ {c}" for c in rc.result.hint.commands)
            self.hint = f"{rc.result.hint.text}{commands}"


_VERDICT_STYLE = {Verdict.OK: "green", Verdict.DEGRADED: "yellow", Verdict.BROKEN: "bold red",
                  Verdict.UNKNOWN: "magenta"}


class TextOutput(Output):
    """A progress bar on a terminal (none when piped), then the summary table.

    The table fits the terminal (or ``$COLUMNS``, or 80 columns when piped), its headers and
    words follow ``--lang``, and nothing but text comes out with ``--no-color``, ``NO_COLOR``
    or a pipe: no colour, no bold, no progress bar.
    """

    def begin(self, profile: Profile, settings: Any) -> None:
        from netcheck.render import wants_color

        self.rows: list[_Row] = []
        self.source = profile.source
        self.progress: Optional[Progress] = None
        self.task: Optional[TaskID] = None
        self.color = wants_color(self.out, bool(self.flags.get("no_color")))
        if self.flags.get("progress") and self.color:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn("[bold]netcheck batch[/] {task.description}"), BarColumn(),
                MofNCompleteColumn(), TextColumn("{task.fields[bad]}"), TimeElapsedColumn(),
                TimeRemainingColumn(), console=Console(file=self.out), transient=True)
            self.progress.start()
            self.task = self.progress.add_task(profile.source, total=len(profile.entries),
                                               bad="")
        self.not_ok = 0

    def done(self, done: Done) -> None:
        report = done.report
        self.rows.append(_Row(done.index, result_name(done), report,
                              bool(self.flags.get("verbose"))))
        if report.verdict is not Verdict.OK:
            self.not_ok += 1
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, advance=1,
                                 bad=_("{n} not ok").format(n=self.not_ok) if self.not_ok
                                 else "")

    def finish(self, summary: Summary) -> None:
        if self.progress is not None:
            self.progress.stop()
        self.rows.sort(key=lambda r: r.index)
        rows = self.rows
        if self.flags.get("quiet"):
            rows = [r for r in rows if r.verdict is not Verdict.OK]
        from rich.console import Console
        from rich.text import Text

        from netcheck.render.text import print_trimmed

        color = self.color
        width = columns(self.out)
        console = Console(file=self.out, no_color=not color, highlight=False, width=width,
                          color_system="auto" if color else None)
        printed: list[Any] = []
        if len(rows) <= RICH_TABLE_ROWS:
            printed.append(self._table(rows, color))
        else:
            self._plain(rows, width)
        if self.flags.get("verbose"):
            printed += [Text(f"{r.name}: {r.hint}") for r in rows if r.hint]
        counts = summary.counts
        line = ngettext("{n} target: {ok} ok, {degraded} degraded, {broken} broken, "
                        "{unknown} unknown in {seconds} s",
                        "{n} targets: {ok} ok, {degraded} degraded, {broken} broken, "
                        "{unknown} unknown in {seconds} s", summary.total).format(
            n=summary.total, ok=counts["ok"], degraded=counts["degraded"],
            broken=counts["broken"], unknown=counts["unknown"],
            seconds=f"{summary.duration_ms / 1000:.1f}")
        if summary.interrupted:
            line += " " + _("(interrupted)")
        printed.append(Text(line, style=_VERDICT_STYLE[summary.worst] if color else ""))
        print_trimmed(console, printed)

    def _table(self, rows: list[_Row], color: bool) -> Any:
        from rich.table import Table
        from rich.text import Text

        from netcheck.render.text import verdict_word

        table = Table(show_edge=False, pad_edge=False, box=None,
                      header_style="bold" if color else "")
        table.add_column(_("target"), overflow="fold", ratio=1)
        table.add_column(_("verdict"), no_wrap=True)
        table.add_column(_("root cause"), overflow="fold", ratio=2)
        table.add_column(_("time"), justify="right", no_wrap=True)
        for r in rows:
            table.add_row(Text(r.name),
                          Text(verdict_word(r.verdict),
                               style=_VERDICT_STYLE[r.verdict] if color else ""),
                          Text(r.cause or "-"), f"{r.seconds:.2f} s")
        return table

    def _plain(self, rows: list[_Row], width: int) -> None:
        """Past RICH_TABLE_ROWS rows: fixed columns, each line cut to ``width``."""
        from netcheck.render.text import verdict_word

        name_width = min(48, max(len(r.name) for r in rows), max(10, width // 3))
        words = {v: verdict_word(v) for v in Verdict}
        verdict_width = max(len(w) for w in words.values())

        def line(name: str, verdict: str, seconds: str, cause: str) -> str:
            text = (f"{name[:name_width]:<{name_width}}  {verdict:<{verdict_width}}  "
                    f"{seconds:>8}  {cause}")
            return (text if len(text) <= width else text[:width - 1] + "…").rstrip()

        self.out.write(line(_("target"), _("verdict"), _("time"), _("root cause")) + "\n")
        for r in rows:
            self.out.write(line(r.name, words[r.verdict], f"{r.seconds:.2f} s",
                                r.cause or "-") + "\n")


# -- junit ----------------------------------------------------------------------------------

class JunitOutput(Output):
    """One testcase per target, one testsuite per group (the testcase XML kept, not reports)."""

    def begin(self, profile: Profile, settings: Any) -> None:
        from netcheck.render.junit import Suite

        self.suite_class = Suite
        self.suites: dict[str, Any] = {}
        self.order: dict[str, list[tuple[int, str]]] = {}
        self.name = f"netcheck batch {profile.source}"

    def done(self, done: Done) -> None:
        from netcheck.render.junit import testcase

        group = done.entry.group or "netcheck"
        suite = self.suites.get(group)
        if suite is None:
            suite = self.suites[group] = self.suite_class(group)
            self.order[group] = []
        suite.count(done.report)
        self.order[group].append((done.index, testcase(done.report, done.entry.short_name,
                                                       suite.classname)))

    def finish(self, summary: Summary) -> None:
        from netcheck.render.junit import document

        suites = []
        for group in sorted(self.suites, key=lambda g: min(i for i, _xml in self.order[g])):
            suite = self.suites[group]
            suite.cases = [xml for _index, xml in sorted(self.order[group])]
            suites.append(suite)
        self.out.write(document(suites, self.name, summary.duration_ms))
        self.out.flush()


# -- nagios ---------------------------------------------------------------------------------

_NAGIOS_STATE = {Verdict.OK: "OK", Verdict.DEGRADED: "WARNING", Verdict.BROKEN: "CRITICAL",
                 Verdict.UNKNOWN: "UNKNOWN"}


class NagiosOutput(Output):
    """``NETCHECK STATE - text | perfdata``: counts, the batch time, then per-target times."""

    def begin(self, profile: Profile, settings: Any) -> None:
        self.times: list[tuple[int, str, float]] = []
        self.bad: list[tuple[int, int, str, str]] = []  # severity, index, name, code

    def done(self, done: Done) -> None:
        from netcheck.batch.run import SEVERITY
        from netcheck.redact import nagios_text

        report = done.report
        # The name goes into the status text and a perfdata label: a '|' there would start
        # (or forge) perfdata, so it goes the way of every Nagios text.
        name = nagios_text(done.entry.name)
        self.times.append((done.index, name, report.duration_ms / 1000))
        if report.verdict is not Verdict.OK:
            rc = report.root_cause
            code = rc.result.code if rc is not None and rc.result.code else \
                report.verdict.value.upper()
            self.bad.append((-SEVERITY[report.verdict], done.index, name, code))

    def finish(self, summary: Summary) -> None:
        from netcheck.render.nagios import _number, _plain, perf_label

        counts = summary.counts
        if summary.worst is Verdict.OK:
            text = f"{summary.total} target{'s' if summary.total != 1 else ''} ok"
        else:
            parts = [f"{counts[v]} {v}" for v in ("broken", "degraded", "unknown") if counts[v]]
            named = sorted(self.bad)[:NAGIOS_NAMED]
            more = len(self.bad) - len(named)
            text = (f"{', '.join(parts)} of {summary.total}: "
                    + ", ".join(f"{name} {code}" for _rank, _index, name, code in named)
                    + (f" and {more} more" if more > 0 else ""))
        if summary.interrupted:
            text += " (interrupted)"
        perf = [f"{v}={counts[v]};;;0" for v in ("ok", "degraded", "broken", "unknown")]
        perf.append(f"time={_number(summary.duration_ms / 1000)}s;;;0")
        for _index, name, seconds in sorted(self.times)[:NAGIOS_PERF_TARGETS]:
            perf.append(f"{perf_label(name + '_time')}={_number(seconds)}s;;;0")
        self.out.write(f"NETCHECK {_NAGIOS_STATE[summary.worst]} - {_plain(text)} | "
                       f"{' '.join(perf)}\n")
        self.out.flush()


# -- prometheus -----------------------------------------------------------------------------

class PrometheusOutput(Output):
    """The text exposition (for node_exporter's textfile collector, or a pushgateway)."""

    def begin(self, profile: Profile, settings: Any) -> None:
        self.items: list[tuple[int, dict[str, str], Any]] = []

    def done(self, done: Done) -> None:
        from netcheck.render.prometheus import probe_values

        target = canonical_target(done.report.target) or done.entry.text
        self.items.append((done.index, {"name": done.entry.name, "target": target},
                           probe_values(done.report)))

    def finish(self, summary: Summary) -> None:
        from netcheck.render.prometheus import batch_metrics, exposition

        items = [(labels, values)
                 for _index, labels, values in sorted(self.items, key=lambda x: x[0])]
        self.out.write(exposition(batch_metrics(items, summary.to_json())))
        self.out.flush()


OUTPUTS: dict[str, type[Output]] = {
    "text": TextOutput, "json": JsonOutput, "ndjson": NdjsonOutput, "junit": JunitOutput,
    "nagios": NagiosOutput, "prometheus": PrometheusOutput,
}
