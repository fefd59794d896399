"""``--filter``: a small capture filter on addresses, networks, ports and protocols.

The words of tcpdump's filters that students already know, and no more: ``host A``,
``net A/len``, ``port N``, each optionally after ``src`` or ``dst``, the protocols ``tcp``,
``udp`` and ``icmp``, joined with ``and``, ``or``, ``not`` and parentheses. The expression is
compiled once into nested closures called with ``(proto, src, dst, sport, dport)`` (packed
addresses), so a filtered run costs one call per packet.
"""

from __future__ import annotations

from typing import Callable, Optional


class Filter:
    """A small capture filter: ``host A``, ``port N``, ``src``/``dst``, ``net A/len``,
    ``tcp``/``udp``/``icmp``, joined with ``and``/``or``/``not`` and parentheses.
    """

    def __init__(self, text: str) -> None:
        import ipaddress

        self._ip = ipaddress
        self.text = text
        self.tokens = text.replace("(", " ( ").replace(")", " ) ").split()
        self.pos = 0
        if not self.tokens:
            raise ValueError("the filter is empty")
        self.match = self._or()
        if self.pos != len(self.tokens):
            raise ValueError(f"unexpected {self.tokens[self.pos]!r} in the filter")

    def _peek(self) -> Optional[str]:
        return self.tokens[self.pos].lower() if self.pos < len(self.tokens) else None

    def _take(self) -> str:
        token = self._peek()
        if token is None:
            raise ValueError("the filter ends too early")
        self.pos += 1
        return token

    def _or(self) -> Callable[..., bool]:
        left = self._and()
        while self._peek() in ("or", "||"):
            self._take()
            right = self._and()
            left = (lambda a, b: lambda *p: a(*p) or b(*p))(left, right)
        return left

    def _and(self) -> Callable[..., bool]:
        left = self._not()
        while self._peek() in ("and", "&&"):
            self._take()
            right = self._not()
            left = (lambda a, b: lambda *p: a(*p) and b(*p))(left, right)
        return left

    def _not(self) -> Callable[..., bool]:
        if self._peek() in ("not", "!"):
            self._take()
            inner = self._not()
            return lambda *p: not inner(*p)
        if self._peek() == "(":
            self._take()
            inner = self._or()
            if self._peek() != ")":
                raise ValueError("missing ) in the filter")
            self._take()
            return inner
        return self._term()

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
                raise ValueError(f"host {value!r} is not an IP address") from None
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
                raise ValueError(f"net {value!r} is not a network (A.B.C.D/len)") from None
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
            if not value.isdigit() or not 0 < int(value) < 65536:
                raise ValueError(f"port {value!r} is not a number from 1 to 65535")
            port = int(value)
            if direction == "src":
                return lambda _p, src, dst, sp, dp: sp == port
            if direction == "dst":
                return lambda _p, src, dst, sp, dp: dp == port
            return lambda _p, src, dst, sp, dp: sp == port or dp == port
        raise ValueError(f"unknown filter word {word!r} (use host, net, port, src, dst, tcp, "
                         "udp, icmp, and, or, not)")
