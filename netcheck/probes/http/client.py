"""The client of one fetch, on raw sockets: resolving, the caller's hop policy, connecting
(through a proxy's CONNECT, TLS to an https proxy, TLS to the server), and keeping a connection
alive between hops (:class:`_Fetcher`); reading the head and the body within their bounds is
:mod:`netcheck.probes.http.reading`'s.
"""

from __future__ import annotations

import ipaddress
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Collection, Mapping, Optional

from netcheck.lazy import asyncio
from netcheck.probes.banner import Stream, first_line, open_stream, os_error_name
from netcheck.probes.http.framing import Head, ProtocolError, build_request
from netcheck.probes.http.proxy import Proxy, choose_proxy
from netcheck.probes.http.reading import _Fail, _ResponseReader
from netcheck.probes.http.result import Hop
from netcheck.probes.http.url import UrlParts
from netcheck.redact import shown

if TYPE_CHECKING:
    import ssl


Resolver = Callable[[str], Awaitable[list[str]]]
# Why a hop (host, port, scheme, path) may not be requested, or None when it may: the caller's
# policy (the exporter's allow-list), asked before any packet goes to the hop.
HopRefusal = Callable[[str, int, str, str], Optional[str]]


class _Fetcher(_ResponseReader):
    """State of one fetch: the deadline, the connection kept alive, the names resolved; the
    response is read as :class:`_ResponseReader` reads it."""

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
            from netcheck.probes.tls.context import shared_context

            t0 = time.monotonic()
            try:
                self._tls_contexts[verify] = shared_context(
                    self.cafile, self.cert, self.key, verify, ("http/1.1",))
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
