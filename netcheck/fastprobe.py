"""The exchange alone, as blackbox_exporter does it: the first phase of a monitoring probe.

A healthy target needs no ladder: name → connect → TLS → request, timed phase by phase, says
"it works" and gives the numbers a dashboard wants. Only when the exchange fails, or something
in it warrants a warning, is the ladder worth its cost (:func:`netcheck.runner.diagnose`):
that is what ``netcheck serve`` and ``netcheck batch --ladder on-failure`` do.

The exchange reuses the probes the ladder's rungs use — :func:`netcheck.probes.dns.
resolve_like_system` (through the :class:`~netcheck.hoststate.HostState`'s TTL cache),
:func:`netcheck.probes.tcp.connect` (a TCP connect watched for a reset before any byte: a lost
SYN costs the kernel's one-second resend, nothing more), :func:`netcheck.probes.http.fetch`
(every hop through the caller's hop policy, the exporter's allow-list) — and
:func:`healthy` decides from their results with the rungs' own judgements
(``judge_resolution``, ``judge_connects``, ``certificate_problems``) and the HTTP rung's rule
of a good answer. It never judges a failure: a failure is the ladder's to explain.

Only ``tcp://``, ``http://`` and ``https://`` targets have an exchange here; the others (mail,
SSH and DNS greetings, STARTTLS) always get the ladder (:func:`why_no_exchange`).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from netcheck.facts import Facts
    from netcheck.hoststate import HostState
    from netcheck.model import CheckOutcome, Report
    from netcheck.probes.dns import Resolution
    from netcheck.probes.http import HttpResult
    from netcheck.probes.tcp import TcpResult
    from netcheck.probes.tls import CertSummary, TlsResult
    from netcheck.registry import Check
    from netcheck.target import Target

EXCHANGE_SCHEMES = ("tcp", "http", "https")
LADDER_CHOICES = ("on-failure", "always")
MAX_ADDRESSES = 8  # as the transport rung: a name with more is a pool
# A new connection is watched four handshake round trips for a reset before any byte, as
# the transport rung does, but at least this long (the rung: 15 ms): a reset from accept()
# comes one round trip after the handshake; a later one, after a slow check on the server, is
# the ladder's to find.
WATCH_FLOOR = 0.005
# blackbox_exporter's names for the HTTP phases (probe_http_duration_seconds{phase}), from the
# HTTP probe's per-hop timings summed over the redirects.
HTTP_PHASES = (("resolve", "dns_ms"), ("connect", "connect_ms"), ("tls", "tls_ms"),
               ("processing", "ttfb_ms"), ("transfer", "transfer_ms"))
HTTP_PHASES_HELP = "Duration of the HTTP request by phase, summed over all redirects"
REDIRECTS_HELP = "The number of redirects"
LADDER_HELP = ("1 when the diagnosis ladder ran (the exchange failed or warned, or the module "
               "asks for it), 0 when the exchange alone answered")
CERT_CACHE_SECONDS = 3600.0  # a parsed certificate is reused this long (days_left moves daily)
_MAX_CERTS = 4096


def why_no_exchange(target: Target, expect: str = "open", only: tuple[str, ...] = (),
                    ladder: str = "on-failure") -> Optional[str]:
    """Why this probe goes straight to the ladder, or None when the exchange comes first.

    ``ladder = "always"`` asks for it; ``expect = "closed"`` is a judgement the ladder's
    transport rung turns around; ``only`` is a ladder the module already narrowed; schemes
    other than tcp, http and https have their greeting or STARTTLS judged by the ladder.
    """
    if ladder == "always":
        return "the module asks for the ladder (ladder = \"always\")"
    if expect != "open":
        return f"expect = {expect!r} is judged by the ladder"
    if only:
        return "the module runs only the checks it names"
    if target.scheme not in EXCHANGE_SCHEMES:
        return f"{target.scheme}:// has no exchange of its own here"
    return None


@dataclass
class Exchange:
    """What the exchange met: the probes' own results, nothing judged yet."""

    target: Target
    families: tuple[int, ...]
    started_at: str = ""
    resolution: Optional[Resolution] = None
    cached: bool = False  # the resolution came from the cache (no question was sent)
    dns_ms: float = 0.0  # what this probe spent resolving (0 for a cached answer)
    addresses: list[str] = field(default_factory=list)  # every address the name gave
    judged: list[str] = field(default_factory=list)  # those of the families this host uses
    connects: list[TcpResult] = field(default_factory=list)
    http: Optional[HttpResult] = None
    chain: list[CertSummary] = field(default_factory=list)  # the target's, leaf first
    chain_error: Optional[str] = None
    duration_ms: float = 0.0

    @property
    def used_address(self) -> Optional[str]:
        """The address the exchange went through: the HTTP request's, else the first open."""
        if self.http is not None and self.http.hops and self.http.hops[0].address:
            return self.http.hops[0].address
        return next((r.address for r in self.connects if r.state == "open"), None)


@dataclass(frozen=True)
class Health:
    """:func:`healthy`'s answer: the exchange worked with nothing worth a warning, or why not.

    ``rung``: the check whose judgement stands in the way (``dns.resolution``,
    ``transport.tcp``, ``tls.certificate``, ``http.response``), empty when healthy.
    """

    ok: bool
    rung: str = ""
    why: str = ""


# -- the exchange ------------------------------------------------------------------------------

def families_for(family: Optional[int]) -> tuple[int, ...]:
    """``-4``/``-6`` (4, 6 or None) as the address families asked for."""
    if family == 4:
        return (socket.AF_INET,)
    if family == 6:
        return (socket.AF_INET6,)
    return (socket.AF_INET, socket.AF_INET6)


async def exchange(target: Target, state: HostState, *, timeout: float = 2.0,
                   deadline: float = 10.0, family: Optional[int] = None,
                   cafile: Optional[str] = None, cert: Optional[str] = None,
                   key: Optional[str] = None,
                   hop_refusal: Optional[Callable[[str, int, str, str], Optional[str]]] = None,
                   request_id: Optional[str] = None,
                   env: Optional[Mapping[str, str]] = None,
                   resolv_conf: str = "/etc/resolv.conf",
                   hosts_file: str = "/etc/hosts") -> Exchange:
    """Name → connect → TLS → request for one target, within ``deadline`` seconds.

    The caller bounds it too (``asyncio.wait_for``): what is here when that ends is what the
    ladder is for. ``hop_refusal`` is asked before every HTTP hop, the first included.
    """
    from netcheck import family as addrfam
    from netcheck.probes import tcp

    start = time.monotonic()
    ex = Exchange(target, families_for(family),
                  started_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    ip = target.ip
    if ip is not None:
        fam = socket.AF_INET if ip.version == 4 else socket.AF_INET6
        ex.addresses = [target.host] if fam in ex.families else []
    else:
        t0 = time.monotonic()
        ex.resolution, fresh = await state.resolve(target.host, ex.families, resolv_conf,
                                                   hosts_file, timeout)
        ex.cached = not fresh
        ex.dns_ms = (time.monotonic() - t0) * 1000 if fresh else 0.0
        ex.addresses = list(ex.resolution.addresses)
    if len(addrfam.families_of(ex.addresses)) > 1:
        # Which families this host uses (an IPv4-only host never tries an AAAA address): the
        # netlink snapshot is asked only when the answer could change something.
        ex.judged = addrfam.used(await state.facts(), ex.addresses)[:MAX_ADDRESSES]
    else:
        ex.judged = ex.addresses[:MAX_ADDRESSES]
    if not ex.judged:
        ex.duration_ms = (time.monotonic() - start) * 1000
        return ex
    both = len(addrfam.families_of(ex.judged)) > 1
    connects: Optional[asyncio.Future[list[TcpResult]]] = None
    if target.scheme == "tcp" and len(ex.judged) == 1:
        ex.connects = [await tcp.connect(ex.judged[0], target.port, timeout,
                                         watch_floor=WATCH_FLOOR)]
    elif target.scheme == "tcp" or both:
        # tcp://: the connects are the exchange. http(s) to a name of both families: every
        # address is connected to, so a family that fails shows (the transport rung's rule).
        connects = asyncio.gather(*(tcp.connect(a, target.port, timeout, watch_floor=WATCH_FLOOR)
                                    for a in ex.judged))
    try:
        if target.scheme in ("http", "https"):
            ex.http = await _fetch(ex, state, timeout=timeout,
                                   deadline=max(0.05, deadline - (time.monotonic() - start)),
                                   cafile=cafile, cert=cert, key=key, hop_refusal=hop_refusal,
                                   request_id=request_id, env=env, resolv_conf=resolv_conf,
                                   hosts_file=hosts_file)
        if connects is not None:
            ex.connects = list(await connects)
    finally:
        if connects is not None and not connects.done():
            connects.cancel()
    _read_chain(ex)
    ex.duration_ms = (time.monotonic() - start) * 1000
    return ex


async def _fetch(ex: Exchange, state: HostState, *, timeout: float, deadline: float,
                 cafile: Optional[str], cert: Optional[str], key: Optional[str],
                 hop_refusal: Optional[Callable[[str, int, str, str], Optional[str]]],
                 request_id: Optional[str], env: Optional[Mapping[str, str]],
                 resolv_conf: str, hosts_file: str) -> HttpResult:
    from netcheck.probes import http

    async def resolve(name: str) -> list[str]:  # redirects to other names: the same cache
        res, _fresh = await state.resolve(name, ex.families, resolv_conf, hosts_file, timeout)
        return list(res.addresses)

    return await http.fetch(http.parts_of(ex.target), address=ex.judged[0], timeout=timeout,
                            deadline=deadline, cafile=cafile, cert=cert, key=key,
                            request_id=request_id, env=os.environ if env is None else env,
                            resolve=resolve, dns_ms=ex.dns_ms if ex.resolution else None,
                            hop_refusal=hop_refusal)


_certs: dict[bytes, tuple[float, CertSummary]] = {}


def _summary(der: bytes) -> CertSummary:
    """A certificate parsed once an hour at most: monitoring sees the same chain every scrape."""
    from netcheck.probes.tls import summarize_der

    now = time.monotonic()
    cached = _certs.get(der)
    if cached is not None and now - cached[0] < CERT_CACHE_SECONDS:
        return cached[1]
    summary = summarize_der(der)
    if len(_certs) >= _MAX_CERTS:
        _certs.clear()
    _certs[der] = (now, summary)
    return summary


def _read_chain(ex: Exchange) -> None:
    """The target's certificates (its first hop's, as the TLS rungs judge them)."""
    if ex.target.scheme != "https" or ex.http is None or not ex.http.hops:
        return
    try:
        ex.chain = [_summary(der) for der in ex.http.hops[0].peer_chain]
    except Exception as exc:  # odd fields in a certificate: the ladder reads it properly
        ex.chain_error = f"{type(exc).__name__}: {exc}"


# -- the judgement -----------------------------------------------------------------------------

def tls_result(ex: Exchange) -> Optional[TlsResult]:
    """The first hop's TLS as the TLS rungs see a handshake: completed and verified (the
    request could not have been made otherwise), with the chain the server sent."""
    from netcheck.probes.tls import TlsResult

    if ex.http is None or not ex.http.hops or not ex.chain:
        return None
    hop = ex.http.hops[0]
    if hop.tls is None or hop.address is None:
        return None
    return TlsResult(hop.address, hop.port or ex.target.port,
                     ex.target.host if ex.target.is_name else None, state="ok",
                     version=hop.tls.get("version"), cipher=hop.tls.get("cipher"),
                     alpn=hop.tls.get("alpn"), connect_ms=hop.connect_ms,
                     handshake_ms=hop.tls_ms, certificate=ex.chain[0], chain=list(ex.chain),
                     verified=True, handshakes=1)


def healthy(ex: Exchange) -> Health:
    """Whether the exchange worked with nothing in it worth a warning: facts in, answer out.

    Each part is judged by the rung that owns it: the resolution by ``judge_resolution``
    (a slow resolver, a first name server that fails are warnings), the connects by
    ``judge_connects`` (every family the host uses must complete its handshake), and for
    tcp:// no connection may be reset or broken after the handshake (the application rung's
    finding); the certificate by ``certificate_problems`` (nothing, not even "expires
    soon"); the HTTP answer as the HTTP rung takes it: a final status below 400, the body
    not stalled. Anything else — a refused hop included — is the ladder's.
    """
    from netcheck.model import Status

    target = ex.target
    if ex.resolution is not None:
        from netcheck.checks.network import judge_resolution

        status, code, text = judge_resolution(ex.resolution, ex.families)
        if status is not Status.PASS:
            return Health(False, "dns.resolution", f"{code or status.value}: {text}")
    if not ex.judged:
        return Health(False, "dns.resolution", "no address of the families asked for")
    if target.scheme == "tcp" or ex.connects:
        from netcheck.checks.transport import judge_connects

        judged = [r for r in ex.connects if r.address in ex.judged]
        if not judged:
            return Health(False, "transport.tcp", "no connect finished")
        verdict = judge_connects(judged)
        if verdict.status is not Status.PASS:
            return Health(False, "transport.tcp", f"{verdict.code}: {verdict.summary}")
        if target.scheme == "tcp":
            troubled = [r for r in judged if r.state != "open" or r.after in ("reset", "error")]
            if troubled:
                r = troubled[0]
                return Health(False, "app.banner", f"{r.address}: {r.state}, then {r.after}")
    if target.scheme in ("http", "https"):
        r = ex.http
        if r is None:
            return Health(False, "http.response", "no request was made")
        if r.outcome != "ok" or r.status is None:
            return Health(False, "http.response", f"{r.outcome}: {r.detail}")
        if r.status >= 400 or (r.hops and r.hops[-1].from_proxy):
            return Health(False, "http.response", f"status {r.status}")
    if target.scheme == "https":
        from netcheck.checks.presentation import certificate_problems

        tls = tls_result(ex)
        if tls is None:
            return Health(False, "tls.certificate", ex.chain_error or "no certificate read")
        problems = certificate_problems(tls, target.host)
        if problems:
            code, text = problems[0]
            return Health(False, "tls.certificate", f"{code}: {text}")
    return Health(True)


# -- what it shows -----------------------------------------------------------------------------

def http_phases(timings: Mapping[str, Any]) -> dict[str, float]:
    """blackbox's ``probe_http_duration_seconds`` phases (seconds) from summed hop timings
    (``dns_ms``, ``connect_ms``, ``tls_ms``, ``ttfb_ms``, ``transfer_ms``)."""
    out = {}
    for phase, key in HTTP_PHASES:
        value = timings.get(key)
        out[phase] = round(float(value) / 1000, 6) if isinstance(value, (int, float)) else 0.0
    return out


def _timings(r: HttpResult) -> dict[str, float]:
    from netcheck.checks.application import _timings_sum

    return _timings_sum(r)


def earliest_expiry(chain: list[CertSummary]) -> Optional[float]:
    """``probe_ssl_earliest_cert_expiry``: the earliest notAfter of the chain sent, Unix time."""
    stamps = []
    for cert in chain:
        try:
            when = datetime.strptime(cert.not_after, "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            continue
        stamps.append(when.replace(tzinfo=timezone.utc).timestamp())
    return min(stamps) if stamps else None


def probe_values(ex: Exchange) -> Any:
    """The exchange as the numbers every netcheck exposition carries (probe_success 1)."""
    from netcheck.render.prometheus import ProbeValues

    fam = None
    used = ex.used_address
    if used is not None:
        fam = 6 if ":" in used and not used.startswith("::ffff:") else 4
    tcp_rtt: Optional[float] = None
    open_ = [r.rtt_ms for r in ex.connects if r.state == "open" and r.rtt_ms is not None]
    if open_:
        tcp_rtt = min(open_) / 1000
    elif ex.http is not None and ex.http.hops and ex.http.hops[0].connect_ms is not None:
        tcp_rtt = ex.http.hops[0].connect_ms / 1000
    tls = ex.http.hops[-1].tls if ex.http is not None and ex.http.hops else None
    return ProbeValues(
        success=True, duration=ex.duration_ms / 1000, verdict="ok",
        dns_lookup=ex.dns_ms / 1000, ip_protocol=fam,
        http_status=ex.http.status if ex.http is not None else None,
        ssl_expiry=earliest_expiry(ex.chain),
        tls_version=str(tls["version"]) if tls and tls.get("version") else None,
        tcp_connect=tcp_rtt, scheme=ex.target.scheme)


def extra_families(http_timings: Optional[Mapping[str, Any]], ladder: bool,
                   redirects: Optional[int] = None) -> list[Metric]:
    """What both answers add to the common exposition: blackbox's HTTP phases and
    redirect count (http/https targets), and whether the ladder ran."""
    from prometheus_client.core import GaugeMetricFamily

    out: list[Metric] = []
    if http_timings is not None:
        phases = GaugeMetricFamily("probe_http_duration_seconds", HTTP_PHASES_HELP,
                                   labels=["phase"])
        for phase, seconds in http_phases(http_timings).items():
            phases.add_metric([phase], seconds)
        out.append(phases)
    if redirects is not None:
        out.append(GaugeMetricFamily("probe_http_redirects", REDIRECTS_HELP,
                                     value=float(redirects)))
    out.append(GaugeMetricFamily("netcheck_ladder", LADDER_HELP, value=1.0 if ladder else 0.0))
    return out


def exposition(ex: Exchange) -> str:
    """The healthy exchange as the exporter's answer: blackbox's metrics, probe_success 1.

    The same families, names and help texts as the ladder's answer (render.prometheus and
    :func:`extra_families`), written straight as text: building them through
    prometheus_client costs ten times the probe itself. Only gauges with a value are written.
    """
    from prometheus_client.utils import floatToGoString as number

    from netcheck.model import Verdict
    from netcheck.render.prometheus import METRICS

    v = probe_values(ex)
    lines: list[str] = []

    def gauge(name: str, value: Optional[float], help_text: str = "",
              samples: Optional[list[tuple[str, float]]] = None) -> None:
        if value is None and not samples:
            return
        lines.append(f"# HELP {name} {help_text or METRICS[name]}")
        lines.append(f"# TYPE {name} gauge")
        for labels, sample in samples or [("", value)]:  # type: ignore[list-item]
            lines.append(f"{name}{labels} {number(sample)}")

    gauge("probe_success", 1.0)
    gauge("probe_duration_seconds", round(v.duration, 6))
    gauge("probe_dns_lookup_time_seconds", round(v.dns_lookup or 0.0, 6))
    gauge("probe_ip_protocol", v.ip_protocol)
    if v.scheme in ("http", "https"):
        gauge("probe_http_status_code", float(v.http_status or 0))
    gauge("probe_ssl_earliest_cert_expiry", v.ssl_expiry)
    if v.tls_version is not None:
        gauge("probe_tls_version_info", None, samples=[
            (f'{{version="{_label(v.tls_version)}"}}', 1.0)])
    gauge("netcheck_tcp_connect_seconds",
          round(v.tcp_connect, 6) if v.tcp_connect is not None else None)
    gauge("netcheck_verdict", None, samples=[
        (f'{{verdict="{verdict.value}"}}', 1.0 if verdict is Verdict.OK else 0.0)
        for verdict in Verdict])
    http = ex.http
    if http is not None:
        phases = http_phases(_timings(http))
        gauge("probe_http_duration_seconds", None, HTTP_PHASES_HELP,
              [(f'{{phase="{phase}"}}', seconds) for phase, seconds in phases.items()])
        gauge("probe_http_redirects", float(http.redirects), REDIRECTS_HELP)
    gauge("netcheck_ladder", 0.0, LADDER_HELP)
    return "\n".join(lines) + "\n"


def _label(text: str) -> str:
    """A label value from outside (the TLS version a server sent): masked, escaped."""
    from netcheck.redact import shown

    return shown(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


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

