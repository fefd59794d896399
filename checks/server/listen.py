"""Layer 4, the port listening: on this host (``transport.listen``, as ``ss -tlnp`` shows it)
and inside the container that publishes it (``transport.container_listen``).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any, Optional

from netcheck.checks.server.common import (
    SERVER,
    _cli,
    _container_commands,
    _owners_text,
    _proto_port,
    _ss,
    _unit_commands,
)

from netcheck.i18n import _
from netcheck.model import Hint, Layer, Result, Status, failed, passed, skipped
from netcheck.registry import check
from netcheck.server.measure import (
    UnitInfo,
    _listening_elsewhere,
    _unpublished,
    client_family,
    container_proxies,
    engine_view,
    listen_table,
    named_processes,
    server_options,
    unit_info,
)

if TYPE_CHECKING:
    from netcheck.probes.docker import Container, EngineView
    from netcheck.runner import Context
    from netcheck.server.listeners import Listener, ListenTable


# -- layer 4 -----------------------------------------------------------------------------------

def _loopback_hint(ctx: Context, socks: list[Listener], containers: dict[int, dict[str, Any]],
                   unit: UnitInfo) -> Hint:
    opts = server_options(ctx)
    where = ", ".join(s.endpoint for s in socks)
    programs = {o.name for s in socks for o in s.owners}
    cmds: list[str] = []
    if "docker-proxy" in programs or containers:
        cmds.append(f"docker ps --filter publish={opts.port}   # " + _(
            "published as {binding}").format(binding=f"127.0.0.1:{opts.port}:..."))
        cmds.append(f"docker run -p {opts.port}:{opts.port} ...   # " + _("not {other}").format(
            other=f"-p 127.0.0.1:{opts.port}:{opts.port}"))
    if "nginx" in programs:
        cmds.append("grep -rn 'listen' /etc/nginx/   # " + _(
            "{good} (and {good6}), not {bad}").format(
            good=f"'listen {opts.port};'", good6=f"'listen [::]:{opts.port};'",
            bad=f"'listen 127.0.0.1:{opts.port};'"))
        cmds.append("nginx -t")
    if programs & {"apache2", "httpd"}:
        cmds.append("grep -rn '^Listen' /etc/apache2/ /etc/httpd/ 2>/dev/null   # " + _(
            "{good}, not {bad}").format(good=f"'Listen {opts.port}'",
                                        bad=f"'Listen 127.0.0.1:{opts.port}'"))
    if "sshd" in programs:
        cmds.append("grep -n ListenAddress /etc/ssh/sshd_config   # 0.0.0.0 and ::")
    if unit.name and not unit.reason:
        cmds.append(f"systemctl restart {unit.name}")
    cmds.append(_ss(ctx))
    return Hint(_("The service listens on {where} only: connections from other hosts are "
                  "refused. Make it listen on the address clients use, or on all of them "
                  "({all4} and {all6}), and restart it.").format(
        where=where, all4=f"0.0.0.0:{opts.port}", all6=f"[::]:{opts.port}"), cmds)


def _not_published(ctx: Context, view: EngineView, found: list[tuple[Container, str]],
                   evidence: dict[str, Any]) -> Result:
    opts = server_options(ctx)
    c, how = found[0]
    cli = _cli(view)
    summary = _("{what} is not published: container {name} ({state}) {how}, but nothing on "
                "this host forwards the port to it").format(
        what=_proto_port(ctx), name=c.label, state=c.state_text(), how=how)
    evidence["unpublished"] = [{"container": x.to_json(), "how": h} for x, h in found]
    return failed("SRV_PORT_NOT_PUBLISHED", summary, Hint(
        _("The service runs in container {name}, but its port was never published: clients "
          "reach this host, where nothing listens. Publish the port when the container is "
          "created ({publish}, or ports: in a compose file) and create it again: a running "
          "container's ports cannot be added.").format(
            name=c.label, publish=f"-p {opts.port}:{opts.port}"),
        [f"{cli} ps --filter name={c.label}   # PORTS: {opts.port}/{opts.proto}, "
         + _("no '->'"),
         f"{cli} inspect --format '{{{{json .HostConfig.PortBindings}}}}' {c.label}",
         f"{cli} run -d -p {opts.port}:{opts.port} ...   # " + _("the same image and options")]),
        **evidence)


def _published_loopback(ctx: Context, view: EngineView, pubs: list[Container],
                        containers: dict[int, dict[str, Any]], described: str,
                        evidence: dict[str, Any]) -> Optional[Result]:
    """SRV_PORT_NOT_PUBLISHED when the only sockets on the port are a container's, published
    on 127.0.0.1 (``-p 127.0.0.1:PORT:...``); None when it is not a container's."""
    opts = server_options(ctx)
    bindings = [b for c in pubs for b in c.publishes(opts.port, opts.proto)]
    if bindings and not all(b.loopback_only for b in bindings):
        return None
    if not bindings and not containers:
        return None
    name = pubs[0].label if pubs else _("the container")
    cport = bindings[0].container_port if bindings else next(
        (p.get("container_port") for p in containers.values()), opts.port)
    cli = _cli(view)
    return failed("SRV_PORT_NOT_PUBLISHED",
                  _("{what} is published on loopback only: {described}; {name}'s port {cport} "
                    "is reachable from this host alone").format(
                      what=_proto_port(ctx), described=described, name=name, cport=cport),
                  Hint(_("{name}'s port is published as {loopback}: only this host can "
                         "connect. Publish it on every address ({everywhere}) and create the "
                         "container again.").format(
                      name=name, loopback=f"-p 127.0.0.1:{opts.port}:{cport}",
                      everywhere=f"-p {opts.port}:{cport}"),
                       [f"{cli} ps --filter publish={opts.port}   # 127.0.0.1:{opts.port}->"
                        f"{cport}/{opts.proto}",
                        f"{cli} run -d -p {opts.port}:{cport} ...   # " + _("not {other}").format(
                            other=f"-p 127.0.0.1:{opts.port}:{cport}"), _ss(ctx)]), **evidence)


@check("transport.listen", Layer.TRANSPORT, modes=SERVER,
       codes=("SRV_NOT_LISTENING", "SRV_LISTEN_LOOPBACK_ONLY", "SRV_PORT_NOT_PUBLISHED"))
async def port_listening(ctx: Context) -> Result:
    """Service port is listening.

    Every socket bound to the port, as ``ss -tlnp`` shows it: the address (one address, the
    IPv4 wildcard, the IPv6 wildcard alone or dual-stack), the accept queue, and the
    processes holding it; a container proxy such as docker-proxy is named with the container
    it forwards to. Nothing listening, or listening on loopback only, keeps every client out.
    When the service runs in a container (Docker's or Podman's engine answers), a port that
    is not published, or published on 127.0.0.1 only, is SRV_PORT_NOT_PUBLISHED.
    """
    opts = server_options(ctx)
    table = await listen_table(ctx)
    if table.error:
        return Result(Status.ERROR, table.error)
    socks = table.on_port(opts.port)
    containers = await container_proxies(ctx, socks)
    evidence = _listen_evidence(ctx, table, socks, containers)
    what = _proto_port(ctx)
    view = await engine_view(ctx)
    pubs = view.publishing(opts.port, opts.proto)
    if not socks and not pubs:
        unpublished = await _unpublished(ctx, view)
        if unpublished:
            return _not_published(ctx, view, unpublished, evidence)
    if not socks:
        return await _nothing_listening(ctx, view, pubs, evidence)
    described = "; ".join(f"{s.endpoint} ({s.kind_text()}"
                          + (f", {_owners_text(s, containers)}" if s.owners else "") + ")"
                          for s in socks)
    external = [s for s in socks if not s.loopback]
    fam = client_family(ctx)
    client_local = opts.client is not None and ipaddress.ip_address(opts.client).is_loopback
    if not external and not client_local:
        container_socks = all(o.pid in containers for s in socks
                              for o in s.owners) and any(s.owners for s in socks)
        if pubs or container_socks:
            result = _published_loopback(ctx, view, pubs, containers, described, evidence)
            if result is not None:
                return result
        unit = await unit_info(ctx)
        return failed("SRV_LISTEN_LOOPBACK_ONLY",
                      _("{what} listens on loopback only: {described}; other hosts are "
                        "refused").format(what=what, described=described),
                      _loopback_hint(ctx, socks, containers, unit), **evidence)
    served = {f for s in socks for f in s.families_served}
    if fam is not None and fam not in served and not client_local:
        return _client_family_not_served(ctx, fam, served, described, evidence)
    return passed(_listening_summary(what, described, served, socks), **evidence)


def _listen_evidence(ctx: Context, table: ListenTable, socks: list[Listener],
                     containers: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The sockets on the port as ``ss`` lines and records, the containers behind them, and
    why some owners may be missing."""
    opts = server_options(ctx)
    evidence: dict[str, Any] = {
        "port": opts.port, "proto": opts.proto, "source": table.source,
        "ss": [s.ss_line() for s in socks], "listeners": [s.to_json() for s in socks],
    }
    if containers:
        evidence["containers"] = list(containers.values())
    if not table.owners_visible:
        evidence["owners_note"] = _("other users' processes cannot be looked into without "
                                    "root: some owners may be missing")
    elif not table.owners_complete:
        evidence["owners_note"] = _("the search for owners stopped at its time bound")
    return evidence


async def _nothing_listening(ctx: Context, view: EngineView, pubs: list[Container],
                             evidence: dict[str, Any]) -> Result:
    """SRV_NOT_LISTENING with no socket on the port: the unit's or the process's state, the
    port the service listens on instead, the other protocol's socket, or the stopped
    container that publishes it say why."""
    opts = server_options(ctx)
    what = _proto_port(ctx)
    unit = await unit_info(ctx)
    elsewhere = await _listening_elsewhere(ctx)
    other_proto = "udp" if opts.proto == "tcp" else "tcp"
    other = (await listen_table(ctx, other_proto)).on_port(opts.port)
    summary = _("nothing listens on {what}").format(what=what)
    notes = []
    if unit.state is not None and not unit.state.active:
        notes.append(_("{unit} is {state}").format(unit=unit.name,
                                                   state=unit.state.active_line()))
    if opts.process and not await named_processes(ctx):
        notes.append(_("no process named {name} runs").format(name=opts.process))
    if elsewhere:
        notes.append(_("the service listens on {where} instead").format(
            where=", ".join(elsewhere)))
    if other:
        notes.append(_("{proto} port {port} is open ({endpoint})").format(
            proto=other_proto, port=opts.port, endpoint=other[0].endpoint))
        evidence["other_proto"] = [s.ss_line() for s in other]
    if pubs:
        from netcheck.probes.docker import names

        notes.append((_("it is published by container {names} of a container engine "
                        "that is not running") if view.stored
                      else _("it is published by container {names}")).format(
            names=names(pubs[:3])))
        evidence["containers"] = [c.to_json() for c in pubs[:8]]
    elif view.down_socket:
        notes.append(view.down_socket)
    if notes:
        summary += ": " + "; ".join(notes)
    evidence["listening_elsewhere"] = elsewhere
    cmds = _unit_commands(unit)
    if pubs:
        cmds += _container_commands(ctx, view, pubs[0])
    cmds.append(_ss(ctx))
    return failed("SRV_NOT_LISTENING", summary,
                  Hint(_nothing_listening_text(what, elsewhere, pubs), cmds), **evidence)


def _nothing_listening_text(what: str, elsewhere: list[str], pubs: list[Container]) -> str:
    """The hint's text: a stopped container that publishes the port explains the most, a
    service on another port next, else the service is not running."""
    if pubs:
        return _("Nothing listens on {what} because container {name}, which publishes "
                 "it, is not running (the container check says why): Docker holds a "
                 "published port only while its container runs.").format(
            what=what, name=pubs[0].label)
    if elsewhere:
        return _("The service runs but listens on {where}, not on {what}: fix the port in "
                 "its configuration (or use the port it listens on), then restart "
                 "it.").format(where=", ".join(elsewhere), what=what)
    return _("Nothing on this host listens on {what}: the service is not running, or it "
             "listens on another port. Start it (or fix the port in its configuration) "
             "and check that the port is in LISTEN.").format(what=what)


def _client_family_not_served(ctx: Context, fam: int, served: set[int], described: str,
                              evidence: dict[str, Any]) -> Result:
    """SRV_NOT_LISTENING for the client's address family: the service listens on the other
    one only."""
    opts = server_options(ctx)
    only = "IPv4" if 4 in served else "IPv6"
    return failed("SRV_NOT_LISTENING",
                  _("nothing listens on {what} for {family}, the client {client}'s family: "
                    "{described}").format(what=_proto_port(ctx), family=f"IPv{fam}",
                                          client=opts.client, described=described),
                  Hint(_("The service listens on {only} only, and the client connects over "
                         "{family}. Make it listen on {all6} (or {all4}) too, or have the "
                         "client use {only}.").format(
                      only=only, family=f"IPv{fam}", all6=f"[::]:{opts.port}",
                      all4=f"0.0.0.0:{opts.port}"),
                       [_ss(ctx)]), **evidence)


def _listening_summary(what: str, described: str, served: set[int],
                       socks: list[Listener]) -> str:
    """The sockets, the family no one serves, and a full accept queue."""
    summary = f"{what}: {described}"
    if 4 not in served:
        summary += "; " + _("IPv4 clients are refused")
    elif 6 not in served:
        summary += "; " + _("IPv6 clients are refused")
    full = [s for s in socks if s.backlog_full]
    if full:
        summary += "; " + _("accept queue full on {endpoint} ({waiting} waiting, limit "
                            "{limit}): the program is not accepting").format(
            endpoint=full[0].endpoint, waiting=full[0].recv_q, limit=full[0].send_q)
    return summary


@check("transport.container_listen", Layer.TRANSPORT, modes=SERVER,
       requires=("transport.listen",), codes=("SRV_CONTAINER_NOT_LISTENING",))
async def container_listening(ctx: Context) -> Result:
    """Container listens on its published port.

    For a port a running container publishes (the engine's port bindings): who listens on
    the container's side of it inside the container's network namespace — read from
    ``/proc/PID/net/tcp`` of its main process, what ``docker exec CONTAINER ss -tlnp`` shows.
    Nothing there, or only the container's own 127.0.0.1 (the most common container
    mistake), and every connection the host forwards to it is refused.
    """
    opts = server_options(ctx)
    view = await engine_view(ctx)
    pubs = [c for c in view.publishing(opts.port, opts.proto)
            if c.running and c.pid and not c.down()]
    if not pubs:
        if not view.reachable:
            return skipped(_("no container engine answers here: no container to look into"),
                           engine=view.to_json())
        return skipped(_("no running container publishes {what}").format(what=_proto_port(ctx)),
                       engine=view.to_json())
    rows, bad = await _listeners_inside(ctx, pubs[:4])
    evidence: dict[str, Any] = {"port": opts.port, "inside": rows, "engine": view.to_json()}
    if not bad:
        return passed("; ".join(_("container {name} listens on {where} (published as "
                                  "{port})").format(name=r["container"],
                                                    where=", ".join(r["listening"]),
                                                    port=opts.port)
                                for r in rows), **evidence)
    c, cport, on_port = bad[0]
    return _container_not_listening(ctx, view, c, cport, on_port, evidence)


async def _listeners_inside(ctx: Context, pubs: list[Container]
                            ) -> tuple[list[dict[str, Any]],
                                       list[tuple[Container, int, list[tuple[str, int]]]]]:
    """Who listens inside each container on its side of the published port (one record a
    container), and the containers where no one does but on their own loopback."""
    from netcheck.probes import docker

    opts = server_options(ctx)
    rows: list[dict[str, Any]] = []
    bad: list[tuple[Container, int, list[tuple[str, int]]]] = []
    for c in pubs:
        cport = c.publishes(opts.port, opts.proto)[0].container_port
        inside = await ctx.blocking(docker.listeners_inside, c.pid, opts.proto, opts.procfs)
        on_port = sorted({(a, p) for a, p in inside if p == cport})
        rows.append({"container": c.label, "pid": c.pid, "container_port": cport,
                     "addresses": c.addresses,
                     "listening": [f"[{a}]:{p}" if ":" in a else f"{a}:{p}"
                                   for a, p in on_port],
                     "others": sorted({f"{a}:{p}" for a, p in inside if p != cport})[:8]})
        if not on_port or all(docker.is_loopback(a) for a, _port in on_port):
            bad.append((c, cport, on_port))
    return rows, bad


def _container_not_listening(ctx: Context, view: EngineView, c: Container, cport: int,
                             on_port: list[tuple[str, int]], evidence: dict[str, Any]) -> Result:
    """SRV_CONTAINER_NOT_LISTENING: the container listens on its own loopback only, or not
    on its side of the published port at all."""
    opts = server_options(ctx)
    cli = _cli(view)
    cmds = [f"{cli} exec {c.label} ss -tlnp   # "
            + _("or netstat -tlnp where the image has no ss"),
            *_container_commands(ctx, view, c)[1:], f"{cli} restart {c.label}"]
    if on_port:
        where = ", ".join(f"{a}:{p}" for a, p in on_port)
        return failed("SRV_CONTAINER_NOT_LISTENING",
                      _("container {name} listens on {where} only, its own loopback: the "
                        "connections {port} forwards to its port {cport} are refused").format(
                          name=c.label, where=where, port=opts.port, cport=cport),
                      Hint(_("The application in {name} listens on the container's own "
                             "127.0.0.1: traffic forwarded from the host arrives on the "
                             "container's address ({addresses}) and is refused. Make it listen "
                             "on {everywhere} (its bind or listen setting), then restart the "
                             "container.").format(name=c.label,
                                                   addresses=", ".join(c.addresses) or "?",
                                                   everywhere=f"0.0.0.0:{cport}"),
                           cmds), **evidence)
    return failed("SRV_CONTAINER_NOT_LISTENING",
                  _("nothing listens inside container {name} on its port {cport}, where {what} "
                    "is forwarded").format(name=c.label, cport=cport, what=_proto_port(ctx)),
                  Hint(_("The port is published to {name}'s port {cport}, but nothing in the "
                         "container listens there: the application listens on another port, "
                         "or has not started. Compare the -p mapping with the port the "
                         "application uses, and read its log.").format(name=c.label,
                                                                        cport=cport),
                       cmds), **evidence)
