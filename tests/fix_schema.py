"""Validate netcheck-fix/1 documents against docs/schema/netcheck-fix-1.json.

``before`` and ``after`` refer to the netcheck/1 schema by its ``$id``; both files are loaded
into one registry, so a repair document is checked against the schemas users are given.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

SCHEMAS = Path(__file__).resolve().parent.parent / "docs" / "schema"


@lru_cache(maxsize=1)
def _validator() -> Any:
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    fix = json.loads((SCHEMAS / "netcheck-fix-1.json").read_text(encoding="utf-8"))
    report = json.loads((SCHEMAS / "netcheck-1.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(fix)
    registry = Registry().with_resources(
        [(s["$id"], Resource.from_contents(s)) for s in (fix, report)])
    return Draft202012Validator(fix, registry=registry)


def validate_fix(doc: dict[str, Any]) -> None:
    """Raise AssertionError listing every place where ``doc`` breaks netcheck-fix/1."""
    errors = sorted(_validator().iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = [f"  at /{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]
        raise AssertionError(f"document does not match netcheck-fix-1.json ({len(errors)} "
                             "error(s)):\n" + "\n".join(lines))
