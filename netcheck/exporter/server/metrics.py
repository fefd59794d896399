"""The exporter's own metrics (``/metrics``): what it has done, what runs now, its limits.

:class:`ExporterMetrics` is the part of :class:`~netcheck.exporter.server.probing.Exporter`
that registers them — counters of probes, rejections, ladders and dropped connections, gauges
read live from the Exporter's state, the probe-duration histogram, in the order /metrics has
always listed them — and answers ``/metrics``.
The counting itself happens where the events are, in ``probing``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netcheck import __version__
from netcheck.exporter.connections import DROP_REASONS

if TYPE_CHECKING:
    from netcheck.exporter.config import Config
    from netcheck.hoststate import HostState


class ExporterMetrics:
    """The registry and the exporter's metrics; the gauges read the state an Exporter keeps."""

    # Kept by the Exporter; the gauges read them when scraped.
    exchanges: int
    state: HostState
    _probing: int
    _laddering: int
    _exchanging: int

    def _register_metrics(self, config: Config) -> None:
        from prometheus_client import (
            CollectorRegistry,
            gc_collector,
            platform_collector,
            process_collector,
        )

        self.registry = CollectorRegistry()
        process_collector.ProcessCollector(registry=self.registry)
        platform_collector.PlatformCollector(registry=self.registry)
        gc_collector.GCCollector(registry=self.registry)
        self._register_probe_metrics()
        self._register_serving_metrics(config)
        for reason in ("bad_request", "not_allowed", "busy"):
            self.rejections.labels(reason)
        for reason in DROP_REASONS:
            self.dropped.labels(reason)
        for reason in ("exchange", "slow", "module", "json"):
            self.ladders.labels(reason)
        self._exchange_healthy = self.exchange_results.labels("healthy")
        self._exchange_laddered = self.exchange_results.labels("ladder")
        # The children looked up once (labels() takes a lock and hashes every time).
        self._outcome = {(module, ok): self.probes.labels(module, "success" if ok else "failure")
                         for module in config.modules for ok in (True, False)}
        self._duration = {module: self.duration.labels(module) for module in config.modules}

    def _register_probe_metrics(self) -> None:
        """The probes: how many ran and how they ended, refused, laddered, running now.

        Registered in this order, then the serving metrics: /metrics lists them so.
        """
        from prometheus_client import Counter, Gauge

        registry = self.registry
        Gauge("netcheck_exporter_build_info", "netcheck version", ["version"],
              registry=registry).labels(__version__).set(1)
        self.probes = Counter("netcheck_exporter_probes", "Probes run, by module and result",
                              ["module", "result"], registry=registry)
        self.rejections = Counter("netcheck_exporter_rejections",
                                  "Probe requests refused before anything was sent, by reason",
                                  ["reason"], registry=registry)
        self.redirects_refused = Counter(
            "netcheck_exporter_redirects_refused",
            "Probes whose redirect led outside the allow-list (the hop was not requested)",
            registry=registry)
        Gauge("netcheck_exporter_probes_in_flight", "Probes running now",
              registry=registry).set_function(lambda: self._probing)
        self.ladders = Counter("netcheck_exporter_ladders",
                               "Diagnosis ladders run, by why: the exchange failed or warned "
                               "(exchange), it was slow (slow), the module asks for it "
                               "(module), format=json (json)", ["reason"],
                               registry=registry)
        self.exchange_results = Counter("netcheck_exporter_exchanges",
                                        "Exchanges (the first phase), by result",
                                        ["result"], registry=registry)
        Gauge("netcheck_exporter_ladders_in_flight", "Diagnosis ladders running now",
              registry=registry).set_function(lambda: self._laddering)
        Gauge("netcheck_exporter_exchanges_in_flight", "Exchanges running now",
              registry=registry).set_function(lambda: self._exchanging)
        Gauge("netcheck_exporter_exchange_limit", "Exchanges allowed at once (from the "
              "descriptor limit)", registry=registry).set(self.exchanges)

    def _register_serving_metrics(self, config: Config) -> None:
        """The host snapshots, the connections, the probes' durations, the limits."""
        from prometheus_client import Counter, Gauge, Histogram

        registry = self.registry
        Gauge("netcheck_exporter_host_snapshots", "Netlink snapshots of this host taken so far "
              "(shared by the probes of a few seconds)",
              registry=registry).set_function(lambda: self.state.facts_reads)
        self.connections = Gauge("netcheck_exporter_connections",
                                 "HTTP connections open now", registry=registry)
        self.dropped = Counter("netcheck_exporter_connections_dropped",
                               "HTTP connections closed without a probe answer, by reason",
                               ["reason"], registry=registry)
        self.duration = Histogram("netcheck_exporter_probe_duration_seconds",
                                  "How long probes took, by module", ["module"],
                                  buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5,
                                           10, 15, 30, 60),
                                  registry=registry)
        Gauge("netcheck_exporter_concurrency_limit", "Diagnosis ladders allowed at once",
              registry=registry).set(config.concurrency)
        Gauge("netcheck_exporter_allowed_entries", "Entries of the allow-list plus named targets",
              registry=registry).set(len(config.allow.networks) + len(config.allow.names)
                                     + len(config.allow.suffixes) + len(config.targets))

    def answer_metrics(self) -> tuple[int, str, bytes]:
        from prometheus_client import generate_latest

        from netcheck.render.prometheus import content_type

        return 200, content_type(), generate_latest(self.registry)
