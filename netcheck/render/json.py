"""The netcheck/1 JSON document: exactly one document on stdout, whatever happened.

Scripts parse stdout blindly, so even bad input and internal errors come out as a
valid netcheck/1 document (verdict ``unknown`` plus an ``error`` key), never as a
traceback or a bare message. Every string in it is masked (:func:`netcheck.redact.mask_value`):
a password in a URL is ``***`` wherever it would appear — target, evidence, error. Control
characters need nothing more: JSON escapes them.
"""

from __future__ import annotations

import json
import socket
from datetime import datetime, timezone
from typing import Any, Optional

from netcheck.model import Report, Verdict
from netcheck.redact import mask_secrets, mask_value


def report_document(report: Report) -> dict[str, Any]:
    """The report's netcheck/1 document with every secret masked (what may be printed)."""
    return mask_value(report.to_json())  # type: ignore[no-any-return]


def render_json(report: Report, indent: Optional[int] = 2) -> str:
    """Return the report as one netcheck/1 JSON document (UTF-8 text kept as is);
    ``indent=None`` gives the one-line form of ndjson."""
    return json.dumps(report_document(report), indent=indent, ensure_ascii=False)


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
        target={"input": mask_secrets(input_text), "scheme": None, "host": None, "port": None,
                "addresses": []},
        host={"hostname": hostname, "privileged": has_net_raw(), "egress_interface": None},
        verdict=Verdict.UNKNOWN,
        root_cause=None,
        checks=[],
        started_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        duration_ms=0.0,
        version=__version__,
        error=mask_secrets(message),
    )


def error_document(input_text: str, message: str, mode: str = "diagnose") -> dict[str, Any]:
    """A valid netcheck/1 document for bad input or an internal error (has an ``error`` key)."""
    return error_report(input_text, message, mode).to_json()
