"""The netcheck/1 JSON document: exactly one document on stdout, whatever happened.

Scripts parse stdout blindly, so even bad input and internal errors come out as a
valid netcheck/1 document (verdict ``unknown`` plus an ``error`` key), never as a
traceback or a bare message.
"""

from __future__ import annotations

import json
import socket
from datetime import datetime, timezone
from typing import Any

from netcheck.model import Report, Verdict


def render_json(report: Report) -> str:
    """Return the report as one netcheck/1 JSON document (indented, UTF-8 text kept as is)."""
    return json.dumps(report.to_json(), indent=2, ensure_ascii=False)


def error_report(input_text: str, message: str, mode: str = "diagnose") -> Report:
    """A Report for a run that could not happen: verdict unknown, no checks, the error kept."""
    from netcheck import __version__
    from netcheck.facts import has_net_raw

    try:
        hostname = socket.gethostname()
    except OSError:  # the error document must come out even on a broken host
        hostname = ""
    return Report(
        mode=mode,
        target={"input": input_text, "scheme": None, "host": None, "port": None,
                "addresses": []},
        host={"hostname": hostname, "privileged": has_net_raw(), "egress_interface": None},
        verdict=Verdict.UNKNOWN,
        root_cause=None,
        checks=[],
        started_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        duration_ms=0.0,
        version=__version__,
        error=message,
    )


def error_document(input_text: str, message: str, mode: str = "diagnose") -> dict[str, Any]:
    """A valid netcheck/1 document for bad input or an internal error (has an ``error`` key)."""
    return error_report(input_text, message, mode).to_json()
