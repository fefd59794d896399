"""The runner: orders checks by ``requires``, runs independent ones at once, enforces the
deadline, marks dependants of a failure as blocked, and picks the root cause.

It knows no specific check. Shared measurements (the target's addresses, the route the
packets take, one TCP connect per address) are memoised on the :class:`Context`, so two
checks asking the same question wait on the same probe instead of sending it twice.

The package, by concern (each module imports only those before it): ``context`` (Options,
PathInfo, Context and its shared measurements, run_blocking), ``schedule`` (the checks run
as a DAG within the deadline: blocked, settled, crashed), ``judge`` (the outcomes judged
together: top-down, follow-ons, root cause, verdict). :func:`diagnose`, here, puts them
together. Every name importable from ``netcheck.runner`` before the split is re-exported
here, and :func:`diagnose` looks the steps up here, as it always did.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from typing import Any, Callable, Optional

from netcheck import __version__, i18n
from netcheck.facts import Facts
from netcheck.model import CheckOutcome, Report
from netcheck.registry import Check
from netcheck.target import Target

# isort: off
from netcheck.runner.context import (
    DEADLINE_MARGIN,
    Context,
    Options,
    PathInfo,
    run_blocking,
)
from netcheck.runner.schedule import _topological, run_checks
from netcheck.runner.judge import (
    EXPLAINS_BELOW,
    PATH_QUALITY,
    SLOWNESS,
    choose_root_cause,
    explained_by,
    follow_ons,
    judge_follow_ons,
    top_down,
    verdict_of,
)
# isort: on

# Every public name the module had before it became a package.
__all__ = [
    "DEADLINE_MARGIN", "EXPLAINS_BELOW", "PATH_QUALITY", "SLOWNESS", "Context", "Options",
    "PathInfo", "choose_root_cause", "diagnose", "explained_by", "follow_ons",
    "judge_follow_ons", "run_blocking", "run_checks", "top_down", "verdict_of",
    # private, reached from outside (the registry's conformance test orders the checks)
    "_topological",
]


async def diagnose(target: Optional[Target], options: Options, checks: list[Check],
                   mode: str = "diagnose", facts: Optional[Facts] = None,
                   on_progress: Optional[Callable[[Check, Optional[CheckOutcome]], None]] = None,
                   shared: Optional[dict[Any, Any]] = None,
                   report_target: Optional[dict[str, Any]] = None) -> Report:
    """Take the snapshot, run the checks, and build the report.

    ``shared``: one dict handed to every run of a batch (in one event loop) so that they
    share probes that do not depend on the run, today the name resolution (see
    :meth:`Context.resolution`). None (the default) shares nothing.
    Summaries and hints are in ``options.lang`` (None: the process's language).
    ``report_target``: the report's ``target`` object as given, for a mode whose checks'
    target is not what the report is about (server mode: the checks look at the way back to
    the client, the report describes the service).
    """
    with i18n.language(options.lang):
        return await _diagnose(target, options, checks, mode, facts, on_progress, shared,
                               report_target)


async def _diagnose(target: Optional[Target], options: Options, checks: list[Check],
                    mode: str, facts: Optional[Facts],
                    on_progress: Optional[Callable[[Check, Optional[CheckOutcome]], None]],
                    shared: Optional[dict[Any, Any]],
                    report_target: Optional[dict[str, Any]] = None) -> Report:
    started = datetime.now(timezone.utc)
    t0 = time.monotonic()
    ctx_start = options.started if options.started is not None else t0
    if facts is None:
        from netcheck.facts import snapshot

        facts = await run_blocking(snapshot, options.sysroot)
    ctx = Context(target, options, facts, mode, shared)
    ctx._start = ctx_start
    ctx.on_progress = on_progress
    await _start_probes(ctx, checks)
    ordered = sorted(checks, key=lambda c: (int(c.layer), c.order))
    outcomes = top_down(await run_checks(ctx, ordered), ordered)
    outcomes = await follow_ons(ctx, outcomes, ordered)
    addresses, path = _found(ctx)
    root = choose_root_cause(outcomes)
    location = None
    if ctx.locator is not None:  # within the deadline, like the checks
        outcomes, root, location = await ctx.locator.finish(outcomes, root)
    return Report(
        mode=mode,
        target=report_target if report_target is not None else (
            target.to_json(addresses) if target else {}),
        host={"hostname": facts.hostname, "privileged": facts.privileged,
              "egress_interface": path.interface if path else None},
        verdict=verdict_of(outcomes),
        root_cause=root,
        checks=outcomes,
        started_at=started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        duration_ms=(time.monotonic() - t0) * 1000,
        version=__version__,
        request_id=options.request_id if target is not None and target.scheme in (
            "http", "https") else None,
        location=location,
    )


async def _start_probes(ctx: Context, checks: list[Check]) -> None:
    """What starts before the checks run: the name's resolution, the route lookup, the
    probes that only a timeout ends (``Check.starts``) and, when asked for, the tracer."""
    target, options, mode = ctx.target, ctx.options, ctx.mode
    if target is not None and target.is_name:
        ctx.resolution()  # start resolving while nothing else needs the CPU
    if target is not None and target.ip is not None:
        # The kernel's route lookup (milliseconds) before the checks keep the loop and the
        # interpreter busy: every rung on the path waits for it, the early probes first.
        await asyncio.wait([ctx.path()])
    # Probes that only a timeout ends start now, to overlap the rungs.
    for chk in checks:
        if chk.starts is not None and mode in chk.modes and (
                ctx.facts.privileged or not chk.needs_root):
            chk.starts(ctx)
    if options.locate and mode == "diagnose" and target is not None:
        # After the early probes: importing the tracer (~10 ms) must not hold them back; it
        # watches the checks' probes, and none has started yet.
        from netcheck.locate import Locator

        ctx.locator = Locator(ctx)


def _found(ctx: Context) -> tuple[list[str], Optional[PathInfo]]:
    """The target's addresses and the path to it, as far as the run found them."""
    target = ctx.target
    addresses: list[str] = []
    path: Optional[PathInfo] = None
    if target is not None:
        if target.ip is not None:
            addresses = [target.host]
        else:
            res = ctx._memo.get(ctx.resolution_key)
            if res is not None and res.done() and not res.cancelled() and not res.exception():
                addresses = list(res.result().addresses)
        p = ctx._memo.get("path")
        if p is not None and p.done() and not p.cancelled() and not p.exception():
            path = p.result()
    return addresses, path
