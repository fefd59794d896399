"""Read the host and prove candidates, once, before a plan is made.

What :func:`netcheck.fix.plan.build` needs beyond the report: the owners of the
configuration, the default routes as ``ip -j route`` gives them (with their protocol and
metric, to put them back exactly), the files a plan may edit, the live text of the firewall
rules the report quotes (a handle may have been reused since), the reverse-path filter
settings — and the proofs of :mod:`netcheck.fix.prove` that the plan needs.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
from typing import Any, Optional

from netcheck.fix import actions, owners, plan, prove
from netcheck.fix.plan import Host, Proofs
from netcheck.i18n import _

PROBE_TIMEOUT = 1.5


def _interfaces(doc: dict[str, Any]) -> list[str]:
    names = []
    egress = (doc.get("host") or {}).get("egress_interface")
    if isinstance(egress, str):
        names.append(egress)
    _code, check = plan.root_check(doc)
    ev = check.get("evidence") or {}
    for value in (ev.get("interface"), (ev.get("path") or {}).get("interface")):
        if isinstance(value, str) and value not in names:
            names.append(value)
    return names


def _defaults(family: int) -> list[dict[str, Any]]:
    rc, out, _err = actions.run_argv(["ip", "-j", f"-{family}", "route", "show", "default",
                                      "table", "main"], timeout=5)
    if rc != 0:
        return []
    try:
        routes = json.loads(out or "[]")
    except ValueError:
        return []
    return [r for r in routes if isinstance(r, dict)]


def _rule_locations(doc: dict[str, Any]) -> set[tuple[str, str, str]]:
    found = set()
    for check_id, key in (("transport.firewall", "flows"), ("transport.input_firewall",
                                                            "dropped"),
                          ("transport.inbound_firewall", "flows")):
        for v in (plan.check_of(doc, check_id).get("evidence") or {}).get(key, []):
            rule = v.get("rule") if isinstance(v, dict) else None
            if isinstance(rule, dict) and rule.get("source") == "nft":
                found.add((str(rule.get("family")), str(rule.get("table")),
                           str(rule.get("chain"))))
    return found


def live_rules(family: str, table: str, chain: str) -> dict[tuple[str, str, str, int], str]:
    """The rules of one chain as ``nft -a list chain`` prints them, by handle."""
    rc, out, _err = actions.run_argv(["nft", "-a", "list", "chain", family, table, chain],
                                     timeout=5)
    found: dict[tuple[str, str, str, int], str] = {}
    if rc != 0:
        return found
    for line in out.splitlines():
        text, sep, handle = line.strip().rpartition("# handle ")
        if sep and handle.isdigit() and not text.startswith(("chain ", "table ", "type ")):
            found[(family, table, chain, int(handle))] = text.strip()
    return found


def _sysctls(doc: dict[str, Any]) -> dict[str, str]:
    names = ["all", *_interfaces(doc)]
    _code, check = plan.root_check(doc)
    names += [str(n) for n in ((check.get("evidence") or {}).get("rp_filter") or {}).get(
        "strict", [])]
    found = {}
    for name in dict.fromkeys(names):
        try:
            with open(f"/proc/sys/net/ipv4/conf/{os.path.basename(name)}/rp_filter") as fh:
                found[f"net.ipv4.conf.{name}.rp_filter"] = fh.read().strip()
        except OSError:
            continue
    return found


def read_host(doc: dict[str, Any], facts: Any, tag: str,
              server: Optional[dict[str, Any]] = None) -> Host:
    """Everything :func:`netcheck.fix.plan.build` reads from the host (no proof)."""
    from netcheck import hints

    mgr = hints.detect_manager(facts)
    host = Host(mode=str(doc.get("mode", "diagnose")),
                systemd=(facts.read_sys("proc", "1", "comm") or "") == "systemd",
                tag=tag, server=dict(server or {}))
    for name in _interfaces(doc):
        host.owners[name] = owners.detect(name, mgr)
        owner = host.owners[name]
        if owner.via_networkd:
            path = owners.dropin_path(owner)
            try:
                host.dropins[path] = actions.read_text(path)
            except OSError:
                host.dropins[path] = None
    egress = (doc.get("host") or {}).get("egress_interface")
    host.dns = owners.detect_dns("/etc/resolv.conf", egress if isinstance(egress, str) else None)
    try:
        host.hosts_text = actions.read_text(host.hosts_path)
    except OSError:
        host.hosts_text = None
    host.defaults = {4: _defaults(4), 6: _defaults(6)}
    host.mtus = {lk.name: lk.mtu for lk in facts.links}
    for location in _rule_locations(doc):
        host.nft_rules.update(live_rules(*location))
    host.sysctls = _sysctls(doc)
    return host


# -- proofs ------------------------------------------------------------------------------------

def _source_address(facts: Any, ifindex: int, candidate: str) -> Optional[str]:
    ip = ipaddress.ip_address(candidate)
    for a in facts.addrs_of(ifindex):
        if a.ip.version == ip.version and ip in a.network and not a.dad_failed:
            return a.address
    return None


async def prove_gateways(doc: dict[str, Any], facts: Any, owner: owners.Owner, family: int,
                         ifname: str, failed: Optional[str]) -> list[prove.GatewayProof]:
    """Probe every candidate gateway of a family on ``ifname`` at once; in candidate order."""
    link = facts.link(name=ifname)
    if link is None:
        return []
    prefixes = [a.network for a in facts.addrs_of(link.index)]
    own = {a.address for a in facts.addresses}
    sources: list[tuple[str, list[str]]] = []
    for lease in prove.leases(ifname, link.index):
        sources.append((_("the DHCP lease {file}").format(file=lease.file), lease.routers))
    if owner.gateways:
        sources.append((_("{manager}'s view of {ifname}").format(manager=owner.name,
                                                                 ifname=ifname), owner.gateways))
    neighbours = [n.address for n in facts.neighbours if n.ifindex == link.index
                  and n.state not in ("FAILED", "INCOMPLETE", "NONE")]
    sources.append((_("the neighbour table of {ifname}").format(ifname=ifname), neighbours))
    candidates = prove.gateway_candidates(family, prefixes, own, sources,
                                          {failed} if failed else set())
    where = plan.destinations(doc, family)
    found = await asyncio.gather(*(asyncio.to_thread(
        prove.prove_gateway, ifname, link.index, link.mac,
        _source_address(facts, link.index, address), address, source, where, PROBE_TIMEOUT)
        for address, source in candidates))
    return list(found)


async def prove_resolvers(doc: dict[str, Any], facts: Any, host: Host) -> list[
        prove.ResolverProof]:
    """Ask every candidate name server for the target's name, at once."""
    code, check = plan.root_check(doc)
    _configured, dead = plan.resolver_servers(check)
    ifname = (doc.get("host") or {}).get("egress_interface")
    sources: list[tuple[str, list[str]]] = []
    link = facts.link(name=ifname) if isinstance(ifname, str) else None
    if link is not None:
        for lease in prove.leases(link.name, link.index):
            sources.append((_("the DHCP lease {file}").format(file=lease.file), lease.dns))
    owner = host.owner(ifname if isinstance(ifname, str) else None)
    if owner.dns:
        sources.append((_("{manager}'s view of {ifname}").format(manager=owner.name,
                                                                 ifname=ifname), owner.dns))
    gateways = [str(r.get("gateway")) for fam in (4, 6) for r in host.defaults.get(fam, [])
                if r.get("gateway")]
    if plan.check_of(doc, "network.gateway").get("status") == "pass":
        sources.append((_("the gateway"), gateways))
    candidates = prove.resolver_candidates(sources, set(dead))
    name = (doc.get("target") or {}).get("host")
    if not isinstance(name, str) or not candidates:
        return []
    return list(await asyncio.gather(*(prove.prove_resolver(a, s, name, "A", PROBE_TIMEOUT)
                                       for a, s in candidates)))


async def gather(doc: dict[str, Any], tag: str,
                 server: Optional[dict[str, Any]] = None) -> tuple[Host, Proofs]:
    """The host's state and the proofs the report's repair needs."""
    from netcheck.facts import snapshot

    facts = await asyncio.to_thread(snapshot, "/")
    host = read_host(doc, facts, tag, server)
    proofs = Proofs()
    wanted = plan.needs(doc)
    if "gateway" in wanted:
        family, ifname, failed = wanted["gateway"]
        if isinstance(ifname, str):
            proofs.gateways[family] = await prove_gateways(doc, facts, host.owner(ifname),
                                                           family, ifname, failed)
    if "neighbour" in wanted:
        family, ifname, gw, mac = wanted["neighbour"]
        link = facts.link(name=ifname) if isinstance(ifname, str) else None
        if link is not None and isinstance(gw, str) and mac:
            proofs.neighbour = await asyncio.to_thread(
                prove.prove_gateway, link.name, link.index, link.mac,
                _source_address(facts, link.index, gw), gw, _("the MAC address that answers "
                                                              "ARP"),
                plan.destinations(doc, family), PROBE_TIMEOUT, mac)
    if "resolver" in wanted:
        proofs.resolvers = await prove_resolvers(doc, facts, host)
    return host, proofs
