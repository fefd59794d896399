"""Layer 4, the way in: this host's input firewall lets clients in
(``transport.inbound_firewall``) and the port completes a local handshake
(``transport.local_handshake``, judged by :func:`judge_handshakes`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Collection, Optional, Sequence

from netcheck.checks.server.common import SERVER, _proto_port, _ss

from netcheck.i18n import _
from netcheck.lazy import asyncio
from netcheck.model import Hint, Layer, Result, Status, failed, passed, skipped, warned
from netcheck.registry import check
from netcheck.server.measure import (
    MAX_ADDRESSES,
    Inbound,
    bound,
    inbound,
    local_block,
    own_addresses,
    server_options,
)

if TYPE_CHECKING:
    from netcheck.runner import Context
    from netcheck.server.listeners import Listener


def _inbound_hint(blocks: list[Any]) -> Hint:
    from netcheck.checks.transport import unique_remedies

    commands = unique_remedies(blocks)
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
    from netcheck.checks.transport import firewall_unreadable

    from netcheck.probes import firewall

    if not firewall.has_cap_net_admin():
        return skipped(firewall_unreadable(firewall.NEEDS_ROOT))
    judged, flows = await inbound(ctx)
    if not judged:
        return skipped(_("no address of this host to judge a connection to"))
    unreadable = next((fw for fw in judged if not fw.readable), None)
    if unreadable is not None:
        return skipped(_("cannot read the firewall rules: {reason}").format(
            reason=firewall_unreadable(unreadable.reason)))
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
        return _blocked(verdicts, blocks, client, evidence)
    unknown = [v for v in verdicts if v.action == "unknown"]
    if unknown:
        why = "; ".join(unknown[0].uncertain[:2]) or _("the evaluation was capped")
        return skipped(_("could not judge the rules for {flow}: {why}").format(
            flow=flow_text(unknown[0].flow), why=why), **evidence)
    return passed(_nothing_blocks(ctx, verdicts, flows, client), **evidence)


def _blocked(verdicts: list[Any], blocks: list[Any], client: str,
             evidence: dict[str, Any]) -> Result:
    """SRV_FW_INPUT_BLOCK: the first blocking rule quoted; a failure when it blocks every way
    in, a warning when some addresses may pass."""
    from netcheck.checks.transport import _flow as flow_text  # Flow.describe(), translated

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


def _nothing_blocks(ctx: Context, verdicts: list[Any], flows: Inbound, client: str) -> str:
    """The passing summary: the addresses judged, and the DNAT and forward chains a
    container's port goes through."""
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
    return summary


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
        backlog=_full_backlog(listener))
    if code is not None and block is not None:
        return failed(code, summary, _inbound_hint([block]), **evidence)
    return Result(status, summary, evidence=evidence, hint=Hint(
        _("Look at the program holding the port (is it stuck?) and restart it."),
        [_ss(ctx), "ps -o pid,stat,etime,cmd -p " + ",".join(
            str(o.pid) for o in listener.owners[:4]) if listener.owners else _ss(ctx)]))


def _full_backlog(s: Listener) -> Optional[tuple[int, int]]:
    """(waiting, limit) when the socket's accept queue is full, else None."""
    if s.backlog_full and s.recv_q is not None and s.send_q is not None:
        return s.recv_q, s.send_q
    return None


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
