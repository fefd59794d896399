"""What a probe's answer holds: the ladder's report as metrics (:func:`ladder_exposition`), and
the JSON document without this host's socket table and process names
(:func:`without_local_details`); the content types of the answers.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from netcheck.model import Report

JSON_TYPE = "application/json; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"


_OWNER = re.compile(r" \(.*, pid \d+\)")
# Evidence keys that describe this host rather than the target: its other connections and
# the processes behind them. The exporter's JSON leaves them out unless
# --expose-local-details allows them.
LOCAL_DETAIL_KEYS = frozenset({"sockets", "pid", "process", "processes", "owners"})


def without_local_details(doc: dict[str, Any]) -> dict[str, Any]:
    """The report document with this host's socket table and process names left out."""
    for check in doc.get("checks") or []:
        evidence = check.get("evidence")
        if not isinstance(evidence, dict):
            continue
        names = _owner_names(evidence)
        kept = _strip_local(evidence)
        if kept != evidence:
            kept["hidden"] = "local details (netcheck serve --expose-local-details)"
            check["evidence"] = kept
        summary = check.get("summary")
        if isinstance(summary, str):
            summary = _OWNER.sub("", summary)
            if any(name in summary for name in names):
                summary = "details of this host's connections hidden"
            check["summary"] = summary
    return doc


def _owner_names(value: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("process", "name") and isinstance(item, str) and len(item) > 2:
                found.add(item)
            found |= _owner_names(item)
    elif isinstance(value, list):
        for item in value:
            found |= _owner_names(item)
    return found


def _strip_local(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_local(v) for k, v in value.items() if k not in LOCAL_DETAIL_KEYS}
    if isinstance(value, list):
        return [_strip_local(v) for v in value]
    return value


def ladder_exposition(report: Report) -> str:
    """The ladder's report as the exporter answers it: every netcheck metric of the report,
    blackbox's HTTP phases and redirects when the HTTP rung ran, and ``netcheck_ladder 1``."""
    from netcheck import fastprobe
    from netcheck.render import prometheus

    http = next((c.result.evidence for c in report.checks if c.id == "http.response"), None)
    timings = http.get("timings") if isinstance(http, dict) else None
    redirects = http.get("redirects") if isinstance(http, dict) else None
    metrics = prometheus.families([({}, prometheus.probe_values(report))])
    metrics += fastprobe.extra_families(
        timings if isinstance(timings, dict) else None, ladder=True,
        redirects=redirects if isinstance(redirects, int) else None)
    return prometheus.exposition(metrics)
