"""A connected socket, optionally TLS through memory BIOs, with deadline-bounded reads; the
HTTP client reads through it too."""

from __future__ import annotations

import errno
import socket
import time
from typing import TYPE_CHECKING, Any, Optional

from netcheck.lazy import asyncio

if TYPE_CHECKING:
    import ssl


class Stream:
    """A connected socket, optionally TLS through memory BIOs, with deadline-bounded reads."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.tls: Optional[ssl.SSLObject] = None
        self._in: Any = None
        self._out: Any = None
        self.received = 0
        # Bytes read past the end of one HTTP response, handed to the next read (keep-alive).
        self.buffer = b""
        self.address: Optional[str] = None
        self.port: Optional[int] = None

    async def _raw_recv(self, until: float) -> bytes:
        left = until - time.monotonic()
        if left <= 0:
            raise asyncio.TimeoutError
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.sock_recv(self.sock, 16384), left)
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
            return b""

    async def _flush(self, until: float) -> None:
        if self._out is not None and self._out.pending:
            await self.sendall_raw(self._out.read(), until)

    async def sendall_raw(self, data: bytes, until: float) -> None:
        left = max(0.01, until - time.monotonic())
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.sock_sendall(self.sock, data), left)

    async def start_tls(self, context: ssl.SSLContext, server_hostname: Optional[str],
                        until: float) -> None:
        import ssl

        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self._in, self._out, server_hostname=server_hostname)
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pass
            await self._flush(until)
            data = await self._raw_recv(until)
            if data:
                self._in.write(data)
            else:
                self._in.write_eof()
        await self._flush(until)

    async def send(self, data: bytes, until: float) -> None:
        if self.tls is not None:
            self.tls.write(data)
            await self._flush(until)
        else:
            await self.sendall_raw(data, until)

    async def recv(self, until: float) -> bytes:
        """Some bytes, or b"" when the peer closed; asyncio.TimeoutError at ``until``."""
        if self.buffer:
            data, self.buffer = self.buffer, b""
            return data
        if self.tls is None:
            data = await self._raw_recv(until)
            self.received += len(data)
            return data
        import ssl

        while True:
            try:
                data = self.tls.read(16384)
                self.received += len(data)
                return data
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""
            await self._flush(until)
            raw = await self._raw_recv(until)
            if raw:
                self._in.write(raw)
            else:
                self._in.write_eof()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _sockaddr(address: str, port: int) -> tuple[Any, ...]:
    if ":" in address:
        host, _, zone = address.partition("%")
        return (host, port, 0, socket.if_nametoindex(zone) if zone else 0)
    return (address, port)


async def open_stream(address: str, port: int, until: float,
                      mss: Optional[int] = None) -> Stream:
    """A TCP connection to address:port; OSError or asyncio.TimeoutError when it fails."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        if mss:
            # Before connect(), so the SYN advertises it and the peer sends small segments.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, int(mss))
        # As curl does: a request written after a TLS Finished must not wait for its ACK
        # (Nagle), or delayed ACKs add 40 ms to the time measured.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        loop = asyncio.get_running_loop()
        left = until - time.monotonic()
        if left <= 0:
            raise asyncio.TimeoutError
        await asyncio.wait_for(loop.sock_connect(sock, _sockaddr(address, port)), left)
    except BaseException:
        sock.close()
        raise
    stream = Stream(sock)
    stream.address, stream.port = address, port
    return stream


def os_error_name(exc: BaseException) -> str:
    """ECONNREFUSED-style name of an OSError, or the exception's own text."""
    if isinstance(exc, OSError) and exc.errno:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
