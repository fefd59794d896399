"""The pure judging of ``transport.tcp``: what the connects to the target amount to.

Facts in, finding out, with no probe: the batch sweep (``--only transport.tcp``) and the fast
probe judge their own connects with these functions, as the check does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Optional, Sequence

from netcheck.checks.transport.common import CLOSED_CODES, FW_CODE, OPEN_UNEXPECTED

from netcheck.i18n import _, ngettext
from netcheck.lazy import lazy
from netcheck.model import Hint, Result, Status

if TYPE_CHECKING:
    from netcheck import family
    from netcheck.probes.tcp import TcpResult
    from netcheck.target import Target
else:  # imported at first use: `netcheck checks` lists the checks without the probes
    family = lazy("netcheck.family")


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


def _icmp_sender(r: TcpResult) -> str:
    """Who sent the ICMP error, in words: the target itself or a router on the way."""
    sender = family.bare(r.icmp_from or "")
    if not sender:  # the error was not queued: "No route to host" came from some router
        return _("router")
    if sender == family.bare(r.address):
        return _("{address} itself").format(address=sender)
    return _("{router} (a router or firewall on the way)").format(router=sender)


def describe_connect(r: TcpResult, local_reason: Optional[str] = None) -> str:
    """What one connect met, in the reader's language: what was sent, what came back."""
    where = {"address": r.address, "port": r.port}
    if r.state == "open":
        text = _("{address} port {port} open ({ms} ms)").format(ms=f"{r.rtt_ms:.1f}", **where)
        if r.after == "closed":
            text += "; " + _("the server closed it at once without a word")
        return text
    if r.state == "reset":
        return _("{address} port {port}: handshake completed ({ms} ms), then the server reset "
                 "the connection before sending a byte").format(ms=f"{r.rtt_ms or 0:.1f}",
                                                               **where)
    if local_reason is not None:
        return _("{address} port {port}: blocked on this host ({reason})").format(
            reason=local_reason, **where)
    if r.state == "refused":
        return _("{address} port {port} refused (RST: nothing listens)").format(**where)
    if r.state == "icmp":
        return _("{address} port {port}: {router} sent '{icmp}'").format(
            router=_icmp_sender(r), icmp=r.icmp_name or r.errno, **where)
    if r.state == "noroute":
        return _("{address} port {port}: no route ({errno})").format(errno=r.errno, **where)
    if r.state == "error":
        return _("{address} port {port}: connect failed ({errno})").format(errno=r.errno,
                                                                            **where)
    text = _("{address} port {port}: no answer to SYN").format(**where)
    if r.syns and r.syns > 1:
        text += " " + ngettext("({n} SYN sent)", "({n} SYNs sent)", r.syns).format(n=r.syns)
    return text


@dataclass(frozen=True)
class Judgement:
    """What the connects to the target amount to (a pure function's answer).

    ``subject``: the connect the finding is about (its hint is built from it); ``family``:
    the contract's ``"ipv4"``/``"ipv6"`` when that family fails while the other works.
    """

    status: Status
    summary: str
    code: Optional[str] = None
    subject: Optional[TcpResult] = None
    family: Optional[str] = None


def judge_connects(results: Sequence[TcpResult],
                   local: Optional[Mapping[str, Optional[str]]] = None) -> Judgement:
    """Judge the connects to every address of the target: facts in, finding out.

    ``local``: address -> why this host stopped that connect itself (None: it did not).
    A completed handshake passes the rung whatever came after it (a reset before any byte
    is the application's finding, layer 7); one family failing while the other completes
    handshakes is a warning naming the family; otherwise the failure that explains the most
    (a local block, an ICMP reject, a refusal, then silence) is the finding.
    """
    why = dict(local or {})
    reason = {r.address: why.get(r.address) for r in results}
    through = [r for r in results if r.handshake]
    if through:
        shown = next((r for r in through if r.state == "open"), through[0])
        failing = [r for r in results if not r.handshake]
        good = {family.family_of(r.address) for r in through}
        bad_fams = {family.family_of(r.address) for r in failing} - good
        if not bad_fams:
            return Judgement(Status.PASS, describe_connect(shown))
        bad = sorted((r for r in failing if family.family_of(r.address) in bad_fams),
                     key=lambda r: _precedence(r, reason[r.address]))[0]
        fam = family.family_of(bad.address)
        summary = _("{family} fails ({problem}) while {working} works").format(
            family=family.label(fam), problem=describe_connect(bad, reason[bad.address]),
            working=" and ".join(family.label(f) for f in sorted(good)))
        return Judgement(Status.WARN, summary, _code(bad, reason[bad.address]), bad,
                         family.name(fam))
    if not results:
        return Judgement(Status.SKIP, _("the target has no address to connect to"))
    ranked = sorted(results, key=lambda r: _precedence(r, reason[r.address]))
    first = ranked[0]
    code = _code(first, reason[first.address])
    summary = describe_connect(first, reason[first.address])
    # Both families failing, each its own way: name the other one too.
    other = next((r for r in ranked
                  if family.family_of(r.address) != family.family_of(first.address)), None)
    if other is not None and _code(other, reason[other.address]) != code:
        summary += (f"; {family.label(family.family_of(other.address))}: "
                    f"{describe_connect(other, reason[other.address])}")
    return Judgement(Status.FAIL, summary, code, first)


def judge_expectation(result: Result, expect: str, target: Target) -> Result:
    """The connects' result judged against what the port is expected to be.

    ``expect = "closed"`` (a port that must stay shut): a refused, dropped or rejected
    connect (CLOSED_CODES) passes, with ``evidence.observed`` naming what it met; one that
    got through (on every family or one) fails with TCP_OPEN_UNEXPECTED and a hint to shut
    it. What was measured stays in ``Result.measured``: the runner skips the checks above a
    port shut as expected (nothing to look at, nothing failed) and lets them look at an open
    one. ``"open"``, or anything else met (no address), is the result as it is.
    """
    if expect != "closed":
        return result
    port, host = target.port, target.host
    evidence = {**result.evidence, "expected": "closed"}
    if result.status in (Status.PASS, Status.WARN):
        return Result(Status.FAIL, _("{found}, but port {port} should be closed").format(
            found=result.summary, port=port), code=OPEN_UNEXPECTED, evidence=evidence,
            hint=Hint(_("Something listens on {host} port {port}, which should be closed: "
                        "stop the service or block the port on that host.").format(
                            host=host, port=port),
                      [f"ss -tlnp 'sport = :{port}'   # " + _("on {host}").format(host=host),
                       "nft list ruleset",
                       f"nmap -sT -p {port} {host}   # " + _("from here")]),
            measured=result.status)
    if result.status is Status.FAIL and result.code in CLOSED_CODES:
        evidence["observed"] = result.code
        return Result(Status.PASS, _("closed, as expected: {found}").format(
            found=result.summary), evidence=evidence, measured=Status.FAIL)
    return result


def _precedence(r: TcpResult, local_reason: Optional[str] = None) -> int:
    """Which failure explains the most: a local block, a reject, a refusal, then silence."""
    if local_reason is not None:
        return -1
    order = ["local", "icmp", "refused", "noroute", "timeout", "error"]
    return order.index(r.state) if r.state in order else len(order)
