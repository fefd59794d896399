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

The planners live by subject in :mod:`~netcheck.fix.repair_net`,
:mod:`~netcheck.fix.repair_dns` and :mod:`~netcheck.fix.repair_fw`; this module chooses
among them (``PLANNERS``), says what must be proved first (:func:`needs`), and judges
whether a repair helped (:func:`improved`).
"""

from __future__ import annotations

import json
from typing import Any, Optional, Union

from netcheck import family as addrfam
from netcheck.fix import repair_dns, repair_fw, repair_net
from netcheck.fix.model import (
    Advice,
    Host,
    Local,
    Plan,
    Proofs,
    Step,
    check_of,
    family_of_check,
    pinned,
    root_check,
    wire_mac,
)
from netcheck.fix.repair_dns import hosts_without, resolv_conf_with, resolver_servers
from netcheck.i18n import _

__all__ = ["Advice", "Host", "Plan", "Proofs", "Step", "advice", "build", "check_of",
           "destinations", "hosts_without", "improved", "needs", "resolv_conf_with",
           "resolver_servers", "root_check", "ticket", "whom"]

RANK = {"ok": 0, "degraded": 1, "broken": 2, "unknown": 3}


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
        if pinned(ev):
            return {"neighbour": (fam, ev.get("interface"), gw, wire_mac(ev))}
        if code == "GATEWAY_NOT_ON_LINK" or not ev.get("arp_probe", ev.get("ndp_probe")) \
                or ev.get("arp_probe", ev.get("ndp_probe")) == "no answer":
            return {"gateway": (fam, ev.get("interface"), gw)}
        return {}
    if code in ("DNS_NO_RESOLVER", "DNS_RESOLVER_UNREACHABLE"):
        return {"resolver": True}
    if code in ("FW_LOCAL_OUTPUT_BLOCK", "FW_LOCAL_INPUT_BLOCK", "SRV_FW_INPUT_BLOCK"):
        return {"firewall": True}
    return {}


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


PLANNERS = {
    "LINK_ADMIN_DOWN": repair_net.link_up,
    "LOOPBACK_DOWN": repair_net.loopback,
    "ROUTE_NO_DEFAULT": repair_net.default_route,
    "GATEWAY_UNREACHABLE": repair_net.gateway,
    "GATEWAY_NOT_ON_LINK": repair_net.default_route,
    "DNS_NO_RESOLVER": repair_dns.resolver,
    "DNS_RESOLVER_UNREACHABLE": repair_dns.resolver,
    "DNS_HOSTS_OVERRIDE": repair_dns.hosts,
    "FW_LOCAL_OUTPUT_BLOCK": repair_fw.output_block,
    "FW_LOCAL_INPUT_BLOCK": repair_fw.input_block,
    "NET_SERVICE_INACTIVE": repair_net.manager,
    "MTU_MISMATCH": repair_net.mtu,
    "PMTU_BLACKHOLE": repair_net.mtu,
    "SRV_SERVICE_INACTIVE": repair_net.service,
    "SRV_FW_INPUT_BLOCK": repair_fw.server_block,
}


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
    asked = (_("this host's administrator: the fault is here, but not one netcheck repairs")
             if isinstance(reason, Local) else whom(code, doc))
    return Advice(code, str(reason), asked, ticket(doc), proofs.to_json())


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
