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


def report_from_json(doc: dict[str, Any]) -> Report:
    """The Report a netcheck/1 document was made from, to render it again (another format,
    another language for what the renderer itself says).

    What the checks wrote (summaries, hints) stays in the language of the run; the words
    of the renderer (titles, rungs, verdicts, "blocked by") follow the language in effect.
    ``root_cause.location`` and the request id are not read back.
    """
    from netcheck.model import CheckOutcome, Hint, Layer, Result, Status

    def hint_of(value: Any) -> Optional[Hint]:
        if not isinstance(value, dict):
            return None
        return Hint(str(value.get("text") or ""), [str(c) for c in value.get("commands") or []],
                    value.get("docs"))

    checks = [CheckOutcome(
        str(c["id"]), Layer(int(c["layer"])), str(c.get("title") or c["id"]),
        Result(Status(c["status"]), str(c.get("summary") or ""), code=c.get("code"),
               evidence=dict(c.get("evidence") or {}), hint=hint_of(c.get("hint")),
               blocked_by=c.get("blocked_by")),
        float(c.get("duration_ms") or 0.0)) for c in doc.get("checks") or []]
    root_doc = doc.get("root_cause")
    root = None
    if isinstance(root_doc, dict):
        root = next((c for c in checks if c.id == root_doc.get("check")), None)
    return Report(mode=str(doc.get("mode") or "diagnose"), target=dict(doc.get("target") or {}),
                  host=dict(doc.get("host") or {}), verdict=Verdict(doc["verdict"]),
                  root_cause=root, checks=checks, started_at=str(doc.get("started_at") or ""),
                  duration_ms=float(doc.get("duration_ms") or 0.0),
                  version=str((doc.get("tool") or {}).get("version") or ""),
                  error=doc.get("error"))
