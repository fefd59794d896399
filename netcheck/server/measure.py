"""What server mode measures on this host, once per run: the facts the server checks judge.

The socket table and the owners of the port, the processes, the container engine and the
containers publishing the port, the unit behind the service, a client's connection as this
host's netfilter handles it, and where the service's log is. Every measurement is shared
through ``ctx.memo``: whichever check asks first reads it, the others wait on the same task.
The words and the verdicts are the checks' (``checks/server/``); this module reads.

Light to import (the probes are imported inside the functions that use them): the check
modules import it at start-up.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from netcheck.i18n import _
from netcheck.lazy import asyncio

if TYPE_CHECKING:
    from netcheck.probes.docker import Container, EngineView
    from netcheck.probes.systemd import Unavailable, UnitRef, UnitState
    from netcheck.runner import Context
    from netcheck.server.listeners import Listener, ListenTable, ProcessInfo
    from netcheck.server.options import ServerOptions

# Source ports clients connect from: unknown, so rules on them are judged over this range.
CLIENT_PORTS = (1024, 65535)
MAX_ADDRESSES = 8


def server_options(ctx: Context) -> ServerOptions:
    """The run's server settings (imported here, not at start-up: it brings the runner)."""
    from netcheck.server.options import server_options as settings

    return settings(ctx)


def listen_table(ctx: Context, proto: Optional[str] = None) -> asyncio.Task[ListenTable]:
    """This host's listening sockets of the protocol, with their owners (once per run)."""
    from netcheck.server import listeners

    opts = server_options(ctx)
    proto = proto or opts.proto
    return ctx.memo(("server", "listeners", proto), lambda: ctx.blocking(
        listeners.read_table, proto, opts.procfs, min(ctx.timeout, 2.0)))


async def bound(ctx: Context) -> list[Listener]:
    """The sockets bound to the port asked about."""
    table = await listen_table(ctx)
    return table.on_port(server_options(ctx).port)


def process(ctx: Context, pid: int) -> asyncio.Task[ProcessInfo]:
    """``ps`` for one process (once per run)."""
    from netcheck.server import listeners

    return ctx.memo(("server", "process", pid), lambda: ctx.blocking(
        listeners.process_info, pid))


def named_processes(ctx: Context) -> asyncio.Task[list[ProcessInfo]]:
    """The running processes called as ``--process`` says (once per run)."""
    from netcheck.server import listeners

    name = server_options(ctx).process or ""
    return ctx.memo(("server", "named", name), lambda: ctx.blocking(
        listeners.matching_processes, name))


def engine_view(ctx: Context) -> asyncio.Task[EngineView]:
    """This namespace's container engine and its containers (once per run)."""
    from netcheck.probes import docker

    opts = server_options(ctx)
    return ctx.memo(("server", "engine"), lambda: ctx.blocking(
        docker.read_engine, opts.procfs, min(ctx.timeout, 2.0)))


async def publishing(ctx: Context) -> list[Container]:
    """The containers configured to publish the port (any state)."""
    opts = server_options(ctx)
    return (await engine_view(ctx)).publishing(opts.port, opts.proto)


def owner_pids(socks: list[Listener]) -> list[int]:
    pids: list[int] = []
    for s in socks:
        for o in s.owners:
            if o.pid not in pids:
                pids.append(o.pid)
    return pids


async def container_proxies(ctx: Context, socks: list[Listener]) -> dict[int, dict[str, Any]]:
    """Owners that forward the port to a container (docker-proxy...), by pid."""
    from netcheck.server.listeners import CONTAINER_PROXIES, container_proxy

    found: dict[int, dict[str, Any]] = {}
    for s in socks:
        for o in s.owners:
            if o.name in CONTAINER_PROXIES and o.pid not in found:
                info = await process(ctx, o.pid)
                proxy = container_proxy(o.name, info.argv)
                if proxy is not None:
                    found[o.pid] = proxy
    return found


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


def own_addresses(ctx: Context, families: tuple[int, ...] = (4, 6)) -> list[tuple[str, str]]:
    """(address, interface) of this host's usable addresses, loopback and link-local left out."""
    found: list[tuple[str, str]] = []
    for a in ctx.facts.addresses:
        try:
            ip = ipaddress.ip_address(a.address)
        except ValueError:
            continue
        if ip.version not in families or ip.is_loopback or ip.is_link_local:
            continue
        if getattr(a, "dad_failed", False):
            continue
        link = ctx.facts.link(index=a.ifindex)
        found.append((a.address, link.name if link else ""))
    return found[:MAX_ADDRESSES]


def client_family(ctx: Context) -> Optional[int]:
    client = server_options(ctx).client
    if not client:
        return None
    return ipaddress.ip_address(client).version


@dataclass
class UnitInfo:
    """The unit behind the service: its name, how it was found, and its state if asked."""

    name: Optional[str] = None
    how: str = ""
    ref: Optional[UnitRef] = None
    state: Optional[UnitState] = None
    reason: Optional[Unavailable] = None  # why systemd was not asked
    journal_reason: Optional[Unavailable] = None  # why its journal was not read
    error: Optional[str] = None  # systemctl failed
    candidates: list[str] = field(default_factory=list)


def unit_info(ctx: Context) -> asyncio.Task[UnitInfo]:
    """Which unit runs the service, and its state (once per run)."""
    return ctx.memo(("server", "unit"), lambda: _unit_info(ctx))


async def _unit_info(ctx: Context) -> UnitInfo:
    from netcheck.probes import systemd

    opts = server_options(ctx)
    info = UnitInfo()
    if opts.service:
        info.name, info.how = opts.service, "given with --service"
    else:
        socks = await bound(ctx)
        pids = owner_pids(socks)
        if opts.process:
            pids += [p.pid for p in await named_processes(ctx) if p.pid not in pids]
        for pid in pids[:16]:
            ref = await ctx.blocking(systemd.unit_of_pid, pid, opts.procfs)
            if ref is not None:
                info.ref = ref
                info.name = ref.unit
                info.how = f"whose cgroup holds pid {pid} ({ref.cgroup})"
                if ref.unit.endswith(".service"):
                    break
        if info.name is None and not socks:
            candidates = systemd.installed_units_for_port(opts.port, opts.sysroot)
            info.candidates = candidates
            if len(candidates) == 1:
                info.name, info.how = candidates[0], f"the unit installed for port {opts.port}"
    if info.name is None:
        return info
    info.reason = systemd.not_running_reason(opts.procfs)
    if info.reason or (info.ref is not None and (info.ref.user is not None
                                                 or info.name.endswith(".scope"))):
        return info
    try:
        info.state = await ctx.blocking(systemd.show, info.name, min(ctx.timeout, 3.0))
    except systemd.SystemdError as exc:
        info.error = str(exc)
        return info
    info.journal_reason = systemd.journal_reason(opts.procfs)
    if info.journal_reason is None:
        try:
            info.state.log = await ctx.blocking(systemd.journal, info.name, None, 10,
                                                min(ctx.timeout, 3.0))
        except systemd.SystemdError as exc:
            info.state.log_note = f"journalctl: {exc}"
    return info


@dataclass
class Inbound:
    """A client's new connection to the port, as this host's netfilter handles it."""

    flows_in: list[Any] = field(default_factory=list)  # reaching this host (input hook)
    flows_fwd: list[Any] = field(default_factory=list)  # sent on to a container (forward)
    dnat: list[dict[str, Any]] = field(default_factory=list)  # the nat rules that did it


async def inbound_flows(ctx: Context) -> Inbound:
    """The flows a client's new connection to the port would be, after the nat chains.

    A packet to one of this host's addresses meets nat PREROUTING first: Docker's published
    ports are DNAT rules there (``-m addrtype --dst-type LOCAL -j DOCKER``, then ``-j DNAT
    --to-destination CONTAINER:PORT``), and a DNAT-ed packet leaves through the forward
    chains towards the container's bridge, never reaching the input chains. Where no DNAT
    rule for the port can be seen but a container proxy holds it, the forward chains are
    judged for the container docker-proxy names.
    """
    from netcheck.probes.firewall import Flow, dnat_of, has_cap_net_admin, rules

    opts = server_options(ctx)
    socks = [s for s in await bound(ctx) if not s.loopback]
    fam = client_family(ctx)
    iif_to_client = await _interface_to_client(ctx)
    targets = _inbound_targets(ctx, socks)
    rs = await rules(ctx) if has_cap_net_admin() else None
    names = {lk.index: lk.name for lk in ctx.facts.links}
    found = Inbound()
    seen: set[str] = set()
    for address, ifname in targets:
        family = ipaddress.ip_address(address).version
        if address in seen or (fam is not None and family != fam):
            continue
        seen.add(address)
        flow = Flow(family, opts.proto, address, opts.port, saddr=opts.client,
                    sport=CLIENT_PORTS, iifname=iif_to_client or ifname or None, hook="input",
                    local_daddr=True)
        nat = dnat_of(rs, flow) if rs is not None and rs.readable else None
        if nat is None:
            found.flows_in.append(flow)
        else:
            oif, local = await _route_towards(ctx, names, nat.addr)
            moved = Flow(family, opts.proto, nat.addr, nat.port or opts.port,
                         saddr=opts.client, sport=CLIENT_PORTS, iifname=flow.iifname,
                         oifname=oif, hook="input" if local else "forward",
                         local_daddr=local)
            group = found.flows_in if local else found.flows_fwd
            if moved not in group:  # every address of the host DNAT-ed to one container
                group.append(moved)
            found.dnat.append({"from": f"{address}:{opts.port}", **nat.to_json()})
        if len(found.flows_in) + len(found.flows_fwd) >= MAX_ADDRESSES:
            break
    if found.dnat:
        return found
    found.flows_fwd += await _container_proxy_flows(ctx, socks, fam, iif_to_client, names)
    return found


async def _interface_to_client(ctx: Context) -> Optional[str]:
    """The interface the route back to ``--client`` leaves by (None: no client, no route)."""
    if not server_options(ctx).client:
        return None
    try:
        return (await ctx.path()).interface
    except Exception:  # no route back: interface rules stay uncertain
        return None


def _inbound_targets(ctx: Context, socks: list[Listener]) -> list[tuple[str, str]]:
    """(address, interface) a client may connect to: each socket's own address, every own
    address of the families a wildcard serves, or all of them when nothing listens."""
    targets: list[tuple[str, str]] = []
    if socks:
        for s in socks:
            if s.wildcard:
                targets += own_addresses(ctx, s.families_served)
            else:
                link = next((lk for a, lk in own_addresses(ctx) if a == s.address), "")
                targets.append((s.address, link))
    else:  # nothing listens: judge what a client would meet once it does
        targets = own_addresses(ctx)
    return targets


async def _route_towards(ctx: Context, names: dict[int, str],
                         address: str) -> tuple[Optional[str], bool]:
    """(the interface packets to ``address`` leave by, is it this host's own)."""
    from netcheck.facts import route_get

    lookup = (await ctx.blocking(route_get, [address], None, names))[0]
    return lookup.ifname, lookup.type == "local"


async def _container_proxy_flows(ctx: Context, socks: list[Listener], fam: Optional[int],
                                 iif_to_client: Optional[str],
                                 names: dict[int, str]) -> list[Any]:
    """The forward flows to the containers the port's proxies (docker-proxy) name, where no
    DNAT rule for the port can be seen."""
    from netcheck.probes.firewall import Flow

    opts = server_options(ctx)
    flows: list[Any] = []
    for proxy in (await container_proxies(ctx, socks)).values():
        ip, port = proxy.get("container_ip"), proxy.get("container_port")
        if not ip or not isinstance(port, int):
            continue
        family = ipaddress.ip_address(ip).version
        if fam is not None and family != fam:
            continue
        oif, _local = await _route_towards(ctx, names, ip)
        flows.append(Flow(family, proxy.get("proto", opts.proto), ip, port,
                          saddr=opts.client, sport=CLIENT_PORTS,
                          iifname=iif_to_client, oifname=oif, hook="forward"))
    return flows


def inbound(ctx: Context) -> asyncio.Task[tuple[list[Any], Inbound]]:
    """This host's rules judged for a client's connection to the port (once per run)."""
    return ctx.memo(("server", "inbound"), lambda: _judge_inbound(ctx))


async def _judge_inbound(ctx: Context) -> tuple[list[Any], Inbound]:
    from netcheck.probes import firewall

    flows = await inbound_flows(ctx)
    found = []
    for group, hook in ((flows.flows_in, "input"), (flows.flows_fwd, "forward")):
        if group:
            found.append(await firewall.judge_flows(ctx, group, hook))
    return found, flows


async def local_block(ctx: Context, address: str) -> Optional[Any]:
    """The input rule that drops a local connection to ``address`` (it comes in on lo)."""
    from netcheck.probes import firewall

    if not firewall.has_cap_net_admin():
        return None
    opts = server_options(ctx)
    family = ipaddress.ip_address(address).version
    flow = firewall.Flow(family, opts.proto, address, opts.port, saddr=address,
                         sport=CLIENT_PORTS, iifname="lo", hook="input")
    fw = await firewall.judge_flows(ctx, [flow], "input")
    return next((v for v in fw.verdicts if v.blocked), None) if fw.readable else None


async def last_lines(ctx: Context, c: Container) -> list[str]:
    """The container's last log lines of the window (why it stopped, often)."""
    from netcheck.probes import docker

    opts = server_options(ctx)
    deadline = time.monotonic() + max(0.2, min(ctx.time_left() - 0.8, 2.0))
    scan = await ctx.blocking(docker.scan_log, c, time.time() - max(opts.since_s, 3600.0),
                              None, None, deadline)
    return scan.last_lines[-3:]


@dataclass
class LogSources:
    access: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    journal: Optional[str] = None
    container: Optional[Container] = None  # the log of the container publishing the port
    how: str = ""
    skip: Optional[str] = None
    journal_reason: Optional[Unavailable] = None  # --log journal, and it cannot be read


async def log_sources(ctx: Context) -> LogSources:
    from netcheck.probes import logs, systemd

    opts = server_options(ctx)
    found = LogSources()
    unit = await unit_info(ctx)
    if opts.log == "journal":
        if unit.name is None:
            found.skip = _("--log journal needs the unit: give --service UNIT")
        elif (why := systemd.journal_reason(opts.procfs)) is not None:
            found.journal_reason = why
        else:
            found.journal, found.how = unit.name, "--log journal"
        return found
    if opts.log:
        kind = logs.classify(opts.log)
        (found.errors if kind == "error" else found.access).append(opts.log)
        found.how = "given with --log"
    else:
        pubs = sorted(await publishing(ctx), key=lambda c: c.down())
        if pubs and not (await engine_view(ctx)).stored:
            found.container = pubs[0]
            found.how = (f"the log of container {pubs[0].label}, which publishes the port "
                         f"({pubs[0].log_driver or '?'} driver)")
            return found
    socks = await bound(ctx)
    pids = owner_pids(socks)
    if opts.process:
        pids += [p.pid for p in await named_processes(ctx) if p.pid not in pids]
    if unit.state is not None and unit.state.main_pid and unit.state.main_pid not in pids:
        pids.append(unit.state.main_pid)
    held = await ctx.blocking(logs.open_log_files, pids, opts.procfs)
    names = sorted({o.name for s in socks for o in s.owners}
                   | ({unit.name.split(".")[0]} if unit.name else set())
                   | ({opts.process.rsplit("/", 1)[-1]} if opts.process else set()))
    usual = logs.default_logs(names)
    for path in [*held, *usual]:
        kind = logs.classify(path)
        if kind == "error" and path not in found.errors:
            found.errors.append(path)
        elif kind == "access" and not opts.log and path not in found.access:
            found.access.append(path)
    if not opts.log:
        found.how = ("held open by the service" if held else
                     "the usual place for " + ", ".join(names) if usual else "")
    if not found.access and not found.errors and not opts.log:
        if unit.name and systemd.journal_reason(opts.procfs) is None:
            found.journal, found.how = unit.name, "the unit's journal (no log file found)"
        else:
            found.skip = _("no log of the service found (none held open, none at the usual "
                           "places): give it with --log FILE, or --log journal")
    return found
