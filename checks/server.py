"""Server mode: the slides' "Equipo Servidor" rungs, checked on the server itself.

``netcheck server --port N`` runs these beside this host's own layer 1-3 checks (the client's,
pointed at the way back to ``--client``). Declared in root-cause order within each layer:

- layer 4: the port listening (``ss -tlnp``), this host's input firewall, a local handshake
  (``nping --tcp-connect localhost``) — nothing listening explains a refused handshake, a
  dropped port explains clients that time out;
- layer 7: the service's systemd unit (``systemctl status``), its process (``ps aux``), and
  the client's request in its log — a stopped unit explains a missing process, which
  explains a request that never got an answer.

What they judge is measured by ``netcheck.server.measure`` (the socket table, the unit's
state, the processes, the containers, the inbound flows, the log sources), each once per run
through ``ctx.memo``, whichever check asks first; this module judges and words the findings.
"""

from __future__ import annotations

import ipaddress
import time
from typing import TYPE_CHECKING, Any, Collection, Optional, Sequence

from netcheck.i18n import _, ngettext
from netcheck.lazy import asyncio
from netcheck.model import Hint, Layer, Result, Status, failed, passed, skipped, warned
from netcheck.registry import check
from netcheck.server.measure import (
    MAX_ADDRESSES,
    UnitInfo,
    bound,
    client_family,
    container_proxies,
    engine_view,
    inbound,
    last_lines,
    listen_table,
    local_block,
    log_sources,
    named_processes,
    own_addresses,
    owner_pids,
    process,
    server_options,
    unit_info,
)

if TYPE_CHECKING:
    from netcheck.probes.docker import Container, EngineView
    from netcheck.runner import Context
    from netcheck.server.listeners import Listener

SERVER = ("server",)


def _proto_port(ctx: Context) -> str:
    opts = server_options(ctx)
    return _("{proto} port {port}").format(proto=opts.proto, port=opts.port)


def _ss(ctx: Context) -> str:
    opts = server_options(ctx)
    flag = "-tlnp" if opts.proto == "tcp" else "-ulnp"
    return f"ss {flag} 'sport = :{opts.port}'"


# -- shared measurements -----------------------------------------------------------------------


def _cli(view: EngineView) -> str:
    return "podman" if view.product == "Podman" else "docker"


def _container_commands(ctx: Context, view: EngineView, c: Container) -> list[str]:
    """The slides' tools for one container: its state, its log, its configuration."""
    from netcheck.probes.docker import since_flag

    cli, opts = _cli(view), server_options(ctx)
    logs = f"{cli} logs --since {since_flag(min(opts.since_s, 600.0))} {c.label}"
    return [f"{cli} ps -a --filter name={c.label}", logs, f"{cli} inspect {c.label}"]


def _owners_text(s: Listener, containers: dict[int, dict[str, Any]]) -> str:
    if not s.owners:
        return ""
    names: dict[str, list[int]] = {}
    for o in s.owners:
        names.setdefault(o.name, []).append(o.pid)
    parts = []
    for name, pids in names.items():
        shown = ", ".join(map(str, pids[:4])) + (" ..." if len(pids) > 4 else "")
        text = f"{name} (pid {shown})"
        proxy = next((containers[p] for p in pids if p in containers), None)
        if proxy and proxy.get("container_ip"):
            text += " -> " + _("container {address}").format(
                address=f"{proxy['container_ip']}:{proxy.get('container_port', '?')}")
        parts.append(text)
    return ", ".join(parts)


def _all_owners(socks: list[Listener]) -> str:
    """Every process holding one of the sockets: ``python (pid 7), nginx (pid 8, 9)``."""
    names: dict[str, list[int]] = {}
    for s in socks:
        for o in s.owners:
            pids = names.setdefault(o.name, [])
            if o.pid not in pids:
                pids.append(o.pid)
    return ", ".join(f"{name} (pid {', '.join(map(str, pids[:4]))}"
                     f"{' ...' if len(pids) > 4 else ''})" for name, pids in names.items())


def _unit_commands(info: UnitInfo, start: bool = True) -> list[str]:
    if info.name is None or info.reason:
        return []
    st = info.state
    # The unit's own Id: systemctl resolves an alias (httpd -> apache2.service).
    name = st.unit if st is not None and st.unit else info.name
    cmds = []
    if st is not None and st.masked:
        cmds.append(f"systemctl unmask {name}")
    if start:
        cmds.append(f"systemctl start {name}")
    if st is not None and st.starts_at_boot is False and not st.masked:
        cmds.append(f"systemctl enable {name}")
    cmds += [f"systemctl status {name}", f"journalctl -u {name} -n 50 --no-pager"]
    return cmds


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


async def _listening_elsewhere(ctx: Context) -> list[str]:
    """Where the expected program (--process, or the unit's main process) does listen."""
    opts = server_options(ctx)
    pids: list[int] = []
    if opts.process:
        pids += [p.pid for p in await named_processes(ctx)]
    unit = await unit_info(ctx)
    if unit.state is not None and unit.state.main_pid:
        pids.append(unit.state.main_pid)
    if not pids:
        return []
    table = await listen_table(ctx)
    return [f"{s.endpoint} ({s.owners[0].name}, pid {s.owners[0].pid})"
            for s in table.of_pids(pids)][:6]


async def _unpublished(ctx: Context, view: EngineView) -> list[tuple[Container, str]]:
    """Running containers that serve the port inside but do not publish it on this host:
    they expose it (``EXPOSE``, ``--expose``) or something listens on it in their namespace."""
    from netcheck.probes import docker

    opts = server_options(ctx)
    found: list[tuple[Container, str]] = []
    for c in view.containers:
        if not c.running or c.publishes(opts.port, opts.proto):
            continue
        inside = [(a, p) for a, p in await ctx.blocking(docker.listeners_inside, c.pid,
                                                        opts.proto, opts.procfs)
                  if p == opts.port] if c.pid else []
        if inside:
            a = inside[0][0]
            found.append((c, _("listens on {endpoint} inside").format(
                endpoint=f"{f'[{a}]' if ':' in a else a}:{opts.port}")))
        elif (opts.port, opts.proto) in c.exposed:
            found.append((c, _("exposes {port}").format(port=f"{opts.port}/{opts.proto}")))
        if len(found) >= 4:
            break
    return found


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
    what = _proto_port(ctx)
    view = await engine_view(ctx)
    pubs = view.publishing(opts.port, opts.proto)
    if not socks and not pubs:
        unpublished = await _unpublished(ctx, view)
        if unpublished:
            return _not_published(ctx, view, unpublished, evidence)
    if not socks:
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
        text = _("Nothing on this host listens on {what}: the service is not running, or it "
                 "listens on another port. Start it (or fix the port in its configuration) "
                 "and check that the port is in LISTEN.").format(what=what)
        if elsewhere:
            text = _("The service runs but listens on {where}, not on {what}: fix the port in "
                     "its configuration (or use the port it listens on), then restart "
                     "it.").format(where=", ".join(elsewhere), what=what)
        if pubs:
            text = _("Nothing listens on {what} because container {name}, which publishes "
                     "it, is not running (the container check says why): Docker holds a "
                     "published port only while its container runs.").format(
                what=what, name=pubs[0].label)
        return failed("SRV_NOT_LISTENING", summary, Hint(text, cmds), **evidence)
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
        only = "IPv4" if 4 in served else "IPv6"
        return failed("SRV_NOT_LISTENING",
                      _("nothing listens on {what} for {family}, the client {client}'s family: "
                        "{described}").format(what=what, family=f"IPv{fam}",
                                              client=opts.client, described=described),
                      Hint(_("The service listens on {only} only, and the client connects over "
                             "{family}. Make it listen on {all6} (or {all4}) too, or have the "
                             "client use {only}.").format(
                          only=only, family=f"IPv{fam}", all6=f"[::]:{opts.port}",
                          all4=f"0.0.0.0:{opts.port}"),
                           [_ss(ctx)]), **evidence)
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
    return passed(summary, **evidence)


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
    from netcheck.probes import docker

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
    rows = []
    bad: list[tuple[Container, int, list[tuple[str, int]]]] = []
    for c in pubs[:4]:
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
    evidence: dict[str, Any] = {"port": opts.port, "inside": rows, "engine": view.to_json()}
    if not bad:
        return passed("; ".join(_("container {name} listens on {where} (published as "
                                  "{port})").format(name=r["container"],
                                                    where=", ".join(r["listening"]),
                                                    port=opts.port)
                                for r in rows), **evidence)
    c, cport, on_port = bad[0]
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


def _inbound_hint(blocks: list[Any]) -> Hint:
    from netcheck.probes import firewall

    commands: list[str] = []
    for v in blocks:
        for cmd in firewall.remedy_commands(v):
            if cmd not in commands:
                commands.append(cmd)
    first = blocks[0]
    if first.rule is not None:
        r = first.rule
        where = _("chain {chain} of table {table}").format(chain=r.chain,
                                                           table=f"{r.family} {r.table}")
        tag = f" (handle {r.handle})" if r.handle is not None else ""
        text = (_("This host's own firewall drops clients' connections to the port on "
                  "arrival: the rule {rule} in {where}. Delete it if it is not wanted, or "
                  "insert an accept for the port before it:") if first.action == "drop" else
                _("This host's own firewall rejects clients' connections to the port on "
                  "arrival: the rule {rule} in {where}. Delete it if it is not wanted, or "
                  "insert an accept for the port before it:")).format(
            rule=f"`{r.quoted}`{tag}", where=where)
        commands.append(f"nft -a list chain {r.family} {r.table} {r.chain}"
                        if r.source == "nft" else f"{r.command} -L {r.chain} -n -v --line-numbers")
    else:
        label = first.chain.label if first.chain else _("the {hook} chain").format(
            hook=first.flow.hook)
        text = _("The policy of {chain} is {action} and no rule accepts the port before it: "
                 "add an accept rule for it.").format(chain=label, action=first.action)
    return Hint(text, commands)


@check("transport.inbound_firewall", Layer.TRANSPORT, modes=SERVER, codes=("SRV_FW_INPUT_BLOCK",))
async def inbound_firewall(ctx: Context) -> Result:
    """This host's firewall lets clients in.

    Reads this host's rules (``nft -j list ruleset``, iptables-save for legacy tables) and
    walks the input chains as netfilter would, for a client's new connection to the port on
    every address it listens on — from ``--client``, through the interface that leads back to
    it, when given; for a container's published port the forward chains too (Docker's DNAT
    sends the traffic there). A drop or reject, or a drop policy, is quoted with its table,
    chain and handle. Needs CAP_NET_ADMIN.
    """
    from netcheck.checks.transport import _flow as flow_text  # Flow.describe(), translated

    from netcheck.probes import firewall

    if not firewall.has_cap_net_admin():
        return skipped(_(firewall.NEEDS_ROOT))  # a literal in transport.py: in the catalogues
    judged, flows = await inbound(ctx)
    if not judged:
        return skipped(_("no address of this host to judge a connection to"))
    unreadable = next((fw for fw in judged if not fw.readable), None)
    if unreadable is not None:
        return skipped(_("cannot read the firewall rules: {reason}").format(
            reason=unreadable.reason))
    verdicts = [v for fw in judged for v in fw.verdicts]
    evidence: dict[str, Any] = {"hooks": [fw.hook for fw in judged],
                                "ruleset": judged[0].ruleset.summary() if judged[0].ruleset
                                else None,
                                "flows": [v.to_json() for v in verdicts],
                                "dnat": flows.dnat,
                                "duration_ms": round(sum(fw.duration_ms for fw in judged), 1)}
    opts = server_options(ctx)
    client = " " + _("from {client}").format(client=opts.client) if opts.client else ""
    blocks = [v for v in verdicts if v.blocked]
    if blocks:
        first = blocks[0]
        says = {(True, "drop"): _("this host's firewall drops {flow}"),
                (False, "drop"): _("this host's firewall probably drops {flow}"),
                (True, "reject"): _("this host's firewall rejects {flow}"),
                (False, "reject"): _("this host's firewall probably rejects {flow}")}
        summary = (says.get((first.certain, first.action), says[(first.certain, "drop")])
                   .format(flow=flow_text(first.flow) + client)
                   + f" ({first.flow.hook}): {first.describe()}")
        # A container's published port is reached through the forward chain only (Docker's
        # DNAT): blocked there, it is blocked for every client. On the input side, one
        # address of several blocked leaves the others.
        forward = [v for v in verdicts if v.flow.hook == "forward"]
        into = [v for v in verdicts if v.flow.hook == "input"]
        if (forward and all(v.blocked for v in forward)) or (
                into and all(v.blocked for v in into)):
            return failed("SRV_FW_INPUT_BLOCK", summary, _inbound_hint(blocks), **evidence)
        open_to = sorted({v.flow.daddr for v in verdicts} - {v.flow.daddr for v in blocks})
        return warned("SRV_FW_INPUT_BLOCK", summary + "; " + _("{addresses} may pass").format(
                          addresses=", ".join(open_to)),
                      _inbound_hint(blocks), **evidence)
    unknown = [v for v in verdicts if v.action == "unknown"]
    if unknown:
        why = "; ".join(unknown[0].uncertain[:2]) or _("the evaluation was capped")
        return skipped(_("could not judge the rules for {flow}: {why}").format(
            flow=flow_text(unknown[0].flow), why=why), **evidence)
    addrs = sorted({v.flow.daddr for v in verdicts})
    summary = _("no rule of the input chains blocks {what} to {addresses}").format(
        what=_proto_port(ctx) + client, addresses=", ".join(addrs))
    if flows.dnat:
        to = sorted({f"{v.flow.daddr}:{v.flow.dport}" for v in verdicts
                     if v.flow.hook == "forward"})
        summary = _("DNAT sends {what} to {to} (nat {chain}), and no rule of the forward "
                    "chains blocks it").format(what=_proto_port(ctx) + client,
                                               to=", ".join(to),
                                               chain=flows.dnat[0]["rule"]["chain"])
        if flows.flows_in:
            summary += "; " + _("nor the input chains, to {addresses}").format(
                addresses=", ".join(sorted({f.daddr for f in flows.flows_in})))
    elif any(v.flow.hook == "forward" for v in verdicts):
        summary += " " + _("(nor the forward chains, to the container)")
    if any(not v.certain for v in verdicts):
        summary += " " + _("(uncertain: some rules were not understood, see the evidence)")
    return passed(summary, **evidence)


@check("transport.local_handshake", Layer.TRANSPORT, modes=SERVER,
       requires=("transport.listen", "transport.container_listen"),
       codes=("SRV_FW_INPUT_BLOCK",))
async def local_handshake(ctx: Context) -> Result:
    """Port completes a local handshake.

    A TCP connect from this host to every address the port is bound to — for a wildcard, to
    127.0.0.1 or ::1 and to each of this host's own addresses — with its round-trip time, as
    ``nping --tcp-connect -p PORT localhost`` does. It proves the program accepts connections,
    not only that a socket exists, before any network is involved; this host's addresses the
    port is not bound to are tried too, to show that they refuse.
    """
    from netcheck.server.handshake import handshake

    opts = server_options(ctx)
    if opts.proto != "tcp":
        return skipped(_("UDP has no handshake: a datagram is not answered unless the "
                         "application speaks first (use the log check)"))
    socks = await bound(ctx)
    expected: dict[str, Listener] = {}
    for s in socks:
        if s.wildcard:
            for fam in s.families_served:
                expected.setdefault("127.0.0.1" if fam == 4 else "::1", s)
                for address, _ifname in own_addresses(ctx, (fam,)):
                    expected.setdefault(address, s)
        else:
            expected.setdefault(s.address, s)
    # Addresses it is not bound to are tried as well: their refusal shows who cannot connect.
    others = [a for a in ("127.0.0.1", "::1") if a not in expected]
    others += [a for a, _ifname in own_addresses(ctx) if a not in expected]
    targets = [*list(expected)[:MAX_ADDRESSES], *others[:4]]
    timeout = min(ctx.timeout, 2.0)
    results = await asyncio.gather(*(ctx.blocking(handshake, a, opts.port, timeout)
                                     for a in targets))
    rows = [{**r.to_json(), "expected": r.address in expected} for r in results]
    evidence: dict[str, Any] = {"port": opts.port, "handshakes": rows,
                                "rtt": _("the kernel's handshake RTT (TCP_INFO)")}
    opened = [r for r in results if r.state == "open"]
    if opened:
        evidence["rtt_ms"] = round(min(r.rtt_ms or 0.0 for r in opened), 3)
    first = first_failed_handshake(results, expected)
    if first is None:
        status, code, summary = judge_handshakes(opts.port, results, expected)
        return passed(summary, **evidence)
    block = await local_block(ctx, first.address)
    listener = expected[first.address]
    status, code, summary = judge_handshakes(
        opts.port, results, expected,
        block=(block.action, block.describe()) if block is not None else None,
        backlog=(listener.recv_q, listener.send_q) if listener.backlog_full else None)
    if code is not None and block is not None:
        return failed(code, summary, _inbound_hint([block]), **evidence)
    return Result(status, summary, evidence=evidence, hint=Hint(
        _("Look at the program holding the port (is it stuck?) and restart it."),
        [_ss(ctx), "ps -o pid,stat,etime,cmd -p " + ",".join(
            str(o.pid) for o in listener.owners[:4]) if listener.owners else _ss(ctx)]))


def first_failed_handshake(results: Sequence[Any],
                           expected: Collection[str]) -> Optional[Any]:
    """The first connect to an address the port is bound to that did not open (or None)."""
    return next((r for r in results if r.address in expected and r.state != "open"), None)


def judge_handshakes(port: int, results: Sequence[Any], expected: Collection[str],
                     block: Optional[tuple[str, str]] = None,
                     backlog: Optional[tuple[int, int]] = None,
                     ) -> tuple[Status, Optional[str], str]:
    """The local handshakes judged: facts in, ``(status, code, text)`` out.

    ``results`` are the connects made (``Handshake``: address, state, rtt_ms, errno),
    ``expected`` the addresses the port is bound to. For the first of those that did not
    open: ``block``, the (action, rule) of this host's input rule that stops a local connect
    to it, and ``backlog``, (waiting, limit) when its listening socket's accept queue is full.
    """
    def endpoint(address: str) -> str:
        return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"

    first = first_failed_handshake(results, expected)
    if first is None:
        opened = [r for r in results if r.state == "open"]
        shown = ", ".join(_("{endpoint} in {ms} ms").format(endpoint=endpoint(r.address),
                                                              ms=f"{r.rtt_ms:.2f}")
                          for r in opened[:6])
        summary = (_("handshake completed with {endpoints}").format(endpoints=shown) if shown
                   else _("no handshake expected"))
        refused = [r.address for r in results
                   if r.address not in expected and r.state == "refused"]
        if refused:
            summary += "; " + _("{endpoints} refused (not bound there)").format(
                endpoints=", ".join(endpoint(a) for a in refused[:4]))
        return Status.PASS, None, summary
    what = _outcome(first).format(endpoint=endpoint(first.address))
    if block is not None:
        action, rule = block
        return Status.FAIL, "SRV_FW_INPUT_BLOCK", f"{what}: " + (
            _("this host's input chain drops it: {rule}") if action == "drop" else
            _("this host's input chain rejects it: {rule}")).format(rule=rule)
    if backlog is not None:
        why = _("the listening socket's accept queue is full ({waiting} waiting, limit "
                "{limit}): the program no longer calls accept() — it hangs or is "
                "overloaded").format(waiting=backlog[0], limit=backlog[1])
    else:
        why = _("the socket exists but does not complete handshakes")
    return Status.ERROR, None, f"{what}: {why}"


def _outcome(r: Any) -> str:
    """What a local connect met, a text with an {endpoint} placeholder still to fill."""
    if r.state == "timeout":
        return _("a local connect to {endpoint} timed out")
    if r.state == "refused":
        return _("a local connect to {endpoint} was refused")
    if r.state == "unreachable":
        return _("a local connect to {endpoint} was answered 'unreachable' ({errno})").replace(
            "{errno}", str(r.errno))
    return _("a local connect to {endpoint} failed ({errno})").replace(
        "{errno}", str(r.errno or r.state))


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
    cli = _cli(view)
    if not pubs:
        if view.reachable:
            return skipped(_("no container of {engine} publishes {what}").format(
                engine=f"{view.product} {view.version}", what=_proto_port(ctx)), **evidence)
        if view.down_socket:
            return skipped(_("{problem}: which container would publish the port is not "
                             "known").format(problem=view.down_socket), **evidence)
        why = f": {view.problems[0]}" if view.problems else ""
        return skipped(_("no container engine answers here (no Docker or Podman socket)")
                       + why, **evidence)
    if view.stored:
        c = pubs[0]
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
    up = [c for c in pubs if not c.down()]
    unhealthy = [c for c in up if c.health == "unhealthy"]
    if up and len(unhealthy) < len(up):
        good = [c for c in up if c.health != "unhealthy"]
        summary = "; ".join(_("container {name} ({image}) {state}, {restarts} restarts, "
                              "publishes {bindings}").format(
                                  name=c.label, image=c.image, state=c.state_text(),
                                  restarts=c.restart_count,
                                  bindings=", ".join(b.text() for b in c.publishes(
                                      opts.port, opts.proto)))
                            + (", " + _("at {addresses}").format(
                                addresses=", ".join(c.addresses)) if c.addresses else "")
                            for c in good[:3])
        return passed(summary, **evidence)
    if unhealthy:
        c = unhealthy[0]
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
    c = pubs[0]
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
        from netcheck.probes.systemd import not_running_reason

        reason = not_running_reason(opts.procfs)
        if reason:
            return skipped(reason, **evidence)
        if info.candidates:
            return skipped(_("no --service given and nothing listens: {units} could serve the "
                             "port (give --service UNIT)").format(
                units=", ".join(info.candidates)), **evidence)
        return skipped(_("no --service given, and no unit holds a process on the port "
                         "(give --service UNIT)"), **evidence)
    if info.reason:
        return skipped(f"{info.name}: {info.reason}", **evidence)
    if info.ref is not None and (info.ref.user is not None or info.name.endswith(".scope")):
        return skipped(_("the listening process belongs to {unit}").format(
            unit=info.ref.describe()), **evidence)
    if info.error or info.state is None:
        return Result(Status.ERROR, f"systemctl show {info.name}: {info.error}",
                      evidence=evidence)
    st = info.state
    evidence.update(st.to_json())
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
                  port=opts.port, **evidence)


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
        procs = [p for p in await named_processes(ctx) if p.status != "zombie"]
        evidence: dict[str, Any] = {"process": opts.process,
                                    "running": [p.to_json() for p in procs]}
        if not procs:
            unit = await unit_info(ctx)
            cmds = [f"pgrep -a {opts.process}"]
            if unit.name and opts.service:
                cmds = [*_unit_commands(unit), *cmds]
            else:
                cmds.append(f"systemctl list-units --type=service --all | grep -i "
                            f"{opts.process.rsplit('/', 1)[-1]}")
            holders = _all_owners(socks)
            summary = _("no process named {name} is running").format(name=opts.process)
            if holders:
                summary += " " + _("(the port is held by {holders})").format(holders=holders)
            return failed("SRV_PROCESS_MISSING", summary, Hint(
                _("{name} is not running: start the service that runs it and read its log for "
                  "why it stopped.").format(name=opts.process), cmds), **evidence)
        listening = table.of_pids([p.pid for p in procs])
        evidence["listening"] = [s.ss_line() for s in listening]
        first = procs[0]
        summary = f"{opts.process}: " + ngettext(
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
    from netcheck.probes import logs

    opts = server_options(ctx)
    sources = await log_sources(ctx)
    since = time.time() - opts.since_s
    window = _("the last {duration}").format(duration=opts.since_text)
    evidence: dict[str, Any] = {"since": opts.since_text, "found_by": sources.how,
                                "request_id": opts.search_id, "client": opts.client}
    if sources.skip:
        return skipped(sources.skip, **evidence)
    budget = max(0.3, min(ctx.time_left() - 0.8, 5.0))
    deadline = time.monotonic() + budget
    who = _who(ctx)
    if sources.container is not None:
        return await _container_log(ctx, sources.container, since, deadline, who, evidence)
    unit = (await unit_info(ctx)).name
    if sources.journal:
        scan = await ctx.blocking(logs.scan_journal, sources.journal, since, opts.search_id,
                                  opts.client, min(budget, 3.0))
        evidence["journal"] = scan.to_json()
        if scan.error:
            return Result(Status.ERROR, f"journalctl -u {sources.journal}: {scan.error}",
                          evidence=evidence)
        hint = _log_hint(ctx, [], [], sources.journal)
        if who and scan.matched:
            line = scan.matches[-1]
            if scan.matched_5xx or scan.errors:
                return warned("SRV_LOG_ERRORS", _("{who} found in {unit}'s journal with "
                                                  "errors: {line}").format(
                    who=who, unit=sources.journal, line=(scan.errors or [line])[-1]), hint,
                    **evidence)
            return passed(ngettext("{who} found in {unit}'s journal ({n} line): {line}",
                                   "{who} found in {unit}'s journal ({n} lines): {line}",
                                   scan.matched).format(who=who, unit=sources.journal,
                                                        n=scan.matched, line=line), **evidence)
        if scan.errors:
            return warned("SRV_LOG_ERRORS", _("{unit}'s journal has {n} error line(s) in "
                                              "{window}: {line}").format(
                unit=sources.journal, n=len(scan.errors), window=window, line=scan.errors[-1]),
                hint, **evidence)
        if who:
            return passed(_("NOT found: no {who} in {unit}'s journal ({lines} lines in "
                            "{window}): it did not reach the service").format(
                who=who, unit=sources.journal, lines=scan.lines, window=window), **evidence)
        return passed(_("{unit}'s journal: {lines} lines in {window}, no errors").format(
            unit=sources.journal, lines=scan.lines, window=window), **evidence)
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
    err_lines = [ln for e in err_scans for ln in e.lines]
    hint = _log_hint(ctx, sources.access, sources.errors, unit if unit and not (
        await unit_info(ctx)).reason else None)
    if access is None:  # only an error log
        if err_lines:
            return warned("SRV_LOG_ERRORS", (
                _("{n} error(s) for {client} in {window}: {line}") if error_client else
                _("{n} error(s) in {window}: {line}")).format(
                n=sum(e.count for e in err_scans), client=error_client, window=window,
                line=err_lines[-1].text), hint, **evidence)
        return passed((_("no errors for {client} in {window} in {files}") if error_client else
                       _("no errors in {window} in {files}")).format(
            client=error_client, window=window, files=", ".join(sources.errors)), **evidence)
    shown_file = sources.access[0] if len(sources.access) == 1 else (
        _("{n} access logs ({files})").format(
            n=len(sources.access), files=", ".join(sources.access[:3])
            + (" ..." if len(sources.access) > 3 else "")))
    if access.matches and len(sources.access) > 1:
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
        last = (access.server_errors[-1].text if access.server_errors
                else err_lines[-1].text)
        return warned("SRV_LOG_ERRORS", f"{what}: {last}{note}", hint, **evidence)
    return passed(_("{requests} requests in {window} in {file}").format(
        requests=access.requests, window=window, file=shown_file)
                  + (" (" + counts + ")" if counts else "") + ", " + _("no server errors")
                  + note, **evidence)
