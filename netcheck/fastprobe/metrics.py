"""What a healthy exchange shows a monitoring system: blackbox_exporter's metrics, written
straight as text (:func:`exposition`), and the families both the exchange's and the ladder's
answers add (:func:`extra_families`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Mapping, Optional

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from netcheck.fastprobe.probe import Exchange
    from netcheck.probes.http import HttpResult
    from netcheck.probes.tls import CertSummary

# blackbox_exporter's names for the HTTP phases (probe_http_duration_seconds{phase}), from the
# HTTP probe's per-hop timings summed over the redirects.
HTTP_PHASES = (("resolve", "dns_ms"), ("connect", "connect_ms"), ("tls", "tls_ms"),
               ("processing", "ttfb_ms"), ("transfer", "transfer_ms"))
HTTP_PHASES_HELP = "Duration of the HTTP request by phase, summed over all redirects"
REDIRECTS_HELP = "The number of redirects"
LADDER_HELP = ("1 when the diagnosis ladder ran (the exchange failed or warned, or the module "
               "asks for it), 0 when the exchange alone answered")


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
