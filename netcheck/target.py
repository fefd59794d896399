"""TARGET strings of the contract, parsed into a validated :class:`Target`.

Accepted forms: ``host``, ``host:port``, an IPv4 or IPv6 address, ``[v6addr]:port`` and
``scheme://[user[:password]@]host[:port][/path]``. A bare host means ``https://host/``.
Anything else raises :class:`TargetError` with one clear sentence; a password is never
echoed back (it is replaced by ``***`` everywhere, the error message included).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Optional, Union

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

DEFAULT_PORTS: dict[str, int] = {
    "http": 80,
    "https": 443,
    "tcp": 0,  # tcp:// has no default: the port must be given
    "smtp": 25,
    "submission": 587,
    "pop3": 110,
    "pop3s": 995,
    "imap": 143,
    "imaps": 993,
    "ssh": 22,
    "dns": 53,
}

MAX_TARGET_LENGTH = 2048
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)$", re.DOTALL)


class TargetError(ValueError):
    """A TARGET that cannot be diagnosed; the message is one line for the user."""


@dataclass(frozen=True)
class Target:
    """A validated target: where to go and how to talk to it."""

    input: str  # the text the user typed, with any password masked
    scheme: str
    host: str  # ASCII form: IDN labels in punycode, IPv6 without brackets
    port: int
    path: str = "/"
    user: Optional[str] = None
    has_password: bool = False
    display_host: str = ""  # the host as typed (Unicode for IDN names)

    @property
    def ip(self) -> Optional[IPAddress]:
        """The address when the host is an IP literal, else None."""
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None

    @property
    def is_name(self) -> bool:
        return self.ip is None

    @property
    def url(self) -> str:
        """The target as a URL with any password masked."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        cred = ""
        if self.user is not None:
            cred = f"{self.user}:***@" if self.has_password else f"{self.user}@"
        path = self.path if self.scheme in ("http", "https") else ""
        return f"{self.scheme}://{cred}{host}:{self.port}{path}"

    def to_json(self, addresses: list[str]) -> dict[str, object]:
        return {
            "input": self.input,
            "scheme": self.scheme,
            "host": self.host,
            "port": self.port,
            "addresses": addresses,
        }


# One search each, in C: a batch reads ten thousand targets (str.isspace's white space).
_WHITE_SPACE = re.compile(r"\s")
_CONTROL = re.compile("[\x00-\x1f\x7f]")


def _check_text(text: str) -> None:
    if not text or not text.strip():
        raise TargetError("empty target: give a host name, an address or a URL")
    if len(text) > MAX_TARGET_LENGTH:
        raise TargetError(f"target too long ({len(text)} characters, at most {MAX_TARGET_LENGTH})")
    if _WHITE_SPACE.search(text):
        raise TargetError("target contains white space")
    if _CONTROL.search(text):
        raise TargetError("target contains control characters")


def _parse_port(text: str) -> int:
    if not text.isdigit() or not text.isascii():
        raise TargetError(f"port {_show(text)!s} is not a number from 1 to 65535")
    port = int(text)
    if not 1 <= port <= 65535:
        raise TargetError(f"port {_show(text)} is out of range (1-65535)")
    return port


def _show(text: str, limit: int = 40) -> str:
    """Quote user text safely in an error message: printable and short."""
    shown = text.encode("unicode_escape").decode("ascii")
    return repr(shown if len(shown) <= limit else shown[:limit] + "...")


def is_ipv4(text: str) -> bool:
    """A dotted-quad IPv4 address as inet_pton reads it (no leading zeros, four parts)."""
    try:
        socket.inet_pton(socket.AF_INET, text)
    except OSError:
        return False
    return True


def normalize_host(host: str) -> str:
    """Validate a host name or address and return its ASCII form.

    IPv6 literals lose their brackets, IDN names become punycode, names are lower-cased.
    """
    if not host:
        raise TargetError("target has no host")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if bare != host and ":" not in bare:
        raise TargetError(f"{_show(host)}: brackets are only for IPv6 addresses")
    if "%" in bare:  # scoped IPv6 (fe80::1%eth0): validate the address part
        addr_part, _, zone = bare.partition("%")
        if not zone or not re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", zone):
            raise TargetError(f"bad IPv6 zone in {_show(host)}")
        try:
            ipaddress.IPv6Address(addr_part)
        except ValueError:
            raise TargetError(f"{_show(host)} is not a valid IPv6 address") from None
        return f"{ipaddress.IPv6Address(addr_part).compressed}%{zone}"
    if is_ipv4(bare):  # already its compressed form: the common case, without ipaddress
        return bare
    try:
        return ipaddress.ip_address(bare).compressed
    except ValueError:
        pass
    if bare != host or ":" in bare:
        raise TargetError(f"{_show(host)} is not a valid IPv6 address")
    name = bare.rstrip(".") if bare != "." else bare
    if not name or name == ".":
        raise TargetError("target has no host name")
    if re.fullmatch(r"[0-9.]+", name):
        raise TargetError(f"{_show(host)} is not a valid IPv4 address")
    try:
        ascii_name = name.encode("idna").decode("ascii") if not name.isascii() else name
    except UnicodeError:
        raise TargetError(f"{_show(host)} is not a valid internationalised host name") from None
    ascii_name = ascii_name.lower()
    if len(ascii_name) > 253:
        raise TargetError(f"host name too long ({len(ascii_name)} characters, at most 253)")
    for label in ascii_name.split("."):
        if not label:
            raise TargetError(f"host name {_show(host)} has an empty label")
        if len(label) > 63:
            raise TargetError(f"host name label too long ({len(label)} characters, at most 63)")
        if not _LABEL.match(label):
            raise TargetError(f"host name {_show(host)} has characters not allowed in a name")
    return ascii_name


def parse_target(text: str, port: Optional[int] = None) -> Target:
    """Parse a TARGET string; ``port`` (from ``--port``) overrides any port in it."""
    _check_text(text)
    if port is not None and not 1 <= port <= 65535:
        raise TargetError(f"port {port} is out of range (1-65535)")
    masked = text
    user: Optional[str] = None
    has_password = False
    path = "/"
    m = _URL.match(text)
    if m:
        scheme = m.group("scheme").lower()
        if scheme not in DEFAULT_PORTS:
            known = " ".join(DEFAULT_PORTS)
            raise TargetError(f"unknown scheme {_show(scheme)} (known: {known})")
        rest = m.group("rest")
        authority, sep, tail = rest.partition("/")
        if sep:
            path = "/" + tail
        for marker in ("?", "#"):
            if marker in authority:
                authority, _, extra = authority.partition(marker)
                path = "/" + marker + extra if path == "/" else path
        if "@" in authority:
            cred, _, authority = authority.rpartition("@")
            user, colon, _password = cred.partition(":")
            has_password = bool(colon)
            if has_password:  # the host starts after the last '@'; a password may hold '@'
                masked = f"{m.group('scheme')}://{user}:***@{rest[len(cred) + 1:]}"
        host_text, port_text = _split_host_port(authority)
        host = normalize_host(host_text)
        given = _parse_port(port_text) if port_text is not None else None
        chosen = port or given or DEFAULT_PORTS[scheme]
        if not chosen:
            raise TargetError("tcp:// needs a port, e.g. tcp://host:22")
        return Target(masked, scheme, host, chosen, path, user, has_password, host_text.strip("[]"))
    if "/" in text or "@" in text:
        raise TargetError(f"{_show(text)} is neither a host nor a URL (scheme://host[:port])")
    host_text, port_text = _split_host_port(text)
    host = normalize_host(host_text)
    given = _parse_port(port_text) if port_text is not None else None
    if given is not None:
        return Target(text, "tcp", host, port or given, "/", display_host=host_text.strip("[]"))
    return Target(text, "https", host, port or DEFAULT_PORTS["https"], "/",
                  display_host=host_text.strip("[]"))


def _split_host_port(authority: str) -> tuple[str, Optional[str]]:
    """Split ``host:port``, ``[v6]:port``, ``[v6]`` or a bare IPv6 literal."""
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise TargetError(f"unclosed '[' in {_show(authority)}")
        host, after = authority[: end + 1], authority[end + 1 :]
        if not after:
            return host, None
        if not after.startswith(":"):
            raise TargetError(f"unexpected text after ']' in {_show(authority)}")
        return host, after[1:]
    if authority.count(":") > 1:  # a bare IPv6 literal carries no port
        return authority, None
    host, colon, port = authority.partition(":")
    return host, (port if colon else None)
