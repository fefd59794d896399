"""Running the checks as a DAG: in ``requires`` order, independent ones at once, within the
deadline; a dependant of a failure is skipped as blocked by it, one of an expected failure
as settled by it, and a check that crashes is reported as an error, never fatal.
"""

from __future__ import annotations

import asyncio
import time
from typing import Optional

from netcheck.i18n import _
from netcheck.model import CheckOutcome, Result, Status
from netcheck.registry import Check
from netcheck.runner.context import DEADLINE_MARGIN, Context

# The evidence key of a check the deadline cut short (its value: the deadline, seconds).
UNFINISHED = "unfinished_at_deadline_s"


def _not_tried(blocker: Optional[CheckOutcome], blocker_id: str) -> str:
    """A blocked check's summary: what failed below it, in that check's own words."""
    if blocker is not None and blocker.result.summary:
        return _("not tried: {reason}").format(reason=blocker.result.summary)
    return _("not checked: {check} failed").format(check=blocker_id)


def _blocked(outcome_of: dict[str, CheckOutcome], requires: tuple[str, ...]) -> Optional[str]:
    """The id of the failed check that makes a dependant pointless, if any.

    A check failed only by an expectation (``Result.measured``: the port accepts connections
    but should be closed) blocks nothing: what is above it is there to look at.
    """
    for req in requires:
        out = outcome_of.get(req)
        if out is None:
            continue
        if out.status is Status.FAIL and out.result.measured is None:
            return req
        if out.result.blocked_by:
            return out.result.blocked_by
    return None


def _settled(outcome_of: dict[str, CheckOutcome],
             requires: tuple[str, ...]) -> Optional[CheckOutcome]:
    """The requirement whose failure was expected (measured a failure, judged a pass: a port
    closed, as expected), directly or through a check skipped for it: what needs it has
    nothing to look at, and nothing failed."""
    for req in requires:
        out = outcome_of.get(req)
        if out is None:
            continue
        if out.result.measured is Status.FAIL:
            return out
        if out.result.settled_by:
            return outcome_of.get(out.result.settled_by)
    return None


async def _run_one(ctx: Context, chk: Check, tasks: dict[str, asyncio.Task[CheckOutcome]],
                   outcome_of: dict[str, CheckOutcome]) -> CheckOutcome:
    deps = [tasks[r] for r in chk.requires if r in tasks]
    if deps:
        await asyncio.wait(deps)
    if chk.runs_last and ctx.others_done is not None:
        await ctx.others_done.wait()
    start = time.monotonic()
    blocker = _blocked(outcome_of, chk.requires)
    settled = _settled(outcome_of, chk.requires) if blocker is None else None
    if blocker is not None:
        result = Result(Status.SKIP, _not_tried(outcome_of.get(blocker), blocker),
                        blocked_by=blocker)
    elif settled is not None:
        result = Result(Status.SKIP, _not_tried(settled, settled.id), settled_by=settled.id)
    elif chk.needs_root and not ctx.facts.privileged:
        result = Result(Status.SKIP, _("needs root (or CAP_NET_RAW)"))
    else:
        reason = chk.applies(ctx) if chk.applies else None
        if reason:
            result = Result(Status.SKIP, reason)
        else:
            try:
                if ctx.on_progress is not None:
                    ctx.on_progress(chk, None)
                result = await chk.run(ctx)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broken check is reported, never fatal
                result = Result(Status.ERROR, _("check crashed: {error}").format(
                    error=f"{type(exc).__name__}: {exc}"))
    outcome = CheckOutcome(chk.id, chk.layer, chk.title, result,
                           (time.monotonic() - start) * 1000)
    ctx.results[chk.id] = result
    outcome_of[chk.id] = outcome
    if ctx.locator is not None:
        ctx.locator.found(outcome)
    if ctx.on_progress is not None:
        ctx.on_progress(chk, outcome)
    return outcome


async def run_checks(ctx: Context, checks: list[Check]) -> list[CheckOutcome]:
    """Run the checks as a DAG within the deadline; return outcomes in ladder order."""
    ctx.others_done = asyncio.Event()
    outcome_of: dict[str, CheckOutcome] = {}
    tasks: dict[str, asyncio.Task[CheckOutcome]] = {}
    for chk in _topological(checks):
        tasks[chk.id] = asyncio.ensure_future(_run_one(ctx, chk, tasks, outcome_of))
    normal = [t for c, t in zip(checks, [tasks[c.id] for c in checks]) if not c.runs_last]

    async def release_last() -> None:
        if normal:
            await asyncio.wait(normal)
        ctx.others_done.set()  # type: ignore[union-attr]

    releaser = asyncio.ensure_future(release_last())
    budget = max(0.05, ctx.time_left() - DEADLINE_MARGIN)
    done, pending = await asyncio.wait(list(tasks.values()), timeout=budget)
    releaser.cancel()
    for t in pending:
        t.cancel()
    for task in ctx._memo.values():
        task.cancel()
    outcomes = []
    for chk in checks:
        out = outcome_of.get(chk.id)
        if out is None:
            out = CheckOutcome(chk.id, chk.layer, chk.title, Result(
                Status.ERROR, _("not finished within the deadline ({seconds} s)").format(
                    seconds=f"{ctx.options.deadline:g}"),
                evidence={UNFINISHED: ctx.options.deadline}))
        outcomes.append(out)
    return outcomes


def _topological(checks: list[Check]) -> list[Check]:
    """Checks in dependency order; unknown requirements are ignored, cycles rejected."""
    by_id = {c.id: c for c in checks}
    order: list[Check] = []
    state: dict[str, int] = {}

    def visit(c: Check, trail: tuple[str, ...]) -> None:
        if state.get(c.id) == 2:
            return
        if state.get(c.id) == 1:
            raise ValueError(f"dependency cycle: {' -> '.join((*trail, c.id))}")
        state[c.id] = 1
        for req in c.requires:
            if req in by_id:
                visit(by_id[req], (*trail, c.id))
        state[c.id] = 2
        order.append(c)

    for c in checks:
        visit(c, ())
    return order
