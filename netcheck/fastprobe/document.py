"""The healthy exchange as a netcheck/1 document (:func:`report`): verdict ok, and one passing
outcome for each rung it stands for, in the rung's own words.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

from netcheck.fastprobe.judge import tls_result
from netcheck.fastprobe.metrics import _timings

if TYPE_CHECKING:
    from netcheck.facts import Facts
    from netcheck.fastprobe.probe import Exchange
    from netcheck.model import CheckOutcome, Report
    from netcheck.probes.http import HttpResult
    from netcheck.probes.tcp import TcpResult
    from netcheck.probes.tls import TlsResult
    from netcheck.registry import Check


def report(ex: Exchange, checks: list[Check], facts: Facts,
           request_id: Optional[str] = None) -> Report:
    """The healthy exchange as a netcheck/1 document: verdict ok, and one passing outcome for
    each rung it stands for, in the rung's own words (``evidence.phase`` is ``"exchange"``).

    ``checks``: the registered checks (their ids, layers and titles); a rung not among them
    is left out. ``facts``: this host (its name, whether it runs privileged).
    """
    from netcheck import __version__
    from netcheck.model import Report, Verdict

    by_id = {c.id: c for c in checks}
    outcomes = [o for o in _outcomes(ex, by_id) if o is not None]
    return Report(
        mode="diagnose", target=ex.target.to_json(ex.addresses),
        host={"hostname": facts.hostname, "privileged": facts.privileged,
              "egress_interface": None},
        verdict=Verdict.OK, root_cause=None, checks=outcomes, started_at=ex.started_at,
        duration_ms=ex.duration_ms, version=__version__,
        request_id=request_id if ex.target.scheme in ("http", "https") else None)


def _outcomes(ex: Exchange, by_id: Mapping[str, Check]) -> list[Optional[CheckOutcome]]:
    from netcheck.model import CheckOutcome, Result, Status

    def outcome(check_id: str, summary: str, evidence: dict[str, Any],
                ms: float = 0.0) -> Optional[CheckOutcome]:
        chk = by_id.get(check_id)
        if chk is None:
            return None
        return CheckOutcome(chk.id, chk.layer, chk.title,
                            Result(Status.PASS, summary, evidence={**evidence,
                                                                   "phase": "exchange"}), ms)

    out: list[Optional[CheckOutcome]] = []
    if ex.resolution is not None:
        from netcheck.checks.network import judge_resolution

        _status, _code, text = judge_resolution(ex.resolution, ex.families)
        out.append(outcome("dns.resolution", text, {"resolution": ex.resolution.to_json(),
                                                    "cached": ex.cached}, ex.dns_ms))
    connects = ex.connects or _request_connect(ex)
    if connects:
        from netcheck.checks.transport import judge_connects

        judged = [r for r in connects if r.address in ex.judged] or connects
        rtts = [r.rtt_ms for r in judged if r.handshake and r.rtt_ms is not None]
        out.append(outcome("transport.tcp", judge_connects(judged).summary, {
            "port": ex.target.port, "connects": [r.to_json() for r in connects],
            "working": [r.address for r in connects if r.handshake],
            "failing": [r.address for r in connects if not r.handshake],
            **({"rtt_ms": round(min(rtts), 3)} if rtts else {})}, min(rtts or [0.0])))
    tls = tls_result(ex)
    if tls is not None:
        out += _tls_outcomes(tls, outcome)
    if ex.http is not None:
        out.append(_http_outcome(ex.http, outcome))
    return out


def _request_connect(ex: Exchange) -> list[TcpResult]:
    """The HTTP request's own connect to the target, as the transport rung records one."""
    from netcheck.probes.tcp import TcpResult

    hop = ex.http.hops[0] if ex.http is not None and ex.http.hops else None
    if hop is None or hop.address is None or hop.connect_ms is None or hop.proxy:
        return []
    return [TcpResult(hop.address, hop.port or ex.target.port, "open", rtt_ms=hop.connect_ms)]


def _tls_outcomes(tls: TlsResult, outcome: Callable[..., Optional[CheckOutcome]]
                  ) -> list[Optional[CheckOutcome]]:
    from netcheck.checks.presentation import _day, _endpoint, short_name
    from netcheck.i18n import _, ngettext

    cert = tls.certificate
    assert cert is not None
    alpn = f", ALPN {tls.alpn}" if tls.alpn else ""
    text = _("{version} {cipher}{alpn} with {endpoint} in {ms} ms").format(
        version=tls.version, cipher=tls.cipher, alpn=alpn, endpoint=_endpoint(tls),
        ms=f"{tls.handshake_ms or 0:.1f}")
    evidence = {"address": tls.address, "port": tls.port, "sni": tls.server_name,
                "version": tls.version, "cipher": tls.cipher, "certificate": cert.brief()}
    return [outcome("tls.handshake", text, evidence, tls.handshake_ms or 0.0),
            outcome("tls.certificate", ngettext(
                "{subject} (issued by '{issuer}') valid until {date}, {n} days left",
                "{subject} (issued by '{issuer}') valid until {date}, {n} days left",
                cert.days_left).format(subject=short_name(cert.subject),
                                       issuer=short_name(cert.issuer),
                                       date=_day(cert.not_after), n=cert.days_left),
                    {**cert.to_json(), "chain": [c.brief() for c in tls.chain]})]


def _http_outcome(r: HttpResult, outcome: Callable[..., Optional[CheckOutcome]]
                  ) -> Optional[CheckOutcome]:
    from netcheck.checks.application import _chain_text, _size, _status_text
    from netcheck.i18n import _

    timings = _timings(r)
    total = sum(h.total_ms or 0 for h in r.hops)
    via = " " + _("via proxy {proxy}").format(proxy=r.proxy) if r.proxy else ""
    text = _("{url} answers {status}{redirects}{via}: {size} in {ms} ms").format(
        url=r.final_url or r.url, status=_status_text(r), redirects=_chain_text(r), via=via,
        size=_size(r.size), ms=f"{total:.0f}")
    if r.server:
        text += f", Server: {r.server}"
    evidence = r.to_json()
    evidence["timings"] = timings
    evidence["chain"] = [hop.wget_line() for hop in r.hops]
    return outcome("http.response", text, evidence, total)
