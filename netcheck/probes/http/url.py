"""URLs as netcheck sends them: an http(s) URL taken apart (:class:`UrlParts`), its path
percent-encoded, a Location resolved against the request, credentials masked for display.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

MAX_URL_LENGTH = 8192
DEFAULT_PORTS = {"http": 80, "https": 443}


class UrlError(ValueError):
    """A URL (or proxy URL) that cannot be used; the message never holds a password."""


@dataclass(frozen=True)
class UrlParts:
    """An http(s) URL taken apart: the host in ASCII, the port explicit, no credentials."""

    scheme: str
    host: str  # ASCII; an IPv6 address without brackets
    port: int
    path: str = "/"  # path and query, percent-encoded ASCII

    @property
    def host_for_url(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    @property
    def authority(self) -> str:
        """host[:port] as the Host header and URLs write it (default port left out)."""
        if self.port == DEFAULT_PORTS.get(self.scheme):
            return self.host_for_url
        return f"{self.host_for_url}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.authority}{self.path}"

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)


def _encode_path(path: str) -> str:
    from urllib.parse import quote

    # Keep what is already valid (reserved characters and %XX escapes); encode the rest
    # (non-ASCII as UTF-8), so a Location like /café reaches the server as browsers send it.
    return quote(path, safe="/?&=%:@!$'()*+,;~-._[]")


def request_path(path: str) -> str:
    """A path (and query) as netcheck sends it: percent-encoded ASCII, what is valid kept."""
    return _encode_path(path)


def split_url(text: str) -> UrlParts:
    """Parse an http or https URL; :class:`UrlError` with one clear sentence otherwise."""
    from urllib.parse import urlsplit

    from netcheck.target import TargetError, normalize_host

    if len(text) > MAX_URL_LENGTH:
        raise UrlError(f"URL too long ({len(text)} characters)")
    if any(ord(ch) < 33 or ord(ch) == 127 for ch in text):
        raise UrlError("URL contains white space or control characters")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise UrlError(f"not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise UrlError(f"scheme {scheme + ':' if scheme else '(none)'} is not http or https")
    if not parts.hostname:
        raise UrlError("URL has no host")
    try:
        host = normalize_host(parts.hostname)
    except TargetError as exc:
        raise UrlError(str(exc)) from None
    path = parts.path or "/"
    if not path.startswith("/"):
        path = "/" + path
    if parts.query:
        path += "?" + parts.query
    return UrlParts(scheme, host, port or DEFAULT_PORTS[scheme], _encode_path(path))


def parts_of(target: Union[str, UrlParts, Any]) -> UrlParts:
    """A URL string, UrlParts, or anything with scheme/host/port/path (netcheck's Target)."""
    if isinstance(target, UrlParts):
        return target
    if isinstance(target, str):
        return split_url(target)
    scheme = str(target.scheme).lower()
    if scheme not in DEFAULT_PORTS:
        raise UrlError(f"scheme {scheme}: is not http or https")
    path = getattr(target, "path", "/") or "/"
    return UrlParts(scheme, str(target.host), int(target.port), _encode_path(path))


def resolve_location(base: UrlParts, location: str) -> str:
    """The absolute URL a Location header points to, relative to ``base`` (RFC 3986 5.2)."""
    from urllib.parse import urljoin

    return urljoin(base.url, location.strip())


def mask_credentials(url: str) -> str:
    """``scheme://user:secret@host`` -> ``scheme://user:***@host`` (the password may hold @)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    authority, slash, tail = rest.partition("/")
    if "@" not in authority:
        return url
    cred, _, hostport = authority.rpartition("@")
    user, colon, _ = cred.partition(":")
    masked = f"{user}:***@{hostport}" if colon else f"{user}@{hostport}"
    return f"{scheme}{sep}{masked}{slash}{tail}"
