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

The package, by concern (each module imports only those before it): ``probe`` (the exchange:
Exchange, why_no_exchange, families_for, exchange), ``judge`` (Health, healthy, tls_result),
``metrics`` (blackbox's metrics: probe_values, extra_families, exposition), ``document``
(report: the netcheck/1 document). Every name importable from ``netcheck.fastprobe`` before
the split is re-exported here.
"""

from __future__ import annotations

# isort: off
from netcheck.fastprobe.probe import (
    CERT_CACHE_SECONDS,
    EXCHANGE_SCHEMES,
    LADDER_CHOICES,
    MAX_ADDRESSES,
    WATCH_FLOOR,
    Exchange,
    exchange,
    families_for,
    why_no_exchange,
)
from netcheck.fastprobe.judge import Health, healthy, tls_result
from netcheck.fastprobe.metrics import (
    HTTP_PHASES,
    HTTP_PHASES_HELP,
    LADDER_HELP,
    REDIRECTS_HELP,
    earliest_expiry,
    exposition,
    extra_families,
    http_phases,
    probe_values,
)
from netcheck.fastprobe.document import report
# isort: on

# Every public name the module had before it became a package.
__all__ = [
    "CERT_CACHE_SECONDS", "EXCHANGE_SCHEMES", "HTTP_PHASES", "HTTP_PHASES_HELP", "LADDER_CHOICES",
    "LADDER_HELP", "MAX_ADDRESSES", "REDIRECTS_HELP", "WATCH_FLOOR", "Exchange", "Health",
    "earliest_expiry", "exchange", "exposition", "extra_families", "families_for", "healthy",
    "http_phases", "probe_values", "report", "tls_result", "why_no_exchange",
]
