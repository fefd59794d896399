"""The exporter's HTTP side: ``/probe`` answers one probe, ``/metrics`` shows the exporter.

As in blackbox_exporter's prober/handler.go, the handler owns everything around the probe:
it checks the request and the allow-list before anything is sent, sets the deadline (the
module's, shortened to Prometheus' scrape timeout, counted from when the request came in, so
time spent waiting is part of it), times the probe and counts the outcome.

A probe has two phases (:meth:`Exporter.probe`). First the exchange alone, as blackbox does
it (:mod:`netcheck.fastprobe`: name, connect, TLS, request): when it works with nothing
worth a warning, the answer is blackbox's metrics with ``probe_success 1`` at once. When it
fails or warns — or the module asks for ``ladder = "always"``, or the request for
``format=json`` — the diagnosis ladder runs (the same one ``netcheck diagnose`` runs) and its
root cause and hint are the answer. Both phases are coroutines on one event loop, with no
thread per request or per probe: exchanges are bounded by the descriptors they may use, the
ladder by ``concurrency`` (a few), so a flood of failing targets queues for the ladder while
healthy ones keep their answers. An exchange still running halfway through the deadline
starts the ladder beside it when a slot is free, so a silent target still gets its whole
diagnosis within the scrape. A request that cannot be answered in time is told 503.
What does not depend on the target (the netlink snapshot, firewall rules, socket tables, the
network manager, name resolutions) is read once for every probe of a few seconds
(:class:`netcheck.hoststate.HostState`). Every HTTP hop either phase requests — redirects
included — passes the same allow-list first (:meth:`Config.hop_refusal`).

Connections (a cap, a total deadline per request, bodies, one request per connection) are
:mod:`netcheck.exporter.connections`' business; a request reaches :class:`Handler` whole.
What comes from a request is logged and echoed only decoded and masked (:func:`outside_text`),
and ``format=json`` leaves this host's socket table and process names out unless
``--expose-local-details`` allows them.

The package, by concern: ``query`` (what a /probe query asks for, Rejected, text from a request
as it may be shown), ``answers`` (the ladder's report as metrics, the JSON without local
details), ``loop`` (the probes' event loop, how many exchanges at once), ``metrics`` (the
exporter's own metrics and /metrics, the Exporter's base), ``probing`` (the Exporter: the
request checked, its two phases, the counters), ``handler`` (Handler, Server, the
plain scrape's fast path, start). Every name is importable from ``netcheck.exporter.server`` as
before the split.
"""

from __future__ import annotations

from netcheck.exporter.server.answers import (
    JSON_TYPE,
    LOCAL_DETAIL_KEYS,
    TEXT_TYPE,
    ladder_exposition,
    without_local_details,
)
from netcheck.exporter.server.handler import (
    EXTRA_ANSWERS,
    MAX_PLAIN_HEADERS,
    SCRAPE_TIMEOUT_HEADER,
    Handler,
    Server,
    shown_request,
    start,
)
from netcheck.exporter.server.loop import (
    FDS_PER_EXCHANGE,
    MAX_EXCHANGES,
    MIN_EXCHANGES,
    ProbeLoop,
    T,
    exchange_limit,
)
from netcheck.exporter.server.probing import (
    GRACE,
    HEDGE_FRACTION,
    HEDGE_MIN,
    MAX_REMEMBERED_REQUESTS,
    MIN_DEADLINE,
    QUEUE_PER_SLOT,
    TIMEOUT_OFFSET,
    Exporter,
)
from netcheck.exporter.server.query import (
    MAX_QUERY_FIELDS,
    PARAMETERS,
    Rejected,
    outside_text,
    query_parameters,
)

# Every public name the module had before it became a package.
__all__ = [
    "EXTRA_ANSWERS", "Exporter", "FDS_PER_EXCHANGE", "GRACE", "HEDGE_FRACTION", "HEDGE_MIN",
    "Handler", "JSON_TYPE", "LOCAL_DETAIL_KEYS", "MAX_EXCHANGES", "MAX_PLAIN_HEADERS",
    "MAX_QUERY_FIELDS", "MAX_REMEMBERED_REQUESTS", "MIN_DEADLINE", "MIN_EXCHANGES", "PARAMETERS",
    "ProbeLoop", "QUEUE_PER_SLOT", "Rejected", "SCRAPE_TIMEOUT_HEADER", "Server", "T",
    "TEXT_TYPE", "TIMEOUT_OFFSET", "exchange_limit", "ladder_exposition", "outside_text",
    "query_parameters", "shown_request", "start", "without_local_details",
]
