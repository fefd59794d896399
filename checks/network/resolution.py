"""The name rungs: the target's name resolves (``dns.resolution``, judged by
:func:`judge_resolution`) and its hosts-file entry works (``dns.hosts_file``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from netcheck.checks.network.common import SLOW_DNS_MS, _name_target
from netcheck.checks.network.resolver import ServerRecord, _server_verdicts

from netcheck import hints
from netcheck.i18n import _
from netcheck.lazy import lazy
from netcheck.model import Hint, Layer, Result, Status, failed, passed, warned
from netcheck.registry import check

if TYPE_CHECKING:
    import socket

    from netcheck.probes import dns, shared
    from netcheck.runner import Context
else:  # imported at first use: `netcheck checks` lists the checks without the probes
    socket = lazy("socket")
    dns, shared = (lazy(f"netcheck.probes.{name}")
                   for name in ("dns", "shared"))


def first_server_wait_ms(res: dns.Resolution, server: str) -> float:
    """How long the system resolver waits for a failing ``server`` before it asks the next:
    resolv.conf's timeout when it stays silent, else the time its error took to come."""
    mine = [a for a in res.answers if a.server == server and not a.answered]
    if any(a.error == "timeout" for a in mine):
        return res.config.timeout * 1000.0
    return max((a.rtt_ms or 0.0 for a in mine), default=0.0)


def judge_resolution(res: dns.Resolution, families: tuple[int, ...]
                     ) -> tuple[Status, Optional[str], str]:
    """dns.resolution's judgement: the recorded resolution in, ``(status, code, text)`` out."""
    name = res.name
    if res.source == "hosts" and res.addresses:
        return Status.PASS, None, _("{name} -> {addresses} (from the hosts file)").format(
            name=name, addresses=", ".join(res.addresses))
    if res.fqdn is None:
        if any(a.rcode == "NXDOMAIN" for a in res.answers):
            tried = [t for t in res.tried if t != name]
            text = _("{name} does not exist (NXDOMAIN)").format(name=name)
            if tried:
                text += " " + _("(also tried {names} from the search list)").format(
                    names=", ".join(tried))
            return Status.FAIL, "DNS_NXDOMAIN", text
        return Status.SKIP, None, _("no server gave an answer")
    if not res.addresses:
        types = "/".join(t for f, t in ((socket.AF_INET, "A"), (socket.AF_INET6, "AAAA"))
                         if f in families)
        return Status.FAIL, "DNS_NO_ADDRESS", _("{name} exists but has no {types} "
                                                "record").format(name=res.fqdn, types=types)
    chain = next((a.cnames for a in res.answers if a.cnames), [])
    values = {"name": res.fqdn, "addresses": ", ".join(res.addresses),
              "ms": f"{res.duration_ms:.0f}", "chain": " -> ".join(c[1] for c in chain)}
    summary = (_("{name} via {chain} -> {addresses} in {ms} ms") if chain
               else _("{name} -> {addresses} in {ms} ms")).format(**values)
    if res.fqdn != name:
        summary += " " + _("(through the search list)")
    verdicts = _server_verdicts(res)
    first = res.config.nameservers[0] if res.config.nameservers else None
    if first and verdicts.get(first, "ok") != "ok" and not res.config.rotate:
        # The system resolver asks the servers in order and moves on when the first one
        # fails: at once for an error (an ICMP error, no route, REFUSED, SERVFAIL), only
        # after resolv.conf's timeout (5 s by default) for silence.
        record = ServerRecord.of(first, res.answers)
        wait_ms = first_server_wait_ms(res, first)
        answering = next((s for s in res.config.nameservers if verdicts.get(s) == "ok"), None)
        values = {"summary": summary, "server": first, "problem": record.problem,
                  "next": answering or _("the next server")}
        if wait_ms > SLOW_DNS_MS:
            return Status.WARN, "DNS_SLOW", _(
                "{summary}, but only after the first name server {server} fails "
                "({problem}): every lookup waits {seconds} s for it before asking "
                "{next}").format(seconds=f"{wait_ms / 1000:.3g}", **values) + (" " + _(
                    "(resolv.conf's timeout)") if "timeout" in record.errors else "")
        summary += " " + _("(the first name server {server} fails at once ({problem}): the "
                           "resolver moves on to {next} without waiting)").format(**values)
    if res.duration_ms > res.config.timeout * 1000:
        return Status.WARN, "DNS_SLOW", _(
            "{summary}: slower than resolv.conf's timeout of {timeout} s, so the system "
            "resolver gives up before the answer comes").format(
                summary=summary, timeout=res.config.timeout)
    if res.duration_ms > SLOW_DNS_MS:
        return Status.WARN, "DNS_SLOW", _("{summary} (slow: over {limit} ms)").format(
            summary=summary, limit=f"{SLOW_DNS_MS:.0f}")
    return Status.PASS, None, summary


@check("dns.resolution", Layer.NETWORK, applies=_name_target, requires=("dns.servers",),
       codes=("DNS_NXDOMAIN", "DNS_NO_ADDRESS", "DNS_SLOW"))
async def dns_resolution(ctx: Context) -> Result:
    """Name resolves to an address.

    The name (through resolv.conf's search list and ndots, as the system resolver builds
    it) must exist and have an address of the family asked for (A / AAAA), and the answer
    should come quickly. The CNAME chain is shown as ``dig`` shows it.
    """
    shared.path_bursts(ctx)  # the path is known once the name is: start measuring it
    res = await ctx.resolution()
    chain = next((a.cnames for a in res.answers if a.cnames), [])
    evidence = {"resolution": res.to_json(), "cname_chain": chain}
    status, code, text = judge_resolution(res, ctx.families)
    if code is None:
        return Result(status, text, evidence=evidence)
    first = res.config.nameservers[0] if res.config.nameservers else None
    silent_first = (code == "DNS_SLOW" and first is not None and
                    _server_verdicts(res).get(first) == "DNS_RESOLVER_UNREACHABLE")
    fqdn = res.fqdn or res.name
    if code == "DNS_NXDOMAIN":
        hint = Hint(_("Check the spelling of the name; if it is right, the domain's DNS lacks "
                      "the record."),
                    [hints.dig(fqdn), hints.dig(fqdn, None, "SOA"), "grep search /etc/resolv.conf"])
    elif code == "DNS_NO_ADDRESS":
        hint = Hint(_("The name exists but has no address of the family needed: use another "
                      "name, the other address family, or add the record."),
                    [hints.dig(fqdn, None, "A"), hints.dig(fqdn, None, "AAAA"),
                     hints.dig(fqdn, None, "ANY")])
    elif _server_verdicts(res).get(res.config.nameservers[0], "ok") != "ok":
        first = res.config.nameservers[0]
        hint = Hint(_("Remove or fix {server} in resolv.conf so the working server is asked "
                      "first.").format(server=first),
                    ["cat /etc/resolv.conf", hints.dig(res.name, first)])
    else:
        hint = Hint(_("Resolution works but is slow: the resolver or its upstream is "
                      "overloaded or far away; every new connection waits for it."),
                    [hints.dig(fqdn), "cat /etc/resolv.conf"])
    result = Result(status, text, code=code, hint=hint, evidence=evidence)
    if silent_first:
        assert first is not None
        # The wait rests on that server's silence: what breaks its family's path explains
        # it (runner.explained_by).
        result.unanswered = (first,)
    return result


@check("dns.hosts_file", Layer.NETWORK, applies=_name_target, requires=("dns.config",),
       codes=("DNS_HOSTS_OVERRIDE",))
async def hosts_file(ctx: Context) -> Result:
    """Hosts file agrees with DNS.

    ``/etc/hosts`` is read before DNS (nsswitch.conf's usual ``hosts: files dns``): an old
    entry there sends the connection to an address DNS no longer gives.
    """
    res = await ctx.resolution()
    evidence = {"file": ctx.options.hosts_file, "hosts": res.hosts_addresses,
                "dns": res.dns_addresses}
    values = {"file": ctx.options.hosts_file, "name": res.name,
              "addresses": ", ".join(res.hosts_addresses), "dns": ", ".join(res.dns_addresses)}
    if not res.hosts_addresses:
        return passed(_("{name} is not in {file}").format(**values), **evidence)
    if res.source == "dns" and res.nss is not None and not res.nss.files_first:
        # nsswitch.conf asks DNS before the hosts file: the line there is never used.
        return passed(_("{file} maps {name} to {addresses}, but nsswitch.conf asks DNS first "
                        "(DNS says {dns})").format(**values), **evidence)
    if not res.dns_addresses or set(res.hosts_addresses) & set(res.dns_addresses):
        return passed(_("{file} maps {name} to {addresses}").format(**values), **evidence)
    status = await _hosts_entry_works(ctx, res.hosts_addresses)
    make = failed if not status else warned
    summary = (_("{file} maps {name} to {addresses}, DNS says {dns}") if status
               else _("{file} maps {name} to {addresses}, DNS says {dns} (and the hosts "
                      "address does not answer)"))
    return make("DNS_HOSTS_OVERRIDE", summary.format(**values),
                Hint(_("Remove or correct the stale line in the hosts file."),
                     [f"grep -n '{res.name}' {ctx.options.hosts_file}",
                      f"sed -i '/\\s{res.name}\\(\\s\\|$\\)/d' {ctx.options.hosts_file}"]),
                **evidence)


async def _hosts_entry_works(ctx: Context, addresses: list[str]) -> bool:
    assert ctx.target is not None
    results = await shared.tcp_all(ctx, addresses, ctx.target.port)
    return any(r.answered for r in results)
