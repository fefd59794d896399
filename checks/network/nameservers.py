"""What each name server did with netcheck's questions (:class:`ServerRecord`) and the pure
judging of ``dns.servers`` from those records (:func:`judge_servers`): which server fails, a
local stub or its upstream, and whether the path's loss explains a silence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from netcheck.checks.network.common import _loopback
from netcheck.checks.network.path import LOSS_WARN_PCT

from netcheck.i18n import _, ngettext, probe_text
from netcheck.model import Status

if TYPE_CHECKING:
    from netcheck.probes import dns


@dataclass(frozen=True)
class ServerRecord:
    """What one name server did with every question netcheck sent it (recorded facts)."""

    server: str
    rcodes: tuple[str, ...] = ()  # the rcodes of the answers
    errors: tuple[str, ...] = ()  # what the unanswered questions met (timeout, rejected ...)
    sent: int = 0  # datagrams sent, resends included
    retried: int = 0  # questions answered only after a resend
    addresses: int = 0  # addresses its answers held

    @classmethod
    def of(cls, server: str, answers: list[dns.DnsAnswer]) -> ServerRecord:
        """The record of ``server`` from a run's answers."""
        mine = [a for a in answers if a.server == server]
        return cls(server, tuple(a.rcode for a in mine if a.rcode),
                   tuple(a.error for a in mine if a.error and not a.rcode),
                   sum(a.sent for a in mine), sum(1 for a in mine if a.rcode and a.retried),
                   sum(len(a.addresses) for a in mine))

    @property
    def partial(self) -> bool:
        """It answered some questions with no address and stayed silent to the others (the
        A question lost, the empty AAAA answer back): nothing it said is an answer yet."""
        return (not self.addresses and "timeout" in self.errors
                and set(self.rcodes) <= {"NOERROR"} and bool(self.rcodes))

    @property
    def silent(self) -> bool:
        """No answer came back: what the path may explain and a trace may locate (an error
        this host's own stack gave, no route or a policy rule, never left it)."""
        return self.state == "DNS_RESOLVER_UNREACHABLE" and "timeout" in self.errors

    @property
    def asked(self) -> bool:
        return bool(self.rcodes or self.errors)

    @property
    def state(self) -> str:
        """ok | DNS_REFUSED | DNS_SERVFAIL | DNS_RESOLVER_UNREACHABLE (as dig would tell)."""
        rcodes = set(self.rcodes)
        if rcodes & {"NOERROR", "NXDOMAIN"} and not self.partial:
            return "ok"
        if "REFUSED" in rcodes:
            return "DNS_REFUSED"
        if rcodes - {"NOERROR"}:
            return "DNS_SERVFAIL"
        return "DNS_RESOLVER_UNREACHABLE"

    @property
    def problem(self) -> str:
        """What a person would read: ``answers SERVFAIL``, ``no answer to 12 queries``."""
        state = self.state
        if state == "DNS_REFUSED":
            return _("answers REFUSED")
        if state == "DNS_SERVFAIL":
            return _("answers {rcode}").format(rcode=sorted(set(self.rcodes))[0])
        if self.partial:
            return _("answers {answered} of {questions} questions, with no address, and not "
                     "the others (no answer to {sent} queries)").format(
                         answered=len(self.rcodes), questions=len(self.rcodes) + len(
                             self.errors), sent=self.sent)
        errors = ", ".join(probe_text(e) for e in sorted(set(self.errors))) or _("no answer")
        if set(self.errors) == {"timeout"} and self.sent > 1:
            return _("no answer to {sent} queries").format(sent=self.sent)
        return errors


# Below this share of echo round trips coming back, a name server's silence to every one of
# its queries is what the path's loss would give anyway (odds over 1 %): loss, not DNS.
def _silence_explained_by_loss(rec: ServerRecord, burst: Optional[dict[str, Any]]) -> bool:
    if not burst or not burst.get("sent") or not burst.get("received"):
        return False
    if set(rec.errors) != {"timeout"}:
        return False
    back = burst["received"] / burst["sent"]
    return back < 1.0 and (1.0 - back) ** max(1, rec.sent) > 0.01


def _lossy(burst: Optional[dict[str, Any]]) -> bool:
    """Burst statistics showing more lost round trips than a healthy path loses."""
    return bool(burst and burst.get("sent") and burst["received"] < burst["sent"]
                and float(burst.get("loss_pct") or 0) >= LOSS_WARN_PCT)


def judge_servers(configured: list[ServerRecord], upstreams: list[ServerRecord], name: str,
                  stub_kind: Optional[str] = None, in_hosts: bool = False,
                  server_burst: Optional[dict[str, Any]] = None,
                  ) -> tuple[Status, Optional[str], str]:
    """dns.servers' judgement: recorded per-server results in, ``(status, code, text)`` out.

    ``configured``: resolv.conf's servers in order; ``upstreams``: the local stub's upstream
    servers asked directly (empty when there is no stub or they are unknown);
    ``server_burst``: burst statistics (:func:`icmp.burst_stats`) of the first server when
    it answered nothing (behind a local stub that fails: of its first silent upstream).
    """
    asked = [r for r in configured if r.asked]
    working = [r for r in asked if r.state == "ok"]
    if working:
        return _judge_answering(asked, working, upstreams, stub_kind, in_hosts)
    if in_hosts:
        return Status.PASS, None, _("no name server answers, but the target is in the hosts "
                                    "file (not on the path)")
    if not asked:
        return Status.SKIP, None, _("no name server was asked")
    first = asked[0]
    if stub_kind is not None and _loopback(first.server):
        judged = _judge_failing_stub(first, upstreams, stub_kind, server_burst)
        if judged is not None:
            return judged
    return _judge_failing_servers(asked, name, server_burst)


def _judge_answering(asked: list[ServerRecord], working: list[ServerRecord],
                     upstreams: list[ServerRecord], stub_kind: Optional[str],
                     in_hosts: bool) -> tuple[Status, Optional[str], str]:
    """Some configured server answers: a pass, or a warning naming a server (or a working
    stub's upstream) this host is told to ask that fails."""
    summary = ngettext("{servers} answers", "{servers} answer", len(working)).format(
        servers=", ".join(r.server for r in working))
    broken = [r for r in asked if r.state != "ok"]
    if broken and not in_hosts:
        # The lookups still get answers, but a server this host is told to ask fails:
        # a lost family (its path broken) or a lost spare, what the next fault hits.
        bad = broken[0]
        return Status.WARN, bad.state, ngettext(
            "name server {server}: {problem}, while {servers} answers",
            "name server {server}: {problem}, while {servers} answer",
            len(working)).format(server=bad.server, problem=bad.problem,
                                 servers=", ".join(r.server for r in working))
    if broken:
        summary += f" ({', '.join(f'{r.server}: {r.state}' for r in broken)})"
    up_ok = [r for r in upstreams if r.asked and r.state == "ok"]
    up_bad = [r for r in upstreams if r.asked and r.state != "ok"]
    if up_ok and up_bad and not in_hosts and stub_kind is not None:
        # Behind a working stub the same holds one step further: an upstream it is told
        # to ask fails while another answers (a lost family, or a lost spare).
        bad = up_bad[0]
        return Status.WARN, bad.state, ngettext(
            "{stub} answers, but its upstream {server}: {problem}, while {servers} answers",
            "{stub} answers, but its upstream {server}: {problem}, while {servers} answer",
            len(up_ok)).format(stub=working[0].server, server=bad.server,
                               problem=bad.problem,
                               servers=", ".join(r.server for r in up_ok))
    resent = sum(r.retried for r in working)
    if resent:
        summary += " " + ngettext("({n} question answered only after a resend: datagrams "
                                  "are lost on the way)",
                                  "({n} questions answered only after a resend: datagrams "
                                  "are lost on the way)", resent).format(n=resent)
    return Status.PASS, None, summary


def _judge_failing_stub(first: ServerRecord, upstreams: list[ServerRecord], stub_kind: str,
                        server_burst: Optional[dict[str, Any]],
                        ) -> Optional[tuple[Status, Optional[str], str]]:
    """A local stub that fails, judged by its upstreams: the path to them, the stub, or the
    upstream is the problem; None when no upstream was asked."""
    who = (_("the systemd-resolved stub {server}") if stub_kind == "systemd-resolved"
           else _("the local stub {server}")).format(server=first.server)
    up_ok = [r for r in upstreams if r.asked and r.state == "ok"]
    up_bad = [r for r in upstreams if r.asked and r.state != "ok"]
    lossy = _upstream_lost_to_loss(up_ok, up_bad, server_burst)
    if lossy is not None:
        assert server_burst is not None
        return Status.FAIL, "PATH_LOSS", _(
            "{who} fails ({problem}): its upstream {server} {what}, and only {received} of "
            "{sent} pings to it came back ({loss} % lost): the path to it loses most "
            "packets").format(who=who, problem=first.problem, server=lossy[0].server,
                              what=lossy[1], received=server_burst["received"],
                              sent=server_burst["sent"],
                              loss=f"{server_burst['loss_pct']:g}")
    if up_ok:
        return Status.FAIL, first.state, _(
            "{who} fails ({problem}), but its upstream {upstream} answers: the stub is "
            "the problem").format(who=who, problem=first.problem, upstream=up_ok[0].server)
    if up_bad:
        return Status.FAIL, up_bad[0].state, _(
            "{who} fails ({problem}) because its upstream {upstream} fails too "
            "({up_problem}): the upstream is the problem").format(who=who,
                                                                   problem=first.problem,
                                     upstream=up_bad[0].server,
                                     up_problem=up_bad[0].problem)
    return None


def _upstream_lost_to_loss(up_ok: list[ServerRecord], up_bad: list[ServerRecord],
                           server_burst: Optional[dict[str, Any]],
                           ) -> Optional[tuple[ServerRecord, str]]:
    """The upstream on a path that loses most packets, and what it did, or None."""
    # An upstream on a path that loses most packets: silent, or answering netcheck only
    # after resends (the stub sends its question fewer times and lost the answers).
    if up_ok and all(r.retried for r in up_ok) and _lossy(server_burst):
        return up_ok[0], _("answers only after resends")
    if not up_ok and up_bad and up_bad[0].state == "DNS_RESOLVER_UNREACHABLE" and \
            _silence_explained_by_loss(up_bad[0], server_burst):
        return up_bad[0], _("is silent too ({problem})").format(problem=up_bad[0].problem)
    return None


def _judge_failing_servers(asked: list[ServerRecord], name: str,
                           server_burst: Optional[dict[str, Any]],
                           ) -> tuple[Status, Optional[str], str]:
    """No server asked answers: the path loses their datagrams, or the first one refuses,
    fails (SERVFAIL) or is silent (with whether its host answers ping)."""
    first = asked[0]
    if first.state == "DNS_RESOLVER_UNREACHABLE" and _silence_explained_by_loss(
            first, server_burst):
        assert server_burst is not None
        return Status.FAIL, "PATH_LOSS", _(
            "name server {server}: {problem}, and only {received} of {sent} pings came back "
            "({loss} % lost): the path to it loses most packets").format(
                server=first.server, problem=first.problem, received=server_burst["received"],
                sent=server_burst["sent"], loss=f"{server_burst['loss_pct']:g}")
    servers = ", ".join(r.server for r in asked)
    if first.state == "DNS_REFUSED":
        return Status.FAIL, first.state, ngettext(
            "{servers} refuses to answer for {name}", "{servers} refuse to answer for {name}",
            len(asked)).format(servers=servers, name=name)
    if first.state == "DNS_SERVFAIL":
        return Status.FAIL, first.state, ngettext(
            "{servers} answers SERVFAIL for {name}", "{servers} answer SERVFAIL for {name}",
            len(asked)).format(servers=servers, name=name)
    problem = first.problem
    if server_burst and server_burst.get("received"):
        problem += " " + _("(but {server} answers ping: its DNS service or a firewall drops "
                           "port 53)").format(server=first.server)
    elif server_burst and server_burst.get("sent"):
        problem += " " + _("(and {server} does not answer ping either)").format(
            server=first.server)
    return Status.FAIL, "DNS_RESOLVER_UNREACHABLE", ngettext(
        "name server {servers}: {problem}", "name servers {servers}: {problem}",
        len(asked)).format(servers=servers, problem=problem)
