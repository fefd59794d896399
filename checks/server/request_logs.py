"""Layer 7, the client's request in the service's log (``app.request_log``): the access and
error logs, the unit's journal, or the container's log.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Optional

from netcheck.checks.server.common import SERVER, _cli, systemd_unavailable

from netcheck.i18n import _, ngettext
from netcheck.model import Hint, Layer, Result, Status, passed, skipped, warned
from netcheck.registry import check
from netcheck.server.measure import (
    LogSources,
    engine_view,
    log_sources,
    server_options,
    unit_info,
)

if TYPE_CHECKING:
    from netcheck.probes.docker import Container
    from netcheck.probes.logs import AccessScan, ErrorScan
    from netcheck.runner import Context


def _who(ctx: Context) -> str:
    """``request ID``, ``requests from IP`` or ``request ID from IP`` (empty: neither)."""
    opts = server_options(ctx)
    if opts.search_id and opts.client:
        return _("request {id} from {client}").format(id=opts.search_id, client=opts.client)
    if opts.search_id:
        return _("request {id}").format(id=opts.search_id)
    if opts.client:
        return _("requests from {client}").format(client=opts.client)
    return ""


def _log_hint(ctx: Context, access: list[str], errors: list[str], unit: Optional[str]) -> Hint:
    opts = server_options(ctx)
    cmds = []
    if access and opts.search_id:
        cmds.append(f"grep -F {opts.search_id} {access[0]}")
    elif access and opts.client:
        cmds.append(f"grep -F '{opts.client} ' {access[0]} | tail -n 20")
    elif access:
        cmds.append(f"awk '$9 ~ /^5/' {access[0]} | tail -n 20")
    for path in errors[:2]:
        cmds.append(f"tail -n 50 {path}")
    if unit:
        cmds.append(f"journalctl -u {unit} --since '-{opts.since_text}' -p err --no-pager")
    return Hint(_("The service answered with server errors (5xx) or logged errors: the fault "
                  "is in the application or what stands behind it (an upstream, a PHP/Python "
                  "worker, a database). Read the error log at those times."), cmds)


async def _container_log(ctx: Context, c: Container, since: float, deadline: float, who: str,
                         evidence: dict[str, Any]) -> Result:
    """The slides' last step: ``docker logs --since ... CONTAINER | grep CLIENT``, read from
    the log driver's own file (json-file) or the journal (journald)."""
    from netcheck.probes import docker

    opts = server_options(ctx)
    view = await engine_view(ctx)
    scan = await ctx.blocking(docker.scan_log, c, since, opts.search_id, opts.client, deadline)
    evidence["container_log"] = scan.to_json()
    window = _("the last {duration}").format(duration=opts.since_text)
    cli = _cli(view)
    grep = opts.search_id or opts.client
    base = f"{cli} logs --since {docker.since_flag(opts.since_s)} {c.label} 2>&1"
    cmds = [f"{base} | grep -F {grep}" if grep else f"{base} | tail -n 50",
            f"{cli} logs --tail 50 {c.label}"]
    if scan.error:
        return skipped(_("container {name}'s log: {error}").format(name=c.label,
                                                                   error=scan.error), **evidence)
    note = f" ({scan.stopped})" if scan.stopped else ""
    counts = ", ".join(f"{k} {v}" for k, v in sorted(scan.statuses.items()))
    hint = Hint(_("The application in {name} answered with server errors (5xx): the fault is "
                  "in the application or what it depends on (a database, an upstream). Read "
                  "its log at those times.").format(name=c.label), cmds)
    if who:
        if scan.matched:
            found = ngettext("{who} found in container {name}'s log: {n} line, last: {last}",
                             "{who} found in container {name}'s log: {n} lines, last: {last}",
                             scan.matched).format(who=who, name=c.label, n=scan.matched,
                                                  last=scan.matches[-1]) + note
            if scan.matched_5xx:
                return warned("SRV_LOG_ERRORS", found + "; " + _("{n} answered 5xx").format(
                    n=scan.matched_5xx), hint, **evidence)
            return passed(found, **evidence)
        return passed(_("NOT found: no {who} in container {name}'s log ({lines} lines in "
                        "{window}){note}: it did not reach the container (look at the way in: "
                        "a firewall, the published port, another container)").format(
            who=who, name=c.label, lines=scan.lines, window=window, note=note), **evidence)
    if scan.statuses.get("5xx"):
        return warned("SRV_LOG_ERRORS", _("container {name}'s log: {n} of its requests in "
                                          "{window} were answered 5xx").format(
            name=c.label, n=scan.statuses["5xx"], window=window) + note, hint, **evidence)
    return passed(_("container {name}'s log: {lines} lines in {window}").format(
        name=c.label, lines=scan.lines, window=window)
                  + (" (" + counts + ")" if counts else "") + ", "
                  + _("no server errors") + note, **evidence)


@check("app.request_log", Layer.APPLICATION, modes=SERVER, codes=("SRV_LOG_ERRORS",))
async def request_log(ctx: Context) -> Result:
    """Client's request is in the service's log.

    Finds the client's request in the service's access log (nginx/Apache combined format,
    given with ``--log``, or found among the files the service holds open or at their usual
    place, older rotated files included) or in its unit's journal, by the request id
    ``netcheck diagnose`` sends in its User-Agent and prints (``--request-id``) and/or the
    client's address (``--client``), within ``--since``; shows the matching lines. For a
    port a container publishes, the container's own log, as ``docker logs --since ...
    CONTAINER | grep CLIENT`` shows it (the json-file driver's file read directly, or the
    journal). 5xx answers or errors in the error log beside them are SRV_LOG_ERRORS (a
    warning).
    """
    opts = server_options(ctx)
    sources = await log_sources(ctx)
    since = time.time() - opts.since_s
    evidence: dict[str, Any] = {"since": opts.since_text, "found_by": sources.how,
                                "request_id": opts.search_id, "client": opts.client}
    if sources.journal_reason is not None:
        return skipped(_("{unit}'s journal: {reason}").format(
            unit=(await unit_info(ctx)).name,
            reason=systemd_unavailable(sources.journal_reason, journal=True)), **evidence)
    if sources.skip:
        return skipped(sources.skip, **evidence)
    budget = max(0.3, min(ctx.time_left() - 0.8, 5.0))
    deadline = time.monotonic() + budget
    who = _who(ctx)
    if sources.container is not None:
        return await _container_log(ctx, sources.container, since, deadline, who, evidence)
    unit = (await unit_info(ctx)).name
    if sources.journal:
        return await _journal_log(ctx, sources.journal, since, min(budget, 3.0), who, evidence)
    return await _file_logs(ctx, sources, unit, since, deadline, who, evidence)


async def _journal_log(ctx: Context, journal: str, since: float, budget: float, who: str,
                       evidence: dict[str, Any]) -> Result:
    """The unit's journal, when the service logs there rather than to files."""
    from netcheck.probes import logs

    opts = server_options(ctx)
    window = _("the last {duration}").format(duration=opts.since_text)
    scan = await ctx.blocking(logs.scan_journal, journal, since, opts.search_id, opts.client,
                              budget)
    evidence["journal"] = scan.to_json()
    if scan.error:
        return Result(Status.ERROR, f"journalctl -u {journal}: {scan.error}", evidence=evidence)
    hint = _log_hint(ctx, [], [], journal)
    if who and scan.matched:
        line = scan.matches[-1]
        if scan.matched_5xx or scan.errors:
            return warned("SRV_LOG_ERRORS", _("{who} found in {unit}'s journal with "
                                              "errors: {line}").format(
                who=who, unit=journal, line=(scan.errors or [line])[-1]), hint, **evidence)
        return passed(ngettext("{who} found in {unit}'s journal ({n} line): {line}",
                               "{who} found in {unit}'s journal ({n} lines): {line}",
                               scan.matched).format(who=who, unit=journal, n=scan.matched,
                                                    line=line), **evidence)
    if scan.errors:
        return warned("SRV_LOG_ERRORS", _("{unit}'s journal has {n} error line(s) in "
                                          "{window}: {line}").format(
            unit=journal, n=len(scan.errors), window=window, line=scan.errors[-1]),
            hint, **evidence)
    if who:
        return passed(_("NOT found: no {who} in {unit}'s journal ({lines} lines in "
                        "{window}): it did not reach the service").format(
            who=who, unit=journal, lines=scan.lines, window=window), **evidence)
    return passed(_("{unit}'s journal: {lines} lines in {window}, no errors").format(
        unit=journal, lines=scan.lines, window=window), **evidence)


async def _file_logs(ctx: Context, sources: LogSources, unit: Optional[str], since: float,
                     deadline: float, who: str, evidence: dict[str, Any]) -> Result:
    """The access log(s) and the error log(s) beside them (either may be missing)."""
    from netcheck.probes import logs

    opts = server_options(ctx)
    window = _("the last {duration}").format(duration=opts.since_text)
    access = None
    if sources.access:
        access = await ctx.blocking(logs.scan_access, sources.access, since, opts.search_id,
                                    opts.client, deadline)
        evidence["access"] = access.to_json()
        if access.error:
            if "ermission" in access.error:
                return skipped(access.error + " " + _("(run as root, or as a member of the group "
                                                      "that owns the log, e.g. adm)"), **evidence)
            return Result(Status.ERROR, access.error, evidence=evidence)
    # Errors in the error log: the client's own, or (found by id only) those of the client
    # whose request matched.
    error_client = opts.client
    if access is not None and not error_client and access.matches:
        error_client = access.matches[-1].client
    err_scans = []
    for path in sources.errors[:2]:
        err_scans.append(await ctx.blocking(logs.scan_errors, path, since, error_client,
                                            logs.MAX_ERROR_LOG_BYTES, deadline + 1.0))
    evidence["error_logs"] = [e.to_json() for e in err_scans]
    hint = _log_hint(ctx, sources.access, sources.errors, unit if unit and not (
        await unit_info(ctx)).reason else None)
    if access is None:
        return _error_log_only(sources.errors, err_scans, error_client, window, hint, evidence)
    return _access_log_result(sources.access, access, err_scans, who, window, hint, evidence)


def _error_log_only(errors: list[str], err_scans: list[ErrorScan], error_client: Optional[str],
                    window: str, hint: Hint, evidence: dict[str, Any]) -> Result:
    """Only an error log to read (no access log found): its errors, the client's if known."""
    err_lines = [ln for e in err_scans for ln in e.lines]
    if err_lines:
        return warned("SRV_LOG_ERRORS", (
            _("{n} error(s) for {client} in {window}: {line}") if error_client else
            _("{n} error(s) in {window}: {line}")).format(
            n=sum(e.count for e in err_scans), client=error_client, window=window,
            line=err_lines[-1].text), hint, **evidence)
    return passed((_("no errors for {client} in {window} in {files}") if error_client else
                   _("no errors in {window} in {files}")).format(
        client=error_client, window=window, files=", ".join(errors)), **evidence)


def _access_log_result(files: list[str], access: AccessScan, err_scans: list[ErrorScan],
                       who: str, window: str, hint: Hint, evidence: dict[str, Any]) -> Result:
    """The access log's verdict: the client's request found or not (when one is looked for),
    else the 5xx answers of the window; the error log's lines back either up."""
    err_lines = [ln for e in err_scans for ln in e.lines]
    shown_file = files[0] if len(files) == 1 else (
        _("{n} access logs ({files})").format(
            n=len(files), files=", ".join(files[:3]) + (" ..." if len(files) > 3 else "")))
    if access.matches and len(files) > 1:
        shown_file = access.matches[-1].file
    note = f" ({access.stopped})" if access.stopped else ""
    if not access.parsed_any and access.requests:
        note += " " + _("(no line has an access-log timestamp: is it in the combined format?)")
    if who:
        if access.matched:
            last = access.matches[-1]
            status = f" -> {last.status}" if last.status is not None else ""
            found = ngettext("{who} found in {file}: {n} line, last {request}",
                             "{who} found in {file}: {n} lines, last {request}",
                             access.matched).format(
                who=who, file=shown_file, n=access.matched,
                request=f"{last.client or '?'} \"{last.request or '?'}\"{status}")
            if access.matched_5xx or err_lines:
                bad = [m for m in access.matches if m.status and m.status >= 500]
                says = _("the error log says: {line}")
                why = (_("{n} answered 5xx").format(n=access.matched_5xx)
                       if access.matched_5xx else says.format(line=err_lines[-1].text))
                if bad and err_lines:
                    why += "; " + says.format(line=err_lines[-1].text)
                return warned("SRV_LOG_ERRORS", f"{found}; {why}{note}", hint, **evidence)
            return passed(found + note, **evidence)
        return passed(_("NOT found: no {who} in {file} ({requests} requests in {window}){note}: "
                        "it did not reach this service (look at the way in: a firewall, a "
                        "proxy, another server or virtual host)").format(
            who=who, file=shown_file, requests=access.requests, window=window, note=note),
            **evidence)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(access.statuses.items()))
    if access.server_error_count or err_lines:
        what = (_("{n} of {requests} requests in {window} were answered 5xx").format(
                    n=access.server_error_count, requests=access.requests, window=window)
                if access.server_error_count else
                _("{n} error(s) in the error log in {window}").format(
                    n=sum(e.count for e in err_scans), window=window))
        last_line = (access.server_errors[-1].text if access.server_errors
                     else err_lines[-1].text)
        return warned("SRV_LOG_ERRORS", f"{what}: {last_line}{note}", hint, **evidence)
    return passed(_("{requests} requests in {window} in {file}").format(
        requests=access.requests, window=window, file=shown_file)
                  + (" (" + counts + ")" if counts else "") + ", " + _("no server errors")
                  + note, **evidence)
