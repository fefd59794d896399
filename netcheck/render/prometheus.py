"""Prometheus text exposition of netcheck reports, through prometheus_client.

Names follow blackbox_exporter where the meaning is the same, so existing dashboards and
alerts keep working (``probe_success``, ``probe_duration_seconds``,
``probe_dns_lookup_time_seconds``, ``probe_ip_protocol``, ``probe_http_status_code``,
``probe_ssl_earliest_cert_expiry``, ``probe_tls_version_info``,
``probe_icmp_duration_seconds``); what blackbox cannot say has a ``netcheck_`` name:
``netcheck_root_cause{code,layer,check} 1``, ``netcheck_layer_status{layer,name}``,
``netcheck_check_status{check,layer}``, ``netcheck_verdict{verdict}``.

Status values (layer and check gauges) follow the plugin exit codes: 0 pass, 1 warn,
2 fail, 3 error, and -1 for "not checked" (skipped, blocked by a lower failure, or no check
at that layer). The full list, with meanings, is in docs/monitoring.md.

:func:`probe_values` boils a report down to numbers (small enough to keep for a hundred
thousand batch targets); :func:`families` turns those into metric families.
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Optional, Sequence

from netcheck.model import Layer, Report, Status, Verdict
from netcheck.redact import shown

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

STATUS_VALUE = {Status.PASS: 0, Status.WARN: 1, Status.FAIL: 2, Status.ERROR: 3}
NOT_CHECKED = -1
_RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?Z$")

# name -> help text; the order is the exposition's.
METRICS: dict[str, str] = {
    "probe_success": "Whether the target works (netcheck verdict ok or degraded; with "
                     "expect closed, whether the port is shut)",
    "probe_duration_seconds": "How long the diagnosis took",
    "probe_dns_lookup_time_seconds": "How long the name resolution took (0 for an address)",
    "probe_ip_protocol": "IP family of the address used: 4 or 6",
    "probe_icmp_duration_seconds": "Echo round-trip time to the target",
    "probe_http_status_code": "Final HTTP status code (0 when no response)",
    "probe_ssl_earliest_cert_expiry": "Earliest expiry of the certificates sent, "
                                      "as a Unix timestamp",
    "probe_tls_version_info": "TLS version negotiated",
    "netcheck_tcp_connect_seconds": "TCP connect time to the port",
    "netcheck_verdict": "netcheck verdict of the run (1 for the verdict it reached)",
    "netcheck_root_cause": "The one finding that explains the others (present when not ok)",
    "netcheck_layer_status": "Worst status per OSI layer: 0 pass, 1 warn, 2 fail, 3 error, "
                             "-1 not checked",
    "netcheck_check_status": "Status per check: 0 pass, 1 warn, 2 fail, 3 error, "
                             "-1 skipped",
}


@dataclass(frozen=True)
class ProbeValues:
    """The numbers one report gives (what the metrics are made of)."""

    success: bool
    duration: float
    verdict: str
    dns_lookup: Optional[float] = None
    ip_protocol: Optional[int] = None
    icmp_rtt: Optional[float] = None
    http_status: Optional[int] = None
    ssl_expiry: Optional[float] = None
    tls_version: Optional[str] = None
    tcp_connect: Optional[float] = None
    root: Optional[tuple[str, int, str]] = None  # code, layer, check id
    layers: tuple[int, ...] = ()  # layers 1..7
    checks: tuple[tuple[str, int, int], ...] = ()  # id, layer, status value
    scheme: Optional[str] = None


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _timestamp(text: Any) -> Optional[float]:
    """RFC 3339 UTC (``2027-01-31T12:00:00Z``) as a Unix timestamp."""
    if not isinstance(text, str):
        return None
    match = _RFC3339.match(text)
    if not match:
        return None
    parts = tuple(int(x) for x in match.groups())
    try:
        return float(calendar.timegm((*parts, 0, 0, 0)))  # type: ignore[arg-type]
    except (OverflowError, ValueError):
        return None


def _evidence(report: Report, check_id: str) -> dict[str, Any]:
    for c in report.checks:
        if c.id == check_id and c.status is not Status.SKIP:
            return c.result.evidence
    return {}


def _family(address: Any) -> Optional[int]:
    if not isinstance(address, str) or not address:
        return None
    if address.startswith("::ffff:") and "." in address:
        return 4
    return 6 if ":" in address else 4


def _ip_protocol(report: Report) -> Optional[int]:
    """The family of the address the connection used (else the first address resolved)."""
    for conn in _evidence(report, "transport.tcp").get("connects") or []:
        if isinstance(conn, dict) and conn.get("state") == "open":
            return _family(conn.get("address"))
    addresses = report.target.get("addresses") or []
    return _family(addresses[0]) if addresses else None


def _ssl_expiry(report: Report) -> Optional[float]:
    ev = _evidence(report, "tls.certificate")
    dates = [ev.get("not_after")] + [c.get("not_after") for c in ev.get("chain") or []
                                     if isinstance(c, dict)]
    if not ev:  # the handshake check carries the leaf when the certificate check did not run
        cert = _evidence(report, "tls.handshake").get("certificate")
        dates = [cert.get("not_after")] if isinstance(cert, dict) else []
    stamps = [t for t in (_timestamp(d) for d in dates) if t is not None]
    return min(stamps) if stamps else None


def probe_values(report: Report) -> ProbeValues:
    """Boil a report down to the numbers the metrics carry."""
    dns = _evidence(report, "dns.resolution").get("resolution") or {}
    dns_ms = _number(dns.get("duration_ms")) if isinstance(dns, dict) else None
    rtt = _number(_evidence(report, "network.target").get("rtt_ms"))
    tcp_rtt = _number(_evidence(report, "transport.tcp").get("rtt_ms"))
    http = _evidence(report, "http.response")
    status = http.get("status")
    tls = _evidence(report, "tls.handshake").get("version")
    worst: dict[int, int] = {}
    checks = []
    for c in report.checks:
        value = STATUS_VALUE.get(c.status, NOT_CHECKED)
        checks.append((c.id, int(c.layer), value))
        if value != NOT_CHECKED:
            worst[int(c.layer)] = max(worst.get(int(c.layer), 0), value)
    rc = report.root_cause
    return ProbeValues(
        success=report.verdict in (Verdict.OK, Verdict.DEGRADED),
        duration=report.duration_ms / 1000,
        verdict=report.verdict.value,
        dns_lookup=(dns_ms / 1000) if dns_ms is not None else None,
        ip_protocol=_ip_protocol(report),
        icmp_rtt=(rtt / 1000) if rtt is not None else None,
        http_status=status if isinstance(status, int) and not isinstance(status, bool) else None,
        ssl_expiry=_ssl_expiry(report),
        tls_version=tls if isinstance(tls, str) else None,
        tcp_connect=(tcp_rtt / 1000) if tcp_rtt is not None else None,
        root=(rc.result.code or rc.status.value.upper(), int(rc.layer), rc.id) if rc else None,
        layers=tuple(worst.get(int(layer), NOT_CHECKED) for layer in Layer),
        checks=tuple(checks),
        scheme=report.target.get("scheme"),
    )


def families(items: Iterable[tuple[dict[str, str], ProbeValues]],
             label_names: Sequence[str] = ()) -> list[Metric]:
    """Metric families for any number of probes; each item's labels name it (batch: ``name``,
    ``target``; the exporter: none, Prometheus adds ``instance``).

    Label values that come from outside (names, targets, codes and check ids of plugins, the
    TLS version a server sent) are masked and their control characters escaped; the
    exposition's own escaping (``\\``, ``"``, newline) is prometheus_client's.
    """
    from prometheus_client.core import GaugeMetricFamily

    base = list(label_names)

    def gauge(name: str, extra: Sequence[str] = ()) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, METRICS[name], labels=[*base, *extra])

    fam = {name: gauge(name) for name in (
        "probe_success", "probe_duration_seconds", "probe_dns_lookup_time_seconds",
        "probe_ip_protocol", "probe_icmp_duration_seconds", "probe_http_status_code",
        "probe_ssl_earliest_cert_expiry", "netcheck_tcp_connect_seconds")}
    fam["probe_tls_version_info"] = gauge("probe_tls_version_info", ["version"])
    fam["netcheck_verdict"] = gauge("netcheck_verdict", ["verdict"])
    fam["netcheck_root_cause"] = gauge("netcheck_root_cause", ["code", "layer", "check"])
    fam["netcheck_layer_status"] = gauge("netcheck_layer_status", ["layer", "name"])
    fam["netcheck_check_status"] = gauge("netcheck_check_status", ["check", "layer"])
    for labels, v in items:
        values = [shown(labels.get(n, "")) for n in base]
        fam["probe_success"].add_metric(values, 1.0 if v.success else 0.0)
        fam["probe_duration_seconds"].add_metric(values, round(v.duration, 6))
        fam["probe_dns_lookup_time_seconds"].add_metric(values, round(v.dns_lookup or 0.0, 6))
        if v.ip_protocol is not None:
            fam["probe_ip_protocol"].add_metric(values, float(v.ip_protocol))
        if v.icmp_rtt is not None:
            fam["probe_icmp_duration_seconds"].add_metric(values, round(v.icmp_rtt, 6))
        if v.scheme in ("http", "https"):  # blackbox: 0 when no response came
            fam["probe_http_status_code"].add_metric(values, float(v.http_status or 0))
        if v.ssl_expiry is not None:
            fam["probe_ssl_earliest_cert_expiry"].add_metric(values, v.ssl_expiry)
        if v.tls_version is not None:
            fam["probe_tls_version_info"].add_metric([*values, shown(v.tls_version)], 1.0)
        if v.tcp_connect is not None:
            fam["netcheck_tcp_connect_seconds"].add_metric(values, round(v.tcp_connect, 6))
        for verdict in Verdict:
            fam["netcheck_verdict"].add_metric([*values, verdict.value],
                                               1.0 if v.verdict == verdict.value else 0.0)
        if v.root is not None:
            code, layer, check = v.root
            fam["netcheck_root_cause"].add_metric([*values, shown(code), str(layer),
                                                   shown(check)], 1.0)
        for layer, status in zip(Layer, v.layers):
            fam["netcheck_layer_status"].add_metric(
                [*values, str(int(layer)), layer.name.lower()], float(status))
        for check, layer_no, status in v.checks:
            fam["netcheck_check_status"].add_metric([*values, shown(check), str(layer_no)],
                                                    float(status))
    return list(fam.values())


class _Static:
    """A collector that hands out metric families already built (one exposition)."""

    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return iter(self.metrics)


def exposition(metrics: list[Metric]) -> str:
    """Metric families as Prometheus text exposition (format 0.0.4)."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Static(metrics))  # type: ignore[arg-type]
    return generate_latest(registry).decode("utf-8")


def content_type() -> str:
    """The Content-Type for :func:`exposition`'s text."""
    from prometheus_client import exposition as expo

    return getattr(expo, "CONTENT_TYPE_PLAIN_0_0_4", expo.CONTENT_TYPE_LATEST)


def render_prometheus(report: Report) -> str:
    """One report as an exposition, as the exporter answers ``/probe``."""
    return exposition(families([({}, probe_values(report))]))


def batch_metrics(items: Iterable[tuple[dict[str, str], ProbeValues]], summary: dict[str, Any],
                  ) -> list[Metric]:
    """A batch's metrics: each probe labelled ``name`` and ``target``, plus the run's totals."""
    from prometheus_client.core import GaugeMetricFamily

    metrics = families(items, ("name", "target"))
    counts = GaugeMetricFamily("netcheck_batch_targets", "Targets of the batch by verdict",
                               labels=["verdict"])
    for verdict in Verdict:
        counts.add_metric([verdict.value], float(summary.get(verdict.value, 0)))
    duration = GaugeMetricFamily("netcheck_batch_duration_seconds", "How long the batch took",
                                 value=round(float(summary.get("duration_ms", 0)) / 1000, 3))
    finished = GaugeMetricFamily("netcheck_batch_last_run_timestamp_seconds",
                                 "When the batch finished, as a Unix timestamp",
                                 value=round(time.time(), 3))
    return [*metrics, counts, duration, finished]
