"""``--filter``: a small capture filter on addresses, networks, ports and protocols.

The words of tcpdump's filters that students already know, and no more: ``host A``,
``net A/len``, ``port N``, each optionally after ``src`` or ``dst``, the protocols ``tcp``,
``udp`` and ``icmp``, joined with ``and``, ``or``, ``not`` and parentheses. The expression is
compiled once into nested closures called with ``(proto, src, dst, sport, dport)`` (packed
addresses), so a filtered run costs one call per packet.

The text comes from the command line, maybe from a script fed by someone else: it is bounded
before parsing (:data:`MAX_LENGTH` characters, :data:`MAX_DEPTH` levels of parentheses and
``not``), and a chain of ``and``/``or`` compiles to one flat loop, not one nested call per
word, so no filter can exhaust the stack at parse time or per packet.
"""

from __future__ import annotations

from typing import Callable, Optional

MAX_LENGTH = 2000  # characters: far more than any hand-written capture filter
MAX_DEPTH = 32  # nested parentheses and "not"s

Match = Callable[..., bool]


def _any(parts: list[Match]) -> Match:
    def match(*packet: object) -> bool:
        for part in parts:
            if part(*packet):
                return True
        return False
    return match


def _all(parts: list[Match]) -> Match:
    def match(*packet: object) -> bool:
        for part in parts:
            if not part(*packet):
                return False
        return True
    return match


def _shown(token: str) -> str:
    """A word of the filter quoted in an error: escaped first, then cut, so that escapes of
    control or astral characters (up to 10 characters each) cannot lengthen the message."""
    quoted = repr(token)
    return quoted if len(quoted) <= 42 else quoted[:39] + "..."


class Filter:
    """A small capture filter: ``host A``, ``port N``, ``src``/``dst``, ``net A/len``,
    ``tcp``/``udp``/``icmp``, joined with ``and``/``or``/``not`` and parentheses.
    """

    def __init__(self, text: str) -> None:
        import ipaddress

        self._ip = ipaddress
        self.text = text
        if len(text) > MAX_LENGTH:
            raise ValueError(f"the filter is too long ({len(text)} characters, at most "
                             f"{MAX_LENGTH})")
        self.tokens = text.replace("(", " ( ").replace(")", " ) ").split()
        self.pos = 0
        self.depth = 0
        if not self.tokens:
            raise ValueError("the filter is empty")
        self.match = self._or()
        if self.pos != len(self.tokens):
            raise ValueError(f"unexpected {_shown(self.tokens[self.pos])} in the filter")

    def _peek(self) -> Optional[str]:
        return self.tokens[self.pos].lower() if self.pos < len(self.tokens) else None

    def _take(self) -> str:
        token = self._peek()
        if token is None:
            raise ValueError("the filter ends too early")
        self.pos += 1
        return token

    def _or(self) -> Match:
        parts = [self._and()]
        while self._peek() in ("or", "||"):
            self._take()
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else _any(parts)

    def _and(self) -> Match:
        parts = [self._not()]
        while self._peek() in ("and", "&&"):
            self._take()
            parts.append(self._not())
        return parts[0] if len(parts) == 1 else _all(parts)

    def _not(self) -> Match:
        if self._peek() not in ("not", "!", "("):
            return self._term()
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ValueError(f"the filter nests too deeply (more than {MAX_DEPTH} levels of "
                             "parentheses and not)")
        if self._take() == "(":
            inner = self._or()
            if self._peek() != ")":
                raise ValueError("missing ) in the filter")
            self._take()
            result = inner
        else:
            negated = self._not()
            result = lambda *p: not negated(*p)  # noqa: E731 - a closure, as the others
        self.depth -= 1
        return result

    def _term(self) -> Callable[..., bool]:
        word = self._take()
        direction = None
        if word in ("src", "dst"):
            direction, word = word, self._take()
        if word in ("tcp", "udp", "icmp") and direction is None:
            number = {"tcp": 6, "udp": 17, "icmp": 1}[word]
            if number == 1:
                return lambda proto, *_: proto in (1, 58)
            return lambda proto, *_: proto == number
        if word == "host":
            value = self._take()
            try:
                packed = self._ip.ip_address(value).packed
            except ValueError:
                raise ValueError(f"host {_shown(value)} is not an IP address") from None
            if direction == "src":
                return lambda _p, src, dst, sp, dp: src == packed
            if direction == "dst":
                return lambda _p, src, dst, sp, dp: dst == packed
            return lambda _p, src, dst, sp, dp: src == packed or dst == packed
        if word == "net":
            value = self._take()
            try:
                net = self._ip.ip_network(value, strict=False)
            except ValueError:
                raise ValueError(f"net {_shown(value)} is not a network (A.B.C.D/len)") from None
            size = 4 if net.version == 4 else 16
            prefix = int(net.network_address)
            shift = size * 8 - net.prefixlen

            def inside(packed: bytes) -> bool:
                return len(packed) == size and int.from_bytes(packed, "big") >> shift == \
                    prefix >> shift
            if direction == "src":
                return lambda _p, src, dst, sp, dp: inside(src)
            if direction == "dst":
                return lambda _p, src, dst, sp, dp: inside(dst)
            return lambda _p, src, dst, sp, dp: inside(src) or inside(dst)
        if word == "port":
            value = self._take()
            if not (value.isascii() and value.isdigit()) or not 0 < int(value) < 65536:
                raise ValueError(f"port {_shown(value)} is not a number from 1 to 65535")
            port = int(value)
            if direction == "src":
                return lambda _p, src, dst, sp, dp: sp == port
            if direction == "dst":
                return lambda _p, src, dst, sp, dp: dp == port
            return lambda _p, src, dst, sp, dp: sp == port or dp == port
        raise ValueError(f"unknown filter word {_shown(word)} (use host, net, port, src, dst, tcp, "
                         "udp, icmp, and, or, not)")
