"""From a diagnosis to a plan: steps ``{do, undo, why}``, or advice when nothing here can fix it.

Pure: the netcheck/1 document (the root cause and its evidence), what was read from the host
(:class:`Host`: the routes, the owners of the configuration, the files, the live firewall
rules) and what was proved (:class:`Proofs`) go in; a :class:`Plan` or an :class:`Advice`
comes out. Nothing is run here, so every plan is tested on recorded reports
(tests/unit/test_fix_plan.py).

Only what the diagnosis proved is repaired, and only on the path of the flow:

=====================================  =========================================================
root cause                             plan
=====================================  =========================================================
LINK_ADMIN_DOWN                        bring the interface up (its manager's way)
LOOPBACK_DOWN                          ``ip link set lo up`` (and 127.0.0.1/8 if it is gone)
ROUTE_NO_DEFAULT                       a default route through a *proven* gateway
GATEWAY_UNREACHABLE (silent),          replace the default route's gateway by a *proven* one
GATEWAY_NOT_ON_LINK
GATEWAY_UNREACHABLE (static neigh.)    pin the gateway to the MAC that answers (and forwards)
GATEWAY_UNREACHABLE (rp_filter)        loose reverse-path filtering on the strict interfaces
DNS_NO_RESOLVER, DNS_RESOLVER_...      a resolver that *answered*, in its owner's configuration
DNS_HOSTS_OVERRIDE                     the hosts line commented out (the old file kept)
FW_LOCAL_OUTPUT_BLOCK / _INPUT_BLOCK   an accept for exactly this flow (its replies) before the
                                       quoted rule, by handle (or before the policy)
NET_SERVICE_INACTIVE                   ``systemctl start`` the manager
MTU_MISMATCH, PMTU_BLACKHOLE           the interface MTU set to the *measured* path MTU
SRV_SERVICE_INACTIVE (server)          ``systemctl start`` the unit
SRV_FW_INPUT_BLOCK (server)            an accept for the port (from the client) before the rule
=====================================  =========================================================

Anything else — a fault beyond this host, or one whose repair could not be proved — gets an
:class:`Advice`: whom to ask, and a paragraph of evidence to paste into a ticket.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from netcheck import family as addrfam
from netcheck.fix import actions, owners
from netcheck.fix.actions import Action
from netcheck.fix.owners import DnsOwner, Owner
from netcheck.fix.prove import GatewayProof, ResolverProof
from netcheck.i18n import _

RANK = {"ok": 0, "degraded": 1, "broken": 2, "unknown": 3}
NO_SUCH = ["No such process", "No such file or directory", "Cannot assign requested address",
           "does a matching rule exist", "Bad rule"]
ALREADY = ["File exists"]
COUNTER = re.compile(r"\bcounter packets \d+ bytes \d+")


# -- what a plan is made of --------------------------------------------------------------------

@dataclass
class Step:
    """One change: what it does, how it is undone, and the evidence that justifies it."""

    do: list[Action]
    undo: list[Action]
    why: str
    owner: str = owners.NOBODY
    persistent: bool = False  # it survives a reboot (a profile, a file)
    note: Optional[str] = None  # how to make a runtime change persistent, and the like

    @property
    def runtime(self) -> bool:
        return not self.persistent

    def to_json(self) -> dict[str, Any]:
        return {"do": "; ".join(a.text() for a in self.do),
                "undo": "; ".join(a.text() for a in self.undo),
                "why": self.why, "owner": self.owner, "persistent": self.persistent,
                "note": self.note}


@dataclass
class Plan:
    """The steps that repair one root cause."""

    code: str
    check: str
    layer: int
    steps: list[Step]
    proofs: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> list[dict[str, Any]]:
        return [s.to_json() for s in self.steps]


@dataclass
class Advice:
    """No plan: why, whom to ask, and what to tell them."""

    code: Optional[str]
    reason: str
    whom: Optional[str] = None
    ticket: Optional[str] = None
    proofs: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "reason": self.reason, "whom": self.whom,
                "ticket": self.ticket}


@dataclass
class Host:
    """What was read from this host before planning."""

    mode: str = "diagnose"
    systemd: bool = False  # systemd is PID 1
    owners: dict[str, Owner] = field(default_factory=dict)  # per interface
    dns: DnsOwner = field(default_factory=lambda: DnsOwner("unknown"))
    hosts_path: str = "/etc/hosts"
    hosts_text: Optional[str] = None
    defaults: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # ip -j route
    mtus: dict[str, int] = field(default_factory=dict)
    nft_rules: dict[tuple[str, str, str, int], str] = field(default_factory=dict)  # live text
    sysctls: dict[str, str] = field(default_factory=dict)
    dropins: dict[str, Optional[str]] = field(default_factory=dict)  # drop-in path -> text
    tag: str = "netcheck-fix"  # comment of the firewall rules a plan inserts
    server: dict[str, Any] = field(default_factory=dict)  # port, proto, client (server mode)

    def owner(self, ifname: Optional[str]) -> Owner:
        return self.owners.get(ifname or "", Owner())


@dataclass
class Proofs:
    """What was proved before planning (see :mod:`netcheck.fix.prove`)."""

    gateways: dict[int, list[GatewayProof]] = field(default_factory=dict)
    neighbour: Optional[GatewayProof] = None
    resolvers: list[ResolverProof] = field(default_factory=list)

    def gateway(self, family: int) -> Optional[GatewayProof]:
        return next((g for g in self.gateways.get(family, []) if g.proven), None)

    def to_json(self) -> list[dict[str, Any]]:
        out = [{"kind": "gateway", **g.to_json()} for fam in sorted(self.gateways)
               for g in self.gateways[fam]]
        if self.neighbour is not None:
            out.append({"kind": "neighbour", **self.neighbour.to_json()})
        out += [{"kind": "resolver", **r.to_json()} for r in self.resolvers]
        return out


# -- reading the report ------------------------------------------------------------------------

def check_of(doc: dict[str, Any], check_id: str) -> dict[str, Any]:
    """One check of the report by id ({} when absent)."""
    return next((c for c in doc.get("checks", []) if c.get("id") == check_id), {})


def root_check(doc: dict[str, Any]) -> tuple[Optional[str], dict[str, Any]]:
    """(code, the root cause's check) of a report."""
    rc = doc.get("root_cause")
    if not rc:
        return None, {}
    return rc.get("code"), check_of(doc, str(rc.get("check")))


def family_of_check(check: dict[str, Any], fallback: Optional[str] = None) -> int:
    """4 or 6: ``evidence.family`` when given, else the family of ``fallback``."""
    fam = (check.get("evidence") or {}).get("family")
    if fam in ("ipv4", "ipv6"):
        return 4 if fam == "ipv4" else 6
    return 6 if fallback and ":" in fallback else 4


def _ip(family: int) -> list[str]:
    return ["ip", "-6"] if family == 6 else ["ip", "-4"]


def destinations(doc: dict[str, Any], family: int) -> list[tuple[str, Optional[int]]]:
    """What to send through a candidate gateway: the flow's destination (the target, or the
    route lookup's basis while the name does not resolve) with the target's port, then a name
    server (on port 53): an answer from any of them beyond the link proves forwarding."""
    target = doc.get("target") or {}
    port = target.get("port") if target.get("scheme") not in ("dns", None) else None
    port = port if isinstance(port, int) else None
    route = (check_of(doc, "network.route").get("evidence") or {}).get("path") or {}
    # A lookup for the default route's sake went to a documentation address: never sent to.
    looked = [lk.get("destination") for lk in route.get("lookups", [])
              if route.get("basis") != "default route"]
    servers = [str(s) for s in
               (check_of(doc, "dns.config").get("evidence") or {}).get("nameservers") or []]
    found: dict[str, Optional[int]] = {}
    for address in [*(target.get("addresses") or []), *looked]:
        if len(found) < 2 and isinstance(address, str) and address not in servers:
            found.setdefault(address, port)
    for address in servers[:2]:
        found.setdefault(address, 53)
    never = {addrfam.default_probe_address(addrfam.V4), addrfam.default_probe_address(addrfam.V6)}
    return [(a, p) for a, p in found.items() if (":" in a) == (family == 6)
            and a not in never and not _is_loopback_address(a)][:3]


def _is_loopback_address(address: str) -> bool:
    return address.startswith(("127.", "::1"))


def needs(doc: dict[str, Any]) -> dict[str, Any]:
    """What must be proved or read before :func:`build` can plan this report's repair.

    ``{"gateway": (family, ifname, failed gateway)}``, ``{"neighbour": (family, ifname,
    gateway, mac)}``, ``{"resolver": True}``, ``{"firewall": True}`` — empty for a plan that
    needs no proof, or no plan at all.
    """
    code, check = root_check(doc)
    ev = check.get("evidence") or {}
    if code == "ROUTE_NO_DEFAULT" and not ev.get("rules"):
        path = ev.get("path") or {}
        return {"gateway": (family_of_check(check), path.get("interface"), None)}
    if code in ("GATEWAY_UNREACHABLE", "GATEWAY_NOT_ON_LINK"):
        gw = ev.get("gateway")
        fam = family_of_check(check, gw)
        if _pinned(ev):
            return {"neighbour": (fam, ev.get("interface"), gw, _wire_mac(ev))}
        if code == "GATEWAY_NOT_ON_LINK" or not ev.get("arp_probe", ev.get("ndp_probe")) \
                or ev.get("arp_probe", ev.get("ndp_probe")) == "no answer":
            return {"gateway": (fam, ev.get("interface"), gw)}
        return {}
    if code in ("DNS_NO_RESOLVER", "DNS_RESOLVER_UNREACHABLE"):
        return {"resolver": True}
    if code in ("FW_LOCAL_OUTPUT_BLOCK", "FW_LOCAL_INPUT_BLOCK", "SRV_FW_INPUT_BLOCK"):
        return {"firewall": True}
    return {}


def _wire_mac(ev: dict[str, Any]) -> Optional[str]:
    mac = ev.get("arp_probe", ev.get("ndp_probe"))
    return mac if isinstance(mac, str) and re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}",
                                                        mac.lower()) else None


def _pinned(ev: dict[str, Any]) -> bool:
    """A static neighbour entry (PERMANENT, NOARP) whose MAC is not the one that answers."""
    neigh = ev.get("neighbour") or {}
    wire = _wire_mac(ev)
    return (neigh.get("state") in ("PERMANENT", "NOARP") and wire is not None
            and isinstance(neigh.get("lladdr"), str)
            and neigh["lladdr"].lower() != wire.lower())


# -- the plans ------------------------------------------------------------------------------------

def build(doc: dict[str, Any], host: Host, proofs: Proofs) -> Union[Plan, Advice]:
    """The plan that repairs the report's root cause, or advice when there is none."""
    code, check = root_check(doc)
    if code is None or doc.get("verdict") in ("ok", "unknown"):
        return Advice(None, _("nothing to repair: the verdict is {verdict}").format(
            verdict=doc.get("verdict")))
    planner = PLANNERS.get(code)
    made: Union[list[Step], str, None] = planner(doc, check, host, proofs) if planner else None
    if isinstance(made, list) and made:
        return Plan(code, str(check.get("id")), int(check.get("layer") or 0), made,
                    proofs.to_json())
    reason = made if isinstance(made, str) else None
    return advice(doc, reason, proofs)


def _link_up(doc: dict[str, Any], check: dict[str, Any], host: Host,
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


def _loopback(doc: dict[str, Any], check: dict[str, Any], host: Host,
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


def _default_route(doc: dict[str, Any], check: dict[str, Any], host: Host,
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
        return [Step([actions.run([*_ip(family), "route", "add", "default", "via", gw, "dev",
                                   ifname], tolerate=ALREADY)],
                     [actions.run([*_ip(family), "route", "del", "default", "via", gw, "dev",
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
        [actions.run([*_ip(family), "route", "replace", "default", "via", gw, "dev", ifname,
                      *attrs])],
        [actions.run([*_ip(family), "route", "replace", "default", "via", str(old_gw), "dev",
                      ifname, *_route_attrs(route)])],
        _("the gateway {old} does not work ({summary}); {why}").format(
            old=old_gw, summary=check.get("summary"), why=why), owner.name, note=note)]


def _gateway(doc: dict[str, Any], check: dict[str, Any], host: Host,
             proofs: Proofs) -> Union[list[Step], str]:
    ev = check.get("evidence") or {}
    if _pinned(ev):
        return _static_neighbour(check, proofs)
    rp = ev.get("rp_filter") or {}
    if check.get("code") == "GATEWAY_UNREACHABLE" and rp.get("strict"):
        return _rp_filter(check, host, rp)
    if ev.get("state") == "link_only":
        return _("the gateway answers on the link but not with IP, for a reason netcheck "
                 "cannot repair here ({summary})").format(summary=check.get("summary"))
    return _default_route(doc, check, host, proofs)


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
                     gateway=gw, mac=_wire_mac(ev), why=why)
    nud = "noarp" if state == "NOARP" else "permanent"
    family = 6 if ":" in str(gw) else 4
    return [Step(
        [actions.run([*_ip(family), "neigh", "replace", str(gw), "lladdr", str(proof.mac), "dev",
                      str(ifname), "nud", nud])],
        [actions.run([*_ip(family), "neigh", "replace", str(gw), "lladdr", str(old), "dev",
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


def resolver_servers(check: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(configured, dead) name servers of the report."""
    ev = check.get("evidence") or {}
    configured = [str(s) for s in ev.get("nameservers") or []]
    servers = ev.get("servers") or {}
    dead = [s for s, v in servers.items() if v == "DNS_RESOLVER_UNREACHABLE"]
    return configured or list(servers), dead


def _resolver(doc: dict[str, Any], check: dict[str, Any], host: Host,
              proofs: Proofs) -> Union[list[Step], str]:
    configured, dead = resolver_servers(check)
    good = [r for r in proofs.resolvers if r.proven]
    if not good:
        tried = "; ".join(f"{r.address} ({r.source}): {r.rcode or r.error}"
                          for r in proofs.resolvers)
        return (_("no name server that answers could be found ({tried}): netcheck does not "
                  "guess one").format(tried=tried) if tried else
                _("no other name server is known (no DHCP lease, no network manager, no "
                  "gateway that answers DNS): netcheck does not guess one"))
    chosen = [r.address for r in good[:3]]
    why = "; ".join(_("{server} ({source}) answered {rcode} for {name}").format(
        server=r.address, source=r.source, rcode=r.rcode,
        name=(doc.get("target") or {}).get("host")) for r in good[:3])
    if dead:
        why = _("the configured name servers do not answer ({dead}); {why}").format(
            dead=", ".join(dead), why=why)
    else:
        why = _("no name server is configured; {why}").format(why=why)
    ifname = (doc.get("host") or {}).get("egress_interface")
    owner = host.owner(ifname if isinstance(ifname, str) else None)
    dns = host.dns
    if dns.kind == owners.NM and owner.via_nmcli:
        steps = []
        for fam in (4, 6):
            mine = [s for s in chosen if (":" in s) == (fam == 6)]
            if mine:
                do, undo = owners.nm_modify(owner, str(ifname), f"ipv{fam}.dns", ",".join(mine))
                steps.append(Step(do, undo, why, owners.NM, True))
        return steps
    if dns.kind == "systemd-resolved" and isinstance(ifname, str):
        old = dns.resolved_servers
        undo = (["resolvectl", "dns", ifname, *old] if old else ["resolvectl", "revert", ifname])
        return [Step([actions.run(["resolvectl", "dns", ifname, *chosen])],
                     [actions.run(undo)], why, "systemd-resolved",
                     note=_("runtime only: systemd-resolved keeps it until the link is "
                            "reconfigured; DNS= in the link's network configuration keeps it"))]
    if dns.kind == "resolvconf" and isinstance(ifname, str):
        record = f"{ifname}.netcheck"
        body = "".join(f"nameserver {s}\n" for s in chosen)
        return [Step([actions.run(["resolvconf", "-a", record], input=body)],
                     [actions.run(["resolvconf", "-d", record], tolerate=NO_SUCH)], why,
                     "resolvconf", note=_("runtime only: resolvconf forgets it at reboot"))]
    if owner.via_networkd and isinstance(ifname, str):
        path = owners.dropin_path(owner)
        do, undo = owners.networkd_dropin(owner, ifname, "Network",
                                          [f"DNS={s}" for s in chosen], host.dropins.get(path))
        return [Step(do, undo, why, owners.NETWORKD, True)]
    if dns.kind != "file" or dns.text is None:
        return _("{path} is written by {owner}, which netcheck cannot change here").format(
            path=dns.path, owner=dns.link or dns.kind)
    new = resolv_conf_with(dns.text, chosen, dead)
    return [Step([actions.write(dns.path, new, dns.text, shown=_(
        "edit {path}: nameserver {servers}{dropped}").format(
            path=dns.path, servers=", ".join(chosen),
            dropped=_(" (the silent ones commented out)") if dead else ""))],
                 [actions.write(dns.path, dns.text, new, shown=_(
                     "put {path} back as it was (kept in the journal)").format(path=dns.path))],
                 why, "file", True)]


def resolv_conf_with(text: str, servers: list[str], dead: list[str]) -> str:
    """resolv.conf with ``servers`` where the first nameserver line was (at the end when
    there was none) and the lines of ``dead`` servers commented out."""
    out: list[str] = []
    placed = False
    dead_set = set(dead)
    new = [f"nameserver {s}" for s in servers]
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["nameserver"] and len(words) > 1:
            if not placed:
                out += new
                placed = True
            if words[1] in dead_set or words[1] in servers:
                if words[1] in dead_set:
                    out.append(f"# netcheck fix: no answer: {line}")
                continue
        out.append(line)
    if not placed:
        out += new
    return "\n".join(out) + "\n"


def hosts_without(text: str, name: str, addresses: list[str]) -> tuple[str, list[str]]:
    """The hosts file with the lines that map ``name`` to ``addresses`` commented out; and
    those lines."""
    wanted = name.lower().rstrip(".")
    out, hit = [], []
    for line in text.splitlines(keepends=True):
        words = line.split("#")[0].split()
        if len(words) >= 2 and words[0] in addresses and wanted in (
                w.lower().rstrip(".") for w in words[1:]):
            hit.append(line.rstrip("\n"))
            out.append("# netcheck fix: " + line)
        else:
            out.append(line)
    return "".join(out), hit


def _hosts(doc: dict[str, Any], check: dict[str, Any], host: Host,
           proofs: Proofs) -> Union[list[Step], str]:
    ev = check.get("evidence") or {}
    if check.get("status") != "fail":
        return _("the hosts file's address works: the override is a choice, not a fault")
    name = (doc.get("target") or {}).get("host")
    path = ev.get("file") if isinstance(ev.get("file"), str) else host.hosts_path
    if path != host.hosts_path or host.hosts_text is None or not isinstance(name, str):
        return _("the hosts file could not be read")
    new, lines = hosts_without(host.hosts_text, name, [str(a) for a in ev.get("hosts") or []])
    if not lines:
        return _("{path} no longer maps {name} to {addresses}").format(
            path=path, name=name, addresses=", ".join(ev.get("hosts") or []))
    shown_lines = " | ".join(lines)
    return [Step([actions.write(path, new, host.hosts_text, shown=_(
        "edit {path}: comment out `{lines}`").format(path=path, lines=shown_lines))],
                 [actions.write(path, host.hosts_text, new, shown=_(
                     "put {path} back as it was (kept in the journal)").format(path=path))],
                 _("{summary}: the line wins over DNS").format(summary=check.get("summary")),
                 "file", True)]


# -- firewall ----------------------------------------------------------------------------------

def normal_rule(text: str) -> str:
    """A rule's text without its counters' values (they change while it is read)."""
    return " ".join(COUNTER.sub("counter", text).split())


@dataclass
class Block:
    """A rule (or a chain's policy) that blocks flows, and the accepts that let them by."""

    family: str
    table: str
    chain: str
    source: str
    handle: Optional[int]  # None: the chain's policy decides
    position: Optional[int]  # iptables' rule number
    command: str
    quoted: str
    matches: list[str] = field(default_factory=list)  # nft matches, one accept rule each


def _location(v: dict[str, Any]) -> Optional[tuple[str, str, str, Optional[int], str, Optional[
        int], str]]:
    rule = v.get("rule")
    if isinstance(rule, dict):
        return (str(rule.get("family")), str(rule.get("table")), str(rule.get("chain")),
                rule.get("handle"), str(rule.get("source", "nft")), rule.get("position"),
                str(rule.get("rule", "")))
    policy = v.get("policy")
    if isinstance(policy, dict) and isinstance(policy.get("chain"), str):
        parts = policy["chain"].split()
        if len(parts) == 3:
            return (parts[0], parts[1], parts[2], None, "nft", None,
                    f"policy {policy.get('policy')}")
    return None


def _verified(host: Host, loc: tuple[str, str, str, Optional[int], str, Optional[int], str]
              ) -> Optional[str]:
    """Why the rule quoted in the report is not (any more) the live one, or None."""
    family, table, chain, handle, source, _pos, quoted = loc
    if source != "nft" or handle is None:
        return None
    live = host.nft_rules.get((family, table, chain, handle))
    if live is None:
        return _("the rule with handle {handle} in {family} {table} {chain} is gone").format(
            handle=handle, family=family, table=table, chain=chain)
    if normal_rule(live) != normal_rule(quoted):
        return _("handle {handle} in {family} {table} {chain} is now `{live}`, not the rule the "
                 "diagnosis quoted").format(handle=handle, family=family, table=table,
                                           chain=chain, live=live)
    return None


def _accept_steps(blocks: list[Block], host: Host, reason: str) -> list[Step]:
    steps = []
    for n, b in enumerate(blocks, 1):
        for m, match in enumerate(b.matches, 1):
            tag = f"{host.tag}-{n}-{m}"
            if b.source == "nft":
                where = [b.family, b.table, b.chain]
                place = ["insert", "rule", *where, "position", str(b.handle)] \
                    if b.handle is not None else ["add", "rule", *where]
                do = actions.run(["nft", *place, *match.split(), "accept", "comment",
                                  f'"{tag}"'])
                undo = actions.nft_delete_tagged(*where, tag)
            else:
                table = [] if b.table == "filter" else ["-t", b.table]
                spec = [*_iptables_match(match).split(), "-m", "comment", "--comment", tag,
                        "-j", "ACCEPT"]
                at = ["-I", b.chain, str(b.position)] if b.position else ["-A", b.chain]
                do = actions.run([b.command, *table, *at, *spec])
                undo = actions.run([b.command, *table, "-D", b.chain, *spec], tolerate=NO_SUCH)
            where_text = (_("right before it (handle {handle})").format(handle=b.handle)
                          if b.handle is not None else
                          _("right before it (rule {position})").format(position=b.position)
                          if b.position else _("at the end, right before the policy"))
            why = _("{reason}; the accept goes {where}").format(reason=reason, where=where_text)
            steps.append(Step([do], [undo], why,
                              "nft" if b.source == "nft" else b.command,
                              note=_("runtime only: save the ruleset where this host loads it "
                                     "at boot (/etc/nftables.conf, iptables-save) to keep "
                                     "it")))
    return steps


def _flow_match(flow: str, family_name: str, extra: str = "") -> Optional[str]:
    """The nft match of ``tcp port 22 to 198.18.2.10`` / ``udp port 53 to ...``."""
    words = flow.split()
    if len(words) == 5 and words[0] in ("tcp", "udp") and words[1] == "port" and words[3] == "to":
        ip = "ip6" if ":" in words[4] else "ip"
        if family_name == ("ip" if ip == "ip6" else "ip6"):
            return None
        return f"{extra}{ip} daddr {words[4]} {words[0]} dport {words[2]}"
    return None


def _iptables_match(match: str) -> str:
    """An nft match of the kinds this module writes, as iptables options."""
    words = match.split()
    out: list[str] = []
    i = 0
    while i < len(words):
        w = words[i]
        if w in ("ip", "ip6") and words[i + 1] in ("daddr", "saddr"):
            value = words[i + 2].strip("{},")
            out += ["-d" if words[i + 1] == "daddr" else "-s", value]
            i += 3
        elif w in ("tcp", "udp") and words[i + 1] == "dport":
            out += ["-p", w, "--dport", words[i + 2]]
            i += 3
        elif w == "iifname":
            out += ["-i", words[i + 1].strip('"')]
            i += 2
        elif w == "ct" and words[i + 1] == "state":
            out += ["-m", "conntrack", "--ctstate", words[i + 2].upper()]
            i += 3
        else:
            i += 1
    return " ".join(out)


def _group(verdicts: list[dict[str, Any]], host: Host) -> tuple[dict[Any, Block], Optional[str]]:
    groups: dict[Any, Block] = {}
    for v in verdicts:
        if v.get("verdict") not in ("drop", "reject"):
            continue
        loc = _location(v)
        if loc is None:
            continue
        problem = _verified(host, loc)
        if problem:
            return {}, problem
        family, table, chain, handle, source, position, quoted = loc
        if source != "nft" and not source.startswith("iptables"):
            continue
        command = (v.get("rule") or {}).get("command") or (
            "ip6tables" if family == "ip6" else "iptables")
        if source == "iptables-legacy":
            command += "-legacy"
        key = loc[:4]
        groups.setdefault(key, Block(family, table, chain, source, handle, position, command,
                                     quoted))
    return groups, None


def _certain_blocks(check: dict[str, Any], key: str = "flows") -> list[dict[str, Any]]:
    """The verdicts of a firewall check that surely drop or reject (a rule half understood
    is no ground for a change)."""
    return [v for v in (check.get("evidence") or {}).get(key, [])
            if isinstance(v, dict) and v.get("verdict") in ("drop", "reject") and v.get("certain")]


def _output_block(doc: dict[str, Any], check: dict[str, Any], host: Host,
                  proofs: Proofs) -> Union[list[Step], str]:
    fw = check_of(doc, "transport.firewall")
    flows = _certain_blocks(fw)
    groups, problem = _group(flows, host)
    if problem:
        return problem
    for v in flows:
        loc = _location(v)
        block = groups.get(loc[:4]) if loc else None
        if block is None:
            continue
        match = _flow_match(str(v.get("flow")), block.family)
        if match and match not in block.matches:
            block.matches.append(match)
    blocks = [b for b in groups.values() if b.matches]
    if not blocks:
        return _("the blocking rule could not be told exactly (see transport.firewall): "
                 "netcheck does not change a firewall on a guess")
    return _accept_steps(blocks, host, str(fw.get("summary") or check.get("summary")))


def _input_block(doc: dict[str, Any], check: dict[str, Any], host: Host,
                 proofs: Proofs) -> Union[list[Step], str]:
    dropped = _certain_blocks(check, "dropped")
    groups, problem = _group(dropped, host)
    if problem:
        return problem
    families: dict[Any, set[int]] = {}
    for v in dropped:
        loc = _location(v)
        words = str(v.get("flow", "")).split(" from ")
        if loc is not None and len(words) == 2:
            families.setdefault(loc[:4], set()).add(6 if ":" in words[1].split()[0] else 4)
    ifname = (doc.get("host") or {}).get("egress_interface")
    iif = f'iifname "{ifname}" ' if isinstance(ifname, str) else ""
    for key, block in groups.items():
        fams = families.get(key, set())
        # The replies to what this host opens, on the path's interface: not one peer at a
        # time (the target's replies are dropped too, only not yet seen while the name
        # server's were), and nothing new can come in through it.
        if fams:
            block.matches.append(f"{iif}ct state established,related")
        if 6 in fams and block.family in ("inet", "ip6"):
            # neighbour discovery is not tracked: let it in on this link only
            block.matches.append(f"{iif}icmpv6 type {{ nd-neighbor-solicit, "
                                 "nd-neighbor-advert }")
    blocks = [b for b in groups.values() if b.matches and b.source == "nft"]
    if not blocks:
        return _("the rule that drops the replies could not be told exactly (see "
                 "transport.input_firewall): netcheck does not change a firewall on a guess")
    return _accept_steps(blocks, host, str(check.get("summary")))


def _server_block(doc: dict[str, Any], check: dict[str, Any], host: Host,
                  proofs: Proofs) -> Union[list[Step], str]:
    # transport.local_handshake quotes no flows: the inbound check's verdicts hold the rule
    flows = _certain_blocks(check) or _certain_blocks(
        check_of(doc, "transport.inbound_firewall"))
    groups, problem = _group(flows, host)
    if problem:
        return problem
    port, proto, client = host.server.get("port"), host.server.get("proto", "tcp"), \
        host.server.get("client")
    if not isinstance(port, int):
        return _("the port is not known")
    for block in groups.values():
        if block.source != "nft":
            continue
        if isinstance(client, str):
            ip = "ip6" if ":" in client else "ip"
            if block.family in ("inet", ip):
                block.matches.append(f"{ip} saddr {client} {proto} dport {port}")
        else:
            block.matches.append(f"{proto} dport {port}")
        if check.get("id") == "transport.local_handshake":
            block.matches = [f'iifname "lo" {proto} dport {port}']
    blocks = [b for b in groups.values() if b.matches]
    if not blocks:
        return _("the rule that blocks the port is not an nft rule netcheck can place an "
                 "accept before (see transport.inbound_firewall)")
    return _accept_steps(blocks, host, str(check.get("summary")))


# -- services and MTU --------------------------------------------------------------------------

def _manager(doc: dict[str, Any], check: dict[str, Any], host: Host,
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


def _service(doc: dict[str, Any], check: dict[str, Any], host: Host,
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


def _mtu(doc: dict[str, Any], check: dict[str, Any], host: Host,
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


PLANNERS = {
    "LINK_ADMIN_DOWN": _link_up,
    "LOOPBACK_DOWN": _loopback,
    "ROUTE_NO_DEFAULT": _default_route,
    "GATEWAY_UNREACHABLE": _gateway,
    "GATEWAY_NOT_ON_LINK": _default_route,
    "DNS_NO_RESOLVER": _resolver,
    "DNS_RESOLVER_UNREACHABLE": _resolver,
    "DNS_HOSTS_OVERRIDE": _hosts,
    "FW_LOCAL_OUTPUT_BLOCK": _output_block,
    "FW_LOCAL_INPUT_BLOCK": _input_block,
    "NET_SERVICE_INACTIVE": _manager,
    "MTU_MISMATCH": _mtu,
    "PMTU_BLACKHOLE": _mtu,
    "SRV_SERVICE_INACTIVE": _service,
    "SRV_FW_INPUT_BLOCK": _server_block,
}


# -- advice --------------------------------------------------------------------------------------

def whom(code: Optional[str], doc: dict[str, Any]) -> str:
    """Who can fix a root cause netcheck cannot repair from here."""
    target = (doc.get("target") or {}).get("host") or _("the server")
    port = (doc.get("target") or {}).get("port")
    table = {
        "LINK_NO_CARRIER": _("whoever looks after the cable and the switch port (local IT)"),
        "WIFI_NOT_ASSOCIATED": _("whoever runs the Wi-Fi network (or check the password)"),
        "ADDR_NONE": _("the network administrator: the DHCP server gives no address"),
        "ADDR_LINK_LOCAL_ONLY": _("the network administrator: the DHCP server does not answer"),
        "ADDR_DAD_FAILED": _("the network administrator: another machine has this address"),
        "TARGET_UNREACHABLE": _("the network administrator: a router beyond the gateway "
                                "drops the traffic"),
        "GATEWAY_UNREACHABLE": _("the network administrator: the router does not answer"),
        "IPSEC_NO_SA": _("whoever runs the VPN (the tunnel is not up)"),
        "DNS_REFUSED": _("the administrator of the name server"),
        "DNS_SERVFAIL": _("the administrator of the name server"),
        "DNS_NXDOMAIN": _("whoever manages the zone of {target}").format(target=target),
        "DNS_NO_ADDRESS": _("whoever manages the zone of {target}").format(target=target),
        "CAPTIVE_PORTAL": _("nobody: sign in on the network's portal page"),
        "PROXY_AUTH_REQUIRED": _("whoever gave you the proxy (it wants credentials)"),
    }
    if code in table:
        return table[code]
    if code and code.startswith(("TCP_", "TLS_", "HTTP_", "APP_", "SMTP_", "POP3_", "IMAP_")):
        return _("the administrator of {target} (on the server: netcheck server --port {port} "
                 "--fix)").format(target=target, port=port)
    if code and code.startswith("PROXY_"):
        return _("whoever runs the proxy")
    return _("the network administrator")


def ticket(doc: dict[str, Any]) -> str:
    """One paragraph of evidence to paste into a ticket."""
    code, check = root_check(doc)
    target = doc.get("target") or {}
    host = doc.get("host") or {}
    evidence = json.dumps(check.get("evidence") or {}, ensure_ascii=False, sort_keys=True)
    if len(evidence) > 600:
        evidence = evidence[:597] + "..."
    return _("On {time}, from {hostname} (interface {ifname}), {input} ({addresses}) fails: "
             "{code} at layer {layer}, {check}: {summary}. Evidence: {evidence}. Checked "
             "with netcheck {version}.").format(
                 time=doc.get("started_at"), hostname=host.get("hostname"),
                 ifname=host.get("egress_interface"), input=target.get("input"),
                 addresses=", ".join(target.get("addresses") or []) or "-", code=code,
                 layer=check.get("layer"), check=check.get("id"), summary=check.get("summary"),
                 evidence=evidence, version=(doc.get("tool") or {}).get("version"))


def advice(doc: dict[str, Any], reason: Optional[str], proofs: Proofs) -> Advice:
    """What to do when there is no plan."""
    code, _check = root_check(doc)
    if reason is None:
        reason = _("{code} is not something this host can repair by itself").format(code=code)
    return Advice(code, reason, whom(code, doc), ticket(doc), proofs.to_json())


# -- did it help? ----------------------------------------------------------------------------------

def _position(doc: dict[str, Any]) -> tuple[int, int]:
    rc = doc.get("root_cause") or {}
    ids = [c.get("id") for c in doc.get("checks", [])]
    where = ids.index(rc.get("check")) if rc.get("check") in ids else len(ids)
    return int(rc.get("layer") or 8), where


def improved(before: dict[str, Any], after: dict[str, Any], repaired: str) -> bool:
    """Did the repair help? A better verdict; or, with the same verdict, the repaired fault
    gone and the root cause now higher up the ladder (the next fault shows)."""
    b, a = RANK.get(str(before.get("verdict")), 3), RANK.get(str(after.get("verdict")), 3)
    if a < b:
        return True
    if a > b or a == 0 or a == 3:
        return False
    if any(c.get("code") == repaired and c.get("status") in ("fail", "warn")
           for c in after.get("checks", [])):
        return False
    return _position(after) > _position(before)

