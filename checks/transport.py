"""Layer 4: does the port answer, and does this host's own firewall let it?

Declared in the order the packet meets them: this host's output chain first (its finding is
the root cause when it drops or rejects the traffic: a silent SYN is then no remote
firewall's doing), then the connect, the connections already open, and with ``--scan``
nmap's identification of the service.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any, Optional

from netcheck.i18n import _
from netcheck.model import Hint, Layer, Result, failed, passed, skipped, warned
from netcheck.probes import shared
from netcheck.probes.tcp import TcpResult
from netcheck.registry import check

if TYPE_CHECKING:
    from netcheck.probes import firewall
    from netcheck.runner import Context

FW_CODE = "FW_LOCAL_OUTPUT_BLOCK"


def _fam_of(address: str) -> str:
    """IPv4 or IPv6, as the packets go: an IPv4-mapped IPv6 address is IPv4."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return "IPv6" if ":" in address else "IPv4"
    if ip.version == 6 and ip.ipv4_mapped is None:  # type: ignore[union-attr]
        return "IPv6"
    return "IPv4"


def _family(r: TcpResult) -> str:
    return _fam_of(r.address)


def _flow(flow: firewall.Flow) -> str:
    """``Flow.describe()`` in the reader's language (the same words in English)."""
    if flow.protocol == "icmp":
        return _("{family} ping to {address}").format(
            family="IPv6" if flow.family == 6 else "IPv4", address=flow.daddr)
    return _("{protocol} port {port} to {address}").format(
        protocol=flow.protocol, port=flow.dport, address=flow.daddr)


def _own_addresses(ctx: Context) -> set[str]:
    """This host's addresses: an ICMP error "from" one of them was made by this host."""
    return {a.address.split("%")[0] for a in ctx.facts.addresses if getattr(a, "address", None)}


# -- transport.firewall ----------------------------------------------------------------------

def _fw_hint(blocks: list[firewall.Verdict]) -> Hint:
    """Remove the rule, or let the port through before it: the exact commands, deduplicated."""
    from netcheck.probes import firewall

    commands: list[str] = []
    for v in blocks:
        for cmd in firewall.remedy_commands(v):
            if cmd not in commands:
                commands.append(cmd)
    first = blocks[0]
    if first.rule is not None:
        r = first.rule
        tag = f" (handle {r.handle})" if r.handle is not None else ""  # nft's own words
        text = (_("This host's own firewall rejects the traffic before it leaves: the rule "
                  "`{rule}`{handle} in chain {chain} of table {family} {table}. Delete the rule "
                  "if it is not wanted, or insert an accept for this port before it:")
                if first.action == "reject" else
                _("This host's own firewall drops the traffic before it leaves: the rule "
                  "`{rule}`{handle} in chain {chain} of table {family} {table}. Delete the rule "
                  "if it is not wanted, or insert an accept for this port before it:")).format(
                      rule=r.quoted, handle=tag, chain=r.chain, family=r.family, table=r.table)
        commands.append(f"nft -a list chain {r.family} {r.table} {r.chain}"
                        if r.source == "nft" else f"{r.command} -L {r.chain} -n -v --line-numbers")
    else:
        c = first.chain
        label = c.label if c else _("an output chain")
        text = _("The policy of {chain} is {policy} and no rule accepts this traffic before "
                 "it: add an accept rule for it (or change the policy).").format(
                     chain=label, policy=first.action)
    return Hint(text, commands)


def _flow_line(v: firewall.Verdict) -> str:
    line = _("{flow}: {action} by {rule}").format(flow=_flow(v.flow), action=v.action,
                                                  rule=v.describe())
    if not v.certain:
        line += " " + _("(uncertain: {why})").format(why="; ".join(v.uncertain[:2]))
    return line


@check("transport.firewall", Layer.TRANSPORT, requires=("dns.resolution",), codes=(FW_CODE,))
async def local_firewall(ctx: Context) -> Result:
    """This host's firewall lets the traffic out.

    Reads this host's own rules (``nft -j list ruleset``; iptables-save for legacy tables)
    and walks the output chains, as netfilter would, for the connect and the ping netcheck
    sends to every address of the target. A drop or reject is quoted with its table, chain
    and handle, and the hint gives the command that removes it or lets the port through.
    Runs beside the connect, not after it; needs CAP_NET_ADMIN to read the rules.
    """
    from netcheck.probes import firewall

    assert ctx.target is not None
    if not firewall.has_cap_net_admin():
        # firewall.NEEDS_ROOT, in the reader's language (test_i18n keeps the two equal).
        return skipped(_("needs root (CAP_NET_ADMIN) to read the firewall rules"))
    addrs = (await ctx.addresses())[:8]
    if not addrs:
        return skipped(_("the target has no address: no traffic to judge"))
    fw = await firewall.for_target(ctx)
    if not fw.readable:
        reason = fw.reason
        if reason == firewall.NEEDS_ROOT:
            reason = _("needs root (CAP_NET_ADMIN) to read the firewall rules")
        return skipped(_("cannot read the firewall rules: {reason}").format(reason=reason))
    evidence: dict[str, Any] = fw.summary_json()
    evidence["duration_ms"] = round(fw.duration_ms, 1)
    port = ctx.target.port
    main = [v for v in fw.verdicts if v.flow.protocol != "icmp"]
    blocks = [v for v in main if v.blocked]
    # The evaluation is checked against what the connect met: a rule "matching" a port that
    # opened was misread (an expression half understood), never a reason to fail.
    contradicted = []
    for v in list(blocks):
        if v.flow.protocol != "tcp":
            continue
        conn = await shared.tcp_connect(ctx, v.flow.daddr, port)
        if conn.state == "open":
            blocks.remove(v)
            contradicted.append(f"{_flow_line(v)}, yet the connect went through: this rule "
                                "was misread")
    if contradicted:
        evidence["contradicted"] = contradicted
    pings = [v for v in fw.verdicts if v.flow.protocol == "icmp" and v.blocked]
    if blocks:
        blocked_addrs = {v.flow.daddr for v in blocks}
        first = blocks[0]
        summary = {
            ("drop", True): _("this host's firewall drops {flow}: {rule}"),
            ("drop", False): _("this host's firewall probably drops {flow}: {rule}"),
            ("reject", True): _("this host's firewall rejects {flow}: {rule}"),
            ("reject", False): _("this host's firewall probably rejects {flow}: {rule}"),
        }[(first.action, first.certain)].format(flow=_flow(first.flow), rule=first.describe())
        if len(blocked_addrs) < len({v.flow.daddr for v in main}):
            open_fams = sorted({_fam_of(v.flow.daddr) for v in main
                                if v.flow.daddr not in blocked_addrs})
            bad_fam = _fam_of(first.flow.daddr)
            return warned(FW_CODE, _("{family}: {problem}; {others} may pass").format(
                family=bad_fam, problem=summary, others=" and ".join(open_fams)),
                          _fw_hint(blocks), **evidence)
        return failed(FW_CODE, summary, _fw_hint(blocks), **evidence)
    unknown = [v for v in main if v.action == "unknown"]
    if unknown:
        why = "; ".join(unknown[0].uncertain[:2]) or _("the evaluation was capped")
        if unknown[0].capped:
            why = _("the ruleset is too large to walk within the bounds ({steps} rules "
                    "visited)").format(steps=unknown[0].steps)
        return skipped(_("could not judge the rules for {flow}: {why}").format(
            flow=_flow(unknown[0].flow), why=why), **evidence)
    summary = (_("no rule of this host's output chains blocks tcp port {port} to {addresses}")
               if all(v.flow.protocol == "tcp" for v in main) else
               _("no rule of this host's output chains blocks port {port} to {addresses}")
               ).format(port=port, addresses=", ".join(addrs))
    if any(not v.certain for v in main):
        summary += " " + _("(uncertain: some rules were not understood, see the evidence)")
    if pings:
        summary += "; " + _("but {flow}").format(flow=_flow_line(pings[0]))
    return passed(summary, **evidence)


# -- transport.tcp ---------------------------------------------------------------------------

def _local_block(r: TcpResult, own: set[str], eperm_pings: set[str],
                 fw: Optional[firewall.LocalFirewall]) -> Optional[str]:
    """Why a failed connect was stopped by this host itself (None: it was not, as far as known).

    EPERM/EACCES from connect(), an ICMP error whose sender is this host's own address (its
    output chain's ``reject``), a rule of its output chains that matches, or a silent SYN to
    an address this host even refuses to ping (EPERM).
    """
    if r.state == "open":
        return None
    if r.state == "local":
        return _("connect() got {errno}").format(errno=r.errno)
    verdict = fw.blocks(r.address, "tcp") if fw is not None else None
    if verdict is not None and (r.state in ("timeout", "error")
                                or verdict.action == "reject"):
        return _("{action} by {rule}").format(action=verdict.action, rule=verdict.describe())
    sender = (r.icmp_from or "").split("%")[0]
    if r.state == "icmp" and sender in own and sender != r.address:
        return _("this host itself ({sender}) answered '{icmp}': an output rule rejects "
                 "it").format(sender=sender, icmp=r.icmp_name)
    if r.state == "timeout" and r.address in eperm_pings:
        return _("even its pings are refused with EPERM")
    return None


def _code(r: TcpResult, local_reason: Optional[str]) -> str:
    """The problem code one failed connect amounts to.

    The network check already established that the host answers, so any ICMP error to a
    SYN is a firewall's reject (port unreachable, prohibited, even "host unreachable").
    Anything this host stopped itself is its own firewall's doing, not the remote one's.
    """
    if local_reason is not None:
        return FW_CODE
    if r.state == "refused":
        return "TCP_REFUSED"
    if r.state == "icmp":
        return "TCP_ADMIN_PROHIBITED"
    return "TCP_FILTERED"


def _hint(code: str, r: TcpResult, local_reason: Optional[str],
          fw: Optional[firewall.LocalFirewall]) -> Hint:
    where = {"address": r.address, "port": r.port}
    if code == "TCP_REFUSED":
        return Hint(_("The host answers but nothing listens on {address} port {port}: start "
                      "the service, or use the right port. On the server:").format(**where),
                    [f"ss -tlnp 'sport = :{r.port}'", "systemctl status <service>",
                     f"nmap -sT -p {r.port} {r.address}   # " + _("from here")])
    if code == "TCP_ADMIN_PROHIBITED":
        return Hint(_("A firewall rejects {address} port {port} ({router} sent '{icmp}'). Open "
                      "the port on the server's or the router's firewall. On that "
                      "host:").format(router=r.icmp_from or _("a router"), icmp=r.icmp_name,
                                      **where),
                    ["nft list ruleset", "iptables -S", f"nping --tcp -p {r.port} {r.address}"])
    if code == FW_CODE:
        blocks = fw.blocking(r.address, "tcp") if fw is not None else []
        if blocks:
            return _fw_hint(blocks)
        text = _("This host's own firewall blocks {address} port {port} ({how}): find the "
                 "output rule.").format(how=local_reason or _("blocked locally"), **where)
        if fw is None or not fw.readable:
            text += " " + _("Run netcheck as root to see the exact rule.")
        return Hint(text, ["nft -a list ruleset", "iptables -S OUTPUT", "ip6tables -S OUTPUT"])
    text = _("The host answers ping but its SYNs to {address} port {port} get no answer at "
             "all: a firewall drops them (on the server or a router on the way).").format(
                 **where)
    if fw is None or not fw.readable:
        text += " " + _("This host's own output rules could not be read (needs root): if it "
                        "filters outgoing traffic, `nft list ruleset` as root shows it.")
    return Hint(text, [f"nping --tcp -p {r.port} {r.address}",
                       f"nmap -Pn -sT -p {r.port} {r.address}",
                       f"tcpdump -ni any host {r.address} and port {r.port}   # "
                       + _("on the server")])


def _describe(r: TcpResult, local_reason: Optional[str] = None) -> str:
    where = {"address": r.address, "port": r.port}
    if r.state == "open":
        return _("{address} port {port} open ({ms} ms)").format(ms=f"{r.rtt_ms:.1f}", **where)
    if local_reason is not None:
        return _("{address} port {port}: blocked on this host ({reason})").format(
            reason=local_reason, **where)
    if r.state == "refused":
        return _("{address} port {port} refused (RST: nothing listens)").format(**where)
    if r.state == "icmp":
        return _("{address} port {port}: {router} sent '{icmp}'").format(
            router=r.icmp_from or _("router"), icmp=r.icmp_name, **where)
    if r.state == "noroute":
        return _("{address} port {port}: no route ({errno})").format(errno=r.errno, **where)
    return _("{address} port {port}: no answer to SYN").format(**where)


@check("transport.tcp", Layer.TRANSPORT, requires=("network.target",),
       codes=("TCP_REFUSED", "TCP_FILTERED", "TCP_ADMIN_PROHIBITED", FW_CODE))
async def tcp_connect(ctx: Context) -> Result:
    """Port accepts TCP connections.

    A connect to every resolved address: SYN-ACK (open), RST (nothing listens), an ICMP
    reject (a firewall says no) or silence (a firewall drops it) — the RTT as evidence.
    What this host stops itself (EPERM, a reject from its own address, a rule of its output
    chains) is its own firewall's doing; one address family failing while the other works
    is a warning naming the family.
    """
    from netcheck.probes import firewall

    assert ctx.target is not None
    addrs = await ctx.addresses()
    if not addrs:
        return skipped(_("the target has no address to connect to"))
    network = ctx.result("network.target")
    skip_fams = set(network.evidence.get("unreachable_families", [])) if network else set()
    # A family the network check already found unreachable is its finding, not ours.
    addrs = [a for a in addrs if _fam_of(a) not in skip_fams] or addrs
    results = await shared.tcp_all(ctx, addrs, ctx.target.port)
    # Pings only tell something about a connect that got no answer (this host refusing to
    # send them is the sign of its own firewall); a sweep of open ports sends none.
    silent = [r.address for r in results if r.state == "timeout"]
    pings = await shared.ping_all(ctx, silent) if silent else []
    eperm = {p.address for p in pings
             if p.state == "send_error" and p.error in ("EPERM", "EACCES")}
    fw: Optional[firewall.LocalFirewall] = None
    if any(r.state != "open" for r in results):
        # Already read by transport.firewall in parallel: only the wait for it is shared.
        fw = await firewall.for_target(ctx)
    own = _own_addresses(ctx)
    local = {r.address: _local_block(r, own, eperm, fw) for r in results}
    evidence: dict[str, object] = {"port": ctx.target.port,
                                   "connects": [r.to_json() for r in results]}
    if fw is not None and not fw.readable:
        evidence["local_firewall"] = fw.reason
    opened = [r for r in results if r.state == "open"]
    if opened:
        evidence["rtt_ms"] = round(min(r.rtt_ms or 0 for r in opened), 3)
        failing = [r for r in results if r.state != "open"]
        good_fams = {_family(r) for r in opened}
        bad_fams = {_family(r) for r in failing} - good_fams
        if bad_fams:
            bad = sorted((r for r in failing if _family(r) in bad_fams),
                         key=lambda r: _precedence(r, local[r.address]))[0]
            code = _code(bad, local[bad.address])
            fam = _family(bad)
            hint = _hint(code, bad, local[bad.address], fw)
            evidence["failing_family"] = fam
            return warned(code, _("{family} fails ({problem}) while {working} works").format(
                family=fam, problem=_describe(bad, local[bad.address]),
                working=" and ".join(sorted(good_fams))),
                          Hint(_("Clients that prefer {family} will fail or wait.").format(
                              family=fam) + " " + hint.text, hint.commands), **evidence)
        return passed(_describe(opened[0]), **evidence)
    ranked = sorted(results, key=lambda r: _precedence(r, local[r.address]))
    first = ranked[0]
    code = _code(first, local[first.address])
    summary = _describe(first, local[first.address])
    # Both families failing, each its own way: name the other one too.
    other = next((r for r in ranked if _family(r) != _family(first)), None)
    if other is not None and _code(other, local[other.address]) != code:
        summary += f"; {_family(other)}: {_describe(other, local[other.address])}"
    return failed(code, summary, _hint(code, first, local[first.address], fw), **evidence)


def _precedence(r: TcpResult, local_reason: Optional[str] = None) -> int:
    """Which failure explains the most: a local block, a reject, a refusal, then silence."""
    if local_reason is not None:
        return -1
    order = ["local", "icmp", "refused", "noroute", "timeout", "error"]
    return order.index(r.state) if r.state in order else len(order)


# -- transport.sockets -----------------------------------------------------------------------

@check("transport.sockets", Layer.TRANSPORT)
async def current_sockets(ctx: Context) -> Result:
    """Connections this host has to the target now.

    What ``ss -tunap`` shows for the target's addresses: state, local and remote address,
    and the owning process. The socket tables are copied when the run starts, before
    netcheck's own probes; without root, other users' processes are not named.
    """
    from netcheck.probes import sockets

    # Copied now, before this run's probes open sockets of their own (no parsing yet).
    raw = ctx.value_shared(("sockets", "tables"), sockets.read_tables)
    assert ctx.target is not None
    addrs = await ctx.addresses()
    if raw is None:
        return skipped(_("the kernel's socket tables (/proc/net/tcp) are not readable here"))
    if not addrs:
        return skipped(_("the target has no address: no connection to look for"))
    found = sockets.towards(raw, addrs)
    # psutil (slow: every process's descriptors) only when there is something to name.
    # Owners come from psutil (slow: every process's descriptors); a socket in TIME_WAIT
    # belongs to no process any more, so only live ones make it worth asking.
    live = [s for s in found if s.state != "TIME_WAIT"]
    snap = await ctx.blocking(sockets.with_owners, found) if live else sockets.Snapshot()
    on_port = [s for s in found if s.peer_port == ctx.target.port]
    live = [s for s in found if s.state not in ("TIME_WAIT", "CLOSE")]
    evidence: dict[str, Any] = {
        "sockets": [s.to_json() for s in found[:sockets.MAX_LISTED]],
        "total": len(found), "on_port": len(on_port),
        "owners_visible": snap.owners_visible,
    }
    if len(found) > sockets.MAX_LISTED:
        evidence["truncated"] = True
    if snap.error:
        evidence["error"] = snap.error
    if not snap.owners_visible:
        evidence["note"] = ("without root, the processes of other users are not visible "
                            "(their sockets are listed without pid)")
    if not found:
        return passed(_("no connection to {addresses} right now").format(
            addresses=", ".join(addrs[:2])), **evidence)
    head = (live or found)[0]
    summary = _("{open} open, {closing} closing: {socket}").format(
        open=len(live), closing=len(found) - len(live), socket=head.describe())
    if len(found) > 1:
        summary += " " + _("(+{n} more)").format(n=len(found) - 1)
    return passed(summary, **evidence)


# -- transport.service ----------------------------------------------------------------------

def _scan_asked(ctx: Context) -> Optional[str]:
    return None if ctx.options.scan else _("not asked (use --scan)")


@check("transport.service", Layer.TRANSPORT, requires=("transport.tcp",), applies=_scan_asked)
async def service_scan(ctx: Context) -> Result:
    """Service on the port identified by nmap.

    With ``--scan``: real nmap service/version detection on the open port (``-sV
    --version-light``, a SYN scan as root, a connect scan otherwise), its product, version
    and extra information shown as ``nmap -sS -A`` prints them. Bounded by the deadline.
    """
    from netcheck.probes import nmapscan

    assert ctx.target is not None
    if nmapscan.nmap_path() is None:
        return skipped(_("install nmap (Debian: apt install nmap) to identify the service"))
    tcp = ctx.result("transport.tcp")
    connects = tcp.evidence.get("connects", []) if tcp is not None else []
    opened = [c["address"] for c in connects if isinstance(c, dict) and c.get("state") == "open"]
    if not opened:
        return skipped(_("the port is not open: nothing to identify"))
    left = ctx.time_left() - 0.5
    if left < 1.5:
        return skipped(_("not enough time left before the deadline for nmap (use --deadline)"))
    result = await ctx.blocking(nmapscan.scan, opened[0], ctx.target.port,
                                ctx.facts.privileged, left)
    evidence = result.to_json()
    if result.error:
        return skipped(result.error, **evidence)
    return passed(f"nmap: {' '.join(result.line.split())}", **evidence)
