"""Validate netcheck/1 documents against docs/schema/netcheck-1.json.

Tests import ``validate_report`` so that every JSON output the suite sees is checked
against the one schema users are told about, not against a copy that could drift.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "docs" / "schema" / "netcheck-1.json"


@lru_cache(maxsize=1)
def _validator() -> Any:
    # Built once: loading and checking the schema costs more than validating a document.
    from jsonschema import Draft202012Validator

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _where(path: Any) -> str:
    return "/" + "/".join(str(part) for part in path) if path else "(document)"


def validate_report(doc: dict[str, Any]) -> None:
    """Raise AssertionError listing every place where ``doc`` breaks the netcheck/1 schema."""
    errors = sorted(_validator().iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    if not errors:
        return
    lines = []
    for err in errors:
        lines.append(f"  at {_where(err.absolute_path)}: {err.message}")
        # oneOf/anyOf failures hide the useful reason in their sub-errors.
        for sub in sorted(err.context or [], key=lambda e: list(map(str, e.absolute_path))):
            lines.append(f"      - {_where(sub.absolute_path)}: {sub.message}")
    raise AssertionError(
        f"document does not match {SCHEMA_PATH.name} ({len(errors)} error(s)):\n"
        + "\n".join(lines)
    )
