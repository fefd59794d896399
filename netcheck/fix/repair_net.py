"""Repairs of the host's own network: the link, the loopback, routes and gateways, the
neighbour table, reverse-path filtering, the MTU, and the services that keep them."""

from __future__ import annotations

from typing import Any, Union

from netcheck.fix import actions, owners, prove
from netcheck.fix.model import (
    ALREADY,
    NO_SUCH,
    Host,
    Local,
    Proofs,
    Step,
    family_of_check,
    ip_argv,
    pinned,
    wire_mac,
)
from netcheck.fix.owners import Owner
from netcheck.fix.prove import GatewayProof
from netcheck.i18n import _


def link_up(doc: dict[str, Any], check: dict[str, Any], host: Host,
             proofs: Proofs) -> Union[list[Step], str]:
    ifname = (check.get("evidence") or {}).get("interface")
    if not isinstance(ifname, str):
        return _("the report does not name the interface")
    owner = host.owner(ifname)
    why = _("{ifname} is administratively down ({check}): nothing leaves by it").format(
        ifname=ifname, check=check.get("id"))
    if owner.via_nmcli:
        return [Step([actions.run(["nmcli", "device", "connect", ifname])],
                     [actions.run(["nmcli", "device", "disconnect", ifname])], why,
                     owners.NM, False)]
    if owner.name == owners.NETWORKD and owner.running:
        return [Step([actions.run(["networkctl", "up", ifname])],
                     [actions.run(["networkctl", "down", ifname])], why, owners.NETWORKD)]
    return [Step([actions.run(["ip", "link", "set", "dev", ifname, "up"])],
                 [actions.run(["ip", "link", "set", "dev", ifname, "down"])], why, owner.name,
                 note=_persist_note(owner, ifname, _("bring {ifname} up at boot").format(
                     ifname=ifname)))]


def _persist_note(owner: Owner, ifname: str, what: str) -> str:
    if owner.name == owners.IFUPDOWN:
        return _("not persistent: to {what}, say so under 'iface {ifname}' in "
                 "/etc/network/interfaces").format(what=what, ifname=ifname)
    if owner.name in (owners.NM, owners.NETWORKD):
        return _("not persistent: {manager} is not running, so the change was made with ip; "
                 "to {what}, put it in {manager}'s configuration").format(
                     manager=owner.name, what=what)
    return _("not persistent: no network manager owns {ifname}; to {what}, put it in the "
             "configuration that sets {ifname} up at boot").format(ifname=ifname, what=what)


def loopback(doc: dict[str, Any], check: dict[str, Any], host: Host,
              proofs: Proofs) -> Union[list[Step], str]:
    ev = check.get("evidence") or {}
    ifname = ev.get("interface") if isinstance(ev.get("interface"), str) else "lo"
    steps = []
    why = _("{ifname} is down or 127.0.0.1 does not answer ({summary})").format(
        ifname=ifname, summary=check.get("summary"))
    if "UP" not in (ev.get("flags") or []):
        steps.append(Step([actions.run(["ip", "link", "set", "dev", ifname, "up"])],
                          [actions.run(["ip", "link", "set", "dev", ifname, "down"])], why))
    if "127.0.0.1" not in (ev.get("addresses") or []):
        steps.append(Step(
            [actions.run(["ip", "addr", "add", "127.0.0.1/8", "dev", ifname],
                         tolerate=ALREADY)],
            [actions.run(["ip", "addr", "del", "127.0.0.1/8", "dev", ifname], tolerate=NO_SUCH)],
            _("{ifname} has no 127.0.0.1").format(ifname=ifname)))
    return steps or _("the loopback interface is up with 127.0.0.1: what fails there is not "
                      "a setting netcheck can repair")


def _gateway_why(proof: GatewayProof) -> str:
    return _("{gateway} ({source}) answers on the link ({mac}) and forwards: {answer}").format(
        gateway=proof.address, source=proof.source, mac=proof.mac, answer=proof.answer)


def _no_gateway(proofs: Proofs, family: int) -> str:
    tried = proofs.gateways.get(family, [])
    if not tried:
        return _("no candidate for a gateway is known on this link (no DHCP lease, no "
                 "neighbour, no address to try): netcheck does not guess one")
    if all(prove.NEEDS_ROOT in g.why_not for g in tried):
        return Local(_("proving a gateway sends its own ARP and frames, which needs root: run "
                       "netcheck fix as root"))
    shown = "; ".join(f"{g.address}: {g.why_not}" for g in tried)
    return _("no replacement gateway could be proved ({tried}): netcheck does not guess "
             "one").format(tried=shown)


def _route_attrs(route: dict[str, Any]) -> list[str]:
    """The attributes ``ip route`` needs to put a route back as it was."""
    out = []
    if route.get("metric") is not None:
        out += ["metric", str(route["metric"])]
    if route.get("protocol"):
        out += ["proto", str(route["protocol"])]
    if "onlink" in (route.get("flags") or []):
        out.append("onlink")
    return out


def default_route(doc: dict[str, Any], check: dict[str, Any], host: Host,
                   proofs: Proofs) -> Union[list[Step], str]:
    """ROUTE_NO_DEFAULT: add one; GATEWAY_*: replace the failing gateway (both proven)."""
    code = check.get("code")
    ev = check.get("evidence") or {}
    old_gw = ev.get("gateway") if code != "ROUTE_NO_DEFAULT" else None
    family = family_of_check(check, old_gw)
    ifname = ev.get("interface") or (ev.get("path") or {}).get("interface")
    if not isinstance(ifname, str):
        return _("the report does not name the egress interface")
    if code == "ROUTE_NO_DEFAULT" and ev.get("rules"):
        return _("a default route exists in another table and the policy rules do not lead "
                 "there: which rule is missing is for the person who set them up to decide")
    proof = proofs.gateway(family)
    if proof is None:
        return _no_gateway(proofs, family)
    gw = proof.address
    why = _gateway_why(proof)
    owner = host.owner(ifname)
    if owner.via_nmcli:
        do, undo = owners.nm_modify(owner, ifname, f"ipv{family}.gateway", gw)
        return [Step(do, undo, why, owners.NM, True)]
    if code == "ROUTE_NO_DEFAULT":
        if owner.via_networkd:
            path = owners.dropin_path(owner)
            do, undo = owners.networkd_dropin(owner, ifname, "Route", [f"Gateway={gw}"],
                                              host.dropins.get(path))
            return [Step(do, undo, why, owners.NETWORKD, True)]
        return [Step([actions.run([*ip_argv(family), "route", "add", "default", "via", gw, "dev",
                                   ifname], tolerate=ALREADY)],
                     [actions.run([*ip_argv(family), "route", "del", "default", "via", gw, "dev",
                                   ifname], tolerate=NO_SUCH)],
                     _("no default route: {why}").format(why=why), owner.name,
                     note=_persist_note(owner, ifname, _("keep the default route through "
                                                         "{gateway}").format(gateway=gw)))]
    current = [r for r in host.defaults.get(family, []) if r.get("gateway") == old_gw
               and r.get("dev") == ifname]
    if not current:
        return _("the failing gateway {gateway} is not on a default route of the main table: "
                 "the route to change is not one netcheck edits").format(gateway=old_gw)
    route = current[0]
    attrs = [a for a in _route_attrs(route) if a != "onlink"]
    note = _persist_note(owner, ifname, _("keep the gateway {gateway}").format(gateway=gw))
    if owner.via_networkd:
        note = _("runtime only: the wrong gateway is in {file} (Gateway=); correct it there, "
                 "or systemd-networkd puts it back").format(file=owner.network_file)
    return [Step(
        [actions.run([*ip_argv(family), "route", "replace", "default", "via", gw, "dev", ifname,
                      *attrs])],
        [actions.run([*ip_argv(family), "route", "replace", "default", "via", str(old_gw), "dev",
                      ifname, *_route_attrs(route)])],
        _("the gateway {old} does not work ({summary}); {why}").format(
            old=old_gw, summary=check.get("summary"), why=why), owner.name, note=note)]


def gateway(doc: dict[str, Any], check: dict[str, Any], host: Host,
             proofs: Proofs) -> Union[list[Step], str]:
    ev = check.get("evidence") or {}
    if pinned(ev):
        return _static_neighbour(check, proofs)
    rp = ev.get("rp_filter") or {}
    if check.get("code") == "GATEWAY_UNREACHABLE" and rp.get("strict"):
        return _rp_filter(check, host, rp)
    if ev.get("state") == "link_only":
        return _("the gateway answers on the link but not with IP, for a reason netcheck "
                 "cannot repair here ({summary})").format(summary=check.get("summary"))
    return default_route(doc, check, host, proofs)


def _static_neighbour(check: dict[str, Any], proofs: Proofs) -> Union[list[Step], str]:
    ev = check.get("evidence") or {}
    neigh = ev.get("neighbour") or {}
    gw, ifname, old, state = (ev.get("gateway") or neigh.get("address"), ev.get("interface"),
                              neigh.get("lladdr"), neigh.get("state"))
    proof = proofs.neighbour
    if proof is None or not proof.proven:
        why = proof.why_not if proof is not None else _("not probed")
        return _("{gateway} answers ARP with {mac}, but nothing was seen forwarded through that "
                 "MAC address ({why}): the entry is not changed on a guess").format(
                     gateway=gw, mac=wire_mac(ev), why=why)
    nud = "noarp" if state == "NOARP" else "permanent"
    family = 6 if ":" in str(gw) else 4
    return [Step(
        [actions.run([*ip_argv(family), "neigh", "replace", str(gw), "lladdr", str(proof.mac),
                      "dev", str(ifname), "nud", nud])],
        [actions.run([*ip_argv(family), "neigh", "replace", str(gw), "lladdr", str(old), "dev",
                      str(ifname), "nud", nud])],
        _("the neighbour table pins {gateway} to {old} ({state}), but {mac} answers for it and "
          "forwards: {answer}").format(gateway=gw, old=old, state=state, mac=proof.mac,
                                       answer=proof.answer),
        note=_("the entry stays static, as someone made it, with the MAC address that answers; "
               "it lasts until reboot (make it persistent where it was set)"))]


def _rp_filter(check: dict[str, Any], host: Host, rp: dict[str, Any]) -> Union[list[Step], str]:
    """Loose mode (2) on each strict interface: the kernel uses the larger of ``all`` and the
    interface's value, so ``all`` (every other interface) stays as it is."""
    steps = []
    for ifname in dict.fromkeys(str(i) for i in rp.get("strict") or []):
        key = f"net.ipv4.conf.{ifname}.rp_filter"
        old = host.sysctls.get(key)
        if old is None or old == "2":
            continue
        steps.append(Step([actions.run(["sysctl", "-q", "-w", f"{key}=2"])],
                          [actions.run(["sysctl", "-q", "-w", f"{key}={old}"])],
                          _("{count} replies failed strict reverse-path filtering on {ifname} "
                            "while the gateway was probed").format(
                              count=rp.get("dropped"), ifname=ifname),
                          note=_("runtime only: set it in /etc/sysctl.d/ to keep it")))
    return steps or _("reverse-path filtering is no longer strict")


def manager(doc: dict[str, Any], check: dict[str, Any], host: Host,
             proofs: Proofs) -> Union[list[Step], str]:
    mgr = (check.get("evidence") or {}).get("manager") or {}
    unit = mgr.get("unit")
    if not isinstance(unit, str) or not host.systemd:
        return _("the network manager's unit is not known, or systemd does not run here")
    return [Step([actions.run(["systemctl", "start", unit])],
                 [actions.run(["systemctl", "stop", unit])],
                 _("{manager} is enabled but not running ({summary})").format(
                     manager=mgr.get("name"), summary=check.get("summary")), "systemd",
                 note=_("it is enabled: it starts at boot anyway"))]


def service(doc: dict[str, Any], check: dict[str, Any], host: Host,
             proofs: Proofs) -> Union[list[Step], str]:
    ev = check.get("evidence") or {}
    unit = ev.get("unit")
    summary = str(check.get("summary"))
    if not isinstance(unit, str) or not host.systemd:
        return _("the unit is not known, or systemd does not run here")
    if "masked" in summary or "not installed" in summary or check.get("status") != "fail":
        return _("{unit} cannot simply be started ({summary}): that is for its administrator "
                 "to decide").format(unit=unit, summary=summary)
    return [Step([actions.run(["systemctl", "start", unit])],
                 [actions.run(["systemctl", "stop", unit])],
                 _("{summary}: it serves the port").format(summary=summary), "systemd",
                 note=_("enable it too (systemctl enable {unit}) if it should start at "
                        "boot").format(unit=unit))]


def mtu(doc: dict[str, Any], check: dict[str, Any], host: Host,
         proofs: Proofs) -> Union[list[Step], str]:
    ev = check.get("evidence") or {}
    ifname, local, path = ev.get("interface"), ev.get("local_mtu"), ev.get("path_mtu")
    if not (isinstance(ifname, str) and isinstance(local, int) and isinstance(path, int)
            and 576 <= path < local):
        return _("the path MTU was not measured")
    why = _("{summary}: measured, not assumed").format(summary=check.get("summary"))
    owner = host.owner(ifname)
    if owner.via_nmcli:
        do, undo = owners.nm_modify(owner, ifname, "802-3-ethernet.mtu", str(path))
        return [Step(do, undo, why, owners.NM, True)]
    if owner.via_networkd:
        p = owners.dropin_path(owner)
        do, undo = owners.networkd_dropin(owner, ifname, "Link", [f"MTUBytes={path}"],
                                          host.dropins.get(p))
        return [Step(do, undo, why, owners.NETWORKD, True)]
    old = host.mtus.get(ifname, local)
    return [Step([actions.run(["ip", "link", "set", "dev", ifname, "mtu", str(path)])],
                 [actions.run(["ip", "link", "set", "dev", ifname, "mtu", str(old)])], why,
                 owner.name, note=_persist_note(owner, ifname, _("keep MTU {mtu}").format(
                     mtu=path)))]
