"""Proxies as curl reads them: a proxy URL parsed (:class:`Proxy`), ``no_proxy``
matched, and the choice for one URL between ``--proxy``, ``--no-proxy`` and the environment's
``http_proxy`` / ``https_proxy`` / ``all_proxy`` (:class:`ProxyChoice`, :func:`choose_proxy`).
"""

from __future__ import annotations

import base64
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

from netcheck.probes.http.url import UrlError, mask_credentials

DEFAULT_PROXY_PORT = 1080  # what curl assumes when an http:// proxy URL names no port
PROXY_DEFAULT_PORTS = {"http": DEFAULT_PROXY_PORT, "https": 443}
SOCKS_SCHEMES = ("socks4", "socks4a", "socks5", "socks5h")


@dataclass(frozen=True)
class Proxy:
    """An HTTP proxy: where it is, which variable named it, and its credentials (never shown)."""

    host: str
    port: int
    source: str = "explicit"
    username: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)
    scheme: str = "http"  # https: TLS to the proxy itself first (curl's HTTPS proxy)

    @property
    def display(self) -> str:
        """The proxy URL with the password as ``***``."""
        cred = ""
        if self.username is not None:
            cred = f"{self.username}:***@" if self.password is not None else f"{self.username}@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{cred}{host}:{self.port}"

    def authorization(self) -> Optional[str]:
        """The Proxy-Authorization value (Basic), or None without credentials."""
        if self.username is None:
            return None
        from urllib.parse import unquote

        pair = f"{unquote(self.username)}:{unquote(self.password or '')}"
        return "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")


def parse_proxy(text: str, source: str = "explicit") -> Proxy:
    """``http(s)://[user[:password]@]host[:port]`` or ``host:port`` -> :class:`Proxy`."""
    from urllib.parse import urlsplit

    from netcheck.target import TargetError, normalize_host

    value = text.strip()
    shown = mask_credentials(value)[:120]
    if any(ord(ch) < 33 or ord(ch) == 127 for ch in value):
        raise UrlError(f"{source}={shown!r} contains white space or control characters")
    if "://" not in value:
        value = "http://" + value
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise UrlError(f"{source}={shown!r} is not a valid proxy URL") from None
    scheme = parts.scheme.lower()
    if scheme in SOCKS_SCHEMES:
        raise UrlError(f"{source}={shown!r}: a SOCKS proxy ({scheme}://); netcheck walks only "
                       "http:// and https:// proxies")
    if scheme not in PROXY_DEFAULT_PORTS:
        raise UrlError(f"{source}={shown!r}: only http:// and https:// proxies are supported, "
                       f"not {scheme}://")
    if not parts.hostname:
        raise UrlError(f"{source}={shown!r} names no proxy host")
    try:
        host = normalize_host(parts.hostname)
    except TargetError:
        raise UrlError(f"{source}={shown!r}: bad proxy host") from None
    return Proxy(host, port or PROXY_DEFAULT_PORTS[scheme], source, parts.username,
                 parts.password, scheme)


def _entry_host_port(entry: str) -> tuple[str, Optional[str]]:
    if entry.startswith("["):
        host, _, after = entry[1:].partition("]")
        return host, after[1:] if after.startswith(":") else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, port
    return entry, None


def bypass_proxy(host: str, port: int, no_proxy: str) -> bool:
    """True when ``no_proxy`` exempts host:port, as curl reads it.

    Entries are separated by commas (or blanks): ``*`` (everything), a domain (``lab.test``
    or ``.lab.test``: the domain and every name under it), an address or a CIDR block
    (``198.18.0.0/15``), each optionally with ``:port``.
    """
    name = host.lower().rstrip(".")
    try:
        ip: Optional[Any] = ipaddress.ip_address(name.split("%")[0])
    except ValueError:
        ip = None
    for raw in re.split(r"[,\s]+", no_proxy or ""):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        entry_host, entry_port = _entry_host_port(entry)
        if entry_port is not None and entry_port != str(port):
            continue
        if ip is not None:
            try:
                if ip in ipaddress.ip_network(entry_host, strict=False):
                    return True
            except ValueError:
                pass
            continue
        domain = entry_host.lstrip("*").lstrip(".").rstrip(".")
        if domain and (name == domain or name.endswith("." + domain)):
            return True
    return False


@dataclass(frozen=True)
class ProxyChoice:
    """Which proxy a URL goes through, and why: what curl would do with the same settings.

    ``proxy`` None means direct; ``source`` names what set the proxy (a variable, or
    ``--proxy``); ``bypass`` what sent the URL direct although a proxy is set (``no_proxy``,
    ``NO_PROXY`` or ``--no-proxy``); ``ignored`` variables that are set but not read
    (``HTTP_PROXY``); ``error`` a setting that names no usable proxy (never with a password).
    """

    proxy: Optional[Proxy] = None
    source: Optional[str] = None
    bypass: Optional[str] = None
    ignored: tuple[str, ...] = ()
    error: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"proxy": self.proxy.display if self.proxy else None,
                               "source": self.source}
        for key in ("bypass", "error"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        if self.ignored:
            out["ignored"] = list(self.ignored)
        return out


def _first_set(env: Mapping[str, str], names: tuple[str, ...]) -> tuple[Optional[str], str]:
    for name in names:
        if (env.get(name) or "").strip():
            return name, env[name]
    return None, ""


def proxy_variables(scheme: str) -> tuple[str, ...]:
    """The variables curl reads for a URL of this scheme, in its order of precedence.

    ``http_proxy`` exists in lower case only (httpoxy: a CGI server turns a request's
    ``Proxy:`` header into ``HTTP_PROXY``); the others in both cases, lower case first.
    """
    scheme = scheme.lower()
    own = ("http_proxy",) if scheme == "http" else (f"{scheme}_proxy", f"{scheme.upper()}_PROXY")
    return (*own, "all_proxy", "ALL_PROXY")


def choose_proxy(scheme: str, host: str, port: int, env: Optional[Mapping[str, str]], *,
                 explicit: Union[None, str, Proxy] = None,
                 disabled: bool = False) -> ProxyChoice:
    """The proxy for ``scheme://host:port``: ``--proxy`` (``explicit``), else the environment.

    ``disabled`` (``--no-proxy``) goes direct whatever is set. ``no_proxy`` / ``NO_PROXY``
    exempt hosts from either kind of proxy, as they do for curl's ``-x``.
    """
    env = env or {}
    ignored = tuple(n for n in ("HTTP_PROXY",) if scheme.lower() == "http"
                    and (env.get(n) or "").strip() and not (env.get("http_proxy") or "").strip())
    if disabled:
        return ProxyChoice(bypass="--no-proxy", ignored=ignored)
    if explicit is not None:
        source, value = "--proxy", explicit
    else:
        name, text = _first_set(env, proxy_variables(scheme))
        if name is None:
            return ProxyChoice(ignored=ignored)
        source, value = name, text
    exempt, listing = _first_set(env, ("no_proxy", "NO_PROXY"))
    if exempt is not None and bypass_proxy(host, port, listing):
        return ProxyChoice(source=source, bypass=exempt, ignored=ignored)
    if isinstance(value, Proxy):
        return ProxyChoice(value, source, ignored=ignored)
    try:
        return ProxyChoice(parse_proxy(value, source), source, ignored=ignored)
    except UrlError as exc:
        return ProxyChoice(source=source, ignored=ignored, error=str(exc))


def proxy_arguments(explicit: Optional[str], disabled: bool,
                    env: Optional[Mapping[str, str]]) -> dict[str, Any]:
    """:func:`fetch`'s ``proxy`` and ``env`` for ``--proxy`` / ``--no-proxy`` / the environment."""
    if disabled:
        return {"proxy": None, "env": None}
    return {"proxy": explicit, "env": env}


def proxy_for(scheme: str, host: str, port: int, env: Mapping[str, str]) -> Optional[Proxy]:
    """The proxy the environment names for this URL, or None (none set, or no_proxy says so).

    :class:`UrlError` when the variable is set but unusable.
    """
    choice = choose_proxy(scheme, host, port, env)
    if choice.error is not None:
        raise UrlError(choice.error)
    return choice.proxy
