"""What a ``/probe`` query asks for: its parameters (``target``, ``module``, ``format``, each
at most once), the :class:`Rejected` request, and text from a request as it may be logged or
echoed (decoded, masked, escaped: :func:`outside_text`).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, parse_qsl, quote, unquote

from netcheck.redact import shown

MAX_QUERY_FIELDS = 16
PARAMETERS = ("target", "module", "format")


class Rejected(Exception):
    """A request that must not be probed: the HTTP status and the reason."""

    def __init__(self, status: int, reason: str, kind: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.kind = kind  # bad_request | not_allowed | busy: the rejection counter's label


def outside_text(text: str, limit: int = 200) -> str:
    """Text from a request as it may be logged or echoed back.

    Percent-encoding is undone (a second layer must not hide a password from the mask),
    white space is encoded again (it would end the URL the mask looks at), then secrets are
    masked, control characters escaped and the length cut.
    """
    return shown(_space_encoded(_decoded(text)), limit)


def _decoded(text: str, rounds: int = 3) -> str:
    for _ in range(rounds):
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    return text


def _space_encoded(text: str) -> str:
    return re.sub(r"\s", lambda m: quote(m.group(0)), text)


def query_parameters(query: str) -> dict[str, str]:
    """``target``, ``module`` and ``format`` of a /probe query, each at most once.

    Rejected (400) for anything else: an unknown or repeated parameter, a field without
    ``=``, too many fields. Values are percent-decoded once, as any URL parser does.
    """
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query),
                          max_num_fields=MAX_QUERY_FIELDS)
    except ValueError as exc:
        what = "too many query parameters" if "fields" in str(exc) else "bad query string"
        raise Rejected(400, what, "bad_request") from None
    params: dict[str, str] = {}
    for key, value in pairs:
        if key not in PARAMETERS:
            raise Rejected(400, f"unknown parameter {key[:20]!r} (known: "
                           f"{', '.join(PARAMETERS)})", "bad_request")
        if key in params:
            raise Rejected(400, f"parameter {key!r} given more than once", "bad_request")
        params[key] = value
    return params


def _wants_json(query: str) -> bool:
    """Whether an error answer should be a JSON document: ``format=json``, parsed, not
    searched for (``xformat=json`` is no such thing)."""
    try:
        return parse_qs(query, max_num_fields=MAX_QUERY_FIELDS).get("format") == ["json"]
    except ValueError:
        return False


def _target_param(query: str) -> str:
    try:
        return parse_qs(query, max_num_fields=MAX_QUERY_FIELDS).get("target", [""])[0][:1000]
    except ValueError:
        return ""
