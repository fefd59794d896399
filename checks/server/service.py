"""Layer 7, the service itself: the container publishing the port runs (``app.container``),
its systemd unit is active (``app.service_unit``) and its process runs (``app.process``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from netcheck.checks.server.common import (
    SERVER,
    _all_owners,
    _cli,
    _container_commands,
    _proto_port,
    _ss,
    _unit_commands,
    systemd_unavailable,
)

from netcheck.i18n import _, ngettext
from netcheck.model import Hint, Layer, Result, Status, failed, passed, skipped, warned
from netcheck.registry import check
from netcheck.server.measure import (
    UnitInfo,
    bound,
    engine_view,
    last_lines,
    listen_table,
    named_processes,
    owner_pids,
    process,
    server_options,
    unit_info,
)

if TYPE_CHECKING:
    from netcheck.probes.docker import Container, EngineView
    from netcheck.probes.systemd import UnitState
    from netcheck.runner import Context
    from netcheck.server.listeners import Listener, ListenTable


# -- layer 7 -----------------------------------------------------------------------------------


@check("app.container", Layer.APPLICATION, modes=SERVER, codes=("SRV_CONTAINER_DOWN",))
async def container_running(ctx: Context) -> Result:
    """Container publishing the port is running.

    The containers configured to publish the port, as ``docker ps -a`` and ``docker inspect``
    show them through the engine's API (Docker's socket, or Podman's compatible one): their
    state, exit code, restart count and health, and the last lines of their log. A container
    that exited, restarts in a loop, is paused or unhealthy does not serve; nor does any
    container when the engine itself is stopped (``systemctl status docker``): then the
    containers it keeps in its data root still say which one publishes the port.
    """
    opts = server_options(ctx)
    view = await engine_view(ctx)
    pubs = view.publishing(opts.port, opts.proto)
    evidence: dict[str, Any] = {"engine": view.to_json(),
                                "containers": [c.to_json() for c in pubs[:8]]}
    if not pubs:
        return _no_publishing_container(ctx, view, evidence)
    if view.stored:
        return _engine_stopped(ctx, view, pubs[0], evidence)
    up = [c for c in pubs if not c.down()]
    unhealthy = [c for c in up if c.health == "unhealthy"]
    if up and len(unhealthy) < len(up):
        good = [c for c in up if c.health != "unhealthy"]
        return passed(_containers_up(ctx, good[:3]), **evidence)
    if unhealthy:
        return _unhealthy(ctx, view, unhealthy[0], evidence)
    return await _container_down(ctx, view, pubs[0], evidence)


def _no_publishing_container(ctx: Context, view: EngineView, evidence: dict[str, Any]) -> Result:
    """The skip when no container publishes the port, or no engine answers to say."""
    if view.reachable:
        return skipped(_("no container of {engine} publishes {what}").format(
            engine=f"{view.product} {view.version}", what=_proto_port(ctx)), **evidence)
    if view.down_socket:
        return skipped(_("{problem}: which container would publish the port is not "
                         "known").format(problem=view.down_socket), **evidence)
    why = f": {view.problems[0]}" if view.problems else ""
    return skipped(_("no container engine answers here (no Docker or Podman socket)")
                   + why, **evidence)


def _engine_stopped(ctx: Context, view: EngineView, c: Container,
                    evidence: dict[str, Any]) -> Result:
    """SRV_CONTAINER_DOWN with the engine: only its data root still names the container."""
    cli = _cli(view)
    return failed("SRV_CONTAINER_DOWN",
                  _("{problem}: container {name}, which publishes {what}, is down with "
                    "it").format(problem=view.down_socket, name=c.label,
                                 what=_proto_port(ctx)),
                  Hint(_("Docker itself is stopped, so none of its containers runs. Start "
                         "it (containers with a restart policy come back with it), read "
                         "why it stopped, then check the container:"),
                       ["systemctl status docker", "systemctl start docker",
                        "journalctl -u docker -n 50 --no-pager", f"{cli} ps -a"]),
                  **evidence)


def _containers_up(ctx: Context, good: list[Container]) -> str:
    """The running, healthy containers: image, state, restarts, bindings and addresses."""
    opts = server_options(ctx)
    return "; ".join(_("container {name} ({image}) {state}, {restarts} restarts, "
                       "publishes {bindings}").format(
                           name=c.label, image=c.image, state=c.state_text(),
                           restarts=c.restart_count,
                           bindings=", ".join(b.text() for b in c.publishes(
                               opts.port, opts.proto)))
                     + (", " + _("at {addresses}").format(
                         addresses=", ".join(c.addresses)) if c.addresses else "")
                     for c in good)


def _unhealthy(ctx: Context, view: EngineView, c: Container, evidence: dict[str, Any]) -> Result:
    """SRV_CONTAINER_DOWN as a warning: the container runs, but its own health check fails."""
    cli = _cli(view)
    return warned("SRV_CONTAINER_DOWN",
                  _("container {name} runs but is unhealthy: its health check "
                    "fails").format(name=c.label)
                  + (f" ({c.health_log})" if c.health_log else ""),
                  Hint(_("{name}'s own health check fails: the application inside does "
                         "not answer as it should. Read the health log and the "
                         "container's log.").format(name=c.label),
                       [f"{cli} inspect --format '{{{{json .State.Health}}}}' "
                                f"{c.label}", *_container_commands(ctx, view, c)[1:],
                                f"{cli} restart {c.label}"]), **evidence)


async def _container_down(ctx: Context, view: EngineView, c: Container,
                          evidence: dict[str, Any]) -> Result:
    """SRV_CONTAINER_DOWN for a container that does not run: paused, restarting in a loop, or
    stopped, with the last line of its log and its exit code (or OOM kill)."""
    cli = _cli(view)
    last = await last_lines(ctx, c)
    evidence["last_log_lines"] = last
    said = "; " + _("its log ends with: {line}").format(line=last[-1]) if last else ""
    cmds = _container_commands(ctx, view, c)
    if c.paused:
        return failed("SRV_CONTAINER_DOWN", _("container {name}, which publishes {what}, is "
                                              "paused").format(name=c.label,
                                                               what=_proto_port(ctx)), Hint(
                          _("{name} is paused: its processes are frozen. Unpause it.").format(
                              name=c.label),
                          [f"{cli} unpause {c.label}", *cmds]), **evidence)
    why = c.error or (_("exit code {code}").format(code=c.exit_code)
                      if c.exit_code is not None else "")
    if c.oom_killed:
        why = _("killed by the kernel's OOM killer (out of memory)")
    if c.looping():
        return failed("SRV_CONTAINER_DOWN",
                      _("container {name}, which publishes {what}, restarts in a loop: "
                        "{state}, {restarts} restarts (restart policy {policy}), last "
                        "{why}").format(name=c.label, what=_proto_port(ctx),
                                        state=c.state_text(), restarts=c.restart_count,
                                        policy=c.restart_policy or "?", why=why) + said,
                      Hint(_("{name}'s application exits as soon as it starts and Docker "
                             "starts it again and again. Its log says why; fix the cause (its "
                             "configuration, a missing file or dependency), then restart "
                             "it.").format(name=c.label),
                           [*cmds, f"{cli} restart {c.label}"]), **evidence)
    return failed("SRV_CONTAINER_DOWN",
                  _("container {name}, which publishes {what}, is not running: {state}").format(
                      name=c.label, what=_proto_port(ctx), state=c.state_text())
                  + (" (" + why + ")" if why else "") + said,
                  Hint(_("{name} has stopped, so nothing serves the port. Its log says why it "
                         "stopped: fix that, then start it again.").format(name=c.label),
                       [*cmds, f"{cli} start {c.label}"]), **evidence)


@check("app.service_unit", Layer.APPLICATION, modes=SERVER, codes=("SRV_SERVICE_INACTIVE",))
async def service_unit(ctx: Context) -> Result:
    """Service unit is active.

    The systemd unit given with ``--service``, or the one whose cgroup holds the process that
    listens (``/proc/PID/cgroup``): loaded, active and running, enabled at boot, and its last
    log lines, as ``systemctl status`` shows them. Where systemd is not the init system there
    is no unit to ask, and the check says so.
    """
    info = await unit_info(ctx)
    opts = server_options(ctx)
    evidence: dict[str, Any] = {"unit": info.name, "found": info.how}
    if info.name is None:
        return _no_unit(ctx, info, evidence)
    if info.reason:
        return skipped(f"{info.name}: {systemd_unavailable(info.reason)}", **evidence)
    if info.ref is not None and (info.ref.user is not None or info.name.endswith(".scope")):
        return skipped(_("the listening process belongs to {unit}").format(
            unit=info.ref.describe()), **evidence)
    if info.error or info.state is None:
        return Result(Status.ERROR, f"systemctl show {info.name}: {info.error}",
                      evidence=evidence)
    st = info.state
    evidence.update(st.to_json())
    if info.journal_reason is not None:  # where to_json puts a note: last
        evidence["log_note"] = systemd_unavailable(info.journal_reason, journal=True)
    name = st.unit
    if not st.exists:
        return failed("SRV_SERVICE_INACTIVE", _("{unit} is not installed (not-found)").format(
            unit=name), Hint(
            _("There is no unit {unit} on this host: the service is not installed, or it has "
              "another name. Find it:").format(unit=name),
            [f"systemctl list-units --type=service --all | grep -i "
             f"{name.split('.')[0].split('@')[0]}", "systemctl list-unit-files --type=service"]),
            **evidence)
    boot = {True: _("enabled at boot"),
            False: _("not enabled at boot ({state})").format(state=st.boot),
            None: _("started by another unit ({state})").format(state=st.boot)
            }[st.starts_at_boot]
    if st.masked:
        return failed("SRV_SERVICE_INACTIVE", _("{unit} is masked: it cannot be started").format(
            unit=name),
                      Hint(_("{unit} is masked (linked to /dev/null): unmask it, then start "
                             "and enable it.").format(unit=name), _unit_commands(info)),
                      **evidence)
    if st.active:
        summary = f"{name} {st.active_line()}, {boot}"
        if st.main_pid:
            summary += ", " + _("main pid {pid}").format(pid=st.main_pid)
        if st.starts_at_boot is False:
            summary += " " + _("(it will not start after a reboot: {command})").format(
                command=f"systemctl enable {name}")
        return passed(summary, **evidence)
    return _unit_not_running(info, st, opts.port, evidence)


def _no_unit(ctx: Context, info: UnitInfo, evidence: dict[str, Any]) -> Result:
    """The skip when no unit was found: systemd is not running, or nothing named one."""
    from netcheck.probes.systemd import not_running_reason

    reason = not_running_reason(server_options(ctx).procfs)
    if reason:
        return skipped(systemd_unavailable(reason), **evidence)
    if info.candidates:
        return skipped(_("no --service given and nothing listens: {units} could serve the "
                         "port (give --service UNIT)").format(
            units=", ".join(info.candidates)), **evidence)
    return skipped(_("no --service given, and no unit holds a process on the port "
                     "(give --service UNIT)"), **evidence)


def _unit_not_running(info: UnitInfo, st: UnitState, port: int,
                      evidence: dict[str, Any]) -> Result:
    """SRV_SERVICE_INACTIVE for a unit that is not active: still starting (a warning), failing
    and restarted by systemd, or stopped; with its failure, restarts and last log line."""
    name = st.unit
    failure = st.failure()
    detail = _("{unit} is {state}").format(unit=name, state=st.active_line())
    if failure:
        detail += f" ({failure})"
    if st.restarts:
        detail += ", " + ngettext("restarted {n} time", "restarted {n} times",
                                  st.restarts).format(n=st.restarts)
    if st.log:
        detail += "; " + _("last log: {line}").format(line=st.log[-1])
    if st.active_state == "activating" and st.sub_state not in ("auto-restart",):
        return warned("SRV_SERVICE_INACTIVE", detail + ": " + _("still starting"), Hint(
            _("{unit} has not finished starting: wait, or read why it hangs.").format(
                unit=name),
            [f"systemctl status {name}", f"journalctl -u {name} -n 50 --no-pager"]),
            **evidence)
    text = (_("{unit} is not running ({state}): read why it stopped, fix it, and start it "
              "(and enable it, so that it starts at boot).") if st.starts_at_boot is False
            else _("{unit} is not running ({state}): read why it stopped, fix it, and start "
                   "it.")).format(unit=name, state=st.active_state)
    if st.sub_state == "auto-restart":
        text = _("{unit} keeps failing and systemd restarts it ({restarts} restarts): read its "
                 "log for the error.").format(unit=name, restarts=st.restarts)
    return failed("SRV_SERVICE_INACTIVE", detail, Hint(text, _unit_commands(info)),
                  port=port, **evidence)


@check("app.process", Layer.APPLICATION, modes=SERVER, codes=("SRV_PROCESS_MISSING",))
async def service_process(ctx: Context) -> Result:
    """Service process is running.

    The program named with ``--process`` (``ps aux | grep NAME``), or else the processes that
    hold the listening socket: their user, how long they have run, and the sockets they
    listen on. A program that is not running cannot answer, whatever its unit says.
    """
    opts = server_options(ctx)
    table = await listen_table(ctx)
    socks = await bound(ctx)
    if opts.process:
        return await _named_process(ctx, opts.process, table, socks)
    pids = owner_pids(socks)
    if not socks:
        return skipped(_("nothing listens on the port and no --process given: no process to "
                         "look at"))
    if not pids:
        return skipped(_("the processes holding the port are not visible (other users' "
                         "processes need root)"))
    infos = [await process(ctx, pid) for pid in pids[:8]]
    evidence = {"processes": [i.to_json() for i in infos],
                "listening": [s.ss_line() for s in table.of_pids(pids)][:16]}
    alive = [i for i in infos if not i.error and i.status != "zombie"]
    if not alive:
        return failed("SRV_PROCESS_MISSING", _("the processes that held the port have ended"),
                      Hint(_("The service's processes ended during the check: look at its "
                             "log."), [_ss(ctx)]), **evidence)
    first = alive[0]
    summary = _("{name} pid {pid}, user {user}, up {uptime}").format(
        name=first.name, pid=first.pid, user=first.user or "?", uptime=first.uptime_words())
    if len(alive) > 1:
        summary += " " + _("(+{n} more: {others})").format(
            n=len(alive) - 1, others=", ".join(f"{i.name} {i.pid}" for i in alive[1:4]))
    return passed(summary, **evidence)


async def _named_process(ctx: Context, name: str, table: ListenTable,
                         socks: list[Listener]) -> Result:
    """The program given with ``--process``: how many run, since when, and where they listen
    (the port held by others is said)."""
    opts = server_options(ctx)
    procs = [p for p in await named_processes(ctx) if p.status != "zombie"]
    evidence: dict[str, Any] = {"process": name, "running": [p.to_json() for p in procs]}
    if not procs:
        return await _named_process_missing(ctx, name, socks, evidence)
    listening = table.of_pids([p.pid for p in procs])
    evidence["listening"] = [s.ss_line() for s in listening]
    first = procs[0]
    summary = f"{name}: " + ngettext(
        "{n} process (pid {pid}, user {user}, up {uptime})",
        "{n} processes (pid {pid}, user {user}, up {uptime})", len(procs)).format(
        n=len(procs), pid=first.pid, user=first.user or "?", uptime=first.uptime_words())
    on_port = [s for s in listening if s.port == opts.port]
    if listening:
        summary += ", " + _("listening on {endpoints}").format(
            endpoints=", ".join(s.endpoint for s in listening[:4]))
    if socks and not on_port:
        summary += "; " + _("{what} is held by {holders}").format(
            what=_proto_port(ctx), holders=_all_owners(socks) or "?")
    return passed(summary, **evidence)


async def _named_process_missing(ctx: Context, name: str, socks: list[Listener],
                                 evidence: dict[str, Any]) -> Result:
    """SRV_PROCESS_MISSING: no process of that name runs (who holds the port instead)."""
    opts = server_options(ctx)
    unit = await unit_info(ctx)
    cmds = [f"pgrep -a {name}"]
    if unit.name and opts.service:
        cmds = [*_unit_commands(unit), *cmds]
    else:
        cmds.append(f"systemctl list-units --type=service --all | grep -i "
                    f"{name.rsplit('/', 1)[-1]}")
    holders = _all_owners(socks)
    summary = _("no process named {name} is running").format(name=name)
    if holders:
        summary += " " + _("(the port is held by {holders})").format(holders=holders)
    return failed("SRV_PROCESS_MISSING", summary, Hint(
        _("{name} is not running: start the service that runs it and read its log for "
          "why it stopped.").format(name=name), cmds), **evidence)
