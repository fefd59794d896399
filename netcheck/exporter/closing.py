"""Closing an exporter connection after its answer without a reset that could destroy it.

The server ends its side, then reads what the client still sends for a moment (up to 64 KiB):
unread bytes at close turn the FIN into an RST, and an RST may overtake the answer on its way.
Two forms: on the event loop (a reader callback and a timer, no thread) and blocking.
"""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    import asyncio


def _recv_now(sock: socket.socket) -> Optional[bytes]:
    """What a non-blocking socket has (b"" at its end or on an error), None for nothing yet."""
    try:
        return sock.recv(65536)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:
        return b""


async def _close_async(loop: asyncio.AbstractEventLoop, sock: socket.socket,
                       linger: float) -> None:
    """:func:`_close` on the event loop: the client's last bytes are waited for without a
    thread (a reader callback and a timer, no task)."""
    done = loop.create_future()
    got = 0

    def finish() -> None:
        if not done.done():
            done.set_result(None)

    def readable() -> None:
        nonlocal got
        data = _recv_now(sock)
        if data is None:
            return
        got += len(data)
        if not data or got >= 65536:
            finish()

    try:
        sock.shutdown(socket.SHUT_WR)
        loop.add_reader(sock.fileno(), readable)
    except (OSError, ValueError):
        sock.close()
        return
    timer = loop.call_later(linger, finish)
    try:
        await done
    finally:
        timer.cancel()
        loop.remove_reader(sock.fileno())
        sock.close()


def _close(sock: socket.socket, linger: float) -> None:
    """Close after an answer: end our side, read what the client still sends (up to
    ``linger`` seconds, 64 KiB) so unread bytes do not turn the close into a reset that
    could destroy the answer on its way."""
    try:
        sock.shutdown(socket.SHUT_WR)
        until = time.monotonic() + linger
        got = 0
        sock.setblocking(linger > 0)
        while got < 65536:
            left = until - time.monotonic()
            if linger > 0:
                if left <= 0:
                    break
                sock.settimeout(left)
            data = sock.recv(65536)
            if not data:
                break
            got += len(data)
    except OSError:
        pass
    finally:
        sock.close()
