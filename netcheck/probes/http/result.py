"""What a fetch reports: each request of the chain (:class:`Hop`, with its phase timings
and the line wget would print) and the whole fetch (:class:`HttpResult`, its ``outcome``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional


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
