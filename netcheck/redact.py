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
# A scheme-relative reference (``//user:pw@host/``, as a Location header may hold) counts too.
# The scheme's length is bounded: unbounded, every word boundary of a long "a.a.a..." line
# scanned to its end (quadratic: a 1 MB banner took minutes).
_URL_AUTHORITY = re.compile(
    r"(?P<scheme>(?:\b[A-Za-z][A-Za-z0-9+.\-]{0,31}:)?//)(?P<authority>[^/?#\s\"'<>]*)")
# key=value pairs that name a secret, in query strings and free text (?password=…, &token=…).
# A prefix joined by '_' or '-' names a secret too (client_secret, oauth_token, my_password).
_SECRET_PARAM = re.compile(
    r"(?P<key>\b(?:\w+[_-])?(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|auth)=)"
    r"(?P<value>[^&\s#\"']+)",
    re.IGNORECASE,
)
# Characters that move a cursor, recolour a terminal, end a line or reorder text when printed:
# C0 controls, DEL, C1 controls, and the Unicode bidi overrides/isolates (the "Trojan source" set).
# The line and paragraph separators end a line in many viewers; a lone surrogate (undecodable
# bytes kept by surrogateescape) cannot even be encoded for a UTF-8 terminal and would crash
# the write.
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_OTHER = "\u2028\u2029\ud800-\udfff"
_UNPRINTABLE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}{_OTHER}]")
_UNPRINTABLE_KEEP_LINES = re.compile(f"[\x00-\x09\x0b-\x1f\x7f-\x9f{_BIDI}{_OTHER}]")
# A word that may be a bare ``user:password@host`` (no scheme, as typed into a profile).
_WORD = re.compile(r"\S+")


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
    if "@" in out:
        out = _WORD.sub(_mask_bare, out)
    return out


def _mask_bare(m: re.Match[str]) -> str:
    word = m.group(0)
    if "@" not in word or "//" in word:
        return word  # no credentials, or a URL the authority rule has already seen
    cred, _, hostport = word.rpartition("@")
    user, colon, _ = cred.partition(":")
    if not colon or "/" in cred or user.lower().endswith("mailto"):
        return word  # an e-mail address (mailto:ann@host is one too), or a path
    return f"{user}:{MASK}@{hostport}"


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
        out = out[: limit - 3] + "..." if limit > 3 else out[:limit]
    return out


def nagios_text(text: str) -> str:
    """One line fit for a Nagios plugin's status line: no '|' (starts perfdata), no newline."""
    return shown(text).replace("|", "/")


def mask_value(value: Any) -> Any:
    """A JSON-native value with every string in it masked (for evidence and error documents)."""
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, dict):
        return {mask_value(k): mask_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_value(v) for v in value]
    return value
