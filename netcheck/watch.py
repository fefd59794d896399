"""``netcheck TARGET --watch [SECONDS]``: diagnose again and again, and tell every change.

A fault that comes and goes (Wi-Fi that drops every minute, a flapping route, a resolver that
fails one query in five) is invisible to one run. Here a round — a whole diagnosis, bounded by
``--deadline`` like any run — starts every SECONDS (at once when the last one took longer);
each round prints one line, and a change of verdict or of root cause prints a block with the
time, the finding, where the packets stop and the hint. With ``--format ndjson`` each round
is one netcheck/1 document on a line instead. Ctrl-C or SIGTERM ends the watch with a summary:
the share of rounds that were ok, the longest outage, the causes seen and how often the
verdict changed (on stderr for ndjson, whose stdout holds documents only).

What stays valid between rounds is kept: the parsed target and options, the loaded checks,
one event loop, and the target's distance in hops (echo requests, for telling a forged
reset from the server's) for :data:`netcheck.locate.Memory.TTL` seconds. Everything the
network can change — the snapshot of interfaces and routes, every probe, the name resolution,
where the packets stop — is measured again each round.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import IO, Any, Optional

from netcheck.i18n import _, ngettext
from netcheck.model import Report, Verdict
from netcheck.redact import shown

FORMATS = ("text", "ndjson")
# Worst first, as the batch orders verdicts for its exit status.
_SEVERITY = {Verdict.OK: 0, Verdict.UNKNOWN: 1, Verdict.DEGRADED: 2, Verdict.BROKEN: 3}


@dataclass
class Round:
    """What one round found, as the summary needs it."""

    started: float  # time.time() at its start
    verdict: Verdict
    code: Optional[str] = None
    layer: Optional[int] = None
    check: Optional[str] = None

    @property
    def cause(self) -> Optional[tuple[str, Optional[str], Optional[int]]]:
        """(check, code, layer) of the root cause; None when the round was ok."""
        if self.verdict is Verdict.OK or self.check is None:
            return None
        return self.check, self.code, self.layer


@dataclass
class Summary:
    """Rounds seen so far, and what they add up to (pure: fed rounds, asked for figures)."""

    rounds: list[Round] = field(default_factory=list)
    ended: Optional[float] = None  # time.time() when the watch ended

    def add(self, rnd: Round) -> None:
        self.rounds.append(rnd)

    @property
    def ok(self) -> int:
        return sum(1 for r in self.rounds if r.verdict is Verdict.OK)

    @property
    def changes(self) -> int:
        """How often the verdict changed from one round to the next (flaps)."""
        return sum(1 for a, b in zip(self.rounds, self.rounds[1:]) if a.verdict != b.verdict)

    def outages(self) -> list[tuple[float, float, int]]:
        """Every run of rounds that were not ok: (start, end, rounds); the end is the start of
        the next ok round, or the end of the watch."""
        found: list[tuple[float, float, int]] = []
        start: Optional[float] = None
        count = 0
        for rnd in self.rounds:
            if rnd.verdict is not Verdict.OK:
                if start is None:
                    start, count = rnd.started, 0
                count += 1
            elif start is not None:
                found.append((start, rnd.started, count))
                start = None
        if start is not None:
            found.append((start, self.ended or time.time(), count))
        return found

    def longest_outage(self) -> Optional[tuple[float, float, int]]:
        spans = self.outages()
        return max(spans, key=lambda s: s[1] - s[0]) if spans else None

    def causes(self) -> list[tuple[tuple[str, Optional[str], Optional[int]], int]]:
        """Root causes seen, with how many rounds had each, most frequent first."""
        counts: dict[tuple[str, Optional[str], Optional[int]], int] = {}
        for rnd in self.rounds:
            if rnd.cause is not None:
                counts[rnd.cause] = counts.get(rnd.cause, 0) + 1
        return sorted(counts.items(), key=lambda item: -item[1])

    def worst(self) -> Verdict:
        return max((r.verdict for r in self.rounds), key=_SEVERITY.__getitem__,
                   default=Verdict.UNKNOWN)

    def lines(self) -> list[str]:
        """The summary a person reads when the watch ends."""
        total = len(self.rounds)
        if not total:
            return [_("watch ended before the first round finished")]
        first = self.rounds[0].started
        end = self.ended or time.time()
        out = [ngettext("{n} round in {seconds} s ({start} to {end})",
                        "{n} rounds in {seconds} s ({start} to {end})", total).format(
                            n=total, seconds=f"{end - first:.1f}", start=clock(first),
                            end=clock(end))]
        out.append(_("ok: {ok} of {total} rounds ({share} %)").format(
            ok=self.ok, total=total, share=f"{100.0 * self.ok / total:.0f}"))
        longest = self.longest_outage()
        if longest is None:
            out.append(_("longest outage: none"))
        else:
            start, stop, count = longest
            out.append(ngettext("longest outage: {seconds} s, from {start} to {end} ({n} round)",
                                "longest outage: {seconds} s, from {start} to {end} ({n} rounds)",
                                count).format(seconds=f"{stop - start:.1f}", start=clock(start),
                                              end=clock(stop), n=count))
        causes = self.causes()
        if causes:
            seen = ", ".join(
                ngettext("{code} at L{layer} ({check}, {n} round)",
                         "{code} at L{layer} ({check}, {n} rounds)", n).format(
                             code=shown(code or "-"), layer=layer or "?", check=shown(check),
                             n=n) for (check, code, layer), n in causes)
            out.append(_("causes seen: {causes}").format(causes=seen))
        else:
            out.append(_("causes seen: none"))
        out.append(ngettext("flaps: the verdict changed {n} time",
                            "flaps: the verdict changed {n} times", self.changes).format(
                                n=self.changes))
        return out


def emit(out: IO[str], text: str) -> None:
    """Write ``text`` whole and flush it. To a real file or pipe the bytes go out with
    ``os.write`` until all are written: an unbuffered stream (``python -u``) whose write a
    signal cuts short would silently lose the rest of a document."""
    try:
        fd = out.fileno()
    except (AttributeError, OSError, ValueError):  # a StringIO, a wrapper without a file
        out.write(text)
        out.flush()
        return
    out.flush()
    data = text.encode(getattr(out, "encoding", None) or "utf-8",
                       getattr(out, "errors", None) or "strict")
    while data:
        data = data[os.write(fd, data):]


def clock(when: float) -> str:
    """Local wall-clock time of day, to the second (what a person compares with a log)."""
    return datetime.fromtimestamp(when).strftime("%H:%M:%S")


def round_of(report: Report, started: float) -> Round:
    """The figures of one round's report."""
    rc = report.root_cause
    if rc is None:
        return Round(started, report.verdict)
    return Round(started, report.verdict, rc.result.code, int(rc.layer), rc.id)


def round_line(report: Report, started: float, duration: float) -> str:
    """One line a round: the time, the verdict, the root cause in short, how long it took."""
    from netcheck.render.text import verdict_word

    line = f"{clock(started)}  {verdict_word(report.verdict)}"
    rc = report.root_cause
    if report.error is not None:
        line += f"  {shown(report.error)}"
    elif rc is not None:
        line += f"  {shown(rc.result.code or '-')} (L{int(rc.layer)})  {shown(rc.result.summary)}"
    return f"{line}  ({duration:.1f} s)"


def change_block(before: Optional[Round], report: Report, started: float,
                 down_since: Optional[float] = None) -> list[str]:
    """The block printed when the verdict or the root cause changes (or on the first round
    that is not ok): when, from what to what, the finding, where it stops and the hint.
    ``down_since``: when the outage that this round ends began."""
    from netcheck.render.text import layer_name, verdict_word

    rc = report.root_cause
    was = verdict_word(before.verdict) if before is not None else "-"
    head = _("{time} changed: {before} -> {after}").format(
        time=clock(started), before=was, after=verdict_word(report.verdict))
    if down_since is not None and report.verdict is Verdict.OK:
        head += " " + _("(outage of {seconds} s)").format(seconds=f"{started - down_since:.1f}")
    lines = [f"── {head} ──"]
    if report.error is not None:
        lines.append(f"   {shown(report.error)}")
    elif rc is not None:
        lines.append(f"   {shown(rc.result.code or '-')} " + _("at L{n} {layer} ({check})").format(
            n=int(rc.layer), layer=layer_name(rc.layer), check=shown(rc.id)))
        lines.append(f"   {shown(rc.result.summary)}")
        if report.location is not None:
            lines.append("   " + _("where the packets stop: {text}").format(
                text=shown(report.location.text)))
        if rc.result.hint is not None:
            lines.append(f"   {shown(rc.result.hint.text)}")
            lines += [f"   $ {shown(c)}" for c in rc.result.hint.commands]
    return lines


def changed(before: Optional[Round], now: Round) -> bool:
    """A block is due: first round not ok, or the verdict or the root cause changed."""
    if before is None:
        return now.verdict is not Verdict.OK
    return before.verdict != now.verdict or before.cause != now.cause


def watch(target: Any, options: Any, checks: list[Any], args: argparse.Namespace,
          out: IO[str], err: IO[str], guard: Any) -> int:
    """Run rounds until Ctrl-C or SIGTERM, then print the summary; return the exit status
    (the worst verdict seen, as a batch does; 3 when no round finished)."""
    import asyncio

    from netcheck.cliutil import Terminated, UsageError

    if args.format not in FORMATS:
        raise UsageError("--watch prints a line per round (text) or a document per round "
                         f"(--format ndjson), not {args.format}")
    watcher = _Watcher(target, options, checks, args, out, guard)
    summary = watcher.summary
    heading = _("watch interrupted: summary")
    try:
        asyncio.run(watcher.rounds())
    except Terminated:
        heading = _("watch ended by SIGTERM: summary")
    except KeyboardInterrupt:
        pass
    summary.ended = time.time()
    with guard.writing():
        sink = err if args.format == "ndjson" else out
        emit(sink, ("\n" if sink is out else "") + heading + "\n"
             + "".join(f"  {line}\n" for line in summary.lines()))
    return summary.worst().exit_code if summary.rounds else 3


class _Watcher:
    """The rounds of one watch: what stays valid between them, what the last one found."""

    def __init__(self, target: Any, options: Any, checks: list[Any], args: argparse.Namespace,
                 out: IO[str], guard: Any) -> None:
        from netcheck.locate import Memory

        self.target, self.options, self.checks = target, options, checks
        self.args, self.out, self.guard = args, out, guard
        self.interval = float(args.watch)
        self.summary = Summary()
        self.memory = Memory()
        self.last: Optional[Round] = None
        self.down_since: Optional[float] = None

    async def rounds(self) -> None:
        """A round every interval (at once after one that took longer) until stopped."""
        import asyncio

        from netcheck.cliutil import Terminated

        if self.args.format == "text" and not self.args.quiet:
            with self.guard.writing():
                emit(self.out, _("watching {target} every {seconds} s (Ctrl-C ends it with a "
                                 "summary)").format(target=shown(self.target.input),
                                                    seconds=f"{self.interval:g}") + "\n")
        while True:
            started, t0 = time.time(), time.monotonic()
            report = await self._diagnose(t0)
            rnd = round_of(report, started)
            self._show_round(report, rnd, started, time.monotonic() - t0)
            self._note(rnd, started)
            if self.guard.pending:  # a SIGTERM that came while a line was written
                raise Terminated()
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - t0)))

    async def _diagnose(self, t0: float) -> Report:
        """One whole diagnosis within the deadline, with a fresh request id."""
        import asyncio

        from netcheck.runner import diagnose

        options = self.options
        opts = replace(options, started=t0, request_id=os.urandom(6).hex(), locate=self.memory)
        try:
            return await asyncio.wait_for(diagnose(self.target, opts, self.checks),
                                          max(0.1, options.deadline - 0.05))
        except asyncio.TimeoutError:
            from netcheck.render.json import error_report

            return error_report(self.target.input, _("no result within the deadline "
                                                     "({seconds} s)").format(
                                                         seconds=f"{options.deadline:g}"))

    def _note(self, rnd: Round, started: float) -> None:
        """The round counted, and when the outage it belongs to began."""
        self.summary.add(rnd)
        self.last = rnd
        if rnd.verdict is Verdict.OK:
            self.down_since = None
        elif self.down_since is None:
            self.down_since = started

    def _show_round(self, report: Report, rnd: Round, started: float,
                    duration: float) -> None:
        text = ""
        if self.args.format == "ndjson":
            from netcheck.render.json import render_json

            text = render_json(report, indent=None) + "\n"
        else:
            if not self.args.quiet:
                text = round_line(report, started, duration) + "\n"
            if changed(self.last, rnd):
                text += "\n".join(change_block(self.last, report, started,
                                               self.down_since)) + "\n"
        with self.guard.writing():
            emit(self.out, text)
