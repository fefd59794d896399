"""A target's options (:data:`OPTION_KEYS`): each value checked (:func:`check_option`), unknown
keys named with what is known, and the target built from its line (:func:`build_target`) and
shown as it was written (:func:`shown_target`).
"""

from __future__ import annotations

import os
import re
from typing import Any, Iterable

from netcheck.batch.profile.entries import _show
from netcheck.defaults import EXPECTS
from netcheck.target import DEFAULT_PORTS, Target, TargetError, parse_target

# Keys a target (or [defaults]) may set, and what they mean.
OPTION_KEYS: dict[str, str] = {
    "target": "the target: host, host:port, address, [v6]:port or scheme://host[:port]/path",
    "port": "port number (overrides the target's)",
    "scheme": "scheme for a target written without one (tcp, https, ssh, smtp, ...)",
    "timeout": "per-probe timeout in seconds",
    "deadline": "bound on this target's diagnosis in seconds",
    "cafile": "extra CA bundle for TLS (relative to the profile's folder)",
    "cert": "client certificate for mutual TLS",
    "key": "client key for mutual TLS",
    "expect": '"open" (default) or "closed": a port that must stay shut',
    "family": "4 or 6: one address family only",
}
EXPECTATIONS = EXPECTS
DEFAULTS_SECTION = "defaults"


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} must be a number of seconds, not {_type(value)}")
    if not 0 < value <= 3600:
        raise ValueError(f"{key} must be between 0 and 3600 seconds (got {value})")
    return float(value)


def _type(value: Any) -> str:
    return {str: "a string", bool: "true/false", int: "an integer", float: "a number",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


def _path_option(key: str, value: Any, base: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} must be a file path (a string)")
    path = value if os.path.isabs(value) else os.path.join(base, value)
    if not os.path.isfile(path):
        raise ValueError(f"{key} {_show(value)!r}: no such file")
    if not os.access(path, os.R_OK):
        raise ValueError(f"{key} {_show(value)!r}: not readable")
    return path


def check_option(key: str, value: Any, base: str = ".") -> Any:
    """Validate one option; return its normalised value or raise ValueError (one line)."""
    if key == "port":
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            raise ValueError(f"port must be a number from 1 to 65535 (got {_show(repr(value))})")
        return value
    if key == "scheme":
        if not isinstance(value, str) or value.lower() not in DEFAULT_PORTS:
            raise ValueError(f"unknown scheme {_show(repr(value))} "
                             f"(known: {' '.join(DEFAULT_PORTS)})")
        return value.lower()
    if key in ("timeout", "deadline"):
        return _number(key, value)
    if key in ("cafile", "cert", "key"):
        return _path_option(key, value, base)
    if key == "expect":
        if value not in EXPECTATIONS:
            raise ValueError(f'expect must be "open" or "closed" (got {_show(repr(value))})')
        return value
    if key == "family":
        if isinstance(value, bool) or value not in (4, 6):
            raise ValueError(f"family must be 4 or 6 (got {_show(repr(value))})")
        return value
    if key == "target":
        if not isinstance(value, str):
            raise ValueError(f"target must be a string, not {_type(value)}")
        return value
    raise ValueError(unknown_key_message(key))


def unknown_key_message(key: str, allowed: Iterable[str] = OPTION_KEYS) -> str:
    import difflib

    allowed = list(allowed)
    close = difflib.get_close_matches(key, allowed, n=1)
    guess = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key {_show(key)!r}{guess}; known keys: {', '.join(allowed)}"


def _has_port(text: str) -> bool:
    """True when the target text names a port itself (``host:22``, ``https://h:8443/``)."""
    rest = text.split("://", 1)[1] if "://" in text else text
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0].rpartition("@")[2]
    if authority.startswith("["):
        return "]:" in authority
    return authority.count(":") == 1


def build_target(text: str, options: dict[str, Any], explicit: Iterable[str] = ()) -> Target:
    """The Target for ``text`` with the options applied (``explicit``: keys the entry set itself).

    A scheme applies to a target written without one; a port set on the entry overrides the
    target's, while a default port only fills in for a target that names none.
    """
    explicit = set(explicit)
    scheme = options.get("scheme")
    written = text
    if scheme:
        if "://" not in text:
            bare_v6 = text.count(":") > 1 and not text.startswith("[")
            written = f"{scheme}://[{text}]" if bare_v6 else f"{scheme}://{text}"
        elif "scheme" in explicit and text.split("://", 1)[0].lower() != scheme:
            raise TargetError(f"scheme {scheme!r} contradicts the target's own "
                              f"{text.split('://', 1)[0]!r}")
    port = options.get("port")
    if port is not None and "port" not in explicit and _has_port(written):
        port = None
    return parse_target(written, port)


def shown_target(target: Target) -> str:
    """The target as typed, or as a URL when an option changed its scheme or port."""
    try:
        typed = parse_target(target.input)
    except TargetError:
        return target.url
    if (typed.scheme, typed.port) == (target.scheme, target.port):
        return target.input
    return target.url
