"""Repairs of name resolution: a resolver that answered, through whoever writes
resolv.conf; a stale /etc/hosts line commented out."""

from __future__ import annotations

from typing import Any, Optional, Union

from netcheck.fix import actions, owners
from netcheck.fix.model import NO_SUCH, Host, Local, Proofs, Step
from netcheck.fix.owners import Owner
from netcheck.i18n import _


def resolver_servers(check: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(configured, dead) name servers of the report."""
    ev = check.get("evidence") or {}
    configured = [str(s) for s in ev.get("nameservers") or []]
    servers = ev.get("servers") or {}
    dead = [s for s, v in servers.items() if v == "DNS_RESOLVER_UNREACHABLE"]
    return configured or list(servers), dead


def resolver(doc: dict[str, Any], check: dict[str, Any], host: Host,
              proofs: Proofs) -> Union[list[Step], str]:
    configured, dead = resolver_servers(check)
    said = _fault_of_this_host(check, dead)
    if said is not None:
        return said
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
    return _resolver_steps(host, ifname if isinstance(ifname, str) else None, chosen, dead, why)


def _fault_of_this_host(check: dict[str, Any], dead: list[str]) -> Optional[Local]:
    """Name servers not asked at all (nsswitch.conf), or a local resolver down: said to this
    host's administrator, not changed (None: neither)."""
    ev = check.get("evidence") or {}
    sources = (ev.get("nsswitch") or {}).get("sources")
    if check.get("code") == "DNS_NO_RESOLVER" and isinstance(sources, list) \
            and not {"dns", "resolve"} & set(sources):
        return Local(_("name servers are not asked at all: the hosts: line of "
                       "/etc/nsswitch.conf is '{line}'; add dns to it (hosts: files dns)").format(
                           line=" ".join(str(x) for x in sources)))
    local = [s for s in dead if s.startswith(("127.", "::1"))]
    if local and len(local) == len(dead):
        # Restarting a service is no change that can be undone: said, not done.
        return Local(_("the local resolver {server} does not answer: it is a service of this "
                       "host (systemd-resolved, dnsmasq...); start it again (systemctl restart "
                       "systemd-resolved)").format(server=local[0]))
    return None


def _resolver_steps(host: Host, ifname: Optional[str], chosen: list[str], dead: list[str],
                    why: str) -> Union[list[Step], str]:
    """The ``chosen`` servers set through whoever writes resolv.conf: NetworkManager's
    profile, systemd-resolved or resolvconf (runtime), a networkd drop-in, or the file."""
    owner = host.owner(ifname)
    dns = host.dns
    if dns.kind == owners.NM and owner.via_nmcli:
        return _nm_dns_steps(owner, str(ifname), chosen, why)
    if dns.kind == "systemd-resolved" and ifname is not None:
        old = dns.resolved_servers
        revert = (["resolvectl", "dns", ifname, *old] if old else ["resolvectl", "revert", ifname])
        return [Step([actions.run(["resolvectl", "dns", ifname, *chosen])],
                     [actions.run(revert)], why, "systemd-resolved",
                     note=_("runtime only: systemd-resolved keeps it until the link is "
                            "reconfigured; DNS= in the link's network configuration keeps it"))]
    if dns.kind == "resolvconf" and ifname is not None:
        record = f"{ifname}.netcheck"
        body = "".join(f"nameserver {s}\n" for s in chosen)
        return [Step([actions.run(["resolvconf", "-a", record], input=body)],
                     [actions.run(["resolvconf", "-d", record], tolerate=NO_SUCH)], why,
                     "resolvconf", note=_("runtime only: resolvconf forgets it at reboot"))]
    if owner.via_networkd and ifname is not None:
        path = owners.dropin_path(owner)
        do, undo = owners.networkd_dropin(owner, ifname, "Network",
                                          [f"DNS={s}" for s in chosen], host.dropins.get(path))
        return [Step(do, undo, why, owners.NETWORKD, True)]
    if dns.kind != "file" or dns.text is None:
        return _("{path} is written by {owner}, which netcheck cannot change here").format(
            path=dns.path, owner=dns.link or dns.kind)
    return [_resolv_conf_step(dns.path, dns.text, chosen, dead, why)]


def _nm_dns_steps(owner: Owner, ifname: str, chosen: list[str], why: str) -> list[Step]:
    """NetworkManager's profile: ipv4.dns and ipv6.dns, one step each family chosen."""
    steps = []
    for fam in (4, 6):
        mine = [s for s in chosen if (":" in s) == (fam == 6)]
        if mine:
            do, undo = owners.nm_modify(owner, ifname, f"ipv{fam}.dns", ",".join(mine))
            steps.append(Step(do, undo, why, owners.NM, True))
    return steps


def _resolv_conf_step(path: str, text: str, chosen: list[str], dead: list[str],
                      why: str) -> Step:
    """resolv.conf edited by hand (nobody else writes it), the old text kept to put back."""
    new = resolv_conf_with(text, chosen, dead)
    return Step([actions.write(path, new, text, shown=_(
        "edit {path}: nameserver {servers}{dropped}").format(
            path=path, servers=", ".join(chosen),
            dropped=_(" (the silent ones commented out)") if dead else ""))],
                [actions.write(path, text, new, shown=_(
                    "put {path} back as it was (kept in the journal)").format(path=path))],
                why, "file", True)


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


def hosts(doc: dict[str, Any], check: dict[str, Any], host: Host,
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
