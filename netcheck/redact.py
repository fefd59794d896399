"""What may be shown: secrets masked, control characters made visible.

Every renderer, log line and error message passes text that came from outside (a target the
user typed, a profile line, a Location header, a banner) through these two functions, so that
a password in a URL is never printed and an escape sequence in a name never reaches a terminal
raw. They are the one place for both rules; nothing else masks or escapes on its own.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

# scheme://authority — the authority ends at the first '/', '?', '#' or white space. A password
# may hold '@', so the credentials end at the *last* '@' of the authority.
_URL_AUTHORITY = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<authority>[^/?#\s\"'<>]*)")
# key=value pairs that name a secret, in query strings and free text (?password=…, &token=…).
_SECRET_PARAM = re.compile(
    r"(?P<key>\b(?:pass(?:word|wd)?|pwd|secret|token|api[_-]?key|access[_-]?token|auth)=)"
    r"(?P<value>[^&\s#\"']+)",
    re.IGNORECASE,
)
# Characters that move a cursor, recolour a terminal, end a line or reorder text when printed:
# C0 controls, DEL, C1 controls, and the Unicode bidi overrides/isolates (the "Trojan source" set).
_BIDI = "\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNPRINTABLE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}]")
_UNPRINTABLE_KEEP_LINES = re.compile(f"[\x00-\x09\x0b-\x1f\x7f-\x9f{_BIDI}]")


def _mask_authority(m: re.Match[str]) -> str:
    authority = m.group("authority")
    if "@" not in authority:
        return m.group(0)
    cred, _, hostport = authority.rpartition("@")
    user, colon, _ = cred.partition(":")
    shown = f"{user}:{MASK}@{hostport}" if colon else f"{user}@{hostport}"
    return m.group("scheme") + shown


def mask_secrets(text: str) -> str:
    """``text`` with every URL password and secret-named parameter replaced by ``***``.

    ``https://ann:s3cr@t@host/`` -> ``https://ann:***@host/``; ``?token=abc`` -> ``?token=***``.
    A bare ``user:password@host`` (no scheme, as typed into a profile) is masked too.
    """
    if not text:
        return text
    out = _URL_AUTHORITY.sub(_mask_authority, text)
    out = _SECRET_PARAM.sub(lambda m: m.group("key") + MASK, out)
    if "://" not in out and "@" in out and not any(ch.isspace() for ch in out):
        cred, _, hostport = out.rpartition("@")
        user, colon, _ = cred.partition(":")
        if colon and "/" not in cred:
            out = f"{user}:{MASK}@{hostport}"
    return out


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, keep_newlines: bool = False) -> str:
    """``text`` with control characters shown as ``\\xNN`` escapes, never sent raw.

    With ``keep_newlines`` a ``\\n`` stays (multi-line evidence); ``\\r`` is always escaped, so a
    line cannot be overwritten on a terminal or forged in a log.
    """
    if not text:
        return text
    pattern = _UNPRINTABLE_KEEP_LINES if keep_newlines else _UNPRINTABLE
    return pattern.sub(_escape, text)


def shown(text: str, limit: int = 0) -> str:
    """Outside text as it may be printed: secrets masked, controls escaped, cut at ``limit``."""
    out = printable(mask_secrets(text))
    if limit and len(out) > limit:
        out = out[: max(limit - 3, 1)] + "..."
    return out


def nagios_text(text: str) -> str:
    """One line fit for a Nagios plugin's status line: no '|' (starts perfdata), no newline."""
    return shown(text).replace("|", "/")


def mask_value(value: Any) -> Any:
    """A JSON-native value with every string in it masked (for evidence and error documents)."""
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, dict):
        return {k: mask_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_value(v) for v in value]
    return value
