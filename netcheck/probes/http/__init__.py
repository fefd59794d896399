"""HTTP/1.1, measured hop by hop: the redirect chain as ``wget`` prints it, the phase timings
``curl -w`` and blackbox_exporter give, and every way a server can fail to answer told apart.

A client on raw non-blocking sockets (TLS through ``ssl.MemoryBIO``), not urllib: the phases
(DNS, connect, TLS, time to first byte, transfer) are timed one by one, the segment size can be
forced (``mss``: the path-MTU check compares a small-segment fetch with a normal one), and a
hostile server is bounded everywhere — headers at ``max_header_bytes``, bodies at
``max_body_bytes`` (read, counted, never stored beyond a small sample), every wait by
``timeout`` and the whole fetch by ``deadline``. ``fetch`` never raises for anything the
network does: the answer is an :class:`HttpResult` whose ``outcome`` says what happened.

Proxies follow curl's reading of ``http_proxy`` / ``https_proxy`` / ``all_proxy`` / ``no_proxy``
(lower case first, then upper case, except ``HTTP_PROXY``, which curl ignores since httpoxy):
absolute-form requests for http, ``CONNECT`` for https, TLS to an ``https://`` proxy first.
Credentials in a proxy URL are used, and shown only as ``***``.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Collection, Mapping, Optional, Union

from netcheck import __version__
from netcheck.lazy import asyncio
from netcheck.probes.banner import Stream, classify, first_line, open_stream, os_error_name
from netcheck.redact import mask_secrets, shown

if TYPE_CHECKING:
    import ssl

MAX_HEADER_BYTES = 64 * 1024  # curl allows 100 KiB, nginx 8 KiB per line: 64 KiB is plenty
MAX_BODY_BYTES = 1 << 20  # read this much of a body, then stop: enough to judge, bounded memory
MAX_REDIRECTS = 10
MAX_URL_LENGTH = 8192
MAX_INTERIM = 5  # 1xx responses skipped before the real one (100 Continue, 103 Early Hints)
BODY_SAMPLE_BYTES = 2048  # kept to read an error page's <title>
DEFAULT_PORTS = {"http": 80, "https": 443}
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
DEFAULT_PROXY_PORT = 1080  # what curl assumes when an http:// proxy URL names no port
PROXY_DEFAULT_PORTS = {"http": DEFAULT_PROXY_PORT, "https": 443}
SOCKS_SCHEMES = ("socks4", "socks4a", "socks5", "socks5h")

_STATUS_LINE = re.compile(rb"^HTTP/(\d(?:\.\d)?) +(\d{3})(?: +(.*?))?\s*$")
# A status line still arriving: "HTTP/1.1 20" may become one, "HTTP/x" never will.
_STATUS_PREFIX = re.compile(rb"^HTTP/(\d(\.\d?)?)?( +(\d{1,3}( .*)?)?)?\r?$", re.DOTALL)
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_TOKEN = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)

Resolver = Callable[[str], Awaitable[list[str]]]
# Why a hop (host, port, scheme, path) may not be requested, or None when it may: the caller's
# policy (the exporter's allow-list), asked before any packet goes to the hop.
HopRefusal = Callable[[str, int, str, str], Optional[str]]


class UrlError(ValueError):
    """A URL (or proxy URL) that cannot be used; the message never holds a password."""


class ProtocolError(ValueError):
    """The bytes received are not HTTP/1.x as RFC 9112 frames it."""


# -- URLs ----------------------------------------------------------------------------------

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


# -- proxies -------------------------------------------------------------------------------

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


# -- HTTP/1.1 framing ----------------------------------------------------------------------

class Headers:
    """Response header fields in order; lookups are case-insensitive."""

    def __init__(self, items: Optional[list[tuple[str, str]]] = None) -> None:
        self.items: list[tuple[str, str]] = list(items or [])

    def get_all(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self.items if key.lower() == wanted]

    def get(self, name: str, default: Optional[str] = None) -> Optional[str]:
        found = self.get_all(name)
        return found[-1] if found else default

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(self.get_all(name))

    def __len__(self) -> int:
        return len(self.items)


@dataclass
class Head:
    """A parsed status line and header block."""

    version: str
    status: int
    reason: str
    status_line: str
    headers: Headers


def parse_status_line(line: bytes) -> tuple[str, int, str]:
    """``HTTP/1.1 200 OK`` -> ("1.1", 200, "OK"); :class:`ProtocolError` otherwise."""
    match = _STATUS_LINE.match(line.rstrip(b"\r"))
    if not match:
        raise ProtocolError("not an HTTP status line")
    status = int(match.group(2))
    if not 100 <= status <= 599:
        raise ProtocolError(f"status {status} is out of range")
    reason = (match.group(3) or b"").decode("latin-1")
    return match.group(1).decode("ascii"), status, reason


def parse_head(block: bytes) -> Head:
    """Parse a status line and its header fields (the bytes before the empty line).

    Obsolete line folding is joined; lines that are not ``name: value`` are dropped, as
    lenient clients do, but a bad status line is a :class:`ProtocolError`.
    """
    lines = re.split(rb"\r?\n", block.lstrip(b"\r\n"))
    version, status, reason = parse_status_line(lines[0])
    items: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line.strip():
            continue
        if line[:1] in (b" ", b"\t"):
            if items:
                name, value = items[-1]
                items[-1] = (name, f"{value} {line.strip().decode('latin-1')}")
            continue
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.match(name):
            continue
        items.append((name.decode("ascii"), value.strip().decode("latin-1")))
    status_line = lines[0].rstrip(b"\r").decode("latin-1")
    return Head(version, status, reason, status_line, Headers(items))


def could_be_http(prefix: bytes) -> bool:
    """Could a response that starts with these bytes still be HTTP/1.x?"""
    data = prefix.lstrip(b"\r\n")
    if not data:
        return True
    if len(data) < 5:
        return b"HTTP/".startswith(data)
    if not data.startswith(b"HTTP/"):
        return False
    end = data.find(b"\n")
    if end < 0:
        return len(data) < 256 and bool(_STATUS_PREFIX.match(data))
    return bool(_STATUS_LINE.match(data[:end].rstrip(b"\r")))


def body_framing(status: int, headers: Headers, method: str = "GET") -> tuple[str, Optional[int]]:
    """How the body ends (RFC 9112 6.3): ("none" | "chunked" | "length" | "close", length)."""
    if method == "HEAD" or 100 <= status < 200 or status in (204, 304):
        return "none", 0
    encodings = [e.strip().lower() for v in headers.get_all("Transfer-Encoding")
                 for e in v.split(",") if e.strip()]
    if encodings:
        if encodings[-1] == "chunked":
            return "chunked", None
        return "close", None  # an encoding without chunked: the body ends at close
    lengths = {v.strip() for value in headers.get_all("Content-Length") for v in value.split(",")}
    if lengths:
        if len(lengths) != 1 or not next(iter(lengths)).isdigit():
            raise ProtocolError(f"bad Content-Length {sorted(lengths)[:3]}")
        return "length", int(next(iter(lengths)))
    return "close", None


class ChunkedDecoder:
    """Incremental ``Transfer-Encoding: chunked`` decoder that never holds more than a line.

    ``feed(data)`` returns the body pieces found in ``data``; ``done`` turns True after the
    last chunk and its trailer, and ``leftover`` then holds whatever followed the body.
    """

    MAX_LINE = 4096

    def __init__(self, max_trailer: int = MAX_HEADER_BYTES) -> None:
        self.state = "size"
        self.remaining = 0
        self.line = b""
        self.done = False
        self.leftover = b""
        self.max_trailer = max_trailer
        self.trailer_bytes = 0

    def _take_line(self, data: bytes, pos: int) -> tuple[Optional[bytes], int]:
        end = data.find(b"\n", pos)
        if end < 0:
            self.line += data[pos:]
            if len(self.line) > self.MAX_LINE:
                raise ProtocolError("chunk framing line too long")
            return None, len(data)
        line = (self.line + data[pos:end]).rstrip(b"\r")
        self.line = b""
        if len(line) > self.MAX_LINE:
            raise ProtocolError("chunk framing line too long")
        return line, end + 1

    def feed(self, data: bytes) -> list[bytes]:
        pieces: list[bytes] = []
        pos = 0
        while pos < len(data) and not self.done:
            if self.state == "data":
                take = min(self.remaining, len(data) - pos)
                pieces.append(data[pos:pos + take])
                pos += take
                self.remaining -= take
                if self.remaining == 0:
                    self.state = "crlf"
                continue
            line, pos = self._take_line(data, pos)
            if line is None:
                break
            if self.state == "size":
                size_text = line.split(b";", 1)[0].strip()
                if not size_text or len(size_text) > 16 or not re.fullmatch(
                        rb"[0-9A-Fa-f]+", size_text):
                    raise ProtocolError(f"bad chunk size {size_text[:20]!r}")
                size = int(size_text, 16)
                self.state, self.remaining = ("trailer", 0) if size == 0 else ("data", size)
            elif self.state == "crlf":
                if line:
                    raise ProtocolError("chunk not followed by CRLF")
                self.state = "size"
            else:  # trailer fields, until an empty line
                self.trailer_bytes += len(line)
                if self.trailer_bytes > self.max_trailer:
                    raise ProtocolError("chunked trailer too large")
                if not line:
                    self.done = True
        if self.done:
            self.leftover = data[pos:]
        return pieces


def build_request(parts: UrlParts, user_agent: str, *, absolute: bool = False,
                  proxy_authorization: Optional[str] = None) -> bytes:
    """The GET request bytes: origin-form, or absolute-form for a proxy."""
    target = parts.url if absolute else parts.path
    lines = [f"GET {target} HTTP/1.1", f"Host: {parts.authority}",
             f"User-Agent: {user_agent}", "Accept: */*",
             # identity: the byte counts are the bytes the server sent, no decoding
             "Accept-Encoding: identity"]
    if proxy_authorization:
        lines.append(f"Proxy-Authorization: {proxy_authorization}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def user_agent_for(request_id: Optional[str]) -> str:
    """``netcheck/VERSION (+REQUEST_ID)``: the server's log finds this run by its id."""
    return f"netcheck/{__version__} (+{request_id})" if request_id else f"netcheck/{__version__}"


def page_title(sample: bytes) -> Optional[str]:
    """The <title> of an HTML page sample (an error page says what it is), printable."""
    match = _TITLE.search(sample.decode("latin-1"))
    if not match:
        return None
    text = " ".join(match.group(1).split())
    return first_line(text.encode("latin-1", "replace"), 120) if text else None


# -- results -------------------------------------------------------------------------------

@dataclass
class Hop:
    """One request of the chain: where it went, what came back, how long each phase took."""

    url: str
    address: Optional[str] = None
    port: Optional[int] = None
    connection: str = "new"  # new | reused
    proxy: Optional[str] = None  # the proxy's display URL when one was used
    status: Optional[int] = None
    reason: Optional[str] = None
    status_line: Optional[str] = None
    http_version: Optional[str] = None
    from_proxy: bool = False  # the status is the proxy's answer to CONNECT
    location: Optional[str] = None
    next_url: Optional[str] = None
    scheme_change: Optional[str] = None  # "http->https"
    server: Optional[str] = None
    content_type: Optional[str] = None
    content_length: Optional[int] = None
    title: Optional[str] = None
    via: Optional[str] = None  # Via: the answer passed a proxy
    proxy_status: Optional[str] = None  # Proxy-Status / X-Squid-Error: a proxy's own error
    proxy_authenticate: Optional[str] = None  # Proxy-Authenticate of a 407
    body_bytes: int = 0
    truncated: Optional[str] = None  # why the body was not read to its end: size | time | ...
    keep_alive: bool = False
    tls: Optional[dict[str, Any]] = None
    bytes_received: int = 0  # everything this hop received (head and body)
    dns_ms: Optional[float] = None
    connect_ms: Optional[float] = None
    tunnel_ms: Optional[float] = None
    tls_ms: Optional[float] = None
    ttfb_ms: Optional[float] = None  # request sent -> first response byte
    transfer_ms: Optional[float] = None  # first response byte -> last byte read
    total_ms: Optional[float] = None
    error: Optional[str] = None
    # The certificates the server sent (DER, leaf first): what a caller judges the chain's
    # expiry by without a second handshake. Not in the JSON.
    peer_chain: list[bytes] = field(default_factory=list, repr=False)
    # The first bytes of the body (not in the JSON): what a connectivity check compares.
    sample: bytes = field(default=b"", repr=False)

    @property
    def timings(self) -> dict[str, float]:
        names = ("dns_ms", "connect_ms", "tunnel_ms", "tls_ms", "ttfb_ms", "transfer_ms",
                 "total_ms")
        return {n: round(getattr(self, n), 3) for n in names if getattr(self, n) is not None}

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"url": self.url}
        for key in ("address", "port", "connection", "proxy", "status", "status_line",
                    "location", "next_url", "scheme_change", "server", "content_type",
                    "content_length", "title", "via", "proxy_status", "proxy_authenticate",
                    "body_bytes", "truncated", "tls", "error"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.from_proxy:
            out["from_proxy"] = True
        out["bytes_received"] = self.bytes_received
        out["timings"] = self.timings
        return out

    def wget_line(self) -> str:
        """The hop as wget narrates it, on one line."""
        where = f"{self.address}:{self.port}" if self.address else "?"
        via = f" via proxy {self.proxy}" if self.proxy else ""
        text = f"--> {self.url} [{where}{via}, {self.connection} connection]"
        if self.status_line:
            text += f" {self.status_line}"
        elif self.error:
            text += f" {self.error}"
        if self.location is not None:
            text += f" Location: {self.location}"
            if self.scheme_change:
                text += f" ({self.scheme_change})"
        return text


@dataclass
class HttpResult:
    """What a fetch met, from the first request to the last."""

    url: str
    outcome: str = "error"
    # ok | connect_failed | tls_failed | dns_failed | proxy_failed | timeout (connected, no
    # byte) | stall (some bytes, then nothing) | body_stall (status arrived, body stalled) |
    # closed (empty reply, or closed mid-headers) | protocol_mismatch | header_too_large |
    # redirect_loop | too_many_redirects | redirect_refused (Location to another scheme) |
    # not_allowed (the caller's hop policy refused a hop: nothing was sent to it) | error
    detail: Optional[str] = None
    hops: list[Hop] = field(default_factory=list)
    status: Optional[int] = None
    reason: Optional[str] = None
    final_url: Optional[str] = None
    size: int = 0  # body bytes read of the final response
    truncated: bool = False
    truncated_reason: Optional[str] = None
    server: Optional[str] = None
    first_line: Optional[str] = None  # what a non-HTTP answer said, printable
    heard: Optional[str] = None  # banner.classify() of a non-HTTP answer
    bytes_received: int = 0  # of the hop that failed (a stall: how far it got)
    proxy: Optional[str] = None
    user_agent: str = ""
    elapsed_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    @property
    def redirects(self) -> int:
        return max(0, len(self.hops) - 1)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"url": self.url, "outcome": self.outcome}
        for key in ("detail", "status", "reason", "final_url", "server", "first_line", "heard",
                    "truncated_reason", "proxy"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out.update(size=self.size, truncated=self.truncated,
                   bytes_received=self.bytes_received, redirects=self.redirects,
                   hops=[h.to_json() for h in self.hops], user_agent=self.user_agent,
                   elapsed_ms=round(self.elapsed_ms, 3))
        return out


class _Fail(Exception):
    """Ends a hop: the outcome kind and what to tell."""

    def __init__(self, outcome: str, detail: str, *, first: Optional[bytes] = None) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail
        self.first = first


# -- the client ----------------------------------------------------------------------------

class _Fetcher:
    """State of one fetch: the deadline, the connection kept alive, the names resolved."""

    def __init__(self, *, timeout: float, until: float, cafile: Optional[str],
                 cert: Optional[str], key: Optional[str], verify: bool, user_agent: str,
                 proxy: Optional[Proxy], env: Optional[Mapping[str, str]],
                 unverified_hosts: Collection[str],
                 resolve: Optional[Resolver], mss: Optional[int], max_header_bytes: int,
                 max_body_bytes: int, transfer_timeout: float,
                 hop_refusal: Optional[HopRefusal] = None) -> None:
        self.timeout = timeout
        self.until = until
        self.cafile, self.cert, self.key, self.verify = cafile, cert, key, verify
        self.unverified_hosts = {h.lower() for h in unverified_hosts}
        self.user_agent = user_agent
        self.proxy = proxy
        self.env = env
        self.resolve = resolve
        self.mss = mss
        self.max_header = max_header_bytes
        self.max_body = max_body_bytes
        self.transfer_timeout = transfer_timeout
        self.hop_refusal = hop_refusal
        self.known: dict[str, list[str]] = {}
        self.pool: dict[tuple[Any, ...], Stream] = {}
        self._tls_contexts: dict[bool, ssl.SSLContext] = {}
        # Time netcheck spent on itself (loading CA certificates): kept out of the timings.
        self.overhead = 0.0

    def ms_since(self, t0: float, overhead: float) -> float:
        """Milliseconds since ``t0``, less what netcheck spent on itself meanwhile."""
        return (time.monotonic() - t0 - (self.overhead - overhead)) * 1000

    def bound(self, seconds: float) -> float:
        """A monotonic instant ``seconds`` from now, never past the fetch's deadline."""
        return min(self.until, time.monotonic() + seconds)

    def close(self) -> None:
        for stream in self.pool.values():
            stream.close()
        self.pool.clear()

    def proxy_for(self, parts: UrlParts) -> Optional[Proxy]:
        if self.proxy is None and self.env is None:
            return None
        choice = choose_proxy(parts.scheme, parts.host, parts.port, self.env,
                              explicit=self.proxy)
        if choice.error is not None:
            raise _Fail("proxy_failed", choice.error)
        return choice.proxy

    async def addresses(self, host: str, hop: Hop) -> list[str]:
        try:
            ipaddress.ip_address(host.split("%")[0])
            return [host]
        except ValueError:
            pass
        if host in self.known:
            return self.known[host]
        t0 = time.monotonic()
        try:
            if self.resolve is not None:
                found = await asyncio.wait_for(self.resolve(host),
                                               max(0.05, self.bound(self.timeout * 2) - t0))
            else:
                found = await _getaddrinfo(host, max(0.05, self.bound(self.timeout) - t0))
        except asyncio.TimeoutError:
            raise _Fail("dns_failed", f"resolving {host} timed out") from None
        except Exception as exc:
            raise _Fail("dns_failed", f"resolving {host} failed: {exc}") from None
        hop.dns_ms = (time.monotonic() - t0) * 1000
        if not found:
            raise _Fail("dns_failed", f"{host} does not resolve to an address")
        self.known[host] = list(found)
        return self.known[host]

    async def refusal(self, parts: UrlParts, hop: Hop) -> Optional[str]:
        """Why the hop policy forbids requesting ``parts``, or None; nothing reaches the hop.

        The hop is judged as written first. A name the policy does not allow as written may
        still lead only to allowed addresses (an allow-list of networks): it is resolved (a
        question to the resolver, never a packet to the hop) and allowed only when every
        address passes. Those very addresses are the ones connected to later (``known``), so
        no second answer can slip in between the check and the connection.
        """
        if self.hop_refusal is None:
            return None
        reason = self.hop_refusal(parts.host, parts.port, parts.scheme, parts.path)
        if reason is None:
            return None
        try:
            ipaddress.ip_address(parts.host.split("%")[0])
            return reason
        except ValueError:
            pass
        try:
            if self.proxy_for(parts) is not None:
                return reason  # the proxy would resolve and connect: nothing to judge here
            addresses = await self.addresses(parts.host, hop)
        except _Fail:
            return reason
        for address in addresses:
            why = self.hop_refusal(address, parts.port, parts.scheme, parts.path)
            if why is not None:
                return f"{parts.host} resolves to {address}: {why}"
        return None

    def tls_context(self, host: str) -> ssl.SSLContext:
        verify = self.verify and host.lower() not in self.unverified_hosts
        if verify not in self._tls_contexts:
            from netcheck.probes.tls import client_context

            t0 = time.monotonic()
            try:
                self._tls_contexts[verify] = client_context(
                    self.cafile, self.cert, self.key, verify=verify, alpn=("http/1.1",))
            except (OSError, ValueError) as exc:
                raise _Fail("tls_failed", f"cannot set up TLS: {exc}") from None
            finally:
                self.overhead += time.monotonic() - t0
        return self._tls_contexts[verify]

    async def connect(self, parts: UrlParts, hop: Hop, proxy: Optional[Proxy]) -> Stream:
        host, port = (proxy.host, proxy.port) if proxy else (parts.host, parts.port)
        addresses = await self.addresses(host, hop)
        errors = []
        stream: Optional[Stream] = None
        for address in addresses[:3]:
            t0 = time.monotonic()
            try:
                stream = await open_stream(address, port, self.bound(self.timeout), self.mss)
            except asyncio.TimeoutError:
                errors.append(f"{address} port {port}: no answer within {self.timeout:g} s")
                continue
            except OSError as exc:
                errors.append(f"{address} port {port}: {os_error_name(exc)}")
                continue
            hop.address, hop.port = address, port
            hop.connect_ms = (time.monotonic() - t0) * 1000
            break
        if stream is None:
            what = f"proxy {proxy.display}" if proxy else f"{parts.authority}"
            raise _Fail("proxy_failed" if proxy else "connect_failed",
                        f"cannot connect to {what}: " + "; ".join(errors))
        try:
            if proxy is not None and proxy.scheme == "https":
                await self.proxy_tls(stream, proxy)
            if proxy is not None and parts.scheme == "https":
                await self.tunnel(stream, parts, proxy, hop)
                if stream.tls is not None:  # TLS to the server inside TLS to the proxy
                    stream = Tunnelled(stream)
            if parts.scheme == "https":
                await self.start_tls(stream, parts, hop)
        except BaseException:
            stream.close()
            raise
        return stream

    async def proxy_tls(self, stream: Stream, proxy: Proxy) -> None:
        """TLS with an https:// proxy itself, verified against the proxy's name."""
        await self.handshake(stream, proxy.host, f"proxy {proxy.display}", "proxy_failed")

    async def handshake(self, stream: Stream, host: str, what: str, outcome: str) -> None:
        """TLS on ``stream``, verified for ``host``; a failure ends the hop as ``outcome``,
        told about ``what`` (the server's authority, or the proxy)."""
        import ssl

        context = self.tls_context(host)
        try:
            await stream.start_tls(context, host.split("%")[0], self.bound(self.timeout))
        except asyncio.TimeoutError:
            raise _Fail(outcome, f"TLS handshake with {what} timed out after "
                                 f"{self.timeout:g} s") from None
        except ssl.SSLCertVerificationError as exc:
            raise _Fail(outcome, f"certificate of {what} does not verify: "
                                 f"{exc.verify_message or exc.reason}") from None
        except ssl.SSLError as exc:
            raise _Fail(outcome, f"TLS handshake with {what} failed: "
                                 f"{exc.reason or exc}") from None
        except OSError as exc:
            raise _Fail(outcome, f"TLS handshake with {what}: {os_error_name(exc)}") from None

    async def tunnel(self, stream: Stream, parts: UrlParts, proxy: Proxy, hop: Hop) -> None:
        """CONNECT through the proxy; a refusal becomes the hop's (final) status."""
        t0 = time.monotonic()
        lines = [f"CONNECT {parts.host_for_url}:{parts.port} HTTP/1.1",
                 f"Host: {parts.host_for_url}:{parts.port}", f"User-Agent: {self.user_agent}"]
        auth = proxy.authorization()
        if auth:
            lines.append(f"Proxy-Authorization: {auth}")
        try:
            await stream.send(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"),
                              self.bound(self.timeout))
        except (OSError, asyncio.TimeoutError) as exc:
            raise _Fail("proxy_failed", f"sending CONNECT to {proxy.display}: "
                                        f"{os_error_name(exc)}") from None
        try:
            head = await self.read_head(stream, hop, t0)
        except _Fail as fail:  # the proxy's answer to CONNECT, not the server's
            raise _Fail("proxy_failed", f"the proxy {proxy.display} accepted the connection "
                                        f"but its answer to CONNECT failed: {fail.detail}"
                        ) from None
        hop.tunnel_ms = (time.monotonic() - t0) * 1000
        if head.status // 100 != 2:
            hop.from_proxy = True
            _record_head(hop, head)
            raise _ProxyRefused(head)
        hop.ttfb_ms = None  # the proxy's answer is not the server's first byte

    async def start_tls(self, stream: Stream, parts: UrlParts, hop: Hop) -> None:
        self.tls_context(parts.host)  # loaded before the clock starts: netcheck's own time
        t0 = time.monotonic()
        await self.handshake(stream, parts.host, parts.authority, "tls_failed")
        hop.tls_ms = (time.monotonic() - t0) * 1000
        tls = stream.tls
        if tls is not None:
            cipher = tls.cipher()
            hop.tls = {"version": tls.version(), "cipher": cipher[0] if cipher else None,
                       "alpn": tls.selected_alpn_protocol()}
            from netcheck.probes.tls import _chain_der

            hop.peer_chain = _chain_der(tls)

    async def read_head(self, stream: Stream, hop: Hop, sent_at: float) -> Head:
        """Read a status line and headers within ``timeout`` of the request; skip 1xx."""
        head_until = min(self.until, sent_at + self.timeout)
        buf = b""
        scanned = 0  # where the search for the empty line resumes (no quadratic rescans)
        got = 0  # bytes received in this phase (what a stall got as far as)
        first_at: Optional[float] = None
        last_at = sent_at
        interim = 0
        while True:
            if buf[:1] in (b"\r", b"\n"):
                buf = buf.lstrip(b"\r\n")
                scanned = 0
            end = _HEAD_END.search(buf, max(0, scanned - 3))
            scanned = len(buf)
            if end is not None:
                try:
                    head = parse_head(buf[:end.start()])
                except ProtocolError as exc:
                    raise _Fail("protocol_mismatch", str(exc), first=buf) from None
                buf = buf[end.end():]
                scanned = 0
                if 100 <= head.status < 200 and head.status != 101 and interim < MAX_INTERIM:
                    interim += 1  # 100 Continue, 103 Early Hints: the real answer follows
                    continue
                stream.buffer = buf + stream.buffer
                hop.bytes_received = got - len(buf)  # the rest is the body's, counted there
                return head
            hop.bytes_received = got
            if len(buf) > self.max_header:
                raise _Fail("header_too_large", f"the response headers exceed "
                                                f"{self.max_header // 1024} KiB", first=buf)
            if not could_be_http(buf):
                raise _Fail("protocol_mismatch", "the answer is not HTTP", first=buf)
            try:
                data = await stream.recv(head_until)
            except asyncio.TimeoutError:
                waited = time.monotonic() - sent_at
                if first_at is None:
                    raise _Fail("timeout", f"no answer within {waited:.1f} s of the "
                                           "request") from None
                still = time.monotonic() - last_at < 1.0
                raise _Fail("stall", f"{got} bytes of the response in {waited:.1f} s, "
                            + ("still trickling" if still else
                               f"then nothing for {time.monotonic() - last_at:.1f} s")
                            + "; the headers never completed", first=buf) from None
            except (OSError, ConnectionError) as exc:
                raise _Fail("closed", f"connection failed while reading the response: "
                                      f"{os_error_name(exc)}", first=buf) from None
            if not data:
                if not got:
                    raise _Fail("closed", "the server closed the connection without a "
                                          "response (empty reply)")
                raise _Fail("closed", f"the server closed the connection after {got} "
                                      "bytes, in the middle of the headers", first=buf)
            now = time.monotonic()
            if first_at is None:
                first_at = now
                hop.ttfb_ms = (now - sent_at) * 1000
            last_at = now
            got += len(data)
            buf += data

    async def read_body(self, stream: Stream, hop: Hop, head: Head) -> bytes:
        """Read (and count) the body within the byte and time bounds; a small sample kept.

        A redirect's body is read only up to 64 KiB: beyond that the connection is not
        worth keeping alive.
        """
        framing, length = body_framing(head.status, head.headers)
        hop.content_length = length if framing == "length" else None
        final = head.status not in REDIRECT_STATUSES or not head.headers.get("Location")
        limit = self.max_body if final else min(self.max_body, 64 * 1024)
        start = time.monotonic()
        budget_end = min(self.until, start + self.transfer_timeout)
        sample = b""
        count = 0
        decoder = ChunkedDecoder(self.max_header) if framing == "chunked" else None
        complete = framing == "none" or (framing == "length" and length == 0)
        last_at = start
        while not complete:
            if count >= limit:
                hop.truncated = "size"
                break
            try:
                data = await stream.recv(min(budget_end, time.monotonic() + self.timeout))
            except asyncio.TimeoutError:
                # Nothing for a whole timeout is a stall; bytes still coming when the
                # transfer's time is up is only slow.
                idle = time.monotonic() - last_at
                hop.truncated = "stall" if idle >= self.timeout - 0.01 else "time"
                break
            except (OSError, ConnectionError):
                hop.truncated = "reset"
                break
            if not data:
                if framing == "close":
                    complete = True
                else:
                    hop.truncated = "closed"
                break
            hop.bytes_received += len(data)
            last_at = time.monotonic()
            if decoder is not None:
                try:
                    pieces = decoder.feed(data)
                except ProtocolError as exc:
                    hop.truncated = "bad chunking"
                    hop.error = str(exc)
                    break
                if decoder.done:
                    stream.buffer = decoder.leftover
                    complete = True
            elif framing == "length":
                assert length is not None
                need = length - count
                pieces = [data[:need]]
                if len(data) >= need:
                    stream.buffer = data[need:]
                    complete = True
            else:
                pieces = [data]
            for piece in pieces:
                if len(sample) < BODY_SAMPLE_BYTES:
                    sample += piece[:BODY_SAMPLE_BYTES - len(sample)]
                count += len(piece)
        hop.body_bytes = count
        hop.transfer_ms = (time.monotonic() - start) * 1000 if framing != "none" else 0.0
        connection = (head.headers.get("Connection") or "").lower()
        hop.keep_alive = complete and hop.truncated is None and framing != "close" and (
            "close" not in connection) and (head.version != "1.0" or "keep-alive" in connection)
        return sample

    async def exchange(self, parts: UrlParts, hop: Hop) -> tuple[Head, bytes]:
        """One request on a kept-alive or new connection; the head and a body sample."""
        proxy = self.proxy_for(parts)
        hop.proxy = proxy.display if proxy else None
        key = (parts.origin, hop.proxy)
        stream = self.pool.pop(key, None)
        absolute = proxy is not None and parts.scheme == "http"
        request = build_request(parts, self.user_agent, absolute=absolute,
                                proxy_authorization=proxy.authorization() if absolute
                                and proxy else None)
        for attempt in (0, 1):
            reused = stream is not None
            if stream is None:
                stream = await self.connect(parts, hop, proxy)
            hop.connection = "reused" if reused else "new"
            hop.address, hop.port = stream.address, stream.port
            sent_at = time.monotonic()
            try:
                await stream.send(request, self.bound(self.timeout))
                head = await self.read_head(stream, hop, sent_at)
            except (OSError, asyncio.TimeoutError, _Fail) as exc:
                stream.close()
                gone = isinstance(exc, OSError) or (
                    isinstance(exc, _Fail) and exc.outcome == "closed"
                    and hop.bytes_received == 0)
                if reused and gone and attempt == 0:
                    # The server closed the idle connection meanwhile: every client retries
                    # a GET once on a fresh connection.
                    stream = None
                    hop.bytes_received = 0
                    continue
                if isinstance(exc, _Fail):
                    raise
                if isinstance(exc, asyncio.TimeoutError):
                    raise _Fail("timeout", "sending the request timed out") from None
                raise _Fail("closed", f"sending the request failed: {os_error_name(exc)}"
                            ) from None
            _record_head(hop, head)
            try:
                sample = await self.read_body(stream, hop, head)
            except ProtocolError as exc:
                stream.close()
                raise _Fail("protocol_mismatch", str(exc)) from None
            if hop.keep_alive:
                self.pool[key] = stream
            else:
                stream.close()
            return head, sample
        raise _Fail("closed", "the connection was closed twice")  # not reached


class Tunnelled(Stream):
    """A stream carried inside another one's TLS: https to a server through an https proxy.

    Stream's TLS reads and writes raw bytes through ``_raw_recv`` and ``sendall_raw``; here
    those are the outer stream's decrypted reads and encrypted writes.
    """

    def __init__(self, outer: Stream) -> None:
        super().__init__(outer.sock)
        self.outer = outer
        self.address, self.port = outer.address, outer.port

    async def _raw_recv(self, until: float) -> bytes:
        try:
            return await self.outer.recv(until)
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
            return b""

    async def sendall_raw(self, data: bytes, until: float) -> None:
        await self.outer.send(data, until)


class _ProxyRefused(Exception):
    def __init__(self, head: Head) -> None:
        super().__init__(head.status_line)
        self.head = head


def _record_head(hop: Hop, head: Head) -> None:
    hop.status, hop.reason, hop.status_line = head.status, head.reason, head.status_line
    hop.http_version = head.version
    # What tells a proxy's own answer from one it forwards (RFC 9110 7.6.3: a proxy adds
    # Via to what it forwards; RFC 9209's Proxy-Status and squid's X-Squid-Error mark its
    # own errors), and the scheme a 407 asks for.
    for attr, name in (("via", "Via"), ("proxy_status", "Proxy-Status"),
                       ("proxy_status", "X-Squid-Error"),
                       ("proxy_authenticate", "Proxy-Authenticate")):
        value = head.headers.get(name)
        if value is not None:
            setattr(hop, attr, shown(value, 200))
    hop.server = first_line((head.headers.get("Server") or "").encode("latin-1", "replace"),
                            120) or None
    hop.content_type = head.headers.get("Content-Type")


async def _getaddrinfo(host: str, timeout: float) -> list[str]:
    import socket

    loop = asyncio.get_running_loop()
    infos = await asyncio.wait_for(loop.getaddrinfo(host, None, type=socket.SOCK_STREAM),
                                   timeout)
    found: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in found:
            found.append(address)
    return found


async def fetch(target: Union[str, UrlParts, Any], *, address: Optional[str] = None,
                timeout: float = 2.0, deadline: Optional[float] = None,
                cafile: Optional[str] = None, cert: Optional[str] = None,
                key: Optional[str] = None, verify: bool = True,
                unverified_hosts: Collection[str] = (),
                user_agent: Optional[str] = None, request_id: Optional[str] = None,
                proxy: Union[None, str, Proxy] = None,
                env: Optional[Mapping[str, str]] = None,
                resolve: Optional[Resolver] = None, dns_ms: Optional[float] = None,
                mss: Optional[int] = None, max_redirects: int = MAX_REDIRECTS,
                max_header_bytes: int = MAX_HEADER_BYTES,
                max_body_bytes: int = MAX_BODY_BYTES,
                transfer_timeout: Optional[float] = None,
                hop_refusal: Optional[HopRefusal] = None) -> HttpResult:
    """GET ``target`` and follow its redirects; never raises for what the network does.

    target: a URL, :class:`UrlParts`, or netcheck's ``Target`` (http or https).
    address: connect the first hop here (already resolved); Host and SNI stay the name.
    timeout: bound of each phase (connect, TLS, first byte and headers, each body read).
    deadline: seconds for the whole fetch, every hop included (default 15).
    cafile/cert/key/verify: TLS as :func:`netcheck.probes.tls.client_context` makes it;
      ``unverified_hosts``: names whose certificate is not verified (one already judged
      elsewhere: the application is still looked at, as ``curl -k`` would).
    user_agent: default ``netcheck/VERSION (+request_id)``.
    proxy: a proxy for every hop (``no_proxy`` in ``env`` still exempts hosts, as for curl's
      ``-x``); otherwise ``env`` (e.g. ``os.environ``) is read per hop for http_proxy,
      https_proxy, all_proxy and no_proxy (:func:`choose_proxy`). Neither given: direct.
    resolve: async name -> addresses, for redirects to another host (default: getaddrinfo).
    dns_ms: the first hop's resolution time, when the caller resolved it.
    mss: TCP_MAXSEG set before connect(): the peer then sends segments no larger.
    transfer_timeout: bound of one body's transfer (default ``timeout``); reaching it is
      not a failure, the body is marked truncated ("time").
    hop_refusal: asked for every hop, the first included, before anything is sent to it
      (see :meth:`_Fetcher.refusal`); a refused hop ends the fetch with outcome
      ``not_allowed`` and the hops before it.
    """
    start = time.monotonic()
    ua = user_agent or user_agent_for(request_id)
    try:
        current = parts_of(target)
    except (UrlError, ValueError, AttributeError, TypeError) as exc:
        return HttpResult(str(target)[:200], "error", f"bad URL: {exc}", user_agent=ua)
    result = HttpResult(current.url, user_agent=ua)
    explicit: Optional[Proxy] = None
    try:
        explicit = parse_proxy(proxy, "--proxy") if isinstance(proxy, str) else proxy
    except UrlError as exc:
        result.outcome, result.detail = "proxy_failed", str(exc)
        return result
    fetcher = _Fetcher(timeout=timeout, until=start + (15.0 if deadline is None else deadline),
                       cafile=cafile, cert=cert, key=key, verify=verify, user_agent=ua,
                       proxy=explicit, env=env, unverified_hosts=unverified_hosts,
                       resolve=resolve, mss=mss,
                       max_header_bytes=max_header_bytes, max_body_bytes=max_body_bytes,
                       transfer_timeout=timeout if transfer_timeout is None else transfer_timeout,
                       hop_refusal=hop_refusal)
    if address is not None:
        fetcher.known[current.host] = [address]
    seen = {current.url}
    try:
        await _follow(fetcher, result, current, seen, max_redirects, dns_ms)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a bug must not cost the report: say what happened
        result.outcome = "error"
        result.detail = f"{type(exc).__name__}: {exc}"
    finally:
        fetcher.close()
        result.elapsed_ms = (time.monotonic() - start) * 1000
    if result.hops and not result.proxy:
        result.proxy = next((h.proxy for h in result.hops if h.proxy), None)
    return result


async def _follow(fetcher: _Fetcher, result: HttpResult, current: UrlParts, seen: set[str],
                  max_redirects: int, dns_ms: Optional[float]) -> None:
    for n in range(max_redirects + 1):
        hop = Hop(current.url)
        if n == 0 and dns_ms is not None:
            hop.dns_ms = dns_ms
        refusal = await fetcher.refusal(current, hop)
        if refusal is not None:
            _refuse(result, current, refusal)
            return
        result.hops.append(hop)
        t0 = time.monotonic()
        overhead = fetcher.overhead
        try:
            head, sample = await fetcher.exchange(current, hop)
        except _ProxyRefused as refused:
            hop.total_ms = fetcher.ms_since(t0, overhead)
            _finish(result, hop)
            result.outcome = "ok"
            result.detail = f"the proxy {hop.proxy} answered CONNECT with {refused.head.status}"
            return
        except _Fail as fail:
            hop.total_ms = fetcher.ms_since(t0, overhead)
            hop.error = fail.detail
            result.outcome, result.detail = fail.outcome, fail.detail
            result.bytes_received = hop.bytes_received
            if fail.first:
                result.first_line = first_line(fail.first)
                result.heard = classify(fail.first)
            if hop.status is not None:
                _finish(result, hop)
            return
        hop.total_ms = fetcher.ms_since(t0, overhead)
        hop.sample = sample[:512]
        hop.title = page_title(sample) if head.status >= 400 else None
        location = head.headers.get("Location")
        if head.status in REDIRECT_STATUSES and location:
            # Masked before it is cut: a cut through a password would hide the '@' that
            # shows where the password ends.
            hop.location = first_line(mask_secrets(location).encode("latin-1", "replace"), 300)
            target_url = resolve_location(current, location)
            hop.next_url = shown(target_url, 300)
            scheme = target_url.split(":", 1)[0].lower() if ":" in target_url else ""
            if scheme not in DEFAULT_PORTS:
                _finish(result, hop)
                result.outcome = "redirect_refused"
                result.detail = (f"redirect to {hop.next_url}: netcheck follows only http and "
                                 "https redirects")
                return
            try:
                following = split_url(target_url)
            except UrlError as exc:
                _finish(result, hop)
                result.outcome = "redirect_refused"
                result.detail = f"bad Location: {shown(str(exc))}"
                return
            if following.scheme != current.scheme:
                hop.scheme_change = f"{current.scheme}->{following.scheme}"
            if following.url in seen:
                _finish(result, hop)
                result.outcome = "redirect_loop"
                result.detail = f"{following.url} was already visited: the redirects loop"
                return
            if n == max_redirects:
                _finish(result, hop)
                result.outcome = "too_many_redirects"
                result.detail = f"more than {max_redirects} redirects"
                return
            seen.add(following.url)
            current = following
            continue
        _finish(result, hop)
        result.outcome = "body_stall" if hop.truncated == "stall" else "ok"
        if hop.truncated == "stall":
            result.detail = (f"the body stalled after {hop.body_bytes} bytes"
                             + (f" of {hop.content_length}" if hop.content_length else ""))
        return


def _refuse(result: HttpResult, parts: UrlParts, reason: str) -> None:
    """End the fetch before ``parts``: the hops so far are the answer, the refusal the detail."""
    where = shown(parts.url, 300)
    if result.hops:
        _finish(result, result.hops[-1])
        result.detail = f"redirect to {where} refused: {shown(reason)}"
    else:
        result.detail = f"request to {where} refused: {shown(reason)}"
    result.outcome = "not_allowed"


def _finish(result: HttpResult, hop: Hop) -> None:
    """The final hop's facts, lifted onto the result."""
    result.status, result.reason = hop.status, hop.reason
    result.final_url = hop.url
    result.size = hop.body_bytes
    result.truncated = hop.truncated is not None
    result.truncated_reason = hop.truncated
    result.server = hop.server
    result.bytes_received = hop.bytes_received
